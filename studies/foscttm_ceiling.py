"""How low can FOSCTTM go on each paired dataset? Supervised maps between biclum's encoder inputs, fitted on the
true pairs, scored on cells they never saw.

    python studies/foscttm_ceiling.py [--datasets snareseq neurips_multiome eccite reapseq neurips_cite]
        [--files NAME RNA.h5ad ATAC.h5ad ANNOTATION ...] [--seeds 0 1 2] [--threads 1] [--name NAME] [--no-write]

biclum's cell embeddings are functions of its encoder inputs: the RNA PCs and the other modality's PCs or peak
LSI that :func:`biclum.setup.prepare` computes with the defaults (``data.pcs``). Per seed, the setup runs once; then
maps between the two inputs are fitted on the pairs that an unpaired method never sees, and FOSCTTM
(:func:`biclum.metrics.foscttm_score`) is computed on the held-out cells only:

- ``ridge``: other -> RNA (sklearn RidgeCV), scored between the RNA PCs and the prediction (unit rows);
- ``ridge both ways``: both regressions, each cell as [its own input, its prediction] (unit blocks), as
  :func:`biclum.known_pairs.with_pair_map` joins the modalities;
- ``cca``: a regularised CCA (covariances shrunk by r x mean variance, r in 0.01, 0.1, 1; 10, 20 or 30 components,
  unit rows); the best of the nine on the held-out cells;
- ``mlp``: other -> RNA and RNA -> other by a one-hidden-layer MLP (256 units, sklearn MLPRegressor with early
  stopping), joined both ways as ridge is; only with at least 100 training pairs.

Splits: ``cv5``, five folds (each fold's cells held out of its maps, FOSCTTM within the fold, mean of the folds):
80% of the cells paired, the most any method is told; and ``given X%``: maps fitted on a random X% of the cells,
scored on the rest, as ``benchmarks/known_pairs.py`` scores ``paired=`` (1%, 5%, 20%; 10% is the bridge's share
in ``benchmarks/mosaic.py bridge``). Choosing the best map and CCA setting on the held-out cells makes ``best``
optimistic for these maps. It is a reference for what a target asks, not a strict bound: a more flexible map of
the same inputs could do better, and biclum told 80% of the true pairs (``benchmarks/known_pairs.py``) does. An
unpaired run below the ``cv5`` value finds without pairs a better map than these find with 80% of them.

``--files`` adds RNA + ATAC files (e.g. studies/lowdepth_proxy.py's): a name, the RNA and ATAC ``.h5ad`` and the
peaks' gene annotation. Writes benchmarks/results/NAME.md (default ``foscttm_ceiling``) with the command, commit,
threads and seeds.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
DATASETS = ["snareseq", "neurips_multiome", "eccite", "reapseq", "neurips_cite"]
FRACTIONS = (0.01, 0.05, 0.1, 0.2)  # known_pairs.py's steps and the bridge's share (mosaic_bridge.md)
CCA_SHRINK = (0.01, 0.1, 1.0)
CCA_COMPS = (10, 20, 30)
MLP_MIN_PAIRS = 100


def encoder_inputs(prep: dict, seed: int, threads: int) -> tuple[np.ndarray, np.ndarray]:
    """biclum's encoder inputs (RNA, other) with the defaults, rows matched by cell name (paired cells only)."""
    from biclum._threads import thread_limit
    from biclum.config import BiclumConfig
    from biclum.setup import prepare

    with thread_limit(threads):
        prepared = prepare(prep["rna"], prep["other"], prep["modality"], prep["annotation"],
                           BiclumConfig.from_preset("default", seed=seed))
    names = prepared.cell_names
    common = pd.Index(names["rna"]).intersection(pd.Index(names["other"]))
    rows = {m: pd.Index(names[m]).get_indexer(common) for m in ("rna", "other")}
    return (np.asarray(prepared.data.pcs["rna"], dtype=np.float64)[rows["rna"]],
            np.asarray(prepared.data.pcs["other"], dtype=np.float64)[rows["other"]])


def _foscttm(a: np.ndarray, b: np.ndarray) -> float:
    from biclum.benchmark.baselines import unit_rows
    from biclum.metrics import foscttm_score

    return foscttm_score(unit_rows(a), unit_rows(b))


def _both_ways(x, y, te, to_x, to_y) -> float:
    """FOSCTTM of [own, predicted] blocks: RNA cells [x, to_y(x)], other cells [to_x(y), y], each block unit rows."""
    from biclum.benchmark.baselines import unit_rows

    a = np.hstack([unit_rows(x[te]), unit_rows(to_y(x[te]))])
    b = np.hstack([unit_rows(to_x(y[te])), unit_rows(y[te])])
    return _foscttm(a, b)


def ridge_scores(x, y, tr, te) -> dict:
    from sklearn.linear_model import RidgeCV

    alphas = np.logspace(-2, 4, 13)
    to_x = RidgeCV(alphas=alphas).fit(y[tr], x[tr]).predict
    to_y = RidgeCV(alphas=alphas).fit(x[tr], y[tr]).predict
    return {"ridge": _foscttm(x[te], to_x(y[te])), "ridge both ways": _both_ways(x, y, te, to_x, to_y)}


