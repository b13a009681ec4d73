"""Shared helpers of the downstream analyses (private).

Matrices are never modified in place: every function that changes values works on a copy. Whole
cells x features matrices stay sparse; only small slices (a few genes, metacells, a chunk of genes)
are made dense.
"""
from __future__ import annotations

from typing import Optional, Sequence, Union

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..errors import BiclumInputError

ArrayLike = Union[np.ndarray, sp.spmatrix]


def obj_name(adata, default: str = "adata") -> str:
    """A short description of an AnnData for error messages."""
    try:
        return f"{default} ({adata.n_obs} cells x {adata.n_vars} features)"
    except AttributeError:
        return default


def check_adata(adata, name: str = "adata") -> None:
    if not (hasattr(adata, "obs") and hasattr(adata, "var") and hasattr(adata, "obs_names")):
        raise BiclumInputError(f"{name}: expected an AnnData object, got {type(adata).__name__}; "
                               "pass an anndata.AnnData (cells x features).")


def get_rep(adata, use_rep: str = "X_biclum", name: str = "adata") -> np.ndarray:
    """The cell embedding ``adata.obsm[use_rep]`` as a float32 C-contiguous array (a copy)."""
    check_adata(adata, name)
    if use_rep not in adata.obsm:
        keys = list(adata.obsm.keys())
        raise BiclumInputError(
            f"{name}: obsm has no embedding {use_rep!r} (obsm keys: {keys}); run biclum.integrate first and "
            f"use res.rna / res.other, or copy the embedding in (adata.obsm[{use_rep!r}] = res.other.obsm[...]), "
            "or pass use_rep= the key of your joint embedding.")
    E = adata.obsm[use_rep]
    E = E.toarray() if sp.issparse(E) else np.asarray(E)
    if E.ndim != 2 or E.shape[0] != adata.n_obs:
        raise BiclumInputError(f"{name}: obsm[{use_rep!r}] has shape {E.shape}, expected (n_obs={adata.n_obs}, d); "
                               "store one row per cell.")
    E = np.ascontiguousarray(E, dtype=np.float32)
    if not np.isfinite(E).all():
        raise BiclumInputError(f"{name}: obsm[{use_rep!r}] contains NaN or inf values; recompute the embedding.")
    return E


