# Downstream wrappers (R/downstream-*.R) on the small simulated fit of helper-biclum.R (sim_fit(), ATAC, one epoch):
# each wrapper gives the same numbers as the Python function (biclum.downstream) called directly on the same
# inputs (the simulated AnnData with the embeddings of the R fit copied into obsm).

# biclum.downstream.<name>(...) (biclum.prior for gene_activity) called directly, with its INFO log lines
# silenced (the R wrappers do the same).
pyds <- function(name, ...) {
  bc <- reticulate::import("biclum", convert = FALSE)
  old <- reticulate::py_to_r(bc$logger$level)
  bc$set_verbosity("WARNING")
  on.exit(bc$set_verbosity(old), add = TRUE)
  mod <- if (name == "gene_activity") "biclum.prior" else "biclum.downstream"
  reticulate::import(mod, convert = FALSE)[[name]](...)
}

py_names <- function(a) reticulate::py_to_r(a$obs_names$tolist())

# A copy of a Python AnnData with `emb` (rows matched by cell name) as obsm["X_biclum"].
with_obsm <- function(a, emb) {
  a <- a$copy()
  np <- reticulate::import("numpy", convert = FALSE)
  reticulate::py_set_item(a$obsm, "X_biclum", np$asarray(unname(emb[py_names(a), , drop = FALSE]),
                                                          dtype = "float32"))
  a
}

# One column of a pandas DataFrame as an R vector (None -> NA).
py_col <- function(df, col) {
  v <- reticulate::py_to_r(reticulate::py_get_item(df, col)$tolist())
  if (is.list(v)) v <- unlist(lapply(v, function(x) if (is.null(x)) NA else x))
  v
}

py_index <- function(df) as.character(reticulate::py_to_r(df$index$astype("str")$tolist()))

# Every column of the R table equals the Python table's (numbers to 1e-10; factors/strings as text).
expect_same_table <- function(r, py, cols = NULL, one_based = character()) {
  cols <- cols %||% reticulate::py_to_r(py$columns$tolist())
  expect_identical(nrow(r), as.integer(reticulate::py_len(py)))
  for (c in cols) {
    pv <- py_col(py, c)
    rv <- r[[c]]
    if (c %in% one_based) pv <- pv + 1L
    if (is.numeric(pv) && is.numeric(rv)) {
      expect_equal(as.numeric(rv), as.numeric(pv), tolerance = 1e-10, info = c)
    } else {
      expect_identical(as.character(rv), as.character(pv), info = c)
    }
  }
}

sim_ds <- function() {
  if (is.null(.biclum_test_cache$sim_ds)) {
    d <- sim_seurat("atac")
    res <- sim_fit()$res
    e_rna <- SeuratObject::Embeddings(res$rna[["biclum"]])
    e_oth <- SeuratObject::Embeddings(res$other[["biclum"]])
    genes <- rownames(d$rna)
    net <- data.frame(source = rep(c("TFA", "TFB", "TFC"), each = 25), target = genes[c(1:25, 101:125, 201:225)],
                      weight = rep(c(1, -1, 0.5), length.out = 75), stringsAsFactors = FALSE)
    net_file <- tempfile(fileext = ".tsv")
    utils::write.table(net, net_file, sep = "\t", quote = FALSE, row.names = FALSE)
    .biclum_test_cache$sim_ds <- list(
      d = d, res = res, e_rna = e_rna, e_oth = e_oth, genes = genes, net = net, net_file = net_file,
      rna_py = with_obsm(d$sim$rna_py, e_rna), atac_py = with_obsm(d$sim$other_py, e_oth))
  }
  .biclum_test_cache$sim_ds
}

