# RunBiCLUM on small simulated data (biclum.datasets.simulate): the Seurat ladder, results, errors.

test_that("RunBiCLUM.Seurat returns both objects with a complete 'biclum' DimReduc", {
  skip_if_no_biclum_python()
  d <- sim_seurat("atac")
  res <- sim_fit()$res
  expect_named(res, c("rna", "other"))
  expect_s4_class(res$rna, "Seurat")
  expect_s4_class(res$other, "Seurat")
  for (side in c("rna", "other")) {
    dr <- res[[side]][["biclum"]]
    expect_s4_class(dr, "DimReduc")
    expect_identical(SeuratObject::Key(dr), "BICLUM_")
    emb <- SeuratObject::Embeddings(dr)
    expect_identical(rownames(emb), colnames(d[[side]]))
    expect_false(anyNA(emb))
    expect_length(SeuratObject::Stdev(dr), ncol(emb))
    expect_true(all(SeuratObject::Stdev(dr) > 0))
    load <- SeuratObject::Loadings(dr)
    expect_gt(nrow(load), 100)
    expect_identical(colnames(load), colnames(emb))
    expect_identical(SeuratObject::Misc(dr)$genes_used, rownames(load))
    expect_identical(SeuratObject::Misc(dr)$modality, "atac")
  }
  expect_identical(SeuratObject::DefaultAssay(res$rna[["biclum"]]), "RNA")
  # the ATAC loadings are genes: the reduction's assay is the gene-activity assay RunBiCLUM added
  expect_identical(SeuratObject::DefaultAssay(res$other[["biclum"]]), "BiclumActivity")
  # ... and the default assay of the ATAC object (as after RunPCA), with one message; the peak assay is recorded
  expect_identical(SeuratObject::DefaultAssay(res$other), "BiclumActivity")
  expect_identical(SeuratObject::DefaultAssay(res$rna), "RNA")
  expect_identical(SeuratObject::Tool(res$other, slot = "RunBiCLUM")$other.assay, "peaks")
  expect_identical(sum(grepl("^biclum_default_assay .*DefaultAssay\\(atac\\) <- \"peaks\"", sim_fit()$messages)), 1L)
  expect_true(all(rownames(SeuratObject::Loadings(res$other[["biclum"]])) %in% rownames(res$other[["BiclumActivity"]])))
  expect_true(is.logical(res$rna$biclum_has_mnn_partner) && !anyNA(res$rna$biclum_has_mnn_partner))
  expect_true(is.logical(res$other$biclum_has_mnn_partner))
  # loadings carry gene names: RNA genes used, and the gene-activity genes (not peaks) for ATAC
  expect_true(all(rownames(SeuratObject::Loadings(res$rna[["biclum"]])) %in% rownames(d$rna)))
  expect_true(all(rownames(SeuratObject::Loadings(res$other[["biclum"]])) %in% d$annotation$gene_name))
  # Tool() and the command log
  tool <- SeuratObject::Tool(res$rna, slot = "RunBiCLUM")
  expect_identical(tool$modality, "atac")
  expect_true(is.list(tool$params) && length(tool$params) > 5)
  expect_true("RunBiCLUM" %in% names(res$rna@commands))
  expect_identical(SeuratObject::DefaultAssay(res$other@commands$RunBiCLUM), "peaks")
  expect_identical(SeuratObject::Tool(res$other, slot = "RunBiCLUM")$side, "atac")
  # the inputs are unchanged
  expect_false("biclum" %in% SeuratObject::Reductions(d$rna))
})

test_that("biclum reads the recorded peak assay while the gene activities are the default assay", {
  skip_if_no_biclum_python()
  atac <- sim_fit()$res$other
  peaks_of <- biclum:::.peak_or_default_assay
  expect_identical(peaks_of(atac), "peaks")
  expect_identical(peaks_of(subset(atac, cells = colnames(atac)[1:50])), "peaks") # Tool() survives subset
  expect_identical(peaks_of(sim_fit()$res$rna), "RNA")
  SeuratObject::DefaultAssay(atac) <- "peaks" # switched back: the default assay, as for any object
  expect_identical(peaks_of(atac), "peaks")
  expect_equal(dim(counts_of(atac, biclum:::.ds_assay(sim_fit()$res$other, NULL, "atac", "assay", peaks = TRUE))),
               dim(counts_of(sim_seurat("atac")$other)))
  # the gene-level functions read the default assay, as Seurat's do
  expect_identical(biclum:::.ds_assay(sim_fit()$res$other, NULL, "object", "assay"), "BiclumActivity")
})

