# Downstream analyses of a BiCLUM integration on Seurat objects: R wrappers of biclum.downstream (Python).
# Every wrapper validates its arguments in R, sends what the Python function needs through the bridge
# (counts as x/i/p vectors, metadata as columns, embeddings as matrices: biclum.bridge.downstream_from_r)
# and returns R objects (data.frames, named lists, dgCMatrix, or a new Seurat object).

# ---------------------------------------------------------------------------------------------------
# argument checks (errors name the object, the problem and the fix)
# ---------------------------------------------------------------------------------------------------

.ds_check_seurat <- function(x, what) {
  if (!inherits(x, "Seurat")) {
    stop(.input_error(paste0(what, ": expected a Seurat object (e.g. one returned by RunBiCLUM()), got an object ",
                             "of class ", class(x)[1], "."), "biclum_not_seurat"))
  }
}

# The assay named, or by default the default assay; for functions that read peaks (peaks = TRUE), the peak assay
# when the default is the gene-activity assay RunBiCLUM() made the default.
.ds_assay <- function(object, assay, what, arg, peaks = FALSE) {
  assay <- assay %||% if (peaks) .peak_or_default_assay(object) else SeuratObject::DefaultAssay(object)
  assays <- SeuratObject::Assays(object)
  if (!is.character(assay) || length(assay) != 1 || !assay %in% assays) {
    stop(.input_error(paste0(what, ": the Seurat object has no assay '", paste(assay, collapse = ","),
                             "' (its assays: ", paste(assays, collapse = ", "), "); give one of those as ", arg,
                             "=."), "biclum_no_assay"))
  }
  assay
}

.ds_reduction <- function(object, reduction, what, arg) {
  reds <- SeuratObject::Reductions(object)
  if (!is.character(reduction) || length(reduction) != 1 || !reduction %in% reds) {
    stop(.input_error(paste0(what, ": the Seurat object has no reduction '", paste(reduction, collapse = ","),
                             "' (its reductions: ", if (length(reds)) paste(reds, collapse = ", ") else "none",
                             "); run RunBiCLUM() on it first, or give the name of its joint embedding as ", arg,
                             "=."), "biclum_no_reduction"))
  }
  emb <- SeuratObject::Embeddings(object, reduction = reduction)
  out <- matrix(NA_real_, ncol(object), ncol(emb), dimnames = list(colnames(object), colnames(emb)))
  hit <- intersect(rownames(emb), colnames(object)) # v5 reductions may hold a subset of the cells
  out[hit, ] <- emb[hit, , drop = FALSE]
  out
}

.ds_meta_column <- function(object, column, what, arg) {
  md <- object[[]]
  if (!is.character(column) || length(column) != 1 || !column %in% colnames(md)) {
    stop(.input_error(paste0(what, ": the Seurat object's meta.data has no column '", paste(column, collapse = ","),
                             "' (its columns: ", paste(colnames(md), collapse = ", "), "); give one of those as ",
                             arg, "=, or add the labels first (e.g. with TransferLabels())."), "biclum_no_metadata"))
  }
  md[colnames(object), column, drop = FALSE]
}

.ds_int <- function(x, arg, min = 1, null_ok = FALSE) {
  if (is.null(x) && null_ok) return(NULL)
  if (!is.numeric(x) || length(x) != 1 || is.na(x) || x < min || x != round(x)) {
    stop(.input_error(paste0(arg, " must be a whole number >= ", min, ", not ",
                             paste(format(x), collapse = ", "), "."), "biclum_bad_argument"))
  }
  as.integer(x)
}

.ds_choice <- function(x, choices, arg) {
  x <- x[1]
  if (!is.character(x) || is.na(x) || !x %in% choices) {
    stop(.input_error(paste0(arg, " must be one of ", paste0("\"", choices, "\"", collapse = ", "), ", not ",
                             paste(format(x), collapse = ", "), "."), "biclum_bad_argument"))
  }
  x
}

.ds_file <- function(path, what) {
  if (!is.character(path) || length(path) != 1 || is.na(path) || !file.exists(path) || dir.exists(path)) {
    stop(.input_error(paste0(what, ": the file '", paste(path, collapse = ", "), "' does not exist; check the path ",
                             "(or give the table itself, see the help page)."), "biclum_bad_file"))
  }
  normalizePath(path)
}

# Cells whose embedding is NA (cells RunBiCLUM could not use) are left out, with a warning.
.ds_keep_cells <- function(emb, what) {
  ok <- stats::complete.cases(emb)
  if (!any(ok)) {
    stop(.input_error(paste0(what, ": every cell has an NA embedding; run RunBiCLUM() on it again."),
                      "biclum_na_embeddings"))
  }
  if (!all(ok)) {
    warning(structure(class = c("biclum_na_embeddings", "warning", "condition"), list(message = paste0(
      what, ": ", sum(!ok), " cells without an embedding (not used by RunBiCLUM) are left out."), call = NULL)))
  }
  ok
}

# ---------------------------------------------------------------------------------------------------
# R -> Python arguments
# ---------------------------------------------------------------------------------------------------

# A Python AnnData spec (a dict, built lazily in Python) of a Seurat object: counts of `layer` of `assay`
# (NULL: no X), metadata columns `obs`, the embedding of `reduction` as obsm["X_biclum"], optionally the
# feature loadings as varm["biclum_loadings"] (then the var are the loadings' features).
.ds_adata <- function(object, what, assay = NULL, layer = NULL, emb = NULL, obs = NULL, cells = NULL,
                      var = NULL, loadings = NULL) {
  cells <- cells %||% colnames(object)
  if (!is.null(obs)) obs <- obs[cells, , drop = FALSE]
  if (!is.null(layer)) {
    m <- .assay_matrix(object[[assay]], layer = layer, what = paste0(what, "[[\"", assay, "\"]]"))
    m <- m[, cells, drop = FALSE]
    spec <- .dgc_to_py(m, obs = obs, var = var)
  } else {
    features <- if (is.null(loadings)) character() else rownames(loadings)
    spec <- reticulate::dict(kind = "adata", obs_names = reticulate::r_to_py(array(cells)),
                             var_names = reticulate::r_to_py(array(features)), convert = FALSE)
    if (!is.null(obs) && ncol(obs) > 0) reticulate::py_set_item(spec, "obs", .df_to_py(obs))
  }
  if (!is.null(emb)) {
    reticulate::py_set_item(spec, "obsm", reticulate::dict(X_biclum = unname(emb[cells, , drop = FALSE])))
  }
  if (!is.null(loadings)) {
    reticulate::py_set_item(spec, "varm", reticulate::dict(biclum_loadings = unname(loadings)))
  }
  spec
}

.ds_frame <- function(df) {
  df <- as.data.frame(df, stringsAsFactors = FALSE, optional = TRUE)
  .df_to_py(df, index = rownames(df))
}

.ds_strings <- function(x) {
  x <- as.character(x)
  na <- is.na(x)
  x[na] <- ""
  list(kind = "strings", values = array(x), na = array(na))
}

.ds_sets <- function(x, what) {
  if (is.null(names(x)) || any(!nzchar(names(x)))) {
    stop(.input_error(paste0(what, ": a list of gene sets must be named (list(name = c(\"gene1\", ...)))."),
                      "biclum_bad_argument"))
  }
  list(kind = "sets", names = as.list(names(x)),
       values = unname(lapply(x, function(g) array(as.character(g)))))
}

# Gene sets / networks / marker lists: a file path, a data.frame or a named list.
.ds_table_arg <- function(x, what, list_ok = TRUE) {
  if (is.character(x) && length(x) == 1) return(.ds_file(x, what))
  if (is.data.frame(x) || methods::is(x, "DataFrame")) return(.ds_frame(as.data.frame(x)))
  if (list_ok && is.list(x)) return(.ds_sets(x, what))
  stop(.input_error(paste0(what, ": expected a file path, a data.frame", if (list_ok) " or a named list", ", got ",
                           "an object of class ", class(x)[1], "."), "biclum_bad_argument"))
}

