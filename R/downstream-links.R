# Downstream analyses on Seurat objects: GenePeakLinks and BiCLUMGeneActivity.
# R wrappers of biclum.downstream (Python), built on the helpers of downstream-utils.R.

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
