"""How many LSI components of the ATAC peaks carry cell types: 5-NN accuracy within the ATAC cells.

    python studies/lsi_components.py [--datasets snareseq pbmc_small neurips_multiome] [--dims 10 15 20 30 50 75 100]

For each labelled ATAC dataset of ../shared/data, the peaks' LSI as biclum computes it (biclum.preprocessing.PeakLSI:
TF-IDF, standardised, randomised SVD, first component dropped, rows L2-normalised) is fitted once with the largest
number of components; for each number of leading components, every ATAC cell's label is predicted from its 5
nearest ATAC neighbours (cosine, leave-one-out). This is the information the ATAC cell encoder starts from. It
peaks at 20-30 components on SNARE-seq, yet the integration is better with more: ``n_lsi`` 30 instead of the
default 100 gives FOSCTTM 0.108 and transfer 0.663 (not 0.095 / 0.683), 200 gives 0.094 / 0.681
(benchmarks/results/snare_trials.md), so the default stays ``n_pcs``'s rule. Writes
benchmarks/results/lsi_components.md (command, commit, threads, seed).
"""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def knn_accuracy(x: np.ndarray, labels: np.ndarray, k: int = 5) -> float:
    from sklearn.neighbors import NearestNeighbors

    idx = NearestNeighbors(n_neighbors=k + 1, metric="cosine").fit(x).kneighbors(x, return_distance=False)[:, 1:]
    votes = labels[idx]
    pred = np.array([max(set(row), key=list(row).count) for row in votes])
    return float(np.mean(pred == labels))


def accuracies(name: str, dims, seed: int = 0) -> dict:
    from biclum.datasets import load_shared
    from biclum.preprocessing import PeakLSI, as_csr32

    _, atac, _, _ = load_shared(name)
    peaks = as_csr32(atac.X)
    lsi, _ = PeakLSI.fit(peaks, np.asarray(atac.var_names), max(dims), seed=seed, max_cells=100_000)
    labels = atac.obs["cell_type"].to_numpy()
    out = {}
    for d in dims:
        sub = PeakLSI(lsi.peaks, lsi.idf, lsi.mean, lsi.std, lsi.components[:, :d])
        out[d] = knn_accuracy(sub.transform(peaks, atac.var_names), labels)
    return {"cells": atac.n_obs, "peaks": atac.n_vars, **out}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", nargs="+", default=["snareseq", "pbmc_small", "neurips_multiome"])
    p.add_argument("--dims", type=int, nargs="+", default=[10, 15, 20, 30, 50, 75, 100])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(REPO / "benchmarks/results/lsi_components.md"))
    a = p.parse_args(argv)
    from biclum.benchmark.report import source_commit

    source_commit()  # read now: the file is written at the end
    rows = {d: accuracies(d, a.dims, a.seed) for d in a.datasets}
    head = ["dataset", "cells", "peaks", *[f"{d} comps" for d in a.dims]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in rows.items():
        lines.append("| " + " | ".join([name, str(r["cells"]), str(r["peaks"]), *[f"{r[d]:.3f}" for d in a.dims]]) + " |")
    commit = source_commit() or "unknown"
    cmd = " ".join(["python studies/lsi_components.py", *map(shlex.quote, sys.argv[1:] if argv is None else argv)])
    text = (f"# 5-NN cell-type accuracy within the ATAC cells by number of LSI components\n\nCommand: `{cmd}` "
            f"(commit {commit}; threads: OMP_NUM_THREADS={__import__('os').environ.get('OMP_NUM_THREADS', 'unset')}; "
            f"seed {a.seed}; deterministic apart from the randomised SVD's seed).\n\n"
            f"{__doc__.split(chr(10) + chr(10))[1]}\n\n" + "\n".join(lines) + "\n")
    Path(a.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
