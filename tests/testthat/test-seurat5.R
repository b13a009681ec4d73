# A Seurat 5 session end to end on small simulated RNA + ATAC: objects whose counts are split into layers by sample
# (obj[[assay]] <- split(obj[[assay]], f = obj$sample), the v5 way), RunBiCLUM twice, Seurat's own FindNeighbors,
# RunUMAP, DimHeatmap and VizDimLoadings on both objects, every downstream wrapper, ProjectBiCLUM and the merged
# result with DimPlot. No "No layers found" warnings anywhere. With SeuratObject 4 (no layers) the same workflow runs
# on v4 objects and the split-layer checks are skipped.

has_v5 <- function() utils::packageVersion("SeuratObject") >= "4.9.0"

# Runs `expr`, keeping (and muffling) its warnings and messages in `log` (an environment).
logged <- function(log, expr) {
  withCallingHandlers(expr,
    warning = function(w) {
      log$warnings <- c(log$warnings, conditionMessage(w))
      invokeRestart("muffleWarning")
    },
    message = function(m) {
      log$messages <- c(log$messages, paste(class(m)[1], conditionMessage(m)))
      invokeRestart("muffleMessage")
    })
}

# The simulated pair as Seurat objects, split into two samples when SeuratObject 5 is installed.
split_objects <- function() {
  d <- sim_seurat("atac")
  out <- list(rna = d$rna, atac = d$other, annotation = d$annotation)
  for (side in c("rna", "atac")) {
    obj <- out[[side]]
    obj$sample <- rep(c("s1", "s2"), length.out = ncol(obj))
    if (has_v5()) {
      assay <- SeuratObject::DefaultAssay(obj)
      obj[[assay]] <- split(obj[[assay]], f = obj$sample)
    }
    out[[side]] <- obj
  }
  out
}