def l2_normalize(E: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(E, axis=1, keepdims=True)
    n[n == 0] = 1.0
    return np.ascontiguousarray(E / n, dtype=np.float32)


def get_matrix(adata, layer: Optional[str] = None, name: str = "adata") -> ArrayLike:
    """``adata.X`` or a layer, without copying (CSR if sparse). Raises if there is none."""
    check_adata(adata, name)
    if layer is None:
        X = adata.X
        if X is None:
            raise BiclumInputError(
                f"{name}: has no X (e.g. res.rna / res.other of biclum.integrate carry only obs/var/obsm); "
                "pass the AnnData with the expression / activity values (copy the embedding into its obsm).")
    else:
        if layer not in adata.layers:
            raise BiclumInputError(f"{name}: no layer {layer!r} (layers: {list(adata.layers.keys())}); "
                                   "pass layer=None to use X or the name of an existing layer.")
        X = adata.layers[layer]
    if sp.issparse(X):
        return X.tocsr() if not sp.isspmatrix_csr(X) else X
    if hasattr(X, "to_memory"):
        X = X.to_memory()
    return np.asarray(X)


def is_count_matrix(X: ArrayLike, n_check: int = 200_000) -> bool:
    """True if the (first ``n_check``) stored values are non-negative integers."""
    vals = X.data[:n_check] if sp.issparse(X) else np.asarray(X).ravel()[:n_check]
    if vals.size == 0:
        return True
    return bool(np.all(vals >= 0) and np.all(np.abs(vals - np.round(vals)) < 1e-6))


def resolve_normalize(X: ArrayLike, normalize: Optional[str]) -> Optional[str]:
    if normalize is None or normalize in ("none", False):
        return None
    if normalize == "auto":
        return "log1p" if is_count_matrix(X) else None
    if normalize not in ("log1p", "clr"):
        raise BiclumInputError(f"normalize={normalize!r} is not known; use 'auto' (log1p of counts per 10,000 for "
                               "raw counts, data as given otherwise), 'log1p', 'clr' (proteins) or None.")
    return normalize


def normalize_matrix(X: ArrayLike, method: Optional[str], target_sum: float = 1e4) -> ArrayLike:
    """Library-size normalisation + log1p (``"log1p"``), centred log-ratio per cell (``"clr"``) or none.

    Always returns a new float32 matrix (CSR for sparse input except ``"clr"``, which is dense and
    meant for a few dozen proteins).
    """
    if method is None:
        return X.astype(np.float32, copy=True) if sp.issparse(X) else np.array(X, dtype=np.float32)
    if method == "log1p":
        Xc = sp.csr_matrix(X, dtype=np.float32, copy=True)
        tot = np.asarray(Xc.sum(axis=1)).ravel()
        scale = np.divide(target_sum, tot, out=np.zeros_like(tot, dtype=np.float64), where=tot > 0)
        Xc = sp.csr_matrix(sp.diags(scale.astype(np.float32)) @ Xc)
        np.log1p(Xc.data, out=Xc.data)
        return Xc
    if method == "clr":
        if X.shape[1] > 5000:
            raise BiclumInputError(f"normalize='clr' is meant for protein panels; this matrix has {X.shape[1]} "
                                   "features (it would be made dense); use 'log1p' for genes or peaks.")
        D = np.log1p(X.toarray() if sp.issparse(X) else np.asarray(X, dtype=np.float64))
        return (D - D.mean(axis=1, keepdims=True)).astype(np.float32)
    raise BiclumInputError(f"unknown normalisation {method!r}")


def columns_dense(X: ArrayLike, idx: np.ndarray) -> np.ndarray:
    """Dense float64 copy of the columns ``idx`` of X (meant for a small number of columns)."""
    sub = X[:, idx]
    return sub.toarray().astype(np.float64) if sp.issparse(sub) else np.asarray(sub, dtype=np.float64)


def get_labels(adata, groupby, name: str = "adata") -> pd.Series:
    """Labels as a string Series indexed by obs_names: ``groupby`` is an obs key or a length-n_obs array."""
    check_adata(adata, name)
    if isinstance(groupby, str):
        if groupby not in adata.obs:
            raise BiclumInputError(
                f"{name}: obs has no column {groupby!r} (columns: {list(adata.obs.columns)}); pass the label "
                "column, an array of labels, or transfer labels with biclum.downstream.transfer_labels.")
        lab = adata.obs[groupby]
    else:
        lab = pd.Series(np.asarray(groupby), index=adata.obs_names) if not isinstance(groupby, pd.Series) \
            else groupby
        if len(lab) != adata.n_obs:
            raise BiclumInputError(f"{name}: got {len(lab)} labels for {adata.n_obs} cells; give one label per cell.")
        if isinstance(lab, pd.Series) and not lab.index.equals(adata.obs_names):
            if set(lab.index) == set(adata.obs_names):
                lab = lab.reindex(adata.obs_names)
            else:
                lab = pd.Series(lab.to_numpy(), index=adata.obs_names)
    out = pd.Series(lab.astype(object).to_numpy(), index=adata.obs_names, dtype=object)
    return out


def group_indicator(labels: Sequence, categories: Optional[Sequence] = None):
    """(categories, codes, CSR indicator groups x cells). Missing labels (NaN/None) belong to no group."""
    lab = pd.Series(labels, dtype=object)
    valid = lab.notna().to_numpy()
    if categories is None:
        categories = pd.Index(sorted(lab[valid].astype(str).unique()))
    else:
        categories = pd.Index([str(c) for c in categories])
    codes = np.full(len(lab), -1, dtype=np.int64)
    codes[valid] = categories.get_indexer(lab[valid].astype(str))
    keep = codes >= 0
    cols = np.flatnonzero(keep)
    G = sp.csr_matrix((np.ones(cols.size, dtype=np.float64), (codes[keep], cols)),
                      shape=(len(categories), len(lab)))
    return categories, codes, G


def bh_fdr(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (NaN kept as NaN)."""
    p = np.asarray(p, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    m = int(ok.sum())
    if m == 0:
        return out
    pv = p[ok]
    order = np.argsort(pv)
    ranked = pv[order] * m / np.arange(1, m + 1)
    ranked = np.minimum.accumulate(ranked[::-1])[::-1]
    adj = np.empty(m)
    adj[order] = np.clip(ranked, 0, 1)
    out[ok] = adj
    return out


def as_gene_list(genes) -> list:
    if isinstance(genes, str):
        return [genes]
    return [str(g) for g in genes]
