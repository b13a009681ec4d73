"""The benchmark's table: CSV (full precision) and markdown (rounded, with the command, the environment and what
the columns mean)."""
from __future__ import annotations

import argparse
import functools
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np
import pandas as pd

from .._logging import logger


@functools.lru_cache(maxsize=None)
def source_commit() -> Optional[str]:
    """Short git commit of the checkout that holds the imported biclum, with " + uncommitted changes in python/"
    when the package's directory there has local edits; None outside a git checkout. Cached for the process: a
    benchmark calls it when it starts, so the file it writes at the end names the code that ran even when commits
    land in the meantime."""
    src = Path(__file__).resolve().parents[2]  # python/ (this file: python/biclum/benchmark/report.py)
    try:
        tracked = subprocess.run(["git", "ls-files", "--error-unmatch", "biclum/__init__.py"], cwd=src,
                                 capture_output=True, text=True, timeout=10)
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=src, capture_output=True, text=True,
                              timeout=10)
        if tracked.returncode != 0 or head.returncode != 0:  # an installed copy, not a checkout
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "."], cwd=src, capture_output=True,
                               text=True, timeout=10).stdout.strip()
        return head.stdout.strip() + (" + uncommitted changes in python/" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def mean_sd(values, digits: int = 3) -> str:
    """"mean ± sd" (sample sd) of the non-missing ``values`` as a results table shows them; the mean alone for one
    value, "-" for none."""
    v = np.asarray([x for x in values if x == x], dtype=float)
    if not len(v):
        return "-"
    return f"{v.mean():.{digits}f} ± {v.std(ddof=1):.{digits}f}" if len(v) > 1 else f"{v.mean():.{digits}f}"


def seeds_parser(description: str) -> argparse.ArgumentParser:
    """The options of a benchmarks/ script that runs biclum over seeds: --seeds, --threads (torch threads per run)
    and --no-write (print only); the caller adds its own."""
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--threads", type=int, default=1, help="torch threads per run (default 1)")
    p.add_argument("--no-write", action="store_true", help="print the results only")
    return p


def add_files_argument(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """--files NAME RNA ATAC ANNOTATION (repeatable): RNA + ATAC ``.h5ad`` files of the user's own beside the shared
    data (read by :func:`biclum.benchmark.inputs.named_inputs`)."""
    p.add_argument("--files", nargs=4, action="append", default=[], metavar=("NAME", "RNA", "ATAC", "ANNOTATION"),
                   help="an RNA + ATAC pair of .h5ad files: a name, the two files and the peaks' gene annotation")
    return p


def add_name_and_set(p: argparse.ArgumentParser, default_name: Optional[str]) -> argparse.ArgumentParser:
    """--name (the results file, benchmarks/results/<name>.md) and --set KEY=VALUE (config options) of a
    benchmarks/ script."""
    p.add_argument("--name", default=default_name, help="results file name (benchmarks/results/<name>.md)")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config options, e.g. mnn_k=50")
    return p


def start_run(parser: argparse.ArgumentParser, argv=None) -> tuple:
    """(argv, parsed options, config overrides of --set) of a benchmarks/ script; reads the source commit now,
    as the results file is written at the end."""
    import sys

    from ..config import parse_overrides

    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    source_commit()
    return argv, args, parse_overrides(getattr(args, "set", []) or [])


def publish(text: str, path, title: str, write: bool = True) -> None:
    """Print a results text (from :func:`run_stamp` on) and, with ``write``, save it to ``path`` under ``title``."""
    print(text)
    if write:
        Path(path).write_text(f"# {title}\n\n" + text)


def run_stamp(script: str, argv: List[str], threads: int, seeds) -> str:
    """The first lines of a results file (from a script in benchmarks/ or studies/): the command, then the commit
    (:func:`source_commit`, read when the run started if the script called it then), cores, load, torch threads
    and seeds (ends with "seeds ...", for the caller to complete the sentence)."""
    import shlex

    where = Path(script).resolve()  # benchmarks/ or studies/
    return (f"Command: `python {where.parent.name}/{where.name} {' '.join(map(shlex.quote, argv))}`  \n"
            f"Commit: {source_commit() or 'unknown'}; {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; "
            f"torch threads {threads}; seeds {', '.join(map(str, seeds))}")


def _environment() -> str:
    parts = [f"Python {platform.python_version()}", f"numpy {np.__version__}", f"{os.cpu_count()} CPUs",
             platform.platform(terse=True)]
    try:
        import biclum

        commit = source_commit()
        where = Path(biclum.__file__).resolve().parents[2]
        parts.insert(0, f"biclum {biclum.__version__} from {where}" + (f" (git {commit})" if commit else ""))
    except Exception:
        pass
    return ", ".join(parts)


def write_table(table: pd.DataFrame, stem, *, title: str = "biclum benchmark", command: Optional[str] = None,
                digits: int = 3) -> Tuple[Path, Path]:
    """Write ``stem.csv`` (full precision) and ``stem.md`` (rounded table, the command and the environment)."""
    stem = Path(stem)
    csv_path, md_path = stem.with_suffix(".csv"), stem.with_suffix(".md")
    table.to_csv(csv_path, index=False)
    show = table.drop(columns=[c for c in table.columns if table[c].isna().all()])
    lines = [f"# {title}", ""]
    if command:
        lines += ["Command:", "", "```", command, "```", ""]
    lines += [f"Environment: {_environment()}; {time.strftime('%Y-%m-%d %H:%M %Z')}.", "",
              "Metrics: biclum.metrics (scglue.metrics definitions; FOSCTTM lower is better, all others higher). "
              "transfer_rna_to_other = kNN (k=5) labels of RNA cells transferred to the other modality's cells. "
              "NMI: best over Leiden resolutions 0.1-2.0 (2 passes each) on at most 10,000 random cells. "
              "omics_mixing / biology_conservation as in the BiCLUM paper. wall_s: the method call only; "
              "cpu_s: CPU time of the worker and its children (Rscript) during the call; "
              "peak_rss_mb: peak resident memory of the method's own worker process and its children (Rscript) "
              "together, including interpreter and loaded inputs (rss_inputs_mb). epochs: epochs run (scGLUE: its "
              "two stages together, split in epoch_stages); epoch_budget: scGLUE's epoch cap; train_s_all_pieces: "
              "scGLUE's training seconds summed over every piece of a run resumed from --scglue-checkpoints (wall_s "
              "counts only this call's piece).", ""]
    lines += table_notes(table)
    if "seed" in table and table["seed"].nunique() > 1:
        lines += [f"Mean ± sd over seeds {', '.join(map(str, pd.unique(table['seed'])))} (sample sd; `runs ok`: runs "
                  "with status ok, the only ones averaged):", "", markdown_table(seed_summary(table, digits), digits),
                  "", "Per run:", ""]
    lines += [markdown_table(show, digits)]
    md_path.write_text("\n".join(lines) + "\n")
    logger.info("wrote %s and %s", md_path, csv_path)
    return md_path, csv_path


def seed_summary(table: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """One row per (dataset, method) of a benchmark table with a ``seed`` column: how many runs are ok, and
    "mean ± sd" (:func:`mean_sd`) over the ok runs of every numeric column that has a value."""
    ok = table[table["status"] == "ok"]
    numeric = [c for c in table.columns if c != "seed" and pd.api.types.is_numeric_dtype(table[c])
               and table[c].notna().any()]
    rows = []
    for (dataset, method), runs in table.groupby(["dataset", "method"], sort=False):
        good = ok[(ok["dataset"] == dataset) & (ok["method"] == method)]
        rows.append({"dataset": dataset, "method": method, "runs ok": f"{len(good)}/{len(runs)}",
                     **{c: mean_sd(good[c], digits) for c in numeric}})
    return pd.DataFrame(rows)


def table_notes(table: pd.DataFrame) -> List[str]:
    """Lines that say what the table cannot show (e.g. no FOSCTTM for unpaired data), each followed by a blank."""
    if "paired" not in table or not (table["paired"] == "no").any():
        return []
    names = ", ".join(pd.unique(table.loc[table["paired"] == "no", "dataset"]))
    return [f"Unpaired data ({names}): the RNA and other cells are different cells, so FOSCTTM, foscttm_rna/other "
            "and neighborhood_overlap are not computed (empty); label transfer (transfer_rna_to_other, "
            "transfer_other_to_rna) is the score.", ""]


def markdown_table(df: pd.DataFrame, digits: int) -> str:
    integral = {c for c in df.columns if c in ("epochs", "value") and pd.api.types.is_numeric_dtype(df[c])
                and np.all(np.mod(df[c].dropna(), 1) == 0)}

    def fmt(v, col):
        if isinstance(v, (float, np.floating)):
            if np.isnan(v):
                return ""
            if col in integral:
                return str(int(v))
            return f"{v:.1f}" if abs(v) >= 100 else f"{v:.{digits}f}"
        return str(v).replace("|", "\\|")

    head = "| " + " | ".join(df.columns) + " |"
    sep = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(fmt(v, c) for v, c in zip(row, df.columns)) + " |"
            for row in df.itertuples(index=False)]
    return "\n".join([head, sep, *body])


