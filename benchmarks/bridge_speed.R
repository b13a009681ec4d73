#!/usr/bin/env Rscript
# How fast does a Seurat object cross the R <-> Python bridge (issue 4, acceptance 3: < 5 s each way for
# 20k cells x 20k genes)? Sparse counts travel as the x/i/p vectors of the dgCMatrix (no densifying, no
# reticulate SciPy conversion).
#
# Usage (from the repository root, after R CMD INSTALL .):
#   RETICULATE_PYTHON=$(python3 -c 'import sys; print(sys.executable)') \
#     Rscript benchmarks/bridge_speed.R [n_cells=20000] [n_genes=20000] [genes_per_cell=1000] [repeats=3]
# Writes benchmarks/results/bridge_speed.md.

args <- commandArgs(trailingOnly = TRUE)
arg <- function(k, default) if (length(args) >= k) as.integer(args[k]) else default
n_cells <- arg(1, 20000L)
n_genes <- arg(2, 20000L)
per_cell <- arg(3, 1000L)
repeats <- arg(4, 3L)

suppressPackageStartupMessages({
  library(biclum)
  library(SeuratObject)
})
stopifnot(isTRUE(biclum_available()))

set.seed(0)
t_make <- system.time({
  i <- unlist(lapply(seq_len(n_cells), function(j) sort(sample.int(n_genes, per_cell))), use.names = FALSE) - 1L
  p <- c(0L, cumsum(rep(per_cell, n_cells)))
  x <- as.double(rpois(length(i), 2) + 1)
  counts <- methods::new("dgCMatrix", i = i, p = as.integer(p), x = x, Dim = c(n_genes, n_cells),
                         Dimnames = list(paste0("Gene", seq_len(n_genes)), paste0("cell", seq_len(n_cells))))
  obj <- CreateSeuratObject(counts, meta.data = data.frame(
    cell_type = factor(sample(c("T", "B", "NK", "Mono"), n_cells, TRUE)), row.names = colnames(counts)))
})
rm(i, p, x)
invisible(gc())
nnz <- length(counts@x)
cat(sprintf("Seurat object: %d genes x %d cells, %.1f M non-zeros (%.1f MB as dgCMatrix); built in %.1f s\n",
            n_genes, n_cells, nnz / 1e6, as.numeric(object.size(counts)) / 2^20, t_make[["elapsed"]]))

# warm-up: start Python, import the bridge and anndata
invisible(seurat_to_anndata(CreateSeuratObject(counts[1:100, 1:100])))

to_py <- numeric()
to_r <- numeric()
for (r in seq_len(repeats)) {
  invisible(gc())
  to_py[r] <- system.time(ad <- seurat_to_anndata(obj))[["elapsed"]]
  invisible(gc())
  to_r[r] <- system.time(back <- anndata_to_seurat(ad, assay = "RNA"))[["elapsed"]]
  same <- identical(GetAssayData(back, slot = "counts"), counts) && identical(back$cell_type, obj$cell_type)
  if (!same) stop("round trip changed the data")
  rm(back)
  cat(sprintf("repeat %d: Seurat -> AnnData %.2f s, AnnData -> Seurat %.2f s (round trip identical: %s)\n",
              r, to_py[r], to_r[r], same))
}
shape <- unlist(reticulate::py_to_r(ad$shape))
xtype <- reticulate::py_to_r(reticulate::py_get_attr(ad$X, "format"))
load <- tryCatch(readLines("/proc/loadavg")[1], error = function(e) NA)
cpu <- tryCatch(sub(".*: ", "", grep("model name", readLines("/proc/cpuinfo"), value = TRUE)[1]), error = function(e) NA)

res <- c(
  "# Bridge speed: Seurat <-> Python AnnData",
  "",
  "Command: `RETICULATE_PYTHON=... Rscript benchmarks/bridge_speed.R` (repository root, biclum installed).",
  "",
  sprintf("- Data: %d genes x %d cells, %d genes detected per cell, %.1f M non-zeros (dgCMatrix %.0f MB).",
          n_genes, n_cells, per_cell, nnz / 1e6, as.numeric(object.size(counts)) / 2^20),
  sprintf("- Python side: AnnData %d x %d, X %s float32 (the same x/i/p vectors, no densifying).",
          shape[1], shape[2], xtype),
  sprintf("- Machine: %s, %d cores, load average at the end: %s. %s, reticulate %s, SeuratObject %s.",
          cpu, parallel::detectCores(), load, R.version.string, utils::packageVersion("reticulate"),
          utils::packageVersion("SeuratObject")),
  "",
  "| direction | function | median (s) | all repeats (s) | target |",
  "|---|---|---|---|---|",
  sprintf("| R -> Python | `seurat_to_anndata()` | %.2f | %s | < 5 s |", stats::median(to_py),
          paste(sprintf("%.2f", to_py), collapse = ", ")),
  sprintf("| Python -> R | `anndata_to_seurat()` | %.2f | %s | < 5 s |", stats::median(to_r),
          paste(sprintf("%.2f", to_r), collapse = ", ")),
  "",
  "R -> Python includes meta.data and names; Python -> R includes `CreateSeuratObject()` (nCount/nFeature).",
  "Each round trip was checked to give identical counts and metadata."
)
out <- file.path("benchmarks", "results", "bridge_speed.md")
if (dir.exists(dirname(out))) writeLines(res, out)
cat(res, sep = "\n")
