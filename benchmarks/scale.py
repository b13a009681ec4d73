"""Cost versus number of cells (issue 2 acceptance 3; issue 7).

Each size runs in its own subprocess (so peak RSS is that size's): simulate paired RNA + ATAC with half the cells
per modality, run the setup stages, train a fixed number of epochs, embed all cells, and print seconds per stage,
seconds per epoch, peak RSS, FOSCTTM on a paired subsample of 5,000 cells, and the training loop's achieved
FLOP/s against this machine's measured fp32 matmul throughput.

    python benchmarks/scale.py --cells 10000 20000 40000 80000 --epochs 2
    python benchmarks/scale.py --cells 100000 300000 1000000 --backed
    python benchmarks/scale.py --cells 100000 1000000 --backed --stop-after hvg --repeats 5

``--stop-after STAGE`` ends each run when that setup stage is done (no training), and ``--repeats R`` runs each
size R times in fresh processes and reports the median per stage: the short stages (a few seconds at 1M cells)
vary by a factor of up to 2 from run to run on a virtual machine, mostly with the cost of mapping fresh memory.
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


class StageMemory:
    """Peak resident memory per stage: a thread samples VmRSS every 50 ms; ``mark(stage)`` starts a stage."""

    def __init__(self):
        import threading

        self.stage, self.peaks, self._stop = "start", {}, False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @staticmethod
    def rss_gb() -> float:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 2**20
        return float("nan")

    def _run(self):
        while not self._stop:
            r = self.rss_gb()
            self.peaks[self.stage] = max(self.peaks.get(self.stage, 0.0), r)
            time.sleep(0.05)

    def mark(self, stage: str):
        r = self.rss_gb()
        self.peaks[self.stage] = max(self.peaks.get(self.stage, 0.0), r)
        self.stage = stage
        self.peaks[stage] = max(self.peaks.get(stage, 0.0), r)

    def stop(self):
        self._stop = True
        self._thread.join()


SETUP_STAGES = {1: "validate", 2: "gene_space", 3: "hvg", 4: "preprocess", 5: "pairs", 6: "sketch"}


class _StopAfter(Exception):
    """Raised from the progress callback to end a ``--stop-after`` run when the next stage starts."""


def run_one(n_cells: int, epochs, overrides: dict, backed: bool = False, workdir: str | None = None,
            stop_after: str | None = None) -> dict:
    import numpy as np

    import biclum
    from biclum import metrics
    from biclum.datasets import simulate

    biclum.set_verbosity("INFO")
    mem = StageMemory()
    mem.mark("simulate")
    t = time.perf_counter()
    import os

    import anndata as ad
    import pandas as pd

    paths = {k: os.path.join(workdir, f"{k}_{n_cells}.h5ad") for k in ("rna", "atac")}
    paths["annotation"] = os.path.join(workdir, f"annotation_{n_cells}.tsv")
    cached = backed and all(os.path.exists(p) for p in paths.values())
    if cached:  # the same simulation (seed 0) written by an earlier --backed run
        rna, atac = ad.read_h5ad(paths["rna"], backed="r"), ad.read_h5ad(paths["atac"], backed="r")
        ann = pd.read_csv(paths["annotation"], sep="\t")
        density = {"rna_nnz_per_cell": round(rna.X.group["data"].shape[0] / rna.n_obs, 1),
                   "atac_nnz_per_cell": round(atac.X.group["data"].shape[0] / atac.n_obs, 1)}
    else:
        rna, atac, ann = simulate(n_cells // 2, modality="atac", paired=True, n_genes=2000, peaks_per_gene=3,
                                  n_distal_peaks=4000, seed=0)
        density = {"rna_nnz_per_cell": round(rna.X.nnz / rna.n_obs, 1),
                   "atac_nnz_per_cell": round(atac.X.nnz / atac.n_obs, 1)}
    sim_s = time.perf_counter() - t
    if backed and not cached:  # write, free, reopen in anndata's backed mode: the matrices stay on disk
        import gc

        mem.mark("write_h5ad")
        os.makedirs(workdir, exist_ok=True)
        rna.write_h5ad(paths["rna"])
        atac.write_h5ad(paths["atac"])
        ann.to_csv(paths["annotation"], sep="\t", index=False)
        del rna, atac
        gc.collect()
        rna, atac = ad.read_h5ad(paths["rna"], backed="r"), ad.read_h5ad(paths["atac"], backed="r")
    times: dict = {}
    clock = {"stage": None, "t": time.perf_counter()}

    def on_progress(phase, i, n, message):
        if phase != "setup":
            return
        now = time.perf_counter()
        if clock["stage"] is not None:
            times[clock["stage"]] = times.get(clock["stage"], 0.0) + now - clock["t"]
        if stop_after is not None and clock["stage"] == stop_after:
            raise _StopAfter
        clock["stage"], clock["t"] = SETUP_STAGES[i], now
        mem.mark(SETUP_STAGES[i])

    t0 = time.perf_counter()
    try:
        model = biclum.BiCLUM(rna, atac, "atac", ann, seed=0, progress_callback=on_progress, **overrides)
    except _StopAfter:
        mem.stop()
        return {"cells": n_cells, "data": "cached h5ad" if cached else "simulated", **density,
                **{f"{k}_s": round(v, 3) for k, v in times.items()}, "stopped_after": stop_after,
                **{f"rss_{k}_gb": round(v, 2) for k, v in mem.peaks.items() if k not in ("start", "end")}}
    now = time.perf_counter()
    times[clock["stage"]] = times.get(clock["stage"], 0.0) + now - clock["t"]
    mem.mark("train")
    model._callback = None
    t = time.perf_counter()
    model.fit(epochs, progress=False)
    times["train"] = time.perf_counter() - t
    mem.mark("embed")
    t = time.perf_counter()
    emb = {m: model.get_cell_embeddings(m) for m in ("rna", "other")}
    times["embed"] = time.perf_counter() - t
    total = time.perf_counter() - t0
    mem.mark("end")
    mem.stop()
    per_epoch = [h["seconds"] for h in model.history]
    steps = sum(h["steps"] for h in model.history)
    sec_step = sum(per_epoch) / steps if steps else float("nan")
    flops = step_flops(model, model.config.train.batch_size) / sec_step if steps else float("nan")
    rng = np.random.default_rng(0)
    n_sub = min(5000, len(emb["rna"]))
    sub = rng.choice(min(len(emb["rna"]), len(emb["other"])), size=n_sub, replace=False)
    fx, fy = metrics.foscttm(emb["rna"][sub], emb["other"][sub])
    mm = matmul_flops()
    return {"cells": n_cells, "simulate_s": round(sim_s, 1), "data": "cached h5ad" if cached else "simulated", **density,
            **{f"{k}_s": round(v, 2) for k, v in times.items()},
            "total_s": round(total, 1), "epochs": len(per_epoch), "steps": steps,
            "sec_per_epoch": round(float(np.median(per_epoch)), 2) if per_epoch else None, "sec_per_step": round(sec_step, 4),
            "peak_rss_gb": round(max(v for k, v in mem.peaks.items() if k not in ("simulate", "start")), 2),
            **{f"rss_{k}_gb": round(v, 2) for k, v in mem.peaks.items() if k not in ("start", "end")},
            "foscttm_5k": round(float((fx.mean() + fy.mean()) / 2), 4), "train_gflops": round(flops / 1e9, 2),
            "matmul_gflops": round(mm / 1e9, 2), "flops_fraction": round(flops / mm, 3),
            "train_status": model.train_status}


STAGES = ("validate", "gene_space", "hvg", "preprocess", "pairs", "sketch", "train", "embed")


def _median_row(runs: list) -> dict:
    """One row from repeated runs of a size: the median of every stage's seconds (the runs' range alongside)."""
    import numpy as np

    row = dict(runs[0])
    if len(runs) > 1:
        for key in runs[0]:
            if key.endswith("_s") and all(isinstance(r.get(key), (int, float)) for r in runs):
                vals = [r[key] for r in runs]
                row[key] = round(float(np.median(vals)), 3)
                row[key[:-2] + "_range"] = f"{min(vals):g}-{max(vals):g}"
        row["repeats"] = len(runs)
    return row


def _table(rows: list) -> str:
    """Stages as rows, sizes as columns: seconds and peak RSS per stage, then the totals and quality."""
    head = "| | " + " | ".join(f"{r['cells']:,} cells" for r in rows) + " |"
    lines = [head, "|---|" + "---|" * len(rows)]
    for st in STAGES:
        if not any(st + "_s" in r for r in rows):
            continue
        lines.append(f"| {st} (s / peak GB) | " + " | ".join(
            f"{r.get(st + '_s', float('nan'))}" + (f" ({r[st + '_range']})" if st + "_range" in r else "")
            + f" / {r.get('rss_' + st + '_gb', float('nan'))}" for r in rows) + " |")
    for k in ("total_s", "peak_rss_gb", "simulate_s", "rna_nnz_per_cell", "atac_nnz_per_cell", "epochs", "steps",
              "sec_per_epoch", "sec_per_step", "train_gflops", "matmul_gflops", "flops_fraction", "foscttm_5k",
              "train_status", "repeats"):
        if not any(k in r for r in rows):
            continue
        lines.append(f"| {k} | " + " | ".join(str(r.get(k, "")) for r in rows) + " |")
    out = ["\n".join(lines), ""]
    for a, b in zip(rows[:-1], rows[1:]):
        f = b["cells"] / a["cells"]
        parts = []
        for st in STAGES:
            ta, tb = a.get(st + "_s"), b.get(st + "_s")
            if ta and tb:
                parts.append(f"{st} x{tb / ta:.2f} ({tb / ta / f:.2f} of cells)")
        total = f"total x{b['total_s'] / a['total_s']:.2f}; " if "total_s" in a and "total_s" in b else ""
        out.append(f"{a['cells']:,} -> {b['cells']:,} cells (x{f:g}): {total}" + ", ".join(parts))
    return "\n".join(out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cells", type=int, nargs="+", default=[10000, 20000, 40000, 80000])
    ap.add_argument("--epochs", type=int, default=None,
                    help="epochs per size (default: the default preset's budget, see README 'Scale')")
    ap.add_argument("--backed", action="store_true",
                    help="write the simulated data to h5ad (once; later runs reuse the files in --workdir) and read "
                         "it in anndata's backed mode")
    ap.add_argument("--workdir", default="/tmp/biclum_scale", help="where --backed writes its h5ad files")
    ap.add_argument("--set", nargs="*", default=[])
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "scale.md"))
    ap.add_argument("--stop-after", choices=list(SETUP_STAGES.values()), default=None,
                    help="end each run when this setup stage is done (no training): times the setup stages alone")
    ap.add_argument("--repeats", type=int, default=1,
                    help="fresh-process runs per size; the table gives each stage's median (and the runs' range)")
    ap.add_argument("--pause", type=float, default=10.0,
                    help="seconds to wait before each run, so that it does not reuse memory the previous run freed "
                         "(a virtual machine returns freed memory to its host within seconds; memory it still "
                         "holds is mapped several times faster than fresh memory)")
    ap.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    from biclum.config import parse_overrides

    overrides = parse_overrides(args.set)
    if args.worker:
        res = run_one(args.worker, args.epochs, overrides, backed=args.backed, workdir=args.workdir,
                      stop_after=args.stop_after)
        print("RESULT " + json.dumps(res), flush=True)
        return
    rows = []
    for n in args.cells:
        cmd = [sys.executable, __file__, "--worker", str(n), "--workdir", args.workdir, "--set", *args.set]
        if args.epochs is not None:
            cmd += ["--epochs", str(args.epochs)]
        if args.backed:
            cmd.append("--backed")
        if args.stop_after:
            cmd += ["--stop-after", args.stop_after]
        runs = []
        for rep in range(args.repeats):
            time.sleep(args.pause)
            log = Path(args.workdir) / f"scale_{n}.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            with log.open("w") as err:
                out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=err, text=True)
            line = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
            if not line:
                print(log.read_text()[-3000:], file=sys.stderr)
                raise SystemExit(f"size {n} failed (log: {log})")
            runs.append(json.loads(line[0][7:]))
            print(json.dumps(runs[-1]), flush=True)
        rows.append(_median_row(runs))
    text = _table(rows)
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    cmdline = " ".join(["python benchmarks/scale.py --cells", *map(str, args.cells)]
                       + ([f"--epochs {args.epochs}"] if args.epochs is not None else [])
                       + (["--backed"] if args.backed else []) + (["--set", *args.set] if args.set else [])
                       + ([f"--stop-after {args.stop_after}"] if args.stop_after else [])
                       + ([f"--repeats {args.repeats}"] if args.repeats > 1 else []))
    with out.open("a") as fh:
        fh.write(f"\n## `{cmdline}` ({time.strftime('%Y-%m-%d %H:%M')})\n\n" + text + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
