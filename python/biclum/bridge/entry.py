"""The calls R makes: integrate, mosaic (a multiome bridge), project (query mapping), downstream analyses,
runtime versions.

Each takes the tagged specs of :mod:`biclum.bridge.codec` (or AnnData objects) and returns, through
:func:`biclum.bridge.relay.call_for_r`, ``{"ok", "warnings", "value"}`` with ``value`` encoded by
:func:`~biclum.bridge.codec.encode`, or the error as a value. R does accessors and conversions only:
what the results hold (which features get loadings, which cells are embedded) is decided here.
"""
from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Callable, Mapping, Optional

import numpy as np
import pandas as pd

from .codec import Reduction, as_anndata, decode, encode, reduction_from_result
from .relay import Relay, call_for_r

__all__ = ["runtime_info", "integrate_from_r", "mosaic_from_r", "project_from_r", "downstream_from_r"]


def runtime_info() -> dict:
    """Versions R checks before using the bridge. R calls it first, so torch is imported here, in the way that
    keeps its own BLAS inside R (:func:`biclum.bridge.torch_import.import_torch`)."""
    import sys

    import biclum

    from .torch_import import import_torch

    return {"python": sys.executable, "python_version": sys.version.split()[0],
            "numpy": np.__version__, "scipy": __import__("scipy").__version__,
            "biclum": getattr(biclum, "__version__", "unknown"), "torch_import": import_torch()}


def _coerce_overrides(kwargs: dict, preset: str) -> dict:
    """R numbers are doubles and R vectors lists: match the types of the configuration's defaults
    (``n_pcs=30`` from R arrives as 30.0; ``hidden_dims=c(64, 64)`` as a list)."""
    try:
        from ..config import BiclumConfig

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


def _progress_kwargs(integrate: Callable, relay: Relay) -> dict:
    """``progress_callback=relay.progress`` when R asked for progress and ``integrate`` takes it."""
    if relay.progress_fn is None:
        return {}
    try:
        params = inspect.signature(integrate).parameters
    except (TypeError, ValueError):  # pragma: no cover
        params = {}
    takes = "progress_callback" in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    return {"progress_callback": relay.progress} if takes else {}


def integrate_from_r(rna: Any, other: Any, modality: str = "atac", annotation: Any = None, seed: int = 0,
                     max_epochs: Optional[int] = None, preset: str = "default", verbose: bool = True,
                     progress_fn: Optional[Callable] = None, log_fn: Optional[Callable] = None,
                     progress_interval: float = 1.0, key_added: str = "biclum", model_dir: Optional[str] = None,
                     overrides: Optional[Mapping] = None, paired: Any = None) -> dict:
    """Run :func:`biclum.integrate` for R.

    ``rna``/``other`` are AnnData objects or ``"adata"`` specs; ``annotation`` a path, a DataFrame or a
    ``"frame"`` spec (its columns as R had them: :func:`biclum.prior.read_annotation` tidies them); ``paired``
    the known pairs (``True``, ``"shared"``, a path or a ``"frame"`` spec of (RNA cell, other cell)). The value
    is ``{"rna": Reduction, "other": Reduction, "params", "biclum_version"}``. Progress goes to
    ``progress_fn(stage, step, total, message)`` at most every ``progress_interval`` seconds and INFO log
    records to ``log_fn(level, message)`` (both only when ``verbose``).
    """
    import biclum

    relay = Relay(log_fn if verbose else None, progress_fn if verbose else None, progress_interval)

    def body() -> dict:
        integrate = biclum.integrate  # looked up at call time
        kwargs = {**_coerce_overrides(dict(overrides or {}), preset), **_progress_kwargs(integrate, relay)}
        if key_added != "biclum":
            kwargs["key_added"] = key_added
        if paired is not None:
            kwargs["paired"] = decode(paired)
        res = integrate(as_anndata(decode(rna), "rna"), as_anndata(decode(other), "other"), modality=str(modality),
                        annotation=decode(annotation), seed=int(seed),
                        max_epochs=None if max_epochs is None else int(max_epochs), preset=str(preset),
                        progress=False, **kwargs)
        if model_dir is not None:
            res.model.save(str(model_dir))
        uns = res.rna.uns.get(key_added, {})
        return {"value": encode({
            "rna": reduction_from_result(res.rna, key_added), "other": reduction_from_result(res.other, key_added),
            "params": uns.get("params", {}) if isinstance(uns, Mapping) else {},
            "biclum_version": getattr(biclum, "__version__", "unknown")})}

    return call_for_r(body, relay, verbose)


