#' biclum: bilateral contrastive learning for unpaired single-cell multi-omics integration
#'
#' R interface to the biclum Python package. Main functions: [RunBiCLUM()] (Seurat),
#' [runBiCLUM()] (SingleCellExperiment), [MergeBiCLUM()], [ProjectBiCLUM()] / [projectBiCLUM()] (new cells onto a
#' saved model), the conversion helpers [seurat_to_anndata()],
#' [anndata_to_seurat()], [sce_to_anndata()], [anndata_to_sce()], and [biclum_install()] /
#' [biclum_available()] for the Python environment.
#'
#' Downstream analyses on the Seurat objects `RunBiCLUM()` returns: [MatchCells()], [TransferLabels()],
#' [MatchedMetacells()], [GenePeakLinks()], [BiCLUMGeneActivity()], [TFActivity()], [CompareTFActivity()],
#' [FindBiCLUMMarkers()], [CrossModalMarkers()], [EmbeddingMarkers()], [TopMarkers()], [MarkerOverlap()],
#' [Enrichment()], [ReadGMT()], [GOGeneSets()], [LigandReceptor()] and [biclum_example()].
#'
#' Options: `biclum.python` (a Python interpreter to use when `RETICULATE_PYTHON` is unset),
#' `biclum.envname` (virtualenv name, default `"r-biclum"`), `biclum.progress_interval` (seconds between
#' progress messages, default 1).
#' @keywords internal
#' @importFrom Matrix Matrix
#' @importClassesFrom Matrix dgCMatrix
"_PACKAGE"
