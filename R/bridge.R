# Matrices and objects across the R <-> Python boundary, as (x, i, p, dim) vectors.

# A features x cells matrix as a dgCMatrix (no densifying of sparse input).
.as_dgc <- function(m, what = "matrix") {
  if (inherits(m, "dgCMatrix")) return(m)
  if (inherits(m, "sparseMatrix") || inherits(m, "Matrix")) {
    return(methods::as(methods::as(methods::as(m, "CsparseMatrix"), "generalMatrix"), "dMatrix"))
  }
  if (is.matrix(m) || is.data.frame(m)) {
    m <- as.matrix(m)
    if (!is.numeric(m) && !is.logical(m)) stop(what, ": expected a numeric matrix", call. = FALSE)
    storage.mode(m) <- "double"
    return(methods::as(methods::as(Matrix::Matrix(m, sparse = TRUE), "CsparseMatrix"), "generalMatrix"))
  }
  # DelayedArray and friends
  tryCatch(methods::as(m, "dgCMatrix"), error = function(e) {
    stop(what, ": cannot use an object of class ", class(m)[1],
         " as a matrix (give a dgCMatrix or a numeric matrix)", call. = FALSE)
  })
}

# The one format of values crossing R <-> Python (python/biclum/bridge/codec.py): tagged lists, `kind` =
# "adata" (counts as dgCMatrix vectors, obs/var frames), "frame", "strings", "sets" from R; "adata", "frame",
# "dict", "list", "strings", "reduction" from Python (read by .from_py()).

# dgCMatrix (features x cells) -> "adata" spec (a Python dict of NumPy arrays: cells x features CSR vectors).
.dgc_to_py <- function(m, obs = NULL, var = NULL) {
  m <- .as_dgc(m)
  spec <- reticulate::dict(
    kind = "adata",
    x = reticulate::r_to_py(array(m@x)),
    i = reticulate::r_to_py(array(m@i)),
    p = reticulate::r_to_py(array(m@p)),
    dim = reticulate::r_to_py(list(ncol(m), nrow(m))),
    obs_names = reticulate::r_to_py(array(colnames(m) %||% as.character(seq_len(ncol(m))))),
    var_names = reticulate::r_to_py(array(rownames(m) %||% as.character(seq_len(nrow(m))))),
    convert = FALSE)
  if (!is.null(obs) && ncol(obs) > 0) reticulate::py_set_item(spec, "obs", .df_to_py(obs))
  if (!is.null(var) && ncol(var) > 0) reticulate::py_set_item(spec, "var", .df_to_py(var))
  spec
}

.df_column <- function(x) {
  if (is.factor(x)) {
    codes <- as.integer(x)
    codes[is.na(codes)] <- 0L
    return(list(kind = "factor", values = array(codes), levels = as.list(levels(x))))
  }
  if (is.logical(x) && !anyNA(x)) return(list(kind = "logical", values = array(x)))
  if (is.integer(x) && !anyNA(x)) return(list(kind = "integer", values = array(x)))
  if (is.numeric(x) || is.logical(x)) return(list(kind = "double", values = array(as.double(x))))
  x <- as.character(x)
  na <- is.na(x)
  x[na] <- ""
  list(kind = "character", values = array(x), na = array(na)) # array: one NumPy conversion, not one per string
}

# data.frame (or anything as.data.frame() takes: a GRanges, a DataFrame) -> "frame" spec, its atomic columns as
# they are (no pandas conversion by reticulate, which fails in reticulate 1.28 with pandas 2); `index`: row names.
.df_to_py <- function(df, index = NULL) {
  df <- as.data.frame(df, stringsAsFactors = FALSE, optional = TRUE)
  keep <- vapply(df, function(x) is.atomic(x) && is.null(dim(x)), logical(1))
  spec <- list(kind = "frame", names = as.list(names(df)[keep]), columns = unname(lapply(df[keep], .df_column)))
  if (!is.null(index)) spec$index <- array(as.character(index))
  reticulate::r_to_py(spec)
}

# The columns of a "frame" from Python -> data.frame with row names `rn`.
.columns_df <- function(x, rn) {
  nms <- as.character(unlist(x$names))
  out <- data.frame(row.names = rn)
  cols <- x$columns
  for (k in seq_along(nms)) {
    e <- cols[[k]]
    v <- e$values
    if (is.list(v)) v <- unlist(v)
    if (is.null(v)) v <- vector(switch(e$kind, character = "character", "numeric"), 0)
    dim(v) <- NULL
    v <- switch(e$kind,
      factor = {
        codes <- as.integer(v)
        codes[codes == 0L] <- NA_integer_
        lev <- as.character(unlist(e$levels))
        factor(lev[codes], levels = unique(lev))
      },
      logical = as.logical(v),
      integer = as.integer(v),
      double = as.double(v),
      character = {
        v <- as.character(v)
        na <- as.logical(e$na)
        if (length(na) == length(v)) v[na] <- NA_character_
        v
      },
      v)
    if (length(v) != length(rn)) next
    out[[nms[k]]] <- v
  }
  out
}