def _mosaic_reduction(res, name: str, modality: str, key: str) -> Reduction:
    """The :class:`Reduction` of one dataset's modality in a :class:`biclum.mosaic.MosaicResult`: RNA with its
    genes' loadings (``varm``), another modality with its model's gene-space feature embeddings in the one space
    (rotated as its cells are); the MNN-partner flag of its cells in their model."""
    from ..mosaic import SEP

    adata = res.datasets[name][modality]
    model_mod = modality if modality != "rna" else next(iter(res.models))
    model, side = res.models[model_mod], "rna" if modality == "rna" else "other"
    flags = pd.Series(np.asarray(model.pair_flags[side], dtype=bool), index=list(model.cell_names[side]))
    tagged = [f"{name}{SEP}{c}" for c in adata.obs_names.astype(str)]
    partner = flags.reindex(tagged).fillna(False).to_numpy(dtype=bool)
    if modality == "rna":
        red = reduction_from_result(adata, key)
        return dataclasses.replace(red, has_mnn_partner=partner)
    fe = model.get_feature_embeddings("other")
    return Reduction(cells=adata.obs_names.astype(str).tolist(), embedding=np.asarray(adata.obsm[f"X_{key}"]),
                     features=fe.index.astype(str).tolist(), loadings=fe.values @ res.rotations[modality],
                     has_mnn_partner=partner)


def mosaic_from_r(datasets: Any, annotation: Any = None, seed: int = 0, max_epochs: Optional[int] = None,
                  preset: str = "default", verbose: bool = True, log_fn: Optional[Callable] = None,
                  key_added: str = "biclum", model_dir: Optional[str] = None,
                  overrides: Optional[Mapping] = None) -> dict:
    """Run :func:`biclum.integrate_mosaic` for R (``RunBiCLUM(rna, other, bridge = )``).

    ``datasets``: ``{name: {modality: "adata" spec}}`` (e.g. reference: rna, query: atac, bridge: rna + atac);
    ``annotation`` as in :func:`integrate_from_r`; ``model_dir``: where the model of the (one) non-RNA modality
    is saved. The value is ``{"datasets": {name: {modality: Reduction}}, "params", "biclum_version"}``; errors
    come back as :func:`integrate_from_r`'s do.
    """
    import biclum

    relay = Relay(log_fn if verbose else None)

    def body() -> dict:
        data = {str(name): {str(m): as_anndata(decode(spec), f"{name} {m}") for m, spec in dict(mods).items()}
                for name, mods in dict(datasets).items()}
        res = biclum.integrate_mosaic(data, decode(annotation), seed=int(seed),
                                      max_epochs=None if max_epochs is None else int(max_epochs),
                                      preset=str(preset), progress=False, key_added=key_added,
                                      **_coerce_overrides(dict(overrides or {}), preset))
        first = next(iter(res.models.values()))
        if model_dir is not None:
            first.save(str(model_dir))
        return {"value": encode({
            "datasets": {name: {m: _mosaic_reduction(res, name, m, key_added) for m in mods}
                         for name, mods in res.datasets.items()},
            "params": {**first.params_for_uns(), "mosaic_models": list(res.models)},
            "biclum_version": getattr(biclum, "__version__", "unknown")})}

    return call_for_r(body, relay, verbose)


