# Downstream analyses on Seurat objects: biclum_example: example tables shipped with the Python package.
# R wrappers of biclum.downstream (Python), built on the helpers of downstream-utils.R.

#' Example tables shipped with the biclum Python package
#'
#' Paths of small illustrative tables for tests and documentation (not curated databases):
#' `"tf_network_mouse.tsv"`, `"tf_network_human.tsv"` (TF -> target, for [TFActivity()]),
#' `"gene_sets_mouse.gmt"`, `"gene_sets_human.gmt"` (for [Enrichment()]), `"lr_pairs_mouse.tsv"`,
#' `"lr_pairs_human.tsv"` (for [LigandReceptor()]).
#'
#' @param name File name.
#' @return The path of the file.
#' @examples
#' if (biclum_available(initialize = FALSE)) biclum_example("gene_sets_human.gmt")
#' @export
biclum_example <- function(name) {
  if (!is.character(name) || length(name) != 1) {
    stop(.input_error("name must be one file name, e.g. \"gene_sets_human.gmt\".", "biclum_bad_argument"))
  }
  .ds_call("example_path", list(name = name))
}
