"""``biclum benchmark``, ``biclum ablation``, ``biclum sensitivity``: their options, read from ``argv`` lists."""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import List, Optional, Sequence

import pandas as pd

from .._logging import logger
from ..config import parse_overrides
from .grid import SENSITIVITY_GRID, run_ablation, run_sensitivity
from .harness import run_benchmark
from .inputs import BenchmarkInput
from .methods import METHODS, SCGLUE_EPOCHS
from .report import markdown_table, table_notes

USAGE_HINT = ("give the data: --datasets NAME ... (shared datasets: snareseq, eccite, pbmc_small, ...) or your own "
              "files: --rna RNA.h5ad --other OTHER.h5ad --modality atac|protein [--annotation GENES]")


def _common_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-epochs", type=int, default=None, help="biclum epoch budget (default: the preset's)")
    p.add_argument("--config", action="append", metavar="KEY=VALUE", help="biclum config override (repeatable)")
    p.add_argument("--no-nmi", action="store_true", help="skip NMI (20 Leiden runs per method)")
    p.add_argument("--no-isolate", action="store_true",
                   help="run methods in this process (faster to start; memory is then not measured)")
    p.add_argument("--timeout", type=float, default=None, help="seconds per run")
    p.add_argument("--data-dir", default=None, help="folder of the shared datasets (default: $BICLUM_SHARED_DATA "
                                                    "or ../shared/data)")
    p.add_argument("--out", default=None, help="output folder (tables, figures)")
    p.add_argument("--name", default=None, help="file stem of the table/figures in --out (default: the command's "
                                                "name: benchmark, ablation, sensitivity)")
    p.add_argument("--quiet", action="store_true")


def _data_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data (shared datasets by name, or your own files)")
    g.add_argument("--datasets", nargs="+", default=None, metavar="NAME", help="shared datasets, e.g. snareseq eccite")
    g.add_argument("--rna", default=None, metavar="FILE", help="your RNA counts, cells x genes (.h5ad)")
    g.add_argument("--other", default=None, metavar="FILE",
                   help="your ATAC (cells x peaks, or gene activity) or ADT (cells x antibodies) counts (.h5ad)")
    g.add_argument("--modality", choices=["atac", "protein"], default=None, help="what --other holds")
    g.add_argument("--annotation", default=None, metavar="FILE",
                   help="gene annotation for ATAC peaks (GTF/GFF3, BED6 or a gene_name/chrom/start/end/strand table)")
    g.add_argument("--dataset-name", default=None,
                   help="name of your data in the table (default: the name of the folder holding --rna)")
    g.add_argument("--label-key", default="cell_type", metavar="COL",
                   help="obs column of cell types in both files (label metrics are skipped when missing)")
    g.add_argument("--batch-key", default=None, metavar="COL", help="obs column of batches in both modalities")
    g.add_argument("--rna-batch-key", default=None, metavar="COL", help="obs column of the RNA cells' batches")
    g.add_argument("--other-batch-key", default=None, metavar="COL", help="obs column of the other cells' batches")


def _benchmark_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="Run biclum and baselines on the same inputs and print one "
                                "table with every metric, wall time and peak memory. Batch keys add the "
                                "within-modality mixing metrics and are passed to biclum.", epilog=USAGE_HINT)
    _data_args(p)
    p.add_argument("--methods", nargs="+", default=["biclum", "pca", "seurat"], choices=list(METHODS))
    p.add_argument("--no-umap", action="store_true")
    p.add_argument("--scglue-epochs", type=int, default=SCGLUE_EPOCHS,
                   help=f"scGLUE epoch cap per stage (pretraining, fine-tuning); 0 = scglue's own budget "
                        f"(default {SCGLUE_EPOCHS})")
    p.add_argument("--scglue-checkpoints", default=None, metavar="DIR",
                   help="keep scGLUE's training directories here; the same command run again resumes a stopped "
                        "scGLUE run from its last finished epoch")
    p.add_argument("--seeds", type=int, nargs="+", default=None, metavar="SEED",
                   help="several seeds in place of --seed: one run per seed and method, and the table starts with "
                        "the mean ± sd over the seeds")
    _common_args(p)
    return p


