"""biclum with default settings on every shared dataset, several seeds, beside the joint-PCA floor.

    python benchmarks/all_datasets.py [--datasets ...] [--seeds 0 1 2] [--threads 1] [--set KEY=VALUE ...]
                                      [--ablation | --variants default KEY=VALUE[,KEY=VALUE] ...] [--loadings]
                                      [--name all_datasets] [--no-write]

Prints one row per dataset: FOSCTTM (paired data), 5-NN label transfer both ways (labelled data), the PCA floor of
../shared/ANCHORS.md (joint PCA of the shared genes after the package's own move to gene space; its FOSCTTM and
transfer do not depend on the seed beyond rounding), wall seconds and peak RSS of biclum per run; mean and sd over
the seeds. Each biclum run is a fresh child process (its time and memory are its own). Writes
benchmarks/results/<name>.md and .csv with the command, commit, threads and seeds.

``--ablation`` runs every variant of biclum.benchmark.ABLATIONS (full model, no cell-level loss, no feature-level
loss, no reconstruction) per dataset and seed; ``--variants`` runs each listed setting side by side instead
(``default``, or overrides joined by commas, e.g. ``n_lsi=30`` or ``tau_cell=0.2,mnn_k=50``); ``--loadings``
adds the gene-loading measures of benchmarks/loadings_snare.py (RNA reconstruction correlation, marker overlap)
on labelled datasets.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
DATASETS = ("snareseq", "eccite", "reapseq", "neurips_cite", "neurips_multiome", "pbmc_small", "bmmc")


def _scores(rna_emb, other_emb, prep) -> dict:
    from biclum.metrics import foscttm_score, label_transfer_accuracy

    out = {}
    if prep["paired"]:
        out["foscttm"] = foscttm_score(rna_emb, other_emb)
    if prep["rna_labels"] is not None:
        out["transfer_rna_to_other"] = label_transfer_accuracy(rna_emb, prep["rna_labels"], other_emb,
                                                               prep["other_labels"])
        out["transfer_other_to_rna"] = label_transfer_accuracy(other_emb, prep["other_labels"], rna_emb,
                                                               prep["rna_labels"])
    return out


def _prepare(name: str) -> dict:
    from biclum.benchmark import prepare_input
    from biclum.datasets import load_shared

    rna, other, modality, annotation = load_shared(name)
    return prepare_input(rna, other, modality, annotation)


def _floor(prep: dict) -> dict:
    from biclum.benchmark import other_in_gene_space
    from biclum.benchmark.baselines import pca_floor

    r, o = pca_floor(prep["rna"], other_in_gene_space(prep), seed=0)
    return _scores(r, o, prep)


def _loadings(res, prep) -> dict:
    """Gene-loading measures of the RNA side (benchmarks/loadings_snare.py) for labelled data."""
    sys.path.insert(0, str(Path(__file__).parent))
    from loadings_snare import _log_norm, measures

    used = res.rna.var["biclum_feature"].to_numpy()
    genes = res.rna.var_names[used]
    rna = prep["rna"][res.rna.obs_names]
    labels = rna.obs["cell_type"].astype(str).to_numpy()
    out = measures(res.rna.obsm["X_biclum"], res.rna.varm["biclum_loadings"][used], _log_norm(rna, genes), labels)
    return {f"loadings_{k}": v for k, v in out.items()}


def _child(name: str, seed: int, threads: int, overrides: dict, out: str) -> None:
    """One biclum run in this (fresh) process: writes scores, wall time and peak RSS as JSON."""
    import resource

    import biclum

    with_loadings = overrides.pop("_loadings", False)

    prep = _prepare(name)
    t0 = time.perf_counter()
    res = biclum.integrate(prep["rna"], prep["other"], modality=prep["modality"], annotation=prep["annotation"],
                           seed=seed, progress=False, num_threads=threads, **overrides)
    wall = time.perf_counter() - t0
    row = {"wall_s": wall, "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
           "epochs": len(res.history), "cells_embedded": f"{res.rna.n_obs}+{res.other.n_obs}"}
    if res.rna.n_obs == prep["rna"].n_obs and res.other.n_obs == prep["other"].n_obs:  # else: cells dropped
        r = res.rna[prep["rna"].obs_names].obsm["X_biclum"]
        o = res.other[prep["other"].obs_names].obsm["X_biclum"]
        row.update(_scores(r, o, prep))
    if with_loadings and prep["rna_labels"] is not None:
        row.update(_loadings(res, prep))
    Path(out).write_text(json.dumps(row))


def _run(name: str, seed: int, threads: int, overrides: dict) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "row.json")
        cmd = [sys.executable, __file__, "--child", name, str(seed), str(threads), json.dumps(overrides), out]
        env = {**os.environ, "PYTHONWARNINGS": "ignore"}
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode != 0 or not os.path.exists(out):
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:]
            return {"status": "failed: " + " | ".join(tail)[:300]}
        return {"status": "ok", **json.loads(Path(out).read_text())}


def _summary(runs: pd.DataFrame, floors: dict) -> pd.DataFrame:
    from biclum.benchmark.report import mean_sd

    rows = []
    for (name, variant), g in runs.groupby(["dataset", "variant"], sort=False):
        ok = g[g["status"] == "ok"]
        row = {"dataset": name, "variant": variant, "runs ok": f"{len(ok)}/{len(g)}"}
        for col in ("foscttm", "transfer_rna_to_other", "transfer_other_to_rna"):
            row[col] = mean_sd(ok[col]) if col in ok else "-"
            row[f"floor {col}"] = f"{floors[name][col]:.3f}" if col in floors[name] else "-"
        for col in ("loadings_recon_corr", "loadings_marker_overlap"):
            if col in ok:
                row[col] = mean_sd(ok[col])
        row["wall_s"] = mean_sd(ok["wall_s"]) if len(ok) else "-"
        row["peak_rss_gb"] = mean_sd(ok["peak_rss_gb"]) if len(ok) else "-"
        rows.append(row)
    return pd.DataFrame(rows)


def _header(argv, seeds, threads) -> str:
    from biclum.benchmark.report import source_commit

    load = os.getloadavg()[0]
    return (f"Command: `python benchmarks/all_datasets.py {' '.join(map(shlex.quote, argv))}`  \n"
            f"Commit: {source_commit() or 'unknown'}; "
            f"date {time.strftime('%Y-%m-%d %H:%M')}; machine: {os.cpu_count()} cores, load {load:.1f} at the end; "
            f"torch threads per run: {threads}; seeds: {', '.join(map(str, seeds))}.  \n"
            "Defaults of the package (plus any --set shown in the command); paired data trained as unpaired, "
            "pairing used only to score. Mean ± sd over the seeds. The floor: joint PCA of the shared genes "
            "(biclum.benchmark.baselines.pca_floor, 30 components).\n")


def _variants(settings: list[str]) -> dict:
    """``--variants`` items as {name: overrides}: 'default' is no override; others are KEY=VALUE joined by commas."""
    from biclum.config import parse_overrides

    return {v: {} if v == "default" else parse_overrides(v.split(",")) for v in settings}


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--threads", type=int, default=1, help="torch threads per run (default 1)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="biclum config override")
    p.add_argument("--ablation", action="store_true", help="every variant of biclum.benchmark.ABLATIONS")
    p.add_argument("--variants", nargs="+", metavar="SETTING",
                   help="settings side by side: 'default' or KEY=VALUE[,KEY=VALUE]")
    p.add_argument("--loadings", action="store_true", help="gene-loading measures on labelled data")
    p.add_argument("--name", default="all_datasets")
    p.add_argument("--no-write", action="store_true", help="print only")
    a = p.parse_args(argv)
    from biclum.benchmark import ABLATIONS
    from biclum.benchmark.report import source_commit
    from biclum.config import parse_overrides

    source_commit()  # read now: the header is written at the end
    overrides = {**parse_overrides(a.set), **({"_loadings": True} if a.loadings else {})}
    if a.ablation and a.variants:
        p.error("give either --ablation or --variants")
    variants = ABLATIONS if a.ablation else _variants(a.variants or ["default"])
    rows, floors = [], {}
    for name in a.datasets:
        floors[name] = _floor(_prepare(name))
        for variant, changes in variants.items():
            for seed in a.seeds:
                row = {"dataset": name, "variant": variant, "seed": seed,
                       **_run(name, seed, a.threads, {**overrides, **changes})}
                print(json.dumps(row), flush=True)
                rows.append(row)
    runs = pd.DataFrame(rows)
    table = _summary(runs, floors)
    from biclum.benchmark import markdown_table

    text = _header(argv, a.seeds, a.threads) + "\n" + markdown_table(table, 3) + "\n\nPer run:\n\n" + \
        markdown_table(runs, 3) + "\n"
    print(text)
    if not a.no_write:
        out = REPO / "benchmarks" / "results"
        (out / f"{a.name}.md").write_text(f"# biclum on every shared dataset\n\n{text}")
        runs.to_csv(out / f"{a.name}.csv", index=False)
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 7 and sys.argv[1] == "--child":
        _child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), json.loads(sys.argv[5]), sys.argv[6])
        sys.exit(0)
    sys.exit(main())
