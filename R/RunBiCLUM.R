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
#' * `RunBiCLUM.Seurat()`: two Seurat objects -> the two objects (or, with `merge = TRUE`, one object), each
#'   with a `DimReduc` `reduction.name` (embeddings; feature loadings of the genes used, with gene rownames;
#'   the assay; the key; `stdev`; `misc` holding the parameters), the MNN-partner flag in `meta.data`
#'   (column `<reduction.name>_has_mnn_partner`: whether the cell had a cross-modal mutual nearest neighbour
#'   in training), the parameters under `Tool(x, "RunBiCLUM")` and the command in `x@commands`.
#'
#' As in `Seurat::RunPCA()`, an existing reduction of the same name is replaced (with a message;
#' `overwrite = FALSE` makes that an error) and the key follows the name (`"biclum"` -> `"BICLUM_"`,
#' `"biclum2"` -> `"BICLUM2_"`).
#'
#' **Split layers.** Seurat v5 assays whose counts are split into layers (`counts.1`, `counts.2`, e.g. after
#' `obj[["RNA"]] <- split(obj[["RNA"]], f = obj$sample)`) are joined on a copy, with one message; the input
#' objects are never modified and no cell is left out. The downstream functions ([FindBiCLUMMarkers()],
#' [MatchedMetacells()], ...) do the same.
#'
#' **ATAC.** The peaks are turned into gene activities (the feature loadings of the ATAC side are in gene
#' space): peak coordinates come from a Signac `ChromatinAssay`'s ranges or from peak names `chrN-start-end`
#' (also `chrN:start-end`, `chrN_start_end`), and the gene annotation from `annotation` or, when `annotation`
#' is `NULL`, the `ChromatinAssay`'s annotation. `RunBiCLUM.Seurat()` stores those gene activities as an
#' assay of the ATAC object (`activity.assay`, default `"BiclumActivity"`: raw gene-activity counts;
#' log-normalised values, counts per 10,000 and `log1p`, in `data`; and, for the genes of the loadings, those values
#' centred and scaled per gene and clipped at 10 in `scale.data`, as `Seurat::ScaleData()` makes them) and makes it
#' the assay of the ATAC reduction and the default assay of the returned ATAC object (with one message), so that
#' Seurat's functions find the genes of the loadings as after `Seurat::RunPCA()`: `Seurat::VizDimLoadings()`,
#' `Seurat::DimHeatmap(atac, reduction = "biclum")`, `Seurat::ProjectDim()`. `DefaultAssay(atac) <- "peaks"` (the
#' name of the peak assay) switches back. The peak assay is recorded in `Tool(atac, "RunBiCLUM")$other.assay`, and
#' biclum's functions that read peaks ([GenePeakLinks()], [MatchedMetacells()], [BiCLUMGeneActivity()],
#' [ProjectBiCLUM()], [seurat_to_anndata()] and a new `RunBiCLUM()` on the returned objects) read that assay when
#' the default is the gene-activity assay; the gene-level ones ([FindBiCLUMMarkers()], [TFActivity()], ...) read
#' the default assay, as Seurat's do.
#'
#' **Dropped cells.** Cells the Python core drops (e.g. with zero counts; it warns) get no embedding: the
#' `DimReduc` holds the embedded cells and `RunBiCLUM.Seurat()` returns the objects without the dropped cells,
#' with a warning that says how many were dropped, so that `FindNeighbors()` and `RunUMAP()` work.
#'
#' **Known pairs.** Cells measured in both modalities (10x Multiome, CITE-seq) can be given with `paired = `:
#' `TRUE` when a cell has the same name in both objects, or a `data.frame` with two columns, the RNA cell name
#' and the other cell name (named `rna` and `other`, or the only two columns). Each pair is an exact positive of
#' the cell-level contrastive loss for its two cells, and the pairs guide the other cells: a second cell-level
#' loss term on the pairs alone (`alpha_known`) and their linear map joined to the MNN search space
#' (`NULL`, the default, or a table without rows gives exactly the unpaired result). Unknown names
#' or a cell in two pairs stop with an error (class `biclum_input_error`); the number of pairs used is
#' `params$n_known_pairs`.
#'
#' **A multiome bridge.** `RunBiCLUM(rna, other, bridge = multiome)` (Seurat objects) integrates an RNA reference
#' `rna` and an ATAC (or ADT) query `other` through a `bridge`: a Seurat object holding an RNA assay and the
#' other modality's assay on the same cells (a 10x Multiome, or a CITE-seq object for ADT), as in Seurat v5's
#' bridge integration. The three go to the Python core's `biclum.integrate_mosaic()` as three datasets (reference:
#' RNA; query: ATAC / ADT; bridge: both): one model RNA <-> ATAC (ADT) trained on all cells, each object a batch
#' of its modality, and the bridge's cells (the same cell names in both of its assays) known pairs, exact
#' positives of the cell-level loss. The bridge's assays are named by `bridge.assays = c(rna = , other = )`; each
#' defaults to the bridge's assay of the same name as the one used in `rna` / `other` (`rna.assay`,
#' `other.assay`), else `"RNA"`, and `"ATAC"` or `"peaks"` (ATAC) or `"ADT"` (protein). A Signac `ChromatinAssay`
#' is read through the assay interface (its ranges give the peak coordinates, its annotation the genes when
#' `annotation` is `NULL`); the bridge's peaks need not be the query's (different peak sets are each moved to
#' gene activity first). The result is `list(rna, other, bridge)`: `rna` and `other` as for two objects (the
#' `DimReduc` `reduction.name`, for ATAC on the gene-activity assay `activity.assay`, which becomes the default
#' assay), and the bridge with two reductions: `reduction.name` on its RNA assay (key as for `rna`) and
#' `"<reduction.name>.<modality>"` (e.g. `"biclum.atac"`, key `"BICLUMATAC_"`) on its other assay, whose
#' loadings are gene-space feature embeddings, as for ADT; the bridge keeps its default assay, and
#' `Tool(bridge, "RunBiCLUM")` records `bridge.assays` and `bridge.reductions`. All embeddings are in one space:
#' [TransferLabels()] moves labels from the reference to the query (`TransferLabels(res$other, res$rna, label =
#' "cell_type")`), [MergeBiCLUM()] makes one object of `res$rna` and `res$other`, and `model_dir` saves the model
#' for [ProjectBiCLUM()]. With a bridge, each object is one batch, so `rna.batch`, `other.batch`,
#' `split.batches = TRUE`, `merge = TRUE`, `paired` and `gene.symbols` are refused; split v5 layers are joined on
#' a copy as without a bridge. A `bridge` that is not a Seurat object, lacks either assay, or whose two assays do
#' not hold the same cells stops before anything runs, with an error of class `biclum_bad_bridge` (or
#' `biclum_bridge_no_shared_cells`) naming the fix; as always, the input objects are not modified.
#'
#' **Conditions.** Python warnings become R warnings (class `biclum_python_warning`) with the Python message;
#' Python errors become R errors (class `biclum_python_error`, and `biclum_input_error` for bad input) with the
#' Python message. With `verbose = TRUE` progress is reported as R messages (class `biclum_progress`) at most
#' every `getOption("biclum.progress_interval", 1)` seconds. Ctrl-C (an R interrupt) during training stops it
#' after the current step: the model keeps its best weights so far, a warning says so, and R's own interrupt
#' handling is back afterwards.
#'
#' @param rna RNA counts: a Seurat object, an `Assay`/`Assay5`, or a features x cells matrix.
#' @param other ATAC (peaks) or ADT counts, the same kind of object as `rna`.
#' @param modality `"atac"` or `"protein"`.
#' @param annotation Gene annotation for the ATAC gene-activity transform: a `GRanges` (with a `gene_name`
#'   column, as in Signac/EnsDb annotations), a `data.frame` with `gene_name`, `chrom`, `start`, `end`,
#'   `strand` (1-based, inclusive), or the path of such a table (e.g. `mm10_genes.tsv.gz`) or of a GTF/GFF3/BED6.
#'   `NULL`: the annotation of a Signac `ChromatinAssay`. Its columns go to Python unchanged and are read there
#'   (`biclum.prior.read_annotation()`), as the Python API reads them: column aliases (`seqnames`, `symbol`, ...),
#'   exon/UTR rows (a `type` column) merged into gene spans, a gene name on several chromosomes kept once (its
#'   longest copy), rows without a `+`/`-` strand left out.
#' @param seed Random seed (the same seed gives the same embeddings as the Python API).
#' @param max_epochs Maximum number of training epochs (`NULL`: the preset's).
#' @param preset Configuration preset of the Python core (`"default"` or `"paper"`).
#' @param gene_level `TRUE` when an ATAC matrix is already gene-level (e.g. gene activities): its
#'   features are gene names and no coordinates are needed.
#' @param rna.assay,other.assay Assay names: for Seurat objects the assays to use (default: the
#'   default assays; for ATAC whose default is the gene-activity assay of an earlier `RunBiCLUM()`, the peak
#'   assay it recorded); for the matrix and assay methods the names recorded as the `DimReduc`s' assay.
#' @param layer Layer (v5) or slot (v4) holding the raw counts.
#' @param join_layers For v5 assays whose counts are split into several layers: join them on a copy (`TRUE`,
#'   default, with a message) or stop with an error (`FALSE`). Cells are never dropped silently.
#' @param rna.batch,other.batch Seurat objects: names of a metadata column holding each cell's batch (sample,
#'   donor) within that modality; batch effects within each modality are then removed as well (the Python
#'   core's `rna_batch_key` / `other_batch_key`). `NULL`: no batches.
#' @param split.batches Seurat v5 assays whose counts are split into layers (`counts.<name>`): `TRUE` uses the
#'   split as the batch of each modality that has no `rna.batch` / `other.batch` (the batch of a cell is the
#'   `<name>` of its layer), as `Seurat::IntegrateLayers()` does.
#' @param reduction.name Name of the `DimReduc` stored in the Seurat objects.
#' @param reduction.key Key of the `DimReduc` (column prefix); `NULL`: from `reduction.name`.
#' @param overwrite If `reduction.name` (or, for ATAC, `activity.assay`) already exists in `rna` or `other`:
#'   replace it with a message (`TRUE`, default, as `Seurat::RunPCA()`) or stop with an error (`FALSE`).
#' @param activity.assay ATAC (peaks) only: name of the gene-activity assay added to the ATAC object.
#' @param merge `FALSE`: return both objects. `TRUE`: return one Seurat object holding the cells of both
#'   modalities, as [MergeBiCLUM()] makes from the two.
#' @param verbose Report progress and log messages of the Python core as R messages.
#' @param model_dir If not `NULL`, a directory where the fitted Python model is saved (`BiCLUM.save`); map new
#'   cells onto it with [ProjectBiCLUM()].
#' @param ... Further settings passed to the Python `biclum.integrate()` as configuration overrides, by the
#'   names of `biclum.config.BiclumConfig` (e.g. `latent_dim = 32`, `batch_size = 128`, `n_top_genes = 3000`),
#'   and `gene.symbols`: the gene symbols of the RNA features, one per row (e.g. `rowData(sce)$Symbol` when the
#'   rownames are Ensembl IDs); they name the RNA genes in the Python core (its `gene_symbols`), while the results
#'   keep the rownames; and `paired`: known pairs (`TRUE`, or a `data.frame` of RNA and other cell names; see
#'   **Known pairs**).
#' @param bridge Seurat objects only: `NULL` (default), or a Seurat object holding an RNA assay and the other
#'   modality's assay on the same cells (a multiome or CITE-seq bridge between `rna` and `other`; see **A
#'   multiome bridge**).
#' @param bridge.assays With `bridge`: its RNA and other assays, `c(rna = "RNA", other = "ATAC")`; a missing entry
#'   defaults to the assay of the same name as in `rna` / `other`, else `"RNA"` / `"ATAC"`, `"peaks"` or `"ADT"`.
#' @return `RunBiCLUM.Seurat()`: `list(rna = <Seurat>, other = <Seurat>)`, or one Seurat object with
#'   `merge = TRUE`; with `bridge`, `list(rna = <Seurat>, other = <Seurat>, bridge = <Seurat>)`. The matrix and
#'   assay methods: `list(rna = <DimReduc>, other = <DimReduc>, params = <list>)`.
#' @seealso [runBiCLUM()] for SingleCellExperiment objects, [ProjectBiCLUM()], [biclum_install()].
#' @examples
#' \donttest{
#' if (biclum_available(initialize = FALSE) && requireNamespace("Seurat", quietly = TRUE)) {
#'   bc <- reticulate::import("biclum.datasets", convert = FALSE)
#'   sim <- bc$simulate(n_cells = 300L, modality = "atac", seed = 0L)
#'   rna <- anndata_to_seurat(reticulate::py_get_item(sim, 0L), assay = "RNA")
#'   atac <- anndata_to_seurat(reticulate::py_get_item(sim, 1L), assay = "peaks")
#'   ann <- tempfile(fileext = ".tsv") # a gene table; a data.frame or GRanges works too
#'   invisible(reticulate::py_get_item(sim, 2L)$to_csv(ann, sep = "\t", index = FALSE))
#'   res <- RunBiCLUM(rna, atac, modality = "atac", annotation = ann, max_epochs = 2, batch_size = 128,
#'                    verbose = FALSE)
#'   Seurat::DimPlot(res$rna, reduction = "biclum", group.by = "cell_type")
#'   Seurat::VizDimLoadings(res$other, dims = 1:2, reduction = "biclum")
#'   both <- RunBiCLUM(rna, atac, modality = "atac", annotation = ann, max_epochs = 2, batch_size = 128,
#'                     verbose = FALSE, merge = TRUE)
#'   Seurat::DimPlot(both, reduction = "biclum", group.by = "modality")
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
                            join_layers = TRUE, rna.assay = "RNA", other.assay = NULL,
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
                             rna.assay = NULL, other.assay = NULL, layer = "counts", join_layers = TRUE,
                             rna.batch = NULL, other.batch = NULL, split.batches = FALSE,
                             reduction.name = "biclum", reduction.key = NULL, overwrite = TRUE,
                             activity.assay = "BiclumActivity", merge = FALSE, verbose = TRUE, model_dir = NULL,
                             bridge = NULL, bridge.assays = NULL, ...) {
  modality <- .check_modality(modality[1])
  .check_seurat(other, "other")
  if (!is.null(bridge)) .check_bridge_call(bridge, rna.batch, other.batch, split.batches, merge, list(...))
  .check_new_reduction(rna, reduction.name, "rna", overwrite)
  .check_new_reduction(other, reduction.name, "other", overwrite)
  reduction.key <- reduction.key %||% .key_from_name(reduction.name)
  rna.assay <- rna.assay %||% SeuratObject::DefaultAssay(rna)
  if (is.null(other.assay)) {
    other.assay <- if (modality == "protein" && "ADT" %in% SeuratObject::Assays(other)) "ADT"
                   else .peak_or_default_assay(other)
  }
  activity <- modality == "atac" && !isTRUE(gene_level)
  if (activity) .check_new_assay(other, activity.assay, other.assay, overwrite)
  rna_a <- .get_assay(rna, rna.assay, "rna")
  other_a <- .get_assay(other, other.assay, "other")
  if (is.null(bridge)) {
    batches <- list(rna = .batch_obs(rna, rna_a, rna.batch, split.batches, layer, "rna"),
                    other = .batch_obs(other, other_a, other.batch, split.batches, layer, "other"))
    drs <- RunBiCLUM(rna_a, other_a, modality = modality, annotation = annotation, seed = seed,
                     max_epochs = max_epochs, preset = preset, gene_level = gene_level, layer = layer,
                     join_layers = join_layers, rna.assay = rna.assay, other.assay = other.assay,
                     reduction.key = reduction.key, verbose = verbose, model_dir = model_dir,
                     rna_obs = batches$rna, other_obs = batches$other,
                     rna_batch_key = if (!is.null(batches$rna)) "biclum_batch",
                     other_batch_key = if (!is.null(batches$other)) "biclum_batch", ...)
  } else {
    bridge.assays <- .bridge_assays(bridge, bridge.assays, rna.assay, other.assay, modality)
    .check_new_reduction(bridge, reduction.name, "bridge", overwrite)
    .check_new_reduction(bridge, .bridge_reduction_name(reduction.name, modality), "bridge", overwrite)
    annotation <- annotation %||% .assay_annotation(other_a) %||% .assay_annotation(bridge[[bridge.assays[["other"]]]])
    drs <- .bridge_reductions(rna_a, other_a, bridge, bridge.assays, modality = modality, annotation = annotation,
                              seed = seed, max_epochs = max_epochs, preset = preset, gene_level = gene_level,
                              layer = layer, join_layers = join_layers, rna.assay = rna.assay,
                              other.assay = other.assay, reduction.name = reduction.name,
                              reduction.key = reduction.key, verbose = verbose, model_dir = model_dir, ...)
  }
  if (activity) {
    counts <- suppressMessages(classes = "biclum_join_layers", # joined once already, with a message
                               .gene_activity_counts(other, other.assay, annotation %||% .assay_annotation(other_a), layer,
                                                     mode = .activity_mode(drs$params)))
    other[[activity.assay]] <- .with_scale_data(.new_assay(counts, other_a, normalize = TRUE),
                                                rownames(SeuratObject::Loadings(drs$other)))
    SeuratObject::DefaultAssay(drs$other) <- activity.assay
    other <- .activity_as_default(other, activity.assay, other.assay, announce = !isTRUE(merge))
  }
  rna <- .store_reduction(rna, drs$rna, reduction.name)
  other <- .store_reduction(other, drs$other, reduction.name)
  tool <- list(params = drs$params, modality = modality, reduction = reduction.name,
               rna.assay = rna.assay, other.assay = other.assay,
               activity.assay = if (activity) activity.assay else NULL,
               rna.genes = rownames(SeuratObject::Loadings(drs$rna)),
               other.genes = rownames(SeuratObject::Loadings(drs$other)),
               biclum_version = drs$biclum_version)
  SeuratObject::Tool(rna) <- c(tool, side = "rna")
  SeuratObject::Tool(other) <- c(tool, side = modality)
  # keep the logged command small
  annotation <- if (is.null(annotation)) NULL else if (is.character(annotation)) annotation
                else paste0("<", class(annotation)[1], " with ", NROW(annotation), " rows>")
  cmd <- SeuratObject::LogSeuratCommand(rna, return.command = TRUE)
  rna[[methods::slot(cmd, "name")]] <- methods::initialize(cmd, assay.used = rna.assay)
  other[[methods::slot(cmd, "name")]] <- methods::initialize(cmd, assay.used = other.assay)
  if (!is.null(bridge)) {
    bridge <- .store_bridge(bridge, drs$bridge, reduction.name, modality)
    SeuratObject::Tool(bridge) <- c(tool, side = "bridge", list(bridge.assays = bridge.assays,
                                    bridge.reductions = c(rna = reduction.name,
                                                          other = .bridge_reduction_name(reduction.name, modality))))
    bridge[[methods::slot(cmd, "name")]] <- methods::initialize(cmd, assay.used = bridge.assays[["rna"]])
    return(list(rna = rna, other = other, bridge = bridge))
  }
  if (isTRUE(merge)) return(MergeBiCLUM(rna, other, reduction = reduction.name))
  list(rna = rna, other = other)
}

