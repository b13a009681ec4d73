"""R <-> Python bridge used by the R package (through reticulate).

Sparse matrices cross the language boundary as their compressed vectors ``(x, i, p, dim)``: an R
``dgCMatrix`` of *features x cells* (compressed sparse columns) has exactly the vectors of a SciPy CSR
matrix of *cells x features*, so nothing is densified or transposed and no reliance is put on
reticulate's automatic SciPy conversion (broken with reticulate < 1.29 and current SciPy).

Every function here takes and returns plain objects (NumPy arrays, lists, dicts, pandas DataFrames,
AnnData) so that it can be called from any reticulate version. R users do not call this module
directly: see the R functions ``RunBiCLUM()``, ``runBiCLUM()``, ``seurat_to_anndata()`` ... .
"""
from __future__ import annotations

import inspect
import logging
import time
import traceback
import warnings
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd
import scipy.sparse as sp

__all__ = [
    "sparse_to_vectors", "sparse_from_vectors", "frame_to_columns", "columns_to_frame", "anndata_from_vectors", "anndata_to_vectors",
    "read_h5ad_vectors", "as_anndata", "integrate_from_r", "project_from_r", "runtime_info", "downstream_from_r",
]

_COORD_COLS = ("chrom", "start", "end")


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


def _frame(df: Any, index: list[str]) -> pd.DataFrame:
    if df is None or (isinstance(df, Mapping) and len(df) == 0):
        return pd.DataFrame(index=pd.Index(index))
    df = columns_to_frame(df) if isinstance(df, Mapping) else pd.DataFrame(df).copy()
    if df.shape[1] == 0:
        return pd.DataFrame(index=pd.Index(index))
    if len(df) != len(index):
        raise ValueError(f"metadata has {len(df)} rows for {len(index)} names")
    df.index = pd.Index(index)
    return df


def columns_to_frame(cols: Any, index: Any = None) -> pd.DataFrame:
    """The inverse of :func:`frame_to_columns` (what R sends): ``{"names", "columns"}`` -> DataFrame."""
    if isinstance(cols, pd.DataFrame):
        return cols
    names = _as_str_list(cols.get("names"))
    entries = cols.get("columns") or []
    if isinstance(entries, Mapping):
        entries = [entries]
    data = {}
    for name, e in zip(names, entries):
        kind, values = e["kind"], e["values"]
        if kind == "factor":
            levels = _as_str_list(e.get("levels"))
            codes = np.asarray(values, dtype=np.int64).ravel() - 1
            codes = np.where(codes < 0, -1, codes)
            data[name] = pd.Categorical.from_codes(codes, categories=pd.Index(levels).unique()) \
                if len(set(levels)) == len(levels) else pd.Categorical(
                    [levels[c] if c >= 0 else None for c in codes])
        elif kind == "logical":
            data[name] = np.asarray(values, dtype=bool).ravel()
        elif kind == "integer":
            data[name] = np.asarray(values, dtype=np.int64).ravel()
        elif kind == "double":
            data[name] = np.asarray(values, dtype=np.float64).ravel()
        else:
            v = _as_str_list(values)
            na = np.asarray(e.get("na", np.zeros(len(v), dtype=bool)), dtype=bool).ravel()
            if na.shape[0] != len(v):
                na = np.zeros(len(v), dtype=bool)
            data[name] = pd.Series([None if m else x for x, m in zip(v, na)], dtype=object)
    if not data:
        return pd.DataFrame(index=None if index is None else pd.Index(_as_str_list(index)))
    df = pd.DataFrame(data)
    if index is not None:
        df.index = pd.Index(_as_str_list(index))
    return df


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