test_that("split layers, RunBiCLUM twice, Seurat's functions, every wrapper, projection and merge (Seurat 5)", {
  skip_if_no_biclum_python()
  skip_if_not_installed("Seurat")
  skip_if_not_installed("ggplot2")
  log <- new.env()
  d <- split_objects()
  if (has_v5()) {
    expect_setequal(SeuratObject::Layers(d$rna[["RNA"]]), c("counts.s1", "counts.s2"))
    expect_setequal(SeuratObject::Layers(d$atac[["peaks"]]), c("counts.s1", "counts.s2"))
  }
  rna_before <- d$rna
  model <- file.path(tempdir(), "biclum-seurat5-model")
  on.exit(unlink(model, recursive = TRUE), add = TRUE)
  fit <- function(rna, atac, ...) {
    logged(log, RunBiCLUM(rna, atac, modality = "atac", annotation = d$annotation, max_epochs = 1L,
                          batch_size = sim_batch, verbose = FALSE, ...))
  }
  res <- fit(d$rna, d$atac, model_dir = model)
  expect_identical(d$rna, rna_before) # the split object is not modified
  if (has_v5()) { # one join message per split assay, none about layers from Seurat
    expect_identical(sum(grepl("^biclum_join_layers", log$messages)), 2L)
    expect_setequal(SeuratObject::Layers(res$rna[["RNA"]]), c("counts.s1", "counts.s2"))
  }
  expect_equal(nrow(SeuratObject::Embeddings(res$rna[["biclum"]])), ncol(d$rna))
  expect_identical(SeuratObject::Key(res$rna[["biclum"]]), "BICLUM_")

  # a second RunBiCLUM: replaces "biclum" with a message; another name gets its own key
  expect_identical(SeuratObject::DefaultAssay(res$other), "BiclumActivity") # as after RunPCA, with a message
  res <- fit(res$rna, res$other) # reads the peak assay RunBiCLUM recorded, not the default gene activities
  expect_true(any(grepl("replacing its reduction 'biclum'", log$messages)))
  expect_true(any(grepl("replacing its assay 'BiclumActivity'", log$messages)))
  expect_identical(SeuratObject::Tool(res$other, slot = "RunBiCLUM")$other.assay, "peaks")
  expect_identical(SeuratObject::DefaultAssay(res$other), "BiclumActivity")
  res2 <- fit(res$rna, res$other, reduction.name = "biclum2")
  expect_setequal(SeuratObject::Reductions(res2$rna), c("biclum", "biclum2"))
  expect_identical(SeuratObject::Key(res2$other[["biclum2"]]), "BICLUM2_")

  # Seurat's own functions on both objects
  rna <- logged(log, Seurat::NormalizeData(res$rna, verbose = FALSE))
  rna <- logged(log, Seurat::ScaleData(rna, features = rownames(SeuratObject::Loadings(rna[["biclum"]])),
                                       verbose = FALSE))
  atac <- res$other
  expect_identical(SeuratObject::DefaultAssay(atac[["biclum"]]), "BiclumActivity")
  expect_identical(SeuratObject::DefaultAssay(atac), "BiclumActivity") # the gene-level view of the ATAC cells
  atac <- logged(log, Seurat::ScaleData(atac, features = rownames(SeuratObject::Loadings(atac[["biclum"]])),
                                        verbose = FALSE))
  for (obj in list(rna, atac)) {
    obj <- logged(log, Seurat::FindNeighbors(obj, reduction = "biclum", dims = 1:10, verbose = FALSE))
    obj <- logged(log, Seurat::RunUMAP(obj, reduction = "biclum", dims = 1:10, verbose = FALSE))
    expect_equal(nrow(SeuratObject::Embeddings(obj[["umap"]])), ncol(obj))
    hm <- logged(log, Seurat::DimHeatmap(obj, reduction = "biclum", dims = 1:2, fast = FALSE))
    expect_s3_class(hm, "ggplot")
    vl <- logged(log, Seurat::VizDimLoadings(obj, reduction = "biclum", dims = 1:2))
    expect_s3_class(ggplot2::ggplot_build(vl[[1]]), "ggplot_built")
  }

  # every downstream wrapper, on the split objects
  rna <- res$rna
  atac <- res$other
  genes <- rownames(rna)
  expect_equal(nrow(logged(log, MatchCells(atac, rna, k = 5))), 5 * ncol(atac))
  atac <- logged(log, TransferLabels(atac, rna, label = "cell_type"))
  expect_false(anyNA(atac$predicted.cell_type))
  mc <- logged(log, MatchedMetacells(rna, atac, other.assay = "peaks", n_metacells = 8, k = 15))
  expect_equal(ncol(mc$rna), 8)
  links <- logged(log, GenePeakLinks(rna, atac, annotation = d$annotation, atac.assay = "peaks", n_metacells = 8,
                                     k = 15, n_control = 2L))
  expect_true(nrow(links$links) > 0)
  ga <- logged(log, BiCLUMGeneActivity(atac, annotation = d$annotation, assay = "peaks", new.assay.name = "GA"))
  expect_equal(ncol(ga[["GA"]]), ncol(atac))
  net <- data.frame(source = rep(c("TFA", "TFB"), each = 20), target = genes[1:40], weight = 1)
  act_rna <- logged(log, TFActivity(rna, net))
  act_atac <- logged(log, TFActivity(atac, net, assay = "BiclumActivity"))
  expect_equal(nrow(act_rna), ncol(rna))
  cmp <- logged(log, CompareTFActivity(act_rna, act_atac, labels = rna$cell_type,
                                       other.labels = atac$predicted.cell_type))
  expect_true(all(c("TFA", "TFB") %in% rownames(cmp)))
  markers <- logged(log, FindBiCLUMMarkers(rna, group.by = "cell_type"))
  expect_true(nrow(markers) > 0)
  cross <- logged(log, CrossModalMarkers(rna, atac, group.by = "cell_type", other.assay = "BiclumActivity"))
  expect_setequal(unique(cross$modality), c("rna", "other"))
  emark <- logged(log, EmbeddingMarkers(rna, group.by = "cell_type"))
  top <- logged(log, TopMarkers(markers, n_top = 10))
  expect_true(length(top) > 1)
  expect_true(nrow(logged(log, MarkerOverlap(markers, emark, n_top = 20, n_null = 200))) > 0)
  sets <- list(A = genes[1:20], B = genes[21:60], C = genes[61:90])
  expect_s3_class(logged(log, Enrichment(markers, sets)), "data.frame")
  expect_true(length(logged(log, ReadGMT(logged(log, biclum_example("gene_sets_mouse.gmt"))))) > 0)
  lr <- data.frame(ligand = genes[1:5], receptor = genes[6:10])
  expect_s3_class(logged(log, LigandReceptor(rna, group.by = "cell_type", lr_table = lr, n_perm = 20)), "data.frame")
  if (has_v5()) { # each wrapper joined the split layers of the assays it read, with a message
    expect_true(sum(grepl("^biclum_join_layers", log$messages)) >= 8)
  }

  # query mapping: the (split) training cells projected onto the saved model get their fitted embeddings
  first <- fit(d$rna, d$atac, reduction.name = "fitted", overwrite = TRUE)
  for (side in c("rna", "atac")) {
    fitted <- SeuratObject::Embeddings(first[[if (side == "rna") "rna" else "other"]][["fitted"]])
    q <- logged(log, ProjectBiCLUM(d[[side]], model, modality = side))
    emb <- SeuratObject::Embeddings(q[["biclum"]])
    expect_identical(rownames(emb), colnames(d[[side]]))
    expect_lt(max_abs_diff(unname(emb), unname(fitted)), 1e-4)
  }

  # one merged object: both modalities' cells, one reduction, a modality column
  merged <- fit(d$rna, d$atac, merge = TRUE)
  expect_s4_class(merged, "Seurat")
  expect_equal(ncol(merged), ncol(d$rna) + ncol(d$atac))
  expect_identical(SeuratObject::Reductions(merged), "biclum")
  expect_identical(levels(merged$modality), c("rna", "atac"))
  expect_equal(dim(SeuratObject::Embeddings(logged(log, MergeBiCLUM(res$rna, res$other)), reduction = "biclum")),
               dim(SeuratObject::Embeddings(merged, reduction = "biclum")))
  merged <- logged(log, Seurat::RunUMAP(merged, reduction = "biclum", dims = 1:10, verbose = FALSE))
  p <- logged(log, Seurat::DimPlot(merged, reduction = "umap", group.by = "modality"))
  expect_s3_class(ggplot2::ggplot_build(p), "ggplot_built")

  expect_false(any(grepl("No layers found", log$warnings)))
  expect_false(any(grepl("No layers found", log$messages)))
})
