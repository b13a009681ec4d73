# RunBiCLUM(rna, other, bridge = ): an RNA reference, an ATAC / ADT query and a multiome (or CITE-seq) bridge
# holding both on the same cells, integrated in one call of the Python core's integrate_mosaic (through
# bridge.entry.mosaic_from_r, R/fit.R). RunBiCLUM.Seurat() does the rest as for two objects.

# The bridge's reduction of its non-RNA assay: "biclum" -> "biclum.atac" (key BICLUMATAC_), "biclum.protein".
.bridge_reduction_name <- function(reduction.name, modality) paste0(reduction.name, ".", modality)

.bridge_error <- function(msg, class = "biclum_bad_bridge") stop(.input_error(msg, class))

# Arguments RunBiCLUM() takes for two objects that have no meaning with a bridge: refused before anything runs.
.check_bridge_call <- function(bridge, rna.batch, other.batch, split.batches, merge, dots) {
  if (!inherits(bridge, "Seurat")) {
    .bridge_error(paste0(
      "bridge: expected a Seurat object holding an RNA assay and the other modality's assay (ATAC peaks or ADT) ",
      "on the same cells (a 10x Multiome or CITE-seq object), got an object of class ", class(bridge)[1], ". ",
      "Build one with SeuratObject::CreateSeuratObject() and add the second assay, or leave bridge = NULL to ",
      "integrate rna and other alone."))
  }
  unsupported <- c(rna.batch = !is.null(rna.batch), other.batch = !is.null(other.batch),
                   split.batches = isTRUE(split.batches), merge = isTRUE(merge),
                   paired = !is.null(dots[["paired"]]), gene.symbols = !is.null(dots[["gene.symbols"]]))
  if (any(unsupported)) {
    .bridge_error(paste0(
      "bridge: ", paste(names(unsupported)[unsupported], collapse = ", "), " cannot be combined with bridge = . ",
      "With a bridge each object is one batch of its modality and the bridge's cells are the known pairs; ",
      "drop ", if (sum(unsupported) > 1) "those arguments" else "that argument",
      " (merge the returned objects with MergeBiCLUM(res$rna, res$other) if you need one object)."),
      "biclum_bad_argument")
  }
  invisible(TRUE)
}

# bridge.assays: c(rna = , other = ), each defaulting to the bridge's assay of the same name as the one used in
# `rna` / `other`, else "RNA" / "ATAC", "peaks" (ATAC) or "ADT" (protein). The two must share cells.
.bridge_assays <- function(bridge, bridge.assays, rna.assay, other.assay, modality) {
  have <- SeuratObject::Assays(bridge)
  given <- bridge.assays %||% character()
  if (!is.character(given) || (length(given) && (is.null(names(given)) || !all(names(given) %in% c("rna", "other"))))) {
    .bridge_error(paste0("bridge.assays must be a named character vector such as c(rna = \"RNA\", other = \"",
                         if (modality == "atac") "ATAC" else "ADT", "\"), not ", paste(format(bridge.assays),
                         collapse = ", "), "."), "biclum_bad_argument")
  }
  candidates <- list(rna = c(rna.assay, "RNA"),
                     other = c(other.assay, if (modality == "atac") c("ATAC", "peaks") else "ADT"))
  out <- vapply(c("rna", "other"), function(side) {
    if (!is.na(given[side])) return(unname(given[side]))
    found <- intersect(candidates[[side]], have)
    if (length(found)) found[1] else NA_character_
  }, character(1))
  missing <- names(out)[is.na(out) | !out %in% have]
  if (length(missing)) {
    what <- vapply(missing, function(side) paste0(
      "no ", if (side == "rna") "RNA" else modality, " assay ",
      if (is.na(out[[side]])) paste0("(looked for ", paste(unique(candidates[[side]]), collapse = ", "), ")")
      else paste0("'", out[[side]], "'")), character(1))
    .bridge_error(paste0(
      "bridge: ", paste(what, collapse = " and "), " among its assays (", paste(have, collapse = ", "), "). ",
      "A bridge holds RNA and ", modality, " on the same cells; name its assays as bridge.assays = c(rna = \"RNA\", ",
      "other = \"", if (modality == "atac") "ATAC" else "ADT", "\"), or add the missing assay."))
  }
  if (identical(out[["rna"]], out[["other"]])) {
    .bridge_error(paste0("bridge: the RNA and the ", modality, " assay are both '", out[["rna"]], "'; give two ",
                         "assays as bridge.assays = c(rna = , other = )."))
  }
  out
}

