"""Why batch ASW and iLISI disagree on the NeurIPS CITE starter (issue 16): signed batch silhouettes.

    python studies/batch_silhouette.py [--dataset neurips_cite] [--seeds 0 1 2] [--threads 1]

scIB's batch ASW is 1 - |silhouette of the batch labels| within each cell type: it is 1 both when a cell's own
batch and the other batch are equally close (mixed) and it falls when the silhouette moves away from 0 in EITHER
direction. The signed silhouette tells the two apart: > 0 batches apart, ~0 mixed, < 0 each cell nearer the other
batch than its own. For each seed, biclum runs without and with batch keys; per modality this prints the mean signed
silhouette over cell types, scIB's batch ASW (mean over types of the per-type mean of 1 - |s|) and the per-type
signed values. Writes benchmarks/results/batch_silhouette.md (command, commit, threads, seeds).
"""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]


def _md(df: pd.DataFrame) -> str:
    df = df.reset_index()
    head = "| " + " | ".join(map(str, df.columns)) + " |\n|" + "---|" * len(df.columns) + "\n"
    return head + "\n".join("| " + " | ".join(map(str, r)) + " |" for r in df.itertuples(index=False))


def _per_type(emb: np.ndarray, batch: np.ndarray, cell_type: np.ndarray, min_cells: int = 10) -> pd.DataFrame:
    from sklearn.metrics import silhouette_samples

    rows = []
    for ct in np.unique(cell_type):
        m = cell_type == ct
        if m.sum() < min_cells or len(np.unique(batch[m])) < 2:
            continue
        s = silhouette_samples(emb[m], batch[m])
        rows.append({"cell_type": ct, "cells": int(m.sum()), "signed": float(s.mean()), "asw": float((1 - np.abs(s)).mean())})
    return pd.DataFrame(rows)


def _run(rna, other, modality, seed, threads, key):
    import biclum

    kw = {} if key is None else {"rna_batch_key": key, "other_batch_key": key}
    res = biclum.integrate(rna, other, modality=modality, seed=seed, progress=False, num_threads=threads, **kw)
    return {"rna": res.rna[rna.obs_names].obsm["X_biclum"], "other": res.other[other.obs_names].obsm["X_biclum"]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="neurips_cite")
    p.add_argument("--batch-key", default="batch")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=str(REPO / "benchmarks/results/batch_silhouette.md"))
    a = p.parse_args(argv)
    from biclum.benchmark.report import source_commit
    from biclum.datasets import load_shared

    source_commit()  # read now: the file is written at the end

    rna, other, modality, _ = load_shared(a.dataset)
    summary, per_type = [], []
    for seed in a.seeds:
        for key in (None, a.batch_key):
            emb = _run(rna, other, modality, seed, a.threads, key)
            for side, ad in (("rna", rna), ("other", other)):
                t = _per_type(emb[side], ad.obs[a.batch_key].values, ad.obs["cell_type"].values)
                keys = "batch" if key else "none"
                summary.append({"batch_keys": keys, "modality": side, "seed": seed,
                                "signed_silhouette": t["signed"].mean(), "batch_asw": t["asw"].mean()})
                per_type.append(t.assign(batch_keys=keys, modality=side, seed=seed))
    s = pd.DataFrame(summary).groupby(["batch_keys", "modality"])[["signed_silhouette", "batch_asw"]]
    table = s.mean().round(3).astype(str) + " ± " + s.std().round(3).astype(str)
    pt = pd.concat(per_type).groupby(["batch_keys", "modality", "cell_type"])["signed"].mean().unstack(0).astype(float).round(3)
    commit = source_commit() or "unknown"
    cmd = "python " + " ".join(map(shlex.quote, [str(Path(sys.argv[0]).relative_to(REPO)
                                                     if Path(sys.argv[0]).is_absolute() else sys.argv[0]),
                                                 *(argv if argv is not None else sys.argv[1:])]))
    text = (f"# Signed batch silhouettes, {a.dataset}, without and with batch keys\n\nCommand: `{cmd}` (commit "
            f"{commit}; threads {a.threads}; seeds {', '.join(map(str, a.seeds))}; defaults otherwise).\n\n"
            f"{__doc__.split(chr(10) + chr(10))[1]}\n\nMean ± sd over seeds:\n\n{_md(table)}\n\n"
            f"Signed silhouette per cell type (mean over seeds):\n\n{_md(pt)}\n")
    Path(a.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