def frame_to_columns(df: pd.DataFrame) -> dict:
    """DataFrame -> ``{"names", "columns"}`` where each column is ``{"kind", "values"[, "levels"]}``:
    kind "factor" (``values`` = 1-based codes, 0 = NA; ``levels``), "character", "double", "integer" or
    "logical"; values are NumPy arrays or lists of str/None. reticulate 1.28's own pandas conversion fails
    with pandas 2 (categoricals, nullable dtypes), so R rebuilds the data.frame from these.
    """
    names, cols = [], []
    for col in df.columns:
        s = df[col]
        if isinstance(s.dtype, pd.CategoricalDtype):
            codes = np.asarray(s.cat.codes, dtype=np.int32) + 1
            entry = {"kind": "factor", "values": codes,
                     "levels": [str(v) for v in s.cat.categories]}
        elif pd.api.types.is_bool_dtype(s.dtype) and not s.isna().any():
            entry = {"kind": "logical", "values": np.asarray(s, dtype=bool)}
        elif pd.api.types.is_integer_dtype(s.dtype) and not s.isna().any() \
                and (len(s) == 0 or np.abs(np.asarray(s, dtype=np.int64)).max() < 2**31 - 1):
            entry = {"kind": "integer", "values": np.asarray(s, dtype=np.int32)}
        elif pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
            entry = {"kind": "double", "values": np.asarray(s.astype("float64"), dtype=np.float64)}
        else:
            na = np.asarray(s.isna(), dtype=bool)
            entry = {"kind": "character", "na": na,
                     "values": ["" if missing else str(v) for v, missing in zip(s.tolist(), na)]}
        names.append(str(col))
        cols.append(entry)
    return {"names": names, "columns": cols}


def anndata_to_vectors(adata: Any, layer: str | None = None, dtype: Any = np.float64) -> dict:
    """AnnData -> ``{"x", "i", "p", "dim", "obs_names", "var_names", "obs", "var"}`` for R."""
    X = adata.X if layer is None else adata.layers[layer]
    if X is None:
        raise ValueError("the AnnData has no X: give layer= the name of a layer holding the counts")
    if hasattr(X, "to_memory"):  # backed / lazy arrays
        X = X.to_memory()
    out = sparse_to_vectors(X, dtype=dtype)
    out["obs_names"] = np.asarray(adata.obs_names.astype(str), dtype=object).tolist()
    out["var_names"] = np.asarray(adata.var_names.astype(str), dtype=object).tolist()
    out["obs"] = frame_to_columns(adata.obs)
    out["var"] = frame_to_columns(adata.var)
    return out


def read_h5ad_vectors(path: str, layer: str | None = None) -> dict:
    """Read an ``.h5ad`` file and return :func:`anndata_to_vectors` of it."""
    import anndata as ad

    return anndata_to_vectors(ad.read_h5ad(str(path)), layer=layer)


# --------------------------------------------------------------------------------------------------
# integrate() for R
# --------------------------------------------------------------------------------------------------
def runtime_info() -> dict:
    """Versions R checks before using the bridge."""
    import sys

    import biclum

    return {"python": sys.executable, "python_version": sys.version.split()[0],
            "numpy": np.__version__, "scipy": __import__("scipy").__version__,
            "biclum": getattr(biclum, "__version__", "unknown")}


def as_anndata(spec: Any, what: str = "data"):
    """An AnnData, or the dict R sends: {x, i, p, dim, obs_names, var_names, [obs], [var]}."""
    import anndata as ad

    if isinstance(spec, ad.AnnData):
        return spec
    if isinstance(spec, Mapping):
        return anndata_from_vectors(spec["x"], spec["i"], spec["p"], spec["dim"], spec["obs_names"],
                                    spec["var_names"], obs=spec.get("obs"), var=spec.get("var"))
    raise TypeError(f"{what}: expected an AnnData or the vectors of a sparse matrix, got {type(spec)!r}")


def _plain(v: Any, depth: int = 0) -> Any:
    """Parameters -> objects reticulate converts to R lists/vectors (NumPy scalars, paths, ...)."""
    if depth > 8:
        return str(v)
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist() if v.size <= 10_000 else f"<array {v.shape} {v.dtype}>"
    if isinstance(v, Mapping):
        return {str(k): _plain(val, depth + 1) for k, val in v.items()}
    if isinstance(v, (list, tuple, set)):
        return [_plain(val, depth + 1) for val in v]
    if hasattr(v, "__dataclass_fields__"):
        import dataclasses

        return _plain(dataclasses.asdict(v), depth + 1)
    return str(v)


