# Annotation tidying exists only in Python (biclum.prior.read_annotation): R passes a GRanges' columns through
# unchanged, so R and Python give the same gene activity for the same annotation, here a Signac-like GRanges (one
# row per exon/gap) with a gene name on two chromosomes (PARG on chrX and, longer, on chrY).

granges_rows <- function() {
  data.frame(chrom = c("chrX", "chrX", "chrX", "chrY", "chrY", "chr1", "chr1", "chr1"),
             start = c(10000L, 14001L, 18000L, 50000L, 80000L, 5000L, 30000L, 33000L),
             end = c(14000L, 17999L, 20000L, 60000L, 90000L, 9000L, 31000L, 36000L),
             strand = c("+", "+", "+", "+", "+", "-", "+", "+"),
             gene_name = c("PARG", "PARG", "PARG", "PARG", "PARG", "G1", "G2", "G2"),
             type = c("exon", "gap", "exon", "exon", "exon", "exon", "exon", "cds"), stringsAsFactors = FALSE)
}

peak_object <- function() {
  peaks <- c("chrX-15000-15500", "chrY-70000-70500", "chrY-85000-85500", "chr1-7000-7500", "chr1-30500-30800",
             "chr2-100-600")
  set.seed(4)
  m <- matrix(as.numeric(rpois(length(peaks) * 20, 2)), length(peaks), 20, dimnames = list(peaks, paste0("c", 1:20)))
  SeuratObject::CreateSeuratObject(Matrix::Matrix(m, sparse = TRUE), assay = "peaks")
}

test_that("R and Python give the same gene activity for a GRanges with a gene name on two chromosomes", {
  skip_if_no_biclum_python()
  skip_if_not_installed("GenomicRanges")
  ex <- granges_rows()
  gr <- GenomicRanges::GRanges(ex$chrom, IRanges::IRanges(ex$start, ex$end), strand = ex$strand,
                               gene_name = ex$gene_name, gene_biotype = "protein_coding", type = ex$type)
  atac <- peak_object()
  ga_r <- counts_of(BiCLUMGeneActivity(atac, annotation = gr, assay = "peaks", new.assay.name = "GA",
                                       genome_check = FALSE), "GA")
  # Python, on the same table built in Python (the columns R's as.data.frame(gr) has)
  pd <- reticulate::import("pandas", convert = FALSE)
  tab <- pd$DataFrame(reticulate::dict(seqnames = ex$chrom, start = ex$start, end = ex$end, strand = ex$strand,
                                       gene_name = ex$gene_name, gene_biotype = "protein_coding", type = ex$type))
  ga_py <- reticulate::import("biclum.prior", convert = FALSE)$gene_activity(seurat_to_anndata(atac), tab,
                                                                             genome_check = FALSE)
  x_py <- t(reticulate::py_to_r(ga_py$X$toarray()))
  dimnames(x_py) <- list(reticulate::py_to_r(ga_py$var_names$tolist()), reticulate::py_to_r(ga_py$obs_names$tolist()))
  expect_identical(rownames(ga_r), rownames(x_py))
  expect_identical(as.matrix(ga_r), x_py)
  # the name on two chromosomes keeps its longest copy (chrY), by Python's rule
  m <- counts_of(atac)
  expect_equal(unname(ga_r["PARG", ]), unname(Matrix::colSums(m[c("chrY-70000-70500", "chrY-85000-85500"), ])))
  # the annotation the fit receives is the same table once tidied
  bridge <- reticulate::import("biclum.bridge", convert = FALSE)
  prior <- reticulate::import("biclum.prior", convert = FALSE)
  from_r <- prior$read_annotation(bridge$decode(biclum:::.annotation_arg(gr)))
  expect_true(reticulate::py_to_r(from_r$equals(prior$read_annotation(tab))))
})

test_that("a data.frame annotation passes through too, and bad annotations are refused in R", {
  skip_if_no_biclum_python()
  ex <- granges_rows()
  atac <- peak_object()
  ga_df <- counts_of(BiCLUMGeneActivity(atac, annotation = ex, assay = "peaks", new.assay.name = "GA",
                                        genome_check = FALSE), "GA")
  expect_identical(rownames(ga_df), c("PARG", "G1", "G2"))
  expect_error(BiCLUMGeneActivity(atac, annotation = 1:3, assay = "peaks"), class = "biclum_bad_annotation")
  expect_error(BiCLUMGeneActivity(atac, annotation = "/no/such.tsv", assay = "peaks"), "does not exist",
               class = "biclum_bad_annotation")
})
