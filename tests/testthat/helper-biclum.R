# Helpers shared by the test files (sourced once; `.biclum_test_cache` keeps expensive fits between files).

.biclum_test_cache <- new.env(parent = emptyenv())

# As in reticulate's "Using reticulate in an R package" vignette.
skip_if_no_biclum_python <- function() {
  ok <- biclum_available()
  if (!isTRUE(ok)) {
    skip(paste("the biclum Python package is not available:", attr(ok, "reason") %||% "unknown reason",
               "(set RETICULATE_PYTHON to an interpreter with biclum installed)"))
  }
}

`%||%` <- function(a, b) if (is.null(a)) b else a

# BICLUM_SHARED_DATA, else a shared/data directory next to this directory or one of its parents
# (the repository's ../shared/data).
shared_data_dir <- function() {
  env <- Sys.getenv("BICLUM_SHARED_DATA", "")
  if (nzchar(env)) return(if (dir.exists(env)) normalizePath(env) else NA_character_)
  d <- normalizePath(getwd())
  for (k in 1:8) {
    cand <- file.path(d, "shared", "data")
    if (dir.exists(cand) && file.exists(file.path(cand, "README.md"))) return(normalizePath(cand))
    parent <- dirname(d)
    if (identical(parent, d)) break
    d <- parent
  }
  NA_character_
}

skip_if_no_data <- function(...) {
  dir <- shared_data_dir()
  path <- if (is.na(dir)) NA_character_ else file.path(dir, ...)
  if (is.na(path) || !file.exists(path)) {
    skip(paste0("shared test data not found (", file.path(...), "): set BICLUM_SHARED_DATA to the shared/data ",
                "directory"))
  }
  path
}

py_anndata <- function() reticulate::import("anndata", convert = FALSE)

read_h5ad_py <- function(path) py_anndata()$read_h5ad(path)

# Small simulated pair (cached by arguments).
sim_pair <- function(n_cells = 200L, modality = "atac", seed = 0L, paired = FALSE) {
  key <- paste("sim", n_cells, modality, seed, paired)
  if (is.null(.biclum_test_cache[[key]])) {
    ds <- reticulate::import("biclum.datasets", convert = FALSE)
    sim <- ds$simulate(n_cells = as.integer(n_cells), modality = modality, seed = as.integer(seed),
                       paired = paired)
    ann <- reticulate::py_get_item(sim, 2L)
    .biclum_test_cache[[key]] <- list(
      rna_py = reticulate::py_get_item(sim, 0L),
      other_py = reticulate::py_get_item(sim, 1L),
      annotation_py = ann,
      annotation = if (modality == "atac") biclum:::.columns_df(
        biclum:::.py_deep(reticulate::import("biclum.bridge")$frame_to_columns(ann)),
        as.character(seq_len(reticulate::py_len(ann)))) else NULL)
  }
  .biclum_test_cache[[key]]
}

sim_seurat <- function(modality = "atac", n_cells = 200L) {
  key <- paste("seurat", modality, n_cells)
  if (is.null(.biclum_test_cache[[key]])) {
    s <- sim_pair(n_cells, modality)
    # Seurat renames the simulated isotype control "IgG1_isotype" to "IgG1-isotype" (and warns)
    quiet <- function(expr) withCallingHandlers(expr, warning = function(w) {
      if (grepl("underscores", conditionMessage(w))) invokeRestart("muffleWarning")
    })
    .biclum_test_cache[[key]] <- list(
      rna = anndata_to_seurat(s$rna_py, assay = "RNA"),
      other = quiet(anndata_to_seurat(s$other_py, assay = if (modality == "atac") "peaks" else "ADT")),
      annotation = s$annotation, sim = s)
  }
  .biclum_test_cache[[key]]
}

sim_fit <- function() {
  if (is.null(.biclum_test_cache$sim_fit)) {
    d <- sim_seurat("atac")
    msgs <- character()
    res <- withCallingHandlers(
      RunBiCLUM(d$rna, d$other, modality = "atac", annotation = d$annotation, seed = 0L,
                max_epochs = 1L, batch_size = sim_batch),
      message = function(m) {
        msgs <<- c(msgs, paste(class(m)[1], conditionMessage(m)))
        invokeRestart("muffleMessage")
      })
    .biclum_test_cache$sim_fit <- list(res = res, messages = msgs)
  }
  .biclum_test_cache$sim_fit
}

# Embeddings of a Python IntegrationResult side (cells x latent, rownames = cells).
py_embeddings <- function(res, side = "rna", key = "biclum") {
  ad <- reticulate::py_get_attr(res, side)
  emb <- reticulate::py_to_r(reticulate::py_get_item(ad$obsm, paste0("X_", key)))
  rownames(emb) <- reticulate::py_to_r(ad$obs_names$tolist())
  emb
}

# The Python API called directly (the reference); its Python warnings become R warnings (not stderr).
py_integrate <- function(rna, other, modality, annotation = NULL, seed = 0L, max_epochs = 1L, ...) {
  main <- reticulate::py_run_string(paste(
    "def _biclum_test_integrate(*args, **kwargs):",
    "    import warnings, biclum",
    "    biclum.set_verbosity('WARNING')",
    "    try:",
    "        with warnings.catch_warnings(record=True) as w:",
    "            warnings.simplefilter('always')",
    "            res = biclum.integrate(*args, **kwargs)",
    "    finally:",
    "        biclum.set_verbosity('INFO')",
    "    return res, [str(x.message) for x in w]", sep = "\n"), convert = FALSE)
  out <- main$`_biclum_test_integrate`(rna, other, modality = modality, annotation = annotation,
                                        seed = as.integer(seed), max_epochs = as.integer(max_epochs),
                                        progress = FALSE, ...)
  for (w in reticulate::py_to_r(reticulate::py_get_item(out, 1L))) warning("Python: ", w, call. = FALSE)
  reticulate::py_get_item(out, 0L)
}

max_abs_diff <- function(a, b) {
  stopifnot(identical(dim(a), dim(b)))
  max(abs(unclass(a) - unclass(b)), na.rm = TRUE)
}

# Fit settings for the tests: few epochs, otherwise the defaults (the same for R and Python).
test_epochs <- function() as.integer(Sys.getenv("BICLUM_TEST_EPOCHS", "1"))
# SNARE-seq (10k cells): larger batches (fewer steps per epoch), the same in R and Python.
snare_batch <- 2048L
# Simulated data (200 cells) and ECCITE (500 cells): batches no larger than the data (the core caps them otherwise).
sim_batch <- 128L
eccite_batch <- 256L

# Raw counts of a Seurat object's default assay, with SeuratObject 4 (slot=) or 5 (layer=).
counts_of <- function(obj, assay = NULL) {
  a <- obj[[assay %||% SeuratObject::DefaultAssay(obj)]]
  biclum:::.assay_matrix(a, layer = "counts", what = "test object")
}