test_that("MatchCells equals match_cells", {
  skip_if_no_biclum_python()
  s <- sim_ds()
  m <- MatchCells(s$res$other, s$res$rna, k = 5)
  expect_s3_class(m, "data.frame")
  expect_named(m, c("query", "reference", "rank", "similarity"))
  expect_equal(nrow(m), 5 * ncol(s$res$other))
  py <- pyds("match_cells", s$atac_py, s$rna_py, k = 5L)
  expect_same_table(m, py, one_based = "rank")
  expect_identical(range(m$rank), c(1L, 5L))
})

test_that("TransferLabels returns the query with the labels of transfer_labels, input unchanged", {
  skip_if_no_biclum_python()
  s <- sim_ds()
  query <- s$res$other
  before <- query
  out <- TransferLabels(query, s$res$rna, label = "cell_type", k = 15)
  expect_identical(query, before) # R semantics: the input is not modified
  expect_s4_class(out, "Seurat")
  expect_true(all(c("predicted.cell_type", "predicted.cell_type.score") %in% colnames(out[[]])))
  py <- pyds("transfer_labels", s$atac_py, s$rna_py, "cell_type", k = 15L)
  expect_identical(py_index(py), colnames(out))
  expect_identical(unname(out$predicted.cell_type), py_col(py, "label"))
  expect_equal(unname(out$predicted.cell_type.score), py_col(py, "confidence"), tolerance = 1e-10)
  # another column name, unweighted votes
  out2 <- TransferLabels(query, s$res$rna, label = "cell_type", weighted = FALSE, col.name = "ct")
  py2 <- pyds("transfer_labels", s$atac_py, s$rna_py, "cell_type", k = 15L, weighted = FALSE)
  expect_identical(unname(out2$ct), py_col(py2, "label"))
  expect_equal(unname(out2$ct.score), py_col(py2, "confidence"), tolerance = 1e-10)
})

test_that("MatchedMetacells equals matched_metacells (assign_metacells + aggregate_metacells)", {
  skip_if_no_biclum_python()
  s <- sim_ds()
  mc <- MatchedMetacells(s$res$rna, s$res$other, n_metacells = 12, k = 20)
  expect_named(mc, c("rna", "other", "n_cells", "membership"))
  py <- pyds("matched_metacells", s$rna_py, s$atac_py, n_metacells = 12L, k = 20L)
  rna_mc <- reticulate::py_get_item(py, 0L)
  atac_mc <- reticulate::py_get_item(py, 1L)
  expect_same_table(mc$membership, reticulate::py_get_item(rna_mc$uns, "metacell_membership"),
                    one_based = c("index", "rank"))
  expect_identical(colnames(mc$rna), py_names(rna_mc))
  expect_identical(rownames(mc$other), reticulate::py_to_r(atac_mc$var_names$tolist()))
  expect_equal(unname(t(as.matrix(mc$rna))), unname(reticulate::py_to_r(rna_mc$X)), tolerance = 1e-6)
  expect_equal(unname(t(as.matrix(mc$other))), unname(reticulate::py_to_r(atac_mc$X)), tolerance = 1e-6)
  expect_equal(unname(mc$n_cells), py_col(rna_mc$obs, "n_cells"))
})

test_that("GenePeakLinks equals gene_peak_links + links_vs_control on matched metacells", {
  skip_if_no_biclum_python()
  s <- sim_ds()
  gl <- GenePeakLinks(s$res$rna, s$res$other, annotation = s$d$annotation, n_metacells = 20, k = 20)
  expect_named(gl, c("links", "summary", "membership"))
  py <- pyds("matched_metacells", s$rna_py, s$atac_py, n_metacells = 20L, k = 20L, seed = 0L)
  links <- pyds("gene_peak_links", reticulate::py_get_item(py, 0L), reticulate::py_get_item(py, 1L),
                                   s$d$sim$annotation_py, seed = 0L)
  summ <- pyds("links_vs_control", links)
  expect_same_table(gl$links, links, cols = c("pair_type", "gene", "peak", "distance", "distance_bin",
                                              "correlation", "pval", "fdr"))
  expect_s3_class(gl$links$distance_bin, "factor")
  ctrl <- gl$links$pair_type == "control"
  expect_equal(gl$links$matched_to[ctrl], py_col(links, "matched_to")[ctrl] + 1L)
  expect_true(all(is.na(gl$links$matched_to[!ctrl])))
  expect_same_table(gl$summary, summ)
  expect_identical(gl$summary$subset[1], "all")
  # the annotation as a file gives the same links
  f <- tempfile(fileext = ".tsv")
  on.exit(unlink(f))
  utils::write.table(s$d$annotation, f, sep = "\t", quote = FALSE, row.names = FALSE)
  gl2 <- GenePeakLinks(s$res$rna, s$res$other, annotation = f, n_metacells = 20, k = 20)
  expect_equal(gl2$links$correlation, gl$links$correlation)
})

