# Downstream analyses on Seurat objects: TFActivity and CompareTFActivity.
# R wrappers of biclum.downstream (Python), built on the helpers of downstream-utils.R.

# ---------------------------------------------------------------------------------------------------
# TF activity
# ---------------------------------------------------------------------------------------------------

#' Transcription-factor activity from a TF -> target network
#'
#' R interface of `biclum.downstream.tf_activity()` and `compare_tf_activity()` (Python). Per-cell TF
#' activity is the t-value of a univariate linear model of the cell's gene values on the TF's target
#' weights (`"ulm"`, as decoupler) or a weighted mean of its targets (`"wmean"`, optionally z-scored
#' against `n_perm` gene permutations). Compute it on RNA and on the ATAC gene activity
#' ([BiCLUMGeneActivity()]) and compare the two per cell type with `CompareTFActivity()`: both are
#' z-scored per TF, averaged per cell type, and correlated across cell types.
#'
#' @param object A Seurat object with gene-level values (RNA counts, gene activity).
#' @param network The TF -> target network: a data.frame (`source`, `target`, `weight`; `tf`/`gene`/`mor`
#'   also recognised), a named list (`list(TF = c(targets))`, weights 1), or the path of a table (tsv/csv)
#'   or of a GMT file. [biclum_example()] gives small illustrative networks.
#' @param assay Assay (default: the default assay).
#' @param layer Layer (v5) or slot (v4); raw counts are log-normalised (counts per 10,000, log1p) when
#'   `normalize = "auto"`.
#' @param method `"ulm"` or `"wmean"`.
#' @param normalize `"auto"`, `"log1p"` or `NULL` (values as given).
#' @param min_targets TFs with fewer measured targets are skipped.
#' @param n_perm `"wmean"` only: permutations for the z-score (0: plain weighted mean).
#' @param seed Random seed (permutations).
#' @param new.assay.name `NULL`: return the activities as a data.frame (cells x TFs). A name: return
#'   `object` with a new assay of that name holding the activities (TFs x cells, in the data slot/layer).
#' @param verbose Show the Python core's log messages as R messages.
#' @return `TFActivity()`: a data.frame (cells x TFs) or `object` with the new assay.
#'   `CompareTFActivity()`: a data.frame, one row per TF (row names): `pearson_r`, `spearman_r` (across
#'   cell types), `top_<names[1]>`, `top_<names[2]>` (cell type with the highest mean), `n_types`, `agree`;
#'   the per-type means are its attribute `"by_group"` (a list of two data.frames, cell types x TFs).
#' @examples
#' \donttest{
#' if (biclum_available(initialize = FALSE)) {
#'   bc <- reticulate::import("biclum.datasets")
#'   sim <- bc$simulate(n_cells = 200L, modality = "protein", seed = 0L)
#'   rna <- anndata_to_seurat(sim[[1]])
#'   genes <- rownames(rna)
#'   net <- data.frame(source = rep(c("TF1", "TF2"), each = 20), target = genes[1:40], weight = 1)
#'   act <- TFActivity(rna, net)
#'   cmp <- CompareTFActivity(act, act, labels = rna$cell_type, other.labels = rna$cell_type)
#' }
#' }
#' @export
TFActivity <- function(object, network, assay = NULL, layer = "counts", method = c("ulm", "wmean"),
                       normalize = "auto", min_targets = 5L, n_perm = 0L, seed = 0L, new.assay.name = NULL,
                       verbose = FALSE) {
  .ds_check_seurat(object, "object")
  method <- .ds_choice(method, c("ulm", "wmean"), "method")
  assay <- .ds_assay(object, assay, "object", "assay")
  net <- .ds_table_arg(network, "network")
  spec <- .ds_adata(object, "object", assay = assay, layer = layer)
  act <- .ds_call("tf_activity", list(adata = spec, network = net, method = method, normalize = normalize,
                                      min_targets = .ds_int(min_targets, "min_targets"),
                                      n_perm = .ds_int(n_perm, "n_perm", min = 0), seed = as.integer(seed)),
                  verbose = verbose)
  if (is.null(new.assay.name)) return(act)
  if (new.assay.name %in% SeuratObject::Assays(object)) {
    stop(.input_error(paste0("object: the Seurat object already has an assay '", new.assay.name, "'; choose ",
                             "another new.assay.name."), "biclum_assay_exists"))
  }
  m <- t(as.matrix(act))
  .no_layer_warning({
    object[[new.assay.name]] <- .new_assay(NULL, object[[assay]], data = m)
    object
  })
}

# Activities (cells x TFs data.frame) and labels of one side of CompareTFActivity().
.ds_activity <- function(x, labels, assay, what) {
  if (inherits(x, "Seurat")) {
    assay <- .ds_assay(x, assay, what, if (what == "activity") "assay" else "other.assay")
    a <- x[[assay]]
    m <- if (.seurat_v5()) SeuratObject::GetAssayData(a, layer = "data") else SeuratObject::GetAssayData(a, slot = "data")
    act <- as.data.frame(t(as.matrix(m)), optional = TRUE)
    if (is.character(labels) && length(labels) == 1) {
      labels <- .ds_meta_column(x, labels, what, if (what == "activity") "labels" else "other.labels")[[1]]
    }
  } else if (is.data.frame(x) || is.matrix(x)) {
    act <- as.data.frame(x, optional = TRUE)
  } else {
    stop(.input_error(paste0(what, ": expected the output of TFActivity() (a data.frame, cells x TFs) or a Seurat ",
                             "object with a TF activity assay, got an object of class ", class(x)[1], "."),
                      "biclum_bad_argument"))
  }
  if (length(labels) != nrow(act)) {
    stop(.input_error(paste0(what, ": ", length(labels), " labels for ", nrow(act), " cells; give one label per ",
                             "cell (e.g. object$cell_type)."), "biclum_bad_argument"))
  }
  if (is.null(rownames(act))) rownames(act) <- as.character(seq_len(nrow(act)))
  list(act = .ds_frame(act), labels = .ds_strings(labels))
}

#' @rdname TFActivity
#' @param activity,other.activity The activities of the two modalities: data.frames from `TFActivity()`
#'   (cells x TFs) or Seurat objects with a TF activity assay (`assay`, `other.assay`).
#' @param labels,other.labels Cell types: one per cell (vectors), or with Seurat objects the name of a
#'   `meta.data` column.
#' @param other.assay The TF activity assay of `other.activity` (Seurat input).
#' @param names Names of the two modalities (used in the column names).
#' @export
CompareTFActivity <- function(activity, other.activity, labels, other.labels = labels, assay = NULL,
                              other.assay = assay, names = c("rna", "other")) {
  a <- .ds_activity(activity, labels, assay, "activity")
  b <- .ds_activity(other.activity, other.labels, other.assay, "other.activity")
  .ds_call("compare_tf_activity", list(activity_a = a$act, labels_a = a$labels, activity_b = b$act,
                                       labels_b = b$labels, names = as.list(as.character(names[1:2]))))
}
