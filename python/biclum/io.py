"""Read R single-cell objects (Seurat, SingleCellExperiment) into AnnData, via rpy2 (+ anndata2ri).

For Python users who were handed ``.rds`` files::

    from biclum.io import read_seurat, from_sce
    rna = read_seurat("rna.rds")                      # default assay, raw counts
    atac = read_seurat("multiome.rds", assay="peaks")  # var gets chrom/start/end (ChromatinAssay ranges or names)
    adt = from_sce("adt_sce.rds", assay="counts")

Needs R with SeuratObject (for Seurat objects) or SingleCellExperiment (for SCEs) and
``pip install "biclum[r]"`` (rpy2 3.5.x for R < 4.5, anndata2ri). Counts cross as the ``x``/``i``/``p`` vectors
of the R ``dgCMatrix`` (features x cells), which are the vectors of a SciPy CSR matrix of cells x features: nothing
is densified.
"""
from __future__ import annotations

import os
from typing import Any, Optional

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .errors import BiclumInputError

__all__ = ["read_seurat", "from_sce", "read_rds"]

_R_HELPERS = r"""
local({
  .biclum_io <- new.env()
  .biclum_io$as_dgc <- function(m) {
    if (!inherits(m, "dgCMatrix")) m <- methods::as(methods::as(methods::as(m, "CsparseMatrix"), "generalMatrix"), "dMatrix")
    m
  }
  .biclum_io$coords <- function(gr, n) {
    if (is.null(gr) || !methods::is(gr, "GRanges") || length(gr) != n || n == 0) return(NULL)
    df <- as.data.frame(gr)
    if (anyNA(df$seqnames) || any(df$width <= 0)) return(NULL)
    data.frame(chrom = as.character(df$seqnames), start = as.numeric(df$start), end = as.numeric(df$end))
  }
  .biclum_io$parts <- function(m, meta, var) {
    m <- .biclum_io$as_dgc(m)
    list(x = as.double(m@x), i = as.integer(m@i), p = as.integer(m@p), dim = as.integer(dim(m)),
         cells = if (is.null(colnames(m))) as.character(seq_len(ncol(m))) else colnames(m),
         features = if (is.null(rownames(m))) as.character(seq_len(nrow(m))) else rownames(m),
         meta = meta, var = var)
  }
  .biclum_io$seurat <- function(obj, assay, layer, join_layers) {
    if (!inherits(obj, "Seurat")) stop("not a Seurat object but a ", class(obj)[1], call. = FALSE)
    if (!requireNamespace("SeuratObject", quietly = TRUE)) stop("the R package SeuratObject is not installed", call. = FALSE)
    assays <- SeuratObject::Assays(obj)
    if (is.null(assay)) assay <- SeuratObject::DefaultAssay(obj)
    if (!assay %in% assays) stop("the Seurat object has no assay '", assay, "' (its assays: ",
                                 paste(assays, collapse = ", "), ")", call. = FALSE)
    a <- obj[[assay]]
    if (inherits(a, "StdAssay")) {
      ns <- asNamespace("SeuratObject")
      found <- ns$Layers(a, search = layer)
      if (length(found) == 0) stop("assay '", assay, "' has no layer '", layer, "'", call. = FALSE)
      if (length(found) > 1) {
        if (!isTRUE(join_layers)) stop("assay '", assay, "' has its '", layer, "' layer split into ",
                                      length(found), " layers (", paste(found, collapse = ", "), "); pass ",
                                      "join_layers=True or join them in R (JoinLayers)", call. = FALSE)
        a <- ns$JoinLayers(a, layers = layer)
        found <- ns$Layers(a, search = layer)
      }
      m <- ns$LayerData(a, layer = found[1])
    } else if (utils::packageVersion("SeuratObject") >= "4.9.0") {
      m <- SeuratObject::GetAssayData(a, layer = layer)
    } else {
      m <- SeuratObject::GetAssayData(a, slot = layer)
    }
    if (prod(dim(m)) == 0) stop("assay '", assay, "' has an empty '", layer, "' layer/slot", call. = FALSE)
    var <- if (methods::.hasSlot(a, "ranges")) .biclum_io$coords(methods::slot(a, "ranges"), nrow(m)) else NULL
    meta <- obj[[]]
    meta <- meta[colnames(m), , drop = FALSE]
    .biclum_io$parts(m, meta, var)
  }
  .biclum_io$sce_ranges <- function(sce) {
    rr <- tryCatch(SummarizedExperiment::rowRanges(sce), error = function(e) NULL)
    .biclum_io$coords(rr, nrow(sce))
  }
  .biclum_io
})
"""


def _r():
    try:
        import rpy2.robjects as ro
    except Exception as e:  # pragma: no cover - depends on the installation
        raise ImportError(
            "biclum.io needs rpy2 and R: pip install 'rpy2==3.5.17' 'anndata2ri==2.0.1' (rpy2 >= 3.6 needs "
            f"R >= 4.5), with R and its SeuratObject / SingleCellExperiment packages installed ({e})") from e
    return ro


_HELPERS = None


def _helpers():
    global _HELPERS
    if _HELPERS is None:
        ro = _r()
        _HELPERS = ro.r(_R_HELPERS)
    return _HELPERS


