# Known pairs (paired = ) through RunBiCLUM: the count used, the unpaired result without rows, bad input.

paired_seurat <- function() {
  s <- sim_pair(200L, "protein", paired = TRUE)
  quiet <- function(expr) withCallingHandlers(expr, warning = function(w) {
    if (grepl("underscores", conditionMessage(w))) invokeRestart("muffleWarning")
  })
  list(rna = anndata_to_seurat(s$rna_py, assay = "RNA"), other = quiet(anndata_to_seurat(s$other_py, assay = "ADT")))
}

test_that("RunBiCLUM takes known pairs as a data.frame or TRUE, and no rows give the unpaired result", {
  skip_if_no_biclum_python()
  d <- paired_seurat()
  cells <- colnames(d$rna)
  fit <- function(...) RunBiCLUM(d$rna, d$other, modality = "protein", max_epochs = 1L, batch_size = sim_batch,
                                 verbose = FALSE, ...)
  some <- fit(paired = data.frame(rna = cells[1:20], other = cells[1:20]))
  expect_identical(as.integer(SeuratObject::Tool(some$rna, slot = "RunBiCLUM")$params$n_known_pairs), 20L)
  all <- fit(paired = TRUE)
  expect_identical(as.integer(SeuratObject::Tool(all$rna, slot = "RunBiCLUM")$params$n_known_pairs), 200L)
  plain <- fit()
  empty <- fit(paired = data.frame(rna = character(), other = character()))
  for (side in c("rna", "other")) {
    expect_identical(SeuratObject::Embeddings(empty[[side]][["biclum"]]),
                     SeuratObject::Embeddings(plain[[side]][["biclum"]]))
  }
  expect_identical(as.integer(SeuratObject::Tool(plain$rna, slot = "RunBiCLUM")$params$n_known_pairs), 0L)
})

test_that("unknown pair names and a wrong paired value stop with the fix; the objects are unchanged", {
  skip_if_no_biclum_python()
  d <- paired_seurat()
  before <- d$rna
  err <- tryCatch(RunBiCLUM(d$rna, d$other, modality = "protein", max_epochs = 1L, verbose = FALSE,
                            paired = data.frame(rna = c(colnames(d$rna)[1], "nope"), other = colnames(d$other)[1:2])),
                  error = function(e) e)
  expect_s3_class(err, "biclum_input_error")
  expect_match(conditionMessage(err), "not in the inputs")
  expect_error(RunBiCLUM(d$rna, d$other, modality = "protein", paired = 42, verbose = FALSE),
               class = "biclum_bad_paired")
  expect_identical(d$rna, before)
})