def _result_side(adata, key: str) -> dict:
    emb = np.asarray(adata.obsm[f"X_{key}"], dtype=np.float32)
    load_key = f"{key}_loadings"
    if load_key in adata.varm:
        load = np.asarray(adata.varm[load_key], dtype=np.float32)
        var_names = np.asarray(adata.var_names.astype(str), dtype=object)
    else:
        load = np.zeros((0, emb.shape[1]), dtype=np.float32)
        var_names = np.asarray([], dtype=object)
    params = adata.uns.get(key, {}).get("params", {}) if isinstance(adata.uns.get(key), Mapping) else {}
    used = np.abs(load).sum(axis=1) > 0 if load.shape[0] else np.zeros(0, dtype=bool)
    flag = f"{key}_feature"
    if flag in adata.var.columns and load.shape[0] == adata.n_vars:
        used = np.asarray(adata.var[flag].fillna(False), dtype=bool)
    for k in ("genes_used", "features_used"):
        if isinstance(params, Mapping) and k in params and params[k] is not None:
            names = set(_as_str_list(params[k]))
            if names:
                used = np.array([g in names for g in var_names], dtype=bool)
            break
    partner = f"{key}_has_mnn_partner"
    has_partner = (np.asarray(adata.obs[partner], dtype=bool) if partner in adata.obs.columns
                   else None)
    return {"cells": np.asarray(adata.obs_names.astype(str), dtype=object).tolist(),
            "has_mnn_partner": has_partner,
            "embedding": np.ascontiguousarray(emb),
            "loadings": np.ascontiguousarray(load),
            "features": var_names.tolist(),
            "used": used}