# Shared by the matrix and assay methods: fit and build the two DimReducs.
.biclum_matrices <- function(rna, other, modality, annotation, ranges, seed, max_epochs, preset, gene_level,
                             rna.assay, other.assay, reduction.key, verbose, model_dir, ...,
                             rna_obs = NULL, other_obs = NULL) {
  .biclum_bridge() # fail early (with the fix) when Python is not usable
  var <- NULL
  if (modality == "atac") var <- .atac_var(rownames(other), ranges, gene_level, "other")
  fit <- .biclum_fit(rna, other, modality = modality, annotation = annotation, other_var = var, seed = seed,
                     max_epochs = max_epochs, preset = preset, verbose = verbose, model_dir = model_dir,
                     overrides = list(...), rna_obs = rna_obs, other_obs = other_obs)
  misc <- list(modality = modality, params = fit$params, biclum_version = fit$biclum_version,
               loadings_space = "gene")
  list(rna = .dimreduc(fit$rna, colnames(rna), rna.assay, reduction.key, c(misc, side = "rna")),
       other = .dimreduc(fit$other, colnames(other), other.assay, reduction.key, c(misc, side = modality)),
       params = fit$params, biclum_version = fit$biclum_version, fit = fit)
}

.dimreduc <- function(side, cells, assay, key, misc) {
  emb <- .embedded(side$embeddings, cells, key)
  load <- .keyed_loadings(side, key)
  misc$genes_used <- rownames(load)
  misc$n_cells_dropped <- length(cells) - nrow(emb)
  .warn_dropped(misc$side, nrow(emb), length(cells))
  misc$has_mnn_partner <- side$has_mnn_partner
  SeuratObject::CreateDimReducObject(
    embeddings = emb, loadings = load, assay = assay,
    stdev = as.numeric(apply(emb, 2, stats::sd)), key = key, misc = misc)
}

