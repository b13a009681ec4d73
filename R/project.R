#' Map new cells onto a saved BiCLUM model
#'
#' Embeds new cells of either modality into the joint space of a model that [RunBiCLUM()] or [runBiCLUM()]
#' saved with `model_dir = ` (the Python `BiCLUM.load(model_dir).transform()`), without training: query
#' mapping of a new RNA, ATAC or ADT sample onto a reference integration. The query needs the features the
#' model was trained on (the genes for RNA and protein; peaks with coordinates, or the model's genes with
#' `gene_level = TRUE`, for ATAC). Embedding the training cells again gives their fitted embeddings.
#'
#' * `ProjectBiCLUM()` on a Seurat object: the object with a `DimReduc` `reduction.name` (replaced with a
#'   message if it exists, as in [RunBiCLUM()]); on a matrix (features x cells): the embeddings.
#' * `projectBiCLUM()` (and `ProjectBiCLUM()` on a `SingleCellExperiment`): the object with the embeddings
#'   as `reducedDim(x, name)`.
#'
#' Cells the model cannot embed (e.g. without counts) are left out, with a warning that says how many.
#'
#' @param query The new cells: a Seurat object, a `SingleCellExperiment`, or a features x cells matrix of raw
#'   counts.
#' @param model_dir The directory of a saved model (`model_dir` of [RunBiCLUM()] / [runBiCLUM()]).
#' @param modality `"rna"`, or the model's other modality (`"atac"` or `"protein"`).
#' @param assay Seurat: the assay of raw counts (default: the default assay, or the peak assay when that is
#'   the gene-activity assay [RunBiCLUM()] made the default). SCE: the assay name
#'   (default `"counts"`).
#' @param layer Layer (v5; split layers are joined on a copy) or slot (v4) of the raw counts.
#' @param annotation ATAC: a gene annotation (as in [RunBiCLUM()]) to use instead of the one kept in the model.
#' @param gene_level ATAC: `TRUE` when the query is already gene-level (gene activities).
#' @param batch The query's batches, for a model trained with batches (`rna.batch` / `other.batch` of
#'   [RunBiCLUM()], the Python `batch_key`): Seurat, the name of a `meta.data` column; SCE, the name of a `colData`
#'   column; a matrix, one label per cell. A batch seen in training is centred on its training mean, a new batch on
#'   its own mean (the Python `BiCLUM.transform(batch_key = )`). `NULL`: every cell on the training cells' mean.
#' @param reduction.name,reduction.key Name and key of the `DimReduc` (`NULL` key: from the name).
#' @param name Name of the `reducedDim` (SCE).
#' @param overwrite Replace an existing reduction of that name with a message (`TRUE`) or stop (`FALSE`).
#' @param verbose Show the Python core's log messages as R messages.
#' @param ... Passed to `projectBiCLUM()` (SCE method).
#' @return The query object with the embeddings, or (matrix) an embedded cells x dimensions matrix.
#' @seealso [RunBiCLUM()], [runBiCLUM()].
#' @examples
#' \donttest{
#' if (biclum_available(initialize = FALSE)) {
#'   bc <- reticulate::import("biclum.datasets")
#'   sim <- bc$simulate(n_cells = 200L, modality = "protein", seed = 0L)
#'   rna <- anndata_to_seurat(sim[[1]])
#'   adt <- anndata_to_seurat(sim[[2]], assay = "ADT")
#'   model <- file.path(tempdir(), "biclum-model")
#'   res <- RunBiCLUM(rna, adt, modality = "protein", max_epochs = 2, verbose = FALSE, batch_size = 128,
#'                    model_dir = model)
#'   query <- ProjectBiCLUM(rna[, 1:50], model, modality = "rna")
#'   range(SeuratObject::Embeddings(query[["biclum"]]) - SeuratObject::Embeddings(res$rna[["biclum"]])[1:50, ])
#'   unlink(model, recursive = TRUE)
#' }
#' }
#' @export
ProjectBiCLUM <- function(query, model_dir, ...) {
  UseMethod("ProjectBiCLUM")
}

#' @rdname ProjectBiCLUM
#' @export
ProjectBiCLUM.default <- function(query, model_dir, modality = c("rna", "atac", "protein"), annotation = NULL,
                                  gene_level = FALSE, batch = NULL, reduction.key = "BICLUM_", verbose = FALSE, ...) {
  m <- .as_dgc(query, "query")
  .project_matrix(m, model_dir, modality[1], annotation, NULL, gene_level, reduction.key, verbose,
                  obs = if (!is.null(batch)) .batch_frame(batch, colnames(m), "query"))
}