test_that("BiCLUMGeneActivity equals biclum.prior.gene_activity, as a new assay", {
  skip_if_no_biclum_python()
  s <- sim_ds()
  ga <- BiCLUMGeneActivity(s$res$other, annotation = s$d$annotation)
  expect_true("ACTIVITY" %in% SeuratObject::Assays(ga))
  expect_false("ACTIVITY" %in% SeuratObject::Assays(s$res$other))
  py <- pyds("gene_activity", s$d$sim$other_py, s$d$sim$annotation_py)
  m <- counts_of(ga, "ACTIVITY")
  expect_identical(rownames(m), reticulate::py_to_r(py$var_names$tolist()))
  expect_equal(unname(t(as.matrix(m))), unname(as.matrix(reticulate::py_to_r(py$X$toarray()))), tolerance = 1e-6)
  .biclum_test_cache$sim_activity <- ga
})

test_that("TFActivity and CompareTFActivity equal tf_activity and compare_tf_activity", {
  skip_if_no_biclum_python()
  s <- sim_ds()
  act <- TFActivity(s$res$rna, s$net_file)
  py <- pyds("tf_activity", s$d$sim$rna_py, s$net_file)
  expect_identical(rownames(act), colnames(s$res$rna))
  expect_identical(colnames(act), reticulate::py_to_r(py$columns$tolist()))
  expect_equal(unname(as.matrix(act)), unname(reticulate::py_to_r(py$to_numpy())), tolerance = 1e-10)
  # the same network as a data.frame and as a named list (weights 1)
  expect_equal(TFActivity(s$res$rna, s$net), act)
  sets <- split(s$net$target, s$net$source)
  act_w <- TFActivity(s$res$rna, sets, method = "wmean", n_perm = 20)
  py_sets <- reticulate::dict(lapply(sets, as.list))
  py_w <- pyds("tf_activity", s$d$sim$rna_py, py_sets, method = "wmean", n_perm = 20L)
  expect_equal(unname(as.matrix(act_w)), unname(reticulate::py_to_r(py_w$to_numpy())), tolerance = 1e-10)
  # as an assay of the returned object
  expect_no_warning(obj <- TFActivity(s$res$rna, s$net, new.assay.name = "TF")) # no SeuratObject 5 layer warnings
  expect_true("TF" %in% SeuratObject::Assays(obj))
  tf_data <- if (utils::packageVersion("SeuratObject") >= "4.9.0") {
    SeuratObject::GetAssayData(obj[["TF"]], layer = "data")
  } else {
    SeuratObject::GetAssayData(obj[["TF"]], slot = "data")
  }
  expect_equal(unname(t(as.matrix(tf_data))), unname(as.matrix(act)), tolerance = 1e-6)
  # compare with the gene-activity side
  ga <- .biclum_test_cache$sim_activity %||% BiCLUMGeneActivity(s$res$other, annotation = s$d$annotation)
  act_atac <- TFActivity(ga, s$net, assay = "ACTIVITY")
  cmp <- CompareTFActivity(act, act_atac, labels = s$res$rna$cell_type, other.labels = s$res$other$cell_type)
  ga_py <- pyds("gene_activity", s$d$sim$other_py, s$d$sim$annotation_py)
  py_atac <- pyds("tf_activity", ga_py, s$net_file)
  py_cmp <- pyds("compare_tf_activity", py, reticulate::py_get_item(s$d$sim$rna_py$obs, "cell_type")$values, py_atac,
                                        reticulate::py_get_item(s$d$sim$other_py$obs, "cell_type")$values)
  expect_identical(rownames(cmp), py_index(py_cmp))
  expect_same_table(cmp, py_cmp)
  by <- attr(cmp, "by_group")
  expect_named(by, c("rna", "other"))
  py_by <- reticulate::py_get_item(py_cmp$attrs, "by_group")
  expect_equal(unname(as.matrix(by$other)), unname(reticulate::py_to_r(reticulate::py_get_item(py_by, "other")$to_numpy())),
               tolerance = 1e-10)
  # Seurat input (the TF assay and a meta.data column) gives the same comparison
  expect_equal(CompareTFActivity(obj, act_atac, labels = "cell_type", other.labels = s$res$other$cell_type,
                                 assay = "TF"), cmp, tolerance = 1e-6)
})

