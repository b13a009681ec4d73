# Downstream analyses on Seurat objects: markers (FindBiCLUMMarkers, CrossModalMarkers, EmbeddingMarkers,
# TopMarkers, MarkerOverlap).
# R wrappers of biclum.downstream (Python), built on the helpers of downstream-utils.R.

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