`%||%` <- function(a, b) if (is.null(a)) b else a

# py_to_r() all the way down (reticulate leaves NumPy arrays inside converted dicts/lists as Python objects).
.py_deep <- function(x) {
  if (inherits(x, "python.builtin.object")) x <- reticulate::py_to_r(x)
  if (is.list(x) && !is.data.frame(x)) {
    nm <- names(x)
    x <- lapply(x, .py_deep)
    names(x) <- nm
  } else if (inherits(x, "python.builtin.object")) {
    stop("cannot convert a Python object of class ", class(x)[1], " to R", call. = FALSE)
  }
  x
}

# Vectors list from Python (as converted by reticulate) -> dgCMatrix features x cells.
.vectors_to_dgc <- function(v) {
  x <- v$x
  i <- v$i
  p <- v$p
  dim(x) <- NULL
  dim(i) <- NULL
  dim(p) <- NULL
  d <- as.integer(unlist(v$dim))
  methods::new("dgCMatrix", x = as.double(x), i = as.integer(i), p = as.integer(p),
               Dim = c(d[2], d[1]),
               Dimnames = list(as.character(unlist(v$var_names)), as.character(unlist(v$obs_names))))
}

# A matrix from Python with `n` rows (reticulate gives a vector for one column, a list for none).
.py_matrix <- function(x, n, rn) {
  x <- if (is.list(x)) as.numeric(unlist(x)) else x
  if (!is.matrix(x)) x <- matrix(as.numeric(x), nrow = n)
  rownames(x) <- rn
  x
}

# "reduction" from Python -> list(embeddings = cells x k, loadings = features used x k (row names: the
# features), has_mnn_partner = a logical named by cell or NULL).
.reduction_from_py <- function(v) {
  cells <- as.character(unlist(v$cells))
  feats <- as.character(unlist(v$features))
  partner <- as.logical(unlist(v$has_mnn_partner))
  list(embeddings = .py_matrix(v$embedding, length(cells), cells),
       loadings = .py_matrix(v$loadings, length(feats), feats),
       has_mnn_partner = if (length(partner) == length(cells)) stats::setNames(partner, cells))
}

# A value from Python (converted by .py_deep) -> R: data.frames, list(counts, obs, var), named lists, reductions.
.from_py <- function(v) {
  kind <- if (is.list(v)) v[["kind"]] else NULL
  if (is.null(kind)) return(v)
  switch(kind,
    frame = {
      index <- as.character(unlist(v$index))
      df <- .columns_df(v, make.unique(index))
      if (identical(index, as.character(seq_along(index) - 1L))) rownames(df) <- NULL
      attrs <- v$attrs
      for (nm in names(attrs)) attr(df, nm) <- .from_py(attrs[[nm]])
      df
    },
    adata = list(counts = .vectors_to_dgc(v), obs = .columns_df(v$obs, as.character(unlist(v$obs_names))),
                 var = .columns_df(v$var, as.character(unlist(v$var_names)))),
    dict = stats::setNames(lapply(v$values, .from_py), as.character(unlist(v$names))),
    list = lapply(v$values, .from_py),
    strings = as.character(unlist(v$values)),
    reduction = .reduction_from_py(v),
    v)
}

# Python AnnData -> list(counts = dgCMatrix features x cells, obs = data.frame, var = data.frame).
.anndata_to_r <- function(adata, layer = NULL) {
  .from_py(.py_deep(.biclum_bridge()$anndata_to_vectors(adata, layer = layer)))
}