test_that("FindBiCLUMMarkers equals find_markers (Wilcoxon and t-test)", {
  skip_if_no_biclum_python()
  s <- sim_ds()
  m <- FindBiCLUMMarkers(s$res$rna, group.by = "cell_type")
  py <- pyds("find_markers", s$d$sim$rna_py, "cell_type")
  expect_same_table(m, py, one_based = "rank")
  t <- FindBiCLUMMarkers(s$res$rna, group.by = "cell_type", method = "t-test", groups = c("type0", "type1"))
  py_t <- pyds("find_markers", s$d$sim$rna_py, "cell_type", method = "t-test", groups = list("type0", "type1"))
  expect_same_table(t, py_t, one_based = "rank")
  expect_setequal(unique(t$group), c("type0", "type1"))
  .biclum_test_cache$sim_markers <- m
})

test_that("CrossModalMarkers equals cross_modal_markers (labels transferred or given)", {
  skip_if_no_biclum_python()
  s <- sim_ds()
  ga <- .biclum_test_cache$sim_activity %||% BiCLUMGeneActivity(s$res$other, annotation = s$d$annotation)
  cm <- CrossModalMarkers(s$res$rna, ga, group.by = "cell_type", other.assay = "ACTIVITY")
  ga_py <- pyds("gene_activity", s$d$sim$other_py, s$d$sim$annotation_py)
  ga_py <- with_obsm(ga_py, s$e_oth)
  py <- pyds("cross_modal_markers", s$rna_py, ga_py, "cell_type")
  expect_same_table(cm, py, one_based = "rank")
  expect_setequal(unique(cm$modality), c("rna", "other"))
  lab <- attr(cm, "other_labels")
  expect_identical(names(lab), colnames(ga))
  expect_identical(unname(lab), as.character(reticulate::py_to_r(reticulate::py_get_item(py$attrs, "other_labels")$tolist())))
  # with the labels of the other side given
  cm2 <- CrossModalMarkers(s$res$rna, ga, group.by = "cell_type", other.group.by = "cell_type",
                           other.assay = "ACTIVITY", method = "t-test")
  py2 <- pyds("cross_modal_markers", s$rna_py, ga_py, "cell_type", other_groupby = "cell_type", method = "t-test")
  expect_same_table(cm2, py2, one_based = "rank")
})

