test_that("sparse matrices cross the bridge as x/i/p, both ways, unchanged", {
  skip_if_no_biclum_python()
  set.seed(1)
  m <- Matrix::rsparsematrix(60, 40, 0.1, rand.x = function(n) as.numeric(rpois(n, 3) + 1))
  m[, 5] <- 0 # an empty cell
  m[7, ] <- 0 # an empty feature
  m <- Matrix::drop0(m)
  dimnames(m) <- list(paste0("g", 1:60), paste0("c", 1:40))
  spec <- biclum:::.dgc_to_py(m)
  bridge <- reticulate::import("biclum.bridge", convert = FALSE)
  X <- bridge$sparse_from_vectors(spec["x"], spec["i"], spec["p"], spec["dim"])
  # Python sees cells x features with the same values (checked against a dense copy made in Python)
  dense_py <- reticulate::py_to_r(X$toarray())
  expect_equal(dim(dense_py), c(40L, 60L))
  expect_equal(unname(dense_py), unname(as.matrix(Matrix::t(m))))
  expect_equal(reticulate::py_to_r(X$format), "csr")
  back <- biclum:::.vectors_to_dgc(c(biclum:::.py_deep(bridge$sparse_to_vectors(X)),
                                     list(obs_names = colnames(m), var_names = rownames(m))))
  expect_s4_class(back, "dgCMatrix")
  expect_identical(back, m)
})

test_that("metadata columns keep their types across the bridge", {
  skip_if_no_biclum_python()
  df <- data.frame(f = factor(c("a", NA, "b", "a")), s = c("x", NA, "z", "w"), l = c(TRUE, FALSE, TRUE, TRUE),
                   i = 1:4, d = c(0.5, NA, 2, 3), stringsAsFactors = FALSE)
  py <- biclum:::.df_to_py(df)
  bridge <- reticulate::import("biclum.bridge", convert = FALSE)
  pdf <- bridge$columns_to_frame(py, index = as.list(paste0("c", 1:4)))
  back <- biclum:::.columns_df(biclum:::.py_deep(bridge$frame_to_columns(pdf)), paste0("c", 1:4))
  rownames(df) <- paste0("c", 1:4)
  expect_equal(back, df)
})

test_that("seurat_to_anndata / anndata_to_seurat round trip keeps counts and metadata", {
  skip_if_no_biclum_python()
  set.seed(2)
  m <- Matrix::rsparsematrix(50, 30, 0.2, rand.x = function(n) as.numeric(rpois(n, 5) + 1))
  dimnames(m) <- list(paste0("chr1-", seq(1000, by = 1000, length.out = 50), "-", seq(1500, by = 1000, length.out = 50)),
                      paste0("cell", 1:30))
  obj <- SeuratObject::CreateSeuratObject(m, assay = "peaks", meta.data = data.frame(
    cell_type = factor(rep(c("A", "B", "C"), 10)), row.names = colnames(m)))
  ad <- seurat_to_anndata(obj)
  expect_s3_class(ad, "anndata._core.anndata.AnnData")
  expect_equal(unlist(reticulate::py_to_r(ad$shape)), c(30, 50))
  var <- reticulate::py_to_r(ad$var$columns$tolist())
  expect_true(all(c("chrom", "start", "end") %in% var))
  back <- anndata_to_seurat(ad, assay = "peaks")
  expect_identical(counts_of(back), counts_of(obj))
  expect_equal(back$cell_type, obj$cell_type)
})

test_that("sce_to_anndata / anndata_to_sce round trip keeps counts, colData and rowRanges", {
  skip_if_no_biclum_python()
  skip_if_not_installed("SingleCellExperiment")
  skip_if_not_installed("GenomicRanges")
  set.seed(3)
  m <- Matrix::rsparsematrix(40, 25, 0.2, rand.x = function(n) as.numeric(rpois(n, 5) + 1))
  gr <- GenomicRanges::GRanges("chr2", IRanges::IRanges(start = seq(100, by = 500, length.out = 40), width = 200))
  dimnames(m) <- list(paste0("peak", 1:40), paste0("cell", 1:25))
  sce <- SingleCellExperiment::SingleCellExperiment(list(counts = m), rowRanges = gr,
                                                     colData = S4Vectors::DataFrame(type = rep(c("x", "y"), length.out = 25)))
  names(SummarizedExperiment::rowRanges(sce)) <- rownames(m)
  ad <- sce_to_anndata(sce)
  var <- reticulate::py_to_r(ad$var$columns$tolist())
  expect_true(all(c("chrom", "start", "end") %in% var))
  back <- anndata_to_sce(ad)
  expect_identical(SummarizedExperiment::assay(back, "counts"), m)
  expect_equal(back$type, sce$type)
  expect_equal(GenomicRanges::start(SummarizedExperiment::rowRanges(back)), GenomicRanges::start(gr))
  expect_equal(as.character(GenomicRanges::seqnames(SummarizedExperiment::rowRanges(back))), rep("chr2", 40))
})

test_that("dense and non-dgC inputs are accepted without densifying sparse ones", {
  m <- matrix(rpois(20, 2), 4, 5, dimnames = list(letters[1:4], LETTERS[1:5]))
  d <- biclum:::.as_dgc(m)
  expect_s4_class(d, "dgCMatrix")
  expect_equal(as.matrix(d), m * 1.0)
  tm <- methods::as(Matrix::Matrix(m, sparse = TRUE), "TsparseMatrix")
  expect_s4_class(biclum:::.as_dgc(tm), "dgCMatrix")
})