test_that("RunBiCLUM equals the Python API with the same seed (simulated ATAC)", {
  skip_if_no_biclum_python()
  d <- sim_seurat("atac")
  res <- sim_fit()$res
  py <- py_integrate(d$sim$rna_py, d$sim$other_py, "atac", d$sim$annotation_py, seed = 0L, max_epochs = 1L,
                     batch_size = sim_batch)
  for (side in c("rna", "other")) {
    e_py <- py_embeddings(py, side)
    e_r <- SeuratObject::Embeddings(res[[side]][["biclum"]])
    expect_lt(max_abs_diff(unname(e_r[rownames(e_py), ]), unname(e_py)), 1e-5)
  }
})

test_that("progress is reported through R messages", {
  skip_if_no_biclum_python()
  msgs <- sim_fit()$messages
  expect_true(any(grepl("^biclum_progress biclum: train 1/1", msgs)))
  expect_true(any(grepl("^biclum_log biclum: validating inputs", msgs)))
  # each setup stage is shown once (as its log line), not twice
  expect_identical(sum(grepl("validating inputs", msgs)), 1L)
})

test_that("DimPlot and ProjectDim work on the result", {
  skip_if_no_biclum_python()
  skip_if_not_installed("Seurat")
  skip_if_not_installed("ggplot2")
  res <- sim_fit()$res
  p <- Seurat::DimPlot(res$rna, reduction = "biclum", group.by = "cell_type")
  expect_s3_class(p, "ggplot")
  expect_s3_class(ggplot2::ggplot_build(p), "ggplot_built")
  obj <- Seurat::NormalizeData(res$rna, verbose = FALSE)
  obj <- Seurat::ScaleData(obj, verbose = FALSE)
  # Seurat's own command log warns about the name "Seurat::ProjectDim"; that is not ours
  obj <- withCallingHandlers(Seurat::ProjectDim(obj, reduction = "biclum", verbose = FALSE),
                             warning = function(w) if (grepl("make.names", conditionMessage(w)))
                               invokeRestart("muffleWarning"))
  proj <- SeuratObject::Loadings(obj[["biclum"]], projected = TRUE)
  expect_equal(dim(proj), c(nrow(obj), ncol(SeuratObject::Embeddings(obj[["biclum"]])))) # double dims in SeuratObject 5
})

test_that("a config option passes through, an R double as a whole number (joint_input)", {
  skip_if_no_biclum_python()
  d <- sim_seurat("atac")
  drs <- RunBiCLUM(d$rna[["RNA"]], d$other[["peaks"]], modality = "atac", annotation = d$annotation,
                   max_epochs = 1L, verbose = FALSE, batch_size = sim_batch, joint_input = 5)
  expect_s4_class(drs$other, "DimReduc")
  expect_equal(nrow(SeuratObject::Embeddings(drs$other)), ncol(d$other))
  expect_equal(drs$params$joint_input, 5)
  expect_equal(drs$params$joint_input_used, 5) # the components the encoders read
  expect_error(RunBiCLUM(d$rna[["RNA"]], d$other[["peaks"]], modality = "atac", annotation = d$annotation,
                         verbose = FALSE, joint_input = -1), "joint_input=-1", class = "biclum_input_error")
})

