"""Distributed training (issue 7): two processes under torchrun (gloo, CPU) train the same model as one process.

The CLI runs under ``python -m torch.distributed.run --nproc_per_node 2``; rank 0 writes the outputs, and the
embeddings are finite and as good as one process's on a paired simulation (FOSCTTM within 0.05).
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import biclum
from biclum import metrics
from biclum.config import parse_overrides
from biclum.datasets import simulate

REPO = Path(__file__).resolve().parents[2]
CLEAN_ENV = dict(os.environ)  # before other test modules embed R (see test_reliability)
SET = ["n_top_genes=300", "n_pcs=30", "mnn_k=20", "n_metacells=32", "hidden_dims=64", "latent_dim=16",
       "n_shared_pcs=15", "batch_size=128", "feature_batch_size=256"]
EPOCHS = 8


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _foscttm(rna_emb, other_emb) -> float:
    fx, fy = metrics.foscttm(rna_emb, other_emb)
    return float((fx.mean() + fy.mean()) / 2)


@pytest.fixture(scope="module")
def paired(tmp_path_factory):
    d = tmp_path_factory.mktemp("sim")
    rna, atac, ann = simulate(600, modality="atac", paired=True, n_genes=300, n_distal_peaks=200, seed=4)
    rna.write_h5ad(d / "rna.h5ad")
    atac.write_h5ad(d / "atac.h5ad")
    ann.to_csv(d / "annotation.tsv.gz", sep="\t", index=False)
    return d, rna, atac, ann


def test_torchrun_two_processes_match_one(paired, tmp_path):
    d, rna, atac, ann = paired
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), "-m", "biclum.cli", "fit", "--rna", str(d / "rna.h5ad"),
           "--other", str(d / "atac.h5ad"), "--annotation", str(d / "annotation.tsv.gz"), "--out", str(out),
           "--max-epochs", str(EPOCHS), "--seed", "3", "--quiet", "--no-umap", "--set", *SET]
    env = {**CLEAN_ENV, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "python"), CLEAN_ENV.get("PYTHONPATH")]))}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    summary = json.loads((out / "summary.json").read_text())
    assert summary["processes"] == 2 and summary["epochs"] == EPOCHS
    assert proc.stdout.count("biclum fit:") == 1  # only rank 0 reports and writes
    assert (out / "checkpoints" / "checkpoint.pt").exists() and (out / "model" / "model.pt").exists()

    import anndata as ad

    r, o = ad.read_h5ad(out / "rna.h5ad"), ad.read_h5ad(out / "other.h5ad")
    x, y = r.obsm["X_biclum"], o.obsm["X_biclum"]
    assert np.isfinite(x).all() and np.isfinite(y).all()
    assert list(r.obs_names) == list(o.obs_names)  # paired: same cells, same order
    fos_two = _foscttm(x, y)

    one = biclum.integrate(rna, atac, "atac", ann, seed=3, max_epochs=EPOCHS, progress=False, num_threads=1,
                           **parse_overrides(SET))
    fos_one = _foscttm(one.rna.obsm["X_biclum"], one.other.obsm["X_biclum"])
    print(f"FOSCTTM one process {fos_one:.4f}, two processes {fos_two:.4f}")
    assert fos_one < 0.25, fos_one
    assert abs(fos_two - fos_one) <= 0.05, (fos_one, fos_two)


def test_single_process_helpers_are_no_ops():
    from biclum import distributed

    assert not distributed.is_distributed()
    assert distributed.rank() == 0 and distributed.world_size() == 1 and distributed.is_main_process()
    assert distributed.all_reduce_mean({"a": 1.5}) == {"a": 1.5}
    assert distributed.any_true(True, False) == (True, False)
    assert distributed.broadcast_object({"x": 1}) == {"x": 1}
    assert distributed.shard_batch_size(512, 2) == 256 and distributed.shard_batch_size(1, 4) == 1
    distributed.barrier()
