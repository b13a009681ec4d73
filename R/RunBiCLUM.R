#' Integrate unpaired scRNA-seq with scATAC-seq or CITE-seq protein (BiCLUM)
#'
#' Runs the BiCLUM Python core (bilateral contrastive learning) on an RNA object and an ATAC or ADT
#' object and returns both with their cells in one shared embedding. Methods form a ladder in the style of
#' `harmony::RunHarmony()`:
#'
#' * `RunBiCLUM.default()`: count matrices (features x cells; `matrix` or `dgCMatrix`) -> a list of
#'   two `DimReduc` objects.
#' * `RunBiCLUM.Assay()` / `RunBiCLUM.StdAssay()`: Seurat v4 `Assay` (or Signac `ChromatinAssay`) / v5
#'   `Assay5` -> a list of two `DimReduc` objects.
#' * `RunBiCLUM.Seurat()`: two Seurat objects -> the two objects, each with a `DimReduc` `"biclum"`
#'   (embeddings; feature loadings of the genes used, with gene rownames; the assay; key `"BICLUM_"`;
#'   `stdev`; `misc` holding the parameters), the parameters under `Tool(x, "RunBiCLUM")` and the command in
#'   `x@commands` (`LogSeuratCommand()`).
#'
#' For ATAC the peaks are turned into gene activities (the feature loadings of the ATAC object are then in
#' gene space): peak coordinates come from a Signac `ChromatinAssay`'s ranges or from peak names
#' `chrN-start-end` (also `chrN:start-end`, `chrN_start_end`), and the gene annotation from `annotation`
#' or, when `annotation` is `NULL`, the `ChromatinAssay`'s annotation.
#'
#' Cells the Python core drops (e.g. with zero counts; it warns) get `NA` embeddings. Python warnings
#' become R warnings (class `biclum_python_warning`) with the Python message; Python errors become R
#' errors (class `biclum_python_error`, and `biclum_input_error` for bad input) with the Python message.
#' With `verbose = TRUE` progress is reported as R messages (class `biclum_progress`) at most every
#' `getOption("biclum.progress_interval", 1)` seconds.
#'
#' @param rna RNA counts: a Seurat object, an `Assay`/`Assay5`, or a features x cells matrix.
#' @param other ATAC (peaks) or ADT counts, the same kind of object as `rna`.
#' @param modality `"atac"` or `"protein"`.
#' @param annotation Gene annotation for the ATAC gene-activity transform: a `GRanges` (with a `gene_name`
#'   column, as in Signac/EnsDb annotations), a `data.frame` with `gene_name`, `chrom`, `start`, `end`,
#'   `strand` (1-based, inclusive), or the path of such a table (e.g. `mm10_genes.tsv.gz`). `NULL`: the
#'   annotation of a Signac `ChromatinAssay`.
#' @param seed Random seed (the same seed gives the same embeddings as the Python API).
#' @param max_epochs Maximum number of training epochs (`NULL`: the preset's).
#' @param preset Configuration preset of the Python core (`"default"` or `"paper"`).
#' @param gene_level `TRUE` when an ATAC matrix is already gene-level (e.g. gene activities): its
#'   features are gene names and no coordinates are needed.
#' @param rna.assay,other.assay Assay names: for Seurat objects the assays to use (default: the
#'   default assays); for the matrix and assay methods the names recorded as the `DimReduc`s' assay.
#' @param layer Layer (v5) or slot (v4) holding the raw counts.
#' @param join_layers For v5 assays whose counts are split into several layers: join them (`TRUE`) or
#'   stop with an error (`FALSE`, default). Cells are never dropped silently.
#' @param reduction.name Name of the `DimReduc` stored in the Seurat objects.
#' @param overwrite If `reduction.name` already exists in `rna` or `other`: stop with an error (`FALSE`,
#'   default) or replace it (`TRUE`).
#' @param reduction.key Key of the `DimReduc` (column prefix).
#' @param verbose Report progress and log messages of the Python core as R messages.
#' @param model_dir If not `NULL`, a directory where the fitted Python model is saved (`BiCLUM.save`).
#' @param ... Further settings passed to the Python `biclum.integrate()` as configuration overrides
#'   (e.g. `n_latent = 32`), and `gene.symbols`: the gene symbols of the RNA features, one per row (e.g.
#'   `rowData(sce)$Symbol` when the rownames are Ensembl IDs); they name the RNA genes in the Python core
#'   (its `gene_symbols`), while the results keep the rownames.
#' @return `RunBiCLUM.Seurat()`: `list(rna = <Seurat>, other = <Seurat>)`. The matrix and assay methods:
#'   `list(rna = <DimReduc>, other = <DimReduc>, params = <list>)`.
#' @seealso [runBiCLUM()] for SingleCellExperiment objects, [biclum_install()].
#' @examples
#' \donttest{
#' if (biclum_available(initialize = FALSE) && requireNamespace("Seurat", quietly = TRUE)) {
#'   bc <- reticulate::import("biclum.datasets")
#'   sim <- bc$simulate(n_cells = 300L, modality = "atac", seed = 0L)
#'   rna <- anndata_to_seurat(sim[[1]], assay = "RNA")
#'   atac <- anndata_to_seurat(sim[[2]], assay = "peaks")
#'   res <- RunBiCLUM(rna, atac, modality = "atac", annotation = sim[[3]], max_epochs = 2)
#'   Seurat::DimPlot(res$rna, reduction = "biclum")
#' }
#' }
#' @export
RunBiCLUM <- function(rna, other, ...) {
  UseMethod("RunBiCLUM")
}