def _inverse_sqrt(c: np.ndarray, shrink: float) -> np.ndarray:
    c = c + shrink * np.trace(c) / len(c) * np.eye(len(c))
    w, v = np.linalg.eigh(c)
    return (v / np.sqrt(np.maximum(w, 1e-12))) @ v.T


def cca_score(x, y, tr, te) -> float:
    """The best held-out FOSCTTM of a regularised CCA over the shrinkages and ranks (optimistic by design)."""
    mx, my = x[tr].mean(0), y[tr].mean(0)
    xc, yc = x[tr] - mx, y[tr] - my
    n = len(tr)
    best = np.inf
    for shrink in CCA_SHRINK:
        wx, wy = _inverse_sqrt(xc.T @ xc / n, shrink), _inverse_sqrt(yc.T @ yc / n, shrink)
        u, _, vt = np.linalg.svd(wx @ (xc.T @ yc / n) @ wy)
        for k in CCA_COMPS:
            k = min(k, u.shape[1], vt.shape[0])
            best = min(best, _foscttm((x[te] - mx) @ wx @ u[:, :k], (y[te] - my) @ wy @ vt[:k].T))
    return best


def mlp_score(x, y, tr, te, seed: int) -> float:
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPRegressor

    def fit(a, b):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # max_iter reached: early stopping still applies
            return MLPRegressor(hidden_layer_sizes=(256,), early_stopping=True, max_iter=300,
                                random_state=seed).fit(a[tr], b[tr]).predict

    return _both_ways(x, y, te, fit(y, x), fit(x, y))


def score_split(x, y, tr, te, seed: int) -> dict:
    scores = {**ridge_scores(x, y, tr, te), "cca": cca_score(x, y, tr, te)}
    scores["mlp"] = mlp_score(x, y, tr, te, seed) if len(tr) >= MLP_MIN_PAIRS else np.nan
    scores["best"] = np.nanmin(list(scores.values()))
    return scores


def splits(n: int, seed: int):
    """(split name, train cells, test cells): the five folds of ``cv5`` and one draw per fraction given."""
    from sklearn.model_selection import KFold

    for tr, te in KFold(5, shuffle=True, random_state=seed).split(np.arange(n)):
        yield "cv5", tr, te
    rng = np.random.default_rng(seed)
    for f in FRACTIONS:
        perm = rng.permutation(n)
        n_given = max(3, round(f * n))
        yield f"given {100 * f:g}%", np.sort(perm[:n_given]), np.sort(perm[n_given:])


def score_dataset(prep: dict, seed: int, threads: int) -> list:
    from biclum._threads import thread_limit

    x, y = encoder_inputs(prep, seed, threads)
    rows = []
    with thread_limit(threads):
        for split, tr, te in splits(len(x), seed):
            rows.append({"split": split, "train pairs": len(tr), "test cells": len(te),
                         **score_split(x, y, tr, te, seed)})
    per_split = pd.DataFrame(rows).groupby("split", sort=False).mean(numeric_only=True).reset_index()
    return per_split.assign(rna_dims=x.shape[1], other_dims=y.shape[1]).to_dict("records")


def main(argv=None) -> int:
    from biclum.benchmark.inputs import named_inputs
    from biclum.benchmark.report import (add_files_argument, markdown_table, mean_sd, publish, run_stamp,
                                         seeds_parser, source_commit)

    argv = list(sys.argv[1:] if argv is None else argv)
    p = seeds_parser(__doc__)
    p.add_argument("--datasets", nargs="*", default=DATASETS)
    add_files_argument(p)
    p.add_argument("--name", default="foscttm_ceiling")
    a = p.parse_args(argv)
    source_commit()  # read now: the file is written at the end
    t0 = time.perf_counter()
    rows = []
    for name, prep in named_inputs(a.datasets, a.files).items():
        if not prep["paired"]:
            raise SystemExit(f"{name}: not paired (FOSCTTM needs the same cells in both modalities)")
        for seed in a.seeds:
            rows += [{"dataset": name, "seed": seed, **r} for r in score_dataset(prep, seed, a.threads)]
            print(f"{name} seed {seed}: {time.perf_counter() - t0:.0f} s", flush=True)
    table = pd.DataFrame(rows)
    methods = ["ridge", "ridge both ways", "cca", "mlp", "best"]
    summary = table.groupby(["dataset", "split"], sort=False)[methods].agg(mean_sd).reset_index()
    text = (run_stamp(__file__, argv, a.threads, a.seeds) + f"; {time.perf_counter() - t0:.0f} s. FOSCTTM (lower is "
            "better) of supervised maps between biclum's encoder inputs, fitted on true pairs and scored on held-out "
            "cells only; mean ± sd over seeds (setup, folds and draws). `best` is the lowest of the maps on the "
            "held-out cells, chosen on them (optimistic for these maps; not a strict bound: a more flexible map "
            "could do better).\n\n" + markdown_table(summary, 3)
            + "\n\nPer seed (cv5: mean of the five folds):\n\n" + markdown_table(table, 4) + "\n")
    publish(text, REPO / "benchmarks" / "results" / f"{a.name}.md",
            "FOSCTTM ceilings: supervised maps on true pairs", not a.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