# "biclum" -> "BICLUM_" (keys are letters and digits, starting with a letter, then "_").
.key_from_name <- function(name) {
  key <- toupper(gsub("[^[:alnum:]]", "", name))
  if (!grepl("^[A-Z]", key)) key <- paste0("BC", key)
  paste0(key, "_")
}

# A DimReduc into a Seurat object, which keeps the embedded cells only (.dimreduc warned when some were dropped),
# and the MNN-partner flag as a meta.data column.
.store_reduction <- function(x, dr, name) {
  cells <- SeuratObject::Cells(dr)
  if (length(cells) < ncol(x)) x <- subset(x, cells = cells)
  x[[name]] <- dr
  flag <- SeuratObject::Misc(dr)$has_mnn_partner
  if (!is.null(flag)) x <- SeuratObject::AddMetaData(x, flag[colnames(x)], col.name = paste0(name, "_has_mnn_partner"))
  x
}

#' One Seurat object with the cells of both modalities and one BiCLUM reduction
#'
#' Merges the two objects [RunBiCLUM()] returns into one (with `merge()`; cell names are prefixed with `"rna_"` /
#' `"<modality>_"` when they clash) that holds one `DimReduc` `reduction` with the embeddings of all cells
#' (loadings: the RNA side's; the other side's are in its `misc`) and a `meta.data` column `modality`, ready for
#' `RunUMAP(x, reduction = reduction, ...)` and `DimPlot(x, group.by = "modality")`. Other reductions are not
#' carried over (their cells would not match). `RunBiCLUM(..., merge = TRUE)` returns this object directly.
#'
#' @param rna,other The two Seurat objects of [RunBiCLUM()] (`res$rna`, `res$other`).
#' @param reduction Name of the BiCLUM reduction in both.
#' @return A Seurat object.
#' @seealso [RunBiCLUM()].
#' @export
MergeBiCLUM <- function(rna, other, reduction = "biclum") {
  .check_seurat(rna, "rna")
  .check_seurat(other, "other")
  dr_rna <- .get_reduction(rna, reduction, "rna")
  dr_other <- .get_reduction(other, reduction, "other")
  modality <- SeuratObject::Misc(dr_other)$modality %||% "other"
  clash <- length(intersect(colnames(rna), colnames(other))) > 0
  strip <- function(x) {
    for (r in SeuratObject::Reductions(x)) x[[r]] <- NULL
    x
  }
  merged <- merge(strip(rna), strip(other), add.cell.ids = if (clash) c("rna", modality) else NULL)
  emb <- rbind(SeuratObject::Embeddings(dr_rna)[colnames(rna), , drop = FALSE],
               SeuratObject::Embeddings(dr_other)[colnames(other), , drop = FALSE])
  rownames(emb) <- colnames(merged)
  misc <- c(SeuratObject::Misc(dr_rna), list(side = "merged", other_loadings = SeuratObject::Loadings(dr_other)))
  misc$has_mnn_partner <- NULL
  merged[[reduction]] <- SeuratObject::CreateDimReducObject(
    embeddings = emb, loadings = SeuratObject::Loadings(dr_rna), assay = SeuratObject::DefaultAssay(dr_rna),
    stdev = as.numeric(apply(emb, 2, stats::sd)), key = SeuratObject::Key(dr_rna), misc = misc)
  merged$modality <- factor(rep(c("rna", modality), c(ncol(rna), ncol(other))), levels = c("rna", modality))
  merged
}

