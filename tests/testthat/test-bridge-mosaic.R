# RunBiCLUM(rna, other, bridge = ): Seurat's bridge case on the NeurIPS 2021 BMMC multiome starter (500 paired
# cells): 100 cells as a multiome bridge (RNA + ATAC), 200 as an RNA reference and 200 as an ATAC query (their
# pairing withheld). Small data and few epochs: the point is the plumbing (DimReducs, keys, cells, label transfer
# above a shuffled baseline, errors), not the fit. On SeuratObject 5 the reference's counts are split by donor.

# Test settings: 20 epochs of 64-cell batches at lr 1e-3 (the default schedule gives one step per epoch on 200
# cells).
bridge_fit_args <- list(max_epochs = 20L, batch_size = 64L, lr = 1e-3)

multiome_split <- function() {
  if (is.null(.biclum_test_cache$multiome_split)) {
    rna_path <- skip_if_no_data("neurips2021_bmmc_multiome_starter", "rna.h5ad")
    atac_path <- skip_if_no_data("neurips2021_bmmc_multiome_starter", "atac.h5ad")
    ann <- skip_if_no_data("annotation", "hg38_genes.tsv.gz")
    rna <- anndata_to_seurat(read_h5ad_py(rna_path), assay = "RNA")
    atac <- anndata_to_seurat(read_h5ad_py(atac_path), assay = "ATAC")
    stopifnot(identical(colnames(rna), colnames(atac)))
    set.seed(0)
    cells <- sample(colnames(rna))
    b <- cells[1:100]
    bridge <- subset(rna, cells = b)
    bridge[["ATAC"]] <- subset(atac, cells = colnames(bridge))[["ATAC"]]
    reference <- subset(rna, cells = cells[101:300])
    split <- inherits(reference[["RNA"]], "StdAssay")
    if (split) reference[["RNA"]] <- split(reference[["RNA"]], f = reference$batch)
    .biclum_test_cache$multiome_split <- list(
      bridge = bridge, reference = reference, query = subset(atac, cells = cells[301:500]), annotation = ann,
      split = split)
  }
  .biclum_test_cache$multiome_split
}

bridge_fit <- function() {
  if (is.null(.biclum_test_cache$bridge_fit)) {
    d <- multiome_split()
    msgs <- character()
    res <- withCallingHandlers(
      do.call(RunBiCLUM, c(list(d$reference, d$query, modality = "atac", annotation = d$annotation, seed = 0L,
                                bridge = d$bridge), bridge_fit_args)),
      message = function(m) {
        msgs <<- c(msgs, paste(class(m)[1], conditionMessage(m)))
        invokeRestart("muffleMessage")
      })
    .biclum_test_cache$bridge_fit <- list(res = res, messages = msgs)
  }
  .biclum_test_cache$bridge_fit
}

test_that("RunBiCLUM(bridge = ) returns reference, query and bridge with valid DimReducs of every cell", {
  skip_if_no_biclum_python()
  d <- multiome_split()
  d0 <- d
  res <- bridge_fit()$res
  expect_named(res, c("rna", "other", "bridge"))
  expected <- list(
    list(obj = res$rna, name = "biclum", key = "BICLUM_", assay = "RNA", cells = colnames(d$reference)),
    list(obj = res$other, name = "biclum", key = "BICLUM_", assay = "BiclumActivity", cells = colnames(d$query)),
    list(obj = res$bridge, name = "biclum", key = "BICLUM_", assay = "RNA", cells = colnames(d$bridge)),
    list(obj = res$bridge, name = "biclum.atac", key = "BICLUMATAC_", assay = "ATAC", cells = colnames(d$bridge)))
  for (e in expected) {
    expect_true(methods::validObject(e$obj))
    dr <- e$obj[[e$name]]
    expect_s4_class(dr, "DimReduc")
    expect_identical(SeuratObject::Key(dr), e$key)
    expect_match(SeuratObject::Key(dr), "^[[:alpha:]][[:alnum:]]*_$")
    expect_identical(SeuratObject::DefaultAssay(dr), e$assay)
    emb <- SeuratObject::Embeddings(dr)
    expect_identical(rownames(emb), e$cells) # every cell, none lost (split layers joined on a copy)
    expect_identical(colnames(e$obj), e$cells)
    expect_false(anyNA(emb))
    expect_identical(colnames(emb), paste0(e$key, seq_len(ncol(emb))))
    load <- SeuratObject::Loadings(dr)
    expect_gt(nrow(load), 100)
    expect_identical(colnames(load), colnames(emb))
    expect_true(SeuratObject::Misc(dr)$mosaic)
  }
  # loadings: the RNA genes used; the gene-space feature embeddings of ATAC (the genes of the activity assay)
  expect_true(all(rownames(SeuratObject::Loadings(res$rna[["biclum"]])) %in% rownames(d$reference)))
  expect_true(all(rownames(SeuratObject::Loadings(res$other[["biclum"]])) %in% rownames(res$other[["BiclumActivity"]])))
  expect_identical(unname(SeuratObject::Loadings(res$bridge[["biclum.atac"]])),
                   unname(SeuratObject::Loadings(res$other[["biclum"]])))
  # the query as after a two-object RunBiCLUM: gene activities as default assay, peak assay recorded
  expect_identical(SeuratObject::DefaultAssay(res$other), "BiclumActivity")
  expect_identical(SeuratObject::Tool(res$other, slot = "RunBiCLUM")$other.assay, "ATAC")
  # the bridge keeps its default assay; its Tool() names its assays and reductions; commands are logged
  expect_identical(SeuratObject::DefaultAssay(res$bridge), SeuratObject::DefaultAssay(d$bridge))
  tool <- SeuratObject::Tool(res$bridge, slot = "RunBiCLUM")
  expect_identical(tool$bridge.assays, c(rna = "RNA", other = "ATAC"))
  expect_identical(tool$bridge.reductions, c(rna = "biclum", other = "biclum.atac"))
  expect_identical(tool$side, "bridge")
  expect_gt(tool$params$n_known_pairs, 50)
  for (x in res) expect_true("RunBiCLUM" %in% names(x@commands))
  expect_true(is.logical(res$bridge$biclum_has_mnn_partner) && !anyNA(res$bridge$biclum_has_mnn_partner))
  # the inputs are unchanged
  expect_identical(d, d0)
  expect_false("biclum" %in% SeuratObject::Reductions(d$bridge))
  if (d$split) {
    expect_true(any(grepl("^biclum_join_layers", bridge_fit()$messages)))
    expect_true(length(biclum:::.layer_names(d$reference[["RNA"]], "counts")) > 1)
  }
  # the bridge's pairs sit close: its RNA and ATAC cells are nearer each other than to random partners
  e_rna <- SeuratObject::Embeddings(res$bridge[["biclum"]])
  e_atac <- SeuratObject::Embeddings(res$bridge[["biclum.atac"]])
  sim <- tcrossprod(e_rna / sqrt(rowSums(e_rna^2)), e_atac / sqrt(rowSums(e_atac^2)))
  foscttm <- mean(vapply(seq_len(nrow(sim)), function(i) mean(sim[i, -i] > sim[i, i]), numeric(1)))
  message(sprintf("bridge FOSCTTM (RNA -> ATAC of the same cells): %.3f", foscttm))
  expect_lt(foscttm, 0.3)
})