def project_from_r(query: Any, model_dir: str, modality: str = "rna", annotation: Any = None,
                   batch_key: Optional[str] = None, verbose: bool = False, log_fn: Optional[Callable] = None) -> dict:
    """Embed new cells with a model saved by ``BiCLUM.save`` (``BiCLUM.load(model_dir).transform``), for R.

    ``query`` is an AnnData or an ``"adata"`` spec; ``modality`` is ``"rna"`` or the model's other modality
    (``"atac"``/``"protein"``); ``batch_key`` the query's obs column of batches (``transform(batch_key=)``).
    The value is a :class:`Reduction` without loadings of the cells embedded (cells the model could not embed,
    e.g. without counts, are left out); errors come back as :func:`integrate_from_r`'s do.
    """
    relay = Relay(log_fn if verbose else None)

    def body() -> dict:
        from ..errors import BiclumInputError
        from ..model import BiCLUM
        from ..validation import check_modality

        model = BiCLUM.load(str(model_dir))
        if modality not in ("rna", model.modality):
            raise BiclumInputError(f"modality={modality!r}: the model in {str(model_dir)!r} embeds 'rna' and "
                                   f"{model.modality!r} cells.")
        a = as_anndata(decode(query), "query")
        side = "rna" if modality == "rna" else "other"
        emb = np.asarray(model.transform(a, side, annotation=decode(annotation),
                                         batch_key=None if batch_key is None else str(batch_key)))
        cells = a.obs_names if emb.shape[0] == a.n_obs else a.obs_names[check_modality(a, "query").keep_cells]
        return {"value": encode(Reduction(cells=cells.astype(str).tolist(), embedding=emb))}

    return call_for_r(body, relay, verbose)


# --------------------------------------------------------------------------------------------------
# downstream analyses (biclum.downstream and biclum.prior.gene_activity)
# --------------------------------------------------------------------------------------------------
_DOWNSTREAM_FUNCTIONS = (
    "match_cells", "transfer_labels", "assign_metacells", "aggregate_metacells", "matched_metacells",
    "nearby_pairs", "gene_peak_links", "links_vs_control", "read_network", "tf_activity", "activity_by_group",
    "compare_tf_activity", "find_markers", "cross_modal_markers", "embedding_markers", "top_markers",
    "marker_overlap", "read_gmt", "enrichment", "enrich_markers", "read_lr_table", "ligand_receptor",
    "example_path",
)


def _links_from_cells(rna, atac, annotation, use_rep: str = "X_biclum", n_metacells: Optional[int] = None,
                      k: int = 50, seed: int = 0, **link_kwargs) -> dict:
    """matched_metacells -> gene_peak_links -> links_vs_control in one call (no dense metacell matrices
    cross to R)."""
    from .. import downstream as ds

    rna_mc, atac_mc = ds.matched_metacells(rna, atac, use_rep=use_rep, n_metacells=n_metacells, k=k, seed=seed)
    links = ds.gene_peak_links(rna_mc, atac_mc, annotation, seed=seed, **link_kwargs)
    return {"links": links, "summary": ds.links_vs_control(links),
            "membership": rna_mc.uns["metacell_membership"]}


def _downstream_function(name: str) -> Callable:
    if name == "gene_activity":
        from ..prior import gene_activity

        return gene_activity
    if name == "links_from_cells":
        return _links_from_cells
    if name in _DOWNSTREAM_FUNCTIONS:
        from .. import downstream

        return getattr(downstream, name)
    raise ValueError(f"downstream_from_r: unknown function {name!r}")


def downstream_from_r(name: str, kwargs: Optional[Mapping] = None, verbose: bool = False,
                      log_fn: Optional[Callable] = None) -> dict:
    """Call ``biclum.downstream.<name>`` (or ``biclum.prior.gene_activity``) for R with the decoded ``kwargs``;
    returns the encoded value, or the error, as :func:`integrate_from_r` does."""
    relay = Relay(log_fn if verbose else None)

    def body() -> dict:
        fn = _downstream_function(name)
        return {"value": encode(fn(**{str(k): decode(v) for k, v in dict(kwargs or {}).items()}))}

    return call_for_r(body, relay, verbose)