test_that("EmbeddingMarkers equals embedding_markers on the DimReduc loadings", {
  skip_if_no_biclum_python()
  s <- sim_ds()
  em <- EmbeddingMarkers(s$res$rna, group.by = "cell_type")
  load <- SeuratObject::Loadings(s$res$rna[["biclum"]])
  full <- matrix(0, nrow = length(s$genes), ncol = ncol(load), dimnames = list(s$genes, NULL))
  full[rownames(load), ] <- load
  a <- s$rna_py$copy()
  np <- reticulate::import("numpy", convert = FALSE)
  reticulate::py_set_item(a$varm, "biclum_loadings", np$asarray(unname(full), dtype = "float32"))
  py <- pyds("embedding_markers", a, "cell_type")
  expect_same_table(em, py, one_based = "rank")
  expect_true(all(em$gene %in% rownames(load)))
  py_nc <- pyds("embedding_markers", a, "cell_type", center = FALSE)
  expect_same_table(EmbeddingMarkers(s$res$rna, group.by = "cell_type", center = FALSE), py_nc, one_based = "rank")
  .biclum_test_cache$sim_emb_markers <- em
})

test_that("TopMarkers and MarkerOverlap equal top_markers and marker_overlap", {
  skip_if_no_biclum_python()
  s <- sim_ds()
  m <- .biclum_test_cache$sim_markers %||% FindBiCLUMMarkers(s$res$rna, group.by = "cell_type")
  em <- .biclum_test_cache$sim_emb_markers %||% EmbeddingMarkers(s$res$rna, group.by = "cell_type")
  m_py <- pyds("find_markers", s$d$sim$rna_py, "cell_type")
  tm <- TopMarkers(m, n_top = 10, padj_max = 0.05)
  tm_py <- reticulate::py_to_r(pyds("top_markers", m_py, n_top = 10L, padj_max = 0.05))
  expect_identical(tm, lapply(tm_py, as.character))
  # the Python function on the R tables (as pandas) gives the same overlap as the wrapper
  bridge <- reticulate::import("biclum.bridge", convert = FALSE)
  em_py <- bridge$columns_to_frame(biclum:::.df_to_py(em))
  mo <- MarkerOverlap(m, em, n_top = 30, n_null = 2000)
  mo_py <- pyds("marker_overlap", m_py, em_py, n_top = 30L, n_null = 2000L)
  expect_same_table(mo, mo_py)
  expect_identical(mo$group[nrow(mo)], "all")
  # named lists
  a <- list(x = s$genes[1:20], y = s$genes[21:40])
  b <- list(x = s$genes[11:30], y = s$genes[100:120])
  mo2 <- MarkerOverlap(a, b, n_null = 500)
  mo2_py <- pyds("marker_overlap", reticulate::dict(lapply(a, as.list)), reticulate::dict(lapply(b, as.list)),
                                   n_null = 500L)
  expect_same_table(mo2, mo2_py)
  expect_identical(mo2$overlap[1:2], c(10L, 0L))
})

test_that("Enrichment equals enrich_markers / enrichment; ReadGMT equals read_gmt", {
  skip_if_no_biclum_python()
  s <- sim_ds()
  m <- .biclum_test_cache$sim_markers %||% FindBiCLUMMarkers(s$res$rna, group.by = "cell_type")
  m_py <- pyds("find_markers", s$d$sim$rna_py, "cell_type")
  sets <- list(A = s$genes[1:40], B = s$genes[300:360], C = s$genes[seq(2, 1500, by = 7)])
  gmt <- tempfile(fileext = ".gmt")
  on.exit(unlink(gmt))
  writeLines(vapply(names(sets), function(n) paste(c(n, "test", sets[[n]]), collapse = "\t"), ""), gmt)
  en <- Enrichment(m, gmt, n_top = 50)
  en_py <- pyds("enrich_markers", m_py, gmt, n_top = 50L)
  expect_same_table(en, en_py)
  expect_equal(Enrichment(m, sets, n_top = 50), en) # a named list is the same as the GMT file
  expect_identical(ReadGMT(gmt), sets)
  expect_identical(ReadGMT(gmt), lapply(reticulate::py_to_r(pyds("read_gmt", gmt)), as.character))
  # one gene list / several, with a universe
  q <- s$genes[c(1:15, 700:710)]
  en1 <- Enrichment(q, gmt, universe = s$genes)
  en1_py <- pyds("enrichment", as.list(q), gmt, universe = as.list(s$genes))
  expect_same_table(en1, en1_py)
  expect_identical(en1$term[1], "A")
  en2 <- Enrichment(list(a = q, b = s$genes[300:320]), sets, universe = s$genes, min_size = 5)
  en2_py <- pyds("enrichment", reticulate::dict(a = as.list(q), b = as.list(s$genes[300:320])), gmt,
                               universe = as.list(s$genes), min_size = 5L)
  expect_same_table(en2, en2_py)
  # the example GMT shipped with the Python package
  path <- biclum_example("gene_sets_human.gmt")
  expect_true(file.exists(path))
  expect_true(length(ReadGMT(path)) > 3)
})

