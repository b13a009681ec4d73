# runBiCLUM for SingleCellExperiment objects on small simulated data.

sim_sce <- function(modality = "atac", n_cells = 200L) {
  key <- paste("sce", modality, n_cells)
  if (is.null(.biclum_test_cache[[key]])) {
    s <- sim_pair(n_cells, modality)
    .biclum_test_cache[[key]] <- list(rna = anndata_to_sce(s$rna_py), other = anndata_to_sce(s$other_py),
                                      annotation = s$annotation, sim = s)
  }
  .biclum_test_cache[[key]]
}

test_that("runBiCLUM stores reducedDim with rotation, rowData and metadata, inputs unchanged", {
  skip_if_no_biclum_python()
  skip_if_not_installed("SingleCellExperiment")
  d <- sim_sce("atac")
  expect_s4_class(SummarizedExperiment::rowRanges(d$other), "GRanges")
  rna_before <- d$rna
  res <- runBiCLUM(d$rna, d$other, modality = "atac", annotation = d$annotation, max_epochs = 1L,
                   batch_size = sim_batch,
                   verbose = FALSE)
  expect_named(res, c("rna", "other"))
  expect_identical(d$rna, rna_before)
  expect_false("BiCLUM" %in% SingleCellExperiment::reducedDimNames(d$rna))
  for (side in c("rna", "other")) {
    emb <- SingleCellExperiment::reducedDim(res[[side]], "BiCLUM")
    expect_identical(rownames(emb), colnames(d[[side]]))
    rot <- attr(emb, "rotation")
    expect_true(is.matrix(rot))
    expect_identical(colnames(rot), colnames(emb))
    expect_gt(nrow(rot), 100)
    meta <- S4Vectors::metadata(res[[side]])$BiCLUM
    expect_identical(meta$genes_used, rownames(rot))
    expect_true(length(meta$params) > 5)
  }
  rd <- SummarizedExperiment::rowData(res$rna)
  expect_true(all(c("BiCLUM_loadings", "BiCLUM_used") %in% names(rd)))
  used <- rd$BiCLUM_used
  rot <- attr(SingleCellExperiment::reducedDim(res$rna, "BiCLUM"), "rotation")
  expect_equal(unname(rd$BiCLUM_loadings[used, , drop = FALSE]), unname(rot[rownames(res$rna)[used], ]))
  expect_true(all(is.na(rd$BiCLUM_loadings[!used, ])))
  # ATAC loadings are in gene space
  rot_atac <- attr(SingleCellExperiment::reducedDim(res$other, "BiCLUM"), "rotation")
  expect_true(all(rownames(rot_atac) %in% d$annotation$gene_name))
  # same as the Seurat interface on the equivalent objects (the fit of test-RunBiCLUM.R, same data/settings)
  seu <- sim_fit()$res
  for (side in c("rna", "other")) {
    expect_lt(max_abs_diff(unname(unclass(SingleCellExperiment::reducedDim(res[[side]], "BiCLUM"))[, ]),
                           unname(SeuratObject::Embeddings(seu[[side]][["biclum"]]))), 1e-5)
  }
  .biclum_test_cache$sce_fit <- res
})

test_that("plotReducedDim works on the result", {
  skip_if_no_biclum_python()
  skip_if_not_installed("scater")
  res <- .biclum_test_cache$sce_fit
  if (is.null(res)) skip("the runBiCLUM fit above did not run")
  p <- scater::plotReducedDim(res$rna, "BiCLUM", colour_by = "cell_type")
  expect_s3_class(p, "ggplot")
  expect_s3_class(ggplot2::ggplot_build(p), "ggplot_built")
})

test_that("combine = TRUE returns one SCE with a modality column", {
  skip_if_no_biclum_python()
  skip_if_not_installed("SingleCellExperiment")
  d <- sim_sce("protein")
  msgs <- testthat::capture_messages(
    comb <- runBiCLUM(d$rna, d$other, modality = "protein", max_epochs = 1L, combine = TRUE,
                      batch_size = sim_batch))
  expect_true(any(grepl("biclum: train 1/1", msgs)))
  expect_s4_class(comb, "SingleCellExperiment")
  expect_identical(ncol(comb), ncol(d$rna) + ncol(d$other))
  expect_identical(levels(comb$modality), c("rna", "protein"))
  expect_true("cell_type" %in% names(SummarizedExperiment::colData(comb)))
  emb <- SingleCellExperiment::reducedDim(comb, "BiCLUM")
  expect_identical(nrow(emb), ncol(comb))
  expect_true(is.matrix(attr(emb, "rotation")))
  if (requireNamespace("scater", quietly = TRUE)) {
    expect_s3_class(scater::plotReducedDim(comb, "BiCLUM", colour_by = "modality"), "ggplot")
  }
})

