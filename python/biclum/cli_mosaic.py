"""``biclum mosaic``: several datasets holding RNA, ATAC and/or protein in one embedding (biclum.mosaic).

``biclum mosaic --dataset bridge rna=b_rna.h5ad atac=b_atac.h5ad --dataset reference rna=ref.h5ad
--dataset query atac=query.h5ad --annotation genes.tsv.gz --out DIR`` writes DIR/<dataset>_<modality>.h5ad (the
input's obs, no X, obsm["X_biclum"]; RNA with varm["biclum_loadings"]), DIR/cells.h5ad (every cell: obs dataset,
modality, cell), DIR/model/ (the mosaic model: ``biclum.MosaicModel.load``) and DIR/summary.json, each written
whole (biclum.atomic); DIR is locked while the run lasts (biclum.lock).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from ._logging import logger


def add_mosaic_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", nargs="+", action="append", required=True, metavar="NAME MOD=FILE",
                   help="a dataset: its name, then one MODALITY=FILE.h5ad per modality it holds (rna, atac, "
                        "protein); the modalities of one dataset are the same cells (same names). Repeat per dataset")
    p.add_argument("--annotation", help="gene annotation for ATAC peaks")
    p.add_argument("--protein-mapping", default=None, metavar="FILE", help="antibody -> gene table (CSV/TSV)")
    p.add_argument("--no-known-pairs", action="store_true", help="treat the cells of a dataset as unpaired")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-epochs", type=int, default=None)
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="any config option, e.g. mnn_k=50")
    p.add_argument("--quiet", action="store_true", help="no progress bars, warnings-only logging")
    p.add_argument("--debug", action="store_true", help="show the full traceback of an error")


def parse_datasets(specs: list) -> dict:
    """``[[name, "rna=FILE", ...], ...]`` -> {name: {modality: path}}; a BiclumInputError naming the fix."""
    from .errors import BiclumInputError

    out = {}
    for spec in specs:
        name, files = spec[0], spec[1:]
        bad = [f for f in files if "=" not in f]
        if "=" in name or not files or bad:
            raise BiclumInputError(f"--dataset {' '.join(spec)}: give a name, then MODALITY=FILE.h5ad per modality, "
                                   f"e.g. --dataset bridge rna=rna.h5ad atac=atac.h5ad.")
        if name in out:
            raise BiclumInputError(f"--dataset {name}: the name is used twice; give each dataset its own name.")
        out[name] = dict(f.split("=", 1) for f in files)
    return out


def cmd_mosaic(args) -> int:
    from .atomic import atomic_path, write_bytes
    from .cli import read_h5ad
    from .config import parse_overrides
    from .lock import OutputLock
    from .mosaic import integrate_mosaic

    out = Path(args.out)
    paths = parse_datasets(args.dataset)
    out.mkdir(parents=True, exist_ok=True)
    with OutputLock(out, "biclum mosaic"):
        datasets = {name: {mod: read_h5ad(path, f"--dataset {name} {mod}") for mod, path in files.items()}
                    for name, files in paths.items()}
        t0 = time.perf_counter()
        res = integrate_mosaic(datasets, args.annotation, protein_mapping=args.protein_mapping,
                               known_pairs=not args.no_known_pairs, seed=args.seed, max_epochs=args.max_epochs,
                               progress=not args.quiet, **parse_overrides(args.set))
        written = []
        for name, mods in res.datasets.items():
            for mod, adata in mods.items():
                with atomic_path(out / f"{name}_{mod}.h5ad") as tmp:
                    adata.write_h5ad(tmp)
                written.append(f"{name}_{mod}.h5ad")
        with atomic_path(out / "cells.h5ad") as tmp:
            res.cells.write_h5ad(tmp)
        res.model.save(str(out / "model"), overwrite=True)
        written += ["cells.h5ad", "model/"]
        summary = {"seconds": round(time.perf_counter() - t0, 1), "cells": int(res.cells.n_obs),
                   "models": list(res.models), "known_pairs": {m: int(x.n_known_pairs) for m, x in res.models.items()},
                   "written": written}
        write_bytes(out / "summary.json", json.dumps(summary, indent=1).encode())
    logger.info("mosaic outputs: %s", ", ".join(written))
    print(f"biclum mosaic: {summary['cells']} cells in one space in {summary['seconds']} s; wrote "
          f"{', '.join(written)} to {out}")
    return 0