test_that("the matrix method (annotation from a file) gives the same embeddings", {
  skip_if_no_biclum_python()
  d <- sim_seurat("atac")
  res <- sim_fit()$res
  rna_m <- counts_of(d$rna)
  atac_m <- counts_of(d$other)
  f <- tempfile(fileext = ".tsv")
  utils::write.table(d$annotation, f, sep = "\t", quote = FALSE, row.names = FALSE)
  on.exit(unlink(f))
  model_dir <- file.path(tempdir(), "biclum-model")
  on.exit(unlink(model_dir, recursive = TRUE), add = TRUE)
  drs <- RunBiCLUM(rna_m, atac_m, modality = "atac", annotation = f, max_epochs = 1L, verbose = FALSE,
                   model_dir = model_dir, batch_size = sim_batch)
  expect_true(length(list.files(model_dir)) > 0) # the fitted Python model was saved
  expect_s4_class(drs$rna, "DimReduc")
  expect_s4_class(drs$other, "DimReduc")
  expect_lt(max_abs_diff(SeuratObject::Embeddings(drs$rna), SeuratObject::Embeddings(res$rna[["biclum"]])), 1e-5)
  expect_lt(max_abs_diff(SeuratObject::Embeddings(drs$other), SeuratObject::Embeddings(res$other[["biclum"]])), 1e-5)
  expect_error(RunBiCLUM(d$rna, d$other, modality = "atac", annotation = "/no/such/file.tsv"),
               "does not exist", class = "biclum_bad_annotation")
})

test_that("Signac-style ChromatinAssay (Assay method): ranges and GRanges annotation come from the assay", {
  skip_if_no_biclum_python()
  skip_if_not_installed("GenomicRanges")
  # A stand-in for Signac's class (Signac is not installed here): an Assay with ranges/annotation slots.
  if (!methods::isClass("ChromatinAssay")) {
    methods::setClass("ChromatinAssay", contains = "Assay",
                      slots = c(ranges = "GRanges", annotation = "ANY"), where = globalenv())
  }
  d <- sim_seurat("atac")
  counts <- counts_of(d$other)
  peaks <- rownames(counts)
  parts <- do.call(rbind, strsplit(peaks, "-"))
  gr <- GenomicRanges::GRanges(parts[, 1], IRanges::IRanges(as.integer(parts[, 2]), as.integer(parts[, 3])))
  ann <- d$annotation
  ann_gr <- GenomicRanges::GRanges(ann$chrom, IRanges::IRanges(ann$start, ann$end), strand = ann$strand,
                                   gene_name = ann$gene_name)
  renamed <- counts
  rownames(renamed) <- paste0("peak", seq_along(peaks)) # no coordinates in the names
  base <- SeuratObject::CreateAssayObject(counts = renamed)
  ca <- methods::new("ChromatinAssay", base, ranges = gr, annotation = ann_gr)
  drs <- RunBiCLUM(d$rna[["RNA"]], ca, modality = "atac", max_epochs = 1L, verbose = FALSE,
                   batch_size = sim_batch)
  res <- sim_fit()$res
  expect_lt(max_abs_diff(SeuratObject::Embeddings(drs$other), SeuratObject::Embeddings(res$other[["biclum"]])), 1e-5)
  # the same plain assay without ranges has peaks without coordinates: a clear error
  expect_error(RunBiCLUM(d$rna[["RNA"]], base, modality = "atac", annotation = ann, verbose = FALSE),
               "needs peak coordinates", class = "biclum_no_coordinates")
})

test_that("clear errors: missing assay, bad modality, non-overlapping genes", {
  skip_if_no_biclum_python()
  d <- sim_seurat("atac")
  expect_error(RunBiCLUM(d$rna, d$other, modality = "atac", other.assay = "ATAC", annotation = d$annotation),
               "has no assay 'ATAC' \\(its assays: peaks\\)", class = "biclum_no_assay")
  expect_error(RunBiCLUM(d$rna, d$other, modality = "rna"), "modality must be", class = "biclum_bad_modality")
  p <- sim_seurat("protein")
  m <- counts_of(p$rna)
  rownames(m) <- paste0("NotAGene", seq_len(nrow(m)))
  bad <- SeuratObject::CreateSeuratObject(m)
  expect_error(RunBiCLUM(bad, p$other, modality = "protein", max_epochs = 1L, verbose = FALSE),
               "share [0-9]+ genes", class = "biclum_input_error")
  # Python errors keep the Python message and class
  err <- tryCatch(RunBiCLUM(bad, p$other, modality = "protein", max_epochs = 1L, verbose = FALSE),
                  error = function(e) e)
  expect_s3_class(err, "biclum_python_error")
  expect_match(conditionMessage(err), "[Python BiclumInputError]", fixed = TRUE)
})

