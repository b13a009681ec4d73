"""The one format of values crossing between R and Python, each way.

Every structured value is a dict with a ``kind`` tag:

* ``"adata"``: an AnnData. Counts as the vectors of an R ``dgCMatrix`` of *features x cells* (``x``, ``i``,
  ``p``, ``dim = [n_cells, n_features]``), which are exactly those of a SciPy CSR matrix of *cells x features*,
  so nothing is densified or transposed (optional: without them the AnnData has no X); ``obs_names``,
  ``var_names``; ``obs``/``var`` (frames); ``obsm``/``varm`` (dicts of matrices).
* ``"frame"``: a data frame as ``names`` and ``columns`` (each ``{"kind": factor|character|double|integer|
  logical, "values"[, "levels", "na"]}``), optional ``index`` and ``attrs``. reticulate 1.28's own pandas
  conversion fails with pandas 2 (categoricals, nullable dtypes), so neither side relies on it.
* ``"strings"``: a character vector (NA marked in ``na``); ``"sets"``: named gene sets (R -> Python).
* ``"dict"`` / ``"list"``: named / unnamed lists (Python -> R).
* ``"reduction"``: a fitted embedding (Python -> R): ``cells``, ``embedding`` (cells x k), ``loadings`` (used
  features x k: the "genes used" are decided here, once), ``features`` (their names), ``has_mnn_partner``.

R builds the R -> Python specs (``R/bridge.R``) and :func:`decode` reads them; :func:`encode` writes the
Python -> R values, which R's ``.from_py()`` turns into data.frames, dgCMatrix objects, DimReducs.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Optional

import numpy as np
import pandas as pd
import scipy.sparse as sp

__all__ = ["sparse_to_vectors", "sparse_from_vectors", "frame_to_columns", "columns_to_frame",
           "anndata_from_vectors", "anndata_to_vectors", "as_anndata", "decode", "encode", "Reduction",
           "reduction_from_result"]


# --------------------------------------------------------------------------------------------------
# sparse matrices <-> (x, i, p, dim)
# --------------------------------------------------------------------------------------------------
def sparse_to_vectors(m: Any, dtype: Any = np.float64) -> dict:
    """``m`` (cells x features; SciPy sparse, NumPy or anything ``np.asarray`` accepts) -> vectors.

    Returns ``{"x", "i", "p", "dim"}`` with ``x`` of ``dtype``, ``i``/``p`` int32 and
    ``dim = [n_cells, n_features]``: the slots of the R ``dgCMatrix`` of features x cells.
    Indices are sorted and duplicates summed (the dgCMatrix validity rules) on a copy if needed.
    """
    if not sp.issparse(m):
        m = sp.csr_matrix(np.asarray(m))
    m = m.tocsr() if m.format != "csr" else m
    if not m.has_canonical_format:
        m = m.copy()
        m.sum_duplicates()  # also sorts the indices
    if m.nnz > np.iinfo(np.int32).max:
        raise ValueError(
            f"sparse matrix with {m.nnz} non-zeros cannot be an R dgCMatrix (limit 2^31-1): "
            "split the cells into batches")
    x = np.asarray(m.data, dtype=dtype)
    i = np.asarray(m.indices, dtype=np.int32)
    p = np.asarray(m.indptr, dtype=np.int32)
    return {"x": x, "i": i, "p": p, "dim": [int(m.shape[0]), int(m.shape[1])]}


def sparse_from_vectors(x: Any, i: Any, p: Any, dim: Any, dtype: Any = np.float32) -> sp.csr_matrix:
    """Vectors of an R ``dgCMatrix`` (features x cells) -> SciPy CSR matrix of cells x features.

    ``dim`` is ``[n_cells, n_features]`` (the R matrix's ``rev(dim(m))``).
    """
    n_obs, n_var = (int(d) for d in np.asarray(dim).ravel()[:2])
    # copies: NumPy views of R memory (reticulate shares it) must not outlive the R vectors
    x = np.array(x, dtype=dtype, copy=True).ravel()
    i = np.array(i, dtype=np.int32, copy=True).ravel()
    p = np.array(p, dtype=np.int32, copy=True).ravel()
    if p.shape[0] != n_obs + 1 or x.shape[0] != i.shape[0] or (p.shape[0] and p[-1] != x.shape[0]):
        raise ValueError(
            f"inconsistent sparse vectors: len(x)={x.shape[0]}, len(i)={i.shape[0]}, len(p)={p.shape[0]} "
            f"for dim={[n_obs, n_var]} (expected len(p) = n_cells + 1 and p[-1] = len(x))")
    return sp.csr_matrix((x, i, p), shape=(n_obs, n_var))


def _as_str_list(v: Any) -> list[str]:
    if v is None:
        return []
    if isinstance(v, str):
        return [v]
    return [str(s) for s in np.asarray(v, dtype=object).ravel()]


def _strings(values: Any, na: Any) -> list:
    """An R character vector: strings, with None where ``na`` (when given for each value) is true."""
    v = _as_str_list(values)
    na = np.asarray(na if na is not None else np.zeros(len(v), dtype=bool), dtype=bool).ravel()
    return [None if m else x for x, m in zip(v, na)] if na.shape[0] == len(v) else v


# --------------------------------------------------------------------------------------------------
# data frames <-> {"names", "columns"}
# --------------------------------------------------------------------------------------------------
def _column_from_r(e: Mapping) -> Any:
    kind, values = e["kind"], e["values"]
    if kind == "factor":
        levels = _as_str_list(e.get("levels"))
        codes = np.asarray(values, dtype=np.int64).ravel() - 1
        codes = np.where(codes < 0, -1, codes)
        if len(set(levels)) == len(levels):
            return pd.Categorical.from_codes(codes, categories=pd.Index(levels).unique())
        return pd.Categorical([levels[c] if c >= 0 else None for c in codes])
    if kind in ("logical", "integer", "double"):
        return np.asarray(values, dtype={"logical": bool, "integer": np.int64, "double": np.float64}[kind]).ravel()
    return pd.Series(_strings(values, e.get("na")), dtype=object)


def columns_to_frame(cols: Any, index: Any = None) -> pd.DataFrame:
    """A frame spec from R (``{"names", "columns"[, "index"]}``, see :func:`frame_to_columns`) -> DataFrame.
    ``index`` (or the spec's own ``index``) names the rows."""
    if isinstance(cols, pd.DataFrame):
        return cols
    if index is None:
        index = cols.get("index")
    entries = cols.get("columns") or []
    if isinstance(entries, Mapping):
        entries = [entries]
    data = {name: _column_from_r(e) for name, e in zip(_as_str_list(cols.get("names")), entries)}
    if not data:
        return pd.DataFrame(index=None if index is None else pd.Index(_as_str_list(index)))
    df = pd.DataFrame(data)
    if index is not None:
        df.index = pd.Index(_as_str_list(index))
    return df


def _column_to_r(s: pd.Series) -> dict:
    if isinstance(s.dtype, pd.CategoricalDtype):
        return {"kind": "factor", "values": np.asarray(s.cat.codes, dtype=np.int32) + 1,
                "levels": [str(v) for v in s.cat.categories]}
    if pd.api.types.is_bool_dtype(s.dtype) and not s.isna().any():
        return {"kind": "logical", "values": np.asarray(s, dtype=bool)}
    if pd.api.types.is_integer_dtype(s.dtype) and not s.isna().any() \
            and (len(s) == 0 or np.abs(np.asarray(s, dtype=np.int64)).max() < 2**31 - 1):
        return {"kind": "integer", "values": np.asarray(s, dtype=np.int32)}
    if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
        return {"kind": "double", "values": np.asarray(s.astype("float64"), dtype=np.float64)}
    na = np.asarray(s.isna(), dtype=bool)
    return {"kind": "character", "na": na, "values": ["" if missing else str(v) for v, missing in zip(s.tolist(), na)]}


def frame_to_columns(df: pd.DataFrame) -> dict:
    """DataFrame -> ``{"kind": "frame", "names", "columns"}`` where each column is ``{"kind", "values"[,
    "levels"]}``: kind "factor" (``values`` = 1-based codes, 0 = NA; ``levels``), "character" (``na`` marks
    NA), "double", "integer" or "logical"; R rebuilds the data.frame from these."""
    return {"kind": "frame", "names": [str(c) for c in df.columns],
            "columns": [_column_to_r(df[c]) for c in df.columns]}


def _frame(df: Any, index: list[str]) -> pd.DataFrame:
    """obs/var of an AnnData from R: a frame spec (or DataFrame) whose rows are ``index``."""
    if df is None or (isinstance(df, Mapping) and not df.get("names")):
        return pd.DataFrame(index=pd.Index(index))
    df = columns_to_frame(df, index=index) if isinstance(df, Mapping) else pd.DataFrame(df).copy()
    if df.shape[1] == 0:
        return pd.DataFrame(index=pd.Index(index))
    if len(df) != len(index):
        raise ValueError(f"metadata has {len(df)} rows for {len(index)} names")
    df.index = pd.Index(index)
    return df


# --------------------------------------------------------------------------------------------------
# AnnData <-> "adata" specs
# --------------------------------------------------------------------------------------------------
def anndata_from_vectors(x: Any, i: Any, p: Any, dim: Any, obs_names: Any, var_names: Any,
                         obs: Any = None, var: Any = None, dtype: str = "float32"):
    """Build an AnnData (cells x features, CSR ``X``) from the vectors of an R dgCMatrix."""
    import anndata as ad

    X = sparse_from_vectors(x, i, p, dim, dtype=np.dtype(dtype))
    obs_names = _as_str_list(obs_names)
    var_names = _as_str_list(var_names)
    if len(obs_names) != X.shape[0] or len(var_names) != X.shape[1]:
        raise ValueError(f"{len(obs_names)} cell names and {len(var_names)} feature names for a "
                         f"{X.shape[0]} x {X.shape[1]} matrix")
    return ad.AnnData(X=X, obs=_frame(obs, obs_names), var=_frame(var, var_names))


def as_anndata(spec: Any, what: str = "data"):
    """An AnnData, or an ``"adata"`` spec from R (counts vectors optional; ``obsm``/``varm`` matrices)."""
    import anndata as ad

    if isinstance(spec, ad.AnnData):
        return spec
    if not isinstance(spec, Mapping):
        raise TypeError(f"{what}: expected an AnnData or the vectors of a sparse matrix, got {type(spec)!r}")
    if "x" in spec:
        a = anndata_from_vectors(spec["x"], spec["i"], spec["p"], spec["dim"], spec["obs_names"],
                                 spec["var_names"], obs=spec.get("obs"), var=spec.get("var"))
    else:
        obs_names, var_names = _as_str_list(spec.get("obs_names")), _as_str_list(spec.get("var_names"))
        a = ad.AnnData(obs=_frame(spec.get("obs"), obs_names), var=_frame(spec.get("var"), var_names))
    for slot in ("obsm", "varm"):
        for k, m in dict(spec.get(slot) or {}).items():
            m = np.asarray(m, dtype=np.float32)
            n = a.n_obs if slot == "obsm" else a.n_vars
            getattr(a, slot)[str(k)] = m.reshape(n, -1) if m.ndim != 2 else m
    return a


def anndata_to_vectors(adata: Any, layer: Optional[str] = None, dtype: Any = np.float64) -> dict:
    """AnnData -> ``{"kind": "adata", "x", "i", "p", "dim", "obs_names", "var_names", "obs", "var"}`` for R."""
    X = adata.X if layer is None else adata.layers[layer]
    if X is None:
        raise ValueError("the AnnData has no X: give layer= the name of a layer holding the counts")
    if hasattr(X, "to_memory"):  # backed / lazy arrays
        X = X.to_memory()
    return {"kind": "adata", **sparse_to_vectors(X, dtype=dtype),
            "obs_names": np.asarray(adata.obs_names.astype(str), dtype=object).tolist(),
            "var_names": np.asarray(adata.var_names.astype(str), dtype=object).tolist(),
            "obs": frame_to_columns(adata.obs), "var": frame_to_columns(adata.var)}


# --------------------------------------------------------------------------------------------------
# R -> Python
# --------------------------------------------------------------------------------------------------
def decode(v: Any) -> Any:
    """A value from R: tagged dicts become AnnData / DataFrames / string lists / gene-set dicts; other dicts
    and lists are decoded element by element."""
    if isinstance(v, Mapping):
        kind = v.get("kind")
        if kind == "adata":
            return as_anndata(v)
        if kind == "frame":
            return columns_to_frame(v)
        if kind == "strings":
            return _strings(v.get("values"), v.get("na"))
        if kind == "sets":
            return {str(k): _as_str_list(g) for k, g in zip(_as_str_list(v.get("names")), v.get("values") or [])}
        return {str(k): decode(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [decode(x) for x in v]
    return v


# --------------------------------------------------------------------------------------------------
# Python -> R
# --------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Reduction:
    """A fitted embedding as R stores it (a Seurat ``DimReduc``, an SCE ``reducedDim``): cells x k embeddings,
    loadings of the features used only (rows named by ``features``), and the MNN-partner flag (or None)."""

    cells: list
    embedding: np.ndarray
    features: list = dataclasses.field(default_factory=list)
    loadings: Optional[np.ndarray] = None
    has_mnn_partner: Optional[np.ndarray] = None

    def to_r(self) -> dict:
        emb = np.ascontiguousarray(self.embedding, dtype=np.float32)
        load = self.loadings if self.loadings is not None else np.zeros((0, emb.shape[1]), dtype=np.float32)
        return {"kind": "reduction", "cells": [str(c) for c in self.cells], "embedding": emb,
                "features": [str(f) for f in self.features],
                "loadings": np.ascontiguousarray(load, dtype=np.float32), "has_mnn_partner": self.has_mnn_partner}


def reduction_from_result(adata, key: str) -> Reduction:
    """The :class:`Reduction` of a result AnnData of ``BiCLUM.write_to``: the features used are those flagged in
    ``var[f"{key}_feature"]`` (zero loading rows of the other features are not sent)."""
    used = np.asarray(adata.var[f"{key}_feature"].fillna(False), dtype=bool)
    partner = f"{key}_has_mnn_partner"
    return Reduction(cells=adata.obs_names.astype(str).tolist(), embedding=np.asarray(adata.obsm[f"X_{key}"]),
                     features=adata.var_names[used].astype(str).tolist(),
                     loadings=np.asarray(adata.varm[f"{key}_loadings"])[used],
                     has_mnn_partner=np.asarray(adata.obs[partner], dtype=bool) if partner in adata.obs else None)


def encode(v: Any, depth: int = 0) -> Any:
    """A result for R, tagged so that R rebuilds data.frames, dgCMatrix objects, named lists and reductions;
    lists of numbers of one type stay lists (R vectors), NumPy scalars become Python scalars, other objects their
    string."""
    import anndata as ad

    if depth > 8:
        return str(v)
    if v is None or isinstance(v, (bool, int, float, str, np.ndarray)):
        return v
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, Reduction):
        return v.to_r()
    if isinstance(v, pd.Series):
        v = v.to_frame(name=v.name if v.name is not None else "value")
    if isinstance(v, pd.DataFrame):
        return {**frame_to_columns(v), "index": [str(i) for i in v.index],
                "attrs": {str(k): encode(x, depth + 1) for k, x in v.attrs.items()}}
    if isinstance(v, ad.AnnData):
        return anndata_to_vectors(v)
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        v = dataclasses.asdict(v)
    if isinstance(v, Mapping):
        return {"kind": "dict", "names": [str(k) for k in v], "values": [encode(x, depth + 1) for x in v.values()]}
    if isinstance(v, (list, tuple, set)):
        v = list(v)
        if all(isinstance(x, str) for x in v):
            return {"kind": "strings", "values": v}
        if v and all(type(x) is type(v[0]) for x in v) and isinstance(v[0], (bool, int, float)):
            return v  # numbers (e.g. hidden_dims): an R vector, as reticulate converts them
        return {"kind": "list", "values": [encode(x, depth + 1) for x in v]}
    return str(v)