#' @rdname ProjectBiCLUM
#' @export
ProjectBiCLUM.Seurat <- function(query, model_dir, modality = c("rna", "atac", "protein"), assay = NULL,
                                 layer = "counts", annotation = NULL, gene_level = FALSE, batch = NULL,
                                 reduction.name = "biclum", reduction.key = NULL, overwrite = TRUE, verbose = FALSE, ...) {
  .check_new_reduction(query, reduction.name, "query", overwrite)
  assay <- assay %||% .peak_or_default_assay(query)
  a <- .get_assay(query, assay, "query")
  m <- .assay_matrix(a, layer = layer, what = "query assay")
  atac <- identical(modality[1], "atac")
  key <- reduction.key %||% .key_from_name(reduction.name)
  emb <- .project_matrix(m, model_dir, modality[1], annotation %||% if (atac) .assay_annotation(a),
                         if (atac) .assay_coords(a, rownames(m)), gene_level, key, verbose,
                         obs = .batch_obs(query, a, batch, FALSE, layer, "query", "batch"))
  dr <- SeuratObject::CreateDimReducObject(
    embeddings = emb, assay = assay, stdev = as.numeric(apply(emb, 2, stats::sd)), key = key,
    misc = list(model_dir = normalizePath(model_dir, mustWork = FALSE), modality = modality[1], projected = TRUE))
  .store_reduction(query, dr, reduction.name)
}

#' @rdname ProjectBiCLUM
#' @export
ProjectBiCLUM.SummarizedExperiment <- function(query, model_dir, ...) {
  projectBiCLUM(query, model_dir, ...)
}

#' @rdname ProjectBiCLUM
#' @export
projectBiCLUM <- function(query, model_dir, modality = c("rna", "atac", "protein"), assay = "counts",
                          annotation = NULL, gene_level = FALSE, batch = NULL, name = "BiCLUM", overwrite = TRUE,
                          verbose = FALSE) {
  .need_pkg("SingleCellExperiment", "projectBiCLUM()")
  .check_new_reduction(query, name, "query", overwrite, arg = "name")
  m <- .sce_matrix(query, assay, "query")
  obs <- NULL
  if (!is.null(batch)) {
    cd <- as.data.frame(SummarizedExperiment::colData(query), optional = TRUE)
    obs <- .batch_frame(.meta_batch(cd, batch, NULL, "query", "batch"), colnames(m), "query")
  }
  emb <- .project_matrix(m, model_dir, modality[1], annotation,
                         if (identical(modality[1], "atac")) .sce_coords(query), gene_level, paste0(name, "_"), verbose,
                         obs = obs)
  x <- .as_sce(query)
  colnames(x) <- colnames(m)
  if (nrow(emb) < ncol(x)) x <- x[, rownames(emb)]
  SingleCellExperiment::reducedDim(x, name) <- emb
  x
}

# Counts (features x cells dgCMatrix) -> embeddings of the cells the saved model embeds (cells x dims); `obs`: NULL
# or data.frame(biclum_batch) of the cells' batches (.batch_obs()), the query's batch key.
.project_matrix <- function(m, model_dir, modality, annotation, ranges, gene_level, key, verbose, obs = NULL) {
  modality <- .ds_choice(modality, c("rna", "atac", "protein"), "modality")
  if (!is.character(model_dir) || length(model_dir) != 1 || !.model_dir_exists(model_dir)) {
    stop(.input_error(paste0("model_dir: '", paste(model_dir, collapse = ", "), "' is not a directory; give the ",
                             "model_dir a model was saved to by RunBiCLUM(model_dir = ) or runBiCLUM(model_dir = )."),
                      "biclum_bad_model_dir"))
  }
  .check_unique_cells(m, "query")
  var <- if (modality == "atac") .atac_var(rownames(m), ranges, gene_level, "query") else NULL
  res <- .biclum_bridge()$project_from_r(.dgc_to_py(m, obs = obs, var = var), normalizePath(model_dir, mustWork = FALSE), modality,
                                         annotation = .annotation_arg(annotation),
                                         batch_key = if (!is.null(obs)) "biclum_batch",
                                         verbose = isTRUE(verbose), log_fn = if (isTRUE(verbose)) .log_fn() else NULL)
  emb <- .embedded(.from_py(.py_result(res)$value)$embeddings, colnames(m), key)
  .warn_dropped("query", nrow(emb), ncol(m))
  emb
}


# A saved model's directory, or the copy a save killed between its two renames left beside it (the Python
# biclum.atomic.readable_dir reads that copy then).
.model_dir_exists <- function(model_dir) {
  dir.exists(model_dir) ||
    dir.exists(file.path(dirname(model_dir), paste0(".", basename(model_dir), ".biclum-old")))
}
