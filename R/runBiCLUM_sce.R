#' BiCLUM for SingleCellExperiment objects
#'
#' The Bioconductor interface of [RunBiCLUM()]: integrates an RNA `SingleCellExperiment` with an ATAC
#' (peaks) or ADT `SingleCellExperiment` and returns copies of them (the inputs are not modified) with
#'
#' * the cell embeddings as `reducedDim(x, name)`, with the feature loadings of the genes used (gene
#'   rownames) as its `"rotation"` attribute, as `scater::runPCA()` stores them;
#' * gene-level results in `rowData()` of the RNA object (`<name>_loadings`, a matrix column with `NA`
#'   for genes not used, and `<name>_used`); for ATAC/ADT the gene-space loadings are the `"rotation"`
#'   and `metadata(x)[[name]]$gene_loadings`;
#' * the parameters in `metadata(x)[[name]]`.
#'
#' Counts come from `assay(x, rna.assay)` / `assay(x, other.assay)` and peak coordinates from `rowRanges()`
#' when it is a `GRanges` (otherwise from peak names `chrN-start-end`). With the same data, seed and settings
#' the embeddings equal those of `RunBiCLUM()` on Seurat objects and of the Python `biclum.integrate()`.
#'
#' @inheritParams RunBiCLUM
#' @param rna,other `SingleCellExperiment` (or `SummarizedExperiment`) objects with counts; the
#'   default method takes features x cells matrices and returns the embeddings.
#' @param rna.assay,other.assay Names of the assays holding the raw counts.
#' @param name Name of the `reducedDim` (and of the `rowData`/`metadata` entries).
#' @param overwrite If a `reducedDim` called `name` already exists in `rna` or `other`: replace it with a
#'   message (`TRUE`, default) or stop with an error (`FALSE`).
#' @param combine `FALSE`: return `list(rna = <SCE>, other = <SCE>)`; `TRUE`: one SCE holding the cells of
#'   both (no assays; `colData` with a `modality` column and the columns both inputs share; rows = the
#'   genes used, their loadings in `rowData`).
#' @return A list of two `SingleCellExperiment`s, or one combined `SingleCellExperiment`
#'   (`combine = TRUE`). The default (matrix) method returns `list(rna = <matrix>, other = <matrix>,
#'   params = <list>)` of embeddings with their `"rotation"` attributes.
#' @examples
#' \donttest{
#' if (biclum_available(initialize = FALSE) && requireNamespace("scater", quietly = TRUE)) {
#'   bc <- reticulate::import("biclum.datasets")
#'   sim <- bc$simulate(n_cells = 300L, modality = "protein", seed = 0L)
#'   rna <- anndata_to_sce(sim[[1]])
#'   adt <- anndata_to_sce(sim[[2]])
#'   res <- runBiCLUM(rna, adt, modality = "protein", max_epochs = 2, batch_size = 128, verbose = FALSE)
#'   scater::plotReducedDim(res$rna, "BiCLUM")
#' }
#' }
#' @rdname runBiCLUM-sce
#' @export
runBiCLUM <- function(rna, other, ...) {
  UseMethod("runBiCLUM")
}

#' @rdname runBiCLUM-sce
#' @export
runBiCLUM.default <- function(rna, other, modality = c("atac", "protein"), annotation = NULL, seed = 0L,
                              max_epochs = NULL, preset = "default", gene_level = FALSE, verbose = TRUE,
                              model_dir = NULL, ...) {
  modality <- .check_modality(modality[1])
  drs <- RunBiCLUM.default(rna, other, modality = modality, annotation = annotation, seed = seed,
                           max_epochs = max_epochs, preset = preset, gene_level = gene_level,
                           reduction.key = "BiCLUM_", verbose = verbose, model_dir = model_dir, ...)
  side <- function(s, cells) {
    emb <- .embedded(s$embeddings, cells, "BiCLUM_")
    attr(emb, "rotation") <- .keyed_loadings(s, "BiCLUM_")
    emb
  }
  list(rna = side(drs$fit$rna, colnames(.as_dgc(rna))), other = side(drs$fit$other, colnames(.as_dgc(other))),
       params = drs$params)
}