def _vec(v, dtype) -> np.ndarray:
    """An rpy2 atomic vector -> NumPy (through its buffer when it has one)."""
    try:
        return np.array(memoryview(v), dtype=dtype, copy=True).ravel()
    except (TypeError, ValueError, NotImplementedError):
        return np.asarray(list(v), dtype=dtype)


def _str_vec(v) -> list:
    return [str(s) for s in v]


def _to_pandas(robj, index: list) -> pd.DataFrame:
    ro = _r()
    if robj is ro.NULL or robj is None:
        return pd.DataFrame(index=pd.Index(index))
    from rpy2.robjects import default_converter, pandas2ri
    from rpy2.robjects.conversion import localconverter

    with localconverter(default_converter + pandas2ri.converter) as cv:
        df = cv.rpy2py(robj)
    df = pd.DataFrame(df)
    if len(df) == len(index):
        df.index = pd.Index(index)
    else:  # pragma: no cover - defensive
        df = pd.DataFrame(index=pd.Index(index))
    return df


def _parts_to_anndata(parts) -> Any:
    import anndata as ad

    get = {k: parts.rx2(k) for k in parts.names}
    n_features, n_cells = (int(d) for d in get["dim"])
    x = _vec(get["x"], np.float32)
    i = _vec(get["i"], np.int32)
    p = _vec(get["p"], np.int32)
    X = sp.csr_matrix((x, i, p), shape=(n_cells, n_features))
    cells = _str_vec(get["cells"])
    features = _str_vec(get["features"])
    obs = _to_pandas(get["meta"], cells)
    var = _to_pandas(get["var"], features)
    return ad.AnnData(X=X, obs=obs, var=var)


def read_rds(path: str):
    """``readRDS(path)`` through rpy2 (the R object)."""
    ro = _r()
    path = os.fspath(path)
    if not os.path.exists(path):
        raise BiclumInputError(f"read_rds: file {path!r} does not exist; give the path of an .rds file.")
    return ro.r("function(p) suppressPackageStartupMessages(readRDS(p))")(path)


def read_seurat(path_or_object: Any, assay: Optional[str] = None, layer: str = "counts",
                join_layers: bool = False):
    """A Seurat object (``.rds`` path or rpy2 object) -> AnnData of one assay (cells x features).

    ``X`` holds the ``layer`` (v5) / slot (v4) of ``assay`` (default: the default assay; ``layer="counts"``) as
    CSR float32, ``obs`` the meta.data, ``var`` the peak coordinates (chrom/start/end) of a Signac
    ChromatinAssay. v5 assays whose layer is split (counts.1, counts.2, ...) are joined with
    ``join_layers=True`` and refused otherwise (never truncated to the first layer).
    """
    ro = _r()
    obj = read_rds(path_or_object) if isinstance(path_or_object, (str, os.PathLike)) else path_or_object
    h = _helpers()
    try:
        parts = h["seurat"](obj, ro.NULL if assay is None else assay, layer, bool(join_layers))
    except Exception as e:  # rpy2's RRuntimeError
        raise BiclumInputError(f"read_seurat({path_or_object!r}): {str(e).strip()}") from e
    return _parts_to_anndata(parts)


def from_sce(sce: Any, assay: str = "counts"):
    """A SingleCellExperiment (``.rds`` path or rpy2 object) -> AnnData, via anndata2ri.

    ``X`` is ``assay(sce, assay)`` (kept sparse), the other assays are layers, colData/rowData become obs/var,
    reducedDims become obsm; peak coordinates from ``rowRanges`` (GRanges) go to var chrom/start/end.
    """
    ro = _r()
    obj = read_rds(sce) if isinstance(sce, (str, os.PathLike)) else sce
    cls = list(ro.r["class"](obj))
    if not any(c in ("SingleCellExperiment", "SummarizedExperiment", "RangedSummarizedExperiment") for c in cls):
        raise BiclumInputError(f"from_sce: expected a SingleCellExperiment, got an R object of class {cls}; "
                               "for Seurat objects use biclum.io.read_seurat.")
    assay_names = list(ro.r("SummarizedExperiment::assayNames")(obj))
    if assay not in assay_names:
        raise BiclumInputError(f"from_sce: no assay {assay!r} (its assays: {assay_names}); name the assay of "
                               "raw counts with assay=.")
    try:
        import anndata2ri
        from rpy2.robjects.conversion import localconverter
    except Exception as e:  # pragma: no cover
        raise ImportError("from_sce needs anndata2ri: pip install 'anndata2ri==2.0.1'") from e
    # anndata2ri attaches these; attach them quietly first
    ro.r("suppressWarnings(suppressPackageStartupMessages({library(SingleCellExperiment)}))")
    if "SingleCellExperiment" not in cls:
        obj = ro.r("function(x) methods::as(x, 'SingleCellExperiment')")(obj)
    with localconverter(anndata2ri.converter) as cv:
        adata = cv.rpy2py(obj)
    X = adata.layers[assay] if assay in adata.layers else adata.X
    if sp.issparse(X):
        X = sp.csr_matrix(X, dtype=np.float32)
    else:
        X = np.asarray(X, dtype=np.float32)
    adata.X = X
    if assay in adata.layers:
        del adata.layers[assay]
    coords = _helpers()["sce_ranges"](obj)
    if coords is not ro.NULL:
        df = _to_pandas(coords, list(adata.var_names))
        for col in ("chrom", "start", "end"):
            adata.var[col] = df[col].to_numpy()
    return adata