test_that("GOGeneSets builds GO gene sets when org.Hs.eg.db is installed", {
  if (!requireNamespace("org.Hs.eg.db", quietly = TRUE) || !requireNamespace("GO.db", quietly = TRUE)) {
    skip("org.Hs.eg.db / GO.db not installed (optional; Debian: apt-get install r-bioc-org.hs.eg.db r-bioc-go.db)")
  }
  genes <- c("CD3E", "CD3D", "CD3G", "CD4", "CD8A", "CD8B", "LCK", "ZAP70", "MS4A1", "CD19", "CD79A", "CD14", "LYZ")
  sets <- GOGeneSets("human", ontology = "BP", genes = genes, min_size = 3, max_size = 500)
  expect_type(sets, "list")
  expect_true(length(sets) > 5)
  expect_true(all(startsWith(names(sets), "GO:")))
  expect_true(all(unlist(sets) %in% genes))
  hit <- grep("T cell receptor signaling pathway$", names(sets), value = TRUE)
  expect_true(length(hit) >= 1)
  expect_true(all(c("CD3E", "ZAP70") %in% sets[[hit[1]]]))
  expect_error(GOGeneSets("human", genes = c("NotAGene1", "NotAGene2")), "none of the 2 genes",
               class = "biclum_bad_argument")
})

test_that("LigandReceptor equals ligand_receptor (one object, and receptors on the other modality)", {
  skip_if_no_biclum_python()
  s <- sim_ds()
  lr <- data.frame(ligand = s$genes[c(3, 10, 50, 970)], receptor = s$genes[c(8, 677, 90, 862)],
                   pathway = c("p1", "p1", "p2", "p3"), stringsAsFactors = FALSE)
  f <- tempfile(fileext = ".tsv")
  on.exit(unlink(f))
  utils::write.table(lr, f, sep = "\t", quote = FALSE, row.names = FALSE)
  out <- LigandReceptor(s$res$rna, group.by = "cell_type", lr_table = lr, n_perm = 200)
  py <- pyds("ligand_receptor", s$d$sim$rna_py, "cell_type", f, n_perm = 200L)
  expect_same_table(out, py)
  expect_identical(nrow(out), 4L * 6L * 6L)
  expect_equal(LigandReceptor(s$res$rna, group.by = "cell_type", lr_table = f, n_perm = 200), out)
  # receptors on the ATAC gene activity, with labels transferred through the joint embedding
  ga <- .biclum_test_cache$sim_activity %||% BiCLUMGeneActivity(s$res$other, annotation = s$d$annotation)
  ga <- TransferLabels(ga, s$res$rna, label = "cell_type", col.name = "ct")
  out2 <- LigandReceptor(s$res$rna, group.by = "cell_type", lr_table = lr, other = ga, other.group.by = "ct",
                         other.assay = "ACTIVITY", score = "mean", n_perm = 100)
  ga_py <- pyds("gene_activity", s$d$sim$other_py, s$d$sim$annotation_py)
  py2 <- pyds("ligand_receptor", s$d$sim$rna_py, "cell_type", f, receptor_adata = ga_py,
                                 receptor_groupby = as.list(unname(ga$ct)), score = "mean", n_perm = 100L)
  expect_same_table(out2, py2)
})

