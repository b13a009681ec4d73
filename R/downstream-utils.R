# Downstream analyses of a BiCLUM integration on Seurat objects: R wrappers of biclum.downstream (Python).
# Every wrapper validates its arguments in R, sends what the Python function needs through the bridge
# (counts as x/i/p vectors, metadata as columns, embeddings as matrices: biclum.bridge.downstream_from_r)
# and returns R objects (data.frames, named lists, dgCMatrix, or a new Seurat object).
#
# This file: argument checks, R -> Python arguments and the bridge call shared by the downstream wrappers.

# ---------------------------------------------------------------------------------------------------
# argument checks (errors name the object, the problem and the fix)
# ---------------------------------------------------------------------------------------------------

.ds_check_seurat <- function(x, what) {
  if (!inherits(x, "Seurat")) {
    stop(.input_error(paste0(what, ": expected a Seurat object (e.g. one returned by RunBiCLUM()), got an object ",
                             "of class ", class(x)[1], "."), "biclum_not_seurat"))
  }
}

# The assay named, or by default the default assay; for functions that read peaks (peaks = TRUE), the peak assay
# when the default is the gene-activity assay RunBiCLUM() made the default.
.ds_assay <- function(object, assay, what, arg, peaks = FALSE) {
  assay <- assay %||% if (peaks) .peak_or_default_assay(object) else SeuratObject::DefaultAssay(object)
  assays <- SeuratObject::Assays(object)
  if (!is.character(assay) || length(assay) != 1 || !assay %in% assays) {
    stop(.input_error(paste0(what, ": the Seurat object has no assay '", paste(assay, collapse = ","),
                             "' (its assays: ", paste(assays, collapse = ", "), "); give one of those as ", arg,
                             "=."), "biclum_no_assay"))
  }
  assay
}

.ds_reduction <- function(object, reduction, what, arg) {
  reds <- SeuratObject::Reductions(object)
  if (!is.character(reduction) || length(reduction) != 1 || !reduction %in% reds) {
    stop(.input_error(paste0(what, ": the Seurat object has no reduction '", paste(reduction, collapse = ","),
                             "' (its reductions: ", if (length(reds)) paste(reds, collapse = ", ") else "none",
                             "); run RunBiCLUM() on it first, or give the name of its joint embedding as ", arg,
                             "=."), "biclum_no_reduction"))
  }
  emb <- SeuratObject::Embeddings(object, reduction = reduction)
  out <- matrix(NA_real_, ncol(object), ncol(emb), dimnames = list(colnames(object), colnames(emb)))
  hit <- intersect(rownames(emb), colnames(object)) # v5 reductions may hold a subset of the cells
  out[hit, ] <- emb[hit, , drop = FALSE]
  out
}

.ds_meta_column <- function(object, column, what, arg) {
  md <- object[[]]
  if (!is.character(column) || length(column) != 1 || !column %in% colnames(md)) {
    stop(.input_error(paste0(what, ": the Seurat object's meta.data has no column '", paste(column, collapse = ","),
                             "' (its columns: ", paste(colnames(md), collapse = ", "), "); give one of those as ",
                             arg, "=, or add the labels first (e.g. with TransferLabels())."), "biclum_no_metadata"))
  }
  md[colnames(object), column, drop = FALSE]
}

.ds_int <- function(x, arg, min = 1, null_ok = FALSE) {
  if (is.null(x) && null_ok) return(NULL)
  if (!is.numeric(x) || length(x) != 1 || is.na(x) || x < min || x != round(x)) {
    stop(.input_error(paste0(arg, " must be a whole number >= ", min, ", not ",
                             paste(format(x), collapse = ", "), "."), "biclum_bad_argument"))
  }
  as.integer(x)
}

.ds_choice <- function(x, choices, arg) {
  x <- x[1]
  if (!is.character(x) || is.na(x) || !x %in% choices) {
    stop(.input_error(paste0(arg, " must be one of ", paste0("\"", choices, "\"", collapse = ", "), ", not ",
                             paste(format(x), collapse = ", "), "."), "biclum_bad_argument"))
  }
  x
}

.ds_file <- function(path, what) {
  if (!is.character(path) || length(path) != 1 || is.na(path) || !file.exists(path) || dir.exists(path)) {
    stop(.input_error(paste0(what, ": the file '", paste(path, collapse = ", "), "' does not exist; check the path ",
                             "(or give the table itself, see the help page)."), "biclum_bad_file"))
  }
  normalizePath(path)
}