test_that("TransferLabels moves the reference's labels to the ATAC query above a shuffled baseline", {
  skip_if_no_biclum_python()
  res <- bridge_fit()$res
  q <- TransferLabels(res$other, res$rna, label = "cell_type", k = 15L)
  expect_identical(colnames(q), colnames(res$other))
  truth <- as.character(q$cell_type)
  pred <- q$predicted.cell_type
  expect_false(anyNA(pred))
  acc <- mean(pred == truth)
  set.seed(1)
  shuffled <- mean(replicate(200, mean(pred == sample(truth))))
  message(sprintf("bridge label transfer reference RNA -> query ATAC: accuracy %.3f, label-shuffled %.3f", acc,
                  shuffled))
  expect_gt(acc, shuffled)
})

test_that("a bad bridge stops before fitting with one paragraph naming the fix; the objects are unchanged", {
  skip_if_no_biclum_python()
  d <- multiome_split()
  d0 <- d
  run <- function(..., modality = "atac") suppressMessages(RunBiCLUM(
    d$reference, d$query, modality = modality, annotation = d$annotation, verbose = FALSE, max_epochs = 1L, ...))
  one_paragraph <- function(e) expect_false(grepl("\n", conditionMessage(e)))
  # not a Seurat object
  e <- expect_error(run(bridge = counts_of(d$bridge)), class = "biclum_bad_bridge")
  expect_match(conditionMessage(e), "expected a Seurat object")
  one_paragraph(e)
  # without the ATAC assay
  rna_only <- SeuratObject::CreateSeuratObject(counts = counts_of(d$bridge, "RNA"), assay = "RNA")
  e <- expect_error(run(bridge = rna_only), class = "biclum_bad_bridge")
  expect_match(conditionMessage(e), "bridge.assays = c(rna = \"RNA\", other = \"ATAC\")", fixed = TRUE)
  one_paragraph(e)
  # an assay name it does not have
  e <- expect_error(run(bridge = d$bridge, bridge.assays = c(other = "peaks")), class = "biclum_bad_bridge")
  expect_match(conditionMessage(e), "no atac assay 'peaks'")
  e <- expect_error(run(bridge = d$bridge, bridge.assays = c(rna = "RNA", other = "RNA")), class = "biclum_bad_bridge")
  # assays sharing no cell, or only some
  m <- counts_of(d$bridge, "RNA")
  other <- counts_of(d$bridge, "ATAC")
  colnames(other) <- paste0("x", colnames(other))
  e <- expect_error(biclum:::.check_bridge_cells(m, other, c(rna = "RNA", other = "ATAC")),
                    class = "biclum_bridge_no_shared_cells")
  expect_match(conditionMessage(e), "share no cell")
  one_paragraph(e)
  half <- counts_of(d$bridge, "ATAC")[, 1:50]
  e <- expect_error(biclum:::.check_bridge_cells(m, half, c(rna = "RNA", other = "ATAC")),
                    class = "biclum_bridge_no_shared_cells")
  expect_match(conditionMessage(e), "subset(bridge, cells", fixed = TRUE)
  # mismatched modalities: peaks given as protein
  e <- expect_error(run(bridge = d$bridge, modality = "protein"), class = "biclum_bad_modality")
  expect_match(conditionMessage(e), "modality = \"atac\"", fixed = TRUE)
  one_paragraph(e)
  # arguments of the two-object call that a bridge replaces
  e <- expect_error(run(bridge = d$bridge, merge = TRUE), class = "biclum_bad_argument")
  expect_match(conditionMessage(e), "MergeBiCLUM")
  expect_error(run(bridge = d$bridge, paired = TRUE, rna.batch = "batch"), class = "biclum_bad_argument")
  # an existing reduction with overwrite = FALSE
  b2 <- d$bridge
  b2[["biclum.atac"]] <- SeuratObject::CreateDimReducObject(
    embeddings = matrix(0, ncol(b2), 2, dimnames = list(colnames(b2), c("X_1", "X_2"))), key = "X_", assay = "ATAC")
  expect_error(run(bridge = b2, overwrite = FALSE), class = "biclum_reduction_exists")
  # nothing changed in place
  expect_identical(d, d0)
})
