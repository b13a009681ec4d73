"""Core acceptance on SNARE-seq (issue 2, acceptance 2): end-to-end biclum on the shared data, treated as unpaired.

Prints FOSCTTM, RNA->ATAC and ATAC->RNA 5-NN label transfer, wall time and peak RSS, and appends a row to
benchmarks/results/snareseq_core.md. The pairing of cells is used only to score: the ATAC cells are shuffled
and renamed before training.

    python benchmarks/snareseq_core.py [--preset default] [--seed 0] [--max-epochs N] [--set key=value ...]
"""
from __future__ import annotations

import argparse
import datetime
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

import biclum
from biclum import metrics
from biclum.config import parse_overrides
from biclum.datasets import load_shared


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="default")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-epochs", type=int, default=None)
    ap.add_argument("--set", nargs="*", default=[], help="config overrides key=value")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "snareseq_core.md"))
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    overrides = parse_overrides(args.set)

    t0 = time.perf_counter()
    rna, atac, modality, annotation = load_shared("snareseq")
    rng = np.random.default_rng(12345)
    perm = rng.permutation(atac.n_obs)
    atac = atac[perm].copy()
    truth = np.asarray(atac.obs_names)  # the RNA cell each shuffled ATAC cell came from (scoring only)
    atac.obs_names = [f"atac_{i}" for i in range(atac.n_obs)]
    res = biclum.integrate(rna, atac, modality, annotation, seed=args.seed, preset=args.preset,
                           max_epochs=args.max_epochs, progress=False, **overrides)
    wall = time.perf_counter() - t0
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2

    a = res.rna.obsm["X_biclum"]
    b_all = res.other.obsm["X_biclum"]
    pos = {n: i for i, n in enumerate(res.other.obs_names)}
    order = np.array([pos[f"atac_{i}"] for i in range(len(truth)) if f"atac_{i}" in pos])
    rna_pos = {n: i for i, n in enumerate(res.rna.obs_names)}
    truth_kept = truth[[int(res.other.obs_names[j].split("_")[1]) for j in order]]
    keep = np.array([t in rna_pos for t in truth_kept])
    x = a[[rna_pos[t] for t in truth_kept[keep]]]
    y = b_all[order[keep]]
    fx, fy = metrics.foscttm(x, y)
    fos = float((fx.mean() + fy.mean()) / 2)
    lab_r = res.rna.obs["cell_type"].values
    lab_o = res.other.obs["cell_type"].values
    acc_ra = metrics.label_transfer_accuracy(a, lab_r, b_all, lab_o, k=5)
    acc_ar = metrics.label_transfer_accuracy(b_all, lab_o, a, lab_r, k=5)
    m = res.model
    row = {"date": datetime.date.today().isoformat(), "preset": args.preset, "seed": args.seed,
           "overrides": json.dumps(overrides), "epochs": len(m.history), "status": m.train_status,
           "foscttm": round(fos, 4), "transfer_rna_to_atac": round(acc_ra, 4), "transfer_atac_to_rna": round(acc_ar, 4),
           "wall_s": round(wall, 1), "train_s": round(m.timings.get("train", 0), 1),
           "setup_s": round(m.timings.get("setup_total", 0), 1), "peak_rss_gb": round(peak_gb, 2),
           "mnn_pairs": m.n_mnn_pairs}
    print(json.dumps(row, indent=1))
    print(f"FOSCTTM {fos:.4f} (target <= 0.15) | transfer RNA->ATAC {acc_ra:.4f} (>= 0.60) | "
          f"wall {wall:.0f} s (<= 600) | peak RSS {peak_gb:.2f} GB (<= 4)")
    if not args.no_write:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        new = not out.exists()
        with out.open("a") as fh:
            if new:
                fh.write("# SNARE-seq end to end (issue 2, acceptance 2)\n\nCommand: `python benchmarks/snareseq_core.py`"
                         " (2-core machine, CPU). Unpaired training; pairing used only to score.\n\n")
                fh.write("| " + " | ".join(row) + " |\n|" + "---|" * len(row) + "\n")
            fh.write("| " + " | ".join(str(v) for v in row.values()) + " |\n")
    return row


if __name__ == "__main__":
    main(sys.argv[1:])