# ---------------------------------------------------------------------------------------------------
# the call and Python -> R values
# ---------------------------------------------------------------------------------------------------

.ds_call <- function(fun, args, verbose = FALSE) {
  bridge <- .biclum_bridge()
  res <- bridge$downstream_from_r(fun, reticulate::r_to_py(args), verbose = isTRUE(verbose),
                                  log_fn = if (isTRUE(verbose)) .log_fn() else NULL)
  .from_py(.py_result(res)$value)
}

# 0-based positions from Python -> 1-based R positions
.ds_one_based <- function(df, cols) {
  for (c in intersect(cols, names(df))) df[[c]] <- as.integer(df[[c]] + 1L)
  df
}

# ---------------------------------------------------------------------------------------------------
# matching
# ---------------------------------------------------------------------------------------------------

#' Cross-modal matching and label transfer in the joint BiCLUM embedding
#'
#' Cells of two unpaired modalities are related through their joint embedding (the `DimReduc` that
#' [RunBiCLUM()] stores, `"biclum"` by default), by cosine k-nearest neighbours (exact search). These are
#' the R interfaces of `biclum.downstream.match_cells()`, `transfer_labels()`, `assign_metacells()` and
#' `aggregate_metacells()` (Python).
#'
#' * `MatchCells()`: the `k` nearest `reference` cells of every `query` cell.
#' * `TransferLabels()`: labels of `reference` (a `meta.data` column) transferred to `query` by a
#'   (similarity-weighted) kNN vote; returns `query` with two new `meta.data` columns (the label and the
#'   share of the vote it got). The input object is not modified.
#' * `MatchedMetacells()`: matched metacells of the two modalities: `n_metacells` k-means anchors of the
#'   joint embedding, each collecting its `k` nearest cells of each modality, whose values (`layer`,
#'   raw counts by default) are summed and log-normalised (counts per 10,000, log1p) per metacell.
#'
#' Cells whose embedding is `NA` (cells `RunBiCLUM()` could not use) are left out with a warning
#' (`TransferLabels()` gives them `NA`).
#'
#' @param query,reference Seurat objects holding the joint embedding (e.g. `res$other` and `res$rna` of
#'   `res <- RunBiCLUM(...)`).
#' @param reduction Name of the joint embedding (`DimReduc`) in `query` / `rna`.
#' @param reference.reduction,other.reduction Name of the joint embedding in `reference` / `other`.
#' @param k Number of neighbours (`MatchCells()`, `TransferLabels()`); cells per modality in each metacell
#'   (`MatchedMetacells()`).
#' @param label Name of the `meta.data` column of `reference` holding the labels.
#' @param weighted Weight the votes by cosine similarity (clipped at 0) instead of one vote per neighbour.
#' @param col.name Name of the new `meta.data` column with the predicted labels; the vote share goes to
#'   `paste0(col.name, ".score")`.
#' @param verbose Show the Python core's log messages as R messages.
#' @return `MatchCells()`: a data.frame with one row per (query cell, neighbour): `query`, `reference` (cell
#'   names), `rank` (1 = nearest) and `similarity` (cosine). `TransferLabels()`: `query` with the new
#'   columns. `MatchedMetacells()`: a list with `rna` and `other` (features x metacells `dgCMatrix` of the
#'   aggregated values), `n_cells` (cells per metacell) and `membership` (data.frame `metacell`, `modality`,
#'   `cell`, `index` (1-based column of the cell in its object, among the cells with an embedding), `rank`
#'   (1 = nearest the anchor), `similarity`).
#' @seealso [RunBiCLUM()], [GenePeakLinks()], [CrossModalMarkers()].
#' @examples
#' \donttest{
#' if (biclum_available(initialize = FALSE)) {
#'   bc <- reticulate::import("biclum.datasets")
#'   sim <- bc$simulate(n_cells = 200L, modality = "protein", seed = 0L)
#'   rna <- anndata_to_seurat(sim[[1]])
#'   adt <- anndata_to_seurat(sim[[2]], assay = "ADT")
#'   res <- RunBiCLUM(rna, adt, modality = "protein", max_epochs = 2, verbose = FALSE, batch_size = 128)
#'   head(MatchCells(res$other, res$rna, k = 5))
#'   adt <- TransferLabels(res$other, res$rna, label = "cell_type")
#'   table(adt$predicted.cell_type, adt$cell_type)
#' }
#' }
#' @name biclum-matching
NULL

.ds_embedding_side <- function(object, what, reduction, arg, obs = NULL) {
  .ds_check_seurat(object, what)
  emb <- .ds_reduction(object, reduction, what, arg)
  keep <- .ds_keep_cells(emb, what)
  list(emb = emb, cells = colnames(object)[keep], keep = keep,
       spec = .ds_adata(object, what, emb = emb, obs = obs, cells = colnames(object)[keep]))
}

#' @rdname biclum-matching
#' @export
MatchCells <- function(query, reference, reduction = "biclum", reference.reduction = reduction, k = 10L,
                       verbose = FALSE) {
  k <- .ds_int(k, "k")
  q <- .ds_embedding_side(query, "query", reduction, "reduction")
  r <- .ds_embedding_side(reference, "reference", reference.reduction, "reference.reduction")
  out <- .ds_call("match_cells", list(query = q$spec, reference = r$spec, use_rep = "X_biclum", k = k),
                  verbose = verbose)
  .ds_one_based(out, "rank")
}

#' @rdname biclum-matching
#' @export
TransferLabels <- function(query, reference, label, reduction = "biclum", reference.reduction = reduction,
                           k = 15L, weighted = TRUE, col.name = paste0("predicted.", label), verbose = FALSE) {
  k <- .ds_int(k, "k")
  .ds_check_seurat(reference, "reference")
  obs <- .ds_meta_column(reference, label, "reference", "label")
  q <- .ds_embedding_side(query, "query", reduction, "reduction")
  r <- .ds_embedding_side(reference, "reference", reference.reduction, "reference.reduction", obs = obs)
  out <- .ds_call("transfer_labels", list(query = q$spec, reference = r$spec, label_key = label,
                                          use_rep = "X_biclum", k = k, weighted = isTRUE(weighted)),
                  verbose = verbose)
  pred <- stats::setNames(rep(NA_character_, ncol(query)), colnames(query))
  score <- stats::setNames(rep(NA_real_, ncol(query)), colnames(query))
  cells <- rownames(out) %||% q$cells
  pred[cells] <- as.character(out$label)
  score[cells] <- out$confidence
  md <- data.frame(pred, score, row.names = colnames(query), stringsAsFactors = FALSE)
  SeuratObject::AddMetaData(query, metadata = md, col.name = c(col.name, paste0(col.name, ".score")))
}

