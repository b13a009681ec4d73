# The one place R calls biclum.integrate and biclum.integrate_mosaic (through biclum.bridge.integrate_from_r and
# mosaic_from_r).

.emit <- function(text, class) {
  message(structure(class = c(class, "message", "condition"),
                    list(message = paste0(text, "\n"), call = NULL)))
}

.r <- function(x) if (inherits(x, "python.builtin.object")) reticulate::py_to_r(x) else x

.progress_fn <- function() {
  function(stage, step, total, message) {
    stage <- .r(stage)
    step <- .r(step)
    total <- .r(total)
    message <- .r(message)
    txt <- if (isTRUE(total > 0)) sprintf("biclum: %s %d/%d", stage, as.integer(step), as.integer(total))
           else sprintf("biclum: %s", stage)
    if (length(message) && nzchar(message)) txt <- paste0(txt, " (", message, ")")
    .emit(txt, "biclum_progress")
    invisible(NULL)
  }
}

.log_fn <- function() {
  function(level, message) {
    message <- .r(message)
    .emit(paste0("biclum: ", message), "biclum_log")
    invisible(NULL)
  }
}

.python_warning <- function(msg) {
  warning(structure(class = c("biclum_python_warning", "warning", "condition"),
                    list(message = msg, call = NULL)))
}

# A bridge result in R: its Python warnings raised as R warnings, its Python error as an R error.
.py_result <- function(res) {
  res <- .py_deep(res)
  for (w in unlist(res$warnings)) .python_warning(w)
  if (!isTRUE(res$ok)) stop(.python_condition(res))
  res
}

.snake <- function(x) tolower(gsub("([a-z0-9])([A-Z])", "\\1_\\2", x))

.python_condition <- function(res) {
  classes <- unlist(res$error_classes) %||% res$error_class
  cls <- c(paste0("biclum_py_", .snake(classes[1])),
           if ("BiclumInputError" %in% classes) "biclum_input_error",
           "biclum_python_error", "biclum_error", "error", "condition")
  structure(class = unique(cls),
            list(message = paste0(res$message, " [Python ", res$error_class, "]"), call = NULL,
                 python_class = res$error_class, traceback = res$traceback))
}

.check_modality <- function(modality) {
  modality <- tolower(modality)
  if (length(modality) != 1 || !modality %in% c("atac", "protein")) {
    stop(.input_error(paste0("modality must be \"atac\" or \"protein\", not \"",
                             paste(modality, collapse = ", "), "\"."), "biclum_bad_modality"))
  }
  modality
}

#' @noRd
#' @param rna,other dgCMatrix features x cells.
#' @param other_var data.frame chrom/start/end for peaks (or NULL).
#' @param annotation NULL, a path, a data.frame or a GRanges (.annotation_arg()).
#' @return list(rna = <reduction>, other = <reduction>, params, biclum_version); a reduction is list(embeddings,
#'   loadings (the features used only), has_mnn_partner) (.reduction_from_py()).
.biclum_fit <- function(rna, other, modality, annotation = NULL, other_var = NULL, seed = 0L,
                        max_epochs = NULL, preset = "default", verbose = TRUE, model_dir = NULL,
                        overrides = list(), rna_obs = NULL, other_obs = NULL) {
  verbose <- isTRUE(verbose)
  .check_unique_cells(rna, "rna")
  .check_unique_cells(other, "other")
  bridge <- .biclum_bridge()
  .check_named(overrides)
  rna_var <- .gene_symbols_var(overrides[["gene.symbols"]], rna)
  overrides[["gene.symbols"]] <- NULL
  paired <- .paired_arg(overrides[["paired"]])
  overrides[["paired"]] <- NULL
  if (!is.null(rna_var)) overrides$gene_symbols <- "gene_symbols"
  t0 <- Sys.time()
  if (verbose) .emit(sprintf("biclum: integrating %d RNA cells x %d genes with %d %s cells x %d features",
                             ncol(rna), nrow(rna), ncol(other), modality, nrow(other)),
                     "biclum_log")
  res <- bridge$integrate_from_r(
    .dgc_to_py(rna, obs = rna_obs, var = rna_var), .dgc_to_py(other, obs = other_obs, var = other_var),
    modality = modality, annotation = .annotation_arg(annotation), seed = as.integer(seed),
    max_epochs = if (is.null(max_epochs)) NULL else as.integer(max_epochs),
    preset = preset, verbose = verbose,
    progress_fn = if (verbose) .progress_fn() else NULL,
    log_fn = if (verbose) .log_fn() else NULL,
    progress_interval = as.numeric(getOption("biclum.progress_interval", 1)),
    model_dir = if (is.null(model_dir)) NULL else path.expand(model_dir),
    overrides = reticulate::dict(overrides), paired = paired)
  res <- .from_py(.py_result(res)$value)
  if (verbose) {
    .emit(sprintf("biclum: done in %.1f s", as.numeric(difftime(Sys.time(), t0, units = "secs"))),
          "biclum_log")
  }
  res
}

.check_named <- function(overrides) {
  if (length(overrides) && (is.null(names(overrides)) || any(!nzchar(names(overrides))))) {
    stop("additional arguments (...) must be named", call. = FALSE)
  }
}

