#!/usr/bin/env Rscript
# Seurat CCA anchors + TransferData co-embedding, the recipe of Seurat's scATAC integration vignette
# (https://satijalab.org/seurat/articles/atacseq_integration_vignette), as a baseline of `biclum benchmark`.
# Called by biclum.benchmark.baselines.seurat_cca() (package data of biclum.benchmark); works with Seurat 4.x (tested with 4.3.0) and is written for 5.x.
#
# Usage: Rscript seurat_cca.R --dir DIR [--ndims 30] [--nfeatures 2000] [--reduction-dims 2:30]
# DIR holds (written by Python):
#   rna.mtx, other.mtx                 features x cells counts (MatrixMarket); "other" = gene activity / protein genes
#   rna_genes.txt, other_genes.txt     feature names, one per line
#   rna_cells.txt, other_cells.txt     cell names, one per line
#   other_reduction.csv (optional)     cells x dims weight reduction of the query (e.g. ATAC LSI); else a query PCA
#   rna_labels.csv (optional)          cell,label of the RNA cells -> predicted.csv (Seurat's own label transfer)
# Writes DIR/coembed.csv: (RNA cells + query cells) x ndims PCA co-embedding, row names = cell names.
suppressPackageStartupMessages({
  library(Matrix)
  library(Seurat)
})
args <- commandArgs(trailingOnly = TRUE)
getarg <- function(flag, default = NULL) {
  i <- match(flag, args)
  if (is.na(i)) default else args[i + 1]
}
dir <- getarg("--dir")
if (is.null(dir)) stop("seurat_cca.R: --dir is required")
ndims <- as.integer(getarg("--ndims", "30"))
nfeat <- as.integer(getarg("--nfeatures", "2000"))
red_dims <- getarg("--reduction-dims", NULL)
set.seed(0)
t0 <- Sys.time()
say <- function(...) cat(sprintf("[seurat_cca %6.1fs] ", as.numeric(difftime(Sys.time(), t0, units = "secs"))), ..., "\n", sep = "")
say("Seurat ", as.character(packageVersion("Seurat")))

read_counts <- function(prefix) {
  m <- as(readMM(file.path(dir, paste0(prefix, ".mtx"))), "CsparseMatrix")
  rownames(m) <- make.unique(readLines(file.path(dir, paste0(prefix, "_genes.txt"))))
  colnames(m) <- readLines(file.path(dir, paste0(prefix, "_cells.txt")))
  m
}

rna <- CreateSeuratObject(counts = read_counts("rna"), assay = "RNA")
rna <- NormalizeData(rna, verbose = FALSE)
rna <- FindVariableFeatures(rna, selection.method = "vst", nfeatures = nfeat, verbose = FALSE)
query <- CreateSeuratObject(counts = read_counts("other"), assay = "ACTIVITY")
query <- NormalizeData(query, verbose = FALSE)

shared <- intersect(rownames(rna), rownames(query))
features <- intersect(VariableFeatures(rna), shared)
if (length(features) < 200) features <- shared
say(ncol(rna), " RNA cells, ", ncol(query), " query cells, ", length(shared), " shared genes, ",
    length(features), " anchor features")
rna <- ScaleData(rna, features = features, verbose = FALSE)
query <- ScaleData(query, features = features, verbose = FALSE)

ncell_min <- min(ncol(rna), ncol(query))
dims_cca <- seq_len(min(ndims, length(features) - 1, ncell_min - 1))
k_filter <- if (ncell_min < 400) NA else 200
k_score <- min(30, ncell_min - 1)
anchors <- FindTransferAnchors(reference = rna, query = query, features = features, reference.assay = "RNA",
                               query.assay = "ACTIVITY", reduction = "cca", dims = dims_cca,
                               k.filter = k_filter, k.score = k_score, verbose = FALSE)
n_anchors <- nrow(slot(anchors, "anchors"))
say("FindTransferAnchors: ", n_anchors, " anchors")

if (!is.null(red_dims)) {
  red <- as.matrix(read.csv(file.path(dir, "other_reduction.csv"), row.names = 1, check.names = FALSE))
  colnames(red) <- paste0("LSI_", seq_len(ncol(red)))
  red <- red[colnames(query), , drop = FALSE]
  query[["lsi"]] <- CreateDimReducObject(embeddings = red, key = "LSI_", assay = "ACTIVITY")
  wdims <- eval(parse(text = red_dims))
  wdims <- wdims[wdims <= ncol(red)]
  wred <- query[["lsi"]]
} else {
  npcs_q <- min(50, length(features) - 1, ncol(query) - 1)
  query <- RunPCA(query, features = features, npcs = npcs_q, verbose = FALSE)
  wdims <- seq_len(min(ndims, npcs_q))
  wred <- query[["pca"]]
}
k_weight <- min(50, n_anchors - 1)

lab_file <- file.path(dir, "rna_labels.csv")
if (file.exists(lab_file)) {
  lab <- read.csv(lab_file, header = FALSE, colClasses = "character")
  labels <- setNames(lab[[2]], lab[[1]])[colnames(rna)]
  pred <- TransferData(anchorset = anchors, refdata = labels, weight.reduction = wred, dims = wdims,
                       k.weight = k_weight, verbose = FALSE)
  write.csv(data.frame(cell = colnames(query), predicted = pred$predicted.id), file.path(dir, "predicted.csv"),
            row.names = FALSE)
  say("TransferData: labels predicted")
}

# co-embedding: impute RNA expression of the anchor features for the query cells, merge, PCA
refdata <- GetAssayData(rna, assay = "RNA", slot = "data")[features, ]
imputation <- TransferData(anchorset = anchors, refdata = refdata, weight.reduction = wred, dims = wdims,
                           k.weight = k_weight, verbose = FALSE)
query[["RNA"]] <- imputation
DefaultAssay(query) <- "RNA"
coembed <- merge(x = rna, y = query)
DefaultAssay(coembed) <- "RNA"
if (packageVersion("Seurat") >= "5.0.0") coembed <- JoinLayers(coembed)
coembed <- ScaleData(coembed, features = features, do.scale = FALSE, verbose = FALSE)
npcs <- min(50, length(features) - 1, ncol(coembed) - 1)
coembed <- RunPCA(coembed, features = features, npcs = npcs, verbose = FALSE)
emb <- Embeddings(coembed, "pca")[, seq_len(min(ndims, npcs)), drop = FALSE]
write.csv(emb, file.path(dir, "coembed.csv"))
say("done: co-embedding ", nrow(emb), " x ", ncol(emb))