#' @rdname biclum-matching
#' @param rna,other Seurat objects of the two modalities with the joint embedding and the values to
#'   aggregate (`other` may be in peak space).
#' @param rna.assay,other.assay Assays holding the values (default: the default assays; for an ATAC `other`
#'   whose default is the gene-activity assay of [RunBiCLUM()], its peak assay).
#' @param layer Layer (v5) or slot (v4) of the values; raw counts are best.
#' @param n_metacells Number of metacells (`NULL`: `min(500, max(2, n %/% 20))`, `n` the smaller cell count).
#' @param normalize `"auto"` (raw counts are summed and log-normalised; other data are averaged),
#'   `"log1p"` or `NULL` (average the values as given).
#' @param seed Random seed (anchors).
#' @export
MatchedMetacells <- function(rna, other, reduction = "biclum", other.reduction = reduction, rna.assay = NULL,
                             other.assay = NULL, layer = "counts", n_metacells = NULL, k = 50L,
                             normalize = "auto", seed = 0L, verbose = FALSE) {
  k <- .ds_int(k, "k")
  n_metacells <- .ds_int(n_metacells, "n_metacells", null_ok = TRUE)
  sides <- .ds_paired_sides(rna, other, reduction, other.reduction, rna.assay, other.assay, layer)
  mem <- .ds_call("assign_metacells", list(rna = sides$rna, other = sides$other, use_rep = "X_biclum",
                                           n_metacells = n_metacells, k = k, seed = as.integer(seed)),
                  verbose = verbose)
  mem_py <- .ds_frame(mem)
  agg <- lapply(c(rna = "rna", other = "other"), function(side) {
    .ds_call("aggregate_metacells", list(adata = sides[[side]], membership = mem_py, modality = side,
                                         normalize = normalize, name = side), verbose = verbose)
  })
  list(rna = agg$rna$counts, other = agg$other$counts,
       n_cells = stats::setNames(agg$rna$obs$n_cells, rownames(agg$rna$obs)),
       membership = .ds_one_based(mem, c("index", "rank")))
}

# Both sides with values and embeddings (cells with an embedding only).
.ds_paired_sides <- function(rna, other, reduction, other.reduction, rna.assay, other.assay, layer,
                             other.var = NULL, other.what = "other") {
  .ds_check_seurat(rna, "rna")
  .ds_check_seurat(other, other.what)
  rna.assay <- .ds_assay(rna, rna.assay, "rna", "rna.assay")
  other.assay <- .ds_assay(other, other.assay, other.what, paste0(other.what, ".assay"), peaks = TRUE)
  e_rna <- .ds_reduction(rna, reduction, "rna", "reduction")
  e_oth <- .ds_reduction(other, other.reduction, other.what, paste0(other.what, ".reduction"))
  k_rna <- .ds_keep_cells(e_rna, "rna")
  k_oth <- .ds_keep_cells(e_oth, other.what)
  var <- if (is.function(other.var)) other.var(other.assay) else other.var
  stats::setNames(list(
    .ds_adata(rna, "rna", assay = rna.assay, layer = layer, emb = e_rna, cells = colnames(rna)[k_rna]),
    .ds_adata(other, other.what, assay = other.assay, layer = layer, emb = e_oth, var = var,
              cells = colnames(other)[k_oth])),
    c("rna", "other"))
}

# ---------------------------------------------------------------------------------------------------
# gene-peak links
# ---------------------------------------------------------------------------------------------------

#' Gene-peak links over matched metacells, against a distance-matched control
#'
#' R interface of `biclum.downstream.matched_metacells()`, `gene_peak_links()` and `links_vs_control()`
#' (Python). On unpaired RNA and ATAC data integrated by [RunBiCLUM()], matched metacells
#' ([MatchedMetacells()]) pair the two modalities; every gene is correlated (over metacells) with every
#' peak whose centre lies within `window` bp of its TSS ("nearby" pairs), and each nearby pair gets
#' `n_control` control pairs: the same gene with a random peak on another chromosome, at the same distance
#' bin from its own nearest TSS and of similar accessibility. `summary` compares nearby with control
#' correlations (one-sided Mann-Whitney U, rank-biserial effect size) overall and per distance bin.
#'
#' Peak coordinates come from a Signac `ChromatinAssay`'s ranges or from peak names `chrN-start-end`.
#'
#' @param rna,atac Seurat objects (RNA counts; ATAC peak counts) with the joint embedding, e.g. `res$rna`
#'   and `res$other` of `res <- RunBiCLUM(rna, atac, modality = "atac", ...)`.
#' @param annotation Gene annotation: a `GRanges` with a `gene_name` column, a data.frame (`gene_name`,
#'   `chrom`, `start`, `end`, `strand`; 1-based) or the path of such a table; `NULL`: the annotation of a
#'   Signac `ChromatinAssay`. Read in Python as by [RunBiCLUM()].
#' @param reduction,atac.reduction Names of the joint embedding in `rna` and `atac`.
#' @param rna.assay,atac.assay Assays of RNA counts and of peak counts (default: the default assays; for `atac`,
#'   its peak assay when the default is the gene-activity assay of [RunBiCLUM()]).
#' @param layer Layer (v5) or slot (v4) of raw counts.
#' @param window Maximum distance (bp) between a peak centre and the TSS for a nearby pair.
#' @param method `"pearson"` or `"spearman"`.
#' @param n_control Control pairs per nearby pair.
#' @param n_metacells,k Number of matched metacells and cells per modality in each (see
#'   [MatchedMetacells()]).
#' @param distance_bins Left edges of the distance bins (bp).
#' @param n_accessibility_bins Quantile bins of peak accessibility used to match controls.
#' @param min_mean Genes and peaks with a mean over metacells at or below this are left out.
#' @param seed Random seed (metacell anchors and control sampling).
#' @param verbose Show the Python core's log messages as R messages.
#' @return A list: `links` (data.frame, one row per pair: `pair_type` `"nearby"`/`"control"`, `gene`,
#'   `peak`, `distance`, `distance_bin`, `correlation`, `pval` and `fdr` (nearby pairs, empirical against
#'   the same-bin controls), `matched_to`), `summary` (data.frame, one row for all pairs and one per
#'   distance bin: counts, medians, `median_difference`, `U`, `z`, `pval`, `rank_biserial`) and
#'   `membership` (the metacells, as in [MatchedMetacells()]).
#' @seealso [MatchedMetacells()], [RunBiCLUM()].
#' @examples
#' \donttest{
#' if (biclum_available(initialize = FALSE)) {
#'   bc <- reticulate::import("biclum.datasets", convert = FALSE)
#'   sim <- bc$simulate(n_cells = 300L, modality = "atac", seed = 0L)
#'   rna <- anndata_to_seurat(reticulate::py_get_item(sim, 0L))
#'   atac <- anndata_to_seurat(reticulate::py_get_item(sim, 1L), assay = "peaks")
#'   ann <- tempfile(fileext = ".tsv") # a gene table; a data.frame or GRanges works too
#'   invisible(reticulate::py_get_item(sim, 2L)$to_csv(ann, sep = "\t", index = FALSE))
#'   res <- RunBiCLUM(rna, atac, modality = "atac", annotation = ann, max_epochs = 2, verbose = FALSE,
#'                    batch_size = 128)
#'   links <- GenePeakLinks(res$rna, res$other, annotation = ann, n_metacells = 20, k = 20)
#'   links$summary
#' }
#' }
#' @export
GenePeakLinks <- function(rna, atac, annotation = NULL, reduction = "biclum", atac.reduction = reduction,
                          rna.assay = NULL, atac.assay = NULL, layer = "counts", window = 1e5,
                          method = c("pearson", "spearman"), n_control = 5L, n_metacells = NULL, k = 50L,
                          distance_bins = c(0, 2000, 5000, 10000, 20000, 50000), n_accessibility_bins = 5L,
                          min_mean = 0, seed = 0L, verbose = FALSE) {
  method <- .ds_choice(method, c("pearson", "spearman"), "method")
  window <- .ds_int(window, "window")
  k <- .ds_int(k, "k")
  n_control <- .ds_int(n_control, "n_control")
  n_metacells <- .ds_int(n_metacells, "n_metacells", null_ok = TRUE)
  .ds_check_seurat(atac, "atac")
  ann_assay <- NULL
  coords <- function(assay) {
    a <- atac[[assay]]
    ann_assay <<- .assay_annotation(a)
    .atac_var(rownames(a), .assay_coords(a, rownames(a)), FALSE, "atac")
  }
  sides <- .ds_paired_sides(rna, atac, reduction, atac.reduction, rna.assay, atac.assay, layer,
                            other.var = coords, other.what = "atac")
  annotation <- annotation %||% ann_assay
  if (is.null(annotation)) {
    stop(.input_error(paste0("annotation: GenePeakLinks() needs a gene annotation (gene TSS positions); give a ",
                             "GRanges, a data.frame (gene_name, chrom, start, end, strand) or a file path, or use ",
                             "a Signac ChromatinAssay that holds one."), "biclum_bad_annotation"))
  }
  ann <- .annotation_arg(annotation)
  out <- .ds_call("links_from_cells", list(
    rna = sides$rna, atac = sides$other, annotation = ann, use_rep = "X_biclum", n_metacells = n_metacells,
    k = k, seed = as.integer(seed), window = window, method = method, n_control = n_control,
    distance_bins = as.list(as.integer(distance_bins)), n_accessibility_bins = as.integer(n_accessibility_bins),
    min_mean = as.numeric(min_mean)), verbose = verbose)
  out$links <- .ds_one_based(out$links, "matched_to")
  out$links$matched_to[out$links$pair_type == "nearby"] <- NA_integer_
  out$membership <- .ds_one_based(out$membership, c("index", "rank"))
  out
}

