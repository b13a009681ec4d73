"""Batches within a modality (issue 16): biclum with and without batch keys.

    python benchmarks/batches.py [--seeds 0 1 2] [--threads 1] [--cells 1500] [--parts sim real]
                                 [--only TEXT ...] [--set KEY=VALUE ...] [--name batches] [--no-write]

(a) simulated paired RNA + ATAC and RNA + ADT (biclum.datasets.simulate, ``--cells`` per modality) with a strong
batch effect in both modalities (two batches per modality drawn independently, ``batch_effect=1``; and for ATAC
also batches shared by the paired cells), run without and with batch keys, and the same
cells without any batch effect (split at random into the same two batches; run without and with batch keys);
(b) ../shared/data neurips2021_bmmc_cite_starter (obs 'batch': two donors; cell_type) and
reapseq_pbmc_peterson2017 (obs 'batch': two samples; no labels), without and with batch keys.

Per run: FOSCTTM (all data are paired), within-modality batch ASW (scIB, per cell type when labelled) and scaled
iLISI of each modality's cells in the joint embedding, 5-NN label transfer both ways (labelled data), wall
seconds. One process, runs one after the other; mean (and sd) over the seeds. Writes
benchmarks/results/<name>.md with the command, commit, threads and seeds.
"""
from __future__ import annotations

import argparse
import shlex
import sys
import time
import warnings
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
METRICS = ("foscttm", "batch_asw_rna", "batch_asw_other", "ilisi_rna", "ilisi_other", "transfer_rna_to_other",
           "transfer_other_to_rna", "wall_s")


def _scores(rna_emb, other_emb, rna, other) -> dict:
    from biclum.metrics import foscttm_score, label_transfer_accuracy, within_modality_batch_mixing

    out = {"foscttm": foscttm_score(rna_emb, other_emb)}
    labelled = "cell_type" in rna.obs and "cell_type" in other.obs
    for m, emb, ad in (("rna", rna_emb, rna), ("other", other_emb, other)):
        mix = within_modality_batch_mixing(emb, ad.obs["batch"], ad.obs["cell_type"] if labelled else None)
        out[f"batch_asw_{m}"], out[f"ilisi_{m}"] = mix["batch_asw"], mix["ilisi"]
    if labelled:
        yr, yo = rna.obs["cell_type"].astype(str).to_numpy(), other.obs["cell_type"].astype(str).to_numpy()
        out["transfer_rna_to_other"] = label_transfer_accuracy(rna_emb, yr, other_emb, yo)
        out["transfer_other_to_rna"] = label_transfer_accuracy(other_emb, yo, rna_emb, yr)
    return out


def _run(rna, other, modality, annotation, seed, threads, batch_key, overrides) -> dict:
    import biclum

    t0 = time.perf_counter()
    res = biclum.integrate(rna, other, modality, annotation, seed=seed, progress=False, num_threads=threads,
                           rna_batch_key=batch_key, other_batch_key=batch_key, **overrides)
    wall = time.perf_counter() - t0
    r = res.rna[rna.obs_names].obsm["X_biclum"]
    o = res.other[rna.obs_names].obsm["X_biclum"]  # paired: the other modality in the RNA order
    return {**_scores(r, o, rna, other[rna.obs_names]), "wall_s": wall}


def _simulated(cells: int, seed: int):
    """(name, rna, other, modality, annotation, batch keys to run) of the simulated cases of one seed. The strong
    effect's batches are drawn independently per modality (a cell's batch says nothing of its partner's); with
    shared batches (paired cells in the same batch in both) FOSCTTM rewards keeping the batches apart, so that
    case (ATAC only) shows it."""
    from biclum.datasets import simulate

    for modality in ("atac", "protein"):
        rna, other, ann = simulate(cells, modality=modality, paired=True, seed=100 + seed, n_batches=2,
                                   batch_effect=1.0, independent_batches=True)
        yield f"sim_{modality} strong batch effect", rna, other, modality, ann, (None, "batch")
        # the same cell states and batch split, no effect (the counts' noise and, for ATAC, the genome layout are
        # another draw: the Poisson sampler's use of the random stream depends on the rates)
        clean_rna, clean_other, clean_ann = simulate(cells, modality=modality, paired=True, seed=100 + seed,
                                                     n_batches=2, batch_effect=0.0, independent_batches=True)
        yield f"sim_{modality} no batch effect", clean_rna, clean_other, modality, clean_ann, (None, "batch")
    rna, other, ann = simulate(cells, modality="atac", paired=True, seed=100 + seed, n_batches=2, batch_effect=1.0)
    yield "sim_atac strong effect, shared batches", rna, other, "atac", ann, (None, "batch")