.get_reduction <- function(x, name, what) {
  if (!name %in% SeuratObject::Reductions(x)) {
    stop(.input_error(paste0(what, ": the Seurat object has no reduction '", name, "'; run RunBiCLUM() first or ",
                             "give its reduction.name as reduction=."), "biclum_no_reduction"))
  }
  x[[name]]
}

# A Seurat object's reduction (or an SCE's reducedDim) of that name is replaced with a message, or (overwrite =
# FALSE) refused.
.check_new_reduction <- function(x, name, what, overwrite, arg = "reduction.name") {
  if (!is.character(name) || length(name) != 1 || is.na(name) || !nzchar(name)) {
    stop(.input_error(paste0(arg, " must be one non-empty name, not ", paste(format(name), collapse = ", "), "."),
                      "biclum_bad_argument"))
  }
  have <- if (inherits(x, "Seurat")) SeuratObject::Reductions(x) else
    tryCatch(SingleCellExperiment::reducedDimNames(x), error = function(e) character())
  .replace_or_stop(name %in% have, what, if (inherits(x, "Seurat")) "reduction" else "reducedDim", name,
                   overwrite, arg)
}

.check_new_assay <- function(x, name, source, overwrite) {
  if (identical(name, source)) {
    stop(.input_error(paste0("activity.assay must differ from the peak assay '", source, "'; give the assay of ",
                             "peak counts as other.assay= (or another activity.assay=)."), "biclum_bad_argument"))
  }
  .replace_or_stop(name %in% SeuratObject::Assays(x), "other", "assay", name, overwrite, "activity.assay")
}