def _datasets(p: argparse.ArgumentParser, a: argparse.Namespace) -> List[BenchmarkInput]:
    """The datasets the options name (argparse's usage error, exit 2, when they name none or contradict)."""
    own = a.rna is not None or a.other is not None
    if not a.datasets and not own:
        p.error(USAGE_HINT)
    if own and (a.rna is None or a.other is None or a.modality is None):
        p.error("your own data needs --rna FILE, --other FILE and --modality atac|protein together")
    keys = dict(label_key=a.label_key, batch_key=a.batch_key, rna_batch_key=a.rna_batch_key,
                other_batch_key=a.other_batch_key)
    out = [BenchmarkInput(d, data_dir=a.data_dir, **keys) for d in a.datasets or []]
    if own:
        name = a.dataset_name or Path(a.rna).resolve().parent.name or Path(a.rna).stem
        out.append(BenchmarkInput(name, a.rna, a.other, a.modality, a.annotation, **keys))
    return out


def _biclum_config(a: argparse.Namespace) -> dict:
    """--config overrides, plus the batch keys (biclum integrates the batches it is told about)."""
    keys = {"rna_batch_key": a.rna_batch_key or a.batch_key, "other_batch_key": a.other_batch_key or a.batch_key}
    return {**{k: v for k, v in keys.items() if v is not None}, **parse_overrides(a.config, "--config")}


def _command(prog: str, argv: Sequence[str]) -> str:
    return " ".join([prog, *map(shlex.quote, argv)])


def _print_table(table: pd.DataFrame) -> int:
    for line in table_notes(table):
        print(line)
    print(markdown_table(table.drop(columns=[c for c in table.columns if table[c].isna().all()]), 3))
    return 0 if not table["status"].str.startswith("failed").any() else 1


def main_benchmark(argv: Optional[Sequence[str]] = None, prog: str = "biclum benchmark") -> int:
    """``biclum benchmark (--datasets NAME ... | --rna FILE --other FILE --modality M) [--methods ...] [--out DIR]``

    ``prog`` is the command name shown in ``--help`` and recorded in the markdown table."""
    argv = list(sys.argv[1:] if argv is None else argv)
    p = _benchmark_parser(prog)
    a = p.parse_args(argv)
    datasets = _datasets(p, a)
    if a.quiet:
        logger.setLevel("WARNING")
    table = run_benchmark(datasets, a.methods, seed=a.seed, seeds=a.seeds, max_epochs=a.max_epochs,
                          biclum_config=_biclum_config(a), scglue_epochs=a.scglue_epochs or None,
                          scglue_checkpoints=a.scglue_checkpoints,
                          nmi=not a.no_nmi, umap=not a.no_umap, out_dir=a.out, isolate=not a.no_isolate,
                          timeout=a.timeout, command=_command(prog, argv), table_name=a.name or "benchmark")
    return _print_table(table)


def _grid_main(kind: str, argv: Optional[Sequence[str]], prog: Optional[str] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    prog = prog or f"biclum {kind}"
    p = argparse.ArgumentParser(prog=prog, description=(
        "biclum with each loss switched off (one row per ablation)" if kind == "ablation" else
        "one-at-a-time sensitivity of biclum to tau_cell, tau_feature, alpha, beta, mnn_k, latent_dim"))
    p.add_argument("--dataset", default="snareseq", help="shared dataset name")
    if kind == "sensitivity":
        p.add_argument("--params", nargs="+", default=list(SENSITIVITY_GRID), choices=list(SENSITIVITY_GRID),
                       help="parameters to vary")
        p.add_argument("--values", action="append", metavar="KEY=V1,V2,...", help="override a parameter's values")
    _common_args(p)
    a = p.parse_args(argv)
    if a.quiet:
        logger.setLevel("WARNING")
    ds = BenchmarkInput(a.dataset, data_dir=a.data_dir)
    kw = dict(seed=a.seed, max_epochs=a.max_epochs, base_config=parse_overrides(a.config, "--config"),
              nmi=not a.no_nmi, isolate=not a.no_isolate, timeout=a.timeout, out_dir=a.out,
              command=_command(prog, argv), table_name=a.name or kind)
    if kind == "ablation":
        return _print_table(run_ablation(ds, **kw))
    grid = {k: SENSITIVITY_GRID[k] for k in a.params}
    for item in a.values or []:
        k, _, vals = item.partition("=")
        grid[k] = [json.loads(v) for v in vals.split(",")]
    return _print_table(run_sensitivity(ds, grid=grid, **kw))


def main_ablation(argv: Optional[Sequence[str]] = None, prog: str = "biclum ablation") -> int:
    """``biclum ablation [--dataset snareseq] [--out DIR] [--max-epochs N] [--config k=v] ...``"""
    return _grid_main("ablation", argv, prog)


def main_sensitivity(argv: Optional[Sequence[str]] = None, prog: str = "biclum sensitivity") -> int:
    """``biclum sensitivity [--dataset snareseq] [--params tau_cell alpha ...] [--values mnn_k=20,50] ...``"""
    return _grid_main("sensitivity", argv, prog)