test_that("a Python warning reaches R as a warning with the same text", {
  skip_if_no_biclum_python()
  p <- sim_seurat("protein")
  m <- counts_of(p$rna)
  m[, 1:2] <- 0 # two cells without counts: the Python core drops them with a warning
  m <- Matrix::drop0(m)
  obj <- SeuratObject::CreateSeuratObject(m, min.cells = 0, min.features = 0)
  # the text the Python API gives for the same input
  bridge <- reticulate::import("biclum.bridge", convert = FALSE)
  ad_rna <- bridge$as_anndata(biclum:::.dgc_to_py(m))
  main <- reticulate::py_run_string(paste(
    "def _biclum_collect_warnings(rna, other):",
    "    import warnings, biclum",
    "    with warnings.catch_warnings(record=True) as w:",
    "        warnings.simplefilter('always')",
    "        biclum.set_verbosity('WARNING')",
    "        try:",
    "            biclum.integrate(rna, other, modality='protein', seed=0, max_epochs=1, progress=False,",
    "                             batch_size=128)",
    "        finally:",
    "            biclum.set_verbosity('INFO')",
    "    return [str(x.message) for x in w]", sep = "\n"), convert = FALSE)
  py_msgs <- reticulate::py_to_r(main$`_biclum_collect_warnings`(ad_rna, p$sim$other_py))
  dropped <- grep("zero counts and were dropped", py_msgs, value = TRUE)
  expect_length(dropped, 1)
  w <- NULL
  msgs <- NULL
  res <- withCallingHandlers(
    RunBiCLUM(obj, p$other, modality = "protein", max_epochs = 1L, verbose = FALSE, batch_size = sim_batch),
    warning = function(cond) {
      w <<- c(w, conditionMessage(cond))
      invokeRestart("muffleWarning")
    },
    message = function(m) msgs <<- c(msgs, conditionMessage(m)))
  expect_true(dropped %in% w)
  expect_true(any(grepl("rna: 2 of 200 cells were dropped by biclum", w, fixed = TRUE)))
  expect_null(msgs) # verbose = FALSE: no messages, but warnings still come through
  # the dropped cells are left out (the reduction holds the embedded cells), so FindNeighbors/RunUMAP work
  emb <- SeuratObject::Embeddings(res$rna[["biclum"]])
  expect_identical(rownames(emb), colnames(obj)[-(1:2)])
  expect_identical(colnames(res$rna), colnames(obj)[-(1:2)])
  expect_false(anyNA(emb))
  skip_if_not_installed("Seurat")
  nn <- Seurat::FindNeighbors(res$rna, reduction = "biclum", dims = 1:5, verbose = FALSE)
  expect_true(length(SeuratObject::Graphs(nn)) > 0)
})

test_that("SeuratObject 5 assays with split layers are joined on a copy (one message) or refused, never truncated", {
  if (utils::packageVersion("SeuratObject") < "4.9.0") {
    skip(paste("SeuratObject", utils::packageVersion("SeuratObject"),
               "has no v5 assays (Assay5); the split-layer path is tested where SeuratObject >= 5 is installed"))
  }
  skip_if_no_biclum_python()
  d <- sim_seurat("protein")
  m <- SeuratObject::LayerData(d$rna[["RNA"]], layer = "counts")
  obj <- SeuratObject::CreateSeuratObject(methods::as(m, "dgCMatrix"))
  obj$half <- rep(c("a", "b"), length.out = ncol(obj))
  obj[["RNA"]] <- split(obj[["RNA"]], f = obj$half)
  expect_error(RunBiCLUM(obj, d$other, modality = "protein", max_epochs = 1L, verbose = FALSE,
                         batch_size = sim_batch, join_layers = FALSE),
               "split into 2 layers", class = "biclum_split_layers")
  before <- obj
  expect_message(res <- RunBiCLUM(obj, d$other, modality = "protein", max_epochs = 1L, verbose = FALSE,
                                  batch_size = sim_batch),
                 "joining its 2 split 'counts' layers", class = "biclum_join_layers")
  expect_identical(obj, before)
  emb <- SeuratObject::Embeddings(res$rna[["biclum"]])
  expect_equal(nrow(emb), ncol(obj))
  expect_identical(rownames(emb), colnames(obj))
  expect_false(anyNA(emb))
})