test_that("runBiCLUM errors clearly on a missing assay and on peaks without coordinates", {
  skip_if_no_biclum_python()
  skip_if_not_installed("SingleCellExperiment")
  d <- sim_sce("atac")
  expect_error(runBiCLUM(d$rna, d$other, modality = "atac", other.assay = "peaks"),
               "no assay 'peaks' \\(its assays: counts\\)", class = "biclum_no_assay")
  other <- SingleCellExperiment::SingleCellExperiment(
    list(counts = SummarizedExperiment::assay(d$other, "counts")))
  rownames(other) <- paste0("region", seq_len(nrow(other)))
  expect_error(runBiCLUM(d$rna, other, modality = "atac", annotation = d$annotation),
               "needs peak coordinates", class = "biclum_no_coordinates")
})

test_that("the matrix method of runBiCLUM returns embeddings with rotation", {
  skip_if_no_biclum_python()
  skip_if_not_installed("SingleCellExperiment")
  d <- sim_sce("protein")
  res <- runBiCLUM(SummarizedExperiment::assay(d$rna, "counts"), SummarizedExperiment::assay(d$other, "counts"),
                   modality = "protein", max_epochs = 1L, verbose = FALSE, batch_size = sim_batch)
  expect_true(is.matrix(res$rna))
  expect_true(is.matrix(attr(res$rna, "rotation")))
  expect_identical(rownames(res$other), colnames(d$other))
})

test_that("runBiCLUM replaces an existing reducedDim with a message; overwrite = FALSE refuses", {
  skip_if_no_biclum_python()
  skip_if_not_installed("SingleCellExperiment")
  res <- .biclum_test_cache$sce_fit
  if (is.null(res)) skip("the runBiCLUM fit above did not run")
  d <- sim_sce("atac")
  expect_error(runBiCLUM(res$rna, d$other, modality = "atac", annotation = d$annotation, verbose = FALSE,
                         overwrite = FALSE),
               "rna: the object already has a reducedDim 'BiCLUM'; pass overwrite = TRUE to replace it, or choose another name",
               fixed = TRUE, class = "biclum_reduction_exists")
  expect_error(runBiCLUM(d$rna, res$other, modality = "atac", annotation = d$annotation, verbose = FALSE,
                         overwrite = FALSE),
               "other: the object already has a reducedDim 'BiCLUM'", class = "biclum_reduction_exists")
  expect_message(res2 <- runBiCLUM(res$rna, res$other, modality = "atac", annotation = d$annotation, max_epochs = 1L,
                                   batch_size = sim_batch, verbose = FALSE),
                 "rna: replacing its reducedDim 'BiCLUM'", class = "biclum_replace")
  expect_identical(SingleCellExperiment::reducedDimNames(res2$rna), "BiCLUM")
  expect_lt(max_abs_diff(unclass(SingleCellExperiment::reducedDim(res2$rna, "BiCLUM"))[, ],
                         unclass(SingleCellExperiment::reducedDim(res$rna, "BiCLUM"))[, ]), 1e-5)
  expect_true(is.logical(SummarizedExperiment::colData(res2$rna)$BiCLUM_has_mnn_partner))
})

test_that("projectBiCLUM maps cells onto a saved model: the training cells get their fitted embeddings", {
  skip_if_no_biclum_python()
  skip_if_not_installed("SingleCellExperiment")
  d <- sim_sce("atac")
  model <- file.path(tempdir(), "biclum-sce-model")
  on.exit(unlink(model, recursive = TRUE), add = TRUE)
  res <- runBiCLUM(d$rna, d$other, modality = "atac", annotation = d$annotation, max_epochs = 1L,
                   batch_size = sim_batch, verbose = FALSE, model_dir = model)
  for (side in c("rna", "atac")) {
    x <- if (side == "rna") d$rna else d$other
    fitted <- SingleCellExperiment::reducedDim(res[[if (side == "rna") "rna" else "other"]], "BiCLUM")
    q <- projectBiCLUM(x, model, modality = side, name = "proj")
    expect_s4_class(q, "SingleCellExperiment")
    emb <- SingleCellExperiment::reducedDim(q, "proj")
    expect_identical(rownames(emb), colnames(x))
    expect_lt(max_abs_diff(unname(emb), unname(unclass(fitted)[, ])), 1e-4)
    q2 <- ProjectBiCLUM(x[, 1:40], model, modality = side) # the generic dispatches to projectBiCLUM
    expect_identical(rownames(SingleCellExperiment::reducedDim(q2, "BiCLUM")), colnames(x)[1:40])
  }
  expect_error(projectBiCLUM(d$rna, file.path(tempdir(), "no-model"), modality = "rna"), "is not a directory",
               class = "biclum_bad_model_dir")
})