#' Move single-cell data between R and the biclum Python package
#'
#' Conversion helpers for mixed R/Python workflows. The counts cross as the `x`, `i`, `p` vectors of the
#' sparse matrix (an R `dgCMatrix` of features x cells is a SciPy CSR matrix of cells x features), so
#' nothing is densified and reticulate's automatic SciPy conversion (which fails with reticulate < 1.29
#' and current SciPy) is not used. Cell and feature metadata travel as data frames.
#'
#' * `seurat_to_anndata()`: an assay of a Seurat object (v4 `Assay`, v5 `Assay5`, Signac
#'   `ChromatinAssay`) -> Python `AnnData` (`X` = the counts, `obs` = meta.data, `var` = peak
#'   coordinates `chrom`/`start`/`end` when known).
#' * `anndata_to_seurat()`: Python `AnnData` -> Seurat object (counts in the given assay).
#' * `sce_to_anndata()`: a `SingleCellExperiment` (or `SummarizedExperiment`) -> Python `AnnData`
#'   (`obs` = colData, `var` = rowData plus coordinates from rowRanges when present).
#' * `anndata_to_sce()`: Python `AnnData` -> `SingleCellExperiment` (rowRanges from `var`
#'   `chrom`/`start`/`end` when present).
#'
#' @param object A Seurat object.
#' @param assay Seurat: the assay (default: the default assay, or the peak assay when that is the
#'   gene-activity assay [RunBiCLUM()] made the default). SCE: the name of the assay holding the
#'   counts (default `"counts"`).
#' @param layer Seurat: the layer (v5) or slot (v4) to export (default `"counts"`); with v5 assays whose
#'   layer is split (e.g. `counts.1`, `counts.2`) the split layers are joined on a copy (with a message)
#'   when `join_layers = TRUE` (default) and refused with an error otherwise.
#' @param join_layers Join split v5 layers (`TRUE`, default) or refuse them (`FALSE`).
#' @param adata A Python `AnnData` object (from reticulate).
#' @param x_layer For AnnData input: the layer holding the counts (`NULL`: `X`).
#' @param sce A `SingleCellExperiment`/`SummarizedExperiment`.
#' @param project Seurat project name.
#' @return A Python `AnnData` (reticulate object, not converted), a Seurat object, or a
#'   `SingleCellExperiment`.
#' @examples
#' if (biclum_available(initialize = FALSE) &&
#'     requireNamespace("SingleCellExperiment", quietly = TRUE)) {
#'   m <- Matrix::rsparsematrix(50, 20, 0.1, rand.x = function(n) rpois(n, 3) + 1)
#'   dimnames(m) <- list(paste0("g", 1:50), paste0("c", 1:20))
#'   sce <- SingleCellExperiment::SingleCellExperiment(list(counts = m))
#'   ad <- sce_to_anndata(sce)
#'   back <- anndata_to_sce(ad)
#' }
#' @name anndata-conversion
NULL

#' @rdname anndata-conversion
#' @export
seurat_to_anndata <- function(object, assay = NULL, layer = "counts", join_layers = TRUE) {
  .check_seurat(object, "object")
  assay <- assay %||% .peak_or_default_assay(object)
  a <- .get_assay(object, assay, "object")
  m <- .assay_matrix(a, layer = layer, join_layers = join_layers, what = paste0("object[[\"", assay, "\"]]"))
  var <- .assay_coords(a, rownames(m))
  if (is.null(var)) {
    parsed <- .parse_peaks(rownames(m))
    if (!is.null(parsed) && all(attr(parsed, "ok"))) {
      var <- parsed
      attr(var, "ok") <- NULL
    }
  }
  meta <- object[[]]
  meta <- meta[colnames(m), , drop = FALSE]
  bridge <- .biclum_bridge()
  spec <- .dgc_to_py(m, obs = meta, var = var)
  bridge$as_anndata(spec, "object")
}

#' @rdname anndata-conversion
#' @export
anndata_to_seurat <- function(adata, assay = "RNA", x_layer = NULL, project = "biclum") {
  r <- .anndata_to_r(adata, layer = x_layer)
  meta <- r$obs
  obj <- SeuratObject::CreateSeuratObject(counts = r$counts, project = project, assay = assay,
                                          meta.data = if (ncol(meta)) meta else NULL,
                                          min.cells = 0, min.features = 0)
  obj
}

#' @rdname anndata-conversion
#' @export
sce_to_anndata <- function(sce, assay = "counts") {
  .need_pkg("SummarizedExperiment", "sce_to_anndata()")
  m <- .sce_matrix(sce, assay, "sce")
  var <- .sce_coords(sce)
  rd <- as.data.frame(SummarizedExperiment::rowData(sce), optional = TRUE)
  if (ncol(rd)) var <- if (is.null(var)) rd else cbind(rd[, setdiff(names(rd), names(var)), drop = FALSE], var)
  cd <- as.data.frame(SummarizedExperiment::colData(sce), optional = TRUE)
  bridge <- .biclum_bridge()
  bridge$as_anndata(.dgc_to_py(m, obs = cd, var = var), "sce")
}

#' @rdname anndata-conversion
#' @export
anndata_to_sce <- function(adata, assay = "counts", x_layer = NULL) {
  .need_pkg("SingleCellExperiment", "anndata_to_sce()")
  r <- .anndata_to_r(adata, layer = x_layer)
  assays <- stats::setNames(list(r$counts), assay)
  sce <- SingleCellExperiment::SingleCellExperiment(
    assays = assays, colData = S4Vectors::DataFrame(r$obs, check.names = FALSE))
  var <- r$var
  gr <- .coords_to_granges(var, rownames(r$counts))
  if (!is.null(gr)) {
    SummarizedExperiment::rowRanges(sce) <- gr
  }
  if (ncol(var)) {
    SummarizedExperiment::rowData(sce) <- cbind(SummarizedExperiment::rowData(sce),
                                                S4Vectors::DataFrame(var, check.names = FALSE))
  }
  sce
}

.need_pkg <- function(pkg, what) {
  if (!requireNamespace(pkg, quietly = TRUE)) {
    stop(what, " needs the R package ", pkg, " (install it, e.g. from Bioconductor or your ",
         "distribution: r-bioc-", tolower(pkg), ")", call. = FALSE)
  }
}
