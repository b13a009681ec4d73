"""Command line: ``biclum fit | mosaic | simulate | benchmark | ablation | sensitivity`` (mosaic: biclum.cli_mosaic).

``biclum fit --rna RNA.h5ad --other OTHER.h5ad --modality atac --annotation genes.tsv.gz --out DIR`` writes
DIR/rna.h5ad and DIR/other.h5ad (the inputs' obs/var without X, plus obsm["X_biclum"] and
varm["biclum_loadings"]), DIR/model/ (state_dict + JSON sidecar), DIR/loss_history.csv, DIR/loss.png and
DIR/umap.png, each written whole or not at all (biclum.atomic). DIR is locked while the run lasts
(biclum.lock): a second run on it stops at once. ``biclum fit --demo`` runs on the built-in simulator.

Errors in the input (every ``BiclumError``, a missing or unreadable file) and errors writing the outputs or
checkpoints (a full disk, a refused write: ``BiclumIOError``; an --out in use) end in one paragraph on stderr that
names the problem and the fix, and exit code 2; ``--debug`` shows the traceback instead. Other exceptions keep
theirs (they are bugs to report).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from ._logging import logger, set_verbosity
from .atomic import atomic_path, write_bytes
from .cli_mosaic import add_mosaic_args, cmd_mosaic

#: subcommands whose options are parsed by biclum.benchmark.cli (main_benchmark, main_ablation, main_sensitivity)
DELEGATED = ("benchmark", "ablation", "sensitivity")


def _add_fit_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rna", help="RNA counts, cells x genes (.h5ad)")
    p.add_argument("--other", help="ATAC (cells x peaks or gene activity) or ADT (cells x antibodies) .h5ad")
    p.add_argument("--modality", choices=["atac", "protein"], default="atac")
    p.add_argument("--annotation", help="gene annotation for ATAC: GTF/GFF3, BED6 or a gene_name/chrom/start/end/"
                                        "strand table")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-epochs", type=int, default=None)
    p.add_argument("--preset", default="default", choices=["default", "paper"])
    p.add_argument("--device", default=None, help="cpu, cuda or auto (the GPU when torch sees one, else the CPU); "
                                                  "default: the config's (cpu)")
    p.add_argument("--rna-layer", default=None, help="layer holding the RNA counts (default .X; when .X is not "
                                                      "counts, layers['counts'] is used if present)")
    p.add_argument("--other-layer", default=None, help="layer holding the other modality's counts")
    p.add_argument("--gene-symbols", default=None, metavar="COL", help="RNA var column with the gene symbols, "
                                                                       "e.g. when var names are Ensembl IDs")
    p.add_argument("--other-gene-symbols", default=None, metavar="COL",
                   help="var column of --other with the feature names to use (antibodies, or genes of a "
                        "gene-level ATAC matrix)")
    p.add_argument("--protein-mapping", default=None, metavar="FILE",
                   help="two-column table (antibody, gene; CSV or TSV) mapping antibody names to gene symbols; "
                        "applied before the built-in table (an empty gene drops the antibody)")
    p.add_argument("--rna-batch-key", default=None, metavar="COL",
                   help="RNA obs column with each cell's batch (sample, donor): batches within RNA are integrated too")
    p.add_argument("--other-batch-key", default=None, metavar="COL",
                   help="obs column with each cell's batch in the other modality")
    p.add_argument("--paired", nargs="?", const="shared", default=None, metavar="shared|FILE",
                   help="known pairs, cells measured in both modalities: 'shared' (also --paired alone) when a cell "
                        "has the same name in both files, or a two-column CSV/TSV (RNA cell name, other cell name; "
                        "header line optional); each pair is an exact positive of the cell-level loss")
    p.add_argument("--label-key", default="cell_type", help="obs column to colour the UMAP by, when present")
    p.add_argument("--checkpoint-dir", default=None, help="write checkpoints here (default OUT/checkpoints)")
    p.add_argument("--resume", default=None, help="resume from this checkpoint directory")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="any config option, e.g. mnn_k=50")
    p.add_argument("--demo", action="store_true", help="use the built-in simulator instead of --rna/--other")
    p.add_argument("--demo-cells", type=int, default=3000)
    p.add_argument("--no-umap", action="store_true", help="skip the UMAP figure")
    p.add_argument("--quiet", action="store_true", help="no progress bars, warnings-only logging")
    p.add_argument("--debug", action="store_true", help="show the full traceback of an error")


def read_h5ad(path, what):
    import anndata as ad

    from .errors import BiclumInputError
    from .validation import check_h5ad_path

    path = check_h5ad_path(path, what)
    try:
        return ad.read_h5ad(path)
    except (OSError, KeyError, ValueError, TypeError) as err:
        raise BiclumInputError(
            f"{what}: {path!r} cannot be read as an .h5ad file ({type(err).__name__}: {str(err)[:200]}); it may "
            f"be another format with an .h5ad name (CSV, loom, 10x .h5), truncated, or unreadable. Write it with "
            f"anndata (e.g. anndata.read_csv(...).write_h5ad(...), or scanpy.read_10x_h5(...).write_h5ad(...)) "
            f"and check its permissions.") from err


def cmd_fit(args) -> int:
    """``biclum fit``: the output folder is locked first (a second run on it stops at once), then the run."""
    from contextlib import nullcontext

    from .lock import OutputLock

    # under torchrun (WORLD_SIZE > 1) every rank reads the data and trains its shard; only rank 0 logs, writes and
    # holds the lock (RANK read as distributed.env_rank does, before torch is imported)
    main_rank = int(os.environ.get("RANK", "0") or 0) == 0
    out = Path(args.out)
    if main_rank:
        out.mkdir(parents=True, exist_ok=True)
    with OutputLock(out, "biclum fit") if main_rank else nullcontext():
        return _run_fit(args, out, main_rank)


def _run_fit(args, out: Path, main_rank: bool) -> int:
    from . import distributed
    from .api import integrate
    from .config import parse_overrides
    from .datasets import simulate
    from .state import check_save_target

    if not main_rank:
        set_verbosity("WARNING")
    check_save_target(str(out / "model"))  # before training, not after it
    if args.demo:
        rna, other, annotation = simulate(args.demo_cells, modality=args.modality, seed=args.seed)
        logger.info("demo: simulated %d RNA and %d %s cells", rna.n_obs, other.n_obs, args.modality)
    else:
        if not args.rna or not args.other:
            raise SystemExit("biclum fit: give --rna and --other (or --demo)")
        rna, other = read_h5ad(args.rna, "--rna"), read_h5ad(args.other, "--other")
        annotation = args.annotation
    overrides = parse_overrides(args.set)
    if "max_epochs" in overrides:  # a config field that integrate() also takes as an argument
        args.max_epochs = overrides.pop("max_epochs")
    if "seed" in overrides:
        raise SystemExit("biclum fit: give the seed as --seed N, not --set seed=N")
    if args.device:
        overrides["device"] = args.device
    t0 = time.perf_counter()
    res = integrate(rna, other, args.modality, annotation, seed=args.seed, max_epochs=args.max_epochs,
                    preset=args.preset, progress=not args.quiet and main_rank, rna_layer=args.rna_layer,
                    other_layer=args.other_layer, checkpoint_dir=args.checkpoint_dir or str(out / "checkpoints"),
                    resume=args.resume, protein_mapping=args.protein_mapping, gene_symbols=args.gene_symbols,
                    other_gene_symbols=args.other_gene_symbols, rna_batch_key=args.rna_batch_key,
                    other_batch_key=args.other_batch_key, paired=args.paired, **overrides)
    world = distributed.world_size()
    distributed.destroy()  # training was the last collective step
    if not main_rank:
        return 0
    written = write_fit_outputs(res, out, args)
    summary = {"seconds": round(time.perf_counter() - t0, 1), "epochs": len(res.history),
               "status": res.model.train_status, "n_rna": res.rna.n_obs, "n_other": res.other.n_obs,
               "processes": world, "written": written}
    write_bytes(out / "summary.json", json.dumps(summary, indent=1).encode())
    print(f"biclum fit: {summary['status']} after {summary['epochs']} epochs in {summary['seconds']} s; "
          f"wrote {', '.join(written)} to {out}")
    return 0


def write_fit_outputs(res, out: Path, args) -> list:
    """The outputs of ``biclum fit`` (an ``IntegrationResult``) in ``out``, each written whole or not at all
    (biclum.atomic): rna.h5ad, other.h5ad, model/, loss_history.csv, loss.png and (unless ``args.no_umap``)
    umap.png coloured by ``args.label_key``. Returns the names written."""
    import pandas as pd

    from .plotting import plot_joint_umap, plot_loss

    for name, adata in (("rna.h5ad", res.rna), ("other.h5ad", res.other)):
        with atomic_path(out / name) as tmp:
            adata.write_h5ad(tmp)
    res.model.save(str(out / "model"), overwrite=True)
    write_bytes(out / "loss_history.csv", pd.DataFrame(res.history).to_csv(index=False).encode())
    plot_loss(res.history, str(out / "loss.png"))
    written = ["rna.h5ad", "other.h5ad", "model/", "loss_history.csv", "loss.png"]
    if not args.no_umap:
        key = args.label_key
        has = key in res.rna.obs and key in res.other.obs
        plot_joint_umap(res.rna.obsm["X_biclum"], res.other.obsm["X_biclum"],
                        res.rna.obs[key].values if has else None, res.other.obs[key].values if has else None,
                        other_name=args.modality, path=str(out / "umap.png"), seed=args.seed)
        written.append("umap.png")
    return written


def cmd_simulate(args) -> int:
    from .datasets import simulate

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rna, other, annotation = simulate(args.n_cells, modality=args.modality, paired=args.paired, seed=args.seed)
    for name, adata in (("rna.h5ad", rna), (f"{args.modality}.h5ad", other)):
        with atomic_path(out / name) as tmp:
            adata.write_h5ad(tmp)
    if annotation is not None:
        with atomic_path(out / "annotation.tsv.gz") as tmp:
            annotation.to_csv(tmp, sep="\t", index=False)
    print(f"wrote simulated {args.modality} data ({rna.n_obs} + {other.n_obs} cells) to {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="biclum", description="Bilateral contrastive learning for unpaired "
                                 "single-cell multi-omics integration.")
    from . import __version__

    ap.add_argument("--version", action="version", version=f"biclum {__version__}")
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("fit", help="integrate RNA with ATAC or protein")
    _add_fit_args(p)
    p.set_defaults(func=cmd_fit)
    p = sub.add_parser("mosaic", help="several datasets holding RNA, ATAC and/or protein (paired or not) in one "
                                      "embedding")
    add_mosaic_args(p)
    p.set_defaults(func=cmd_mosaic)
    p = sub.add_parser("simulate", help="write simulated RNA + ATAC/ADT data as .h5ad")
    p.add_argument("--out", required=True)
    p.add_argument("--n-cells", type=int, default=3000)
    p.add_argument("--modality", choices=["atac", "protein"], default="atac")
    p.add_argument("--paired", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_simulate)
    for name in DELEGATED:
        p = sub.add_parser(name, help=f"{name} (see `biclum {name} --help`)", add_help=False)
        p.add_argument("rest", nargs=argparse.REMAINDER)
        p.set_defaults(func=_delegate(name), quiet=False)
    return ap


def _delegate(name):
    def run(args):
        from .benchmark import cli

        entry = getattr(cli, f"main_{name}")
        return entry(args.rest) or 0

    return run


def _short_warning(message, category, filename, lineno, line=None) -> str:
    return f"[biclum] warning: {message}\n"


def main(argv=None) -> int:
    import warnings

    from .errors import BiclumError

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in DELEGATED:  # their own parser reads every option (REMAINDER misses a leading one)
        args = argparse.Namespace(command=argv[0], rest=argv[1:], func=_delegate(argv[0]), quiet=False)
    else:
        args = build_parser().parse_args(argv)
    if getattr(args, "quiet", False):
        set_verbosity("WARNING")
    debug = getattr(args, "debug", False)
    previous_format = warnings.formatwarning
    if not debug:
        warnings.formatwarning = _short_warning  # a warning is a message, not a code excerpt
    try:
        return int(args.func(args) or 0)
    except (BiclumError, FileNotFoundError, PermissionError, IsADirectoryError) as err:
        if debug:
            raise
        text = str(err) if isinstance(err, BiclumError) else \
            f"{err.strerror or err}: {err.filename!r}; check the path and its permissions."
        print(f"biclum {args.command}: error: {text}\n(run with --debug for the traceback)", file=sys.stderr)
        return 2
    finally:
        warnings.formatwarning = previous_format


if __name__ == "__main__":
    sys.exit(main())