test_that("downstream wrappers refuse bad input with clear errors", {
  skip_if_no_biclum_python()
  s <- sim_ds()
  # a reduction that does not exist
  expect_error(MatchCells(s$res$other, s$res$rna, reduction = "umap"),
               "query: the Seurat object has no reduction 'umap' \\(its reductions: biclum\\)",
               class = "biclum_no_reduction")
  expect_error(TransferLabels(s$res$other, s$d$rna, label = "cell_type"),
               "reference: the Seurat object has no reduction 'biclum' \\(its reductions: none\\); run RunBiCLUM",
               class = "biclum_no_reduction")
  expect_error(EmbeddingMarkers(s$res$rna, group.by = "cell_type", reduction = "pca"), "reduction=",
               class = "biclum_no_reduction")
  # an assay that does not exist
  expect_error(FindBiCLUMMarkers(s$res$rna, group.by = "cell_type", assay = "ATAC"),
               "object: the Seurat object has no assay 'ATAC' \\(its assays: RNA\\); give one of those as assay=",
               class = "biclum_no_assay")
  expect_error(GenePeakLinks(s$res$rna, s$res$other, annotation = s$d$annotation, atac.assay = "ATAC"),
               "atac: the Seurat object has no assay 'ATAC'", class = "biclum_no_assay")
  # a metadata column that does not exist
  expect_error(TransferLabels(s$res$other, s$res$rna, label = "celltype"),
               "reference: the Seurat object's meta.data has no column 'celltype'", class = "biclum_no_metadata")
  expect_error(LigandReceptor(s$res$rna, group.by = "cell_type", lr_table = data.frame(ligand = "a", receptor = "b"),
                              other = s$res$other, other.group.by = "predicted"),
               "other: the Seurat object's meta.data has no column 'predicted'", class = "biclum_no_metadata")
  # files that do not exist
  expect_error(TFActivity(s$res$rna, "/no/such/network.tsv"), "network: the file '/no/such/network.tsv' does not exist",
               class = "biclum_bad_file")
  expect_error(Enrichment(s$genes[1:10], "/no/such/sets.gmt"), "does not exist", class = "biclum_bad_file")
  expect_error(ReadGMT("/no/such/file.gmt"), "does not exist", class = "biclum_bad_file")
  # not a Seurat object; bad arguments
  expect_error(MatchCells(counts_of(s$res$rna), s$res$rna), "expected a Seurat object", class = "biclum_not_seurat")
  expect_error(MatchCells(s$res$other, s$res$rna, k = 0), "k must be a whole number >= 1", class = "biclum_bad_argument")
  expect_error(FindBiCLUMMarkers(s$res$rna, group.by = "cell_type", method = "roc"), "method must be one of",
               class = "biclum_bad_argument")
  expect_error(GenePeakLinks(s$res$rna, s$res$other), "needs a gene annotation", class = "biclum_bad_annotation")
  # errors of the Python core keep their message and class
  err <- tryCatch(TFActivity(s$res$rna, data.frame(source = "TF", target = c("x1", "x2"))), error = function(e) e)
  expect_s3_class(err, "biclum_input_error")
  expect_s3_class(err, "biclum_python_error")
  expect_match(conditionMessage(err), "no TF has >= 5 targets")
  expect_match(conditionMessage(err), "[Python BiclumInputError]", fixed = TRUE)
  expect_error(biclum_example("no_such_file.tsv"), "no example file", class = "biclum_input_error")
})