#' Gene activity of ATAC peaks as a new assay
#'
#' R interface of `biclum.prior.gene_activity()` (Python): the peak counts of `atac` summed per gene
#' (gene body plus `upstream` bp by default, as Signac's `GeneActivity()`; or the promoter; or
#' distance-weighted, ArchR-like), stored as the counts of a new assay. Use it to run the gene-level
#' analyses ([FindBiCLUMMarkers()], [CrossModalMarkers()], [TFActivity()], [LigandReceptor()]) on the
#' ATAC side.
#'
#' @param atac A Seurat object with peak counts (peaks named `chrN-start-end` or a Signac
#'   `ChromatinAssay` with ranges).
#' @param annotation Gene annotation (see [GenePeakLinks()]); `NULL`: that of a Signac `ChromatinAssay`.
#' @param assay Assay of peak counts (default: the default assay, or the peak assay when that is the
#'   gene-activity assay [RunBiCLUM()] made the default).
#' @param layer Layer (v5) or slot (v4) of the peak counts.
#' @param new.assay.name Name of the new assay.
#' @param mode `"gene_body"`, `"promoter"` or `"distance_weighted"`.
#' @param upstream,downstream Window extension in bp (strand-aware).
#' @param verbose Show the Python core's log messages as R messages.
#' @param ... Further arguments of `biclum.prior.gene_activity()` (e.g. `decay`, `max_distance`).
#' @return `atac` with the new assay (genes x cells counts); the input is not modified.
#' @export
BiCLUMGeneActivity <- function(atac, annotation = NULL, assay = NULL, layer = "counts",
                               new.assay.name = "ACTIVITY", mode = c("gene_body", "promoter", "distance_weighted"),
                               upstream = 2000L, downstream = 0L, verbose = FALSE, ...) {
  .ds_check_seurat(atac, "atac")
  mode <- .ds_choice(mode, c("gene_body", "promoter", "distance_weighted"), "mode")
  assay <- .ds_assay(atac, assay, "atac", "assay", peaks = TRUE)
  if (new.assay.name %in% SeuratObject::Assays(atac)) {
    stop(.input_error(paste0("atac: the Seurat object already has an assay '", new.assay.name, "'; choose another ",
                             "new.assay.name."), "biclum_assay_exists"))
  }
  m <- .gene_activity_counts(atac, assay, annotation %||% .assay_annotation(atac[[assay]]), layer, mode = mode,
                             upstream = upstream, downstream = downstream, verbose = verbose, ...)
  atac[[new.assay.name]] <- .new_assay(m, atac[[assay]], normalize = FALSE)
  atac
}

# Gene activity counts (genes x every cell of `atac`) of the peaks of `atac[[assay]]`: biclum.prior.gene_activity,
# with the mode RunBiCLUM's model used (`.activity_mode`) when RunBiCLUM calls it.
.gene_activity_counts <- function(atac, assay, annotation, layer, verbose = FALSE, ...) {
  a <- atac[[assay]]
  var <- .atac_var(rownames(a), .assay_coords(a, rownames(a)), FALSE, "atac")
  if (is.null(annotation)) {
    stop(.input_error("annotation: the gene activity needs a gene annotation; give a GRanges, a data.frame or a file path.",
                      "biclum_bad_annotation"))
  }
  ann <- .annotation_arg(annotation)
  spec <- .ds_adata(atac, "atac", assay = assay, layer = layer, var = var)
  m <- .ds_call("gene_activity", c(list(atac = spec, annotation = ann), list(...)), verbose = verbose)$counts
  if (identical(colnames(m), colnames(atac))) return(m)
  full <- Matrix::sparseMatrix(i = integer(), j = integer(), x = numeric(), dims = c(nrow(m), ncol(atac)),
                               dimnames = list(rownames(m), colnames(atac)))
  full[, colnames(m)] <- m
  full
}

# SeuratObject 5 warns "No layers found matching search pattern provided" for data-only assays (no counts layer),
# which is the point of them: that warning is muffled, no other.
.no_layer_warning <- function(expr) {
  withCallingHandlers(expr, warning = function(w) {
    if (grepl("No layers found", conditionMessage(w), fixed = TRUE)) invokeRestart("muffleWarning")
  })
}

# A new assay (v5 Assay5 next to a v5 assay `like`, else a v4 Assay) of `counts` (data: the counts, or with
# `normalize` log1p(counts per 10,000) as Seurat's LogNormalize), or of `data` only.
.new_assay <- function(counts, like, normalize = FALSE, data = NULL) {
  if (is.null(data)) data <- counts
  if (normalize) {
    total <- Matrix::colSums(counts)
    total[total == 0] <- 1
    data@x <- log1p(data@x / rep.int(total, diff(data@p)) * 1e4)
  }
  if (inherits(like, "StdAssay")) {
    create <- .so_fun("CreateAssay5Object")
    if (!is.null(counts)) return(create(counts = counts, data = data))
    return(.no_layer_warning(create(data = .as_dgc(data))))
  }
  if (is.null(counts)) return(SeuratObject::CreateAssayObject(data = data))
  a <- SeuratObject::CreateAssayObject(counts = counts)
  if (!normalize) return(a)
  .set_assay_layer(a, "data", data)
}

# An assay's layer (v5) or slot (v4) set to `m`.
.set_assay_layer <- function(a, layer, m) {
  if (inherits(a, "StdAssay")) return(.so_fun("LayerData<-")(a, layer = layer, value = m))
  if (.seurat_v5()) SeuratObject::SetAssayData(a, layer = layer, new.data = m)
  else SeuratObject::SetAssayData(a, slot = layer, new.data = m)
}

# `a` with scale.data for `genes`: their log-normalised values (data) centred and scaled per gene, clipped at 10, as
# Seurat::ScaleData() does; Seurat::DimHeatmap() and ProjectDim() find the genes of the loadings there, as after
# RunPCA(). Dense, genes x cells, like ScaleData's.
.with_scale_data <- function(a, genes) {
  data <- if (inherits(a, "StdAssay")) .so_fun("LayerData")(a, layer = "data")
          else if (.seurat_v5()) SeuratObject::GetAssayData(a, layer = "data")
          else SeuratObject::GetAssayData(a, slot = "data")
  genes <- intersect(genes, rownames(data))
  if (!length(genes) || ncol(data) < 2) return(a)
  m <- as.matrix(data[genes, , drop = FALSE])
  mu <- rowMeans(m)
  s <- sqrt(rowSums((m - mu)^2) / (ncol(m) - 1))
  s[!is.finite(s) | s == 0] <- 1
  z <- (m - mu) / s
  z[z > 10] <- 10
  .set_assay_layer(a, "scale.data", z)
}

