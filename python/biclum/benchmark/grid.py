"""``biclum ablation`` and ``biclum sensitivity``: biclum with each loss switched off, and one hyperparameter at a
time varied around the defaults; one row per configuration, every metric, and a figure."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from .._logging import logger
from .harness import _row, _score, run_method
from .inputs import BenchmarkInput
from .report import source_commit, write_table

#: the ablations of the BiCLUM paper: config overrides of :func:`biclum.integrate`
ABLATIONS: Dict[str, Dict[str, float]] = {
    "full": {},
    "no_cell_loss": {"alpha": 0.0},
    "no_feature_loss": {"beta": 0.0},
    "no_reconstruction": {"gamma_rna": 0.0, "gamma_other": 0.0},
}

#: one-at-a-time sensitivity grid (each parameter varied around the defaults, the others at their defaults)
SENSITIVITY_GRID: Dict[str, List[float]] = {
    "tau_cell": [0.05, 0.1, 0.2, 0.5, 1.0],
    "tau_feature": [0.05, 0.1, 0.2, 0.5, 1.0],
    "alpha": [1e2, 1e3, 1e4, 1e5],
    "beta": [1e2, 1e3, 1e4, 1e5],
    "mnn_k": [20, 50, 100, 200, 400],
    "latent_dim": [16, 32, 50, 64, 128],
}


def _grid_runs(kind: str, variants: Sequence[Tuple[str, dict]], rna, other=None, modality: Optional[str] = None,
               annotation=None, *, label_key: Optional[str] = "cell_type", paired: Optional[bool] = None,
               seed: int = 0, max_epochs: Optional[int] = None, base_config: Optional[dict] = None, nmi: bool = True,
               isolate: bool = True, timeout: Optional[float] = None, out_dir=None, command: Optional[str] = None,
               name: str = "data", table_name: Optional[str] = None) -> pd.DataFrame:
    """biclum once per variant (``base_config`` + the variant's overrides), one row each; the options of
    :func:`run_ablation` and :func:`run_sensitivity`. With ``out_dir``: ``<table_name>.md``, ``.csv`` and ``.png``
    (``table_name`` defaults to ``kind``)."""
    ds = rna if isinstance(rna, BenchmarkInput) else (
        BenchmarkInput(rna) if isinstance(rna, str) else
        BenchmarkInput(name, rna, other, modality, annotation, label_key, paired))
    prep = ds.load()
    source_commit()  # the code that runs, read now (the table is written at the end)
    rows = []
    for label, overrides in variants:
        cfg = {**(base_config or {}), **overrides}
        res = run_method(ds, "biclum", seed=seed, max_epochs=max_epochs, config=cfg, isolate=isolate,
                         timeout=timeout)
        scores = _score(prep, res, nmi, seed)
        rows.append(_row(ds.name, "biclum", res, scores, variant=label,
                         overrides=json.dumps(overrides, sort_keys=True)))
        logger.info("%s: %s", label, res["status"])
    table = pd.DataFrame(rows)
    if kind == "sensitivity":
        table.insert(3, "parameter", [next(iter(json.loads(o))) for o in table["overrides"]])
        table.insert(4, "value", [next(iter(json.loads(o).values())) for o in table["overrides"]])
    if out_dir is not None:
        stem = Path(out_dir) / (table_name or kind)
        stem.parent.mkdir(parents=True, exist_ok=True)
        write_table(table, stem, title=f"biclum {kind}", command=command)
        (_plot_ablation if kind == "ablation" else _plot_sensitivity)(table, stem.with_suffix(".png"))
    return table


def run_ablation(rna, other=None, modality: Optional[str] = None, annotation=None, *,
                 grid: Optional[Mapping[str, dict]] = None, **options) -> pd.DataFrame:
    """biclum with each loss switched off: one row per ablation, every metric.

    ``rna`` is an AnnData (then ``other``, ``modality``, ``annotation`` as :func:`biclum.integrate`), a shared
    dataset name or a :class:`BenchmarkInput`. ``grid``: ``{row name: config overrides}``, default
    :data:`ABLATIONS` (full model; ``alpha=0``: no cell-level contrastive loss; ``beta=0``: no feature-level loss;
    ``gamma_rna=gamma_other=0``: no reconstruction). ``options`` (:func:`_grid_runs`): ``label_key``, ``paired``,
    ``seed``, ``max_epochs``, ``base_config`` (applies to every row), ``nmi``, ``isolate``, ``timeout``,
    ``out_dir``, ``command``, ``name``, ``table_name``. With ``out_dir``: ``<table_name>.md``, ``.csv`` and
    ``.png`` (a bar chart of the main metrics per ablation).
    """
    grid = dict(ABLATIONS if grid is None else grid)
    return _grid_runs("ablation", list(grid.items()), rna, other, modality, annotation, **options)


def run_sensitivity(rna, other=None, modality: Optional[str] = None, annotation=None, *,
                    grid: Optional[Mapping[str, Sequence]] = None, **options) -> pd.DataFrame:
    """One-at-a-time sensitivity of biclum to its hyperparameters: one row per (parameter, value).

    ``grid``: ``{config key: [values]}``, default :data:`SENSITIVITY_GRID` (tau_cell, tau_feature, alpha, beta,
    mnn_k, latent_dim); each value is run with the other parameters at their defaults (plus ``base_config``).
    Inputs and ``options`` as :func:`run_ablation`. With ``out_dir``: ``<table_name>.md``, ``.csv`` and ``.png``
    (one panel per parameter: the main metrics against its value).
    """
    grid = dict(SENSITIVITY_GRID if grid is None else grid)
    variants = [(f"{k}={v:g}" if isinstance(v, (int, float)) else f"{k}={v}", {k: v})
                for k, values in grid.items() for v in values]
    return _grid_runs("sensitivity", variants, rna, other, modality, annotation, **options)


_PLOT_METRICS = ("foscttm", "transfer_rna_to_other", "transfer_other_to_rna", "map", "asw_celltype", "nmi",
                 "omics_mixing", "biology_conservation")


def _plot_ablation(table: pd.DataFrame, path) -> None:
    from ..plotting import _plt

    plt = _plt()

    mets = [m for m in _PLOT_METRICS if m in table and table[m].notna().any()]
    if not mets:
        return
    fig, ax = plt.subplots(figsize=(1.2 * len(mets) + 3, 4))
    w = 0.8 / max(len(table), 1)
    for i, (_, row) in enumerate(table.iterrows()):
        ax.bar(np.arange(len(mets)) + i * w, [row[m] for m in mets], w, label=row["variant"])
    ax.set_xticks(np.arange(len(mets)) + 0.4 - w / 2)
    ax.set_xticklabels(mets, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("score (FOSCTTM: lower is better)")
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _plot_sensitivity(table: pd.DataFrame, path) -> None:
    from ..plotting import _plt

    plt = _plt()

    params = list(pd.unique(table["parameter"]))
    mets = [m for m in _PLOT_METRICS if m in table and table[m].notna().any()]
    if not params or not mets:
        return
    ncol = min(3, len(params))
    nrow = int(np.ceil(len(params) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.3 * nrow), squeeze=False)
    for ax, p in zip(axes.ravel(), params):
        sub = table[table["parameter"] == p].sort_values("value")
        for m in mets:
            ax.plot(sub["value"].astype(float), sub[m], marker="o", label=m)
        if p in ("alpha", "beta", "tau_cell", "tau_feature", "mnn_k"):
            ax.set_xscale("log")
        ax.set_title(p, fontsize=9)
    for ax in axes.ravel()[len(params):]:
        ax.axis("off")
    axes[0, 0].legend(fontsize=6, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