class _Relay:
    """Sends biclum log records and progress events to R, in order, as they happen.

    INFO records go to ``log_fn(level, message)`` at once; WARNING and above are collected (re-raised as R
    warnings after the call). Progress goes to ``progress_fn(stage, step, total, message)``: the first and
    last step of each stage always, otherwise at most every ``interval`` seconds; an event whose message
    is the log line just sent (the core logs each setup stage and reports it as progress) is not sent
    twice. Exceptions raised by the R callbacks never stop the fit.
    """

    def __init__(self, log_fn: Callable | None, progress_fn: Callable | None, interval: float, sink: list):
        self.log_fn, self.progress_fn, self.interval, self.sink = log_fn, progress_fn, float(interval), sink
        self.last_log: str | None = None
        self.stage: str | None = None
        self.t = 0.0

    @staticmethod
    def _call(fn: Callable, *args) -> None:
        try:
            fn(*args)
        except KeyboardInterrupt:
            raise
        except Exception:
            pass

    def flush(self) -> None:  # kept for callers; nothing is buffered
        return None

    def log(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        if record.levelno >= logging.WARNING:
            self.sink.append(msg)
            return
        self.last_log = msg
        if self.log_fn is not None:
            self._call(self.log_fn, record.levelname, msg)

    def progress(self, stage: str, step: int, total: int, message: str = "") -> None:
        message = "" if message is None else str(message)
        repeated = self.last_log is not None and message == self.last_log
        self.last_log = None
        now = time.monotonic()
        first = stage != self.stage
        last = total is not None and int(total) > 0 and int(step) >= int(total)
        if not (first or last or now - self.t >= self.interval):
            return
        self.stage, self.t = stage, now
        if self.progress_fn is not None and not (repeated and self.log_fn is not None):
            self._call(self.progress_fn, str(stage), int(step), int(total or 0), message)


class _ForwardHandler(logging.Handler):
    """Routes biclum log records to a :class:`_Relay` instead of the Python stderr."""

    def __init__(self, relay: _Relay):
        super().__init__(level=logging.DEBUG)
        self.relay = relay

    def emit(self, record: logging.LogRecord) -> None:  # pragma: no cover - trivial
        try:
            self.relay.log(record)
        except KeyboardInterrupt:
            raise
        except Exception:
            pass


def _coerce_overrides(kwargs: dict, preset: str) -> dict:
    """R numbers are doubles and R vectors lists: match the types of the configuration's defaults
    (``n_pcs=30`` from R arrives as 30.0; ``hidden_dims=c(64, 64)`` as a list)."""
    try:
        from .config import BiclumConfig

        defaults = BiclumConfig.from_preset(preset).flat()
    except Exception:  # pragma: no cover - unknown preset: integrate() reports it
        defaults = {}
    out = {}
    for k, v in kwargs.items():
        d = defaults.get(k)
        if isinstance(v, np.ndarray):
            v = v.tolist()
        if isinstance(d, bool) or d is None:
            pass
        elif isinstance(d, int) and isinstance(v, float) and v.is_integer():
            v = int(v)
        elif isinstance(d, tuple) and isinstance(v, (list, tuple, int, float)):
            v = tuple(int(x) if isinstance(x, float) and x.is_integer() and isinstance(d[0], int) else x
                      for x in (v if isinstance(v, (list, tuple)) else [v]))
        out[k] = v
    return out


def integrate_from_r(rna: Any, other: Any, modality: str = "atac", annotation: Any = None, seed: int = 0,
                     max_epochs: int | None = None, preset: str = "default", verbose: bool = True,
                     progress_fn: Callable | None = None, log_fn: Callable | None = None,
                     progress_interval: float = 1.0, key_added: str = "biclum", model_dir: str | None = None,
                     overrides: Mapping | None = None) -> dict:
    """Run :func:`biclum.integrate` for R and return plain arrays.

    ``rna``/``other`` are AnnData objects or the dicts R builds from dgCMatrix slots. Never raises for
    errors of the fit itself: returns ``{"ok": False, "error_class", "message", "traceback",
    "warnings"}`` so that R re-raises it as an R condition with the Python message (and any warnings
    seen before it). Python warnings (``warnings.warn`` and biclum log records at WARNING or above)
    are collected in ``"warnings"``; progress goes to ``progress_fn(stage, step, total, message)``
    at most every ``progress_interval`` seconds; INFO log records go to ``log_fn(level, message)``.
    """
    import biclum

    collected: list[str] = []
    relay = _Relay(log_fn if verbose else None, progress_fn if verbose else None, progress_interval, collected)

    def body() -> dict:
        nonlocal annotation
        if isinstance(annotation, Mapping) and "columns" in annotation:
            annotation = columns_to_frame(annotation)  # a data.frame from R
        a_rna = as_anndata(rna, "rna")
        a_other = as_anndata(other, "other")
        kwargs = _coerce_overrides(dict(overrides or {}), preset)
        integrate = biclum.integrate  # looked up at call time
        try:
            sig_params = inspect.signature(integrate).parameters
        except (TypeError, ValueError):  # pragma: no cover
            sig_params = {}
        accepts_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig_params.values())
        if verbose and progress_fn is not None and ("progress_callback" in sig_params or accepts_kw):
            kwargs["progress_callback"] = relay.progress
        if key_added != "biclum":
            kwargs["key_added"] = key_added
        res = integrate(a_rna, a_other, modality=str(modality), annotation=annotation,
                        seed=int(seed), max_epochs=None if max_epochs is None else int(max_epochs),
                        preset=str(preset), progress=False, **kwargs)
        if model_dir is not None:
            res.model.save(str(model_dir))
        uns = res.rna.uns.get(key_added, {})
        params = uns.get("params", {}) if isinstance(uns, Mapping) else {}
        return {"rna": _result_side(res.rna, key_added),
                "other": _result_side(res.other, key_added),
                "params": _plain(params),
                "biclum_version": getattr(biclum, "__version__", "unknown")}

    return _call_for_r(body, relay, collected, verbose)


def project_from_r(query: Any, model_dir: str, modality: str = "rna", annotation: Any = None,
                   verbose: bool = False, log_fn: Callable | None = None) -> dict:
    """Embed new cells with a model saved by ``BiCLUM.save`` (``BiCLUM.load(model_dir).transform``), for R.

    ``query`` is an AnnData or the dict R builds; ``modality`` is ``"rna"`` or the model's other modality
    (``"atac"``/``"protein"``). Returns ``{"ok", "warnings", "cells", "embedding"}`` (cells the model could not
    embed, e.g. without counts, are left out), or the error as :func:`integrate_from_r` does.
    """
    collected: list[str] = []
    relay = _Relay(log_fn if verbose else None, None, 1.0, collected)

    def body() -> dict:
        from .errors import BiclumInputError
        from .model import BiCLUM
        from .validation import check_modality

        model = BiCLUM.load(str(model_dir))
        if modality not in ("rna", model.modality):
            raise BiclumInputError(f"modality={modality!r}: the model in {str(model_dir)!r} embeds 'rna' and "
                                   f"{model.modality!r} cells.")
        ann = columns_to_frame(annotation) if isinstance(annotation, Mapping) else annotation
        a = as_anndata(query, "query")
        side = "rna" if modality == "rna" else "other"
        emb = np.asarray(model.transform(a, side, annotation=ann), dtype=np.float32)
        cells = a.obs_names if emb.shape[0] == a.n_obs else a.obs_names[check_modality(a, "query").keep_cells]
        return {"cells": np.asarray(cells.astype(str), dtype=object).tolist(), "embedding": np.ascontiguousarray(emb)}

    return _call_for_r(body, relay, collected, verbose)