# ---------------------------------------------------------------------------------------------------
# TF activity
# ---------------------------------------------------------------------------------------------------

#' Transcription-factor activity from a TF -> target network
#'
#' R interface of `biclum.downstream.tf_activity()` and `compare_tf_activity()` (Python). Per-cell TF
#' activity is the t-value of a univariate linear model of the cell's gene values on the TF's target
#' weights (`"ulm"`, as decoupler) or a weighted mean of its targets (`"wmean"`, optionally z-scored
#' against `n_perm` gene permutations). Compute it on RNA and on the ATAC gene activity
#' ([BiCLUMGeneActivity()]) and compare the two per cell type with `CompareTFActivity()`: both are
#' z-scored per TF, averaged per cell type, and correlated across cell types.
#'
#' @param object A Seurat object with gene-level values (RNA counts, gene activity).
#' @param network The TF -> target network: a data.frame (`source`, `target`, `weight`; `tf`/`gene`/`mor`
#'   also recognised), a named list (`list(TF = c(targets))`, weights 1), or the path of a table (tsv/csv)
#'   or of a GMT file. [biclum_example()] gives small illustrative networks.
#' @param assay Assay (default: the default assay).
#' @param layer Layer (v5) or slot (v4); raw counts are log-normalised (counts per 10,000, log1p) when
#'   `normalize = "auto"`.
#' @param method `"ulm"` or `"wmean"`.
#' @param normalize `"auto"`, `"log1p"` or `NULL` (values as given).
#' @param min_targets TFs with fewer measured targets are skipped.
#' @param n_perm `"wmean"` only: permutations for the z-score (0: plain weighted mean).
#' @param seed Random seed (permutations).
#' @param new.assay.name `NULL`: return the activities as a data.frame (cells x TFs). A name: return
#'   `object` with a new assay of that name holding the activities (TFs x cells, in the data slot/layer).
#' @param verbose Show the Python core's log messages as R messages.
#' @return `TFActivity()`: a data.frame (cells x TFs) or `object` with the new assay.
#'   `CompareTFActivity()`: a data.frame, one row per TF (row names): `pearson_r`, `spearman_r` (across
#'   cell types), `top_<names[1]>`, `top_<names[2]>` (cell type with the highest mean), `n_types`, `agree`;
#'   the per-type means are its attribute `"by_group"` (a list of two data.frames, cell types x TFs).
#' @examples
#' \donttest{
#' if (biclum_available(initialize = FALSE)) {
#'   bc <- reticulate::import("biclum.datasets")
#'   sim <- bc$simulate(n_cells = 200L, modality = "protein", seed = 0L)
#'   rna <- anndata_to_seurat(sim[[1]])
#'   genes <- rownames(rna)
#'   net <- data.frame(source = rep(c("TF1", "TF2"), each = 20), target = genes[1:40], weight = 1)
#'   act <- TFActivity(rna, net)
#'   cmp <- CompareTFActivity(act, act, labels = rna$cell_type, other.labels = rna$cell_type)
#' }
#' }
#' @export
TFActivity <- function(object, network, assay = NULL, layer = "counts", method = c("ulm", "wmean"),
                       normalize = "auto", min_targets = 5L, n_perm = 0L, seed = 0L, new.assay.name = NULL,
                       verbose = FALSE) {
  .ds_check_seurat(object, "object")
  method <- .ds_choice(method, c("ulm", "wmean"), "method")
  assay <- .ds_assay(object, assay, "object", "assay")
  net <- .ds_table_arg(network, "network")
  spec <- .ds_adata(object, "object", assay = assay, layer = layer)
  act <- .ds_call("tf_activity", list(adata = spec, network = net, method = method, normalize = normalize,
                                      min_targets = .ds_int(min_targets, "min_targets"),
                                      n_perm = .ds_int(n_perm, "n_perm", min = 0), seed = as.integer(seed)),
                  verbose = verbose)
  if (is.null(new.assay.name)) return(act)
  if (new.assay.name %in% SeuratObject::Assays(object)) {
    stop(.input_error(paste0("object: the Seurat object already has an assay '", new.assay.name, "'; choose ",
                             "another new.assay.name."), "biclum_assay_exists"))
  }
  m <- t(as.matrix(act))
  .no_layer_warning({
    object[[new.assay.name]] <- .new_assay(NULL, object[[assay]], data = m)
    object
  })
}

# Activities (cells x TFs data.frame) and labels of one side of CompareTFActivity().
.ds_activity <- function(x, labels, assay, what) {
  if (inherits(x, "Seurat")) {
    assay <- .ds_assay(x, assay, what, if (what == "activity") "assay" else "other.assay")
    a <- x[[assay]]
    m <- if (.seurat_v5()) SeuratObject::GetAssayData(a, layer = "data") else SeuratObject::GetAssayData(a, slot = "data")
    act <- as.data.frame(t(as.matrix(m)), optional = TRUE)
    if (is.character(labels) && length(labels) == 1) {
      labels <- .ds_meta_column(x, labels, what, if (what == "activity") "labels" else "other.labels")[[1]]
    }
  } else if (is.data.frame(x) || is.matrix(x)) {
    act <- as.data.frame(x, optional = TRUE)
  } else {
    stop(.input_error(paste0(what, ": expected the output of TFActivity() (a data.frame, cells x TFs) or a Seurat ",
                             "object with a TF activity assay, got an object of class ", class(x)[1], "."),
                      "biclum_bad_argument"))
  }
  if (length(labels) != nrow(act)) {
    stop(.input_error(paste0(what, ": ", length(labels), " labels for ", nrow(act), " cells; give one label per ",
                             "cell (e.g. object$cell_type)."), "biclum_bad_argument"))
  }
  if (is.null(rownames(act))) rownames(act) <- as.character(seq_len(nrow(act)))
  list(act = .ds_frame(act), labels = .ds_strings(labels))
}

#' @rdname TFActivity
#' @param activity,other.activity The activities of the two modalities: data.frames from `TFActivity()`
#'   (cells x TFs) or Seurat objects with a TF activity assay (`assay`, `other.assay`).
#' @param labels,other.labels Cell types: one per cell (vectors), or with Seurat objects the name of a
#'   `meta.data` column.
#' @param other.assay The TF activity assay of `other.activity` (Seurat input).
#' @param names Names of the two modalities (used in the column names).
#' @export
CompareTFActivity <- function(activity, other.activity, labels, other.labels = labels, assay = NULL,
                              other.assay = assay, names = c("rna", "other")) {
  a <- .ds_activity(activity, labels, assay, "activity")
  b <- .ds_activity(other.activity, other.labels, other.assay, "other.activity")
  .ds_call("compare_tf_activity", list(activity_a = a$act, labels_a = a$labels, activity_b = b$act,
                                       labels_b = b$labels, names = as.list(as.character(names[1:2]))))
}

# ---------------------------------------------------------------------------------------------------
# markers
# ---------------------------------------------------------------------------------------------------

