"""Known pairs: how much do a few cells given as pairs help the alignment of the others?

    python benchmarks/known_pairs.py [--datasets snareseq eccite reapseq] [--fractions 0 0.01 0.05 0.2]
                                     [--seeds 0 1 2] [--threads 1] [--jobs 1] [--name known_pairs]
                                     [--set KEY=VALUE ...] [--no-write]

On paired shared datasets (RNA and the other modality share obs_names), per seed a random share of the cells
(``--fractions``; the subsets are nested: one permutation per seed and dataset, its first cells) is given to
``biclum.integrate(..., paired=table)`` as known pairs; the rest is treated as unpaired. Scored: FOSCTTM
(:func:`biclum.metrics.foscttm_score`) on the cells NOT given as pairs only (their true partners withheld), and on
all cells. Fraction 0 is the unpaired run (``paired=None``). Beside it, ``foscttm_cca_given``: the same cells
scored in a regularised CCA (:func:`biclum.benchmark.baselines.paired_cca`) of the model's encoder inputs (RNA PCA,
ATAC LSI, ADT PCA) fitted on the given pairs alone: what the pairs say without the unpaired cells. High fractions
(0.5, 0.8) measure what the data carries: the cells left out are scored after a fit that saw most true pairs.
biclum defaults otherwise, or ``--set`` options
(e.g. ``--set alpha_known=0``: the known pairs only as partners, as before the known-pair term).

``--jobs N`` runs N of the (dataset, seed, fraction) runs at a time, each in its own process (each run is seeded
and uses ``--threads`` threads, so the numbers are those of one process running them in turn).

Writes benchmarks/results/<name>.md (default known_pairs.md) with the command, commit, threads and seeds.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
DATASETS = ("snareseq", "eccite", "reapseq")
FRACTIONS = (0.0, 0.01, 0.05, 0.2)


def given_cells(names: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """The cells given as pairs: the first ``fraction`` of one permutation per seed (nested across fractions)."""
    order = np.random.default_rng(seed).permutation(len(names))
    return names[np.sort(order[:int(round(fraction * len(names)))])]


def run(prep: dict, fraction: float, seed: int, threads: int, overrides: dict) -> dict:
    import biclum
    from biclum.metrics import foscttm_score

    names = np.asarray(prep["rna"].obs_names, dtype=object)
    given = given_cells(names, fraction, seed)
    paired = pd.DataFrame({"rna": given, "other": given}) if len(given) else None
    t0 = time.perf_counter()
    res = biclum.integrate(prep["rna"], prep["other"], modality=prep["modality"], annotation=prep["annotation"],
                           seed=seed, progress=False, num_threads=threads, paired=paired, **overrides)
    wall = time.perf_counter() - t0
    both = pd.Index(res.rna.obs_names).intersection(res.other.obs_names)  # cells embedded on both sides
    rest = both[~both.isin(given)]
    emb = {m: getattr(res, m)[rest].obsm["X_biclum"] for m in ("rna", "other")}
    cca = cca_of_given(res.model.prepared, given, rest) if len(given) >= MIN_CCA_PAIRS else np.nan
    whole = {m: getattr(res, m)[both].obsm["X_biclum"] for m in ("rna", "other")}
    return {"fraction": fraction, "seed": seed, "pairs_given": len(given),
            "pairs_used": int(res.model.n_known_pairs), "cells_scored": len(rest),
            "foscttm_not_given": foscttm_score(emb["rna"], emb["other"]),
            "foscttm_all": foscttm_score(whole["rna"], whole["other"]), "foscttm_cca_given": cca, "wall_s": wall}


MIN_CCA_PAIRS = 20  # fewer given pairs fit no CCA reference (10 components of 50-100 dimensions)


def cca_of_given(prepared, given: np.ndarray, rest: pd.Index) -> float:
    """FOSCTTM of the cells ``rest`` in a CCA of the encoder inputs fitted on the ``given`` pairs alone."""
    from biclum.benchmark.baselines import paired_cca
    from biclum.metrics import foscttm_score

    x, pos = prepared.data.pcs, {m: pd.Index(prepared.cell_names[m]) for m in ("rna", "other")}
    fit = {m: x[m][pos[m].get_indexer(given)] for m in ("rna", "other")}
    to_rna, to_other = paired_cca(fit["rna"], fit["other"])
    return foscttm_score(to_rna(x["rna"][pos["rna"].get_indexer(rest)]),
                         to_other(x["other"][pos["other"].get_indexer(rest)]))


def _parser():
    from biclum.benchmark.report import add_name_and_set, seeds_parser

    p = seeds_parser(__doc__)
    p.add_argument("--datasets", nargs="+", default=list(DATASETS))
    p.add_argument("--fractions", nargs="+", type=float, default=list(FRACTIONS))
    p.add_argument("--jobs", type=int, default=1, help="runs at a time, each in its own process (default 1)")
    return add_name_and_set(p, "known_pairs")


_INPUTS: dict = {}  # dataset name -> prepared input, per process


def run_task(task: tuple) -> dict:
    """One (dataset, seed, fraction, threads, overrides) run; the dataset is loaded once per process."""
    from biclum.benchmark import prepare_input
    from biclum.datasets import load_shared

    name, seed, fraction, threads, overrides = task
    if name not in _INPUTS:
        rna, other, modality, annotation = load_shared(name)
        _INPUTS[name] = prepare_input(rna, other, modality, annotation, paired=True)
    row = {"dataset": name, **run(_INPUTS[name], fraction, seed, threads, overrides)}
    print(row, flush=True)
    return row


def run_all(tasks: list, jobs: int) -> list:
    """The rows of ``tasks`` in their order, ``jobs`` at a time (spawned processes)."""
    if jobs <= 1:
        return [run_task(t) for t in tasks]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        return list(pool.map(run_task, tasks))


def main(argv=None) -> int:
    from biclum.benchmark.report import markdown_table, mean_sd, publish, run_stamp, start_run

    argv, a, overrides = start_run(_parser(), argv)
    tasks = [(name, seed, fraction, a.threads, overrides) for name in a.datasets for seed in a.seeds
             for fraction in a.fractions]
    table = pd.DataFrame(run_all(tasks, a.jobs))
    summary = table.groupby(["dataset", "fraction"], sort=False).agg(
        pairs_given=("pairs_given", "first"), cells_scored=("cells_scored", "first"),
        foscttm_not_given=("foscttm_not_given", mean_sd), foscttm_all=("foscttm_all", mean_sd),
        foscttm_cca_given=("foscttm_cca_given", mean_sd),
        wall_s=("wall_s", lambda v: mean_sd(v, 1))).reset_index()
    settings = f"biclum defaults with {overrides}" if overrides else "biclum defaults"
    text = (run_stamp(__file__, argv, a.threads, a.seeds) + f"; {settings}, known pairs given with "
            "`paired=` (a random, nested share of the cells per seed; fraction 0: `paired=None`). FOSCTTM on the "
            "cells not given as pairs (lower is better, 0.5 random); foscttm_cca_given: the same cells in a CCA "
            "fitted on the given pairs alone (none under 20 pairs); mean ± sd over seeds.\n\n" +
            markdown_table(summary, 3) + "\n\nPer run:\n\n" + markdown_table(table, 4) + "\n")
    publish(text, REPO / "benchmarks" / "results" / f"{a.name}.md", "Known pairs: FOSCTTM of the cells not given",
            not a.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