#' @rdname runBiCLUM-sce
#' @export
runBiCLUM.SummarizedExperiment <- function(rna, other, modality = c("atac", "protein"), annotation = NULL,
                                           seed = 0L, max_epochs = NULL, preset = "default",
                                           gene_level = FALSE, rna.assay = "counts", other.assay = "counts",
                                           name = "BiCLUM", combine = FALSE, overwrite = TRUE,
                                           verbose = TRUE, model_dir = NULL, ...) {
  .need_pkg("SingleCellExperiment", "runBiCLUM()")
  modality <- .check_modality(modality[1])
  .biclum_bridge()
  if (!methods::is(other, "SummarizedExperiment")) {
    stop("other: expected a SingleCellExperiment like rna, got an object of class ", class(other)[1],
         call. = FALSE)
  }
  .check_new_reduction(rna, name, "rna", overwrite, arg = "name")
  .check_new_reduction(other, name, "other", overwrite, arg = "name")
  rna_m <- .sce_matrix(rna, rna.assay, "rna")
  other_m <- .sce_matrix(other, other.assay, "other")
  ranges <- if (modality == "atac") .sce_coords(other) else NULL
  var <- if (modality == "atac") .atac_var(rownames(other_m), ranges, gene_level, "other") else NULL
  fit <- .biclum_fit(rna_m, other_m, modality = modality, annotation = annotation, other_var = var, seed = seed,
                     max_epochs = max_epochs, preset = preset, verbose = verbose, model_dir = model_dir,
                     overrides = list(...))
  key <- paste0(name, "_")
  meta <- list(params = fit$params, modality = modality, biclum_version = fit$biclum_version)
  out_rna <- .sce_store(rna, fit$rna, name, key, c(meta, side = "rna"), gene_rows = TRUE)
  out_other <- .sce_store(other, fit$other, name, key, c(meta, side = modality), gene_rows = FALSE)
  if (!isTRUE(combine)) return(list(rna = out_rna, other = out_other))
  .sce_combine(out_rna, out_other, fit, name, modality, meta)
}

.as_sce <- function(x) {
  if (methods::is(x, "SingleCellExperiment")) return(x)
  methods::as(x, "SingleCellExperiment")
}

.sce_store <- function(x, side, name, key, meta, gene_rows) {
  x <- .as_sce(x)
  if (is.null(colnames(x))) colnames(x) <- paste0("cell", seq_len(ncol(x)))
  emb <- .embedded(side$embeddings, colnames(x), key)
  n_cells <- ncol(x)
  .warn_dropped(meta$side, nrow(emb), n_cells)
  if (nrow(emb) < n_cells) x <- x[, rownames(emb)]
  load <- .keyed_loadings(side, key)
  attr(emb, "rotation") <- load
  SingleCellExperiment::reducedDim(x, name) <- emb
  if (!is.null(side$has_mnn_partner)) {
    SummarizedExperiment::colData(x)[[paste0(name, "_has_mnn_partner")]] <- unname(side$has_mnn_partner[colnames(x)])
  }
  full <- matrix(NA_real_, nrow = nrow(x), ncol = ncol(load), dimnames = list(rownames(x), colnames(load)))
  hit <- match(rownames(load), rownames(x))
  if (gene_rows && any(!is.na(hit))) {
    full[hit[!is.na(hit)], ] <- load[!is.na(hit), , drop = FALSE]
    SummarizedExperiment::rowData(x)[[paste0(name, "_loadings")]] <- full
    SummarizedExperiment::rowData(x)[[paste0(name, "_used")]] <- rownames(x) %in% rownames(load)
  }
  meta$genes_used <- rownames(load)
  meta$gene_loadings <- load
  meta$n_cells_dropped <- n_cells - nrow(emb)
  S4Vectors::metadata(x)[[name]] <- meta
  x
}

.sce_combine <- function(rna, other, fit, name, modality, meta) {
  e1 <- SingleCellExperiment::reducedDim(rna, name)
  e2 <- SingleCellExperiment::reducedDim(other, name)
  cells <- c(colnames(rna), colnames(other))
  if (anyDuplicated(cells)) {
    cells <- c(paste0(colnames(rna), "_rna"), paste0(colnames(other), "_", modality))
  }
  cd1 <- as.data.frame(SummarizedExperiment::colData(rna), optional = TRUE)
  cd2 <- as.data.frame(SummarizedExperiment::colData(other), optional = TRUE)
  shared <- intersect(names(cd1), names(cd2))
  cd <- rbind(cd1[, shared, drop = FALSE], cd2[, shared, drop = FALSE])
  cd$cell <- c(colnames(rna), colnames(other))
  cd$modality <- factor(rep(c("rna", modality), c(ncol(rna), ncol(other))), levels = c("rna", modality))
  rownames(cd) <- cells
  l1 <- attr(e1, "rotation")
  l2 <- attr(e2, "rotation")
  genes <- union(rownames(l1), rownames(l2))
  fill <- function(l) {
    m <- matrix(NA_real_, length(genes), ncol(l), dimnames = list(genes, colnames(l)))
    m[rownames(l), ] <- l
    m
  }
  rd <- S4Vectors::DataFrame(row.names = genes)
  rd[[paste0(name, "_loadings_rna")]] <- fill(l1)
  rd[[paste0(name, "_loadings_", modality)]] <- fill(l2)
  emb <- rbind(unclass(e1)[, , drop = FALSE], unclass(e2)[, , drop = FALSE])
  attributes(emb) <- attributes(emb)[c("dim", "dimnames")]
  rownames(emb) <- cells
  attr(emb, "rotation") <- fill(l1)
  sce <- SingleCellExperiment::SingleCellExperiment(
    assays = list(), colData = S4Vectors::DataFrame(cd, check.names = FALSE), rowData = rd)
  SingleCellExperiment::reducedDim(sce, name) <- emb
  S4Vectors::metadata(sce)[[name]] <- c(meta, list(side = "combined"))
  sce
}

#' @rdname RunBiCLUM
#' @export
RunBiCLUM.SummarizedExperiment <- function(rna, other, ...) {
  runBiCLUM.SummarizedExperiment(rna, other, ...)
}
