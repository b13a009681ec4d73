"""Same seed, same embeddings: fit fixed runs and save (or compare) their cell and feature embeddings.

    PYTHONPATH=/work/ref71/python python studies/same_seed.py --save ref.npz      # before a refactor
    PYTHONPATH=python python studies/same_seed.py --save new.npz --compare ref.npz  # after it

Runs (seed 0, num_threads=1, defaults unless named): ``demo_atac`` (what ``biclum fit --demo --modality atac
--seed 0`` fits), ``eccite`` (the shared ECCITE RNA + ADT), ``batches`` (simulated ATAC with two batches and
both batch keys), ``demo_protein`` (simulated RNA + ADT) and ``refresh`` (a small ATAC run that re-finds the MNN
pairs every 2 epochs, saved, loaded and used to embed the training cells again). Every run writes checkpoints (as
``biclum fit`` does). Only the public API is used,
so the script runs on old versions too. ``--compare`` prints the max abs difference of every array.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np

RUNS = ("demo_atac", "eccite", "batches", "demo_protein", "refresh")


def _data(name):
    from biclum.datasets import load_shared, simulate

    if name == "demo_atac":
        return simulate(3000, modality="atac", seed=0) + ({},)
    if name == "eccite":
        rna, other, modality, ann = load_shared("eccite")
        return rna, other, ann, {}
    if name == "batches":
        rna, other, ann = simulate(1000, modality="atac", n_batches=2, seed=0)
        return rna, other, ann, {"rna_batch_key": "batch", "other_batch_key": "batch"}
    if name == "demo_protein":
        return simulate(1000, modality="protein", seed=0) + ({},)
    rna, other, ann = simulate(600, modality="atac", seed=1)
    return rna, other, ann, {"refresh_pairs_every": 2, "max_epochs": 6}


def run(name: str) -> dict:
    import biclum

    rna, other, ann, extra = _data(name)
    modality = "protein" if name in ("eccite", "demo_protein") else "atac"
    max_epochs = extra.pop("max_epochs", None)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as checkpoints:
        res = biclum.integrate(rna, other, modality, ann, seed=0, max_epochs=max_epochs, progress=False,
                               num_threads=1, checkpoint_dir=checkpoints, **extra)
    out = {}
    for side, adata in (("rna", res.rna), ("other", res.other)):
        out[f"{name}/{side}/X_biclum"] = np.asarray(adata.obsm["X_biclum"])
        out[f"{name}/{side}/loadings"] = np.asarray(adata.varm["biclum_loadings"])
        out[f"{name}/{side}/features"] = res.model.get_feature_embeddings(side).values
    out[f"{name}/history_total"] = np.array([h["total"] for h in res.history])
    if name == "refresh":
        with tempfile.TemporaryDirectory() as tmp:
            res.model.save(os.path.join(tmp, "m"))
            loaded = biclum.BiCLUM.load(os.path.join(tmp, "m"))
            out[f"{name}/loaded/transform_rna"] = loaded.transform(rna, "rna")
            out[f"{name}/loaded/transform_other"] = loaded.transform(other, "other")
            out[f"{name}/loaded/features_rna"] = loaded.get_feature_embeddings("rna").values
    print(f"{name}: {len(res.history)} epochs, {res.model.train_status}, {time.perf_counter() - t0:.1f} s",
          flush=True)
    return out


def compare(new: dict, ref_path: str) -> float:
    ref = np.load(ref_path)
    worst = 0.0
    print(f"{'array':40s} {'shape':>14s} max_abs_diff")
    for key in sorted(set(new) | set(ref.files)):
        if key not in new or key not in ref.files:
            print(f"{key:40s} {'':>14s} missing in {'new' if key not in new else 'reference'}")
            continue
        a, b = new[key], ref[key]
        diff = float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max()) if a.shape == b.shape else np.inf
        worst = max(worst, diff)
        print(f"{key:40s} {str(a.shape):>14s} {diff:g}")
    print(f"overall max abs difference: {worst:g}")
    return worst


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--save", help="write the embeddings to this .npz")
    p.add_argument("--compare", help="compare with the embeddings of this .npz")
    p.add_argument("--runs", nargs="+", default=list(RUNS), choices=RUNS)
    args = p.parse_args(argv)
    import biclum

    print(f"biclum {biclum.__version__} from {os.path.dirname(biclum.__file__)}", flush=True)
    arrays = {}
    for name in args.runs:
        arrays.update(run(name))
    if args.save:
        np.savez_compressed(args.save, **arrays)
    return 0 if not args.compare or compare(arrays, args.compare) == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
