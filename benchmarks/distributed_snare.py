"""Distributed training on SNARE-seq (issue 7, acceptance 3): one process vs two processes under torchrun (gloo).

Runs the unpaired SNARE-seq integration of ``benchmarks/snareseq_core.py`` (ATAC cells shuffled and renamed; the
pairing is used only to score) twice: once as one process with ``--threads`` torch threads (default 2) and once as
``torchrun --nproc_per_node 2`` with 1 thread per process, so both use the same cores. Prints FOSCTTM, 5-NN label
transfer and wall time for both and writes benchmarks/results/distributed_snare.md.
Acceptance: |FOSCTTM(2 processes) - FOSCTTM(1 process)| <= 0.02.

    python benchmarks/distributed_snare.py [--preset default] [--seed 0] [--max-epochs N] [--set key=value ...]
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve()
REPO = HERE.parents[1]


def worker(args) -> None:
    """One run (one process, or one rank under torchrun); rank 0 scores and writes ``args.result``."""
    t0 = time.perf_counter()
    import numpy as np

    import biclum
    from biclum import distributed, metrics
    from biclum.config import parse_overrides
    from biclum.datasets import load_shared

    overrides = parse_overrides(args.set)
    if distributed.env_rank() != 0:
        biclum.set_verbosity("WARNING")
    rna, atac, modality, annotation = load_shared("snareseq")
    perm = np.random.default_rng(12345).permutation(atac.n_obs)  # as in snareseq_core.py
    atac = atac[perm].copy()
    truth = np.asarray(atac.obs_names)  # the RNA cell each shuffled ATAC cell came from (scoring only)
    atac.obs_names = [f"atac_{i}" for i in range(atac.n_obs)]
    res = biclum.integrate(rna, atac, modality, annotation, seed=args.seed, preset=args.preset,
                           max_epochs=args.max_epochs, progress=False, **overrides)
    world = distributed.world_size()
    distributed.destroy()
    if distributed.env_rank() != 0:
        return
    wall = time.perf_counter() - t0
    a, b = res.rna.obsm["X_biclum"], res.other.obsm["X_biclum"]
    rna_pos = {n: i for i, n in enumerate(res.rna.obs_names)}
    other_idx = np.array([int(n.split("_")[1]) for n in res.other.obs_names])
    keep = np.array([truth[j] in rna_pos for j in other_idx])
    x = a[[rna_pos[truth[j]] for j in other_idx[keep]]]
    fx, fy = metrics.foscttm(x, b[keep])
    lab_r, lab_o = res.rna.obs["cell_type"].values, res.other.obs["cell_type"].values
    m = res.model
    row = {"processes": world, "threads_per_process": int(os.environ.get("OMP_NUM_THREADS", "0") or 0),
           "epochs": len(m.history), "status": m.train_status,
           "foscttm": round(float((fx.mean() + fy.mean()) / 2), 4),
           "transfer_rna_to_atac": round(metrics.label_transfer_accuracy(a, lab_r, b, lab_o, k=5), 4),
           "transfer_atac_to_rna": round(metrics.label_transfer_accuracy(b, lab_o, a, lab_r, k=5), 4),
           "wall_s": round(wall, 1), "setup_s": round(m.timings.get("setup_total", 0), 1),
           "train_s": round(m.timings.get("train", 0), 1),
           "s_per_epoch": round(m.timings.get("train", 0) / max(len(m.history), 1), 2),
           "load_avg_1min": round(os.getloadavg()[0], 1)}  # the machine is shared: other jobs slow the timings
    Path(args.result).write_text(json.dumps(row))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(cmd, threads: int, result: Path) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True)
    total = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}")
    row = json.loads(result.read_text())
    row["process_wall_s"] = round(total, 1)  # launch to exit, including torchrun and interpreter start-up
    return row


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="default")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-epochs", type=int, default=None)
    ap.add_argument("--set", nargs="*", default=[], help="config overrides key=value")
    ap.add_argument("--threads", type=int, default=2, help="torch threads of the one-process run")
    ap.add_argument("--nproc", type=int, default=2, help="processes of the torchrun run (1 thread each)")
    ap.add_argument("--out", default=str(HERE.parent / "results" / "distributed_snare.md"))
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker(args)

    common = ["--worker", "--preset", args.preset, "--seed", str(args.seed)]
    if args.max_epochs is not None:
        common += ["--max-epochs", str(args.max_epochs)]
    if args.set:
        common += ["--set", *args.set]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        r1 = Path(tmp) / "one.json"
        rows.append(_run([sys.executable, str(HERE), *common, "--result", str(r1)], args.threads, r1))
        print(json.dumps(rows[-1]), flush=True)
        r2 = Path(tmp) / "two.json"
        torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(args.nproc),
                    "--master_addr", "127.0.0.1", "--master_port", str(_free_port())]
        rows.append(_run([*torchrun, str(HERE), *common, "--result", str(r2)], 1, r2))
        print(json.dumps(rows[-1]), flush=True)
    diff = rows[1]["foscttm"] - rows[0]["foscttm"]
    verdict = "PASS" if abs(diff) <= 0.02 else "FAIL"
    print(f"FOSCTTM 1 process {rows[0]['foscttm']:.4f} vs {args.nproc} processes {rows[1]['foscttm']:.4f} "
          f"(diff {diff:+.4f}, acceptance |diff| <= 0.02: {verdict}) | transfer RNA->ATAC "
          f"{rows[0]['transfer_rna_to_atac']:.4f} vs {rows[1]['transfer_rna_to_atac']:.4f} | wall "
          f"{rows[0]['wall_s']:.0f} s vs {rows[1]['wall_s']:.0f} s")
    if not args.no_write:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        cmd = "python benchmarks/distributed_snare.py" + "".join(
            f" {a}" for a in (argv if argv is not None else sys.argv[1:]))
        new = not out.exists()
        with out.open("a") as fh:
            if new:
                fh.write("# SNARE-seq: one process vs torchrun (issue 7, acceptance 3)\n\n"
                         "Unpaired training as in `benchmarks/snareseq_core.py` (pairing used only to score). The "
                         "one-process run uses `--threads` torch threads (default 2); the torchrun run (`torchrun --nproc_per_node 2`, "
                         "gloo) 1 thread per process, on the same 2-core CPU machine (shared with other jobs: "
                         "`load_avg_1min` at the end of the run; with load >= cores, 2 spinning OpenMP threads slow "
                         "one process down a lot). Each rank runs the setup "
                         "(preprocessing, MNN pairs) itself; the global batch equals the one-process batch "
                         "(`batch_size // world_size` cells per rank and step). Acceptance: |FOSCTTM difference| "
                         "<= 0.02. `wall_s`: data loading to embeddings in the (rank 0) process; "
                         "`process_wall_s`: launch to exit.\n")
            keys = ["processes", "threads_per_process", "epochs", "status", "foscttm", "transfer_rna_to_atac",
                    "transfer_atac_to_rna", "wall_s", "setup_s", "train_s", "s_per_epoch", "process_wall_s",
                    "load_avg_1min"]
            fh.write(f"\n{datetime.date.today().isoformat()}, command: `{cmd.strip()}` "
                     f"(FOSCTTM difference {diff:+.4f}: {verdict})\n\n")
            fh.write("| " + " | ".join(keys) + " |\n|" + "---|" * len(keys) + "\n")
            for row in rows:
                fh.write("| " + " | ".join(str(row.get(k, "")) for k in keys) + " |\n")
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
