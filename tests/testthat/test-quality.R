# Integration quality through RunBiCLUM with default settings and the default training budget (not one epoch):
# the ArchR small PBMC (unpaired RNA + 5-kb ATAC tiles). The joint-PCA floor transfers RNA labels to ATAC cells
# with 5-NN accuracy 0.72 (../shared/ANCHORS.md); biclum about 0.86 (benchmarks/results/archr_runbiclum.md).
# BICLUM_QUALITY_USE_FLOOR=1 replaces biclum's embeddings with the floor's, to show the test catches it.

knn_transfer <- function(src, src_lab, dst, dst_lab, k = 5) {
  d <- as.matrix(stats::dist(rbind(dst, src)))[seq_len(nrow(dst)), nrow(dst) + seq_len(nrow(src)), drop = FALSE]
  pred <- apply(d, 1, function(r) { nn <- src_lab[order(r)[seq_len(k)]]; names(which.max(table(nn))) })
  mean(pred == dst_lab)
}

test_that("ArchR small PBMC: RunBiCLUM transfers RNA labels to ATAC cells well above the PCA floor", {
  skip_if_no_biclum_python()
  rna_path <- skip_if_no_data("pbmc_small_archr_testdata", "rna.h5ad")
  atac_path <- skip_if_no_data("pbmc_small_archr_testdata", "atac_tiles5kb.h5ad")
  ann <- skip_if_no_data("annotation", "hg19_genes.tsv.gz")
  rna <- anndata_to_seurat(read_h5ad_py(rna_path), assay = "RNA")
  atac <- anndata_to_seurat(read_h5ad_py(atac_path), assay = "peaks")
  if (identical(Sys.getenv("BICLUM_QUALITY_USE_FLOOR"), "1")) {
    bl <- reticulate::import("biclum.benchmark.baselines")
    prior <- reticulate::import("biclum.prior")
    ga <- prior$gene_activity(read_h5ad_py(atac_path), ann)
    fl <- bl$pca_floor(read_h5ad_py(rna_path), ga)
    er <- as.matrix(fl[[1]]); eo <- as.matrix(fl[[2]])  # converted by reticulate already
    rownames(er) <- colnames(rna); rownames(eo) <- colnames(atac)
  } else {
    res <- suppressMessages(RunBiCLUM(rna, atac, modality = "atac", annotation = ann, seed = 0L, verbose = FALSE))
    er <- SeuratObject::Embeddings(res$rna, "biclum"); eo <- SeuratObject::Embeddings(res$other, "biclum")
  }
  acc <- knn_transfer(er, rna$cell_type[rownames(er)], eo, atac$cell_type[rownames(eo)])
  expect_gt(acc, 0.80)
})
