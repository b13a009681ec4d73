"""Cost versus number of cells (issue 2 acceptance 3; issue 7).

Each size runs in its own subprocess (so peak RSS is that size's): simulate paired RNA + ATAC with half the cells
per modality, run the setup stages, train a fixed number of epochs, embed all cells, and print seconds per stage,
seconds per epoch, peak RSS, FOSCTTM on a paired subsample of 5,000 cells, and the training loop's achieved
FLOP/s against this machine's measured fp32 matmul throughput.

    python benchmarks/scale.py --cells 10000 20000 40000 80000 --epochs 2
    python benchmarks/scale.py --cells 100000 300000 1000000 --epochs 3 --set batch_size=2048
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path


def matmul_flops(n: int = 2048, reps: int = 10) -> float:
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - t)


def step_flops(model, batch_size: int) -> float:
    """Analytic matmul FLOPs of one training step (forward + backward = 3 x forward)."""
    ip = model.module.init_params
    h, L, sk = ip["hidden_dims"], ip["latent_dim"], ip["sketch_dim"]

    def mlp(n_in):
        dims = [n_in, *h, L]
        return sum(a * b for a, b in zip(dims[:-1], dims[1:]))

    fwd = 0
    for m in ("rna", "other"):
        nf = ip["n_features"][m]
        fwd += 2 * batch_size * mlp(ip["n_pcs"][m])          # batch cells + partner cells
        fwd += nf * mlp(sk)                                   # all features, once per step
        fwd += batch_size * L * nf                            # decoder
    fwd += (2 * batch_size) ** 2 * L + (2 * model.config.train.feature_batch_size) ** 2 * L  # NT-Xent
    return 2 * 3 * fwd


def run_one(n_cells: int, epochs: int, overrides: dict) -> dict:
    import numpy as np

    import biclum
    from biclum import metrics
    from biclum.datasets import simulate

    biclum.set_verbosity("WARNING")
    t = time.perf_counter()
    rna, atac, ann = simulate(n_cells // 2, modality="atac", paired=True, n_genes=2000, peaks_per_gene=3,
                              n_distal_peaks=4000, seed=0)
    sim_s = time.perf_counter() - t
    t0 = time.perf_counter()
    model = biclum.BiCLUM(rna, atac, "atac", ann, seed=0, **overrides)
    model.fit(epochs, progress=False)
    t = time.perf_counter()
    emb = {m: model.get_cell_embeddings(m) for m in ("rna", "other")}
    embed_s = time.perf_counter() - t
    total = time.perf_counter() - t0
    per_epoch = [h["seconds"] for h in model.history]
    steps = model.history[-1]["steps"]
    sec_epoch = float(np.median(per_epoch[1:] if len(per_epoch) > 1 else per_epoch))
    flops = step_flops(model, model.config.train.batch_size) * steps / sec_epoch
    rng = np.random.default_rng(0)
    sub = rng.choice(min(len(emb["rna"]), len(emb["other"])), size=min(5000, len(emb["rna"])), replace=False)
    fx, fy = metrics.foscttm(emb["rna"][sub], emb["other"][sub])
    stages = {k: round(v, 2) for k, v in model.timings.items() if k != "setup_total"}
    return {"cells": n_cells, "simulate_s": round(sim_s, 1), **stages, "embed": round(embed_s, 2),
            "sec_per_epoch": round(sec_epoch, 2), "steps_per_epoch": steps, "epochs": len(per_epoch),
            "total_s": round(total, 1), "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
            "foscttm_5k": round(float((fx.mean() + fy.mean()) / 2), 4), "train_gflops": round(flops / 1e9, 2),
            "matmul_gflops": round(matmul_flops() / 1e9, 2)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cells", type=int, nargs="+", default=[10000, 20000, 40000, 80000])
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--set", nargs="*", default=[])
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "scale.md"))
    ap.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    overrides = {}
    for s in args.set:
        k, v = s.split("=", 1)
        overrides[k] = int(v) if v.isdigit() else float(v) if v.replace(".", "", 1).isdigit() else v
    if args.worker:
        print("RESULT " + json.dumps(run_one(args.worker, args.epochs, overrides)), flush=True)
        return
    rows = []
    for n in args.cells:
        cmd = [sys.executable, __file__, "--worker", str(n), "--epochs", str(args.epochs), "--set", *args.set]
        out = subprocess.run(cmd, capture_output=True, text=True)
        line = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
        if not line:
            print(out.stderr[-3000:], file=sys.stderr)
            raise SystemExit(f"size {n} failed")
        rows.append(json.loads(line[0][7:]))
        print(json.dumps(rows[-1]), flush=True)
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(str(r[k]) for k in keys) + " |" for r in rows]
    ratios = []
    for a, b in zip(rows[:-1], rows[1:]):
        f = b["cells"] / a["cells"]
        ratios.append(f"{a['cells']}->{b['cells']} (x{f:g}): epoch x{b['sec_per_epoch'] / a['sec_per_epoch']:.2f}, "
                      f"setup stages x{sum(b[k] for k in ('gene_space', 'hvg', 'preprocess', 'pairs', 'sketch')) / max(1e-9, sum(a[k] for k in ('gene_space', 'hvg', 'preprocess', 'pairs', 'sketch'))):.2f}")
    text = "\n".join(lines + [""] + ratios)
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a") as fh:
        fh.write(f"\n## `python benchmarks/scale.py --cells {' '.join(map(str, args.cells))} --epochs {args.epochs}"
                 f"{' --set ' + ' '.join(args.set) if args.set else ''}` ({time.strftime('%Y-%m-%d %H:%M')})\n\n"
                 + text + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