test_that("cells without an embedding are left out with a warning (and get NA labels)", {
  skip_if_no_biclum_python()
  s <- sim_ds()
  q <- s$res$other
  dr <- q[["biclum"]]
  emb <- SeuratObject::Embeddings(dr)
  emb[1:3, ] <- NA
  q[["biclum"]] <- SeuratObject::CreateDimReducObject(embeddings = emb, key = SeuratObject::Key(dr), assay = "peaks")
  expect_warning(out <- TransferLabels(q, s$res$rna, label = "cell_type"), "3 cells without an embedding",
                 class = "biclum_na_embeddings")
  expect_true(all(is.na(out$predicted.cell_type[1:3])))
  expect_false(anyNA(out$predicted.cell_type[-(1:3)]))
  py <- pyds("transfer_labels", with_obsm(s$d$sim$other_py$`__getitem__`(3:(ncol(q) - 1)), emb), s$rna_py,
                                "cell_type")
  expect_identical(unname(out$predicted.cell_type[-(1:3)]), py_col(py, "label"))
})

# Real data: ECCITE-seq PBMC (RNA + ADT, human), with the example tables shipped with the Python package.
test_that("ECCITE: TransferLabels, TFActivity, LigandReceptor, Enrichment equal the Python functions", {
  skip_if_no_biclum_python()
  rna_path <- skip_if_no_data("eccite_pbmc_mimitou2019_citefuse", "rna.h5ad")
  adt_path <- skip_if_no_data("eccite_pbmc_mimitou2019_citefuse", "adt.h5ad")
  rna_py <- read_h5ad_py(rna_path)
  adt_py <- read_h5ad_py(adt_path)
  res <- RunBiCLUM(anndata_to_seurat(rna_py), anndata_to_seurat(adt_py, assay = "ADT"), modality = "protein",
                   seed = 0L, max_epochs = test_epochs(), verbose = FALSE, batch_size = eccite_batch)
  e_rna <- SeuratObject::Embeddings(res$rna[["biclum"]])
  e_adt <- SeuratObject::Embeddings(res$other[["biclum"]])
  # labels from RNA to ADT cells
  adt <- TransferLabels(res$other, res$rna, label = "cell_type")
  py <- pyds("transfer_labels", with_obsm(adt_py, e_adt), with_obsm(rna_py, e_rna), "cell_type")
  expect_identical(unname(adt$predicted.cell_type), py_col(py, "label"))
  expect_equal(unname(adt$predicted.cell_type.score), py_col(py, "confidence"), tolerance = 1e-10)
  message(sprintf("ECCITE: label transfer RNA -> ADT accuracy %.2f (%d epoch(s))",
                  mean(adt$predicted.cell_type == adt$cell_type), test_epochs()))
  # TF activity with the example human network
  net <- biclum_example("tf_network_human.tsv")
  act <- TFActivity(res$rna, net)
  act_py <- pyds("tf_activity", rna_py, net)
  expect_identical(colnames(act), reticulate::py_to_r(act_py$columns$tolist()))
  expect_equal(unname(as.matrix(act)), unname(reticulate::py_to_r(act_py$to_numpy())), tolerance = 1e-8)
  # ligand-receptor with the example human table
  lr <- biclum_example("lr_pairs_human.tsv")
  out <- LigandReceptor(res$rna, group.by = "cell_type", lr_table = lr, n_perm = 100)
  out_py <- pyds("ligand_receptor", rna_py, "cell_type", lr, n_perm = 100L)
  expect_same_table(out, out_py)
  # markers and their enrichment in the example human gene sets
  m <- FindBiCLUMMarkers(res$rna, group.by = "cell_type", method = "t-test")
  gmt <- biclum_example("gene_sets_human.gmt")
  en <- Enrichment(m, gmt, n_top = 100)
  en_py <- pyds("enrich_markers", pyds("find_markers", rna_py, "cell_type", method = "t-test"), gmt, n_top = 100L)
  expect_same_table(en, en_py)
  expect_gt(nrow(en), 0)
})
