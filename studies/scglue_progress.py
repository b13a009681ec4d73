"""How good is scGLUE part way through its own schedule? Scores of scGLUE's network as saved after an epoch.

    BICLUM_PEERS_PYTHON=... $BICLUM_PEERS_PYTHON studies/scglue_progress.py --dataset snareseq --seed 0 \
        --resume-points FILE [FILE ...] [--no-write]
    ... studies/scglue_progress.py --rna RNA.h5ad --other ATAC.h5ad --annotation GENES --dataset NAME ...

scGLUE's own schedule on SNARE-seq (up to 166 epochs per stage, about a minute an epoch on one core) is longer
than a CPU session here. `biclum benchmark --scglue-epochs 0 --scglue-checkpoints DIR` keeps a resume point
(``resume.pt``, biclum.benchmark.scglue_training) after every epoch; copies of it taken while the run goes on are
the FILEs. Each is loaded into the network scGLUE builds for these inputs (biclum.benchmark.peers.scglue_inputs,
the benchmark's own preprocessing and guidance graph, same seed) and scored as benchmarks/all_datasets.py scores
biclum: FOSCTTM on paired data, 5-NN label transfer both ways where labelled. A finished stage's model
(``pretrain.dill`` or ``fine-tune.dill``, the best checkpoint that scGLUE's early stopping restored) may be given
too. Rows are sorted by stage and epoch.

Your own files (as ``biclum benchmark --rna --other --annotation``, e.g. studies/lowdepth_proxy.py's) replace the
shared dataset with ``--rna``, ``--other`` and ``--annotation``; ``--dataset`` then names them in the results.
A resume point shows scGLUE part way through a stage; ``fine-tune.dill`` is the fully trained scGLUE.
Writes benchmarks/results/scglue_progress_<dataset>.md with the command, commit, threads and seed. Needs scglue.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="snareseq", help="a shared RNA + ATAC dataset (with --rna: a name)")
    p.add_argument("--rna", metavar="FILE", help="your RNA counts (.h5ad), in place of a shared dataset")
    p.add_argument("--other", metavar="FILE", help="your ATAC peak counts (.h5ad), with --rna")
    p.add_argument("--annotation", metavar="FILE", help="the gene annotation of --other's peaks, with --rna")
    p.add_argument("--seed", type=int, default=0, help="the seed the scGLUE run was given")
    p.add_argument("--resume-points", nargs="+", required=True, metavar="FILE",
                   help="copies of a stage's resume.pt (pretrain or fine-tune), taken as the run went on, and/or "
                        "a finished stage's model (pretrain/pretrain.dill, fine-tune/fine-tune.dill)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-write", action="store_true")
    return p


def _model(prep: dict, seed: int):
    """scGLUE's inputs and an untrained network of the benchmark's shape (latent 50, as scglue_baseline)."""
    import scglue

    from biclum.benchmark.peers import scglue_configure, scglue_inputs

    rna, atac, graph = scglue_inputs(prep["rna"], prep["other"], prep["annotation"])
    data = {"rna": rna, "atac": atac}
    scglue_configure(data)
    model = scglue.models.SCGLUEModel(data, sorted(graph.nodes), latent_dim=50, random_seed=seed)
    return model, data


def _score(path: Path, model, data: dict, prep: dict) -> dict:
    """Scores of one resume point (its network loaded into ``model``) or of a finished stage's model (.dill)."""
    from all_datasets import _scores

    if path.suffix == ".dill":
        import scglue

        return {**_stage_model(path), **_scores(*_encode(scglue.models.load_model(str(path)), data), prep)}
    import torch

    state = torch.load(path, weights_only=False, map_location="cpu")
    model.net.load_state_dict(state["net"])
    stage = "fine-tune" if path.name.startswith("fine-tune") else "pretrain"
    out = {"stage": stage, "epoch": int(state["epoch"]), "of_at_most": int(state["max_epochs"]),
           "lr_reductions": int(state["n_lrs"]), "file": path.name}
    return {**out, **_scores(*_encode(model, data), prep)}


def _stage_model(path: Path) -> dict:
    """A finished stage (``pretrain/pretrain.dill``, ``fine-tune/fine-tune.dill``): the epochs its log records;
    the model is the best checkpoint that scGLUE's early stopping restored."""
    from biclum.benchmark.scglue_training import epochs_run

    return {"stage": path.stem, "epoch": epochs_run(str(path.parent)), "of_at_most": None,
            "lr_reductions": None, "file": f"{path.parent.name}/{path.name} (end of stage, best checkpoint)"}


def _encode(model, data: dict):
    return model.encode_data("rna", data["rna"]), model.encode_data("atac", data["atac"])


def _prepare_files(rna: str, other: str, annotation: str) -> dict:
    """The benchmark's inputs from your own files (biclum.benchmark.BenchmarkInput, as ``biclum benchmark --rna``)."""
    from biclum.benchmark.inputs import BenchmarkInput

    if other is None or annotation is None:
        raise SystemExit("--rna needs --other (ATAC peak counts) and --annotation (their gene table).")
    return BenchmarkInput(name=Path(rna).parent.name, rna=rna, other=other, modality="atac",
                          annotation=annotation).load()


def main(argv=None) -> None:
    sys.path.insert(0, str(REPO / "benchmarks"))
    import torch

    from all_datasets import _prepare

    from biclum.benchmark.report import markdown_table, publish, run_stamp, start_run

    argv, a, _ = start_run(_parser(), argv)
    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    prep = _prepare(a.dataset) if a.rna is None else _prepare_files(a.rna, a.other, a.annotation)
    model, data = _model(prep, a.seed)
    rows = [_score(Path(f), model, data, prep) for f in a.resume_points]
    table = pd.DataFrame(rows)
    table["order"] = table["stage"].map({"pretrain": 0, "fine-tune": 1})
    table = (table.sort_values(["order", "epoch"]).drop_duplicates(["stage", "epoch", "of_at_most"])
             .drop(columns="order"))
    for col in ("epoch", "of_at_most", "lr_reductions"):  # counts; empty for a finished stage's model
        table[col] = table[col].map(lambda v: "" if pd.isna(v) else str(int(v)))
    text = (run_stamp(__file__, argv, a.threads, [a.seed]) + f"; {a.dataset}; {time.perf_counter() - t0:.0f} s.\n\n"
            "scGLUE's network after the epoch shown of its own schedule (`biclum benchmark --scglue-epochs 0 "
            "--scglue-checkpoints DIR`, resume points copied as it ran), scored with benchmarks/all_datasets.py's "
            "metric code. A resume point is the network part way through a stage; a `.dill` row is a finished "
            "stage's model (the best checkpoint its early stopping restored; `fine-tune.dill` is the fully "
            "trained scGLUE). `of_at_most`: the stage's epoch cap "
            "(scGLUE's data-size rule); `lr_reductions`: learning-rate reductions so far (scGLUE stops a stage "
            "after patience runs out at the lowest rate).\n\n" + markdown_table(table, 3) + "\n")
    publish(text, REPO / "benchmarks" / "results" / f"scglue_progress_{a.dataset}.md",
            f"scGLUE through its own schedule: {a.dataset}", write=not a.no_write)


if __name__ == "__main__":
    main()