#' Marker genes per cell type, on each modality and from the feature embeddings
#'
#' R interfaces of `biclum.downstream.find_markers()`, `cross_modal_markers()`, `embedding_markers()`,
#' `top_markers()` and `marker_overlap()` (Python).
#'
#' * `FindBiCLUMMarkers()`: one group against all other cells, Wilcoxon rank-sum (tie-corrected normal
#'   approximation, as scanpy) or Welch t-test; raw counts are log-normalised first (`normalize = "auto"`).
#' * `CrossModalMarkers()`: markers on both modalities; when `other.group.by` is `NULL` the labels of
#'   `other` are transferred from `rna` through the joint embedding ([TransferLabels()]). `other` must be
#'   gene-level (proteins, or ATAC gene activity from [BiCLUMGeneActivity()]).
#' * `EmbeddingMarkers()`: genes whose BiCLUM feature embedding (the `DimReduc`'s loadings) is most
#'   similar (cosine) to the cell type's centroid in the joint cell embedding.
#' * `TopMarkers()`: the best `n_top` genes per group of a marker table.
#' * `MarkerOverlap()`: overlap of two marker lists per group (e.g. ATAC side vs RNA side) against random
#'   gene sets of the same size (hypergeometric null).
#'
#' @param object A Seurat object.
#' @param group.by Name of the `meta.data` column holding the cell types (cells with `NA` are ignored).
#' @param assay Assay (default: the default assay).
#' @param layer Layer (v5) or slot (v4) of the values.
#' @param method `"wilcoxon"` or `"t-test"`.
#' @param normalize `"auto"` (raw counts -> log1p of counts per 10,000; other data as given), `"log1p"`,
#'   `"clr"` (proteins) or `NULL`.
#' @param groups Only these groups (default: all with at least `min_cells` cells).
#' @param min_cells Smallest group tested.
#' @param verbose Show the Python core's log messages as R messages.
#' @return `FindBiCLUMMarkers()`: a data.frame sorted by group and decreasing score: `group`, `gene`,
#'   `score` (z or t), `logfoldchange`, `pval`, `padj` (BH within the group), `auc`, `pct_group`,
#'   `pct_rest`, `mean_group`, `mean_rest`, `rank` (1 = best). `CrossModalMarkers()`: both tables with a
#'   `modality` column (`"rna"`, `"other"`) and the labels used for `other` as attribute `"other_labels"`.
#'   `EmbeddingMarkers()`: `group`, `gene`, `similarity`, `specificity`, `rank`. `TopMarkers()`: a named
#'   list of gene vectors. `MarkerOverlap()`: one row per shared group and a row `"all"`: `size_a`, `size_b`,
#'   `universe`, `overlap`, `expected`, `null_q95`, `fold`, `jaccard`, `pval_perm`, `pval_hypergeom`.
#' @examples
#' \donttest{
#' if (biclum_available(initialize = FALSE)) {
#'   bc <- reticulate::import("biclum.datasets")
#'   sim <- bc$simulate(n_cells = 200L, modality = "protein", seed = 0L)
#'   rna <- anndata_to_seurat(sim[[1]])
#'   adt <- anndata_to_seurat(sim[[2]], assay = "ADT")
#'   res <- RunBiCLUM(rna, adt, modality = "protein", max_epochs = 2, verbose = FALSE, batch_size = 128)
#'   m <- FindBiCLUMMarkers(res$rna, group.by = "cell_type")
#'   e <- EmbeddingMarkers(res$rna, group.by = "cell_type")
#'   MarkerOverlap(m, e, n_top = 50)
#' }
#' }
#' @name biclum-markers
NULL

#' @rdname biclum-markers
#' @export
FindBiCLUMMarkers <- function(object, group.by, assay = NULL, layer = "counts",
                              method = c("wilcoxon", "t-test"), normalize = "auto", groups = NULL,
                              min_cells = 3L, verbose = FALSE) {
  .ds_check_seurat(object, "object")
  method <- .ds_choice(method, c("wilcoxon", "t-test"), "method")
  assay <- .ds_assay(object, assay, "object", "assay")
  obs <- .ds_meta_column(object, group.by, "object", "group.by")
  spec <- .ds_adata(object, "object", assay = assay, layer = layer, obs = obs)
  out <- .ds_call("find_markers", list(adata = spec, groupby = group.by, method = method, normalize = normalize,
                                       groups = if (is.null(groups)) NULL else .ds_strings(groups),
                                       min_cells = .ds_int(min_cells, "min_cells")), verbose = verbose)
  .ds_one_based(out, "rank")
}

#' @rdname biclum-markers
#' @param rna,other Seurat objects of the two modalities (gene-level values) with the joint embedding.
#' @param other.group.by `meta.data` column of `other` with its cell types; `NULL`: transferred from `rna`.
#' @param reduction,other.reduction Names of the joint embedding in `rna` / `object` and `other`.
#' @param rna.assay,other.assay Assays of the two objects (default: the default assays).
#' @param other.layer Layer of `other`.
#' @param k Neighbours of the label transfer.
#' @export
CrossModalMarkers <- function(rna, other, group.by, other.group.by = NULL, reduction = "biclum",
                              other.reduction = reduction, rna.assay = NULL, other.assay = NULL, layer = "counts",
                              other.layer = layer, k = 15L, method = c("wilcoxon", "t-test"), normalize = "auto",
                              verbose = FALSE) {
  method <- .ds_choice(method, c("wilcoxon", "t-test"), "method")
  k <- .ds_int(k, "k")
  .ds_check_seurat(rna, "rna")
  .ds_check_seurat(other, "other")
  rna.assay <- .ds_assay(rna, rna.assay, "rna", "rna.assay")
  other.assay <- .ds_assay(other, other.assay, "other", "other.assay")
  obs_rna <- .ds_meta_column(rna, group.by, "rna", "group.by")
  obs_oth <- if (is.null(other.group.by)) NULL else .ds_meta_column(other, other.group.by, "other", "other.group.by")
  e_rna <- .ds_reduction(rna, reduction, "rna", "reduction")
  e_oth <- .ds_reduction(other, other.reduction, "other", "other.reduction")
  c_rna <- colnames(rna)[.ds_keep_cells(e_rna, "rna")]
  c_oth <- colnames(other)[.ds_keep_cells(e_oth, "other")]
  out <- .ds_call("cross_modal_markers", list(
    rna = .ds_adata(rna, "rna", assay = rna.assay, layer = layer, emb = e_rna, obs = obs_rna, cells = c_rna),
    other = .ds_adata(other, "other", assay = other.assay, layer = other.layer, emb = e_oth, obs = obs_oth,
                      cells = c_oth),
    groupby = group.by, other_groupby = other.group.by, use_rep = "X_biclum", k = k, method = method,
    normalize = normalize), verbose = verbose)
  lab <- attr(out, "other_labels")
  if (is.data.frame(lab)) attr(out, "other_labels") <- stats::setNames(as.character(lab[[1]]), rownames(lab))
  .ds_one_based(out, "rank")
}

#' @rdname biclum-markers
#' @param center Subtract the mean embedding of all cells from the cell-type centroids.
#' @export
EmbeddingMarkers <- function(object, group.by, reduction = "biclum", center = TRUE, verbose = FALSE) {
  .ds_check_seurat(object, "object")
  obs <- .ds_meta_column(object, group.by, "object", "group.by")
  emb <- .ds_reduction(object, reduction, "object", "reduction")
  load <- SeuratObject::Loadings(object, reduction = reduction)
  if (!length(load) || nrow(load) == 0) {
    stop(.input_error(paste0("object: the reduction '", reduction, "' has no feature loadings; EmbeddingMarkers() ",
                             "needs the gene embeddings that RunBiCLUM() stores."), "biclum_no_loadings"))
  }
  keep <- .ds_keep_cells(emb, "object")
  spec <- .ds_adata(object, "object", emb = emb, obs = obs, cells = colnames(object)[keep], loadings = load)
  out <- .ds_call("embedding_markers", list(adata = spec, groupby = group.by, use_rep = "X_biclum",
                                            varm_key = "biclum_loadings", center = isTRUE(center)),
                  verbose = verbose)
  .ds_one_based(out, "rank")
}

