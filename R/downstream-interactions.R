# Downstream analyses on Seurat objects: LigandReceptor.
# R wrappers of biclum.downstream (Python), built on the helpers of downstream-utils.R.

# ---------------------------------------------------------------------------------------------------
# ligand-receptor interactions
# ---------------------------------------------------------------------------------------------------

#' Ligand-receptor interactions between cell types
#'
#' R interface of `biclum.downstream.ligand_receptor()` (Python): for each ligand-receptor pair, sender
#' and receiver cell type, the score `mean_sender(ligand) * mean_receiver(receptor)` (`"product"`) or
#' their average (`"mean"`, CellPhoneDB), with a label-permutation p-value (`n_perm` permutations) and
#' BH FDR. Receptors can be scored on another modality (`other`, e.g. CITE-seq proteins named by their
#' genes, or ATAC gene activity) with its own (e.g. transferred, [TransferLabels()]) cell types.
#'
#' @param object Seurat object of the ligand side (gene-level values).
#' @param group.by `meta.data` column of `object` with the cell types.
#' @param lr_table Ligand-receptor pairs: a data.frame (`ligand`, `receptor`, other columns kept) or the
#'   path of a tsv/csv table. [biclum_example()] gives small illustrative tables.
#' @param other Seurat object of the receptor side (`NULL`: `object`).
#' @param other.group.by `meta.data` column of `other` with its cell types (default `group.by`).
#' @param assay,other.assay Assays (default: the default assays).
#' @param layer,other.layer Layers (v5) or slots (v4) of the values.
#' @param normalize,other.normalize `"auto"` (raw counts -> log1p of counts per 10,000), `"log1p"`, `"clr"`
#'   (raw ADT counts) or `NULL`.
#' @param score `"product"` or `"mean"`.
#' @param n_perm Label permutations.
#' @param min_frac Smallest fraction of sender cells expressing the ligand and of receiver cells
#'   expressing the receptor for a pair to be tested (others get p = 1).
#' @param seed Random seed.
#' @param verbose Show the Python core's log messages as R messages.
#' @return A data.frame sorted by p-value and decreasing score: `ligand`, `receptor`, `sender`,
#'   `receiver`, `ligand_mean`, `receptor_mean`, `ligand_frac`, `receptor_frac`, `score`, `expressed`,
#'   `pval`, `fdr` and the table's other columns.
#' @examples
#' \donttest{
#' if (biclum_available(initialize = FALSE)) {
#'   bc <- reticulate::import("biclum.datasets")
#'   sim <- bc$simulate(n_cells = 200L, modality = "protein", seed = 0L)
#'   rna <- anndata_to_seurat(sim[[1]])
#'   lr <- data.frame(ligand = rownames(rna)[1:5], receptor = rownames(rna)[6:10])
#'   head(LigandReceptor(rna, group.by = "cell_type", lr_table = lr, n_perm = 100))
#' }
#' }
#' @export
LigandReceptor <- function(object, group.by, lr_table, other = NULL, other.group.by = group.by, assay = NULL,
                           other.assay = NULL, layer = "counts", other.layer = layer, normalize = "auto",
                           other.normalize = normalize, score = c("product", "mean"), n_perm = 1000L,
                           min_frac = 0.05, seed = 0L, verbose = FALSE) {
  .ds_check_seurat(object, "object")
  score <- .ds_choice(score, c("product", "mean"), "score")
  assay <- .ds_assay(object, assay, "object", "assay")
  obs <- .ds_meta_column(object, group.by, "object", "group.by")
  lr <- .ds_table_arg(lr_table, "lr_table", list_ok = FALSE)
  spec <- .ds_adata(object, "object", assay = assay, layer = layer, obs = obs)
  r_spec <- NULL
  if (!is.null(other)) {
    .ds_check_seurat(other, "other")
    other.assay <- .ds_assay(other, other.assay, "other", "other.assay")
    r_obs <- .ds_meta_column(other, other.group.by, "other", "other.group.by")
    r_spec <- .ds_adata(other, "other", assay = other.assay, layer = other.layer, obs = r_obs)
  }
  .ds_call("ligand_receptor", list(
    adata = spec, groupby = group.by, lr_table = lr, receptor_adata = r_spec,
    receptor_groupby = if (is.null(other)) NULL else other.group.by, normalize = normalize,
    receptor_normalize = if (is.null(other)) normalize else other.normalize, score = score,
    n_perm = .ds_int(n_perm, "n_perm", min = 0), min_frac = as.numeric(min_frac), seed = as.integer(seed)),
    verbose = verbose)
}