# Cells whose embedding is NA (cells RunBiCLUM could not use) are left out, with a warning.
.ds_keep_cells <- function(emb, what) {
  ok <- stats::complete.cases(emb)
  if (!any(ok)) {
    stop(.input_error(paste0(what, ": every cell has an NA embedding; run RunBiCLUM() on it again."),
                      "biclum_na_embeddings"))
  }
  if (!all(ok)) {
    warning(structure(class = c("biclum_na_embeddings", "warning", "condition"), list(message = paste0(
      what, ": ", sum(!ok), " cells without an embedding (not used by RunBiCLUM) are left out."), call = NULL)))
  }
  ok
}

# ---------------------------------------------------------------------------------------------------
# R -> Python arguments
# ---------------------------------------------------------------------------------------------------

# A Python AnnData spec (a dict, built lazily in Python) of a Seurat object: counts of `layer` of `assay`
# (NULL: no X), metadata columns `obs`, the embedding of `reduction` as obsm["X_biclum"], optionally the
# feature loadings as varm["biclum_loadings"] (then the var are the loadings' features).
.ds_adata <- function(object, what, assay = NULL, layer = NULL, emb = NULL, obs = NULL, cells = NULL,
                      var = NULL, loadings = NULL) {
  cells <- cells %||% colnames(object)
  if (!is.null(obs)) obs <- obs[cells, , drop = FALSE]
  if (!is.null(layer)) {
    m <- .assay_matrix(object[[assay]], layer = layer, what = paste0(what, "[[\"", assay, "\"]]"))
    m <- m[, cells, drop = FALSE]
    spec <- .dgc_to_py(m, obs = obs, var = var)
  } else {
    features <- if (is.null(loadings)) character() else rownames(loadings)
    spec <- reticulate::dict(kind = "adata", obs_names = reticulate::r_to_py(array(cells)),
                             var_names = reticulate::r_to_py(array(features)), convert = FALSE)
    if (!is.null(obs) && ncol(obs) > 0) reticulate::py_set_item(spec, "obs", .df_to_py(obs))
  }
  if (!is.null(emb)) {
    reticulate::py_set_item(spec, "obsm", reticulate::dict(X_biclum = unname(emb[cells, , drop = FALSE])))
  }
  if (!is.null(loadings)) {
    reticulate::py_set_item(spec, "varm", reticulate::dict(biclum_loadings = unname(loadings)))
  }
  spec
}

.ds_frame <- function(df) {
  df <- as.data.frame(df, stringsAsFactors = FALSE, optional = TRUE)
  .df_to_py(df, index = rownames(df))
}

.ds_strings <- function(x) {
  x <- as.character(x)
  na <- is.na(x)
  x[na] <- ""
  list(kind = "strings", values = array(x), na = array(na))
}

.ds_sets <- function(x, what) {
  if (is.null(names(x)) || any(!nzchar(names(x)))) {
    stop(.input_error(paste0(what, ": a list of gene sets must be named (list(name = c(\"gene1\", ...)))."),
                      "biclum_bad_argument"))
  }
  list(kind = "sets", names = as.list(names(x)),
       values = unname(lapply(x, function(g) array(as.character(g)))))
}

# Gene sets / networks / marker lists: a file path, a data.frame or a named list.
.ds_table_arg <- function(x, what, list_ok = TRUE) {
  if (is.character(x) && length(x) == 1) return(.ds_file(x, what))
  if (is.data.frame(x) || methods::is(x, "DataFrame")) return(.ds_frame(as.data.frame(x)))
  if (list_ok && is.list(x)) return(.ds_sets(x, what))
  stop(.input_error(paste0(what, ": expected a file path, a data.frame", if (list_ok) " or a named list", ", got ",
                           "an object of class ", class(x)[1], "."), "biclum_bad_argument"))
}

# ---------------------------------------------------------------------------------------------------
# the call and Python -> R values
# ---------------------------------------------------------------------------------------------------

.ds_call <- function(fun, args, verbose = FALSE) {
  bridge <- .biclum_bridge()
  res <- bridge$downstream_from_r(fun, reticulate::r_to_py(args), verbose = isTRUE(verbose),
                                  log_fn = if (isTRUE(verbose)) .log_fn() else NULL)
  .from_py(.py_result(res)$value)
}

# 0-based positions from Python -> 1-based R positions
.ds_one_based <- function(df, cols) {
  for (c in intersect(cols, names(df))) df[[c]] <- as.integer(df[[c]] + 1L)
  df
}