def _call_for_r(body, relay, collected: list, verbose: bool) -> dict:
    """Run ``body()`` for R: biclum's log records go through ``relay`` (INFO only when ``verbose``), Python
    warnings and WARNING records are collected, and errors come back as values, never raised. Returns
    ``{"ok": True, "warnings", **body()}`` or ``{"ok": False, "warnings", "error_class", "error_classes",
    "message", "traceback"}``; warnings keep their order, exact duplicates dropped."""
    from ._logging import logger

    handler = _ForwardHandler(relay)
    saved_handlers, saved_level = list(logger.handlers), logger.level
    out: dict = {"ok": False, "warnings": collected}
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for h in saved_handlers:
                logger.removeHandler(h)
            logger.addHandler(handler)
            if not verbose:
                logger.setLevel(max(saved_level, logging.WARNING))
            try:
                out = {"ok": True, "warnings": collected, **body()}
            except KeyboardInterrupt:
                raise
            except Exception as e:  # returned, re-raised in R with the same message
                out = {"ok": False, "warnings": collected, "error_class": type(e).__name__,
                       "error_classes": [c.__name__ for c in type(e).__mro__ if c is not object],
                       "message": str(e), "traceback": traceback.format_exc()}
            relay.flush()
            for w in caught:
                collected.append(str(w.message))
    finally:
        logger.removeHandler(handler)
        for h in saved_handlers:
            if h not in logger.handlers:
                logger.addHandler(h)
        logger.setLevel(saved_level)
    # keep order, drop exact duplicates (a warning that was also logged)
    seen: set = set()
    out["warnings"] = [w for w in collected if not (w in seen or seen.add(w))]
    return out


# --------------------------------------------------------------------------------------------------
# downstream analyses for R (biclum.downstream and biclum.prior.gene_activity)
# --------------------------------------------------------------------------------------------------
_DOWNSTREAM_FUNCTIONS = (
    "match_cells", "transfer_labels", "assign_metacells", "aggregate_metacells", "matched_metacells",
    "nearby_pairs", "gene_peak_links", "links_vs_control", "read_network", "tf_activity", "activity_by_group",
    "compare_tf_activity", "find_markers", "cross_modal_markers", "embedding_markers", "top_markers",
    "marker_overlap", "read_gmt", "enrichment", "enrich_markers", "read_lr_table", "ligand_receptor",
    "example_path",
)


def _adata_from_r(spec: Mapping):
    """AnnData from the tagged dict R sends: the counts vectors (optional: without them an AnnData without X,
    with ``obs_names``, ``var_names``), ``obs``/``var`` columns, and ``obsm``/``varm`` dicts of matrices."""
    import anndata as ad

    if "x" in spec:
        a = as_anndata(spec, "data")
    else:
        obs_names = _as_str_list(spec.get("obs_names"))
        var_names = _as_str_list(spec.get("var_names"))
        a = ad.AnnData(obs=_frame(spec.get("obs"), obs_names), var=_frame(spec.get("var"), var_names))
    for slot in ("obsm", "varm"):
        for k, m in dict(spec.get(slot) or {}).items():
            m = np.asarray(m, dtype=np.float32)
            n = a.n_obs if slot == "obsm" else a.n_vars
            getattr(a, slot)[str(k)] = m.reshape(n, -1) if m.ndim != 2 else m
    return a