# The bridge's two matrices must hold the same cells (they are the known pairs).
.check_bridge_cells <- function(rna_m, other_m, assays) {
  shared <- intersect(colnames(rna_m), colnames(other_m))
  if (!length(shared)) {
    .bridge_error(paste0(
      "bridge: its assays '", assays[["rna"]], "' (", ncol(rna_m), " cells, e.g. ",
      paste(utils::head(colnames(rna_m), 2), collapse = ", "), ") and '", assays[["other"]], "' (", ncol(other_m),
      " cells, e.g. ", paste(utils::head(colnames(other_m), 2), collapse = ", "), ") share no cell, but a bridge ",
      "measures both modalities on the same cells. Give the bridge's cells one name in both assays, or pass ",
      "cells measured in one modality only as rna / other."), "biclum_bridge_no_shared_cells")
  }
  if (length(shared) < max(ncol(rna_m), ncol(other_m))) {
    .bridge_error(paste0(
      "bridge: its assays '", assays[["rna"]], "' and '", assays[["other"]], "' hold ", ncol(rna_m), " and ",
      ncol(other_m), " cells, of which ", length(shared), " in both; a bridge measures both modalities on the same ",
      "cells. Keep the shared ones first: bridge <- subset(bridge, cells = intersect(colnames(bridge[[\"",
      assays[["rna"]], "\"]]), colnames(bridge[[\"", assays[["other"]], "\"]])))."), "biclum_bridge_no_shared_cells")
  }
  invisible(shared)
}

# One side's matrix and feature metadata (ATAC: peak coordinates) for the Python core.
.bridge_side <- function(a, layer, join_layers, what, modality, gene_level) {
  m <- .assay_matrix(a, layer = layer, join_layers = join_layers, what = what)
  if (modality == "protein") .check_not_peaks(rownames(m), what)
  var <- if (modality == "atac") .atac_var(rownames(m), .assay_coords(a, rownames(m)), gene_level, what) else NULL
  list(m = m, var = var)
}

# modality = "protein" given an assay of peaks (e.g. the bridge's ATAC): one error naming the fix, before Python.
.check_not_peaks <- function(features, what) {
  parsed <- .parse_peaks(features)
  if (is.null(parsed) || !all(attr(parsed, "ok"))) return(invisible(TRUE))
  .bridge_error(paste0(
    what, ": modality = \"protein\", but its ", length(features), " features are named like peaks (e.g. ",
    paste(utils::head(features, 2), collapse = ", "), "). For ATAC give modality = \"atac\"; for ADT name the ",
    "antibody assays as other.assay = and bridge.assays = c(other = \"ADT\")."), "biclum_bad_modality")
}

# The fit: reference (rna's RNA), query (other's ATAC / ADT) and bridge (both) -> the DimReducs RunBiCLUM.Seurat()
# stores: list(rna, other, bridge = list(rna, other), params, biclum_version).
.bridge_reductions <- function(rna_a, other_a, bridge, bridge.assays, modality, annotation, seed, max_epochs, preset,
                               gene_level, layer, join_layers, rna.assay, other.assay, reduction.name, reduction.key,
                               verbose, model_dir, ...) {
  sides <- list(
    reference = list(rna = .bridge_side(rna_a, layer, join_layers, "rna assay", "rna", gene_level)),
    query = stats::setNames(list(.bridge_side(other_a, layer, join_layers, "other assay", modality, gene_level)),
                            modality),
    bridge = stats::setNames(list(
      .bridge_side(bridge[[bridge.assays[["rna"]]]], layer, join_layers, "bridge RNA assay", "rna", gene_level),
      .bridge_side(bridge[[bridge.assays[["other"]]]], layer, join_layers, paste("bridge", modality, "assay"),
                   modality, gene_level)), c("rna", modality)))
  .check_bridge_cells(sides$bridge$rna$m, sides$bridge[[modality]]$m, bridge.assays)
  fit <- .biclum_mosaic_fit(sides, annotation = annotation, seed = seed, max_epochs = max_epochs, preset = preset,
                            verbose = verbose, model_dir = model_dir, overrides = list(...))
  misc <- list(modality = modality, params = fit$params, biclum_version = fit$biclum_version,
               loadings_space = "gene", mosaic = TRUE)
  dr <- function(dataset, mod, assay, key, side) {
    .dimreduc(fit$datasets[[dataset]][[mod]], colnames(sides[[dataset]][[mod]]$m), assay, key,
              c(misc, side = side, dataset = dataset))
  }
  other_key <- .key_from_name(.bridge_reduction_name(reduction.name, modality))
  list(rna = dr("reference", "rna", rna.assay, reduction.key, "rna"),
       other = dr("query", modality, other.assay, reduction.key, modality),
       bridge = list(rna = dr("bridge", "rna", bridge.assays[["rna"]], reduction.key, "rna"),
                     other = dr("bridge", modality, bridge.assays[["other"]], other_key, modality)),
       params = fit$params, biclum_version = fit$biclum_version)
}

# The bridge's two reductions: `reduction.name` on its RNA assay and "<reduction.name>.<modality>" on the other
# (its loadings are the gene-space feature embeddings, as for ADT). The bridge keeps the cells both embed (a
# warning said how many were dropped) and its default assay.
.store_bridge <- function(bridge, drs, reduction.name, modality) {
  cells <- intersect(SeuratObject::Cells(drs$rna), SeuratObject::Cells(drs$other))
  if (length(cells) < ncol(bridge)) bridge <- subset(bridge, cells = cells)
  reds <- c(rna = reduction.name, other = .bridge_reduction_name(reduction.name, modality))
  for (side in c("rna", "other")) {
    dr <- drs[[side]]
    if (length(SeuratObject::Cells(dr)) > length(cells)) dr <- subset(dr, cells = cells)
    bridge <- .store_reduction(bridge, dr, reds[[side]])
  }
  bridge
}