def _real():
    from biclum.datasets import load_shared

    for name in ("neurips_cite", "reapseq"):
        rna, other, modality, ann = load_shared(name)
        other = other[rna.obs_names].copy()
        yield name, rna, other, modality, ann, (None, "batch")


def _read_log(path: str) -> list:
    """The rows a run printed (``case=... batch_key=... seed=... metric=value ...`` lines)."""
    import re

    rows = []
    for line in Path(path).read_text().splitlines():
        if line.startswith("case="):
            fields = dict(f.split("=", 1) for f in re.split(r" (?=\w+=)", line.strip()))
            rows.append({k: (v if k in ("case", "batch_key") else float(v) if "." in v else int(v))
                         for k, v in fields.items()})
    return rows


def _summary(runs: pd.DataFrame) -> pd.DataFrame:
    from biclum.benchmark.report import mean_sd

    rows = []
    for (case, key), g in runs.groupby(["case", "batch_key"], sort=False):
        row = {"case": case, "batch keys": key, "seeds": len(g)}
        for col in METRICS:
            row[col] = mean_sd(g[col] if col in g else [])
        rows.append(row)
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cells", type=int, default=1500)
    ap.add_argument("--parts", nargs="+", default=["sim", "real"], choices=["sim", "real"])
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE")
    ap.add_argument("--only", nargs="+", default=None, metavar="TEXT",
                    help="run only the cases whose name contains one of the TEXTs")
    ap.add_argument("--name", default="batches")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--from-log", default=None, metavar="LOG",
                    help="rebuild the table from the 'case=...' lines a run printed (give that run's other options)")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(REPO / "python"))
    warnings.filterwarnings("ignore")
    from biclum._logging import set_verbosity
    from biclum.benchmark.report import source_commit
    from biclum.config import parse_overrides

    source_commit()  # read now: the file is written at the end

    set_verbosity("WARNING")
    overrides = parse_overrides(args.set)
    rows = _read_log(args.from_log) if args.from_log else []
    for seed in [] if args.from_log else args.seeds:
        cases = list(_simulated(args.cells, seed)) if "sim" in args.parts else []
        cases += list(_real()) if "real" in args.parts else []
        for case, rna, other, modality, ann, keys in cases:
            if args.only and not any(t in case for t in args.only):
                continue
            for key in keys:
                row = {"case": case, "batch_key": key or "none", "seed": seed,
                       **_run(rna, other, modality, ann, seed, args.threads, key, overrides)}
                print(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()),
                      flush=True)
                rows.append(row)
    runs = pd.DataFrame(rows)
    table = _summary(runs)
    print(table.to_string(index=False))
    if not args.no_write:
        _write(table, runs, args, argv)
    return 0


def _write(table, runs, args, argv) -> None:
    write_results(args.name, "biclum with and without batch keys (issue 16)", "batches.py", argv,
                  f"threads: {args.threads}; seeds: {args.seeds}; simulated cells per modality: {args.cells}; "
                  f"overrides: {args.set or 'none'}",
                  "Mean ± sd over the seeds. batch_asw_* / ilisi_*: mixing of the batches within each modality's "
                  "cells in the joint embedding (scIB batch ASW per cell type when labelled; scaled iLISI); 1 = "
                  "mixed.", table, runs)


def write_results(name: str, title: str, script: str, argv, setting: str, legend: str, table, runs) -> None:
    """benchmarks/results/<name>.md (title, command, commit and setting, legend, the table, the runs) and .csv."""
    from biclum.benchmark.report import markdown_table, source_commit

    commit = source_commit() or "unknown"
    command = f"python benchmarks/{script} " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    out = REPO / "benchmarks" / "results" / f"{name}.md"
    text = [f"# {title}", "", f"Command: `{command}`  ", f"Commit: {commit}; {setting}", "", legend, "",
            markdown_table(table, 3), "", "## Runs", "", markdown_table(runs, 4), ""]
    out.write_text("\n".join(text))
    runs.to_csv(out.with_suffix(".csv"), index=False)
    print(f"wrote {out}")


if __name__ == "__main__":
    sys.exit(main())
