# ArchR small PBMC (unpaired RNA + 5-kb ATAC tiles, hg19) through RunBiCLUM on Seurat objects, default settings:
# 5-NN label transfer RNA -> ATAC (and ATAC -> RNA) in the joint embedding, per seed, mean and sd.
#
#   Rscript benchmarks/archr_runbiclum.R [seeds...]      (default seeds 0 1 2; needs the installed R package)
#
# Writes benchmarks/results/archr_runbiclum.md with the command, commit, machine and seeds.
suppressPackageStartupMessages({ library(biclum); library(Seurat) })
args <- commandArgs(trailingOnly = TRUE)
seeds <- if (length(args)) as.integer(args) else 0:2
data <- Sys.getenv("BICLUM_SHARED_DATA", file.path(dirname(getwd()), "shared", "data"))
ad <- reticulate::import("anndata", convert = FALSE)
rna <- anndata_to_seurat(ad$read_h5ad(file.path(data, "pbmc_small_archr_testdata", "rna.h5ad")), assay = "RNA")
atac <- anndata_to_seurat(ad$read_h5ad(file.path(data, "pbmc_small_archr_testdata", "atac_tiles5kb.h5ad")),
                          assay = "peaks")
annotation <- file.path(data, "annotation", "hg19_genes.tsv.gz")
# 5-NN transfer with the metric code of every other benchmark (biclum.metrics, sklearn), not a copy of it in R
metrics <- reticulate::import("biclum.metrics")
knn_transfer <- function(src, src_lab, dst, dst_lab)
  metrics$label_transfer_accuracy(src, as.character(src_lab), dst, as.character(dst_lab), k = 5L)
rows <- lapply(seeds, function(s) {
  t0 <- Sys.time()
  res <- suppressMessages(RunBiCLUM(rna, atac, modality = "atac", annotation = annotation, seed = s, verbose = FALSE))
  wall <- as.numeric(difftime(Sys.time(), t0, units = "secs"))
  er <- Embeddings(res$rna, "biclum"); eo <- Embeddings(res$other, "biclum")
  lr <- res$rna$cell_type[rownames(er)]; lo <- res$other$cell_type[rownames(eo)]
  data.frame(seed = s, transfer_rna_to_atac = knn_transfer(er, lr, eo, lo),
             transfer_atac_to_rna = knn_transfer(eo, lo, er, lr), wall_s = wall)
})
tab <- do.call(rbind, rows)
ms <- function(x) sprintf("%.3f ± %.3f", mean(x), sd(x))
commit <- tryCatch(system("git rev-parse --short HEAD", intern = TRUE), error = function(e) "?")
lines <- c("# ArchR small PBMC through RunBiCLUM (Seurat), default settings", "",
           sprintf("Command: `Rscript benchmarks/archr_runbiclum.R %s`  ", paste(seeds, collapse = " ")),
           sprintf("Commit: %s; %s; R %s, Seurat %s, SeuratObject %s; %d cores, load %s; seeds %s; threads: the package default.",
                   commit, format(Sys.time(), "%Y-%m-%d %H:%M"), getRversion(), packageVersion("Seurat"),
                   packageVersion("SeuratObject"), parallel::detectCores(),
                   tryCatch(strsplit(readLines("/proc/loadavg"), " ")[[1]][1], error = function(e) "?"),
                   paste(seeds, collapse = ", ")), "",
           "5-NN label transfer in the joint embedding (biclum.metrics.label_transfer_accuracy: k = 5, Euclidean,",
           "majority vote, the same code as the Python benchmarks). The joint-PCA floor of",
           "../shared/ANCHORS.md: 0.72 RNA -> ATAC.", "",
           "| | transfer RNA -> ATAC | transfer ATAC -> RNA | wall s |", "|---|---|---|---|",
           sprintf("| mean ± sd | %s | %s | %s |", ms(tab$transfer_rna_to_atac), ms(tab$transfer_atac_to_rna), ms(tab$wall_s)),
           sprintf("| seed %d | %.3f | %.3f | %.1f |", tab$seed, tab$transfer_rna_to_atac, tab$transfer_atac_to_rna, tab$wall_s))
writeLines(lines)
writeLines(lines, file.path("benchmarks", "results", "archr_runbiclum.md"))