def _r_arg(v: Any) -> Any:
    """Arguments from R: tagged dicts become AnnData / DataFrames / gene lists / gene-set dicts."""
    if isinstance(v, Mapping):
        tag = v.get("__biclum__")
        if tag == "adata":
            return _adata_from_r(v)
        if tag == "frame":
            return columns_to_frame(v["frame"], index=v.get("index"))
        if tag == "strings":  # an R character vector (always a list), NA marked in "na"
            vals = _as_str_list(v.get("values"))
            na = np.asarray(v.get("na", np.zeros(len(vals), dtype=bool)), dtype=bool).ravel()
            return [None if m else x for x, m in zip(vals, na)] if na.shape[0] == len(vals) else vals
        if tag == "sets":
            return {str(k): _as_str_list(g) for k, g in zip(_as_str_list(v.get("names")), v.get("values") or [])}
        return {str(k): _r_arg(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_r_arg(x) for x in v]
    return v


def _r_value(v: Any, depth: int = 0) -> Any:
    """Results for R, tagged so that R rebuilds data.frames, dgCMatrix objects and named lists."""
    import anndata as ad

    if depth > 6:
        return str(v)
    if isinstance(v, pd.Series):
        v = v.to_frame(name=v.name if v.name is not None else "value")
    if isinstance(v, pd.DataFrame):
        attrs = {str(k): _r_value(x, depth + 1) for k, x in v.attrs.items()}
        return {"__biclum__": "frame", "frame": frame_to_columns(v), "attrs": attrs,
                "index": [str(i) for i in v.index], "columns": [str(c) for c in v.columns]}
    if isinstance(v, ad.AnnData):
        out = anndata_to_vectors(v)
        out["__biclum__"] = "adata"
        return out
    if isinstance(v, Mapping):
        return {"__biclum__": "dict", "names": [str(k) for k in v],
                "values": [_r_value(x, depth + 1) for x in v.values()]}
    if isinstance(v, (list, tuple)):
        if all(isinstance(x, str) for x in v):
            return {"__biclum__": "strings", "values": [str(x) for x in v]}
        return {"__biclum__": "list", "values": [_r_value(x, depth + 1) for x in v]}
    if isinstance(v, np.generic):
        return v.item()
    return v


def _links_from_cells(rna, atac, annotation, use_rep: str = "X_biclum", n_metacells: int | None = None,
                      k: int = 50, seed: int = 0, **link_kwargs) -> dict:
    """matched_metacells -> gene_peak_links -> links_vs_control in one call (no dense metacell matrices
    cross to R)."""
    from . import downstream as ds

    rna_mc, atac_mc = ds.matched_metacells(rna, atac, use_rep=use_rep, n_metacells=n_metacells, k=k, seed=seed)
    links = ds.gene_peak_links(rna_mc, atac_mc, annotation, seed=seed, **link_kwargs)
    return {"links": links, "summary": ds.links_vs_control(links),
            "membership": rna_mc.uns["metacell_membership"]}


def downstream_from_r(name: str, kwargs: Mapping | None = None, verbose: bool = False,
                      log_fn: Callable | None = None) -> dict:
    """Call ``biclum.downstream.<name>`` (or ``biclum.prior.gene_activity``) for R.

    ``kwargs`` may hold the tagged dicts R builds (AnnData, data.frames, gene lists). Like
    :func:`integrate_from_r` it never raises for errors of the call: it returns ``{"ok": False,
    "error_class", "error_classes", "message", "traceback", "warnings"}`` or ``{"ok": True, "value",
    "warnings"}`` with ``value`` tagged by :func:`_r_value`. Python warnings and biclum log records at
    WARNING or above are collected in ``"warnings"``; INFO records go to ``log_fn`` when ``verbose``.
    """
    collected: list[str] = []
    relay = _Relay(log_fn if verbose else None, None, 1.0, collected)

    def body() -> dict:
        if name == "gene_activity":
            from .prior import gene_activity as fn
        elif name == "links_from_cells":
            fn = _links_from_cells
        elif name in _DOWNSTREAM_FUNCTIONS:
            from . import downstream

            fn = getattr(downstream, name)
        else:
            raise ValueError(f"downstream_from_r: unknown function {name!r}")
        args = {str(k): _r_arg(v) for k, v in dict(kwargs or {}).items()}
        return {"value": _r_value(fn(**args))}

    return _call_for_r(body, relay, collected, verbose)
