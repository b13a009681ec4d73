# Batches within a modality (issue 16): rna.batch / other.batch metadata columns and, on Seurat 5, split layers as
# batches (split.batches = TRUE) give the embeddings of the Python API called with the same batch column.

has_v5 <- function() utils::packageVersion("SeuratObject") >= "4.9.0"

# The simulated ATAC pair with a "sample" column: in the Seurat objects' metadata and in copies of the AnnData.
sim_with_samples <- function() {
  d <- sim_seurat("atac")
  out <- list(rna = d$rna, atac = d$other, annotation = d$annotation, sim = d$sim)
  py <- list(rna = d$sim$rna_py$copy(), atac = d$sim$other_py$copy())
  for (side in c("rna", "atac")) {
    sample <- rep(c("s1", "s2"), length.out = ncol(out[[side]]))
    out[[side]]$sample <- sample
    cells <- reticulate::py_to_r(py[[side]]$obs_names$tolist())
    py[[side]]$obs$`__setitem__`("sample", reticulate::r_to_py(sample[match(cells, colnames(out[[side]]))]))
  }
  out$py <- py
  out
}

expect_same_as_python <- function(res, d) {
  py <- py_integrate(d$py$rna, d$py$atac, "atac", d$sim$annotation_py, seed = 0L, max_epochs = 1L,
                     batch_size = sim_batch, rna_batch_key = "sample", other_batch_key = "sample")
  for (side in c("rna", "other")) {
    e_py <- py_embeddings(py, side)
    e_r <- SeuratObject::Embeddings(res[[side]][["biclum"]])
    expect_lt(max_abs_diff(unname(e_r[rownames(e_py), ]), unname(e_py)), 1e-5)
  }
  plain <- py_integrate(d$sim$rna_py, d$sim$other_py, "atac", d$sim$annotation_py, seed = 0L, max_epochs = 1L,
                        batch_size = sim_batch)
  e_plain <- py_embeddings(plain, "rna") # the batches change the result
  expect_gt(max_abs_diff(unname(SeuratObject::Embeddings(res$rna[["biclum"]])[rownames(e_plain), ]),
                         unname(e_plain)), 1e-3)
}

test_that("rna.batch / other.batch metadata columns equal the Python call with the same batch column", {
  skip_if_no_biclum_python()
  d <- sim_with_samples()
  res <- RunBiCLUM(d$rna, d$atac, modality = "atac", annotation = d$annotation, seed = 0L, max_epochs = 1L,
                   batch_size = sim_batch, verbose = FALSE, rna.batch = "sample", other.batch = "sample")
  expect_same_as_python(res, d)
})

test_that("split layers are the batches with split.batches = TRUE (Seurat 5)", {
  skip_if_no_biclum_python()
  if (!has_v5()) skip("SeuratObject < 5 has no split layers; the metadata-column path is tested above")
  d <- sim_with_samples()
  for (side in c("rna", "atac")) {
    assay <- SeuratObject::DefaultAssay(d[[side]])
    d[[side]][[assay]] <- split(d[[side]][[assay]], f = d[[side]]$sample)
  }
  res <- suppressMessages(RunBiCLUM(d$rna, d$atac, modality = "atac", annotation = d$annotation, seed = 0L,
                                    max_epochs = 1L, batch_size = sim_batch, verbose = FALSE,
                                    split.batches = TRUE))
  expect_same_as_python(res, d)
})

test_that("batch arguments are checked", {
  skip_if_no_biclum_python()
  d <- sim_with_samples()
  expect_error(RunBiCLUM(d$rna, d$atac, modality = "atac", annotation = d$annotation, max_epochs = 1L,
                         verbose = FALSE, rna.batch = "donor"), class = "biclum_bad_batch")
  if (!has_v5()) { # no split layers on SeuratObject 4: split.batches says how to give the batches
    expect_error(RunBiCLUM(d$rna, d$atac, modality = "atac", annotation = d$annotation, max_epochs = 1L,
                           verbose = FALSE, split.batches = TRUE), "split.batches = TRUE needs",
                 class = "biclum_bad_batch")
  }
})

test_that("ProjectBiCLUM passes the query's batch column to the model (transform(batch_key = ))", {
  skip_if_no_biclum_python()
  d <- sim_with_samples()
  model <- file.path(tempdir(), "biclum-batch-model")
  unlink(model, recursive = TRUE)
  res <- RunBiCLUM(d$rna, d$atac, modality = "atac", annotation = d$annotation, seed = 0L, max_epochs = 1L,
                   batch_size = sim_batch, verbose = FALSE, rna.batch = "sample", other.batch = "sample",
                   model_dir = model)
  q <- ProjectBiCLUM(d$rna, model, modality = "rna", batch = "sample", reduction.name = "proj")
  e_q <- SeuratObject::Embeddings(q[["proj"]])
  # the Python call with the same batch column
  loaded <- reticulate::import("biclum.model", convert = FALSE)$BiCLUM$load(model)
  e_py <- reticulate::py_to_r(loaded$transform(d$py$rna, "rna", batch_key = "sample"))
  rownames(e_py) <- reticulate::py_to_r(d$py$rna$obs_names$tolist())
  expect_lt(max_abs_diff(unname(e_q[rownames(e_py), ]), unname(e_py)), 1e-5)
  # training cells with their batch get their fitted embeddings; without the batch they do not
  e_fit <- SeuratObject::Embeddings(res$rna[["biclum"]])
  expect_lt(max_abs_diff(unname(e_q[rownames(e_fit), ]), unname(e_fit)), 1e-4)
  e_none <- SeuratObject::Embeddings(ProjectBiCLUM(d$rna, model, modality = "rna")[["biclum"]])
  expect_gt(max_abs_diff(unname(e_none[rownames(e_fit), ]), unname(e_fit)), 1e-3)
  # the matrix method takes one label per cell
  m <- counts_of(d$rna)
  e_m <- ProjectBiCLUM(m, model, modality = "rna", batch = d$rna$sample[colnames(m)])
  expect_lt(max_abs_diff(unname(e_m[rownames(e_py), ]), unname(e_py)), 1e-5)
  if (requireNamespace("SingleCellExperiment", quietly = TRUE)) { # projectBiCLUM: a colData column
    sce <- SingleCellExperiment::SingleCellExperiment(list(counts = m),
                                                      colData = S4Vectors::DataFrame(sample = d$rna$sample[colnames(m)]))
    e_sce <- SingleCellExperiment::reducedDim(projectBiCLUM(sce, model, modality = "rna", batch = "sample"), "BiCLUM")
    expect_lt(max_abs_diff(unname(e_sce[rownames(e_py), ]), unname(e_py)), 1e-5)
    expect_error(projectBiCLUM(sce, model, modality = "rna", batch = "donor"), class = "biclum_bad_batch")
  }
  expect_error(ProjectBiCLUM(d$rna, model, modality = "rna", batch = "donor"), "batch", class = "biclum_bad_batch")
  expect_error(ProjectBiCLUM(m, model, modality = "rna", batch = c("a", "b")), class = "biclum_bad_batch")
  unlink(model, recursive = TRUE)
})
