# Downstream analyses on Seurat objects: MatchCells, TransferLabels, MatchedMetacells.
# R wrappers of biclum.downstream (Python), built on the helpers of downstream-utils.R.

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
