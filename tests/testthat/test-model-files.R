# A damaged file of a saved model (issue 31): ProjectBiCLUM stops with an R error that carries the Python message
# (the file, what is wrong, the fix) and no Python traceback.

# A tiny protein model fitted for one epoch (quietly) on 150 simulated cells, and the simulation.
tiny_protein_model <- function() {
  key <- "tiny protein model"
  if (is.null(.biclum_test_cache[[key]])) {
    bc <- reticulate::import("biclum")
    level <- bc$logger$level
    bc$set_verbosity("WARNING")
    on.exit(bc$set_verbosity(level), add = TRUE)
    sim <- reticulate::import("biclum.datasets")$simulate(n_cells = 150L, modality = "protein", seed = 1L)
    model <- bc$BiCLUM(sim[[1]], sim[[2]], "protein", seed = 0L, n_top_genes = 100L, n_pcs = 8L, mnn_k = 10L,
                       n_metacells = 12L, batch_size = 64L, hidden_dims = list(16L), latent_dim = 4L,
                       n_shared_pcs = 6L, feature_batch_size = 64L, num_threads = 1L)
    model$fit(1L, progress = FALSE)
    .biclum_test_cache[[key]] <- list(model = model, sim = sim)
  }
  .biclum_test_cache[[key]]
}

test_that("ProjectBiCLUM names a damaged model file, with the Python message and no traceback", {
  skip_if_no_biclum_python()
  tiny <- tiny_protein_model()
  model <- tiny$model
  saved <- file.path(tempdir(), "biclum-damaged-model")
  on.exit(unlink(saved, recursive = TRUE), add = TRUE)
  model$save(saved, overwrite = TRUE)
  query <- Matrix::sparseMatrix(i = 1:2, j = 1:2, x = c(1, 2), dims = c(2, 2),
                                dimnames = list(c("g1", "g2"), c("c1", "c2")))
  python_message <- reticulate::py_run_string(paste(
    "import biclum",
    "def load_message(path):",
    "    try:",
    "        biclum.BiCLUM.load(path)",
    "    except biclum.BiclumModelError as err:",
    "        return str(err)", sep = "\n"), convert = TRUE)$load_message
  for (name in c("model.json", "model.pt", "arrays.npz")) {
    damaged <- file.path(tempdir(), paste0("biclum-damaged-", name))
    on.exit(unlink(damaged, recursive = TRUE), add = TRUE)
    dir.create(damaged)
    file.copy(list.files(saved, full.names = TRUE), damaged)
    path <- file.path(damaged, name)
    bytes <- readBin(path, "raw", file.size(path))
    writeBin(bytes[seq_len(length(bytes) %/% 2)], path) # cut short, as by an interrupted copy
    err <- tryCatch(ProjectBiCLUM(query, damaged, modality = "rna"), error = identity)
    expect_s3_class(err, "biclum_py_biclum_model_error")
    expect_identical(conditionMessage(err),
                     paste0(python_message(normalizePath(damaged)), " [Python BiclumModelError]"))
    expect_match(conditionMessage(err), paste0(name, "' is damaged"), fixed = TRUE)
    expect_match(conditionMessage(err), "save the model again", fixed = TRUE)
    expect_false(grepl("Traceback", conditionMessage(err), fixed = TRUE))
  }
})

test_that("ProjectBiCLUM reads the old copy a save killed between its two renames left", {
  skip_if_no_biclum_python()
  tiny <- tiny_protein_model()
  model <- tiny$model
  sim <- tiny$sim
  parent <- file.path(tempdir(), "biclum-swap")
  on.exit(unlink(parent, recursive = TRUE), add = TRUE)
  dir.create(parent)
  model$save(file.path(parent, ".model.biclum-old")) # the state between the renames: only the old copy
  rna <- anndata_to_seurat(sim[[1]])
  q <- ProjectBiCLUM(rna[, 1:20], file.path(parent, "model"), modality = "rna", reduction.name = "proj")
  expect_equal(dim(SeuratObject::Embeddings(q[["proj"]])), c(20L, 4L))
})