#' @rdname RunBiCLUM
#' @export
RunBiCLUM.default <- function(rna, other, modality = c("atac", "protein"), annotation = NULL, seed = 0L,
                              max_epochs = NULL, preset = "default", gene_level = FALSE,
                              rna.assay = "RNA", other.assay = NULL, reduction.key = "BICLUM_",
                              verbose = TRUE, model_dir = NULL, ...) {
  modality <- .check_modality(modality[1])
  .biclum_bridge()
  rna <- .as_dgc(rna, "rna")
  other <- .as_dgc(other, "other")
  .biclum_matrices(rna, other, modality = modality, annotation = annotation, ranges = NULL, seed = seed,
                   max_epochs = max_epochs, preset = preset, gene_level = gene_level, rna.assay = rna.assay,
                   other.assay = other.assay %||% if (modality == "atac") "peaks" else "ADT",
                   reduction.key = reduction.key, verbose = verbose, model_dir = model_dir, ...)
}

#' @rdname RunBiCLUM
#' @export
RunBiCLUM.Assay <- function(rna, other, modality = c("atac", "protein"), annotation = NULL, seed = 0L,
                            max_epochs = NULL, preset = "default", gene_level = FALSE, layer = "counts",
                            join_layers = FALSE, rna.assay = "RNA", other.assay = NULL,
                            reduction.key = "BICLUM_", verbose = TRUE, model_dir = NULL, ...) {
  modality <- .check_modality(modality[1])
  if (!inherits(other, c("Assay", "StdAssay"))) {
    stop("other: expected an Assay like rna, got an object of class ", class(other)[1], call. = FALSE)
  }
  rna_m <- .assay_matrix(rna, layer = layer, join_layers = join_layers, what = "rna assay")
  other_m <- .assay_matrix(other, layer = layer, join_layers = join_layers, what = "other assay")
  ranges <- NULL
  if (modality == "atac") {
    ranges <- .assay_coords(other, rownames(other_m))
    if (is.null(annotation)) annotation <- .assay_annotation(other)
  }
  .biclum_matrices(rna_m, other_m, modality = modality, annotation = annotation, ranges = ranges, seed = seed,
                   max_epochs = max_epochs, preset = preset, gene_level = gene_level, rna.assay = rna.assay,
                   other.assay = other.assay %||% if (modality == "atac") "peaks" else "ADT",
                   reduction.key = reduction.key, verbose = verbose, model_dir = model_dir, ...)
}

#' @rdname RunBiCLUM
#' @export
RunBiCLUM.StdAssay <- RunBiCLUM.Assay

