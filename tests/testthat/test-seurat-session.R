# A Seurat session as a user runs it, on real ATAC (ArchR's small PBMC, RNA + 5-kb tiles, hg19) with the defaults:
# RunBiCLUM, then Seurat's FindNeighbors, RunUMAP, VizDimLoadings and the bare DimHeatmap(atac, reduction =
# "biclum") on the ATAC object (no ScaleData first: RunBiCLUM gives the gene-activity assay of the loadings its
# scale.data and makes it the default assay, with a message, as the PCA's assay is after RunPCA; Seurat's
# DimHeatmap reads the default assay), merge, and a second RunBiCLUM on the returned objects (which reads the peaks
# it recorded). Every step runs, and none raises a warning: the automatic choices (e.g. a batch size capped to the
# cells there are) are messages or log lines, not warnings.

test_that("ArchR PBMC ATAC: RunBiCLUM, FindNeighbors, RunUMAP, VizDimLoadings, DimHeatmap, merge, no warnings", {
  skip_if_no_biclum_python()
  skip_if_not_installed("Seurat")
  skip_if_not_installed("ggplot2")
  dir <- dirname(skip_if_no_data("pbmc_small_archr_testdata", "rna.h5ad"))
  ann <- skip_if_no_data("annotation", "hg19_genes.tsv.gz")
  rna <- anndata_to_seurat(read_h5ad_py(file.path(dir, "rna.h5ad")), assay = "RNA")
  atac <- anndata_to_seurat(read_h5ad_py(file.path(dir, "atac_tiles5kb.h5ad")), assay = "peaks")
  warns <- character()
  msgs <- character()
  user <- function(expr) withCallingHandlers(expr, warning = function(w) {
    warns <<- c(warns, conditionMessage(w))
    invokeRestart("muffleWarning")
  }, message = function(m) {
    msgs <<- c(msgs, paste(class(m)[1], conditionMessage(m)))
    invokeRestart("muffleMessage")
  })

  res <- user(RunBiCLUM(rna, atac, modality = "atac", annotation = ann, max_epochs = test_epochs()))
  atac <- res$other
  # the gene activities are the default assay now, as after RunPCA; one message says so and how to switch back
  expect_identical(SeuratObject::DefaultAssay(atac), "BiclumActivity")
  expect_identical(sum(grepl("^biclum_default_assay", msgs)), 1L)
  expect_true(any(grepl('DefaultAssay(atac) <- "peaks"', msgs, fixed = TRUE)))
  atac <- user(Seurat::FindNeighbors(atac, reduction = "biclum", dims = 1:10, verbose = FALSE))
  atac <- user(Seurat::RunUMAP(atac, reduction = "biclum", dims = 1:10, verbose = FALSE))
  expect_equal(nrow(SeuratObject::Embeddings(atac[["umap"]])), ncol(atac))
  vl <- user(Seurat::VizDimLoadings(atac, reduction = "biclum", dims = 1:2))
  expect_s3_class(ggplot2::ggplot_build(vl), "ggplot_built")
  hm <- user(Seurat::DimHeatmap(atac, reduction = "biclum", dims = 1:2, fast = FALSE))
  expect_s3_class(ggplot2::ggplot_build(hm[[1]] %||% hm), "ggplot_built")
  # the heatmap's genes: the BiclumActivity assay's scale.data holds the genes of the loadings
  genes <- rownames(SeuratObject::Loadings(atac[["biclum"]]))
  scaled <- SeuratObject::GetAssayData(atac[["BiclumActivity"]], "scale.data")
  expect_setequal(rownames(scaled), intersect(genes, rownames(atac[["BiclumActivity"]])))
  both <- user(merge(res$rna, atac, add.cell.ids = c("rna", "atac")))
  expect_equal(ncol(both), ncol(res$rna) + ncol(atac))
  merged <- user(MergeBiCLUM(res$rna, atac))
  merged <- user(Seurat::RunUMAP(merged, reduction = "biclum", dims = 1:10, verbose = FALSE))
  expect_equal(nrow(SeuratObject::Embeddings(merged[["umap"]])), ncol(res$rna) + ncol(atac))
  # a second RunBiCLUM on the returned objects reads the peaks, replaces the reduction and the activity assay (with
  # messages) and leaves the activity assay the default, without a second default-assay message
  msgs <- character()
  again <- user(RunBiCLUM(res$rna, res$other, modality = "atac", annotation = ann, max_epochs = test_epochs()))
  expect_identical(SeuratObject::DefaultAssay(again$other), "BiclumActivity")
  expect_identical(SeuratObject::Tool(again$other, slot = "RunBiCLUM")$other.assay, "peaks")
  expect_identical(SeuratObject::DefaultAssay(again$other@commands$RunBiCLUM), "peaks")
  expect_true(any(grepl("replacing its reduction 'biclum'", msgs, fixed = TRUE)))
  expect_true(any(grepl("replacing its assay 'BiclumActivity'", msgs, fixed = TRUE)))
  expect_identical(sum(grepl("^biclum_default_assay", msgs)), 0L)
  expect_equal(dim(SeuratObject::Embeddings(again$other[["biclum"]])), dim(SeuratObject::Embeddings(res$other[["biclum"]])))
  # Seurat 4's once-per-session notice about RunUMAP's default method is Seurat's own, not biclum's
  warns <- warns[!grepl("default method for RunUMAP has changed", warns, fixed = TRUE)]
  expect_identical(warns, character())
})