# The gene-activity assay becomes the ATAC object's default assay, as the PCA's assay is after Seurat::RunPCA(), so
# that DimHeatmap(), ProjectDim() and FetchData() find the genes of the loadings; biclum's peak functions still read
# the peak assay (.peak_or_default_assay). One message says so and how to switch back.
.activity_as_default <- function(x, activity.assay, peak.assay, announce = TRUE) {
  if (identical(SeuratObject::DefaultAssay(x), activity.assay)) return(x) # a second RunBiCLUM: nothing changes
  SeuratObject::DefaultAssay(x) <- activity.assay
  if (announce) {
    .emit(paste0("biclum: the default assay of the ATAC object is now '", activity.assay, "' (the gene activities of ",
                 "the loadings, as after RunPCA); DefaultAssay(atac) <- \"", peak.assay, "\" switches back. ",
                 "GenePeakLinks(), BiCLUMGeneActivity() and RunBiCLUM() read the peaks from '", peak.assay,
                 "' either way."), "biclum_default_assay")
  }
  x
}

.replace_or_stop <- function(exists, what, kind, name, overwrite, arg) {
  if (!exists) return(invisible(FALSE))
  if (!isTRUE(overwrite)) {
    stop(.input_error(paste0(
      what, ": the object already has a ", kind, " '", name, "'; pass overwrite = TRUE to replace it, ",
      "or choose another ", arg, "."), "biclum_reduction_exists"))
  }
  .emit(paste0("biclum: ", what, ": replacing its ", kind, " '", name, "'"), "biclum_replace")
  invisible(TRUE)
}

# The gene-activity mode the model moved the peaks with (Python's gene_activity="auto" resolved), so that the
# activity assay holds the genes of the loadings; "gene_body" (the package's mode before the rule) otherwise.
.activity_mode <- function(params) {
  mode <- params[["gene_activity_used"]]
  if (is.character(mode) && length(mode) == 1L && mode %in% c("gene_body", "promoter", "distance_weighted")) mode
  else "gene_body"
}