#' @rdname RunBiCLUM
#' @export
RunBiCLUM.Seurat <- function(rna, other, modality = c("atac", "protein"), annotation = NULL, seed = 0L,
                             max_epochs = NULL, preset = "default", gene_level = FALSE,
                             rna.assay = NULL, other.assay = NULL, layer = "counts", join_layers = FALSE,
                             reduction.name = "biclum", reduction.key = "BICLUM_", overwrite = FALSE,
                             verbose = TRUE, model_dir = NULL, ...) {
  modality <- .check_modality(modality[1])
  .check_seurat(other, "other")
  .check_new_reduction(rna, reduction.name, "rna", overwrite)
  .check_new_reduction(other, reduction.name, "other", overwrite)
  rna.assay <- rna.assay %||% SeuratObject::DefaultAssay(rna)
  if (is.null(other.assay)) {
    other.assay <- if (modality == "protein" && "ADT" %in% SeuratObject::Assays(other)) "ADT"
                   else SeuratObject::DefaultAssay(other)
  }
  rna_a <- .get_assay(rna, rna.assay, "rna")
  other_a <- .get_assay(other, other.assay, "other")
  drs <- RunBiCLUM(rna_a, other_a, modality = modality, annotation = annotation, seed = seed,
                   max_epochs = max_epochs, preset = preset, gene_level = gene_level, layer = layer,
                   join_layers = join_layers, rna.assay = rna.assay, other.assay = other.assay,
                   reduction.key = reduction.key, verbose = verbose, model_dir = model_dir, ...)
  tool <- list(params = drs$params, modality = modality, reduction = reduction.name,
               rna.assay = rna.assay, other.assay = other.assay,
               rna.genes = rownames(SeuratObject::Loadings(drs$rna)),
               other.genes = rownames(SeuratObject::Loadings(drs$other)),
               biclum_version = drs$biclum_version)
  rna[[reduction.name]] <- drs$rna
  other[[reduction.name]] <- drs$other
  SeuratObject::Tool(rna) <- c(tool, side = "rna")
  SeuratObject::Tool(other) <- c(tool, side = modality)
  # keep the logged command small
  annotation <- if (is.null(annotation)) NULL else if (is.character(annotation)) annotation
                else paste0("<", class(annotation)[1], " with ", NROW(annotation), " rows>")
  cmd <- SeuratObject::LogSeuratCommand(rna, return.command = TRUE)
  rna[[methods::slot(cmd, "name")]] <- methods::initialize(cmd, assay.used = rna.assay)
  other[[methods::slot(cmd, "name")]] <- methods::initialize(cmd, assay.used = other.assay)
  list(rna = rna, other = other)
}

# Shared by the matrix and assay methods: fit and build the two DimReducs.
.biclum_matrices <- function(rna, other, modality, annotation, ranges, seed, max_epochs, preset, gene_level,
                             rna.assay, other.assay, reduction.key, verbose, model_dir, ...,
                             rna_obs = NULL, other_obs = NULL) {
  .biclum_bridge() # fail early (with the fix) when Python is not usable
  var <- NULL
  if (modality == "atac") var <- .atac_var(rownames(other), ranges, gene_level, "other")
  ann <- if (modality == "atac" && !isTRUE(gene_level)) .annotation_arg(annotation, var$chrom) else
         .annotation_arg(annotation)
  fit <- .biclum_fit(rna, other, modality = modality, annotation = ann, other_var = var, seed = seed,
                     max_epochs = max_epochs, preset = preset, verbose = verbose, model_dir = model_dir,
                     overrides = list(...), rna_obs = rna_obs, other_obs = other_obs)
  misc <- list(modality = modality, params = fit$params, biclum_version = fit$biclum_version,
               loadings_space = "gene")
  list(rna = .dimreduc(fit$rna, colnames(rna), rna.assay, reduction.key, c(misc, side = "rna")),
       other = .dimreduc(fit$other, colnames(other), other.assay, reduction.key, c(misc, side = modality)),
       params = fit$params, biclum_version = fit$biclum_version, fit = fit)
}

.dimreduc <- function(side, cells, assay, key, misc) {
  emb <- .full_embeddings(side$embeddings, cells, key)
  load <- .used_loadings(side, key)
  misc$genes_used <- rownames(load)
  misc$n_cells_dropped <- sum(!cells %in% rownames(side$embeddings))
  SeuratObject::CreateDimReducObject(
    embeddings = emb, loadings = load, assay = assay,
    stdev = as.numeric(apply(emb, 2, stats::sd, na.rm = TRUE)), key = key, misc = misc)
}

# A Seurat object's reduction (or an SCE's reducedDim) of that name is replaced only with overwrite = TRUE.
.check_new_reduction <- function(x, name, what, overwrite, arg = "reduction.name") {
  if (!is.character(name) || length(name) != 1 || is.na(name) || !nzchar(name)) {
    stop(.input_error(paste0(arg, " must be one non-empty name, not ", paste(format(name), collapse = ", "), "."),
                      "biclum_bad_argument"))
  }
  have <- if (inherits(x, "Seurat")) SeuratObject::Reductions(x) else
    tryCatch(SingleCellExperiment::reducedDimNames(x), error = function(e) character())
  if (name %in% have && !isTRUE(overwrite)) {
    stop(.input_error(paste0(
      what, ": the object already has a ", if (inherits(x, "Seurat")) "reduction" else "reducedDim", " '", name,
      "'; pass overwrite = TRUE to replace it, or choose another ", arg, "."), "biclum_reduction_exists"))
  }
  invisible(TRUE)
}
