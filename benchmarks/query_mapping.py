"""Query mapping (issue 2, acceptance 4): fit on 80% of SNARE-seq's cells, save, load from disk, embed the other
20% of both modalities, and compare their FOSCTTM with the training cells'. Training treats the data as unpaired
(ATAC cells shuffled and renamed); the pairing is used only to score.

    python benchmarks/query_mapping.py [--seed 0] [--max-epochs N]
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

import biclum
from biclum import metrics
from biclum.datasets import load_shared


def foscttm(a, b):
    fx, fy = metrics.foscttm(a, b)
    return float((fx.mean() + fy.mean()) / 2)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-epochs", type=int, default=None)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "query_mapping.md"))
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    rna, atac, modality, annotation = load_shared("snareseq")
    rng = np.random.default_rng(2024)
    n = rna.n_obs
    is_query = np.zeros(n, bool)
    is_query[rng.choice(n, size=n // 5, replace=False)] = True
    train_idx, query_idx = np.flatnonzero(~is_query), np.flatnonzero(is_query)
    # unpaired training: the ATAC training cells in another order and with other names
    perm = rng.permutation(train_idx)
    atac_train = atac[perm].copy()
    atac_train.obs_names = [f"atac_{i}" for i in range(len(perm))]
    res = biclum.integrate(rna[train_idx].copy(), atac_train, modality, annotation, seed=args.seed,
                           max_epochs=args.max_epochs, progress=False)
    with tempfile.TemporaryDirectory() as tmp:
        res.model.save(tmp)
        model = biclum.BiCLUM.load(tmp)
    # training cells: RNA cell i pairs with the ATAC cell that came from it
    emb_r = res.rna.obsm["X_biclum"]
    pos_o = {name: j for j, name in enumerate(res.other.obs_names)}
    inv = np.empty(n, dtype=np.int64)
    inv[perm] = np.arange(len(perm))
    pos_r = {name: i for i, name in enumerate(res.rna.obs_names)}
    pairs = [(pos_r[rna.obs_names[c]], pos_o[f"atac_{inv[c]}"]) for c in train_idx
             if rna.obs_names[c] in pos_r and f"atac_{inv[c]}" in pos_o]
    ia, ib = map(np.array, zip(*pairs))
    f_train = foscttm(emb_r[ia], res.other.obsm["X_biclum"][ib])
    q_r = model.transform(rna[query_idx].copy(), "rna")
    q_o = model.transform(atac[query_idx].copy(), "other")
    f_query = foscttm(q_r, q_o)
    # the training cells' FOSCTTM on a same-size subsample, for a like-for-like comparison
    sub = rng.choice(len(ia), size=len(query_idx), replace=False)
    f_train_sub = foscttm(emb_r[ia[sub]], res.other.obsm["X_biclum"][ib[sub]])
    row = {"train_cells": int(len(train_idx)), "query_cells": int(len(query_idx)),
           "foscttm_train": round(f_train, 4), "foscttm_train_same_size": round(f_train_sub, 4),
           "foscttm_query": round(f_query, 4), "difference": round(f_query - f_train_sub, 4),
           "wall_s": round(time.perf_counter() - t0, 1)}
    print(json.dumps(row, indent=1))
    print(f"query FOSCTTM {f_query:.4f} vs training cells {f_train_sub:.4f} (same size; all training cells "
          f"{f_train:.4f}): |difference| {abs(f_query - f_train_sub):.4f} (target <= 0.03)")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("# Query mapping on SNARE-seq (issue 2, acceptance 4)\n\nCommand: `python benchmarks/query_mapping.py`"
                   "\n\nFit on 80% of the cells (unpaired training), model saved and loaded from disk, the other 20% "
                   "of both modalities embedded with `BiCLUM.transform`.\n\n| " + " | ".join(row) + " |\n|"
                   + "---|" * len(row) + "\n| " + " | ".join(str(v) for v in row.values()) + " |\n")


if __name__ == "__main__":
    main()
