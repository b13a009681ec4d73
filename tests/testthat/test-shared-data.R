# Real data from ../shared/data (BICLUM_SHARED_DATA): SNARE-seq (RNA + ATAC) and ECCITE (RNA + ADT),
# loaded into Seurat v4 objects and SCEs; R and Python give the same embeddings with the same seed.
# Few epochs (BICLUM_TEST_EPOCHS, default 1): the point is the equality, not the fit.

snare <- function() {
  if (is.null(.biclum_test_cache$snare)) {
    rna_path <- skip_if_no_data("mop_snareseq_chen2019", "rna.h5ad")
    atac_path <- skip_if_no_data("mop_snareseq_chen2019", "atac.h5ad")
    ann_path <- skip_if_no_data("annotation", "mm10_genes.tsv.gz")
    rna_py <- read_h5ad_py(rna_path)
    atac_py <- read_h5ad_py(atac_path)
    rna <- anndata_to_seurat(rna_py, assay = "RNA")
    atac <- anndata_to_seurat(atac_py, assay = "ATAC")
    res <- RunBiCLUM(rna, atac, modality = "atac", annotation = ann_path, seed = 0L, max_epochs = test_epochs(),
                     verbose = FALSE, batch_size = snare_batch)
    py <- py_integrate(rna_py, atac_py, "atac", ann_path, seed = 0L, max_epochs = test_epochs(),
                       batch_size = snare_batch)
    .biclum_test_cache$snare <- list(rna_py = rna_py, atac_py = atac_py, rna = rna, atac = atac, ann = ann_path,
                                     res = res, py = py)
  }
  .biclum_test_cache$snare
}

test_that("SNARE-seq: RunBiCLUM on Seurat objects equals the Python API (same seed)", {
  skip_if_no_biclum_python()
  s <- snare()
  expect_true(inherits(s$atac[["ATAC"]], c("Assay", "Assay5"))) # v4 or v5 objects
  for (side in c("rna", "other")) {
    e_py <- py_embeddings(s$py, side)
    e_r <- SeuratObject::Embeddings(s$res[[side]][["biclum"]])
    expect_identical(rownames(e_r), rownames(e_py))
    d <- max_abs_diff(unname(e_r), unname(e_py))
    message(sprintf("SNARE-seq %s: max |R - Python| = %.3g", side, d))
    expect_lt(d, 1e-5)
  }
  # loadings: rownames are the genes used (RNA genes; gene-activity genes for ATAC)
  load_rna <- SeuratObject::Loadings(s$res$rna[["biclum"]])
  used_py <- reticulate::py_to_r(s$py$rna$var[["biclum_feature"]]$values)
  expect_setequal(rownames(load_rna), rownames(s$rna)[used_py])
  expect_true(all(rownames(load_rna) %in% rownames(s$rna)))
  load_atac <- SeuratObject::Loadings(s$res$other[["biclum"]])
  genes_atac <- reticulate::py_to_r(s$py$other$var_names$tolist())
  used_atac <- reticulate::py_to_r(s$py$other$var[["biclum_feature"]]$values)
  expect_setequal(rownames(load_atac), genes_atac[used_atac])
})

test_that("SNARE-seq: DimPlot and ProjectDim work on the result", {
  skip_if_no_biclum_python()
  skip_if_not_installed("Seurat")
  s <- snare()
  p <- Seurat::DimPlot(s$res$other, reduction = "biclum", group.by = "cell_type")
  expect_s3_class(ggplot2::ggplot_build(p), "ggplot_built")
  obj <- Seurat::ScaleData(Seurat::NormalizeData(s$res$rna, verbose = FALSE), verbose = FALSE)
  obj <- withCallingHandlers(Seurat::ProjectDim(obj, reduction = "biclum", verbose = FALSE),
                             warning = function(w) if (grepl("make.names", conditionMessage(w)))
                               invokeRestart("muffleWarning")) # Seurat's own command-log name warning
  expect_equal(nrow(SeuratObject::Loadings(obj[["biclum"]], projected = TRUE)), nrow(obj))
})

test_that("SNARE-seq as SCEs: runBiCLUM equals RunBiCLUM on the Seurat objects", {
  skip_if_no_biclum_python()
  skip_if_not_installed("SingleCellExperiment")
  s <- snare()
  rna <- anndata_to_sce(s$rna_py)
  atac <- anndata_to_sce(s$atac_py)
  expect_s4_class(SummarizedExperiment::rowRanges(atac), "GRanges")
  res <- runBiCLUM(rna, atac, modality = "atac", annotation = s$ann, seed = 0L, max_epochs = test_epochs(),
                   verbose = FALSE, batch_size = snare_batch)
  for (side in c("rna", "other")) {
    e_sce <- SingleCellExperiment::reducedDim(res[[side]], "BiCLUM")
    e_seu <- SeuratObject::Embeddings(s$res[[side]][["biclum"]])
    d <- max_abs_diff(unname(unclass(e_sce)[, ]), unname(e_seu))
    message(sprintf("SNARE-seq SCE %s: max |SCE - Seurat| = %.3g", side, d))
    expect_lt(d, 1e-5)
    rot <- attr(e_sce, "rotation")
    expect_identical(rownames(rot), rownames(SeuratObject::Loadings(s$res[[side]][["biclum"]])))
  }
  if (requireNamespace("scater", quietly = TRUE)) {
    expect_s3_class(scater::plotReducedDim(res$other, "BiCLUM", colour_by = "cell_type"), "ggplot")
  }
})

test_that("ECCITE (RNA + ADT): runBiCLUM on SCEs equals RunBiCLUM on Seurat and the Python API", {
  skip_if_no_biclum_python()
  skip_if_not_installed("SingleCellExperiment")
  rna_path <- skip_if_no_data("eccite_pbmc_mimitou2019_citefuse", "rna.h5ad")
  adt_path <- skip_if_no_data("eccite_pbmc_mimitou2019_citefuse", "adt.h5ad")
  rna_py <- read_h5ad_py(rna_path)
  adt_py <- read_h5ad_py(adt_path)
  seu <- RunBiCLUM(anndata_to_seurat(rna_py), anndata_to_seurat(adt_py, assay = "ADT"), modality = "protein",
                   seed = 0L, max_epochs = test_epochs(), verbose = FALSE, batch_size = eccite_batch)
  sce <- runBiCLUM(anndata_to_sce(rna_py), anndata_to_sce(adt_py), modality = "protein", seed = 0L,
                   max_epochs = test_epochs(), verbose = FALSE, batch_size = eccite_batch)
  py <- py_integrate(rna_py, adt_py, "protein", seed = 0L, max_epochs = test_epochs(), batch_size = eccite_batch)
  for (side in c("rna", "other")) {
    e_seu <- SeuratObject::Embeddings(seu[[side]][["biclum"]])
    e_sce <- unclass(SingleCellExperiment::reducedDim(sce[[side]], "BiCLUM"))[, ]
    e_py <- py_embeddings(py, side)
    d1 <- max_abs_diff(unname(e_sce), unname(e_seu))
    d2 <- max_abs_diff(unname(e_seu[rownames(e_py), ]), unname(e_py))
    message(sprintf("ECCITE %s: max |SCE - Seurat| = %.3g, max |Seurat - Python| = %.3g", side, d1, d2))
    expect_lt(d1, 1e-5)
    expect_lt(d2, 1e-5)
  }
  rot <- attr(SingleCellExperiment::reducedDim(sce$rna, "BiCLUM"), "rotation")
  expect_true(all(rownames(rot) %in% rownames(sce$rna)))
})
