"""`biclum fit` on REAP-seq with default settings, first on the quiet machine, then beside two busy processes.

Prints both wall times, their ratio (target: busy / quiet <= 2.5) and whether the embeddings of the two runs are
identical (same seed, same settings), and writes benchmarks/results/threads_busy.md.

    python benchmarks/threads_busy.py [--data ../shared/data/reapseq_pbmc_peterson2017] [--busy 2] [--seed 0]

The busy processes are `python -c "while True: pass"`. Run it on an otherwise quiet machine: the "quiet" time is
only as quiet as the machine.
"""
from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "python"))


def fit(data: Path, out: Path, seed: int) -> tuple:
    """One `biclum fit` in a fresh process; returns (wall seconds, CPU seconds, command, stderr). CPU time
    that grows under load means threads spinning or waiting on each other; equal CPU time means the slowdown is
    only the share of the cores the fit gets."""
    cmd = [sys.executable, "-m", "biclum.cli", "fit", "--rna", str(data / "rna.h5ad"), "--other",
           str(data / "adt.h5ad"), "--modality", "protein", "--out", str(out), "--seed", str(seed), "--no-umap"]
    env = {**os.environ, "PYTHONPATH": str(REPO / "python") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    t0, c0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall, c1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (c1.ru_utime - c0.ru_utime) + (c1.ru_stime - c0.ru_stime)
    if r.returncode:
        sys.exit(f"biclum fit failed (exit {r.returncode}):\n{r.stderr[-3000:]}")
    return wall, cpu, cmd, r.stderr


def embeddings(out: Path) -> dict:
    import anndata as ad

    return {m: ad.read_h5ad(out / f"{m}.h5ad").obsm["X_biclum"] for m in ("rna", "other")}


def main(argv=None) -> int:
    import numpy as np

    from biclum.datasets import shared_data_dir

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(shared_data_dir() / "reapseq_pbmc_peterson2017"))
    ap.add_argument("--busy", type=int, default=2, help="busy processes beside the second run")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--report", default=str(REPO / "benchmarks" / "results" / "threads_busy.md"))
    args = ap.parse_args(argv)
    from biclum.benchmark.report import source_commit

    source_commit()  # read now: the report is written at the end
    data = Path(args.data)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        quiet_s, quiet_cpu, cmd, log = fit(data, Path(tmp) / "quiet", args.seed)
        print(f"quiet: {quiet_s:.1f} s wall, {quiet_cpu:.1f} s CPU", flush=True)
        loops = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
        try:
            time.sleep(1.0)
            busy_s, busy_cpu, _, busy_log = fit(data, Path(tmp) / "busy", args.seed)
        finally:
            for p in loops:
                p.kill()
                p.wait()
        print(f"busy ({args.busy} loops): {busy_s:.1f} s wall, {busy_cpu:.1f} s CPU", flush=True)
        a, b = embeddings(Path(tmp) / "quiet"), embeddings(Path(tmp) / "busy")
        identical = all(np.array_equal(a[m], b[m]) for m in a)
    threads = re.findall(r"training on (\d+) CPU thread", log + busy_log)
    ratio = busy_s / quiet_s
    print(f"busy / quiet = {ratio:.2f} (target <= 2.5); embeddings identical across the two runs: {identical}; "
          f"training threads {threads}")
    shown = " ".join(Path(c).name if c.startswith("/") and c.endswith(".h5ad") else c for c in cmd[1:])
    Path(args.report).parent.mkdir(parents=True, exist_ok=True)
    Path(args.report).write_text(
        "# `biclum fit` beside busy processes (benchmarks/threads_busy.py)\n\n"
        f"- command: `python {shown}` (REAP-seq, {data}; default settings, seed {args.seed}, both runs)\n"
        f"- commit: {source_commit() or 'unknown'}; machine: {os.cpu_count()} cores; load average before the quiet "
        f"run: {load_before:.2f}\n"
        f"- training threads (from the log, quiet then busy): {', '.join(threads) or 'not logged'}; "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset (biclum sets PASSIVE)')}\n"
        f"- busy: {args.busy} x `python -c \"while True: pass\"` during the second run\n\n"
        "| run | wall s | CPU s |\n|---|---|---|\n"
        f"| quiet | {quiet_s:.1f} | {quiet_cpu:.1f} |\n| busy | {busy_s:.1f} | {busy_cpu:.1f} |\n"
        f"| busy / quiet | {ratio:.2f} | {busy_cpu / quiet_cpu:.2f} |\n\n"
        f"Embeddings (rna and other) identical across the two runs: {identical}.\n")
    print(f"wrote {args.report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
