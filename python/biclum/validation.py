"""Input validation: one setup step that checks both modalities before anything is built.

Every error names the object, the problem and the fix. Problems biclum can work around (cells with zero counts,
non-integer values, fewer cells than the batch size) produce a ``BiclumWarning`` that says what was done.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import Optional

import numpy as np
import scipy.sparse as sp

from ._logging import logger
from .errors import BiclumInputError, BiclumWarning

MIN_CELLS = 10
SCAN_CHUNK = 1 << 23  # values scanned per chunk  # below this a modality cannot be integrated (PCA, metacells and kNN need a few cells)


def _matrix(adata, layer: Optional[str], name: str):
    if layer is None:
        X = adata.X
        if X is None:
            raise BiclumInputError(f"{name}: .X is empty; put the counts in .X or name the layer that holds them "
                                   f"(layer=...).")
        return X
    if layer not in adata.layers:
        raise BiclumInputError(f"{name}: layer {layer!r} does not exist; available layers: "
                               f"{list(adata.layers.keys()) or 'none'}.")
    return adata.layers[layer]


def _values(X) -> np.ndarray:
    if sp.issparse(X):
        return X.data
    return np.asarray(X).ravel()


@dataclass
class ModalityCheck:
    keep_cells: np.ndarray  # boolean mask of cells that enter the model
    n_dropped: int


def check_anndata(adata, name: str) -> None:
    try:
        import anndata
    except ImportError:  # pragma: no cover
        anndata = None
    if anndata is not None and not isinstance(adata, anndata.AnnData):
        raise BiclumInputError(f"{name}: expected an AnnData (cells x features), got {type(adata).__name__}; "
                               f"wrap a matrix with anndata.AnnData(X, obs=..., var=...).")
    if getattr(adata, "isbacked", False):
        return


def check_modality(adata, name: str, layer: Optional[str] = None, expect_counts: bool = True) -> ModalityCheck:
    """Check one modality: shape, names, finiteness, sign, integrality; find cells with zero counts."""
    check_anndata(adata, name)
    n_cells, n_features = adata.shape
    if n_cells == 0:
        raise BiclumInputError(f"{name}: the modality has zero cells; pass an AnnData with at least {MIN_CELLS} cells.")
    if n_features == 0:
        raise BiclumInputError(f"{name}: the modality has zero features; pass the counts matrix (cells x features).")
    for axis, names in (("cell", adata.obs_names), ("feature", adata.var_names)):
        if not names.is_unique:
            dup = names[names.duplicated()].unique()[:5].tolist()
            fix = "adata.obs_names_make_unique()" if axis == "cell" else "adata.var_names_make_unique()"
            raise BiclumInputError(f"{name}: duplicated {axis} names, e.g. {dup}; make them unique ({fix}).")
    X = _matrix(adata, layer, name)
    values = _values(X)
    if values.dtype.kind not in "biuf":
        raise BiclumInputError(f"{name}: the matrix has dtype {values.dtype}; it must hold numbers (counts).")
    n_bad, n_neg, vmin = 0, 0, np.inf
    for a in range(0, values.size, SCAN_CHUNK):  # chunked: no temporary the size of the matrix
        v = values[a:a + SCAN_CHUNK]
        if values.dtype.kind == "f":
            n_bad += int(v.size - np.count_nonzero(np.isfinite(v)))
        if not n_bad and v.size:
            m = v.min()
            vmin = min(vmin, m)
            if m < 0:
                n_neg += int(np.count_nonzero(v < 0))
    if n_bad:
        raise BiclumInputError(f"{name}: the matrix holds {n_bad} NaN/Inf values; biclum needs raw counts "
                               f"(replace or remove them, e.g. X[np.isnan(X)] = 0 if they mean 'not detected').")
    if n_neg:
        raise BiclumInputError(f"{name}: the matrix has {n_neg} negative values (min "
                               f"{vmin:.3g}); biclum needs raw, non-negative counts, not scaled or centred "
                               f"data (use the counts layer: layer='counts').")
    if expect_counts and values.size and values.dtype.kind == "f":
        sample = values[: 1_000_000]
        if np.any(sample != np.round(sample)):
            warnings.warn(f"{name}: the matrix holds non-integer values; biclum expects raw counts (its HVG "
                          f"selection models counts). Proceeding; pass the counts layer if there is one.",
                          BiclumWarning, stacklevel=3)
    totals = np.asarray(X.sum(axis=1)).ravel()
    keep = totals > 0
    n_dropped = int((~keep).sum())
    if n_dropped == n_cells:
        raise BiclumInputError(f"{name}: every cell has zero counts; check that .X (or the layer) holds the counts.")
    if n_dropped:
        warnings.warn(f"{name}: {n_dropped} of {n_cells} cells have zero counts and were dropped "
                      f"(they carry no signal to embed).", BiclumWarning, stacklevel=3)
    if int(keep.sum()) < MIN_CELLS:
        raise BiclumInputError(f"{name}: only {int(keep.sum())} cells with counts; biclum needs at least "
                               f"{MIN_CELLS} per modality.")
    if sp.issparse(X) and X.format in ("csr", "csc"):
        axis_index = X.indices  # column of each stored value (CSR) or row (CSC)
        detected = np.zeros(X.shape[1], dtype=bool)
        for a in range(0, values.size, SCAN_CHUNK):
            v = values[a:a + SCAN_CHUNK]
            if X.format == "csr":
                detected[axis_index[a:a + SCAN_CHUNK][v != 0]] = True
        if X.format == "csc":
            detected = np.diff(X.indptr) > 0
        n_zero_genes = int((~detected).sum())
    else:
        n_zero_genes = int((np.asarray(abs(X).sum(axis=0)).ravel() == 0).sum())
    if n_zero_genes:
        logger.info("%s: %d features have zero counts in every cell; they are ignored.", name, n_zero_genes)
    return ModalityCheck(keep_cells=keep, n_dropped=n_dropped)


def check_shared_genes(genes_rna, genes_other, minimum: int, other_name: str = "other") -> np.ndarray:
    shared = np.intersect1d(np.asarray(genes_rna, dtype=str), np.asarray(genes_other, dtype=str))
    if len(shared) < minimum:
        ex_r = list(genes_rna[:3])
        ex_o = list(genes_other[:3])
        raise BiclumInputError(
            f"rna and {other_name} share {len(shared)} genes but biclum needs at least {minimum}. Feature names "
            f"must be gene symbols in both (rna: {ex_r}, {other_name}: {ex_o}); for ATAC give an annotation of "
            f"the right genome, for protein a mapping of antibodies to genes, or lower min_shared_genes.")
    return shared


def cap_to_data(value: int, n_cells: int, what: str) -> int:
    """Cap batch size / k to the number of cells, with a warning."""
    if value > n_cells:
        warnings.warn(f"{what}={value} is larger than the {n_cells} cells available; using {n_cells}.",
                      BiclumWarning, stacklevel=3)
        return n_cells
    return value


def check_h5ad_path(path, what: str) -> str:
    path = os.fspath(path)
    if not os.path.exists(path):
        raise BiclumInputError(f"{what}: file {path!r} does not exist; give the path of an .h5ad file.")
    if not path.endswith(".h5ad"):
        raise BiclumInputError(f"{what}: {path!r} is not an .h5ad file; convert it (anndata.AnnData.write_h5ad, "
                               f"or from R with biclum's bridge) and pass the .h5ad.")
    return path
