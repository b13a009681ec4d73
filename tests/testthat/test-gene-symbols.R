# gene.symbols: RNA rows named by Ensembl IDs, symbols given alongside (passed to Python's gene_symbols).

test_that("gene.symbols names Ensembl-indexed RNA rows; results keep the rownames", {
  skip_if_no_biclum_python()
  d <- sim_seurat("protein")
  rna <- counts_of(d$rna)
  adt <- counts_of(d$other)
  symbols <- rownames(rna)
  rownames(rna) <- sprintf("ENSG%011d", seq_len(nrow(rna)))
  err <- tryCatch(RunBiCLUM(rna, adt, modality = "protein", max_epochs = 1L, verbose = FALSE,
                            batch_size = sim_batch), error = function(e) e)
  expect_s3_class(err, "biclum_input_error")
  expect_match(conditionMessage(err), "Ensembl")
  res <- suppressWarnings(RunBiCLUM(rna, adt, modality = "protein", max_epochs = 1L, verbose = FALSE,
                                    batch_size = sim_batch, gene.symbols = symbols))
  load <- SeuratObject::Loadings(res$rna)
  expect_gt(nrow(load), 0)
  expect_true(all(startsWith(rownames(load), "ENSG")))
  expect_error(RunBiCLUM(rna, adt, modality = "protein", gene.symbols = symbols[-1], verbose = FALSE),
               class = "biclum_bad_gene_symbols")
})