#' @noRd
#' @param datasets list(name = list(modality = list(m = dgCMatrix features x cells, var = data.frame or NULL)));
#'   e.g. reference (rna), query (atac), bridge (rna + atac).
#' @return list(datasets = list(name = list(modality = <reduction>)), params, biclum_version) (.from_py()).
.biclum_mosaic_fit <- function(datasets, annotation = NULL, seed = 0L, max_epochs = NULL, preset = "default",
                               verbose = TRUE, model_dir = NULL, overrides = list()) {
  verbose <- isTRUE(verbose)
  bridge <- .biclum_bridge()
  .check_named(overrides)
  specs <- lapply(names(datasets), function(name) {
    mods <- datasets[[name]]
    for (mod in names(mods)) .check_unique_cells(mods[[mod]]$m, paste(name, mod))
    # py_dict: reticulate::dict() would read a key naming a variable (e.g. "bridge") as that variable
    reticulate::py_dict(names(mods), unname(lapply(mods, function(s) .dgc_to_py(s$m, var = s$var))), convert = FALSE)
  })
  t0 <- Sys.time()
  if (verbose) {
    .emit(paste0("biclum: integrating ", paste(vapply(names(datasets), function(name) paste0(
      name, " (", paste(vapply(names(datasets[[name]]), function(mod) sprintf("%d %s cells", ncol(
        datasets[[name]][[mod]]$m), mod), character(1)), collapse = " + "), ")"), character(1)), collapse = ", ")),
      "biclum_log")
  }
  res <- bridge$mosaic_from_r(
    reticulate::py_dict(names(datasets), specs, convert = FALSE),
    annotation = .annotation_arg(annotation), seed = as.integer(seed),
    max_epochs = if (is.null(max_epochs)) NULL else as.integer(max_epochs), preset = preset, verbose = verbose,
    log_fn = if (verbose) .log_fn() else NULL, model_dir = if (is.null(model_dir)) NULL else path.expand(model_dir),
    overrides = reticulate::dict(overrides))
  res <- .from_py(.py_result(res)$value)
  if (verbose) {
    .emit(sprintf("biclum: done in %.1f s", as.numeric(difftime(Sys.time(), t0, units = "secs"))), "biclum_log")
  }
  res
}

# gene.symbols (one symbol per RNA row) -> the var column the Python core names the genes by (gene_symbols).
.gene_symbols_var <- function(symbols, rna) {
  if (is.null(symbols)) return(NULL)
  if (!is.atomic(symbols) || length(symbols) != nrow(rna)) {
    stop(.input_error(paste0("gene.symbols must hold one gene symbol per RNA feature (", nrow(rna),
                             "), e.g. rowData(sce)$Symbol; got ", length(symbols), " values."),
                      "biclum_bad_gene_symbols"))
  }
  data.frame(gene_symbols = as.character(symbols), stringsAsFactors = FALSE)
}

# Known pairs (paired = ) as the Python core takes them: NULL (none), TRUE / "shared" (cells with the same name
# in both), the path of a two-column CSV/TSV, or a data.frame of (RNA cell name, other cell name) sent as a frame
# spec. The names are checked on the Python side (one error naming the fix).
.paired_arg <- function(paired) {
  if (is.null(paired) || isFALSE(paired)) return(NULL)
  if (isTRUE(paired)) return(TRUE)
  if (is.character(paired) && length(paired) == 1 && !is.na(paired)) return(path.expand(paired))
  if (is.data.frame(paired) || is.matrix(paired)) return(.df_to_py(as.data.frame(paired, stringsAsFactors = FALSE)))
  stop(.input_error(paste0(
    "paired must be TRUE (a cell has the same name in both objects), the path of a two-column CSV, or a data.frame ",
    "of known pairs (RNA cell name, other cell name), not a ", class(paired)[1], "."), "biclum_bad_paired"))
}

# Cell names must be unique (results are matched back to cells by name).
.check_unique_cells <- function(m, what) {
  dup <- unique(colnames(m)[duplicated(colnames(m))])
  if (length(dup)) {
    stop(.input_error(paste0(
      what, ": ", length(dup), " duplicated cell names (e.g. ", paste(utils::head(dup, 3), collapse = ", "),
      "); make them unique first, e.g. colnames(x) <- make.unique(colnames(x))."), "biclum_duplicated_cells"))
  }
}

# Embeddings of the embedded cells, in the order of `cells` (the Python side leaves out cells it dropped), columns
# key_1..key_k.
.embedded <- function(emb, cells, key) {
  idx <- match(rownames(emb), cells)
  if (anyNA(idx)) stop("internal error: the Python side returned unknown cell names", call. = FALSE)
  emb <- emb[order(idx), , drop = FALSE]
  colnames(emb) <- paste0(key, seq_len(ncol(emb)))
  emb
}

# One warning when cells have no embedding: how many, and where the embedded ones are.
.warn_dropped <- function(what, n_kept, n_total) {
  if (n_kept == n_total) return(invisible(NULL))
  warning(structure(class = c("biclum_dropped_cells", "warning", "condition"), list(message = paste0(
    what, ": ", n_total - n_kept, " of ", n_total, " cells were dropped by biclum (see its warning) and have no ",
    "embedding; the result holds the ", n_kept, " embedded cells."), call = NULL)))
}

# Loadings of a reduction (the features used), columns key_1..key_k.
.keyed_loadings <- function(side, key) {
  load <- side$loadings
  colnames(load) <- paste0(key, seq_len(ncol(load)))
  load
}