.ds_markers_arg <- function(x, what) {
  if (is.data.frame(x)) {
    if (!all(c("group", "gene") %in% names(x))) {
      stop(.input_error(paste0(what, ": the marker table needs columns group and gene (the output of ",
                               "FindBiCLUMMarkers() or EmbeddingMarkers()); it has ", paste(names(x), collapse = ", "),
                               "."), "biclum_bad_argument"))
    }
    return(.ds_frame(x))
  }
  if (is.list(x)) return(.ds_sets(x, what))
  stop(.input_error(paste0(what, ": expected a marker table (data.frame) or a named list of genes, got an object ",
                           "of class ", class(x)[1], "."), "biclum_bad_argument"))
}

#' @rdname biclum-markers
#' @param markers A marker table (`FindBiCLUMMarkers()`, `EmbeddingMarkers()`).
#' @param n_top Genes per group.
#' @param score Column to rank by (default `score`, else `similarity`).
#' @param padj_max,min_logfc Keep only genes with `padj <= padj_max` and `logfoldchange >= min_logfc`.
#' @export
TopMarkers <- function(markers, n_top = 50L, score = NULL, padj_max = NULL, min_logfc = NULL) {
  out <- .ds_call("top_markers", list(markers = .ds_markers_arg(markers, "markers"), n_top = .ds_int(n_top, "n_top"),
                                      score = score, padj_max = padj_max, min_logfc = min_logfc))
  lapply(out, as.character)
}

#' @rdname biclum-markers
#' @param markers.a,markers.b Marker tables or named lists of genes (`list(group = c(genes))`).
#' @param universe Genes both lists could contain (default: genes in both tables; for lists, all their
#'   genes).
#' @param n_null Draws of the random null.
#' @param seed Random seed.
#' @export
MarkerOverlap <- function(markers.a, markers.b, n_top = 50L, universe = NULL, n_null = 10000L, seed = 0L) {
  .ds_call("marker_overlap", list(markers_a = .ds_markers_arg(markers.a, "markers.a"),
                                  markers_b = .ds_markers_arg(markers.b, "markers.b"),
                                  n_top = .ds_int(n_top, "n_top"),
                                  universe = if (is.null(universe)) NULL else .ds_strings(universe),
                                  n_null = .ds_int(n_null, "n_null"), seed = as.integer(seed)))
}

# ---------------------------------------------------------------------------------------------------
# enrichment
# ---------------------------------------------------------------------------------------------------

#' Gene-set enrichment of gene lists and marker tables
#'
#' R interface of `biclum.downstream.enrichment()`, `enrich_markers()` and `read_gmt()` (Python): a
#' one-sided hypergeometric test of each gene list against each gene set within a universe, with
#' Benjamini-Hochberg FDR per list. A marker table ([FindBiCLUMMarkers()], [CrossModalMarkers()]) is cut to
#' its `n_top` best genes per group (and modality), with all its genes as the universe by default.
#'
#' `GOGeneSets()` builds Gene Ontology gene sets (gene symbols) from the Bioconductor annotation packages
#' `org.Hs.eg.db` / `org.Mm.eg.db` (with `GO.db` for term names); they are optional (Suggests) and the
#' function stops with a clear error when they are not installed (Debian: `apt-get install
#' r-bioc-org.hs.eg.db r-bioc-go.db`).
#'
#' @param query A character vector of genes, a named list of such vectors, or a marker table
#'   (data.frame with `group` and `gene` columns).
#' @param gene_sets The gene sets: the path of a GMT file, a named list (`list(term = c(genes))`) or a
#'   data.frame (`term`, `gene`). [biclum_example()] gives small illustrative GMT files.
#' @param universe Background genes (default: for marker tables their genes; otherwise the query and
#'   gene-set genes; pass the measured genes when you can).
#' @param n_top,padj_max Marker tables: genes per group, and an optional adjusted p-value cut.
#' @param min_size,max_size Gene sets with fewer / more genes in the universe are not tested.
#' @param min_overlap Rows with a smaller overlap are left out (they still count in the FDR).
#' @param verbose Show the Python core's log messages as R messages.
#' @return `Enrichment()`: a data.frame sorted by query and p-value: `query`, `term`, `overlap`,
#'   `query_size`, `term_size`, `universe_size`, `expected`, `fold_enrichment`, `pval`, `fdr`, `genes`
#'   (`;`-separated). `ReadGMT()`, `GOGeneSets()`: a named list of gene vectors.
#' @examples
#' sets <- list(A = c("g1", "g2", "g3", "g4"), B = c("g5", "g6", "g7"))
#' if (biclum_available(initialize = FALSE)) {
#'   Enrichment(c("g1", "g2", "g3"), sets, universe = paste0("g", 1:50))
#'   gmt <- ReadGMT(biclum_example("gene_sets_mouse.gmt"))
#' }
#' @export
Enrichment <- function(query, gene_sets, universe = NULL, n_top = 100L, padj_max = NULL, min_size = 3L,
                       max_size = 2000L, min_overlap = 1L, verbose = FALSE) {
  gs <- .ds_table_arg(gene_sets, "gene_sets")
  args <- list(gene_sets = gs, universe = if (is.null(universe)) NULL else .ds_strings(universe),
               min_size = .ds_int(min_size, "min_size", min = 0), max_size = .ds_int(max_size, "max_size"),
               min_overlap = .ds_int(min_overlap, "min_overlap", min = 0))
  if (is.data.frame(query)) {
    .ds_markers_arg(query, "query")
    return(.ds_call("enrich_markers", c(list(markers = .ds_frame(query), n_top = .ds_int(n_top, "n_top"),
                                             padj_max = padj_max), args), verbose = verbose))
  }
  if (is.list(query)) {
    q <- .ds_sets(query, "query")
  } else if (is.character(query) || is.factor(query)) {
    q <- .ds_strings(query[!is.na(query)])
  } else {
    stop(.input_error(paste0("query: expected genes (a character vector), a named list of gene vectors or a marker ",
                             "table, got an object of class ", class(query)[1], "."), "biclum_bad_argument"))
  }
  .ds_call("enrichment", c(list(query = q), args), verbose = verbose)
}

#' @rdname Enrichment
#' @param path Path of a GMT file (`name<TAB>description<TAB>gene ...`; `.gz` allowed).
#' @export
ReadGMT <- function(path) {
  out <- .ds_call("read_gmt", list(path = .ds_file(path, "path")))
  lapply(out, as.character)
}