test_that("RunBiCLUM leaves both input Seurat objects unchanged; an existing reduction is replaced with a message", {
  skip_if_no_biclum_python()
  p <- sim_seurat("protein")
  rna_before <- p$rna
  other_before <- p$other
  res <- RunBiCLUM(p$rna, p$other, modality = "protein", max_epochs = 1L, verbose = FALSE, batch_size = sim_batch)
  expect_identical(p$rna, rna_before)
  expect_identical(p$other, other_before)
  expect_length(SeuratObject::Reductions(p$rna), 0) # character() in SeuratObject 4, NULL in 5
  expect_identical(SeuratObject::Reductions(res$rna), "biclum")
  # the reduction exists in both / in one of the objects: with overwrite = FALSE refused before any fitting
  expect_error(RunBiCLUM(res$rna, res$other, modality = "protein", max_epochs = 1L, verbose = FALSE,
                         overwrite = FALSE),
               paste0("rna: the object already has a reduction 'biclum'; pass overwrite = TRUE to replace it, ",
                      "or choose another reduction.name"), fixed = TRUE, class = "biclum_reduction_exists")
  expect_error(RunBiCLUM(p$rna, res$other, modality = "protein", max_epochs = 1L, verbose = FALSE, overwrite = FALSE),
               "other: the object already has a reduction 'biclum'", class = "biclum_reduction_exists")
  expect_error(RunBiCLUM(p$rna, p$other, modality = "protein", reduction.name = NA_character_),
               "reduction.name must be one non-empty name", class = "biclum_bad_argument")
  # by default (as RunPCA) replaced, with a message: the same seed gives the same embeddings, one reduction
  expect_message(res2 <- RunBiCLUM(res$rna, res$other, modality = "protein", max_epochs = 1L, verbose = FALSE,
                                   batch_size = sim_batch),
                 "rna: replacing its reduction 'biclum'", class = "biclum_replace")
  expect_identical(SeuratObject::Reductions(res2$rna), "biclum")
  expect_identical(SeuratObject::Reductions(res2$other), "biclum")
  for (side in c("rna", "other")) {
    expect_lt(max_abs_diff(SeuratObject::Embeddings(res2[[side]][["biclum"]]),
                           SeuratObject::Embeddings(res[[side]][["biclum"]])), 1e-5)
  }
})

test_that("clear errors for bad input: missing rna assay, NaN, negative values, duplicated cells, empty modality", {
  skip_if_no_biclum_python()
  d <- sim_seurat("protein")
  expect_error(RunBiCLUM(d$rna, d$other, modality = "protein", rna.assay = "SCT"),
               "rna: the Seurat object has no assay 'SCT' \\(its assays: RNA\\); give one of those as rna.assay",
               class = "biclum_no_assay")
  m <- counts_of(d$rna)
  a <- counts_of(d$other)
  fit <- function(rna, other) RunBiCLUM(rna, other, modality = "protein", max_epochs = 1L, verbose = FALSE,
                                        batch_size = sim_batch)
  with_nan <- m
  with_nan@x[c(1, 5)] <- NaN
  expect_error(fit(with_nan, a), "rna: the matrix holds 2 NaN/Inf values", class = "biclum_input_error")
  negative <- a
  negative@x[3] <- -2
  expect_error(fit(m, negative), "other: the matrix has 1 negative values", class = "biclum_input_error")
  dup <- m
  colnames(dup)[2:3] <- colnames(dup)[1]
  expect_error(fit(dup, a), "rna: 1 duplicated cell names \\(e.g. rna0\\); make them unique",
               class = "biclum_duplicated_cells")
  expect_error(fit(m[, 0], a), "rna: the modality has zero cells", class = "biclum_input_error")
  expect_error(fit(m, a[0, ]), "other: the modality has zero features", class = "biclum_input_error")
})