#' @rdname Enrichment
#' @param species `"human"` (org.Hs.eg.db) or `"mouse"` (org.Mm.eg.db).
#' @param ontology GO ontologies to include (`"BP"`, `"CC"`, `"MF"`).
#' @param genes If given, gene sets are restricted to these genes (e.g. the measured genes) before the
#'   size filter.
#' @param use_names Name the sets `"GO:xxxxxxx <term name>"` (needs GO.db) instead of the GO id.
#' @export
GOGeneSets <- function(species = c("human", "mouse"), ontology = "BP", genes = NULL, min_size = 10L,
                       max_size = 500L, use_names = TRUE) {
  species <- .ds_choice(species, c("human", "mouse"), "species")
  ontology <- toupper(ontology)
  if (!length(ontology) || !all(ontology %in% c("BP", "CC", "MF"))) {
    stop(.input_error("ontology must be one or more of \"BP\", \"CC\", \"MF\".", "biclum_bad_argument"))
  }
  pkg <- if (species == "human") "org.Hs.eg.db" else "org.Mm.eg.db"
  prefix <- if (species == "human") "org.Hs.eg" else "org.Mm.eg"
  need <- c("AnnotationDbi", pkg, if (isTRUE(use_names)) "GO.db")
  missing <- need[!vapply(need, requireNamespace, logical(1), quietly = TRUE)]
  if (length(missing)) {
    stop(structure(class = c("biclum_missing_package", "biclum_error", "error", "condition"), list(
      message = paste0("GOGeneSets() needs the Bioconductor package(s) ", paste(missing, collapse = ", "),
                       ", which are not installed. Install them (Debian: apt-get install ",
                       paste0("r-bioc-", tolower(missing), collapse = " "), "; or BiocManager::install(c(",
                       paste0("\"", missing, "\"", collapse = ", "), "))), or give gene sets as a GMT file or a ",
                       "named list."), call = NULL)))
  }
  db <- getExportedValue(pkg, pkg)
  if (is.null(genes)) { # the whole organism: one table of GO id -> (all) Entrez ids, then symbols
    go2eg <- AnnotationDbi::toTable(getExportedValue(pkg, paste0(prefix, "GO2ALLEGS")))
    go2eg <- go2eg[go2eg$Ontology %in% ontology, c("gene_id", "go_id"), drop = FALSE]
    sym <- AnnotationDbi::toTable(getExportedValue(pkg, paste0(prefix, "SYMBOL")))
    tab <- data.frame(symbol = sym$symbol[match(go2eg$gene_id, sym$gene_id)], go_id = go2eg$go_id,
                      stringsAsFactors = FALSE)
  } else { # only the given genes: a (much faster) query by symbol
    keys <- intersect(unique(as.character(genes)), AnnotationDbi::keys(db, "SYMBOL"))
    if (!length(keys)) {
      stop(.input_error(paste0("genes: none of the ", length(unique(genes)), " genes is a ", species, " gene symbol ",
                               "of ", pkg, " (e.g. ", paste(utils::head(genes, 3), collapse = ", "), "); check the ",
                               "species and that the genes are symbols."), "biclum_bad_argument"))
    }
    sel <- suppressMessages(AnnotationDbi::select(db, keys = keys, keytype = "SYMBOL",
                                                  columns = c("GOALL", "ONTOLOGYALL")))
    sel <- sel[!is.na(sel$GOALL) & sel$ONTOLOGYALL %in% ontology, , drop = FALSE]
    tab <- data.frame(symbol = sel$SYMBOL, go_id = sel$GOALL, stringsAsFactors = FALSE)
  }
  tab <- tab[!is.na(tab$symbol), , drop = FALSE]
  sets <- lapply(split(tab$symbol, tab$go_id), function(g) sort(unique(g)))
  n <- lengths(sets)
  sets <- sets[n >= min_size & n <= max_size]
  if (isTRUE(use_names) && length(sets)) {
    terms <- AnnotationDbi::Term(names(sets))
    names(sets) <- paste(names(sets), unname(terms[names(sets)]))
  }
  sets
}

# ---------------------------------------------------------------------------------------------------
# ligand-receptor interactions
# ---------------------------------------------------------------------------------------------------

#' Ligand-receptor interactions between cell types
#'
#' R interface of `biclum.downstream.ligand_receptor()` (Python): for each ligand-receptor pair, sender
#' and receiver cell type, the score `mean_sender(ligand) * mean_receiver(receptor)` (`"product"`) or
#' their average (`"mean"`, CellPhoneDB), with a label-permutation p-value (`n_perm` permutations) and
#' BH FDR. Receptors can be scored on another modality (`other`, e.g. CITE-seq proteins named by their
#' genes, or ATAC gene activity) with its own (e.g. transferred, [TransferLabels()]) cell types.
#'
#' @param object Seurat object of the ligand side (gene-level values).
#' @param group.by `meta.data` column of `object` with the cell types.
#' @param lr_table Ligand-receptor pairs: a data.frame (`ligand`, `receptor`, other columns kept) or the
#'   path of a tsv/csv table. [biclum_example()] gives small illustrative tables.
#' @param other Seurat object of the receptor side (`NULL`: `object`).
#' @param other.group.by `meta.data` column of `other` with its cell types (default `group.by`).
#' @param assay,other.assay Assays (default: the default assays).
#' @param layer,other.layer Layers (v5) or slots (v4) of the values.
#' @param normalize,other.normalize `"auto"` (raw counts -> log1p of counts per 10,000), `"log1p"`, `"clr"`
#'   (raw ADT counts) or `NULL`.
#' @param score `"product"` or `"mean"`.
#' @param n_perm Label permutations.
#' @param min_frac Smallest fraction of sender cells expressing the ligand and of receiver cells
#'   expressing the receptor for a pair to be tested (others get p = 1).
#' @param seed Random seed.
#' @param verbose Show the Python core's log messages as R messages.
#' @return A data.frame sorted by p-value and decreasing score: `ligand`, `receptor`, `sender`,
#'   `receiver`, `ligand_mean`, `receptor_mean`, `ligand_frac`, `receptor_frac`, `score`, `expressed`,
#'   `pval`, `fdr` and the table's other columns.
#' @examples
#' \donttest{
#' if (biclum_available(initialize = FALSE)) {
#'   bc <- reticulate::import("biclum.datasets")
#'   sim <- bc$simulate(n_cells = 200L, modality = "protein", seed = 0L)
#'   rna <- anndata_to_seurat(sim[[1]])
#'   lr <- data.frame(ligand = rownames(rna)[1:5], receptor = rownames(rna)[6:10])
#'   head(LigandReceptor(rna, group.by = "cell_type", lr_table = lr, n_perm = 100))
#' }
#' }
#' @export
LigandReceptor <- function(object, group.by, lr_table, other = NULL, other.group.by = group.by, assay = NULL,
                           other.assay = NULL, layer = "counts", other.layer = layer, normalize = "auto",
                           other.normalize = normalize, score = c("product", "mean"), n_perm = 1000L,
                           min_frac = 0.05, seed = 0L, verbose = FALSE) {
  .ds_check_seurat(object, "object")
  score <- .ds_choice(score, c("product", "mean"), "score")
  assay <- .ds_assay(object, assay, "object", "assay")
  obs <- .ds_meta_column(object, group.by, "object", "group.by")
  lr <- .ds_table_arg(lr_table, "lr_table", list_ok = FALSE)
  spec <- .ds_adata(object, "object", assay = assay, layer = layer, obs = obs)
  r_spec <- NULL
  if (!is.null(other)) {
    .ds_check_seurat(other, "other")
    other.assay <- .ds_assay(other, other.assay, "other", "other.assay")
    r_obs <- .ds_meta_column(other, other.group.by, "other", "other.group.by")
    r_spec <- .ds_adata(other, "other", assay = other.assay, layer = other.layer, obs = r_obs)
  }
  .ds_call("ligand_receptor", list(
    adata = spec, groupby = group.by, lr_table = lr, receptor_adata = r_spec,
    receptor_groupby = if (is.null(other)) NULL else other.group.by, normalize = normalize,
    receptor_normalize = if (is.null(other)) normalize else other.normalize, score = score,
    n_perm = .ds_int(n_perm, "n_perm", min = 0), min_frac = as.numeric(min_frac), seed = as.integer(seed)),
    verbose = verbose)
}

#' Example tables shipped with the biclum Python package
#'
#' Paths of small illustrative tables for tests and documentation (not curated databases):
#' `"tf_network_mouse.tsv"`, `"tf_network_human.tsv"` (TF -> target, for [TFActivity()]),
#' `"gene_sets_mouse.gmt"`, `"gene_sets_human.gmt"` (for [Enrichment()]), `"lr_pairs_mouse.tsv"`,
#' `"lr_pairs_human.tsv"` (for [LigandReceptor()]).
#'
#' @param name File name.
#' @return The path of the file.
#' @examples
#' if (biclum_available(initialize = FALSE)) biclum_example("gene_sets_human.gmt")
#' @export
biclum_example <- function(name) {
  if (!is.character(name) || length(name) != 1) {
    stop(.input_error("name must be one file name, e.g. \"gene_sets_human.gmt\".", "biclum_bad_argument"))
  }
  .ds_call("example_path", list(name = name))
}
