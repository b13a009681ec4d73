"""Reliability: interrupted runs resume to the same result, non-finite losses stop cleanly, inputs stay intact."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

import biclum
from biclum.datasets import simulate
from biclum.errors import BiclumInputError, BiclumWarning

SMALL = dict(n_top_genes=300, n_pcs=20, mnn_k=20, n_metacells=32, batch_size=128, hidden_dims=(64, 64),
             latent_dim=16, n_shared_pcs=15, feature_batch_size=256, checkpoint_every=1, patience=100,
             num_threads=1)  # bitwise reproducibility needs a fixed thread count
# the environment as it was at collection: embedding R (rpy2, in other test modules) changes os.environ in ways
# that break a child Python's imports
CLEAN_ENV = dict(os.environ)
SIM = dict(n_cells=400, modality="atac", n_genes=300, n_distal_peaks=200, seed=5)


@pytest.fixture(scope="module")
def sim():
    return simulate(**SIM)


def test_sigkill_then_resume_is_identical(sim, tmp_path):
    rna, atac, ann = sim
    ckpt = tmp_path / "ckpt"
    script = textwrap.dedent(f"""
        import os, signal, biclum
        from biclum.datasets import simulate
        rna, atac, ann = simulate(**{SIM!r})
        model = biclum.BiCLUM(rna, atac, "atac", ann, seed=11, **{SMALL!r})
        def die(stage, step, total, msg):
            if stage == "train" and step == 3:
                os.kill(os.getpid(), signal.SIGKILL)
        model.fit(6, progress=False, checkpoint_dir={str(ckpt)!r}, progress_callback=die)
    """)
    src = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "python")
    env = {**CLEAN_ENV, "PYTHONPATH": os.pathsep.join(filter(None, [src, CLEAN_ENV.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert (ckpt / "checkpoint.pt").exists()

    resumed = biclum.BiCLUM(rna, atac, "atac", ann, seed=11, **SMALL)
    resumed.fit(6, progress=False, checkpoint_dir=str(tmp_path / "ckpt2"), resume=str(ckpt))
    straight = biclum.BiCLUM(rna, atac, "atac", ann, seed=11, **SMALL)
    straight.fit(6, progress=False)
    assert len(resumed.history) == len(straight.history) == 6
    for m in ("rna", "other"):
        assert np.abs(resumed.get_cell_embeddings(m) - straight.get_cell_embeddings(m)).max() == 0


def test_resume_missing_checkpoint(sim, tmp_path):
    rna, atac, ann = sim
    model = biclum.BiCLUM(rna, atac, "atac", ann, **SMALL)
    with pytest.raises(BiclumInputError, match="no checkpoint there"):
        model.fit(2, progress=False, resume=str(tmp_path / "nothing"))


def test_nan_loss_stops_with_message_and_finite_model(sim):
    rna, atac, ann = sim
    model = biclum.BiCLUM(rna, atac, "atac", ann, **SMALL)
    model.fit(2, progress=False)  # some good epochs first
    calls = {"n": 0}
    original = model.module.loss
    before_nan = {}

    def poisoned(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:  # the weights after the last good step (the forward pass may move BatchNorm stats)
            before_nan.update({k: v.detach().clone() for k, v in model.module.state_dict().items()})
        terms = original(*args, **kwargs)
        if calls["n"] == 3:
            terms["cell"] = terms["cell"] * float("nan")
            terms["total"] = terms["total"] + terms["cell"]
        return terms

    from biclum import training

    real_trainer = training.Trainer

    class Poisoned(real_trainer):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            self.loss_fn = poisoned

    training.Trainer = Poisoned
    import biclum.model as model_mod

    model_mod.Trainer = Poisoned
    try:
        with pytest.warns(BiclumWarning, match=r"non-finite loss at epoch 0, step 2: term 'cell'"):
            model.fit(3, progress=False)
    finally:
        training.Trainer = real_trainer
        model_mod.Trainer = real_trainer
    assert model.train_status.startswith("stopped: non-finite loss")
    # the model keeps the last good weights: those before the NaN step (not the first epochs' best, not a
    # partial update)
    after = model.module.state_dict()
    assert set(after) == set(before_nan)
    params = {name for name, _ in model.module.named_parameters()}
    for k, v in after.items():
        if k in params:
            assert torch.equal(v, before_nan[k]), k
    for m in ("rna", "other"):
        assert np.isfinite(model.get_cell_embeddings(m)).all()


def test_interrupt_returns_usable_model(sim):
    rna, atac, ann = sim
    model = biclum.BiCLUM(rna, atac, "atac", ann, **SMALL)

    def interrupt(stage, step, total, msg):
        if stage == "train" and step == 2:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.warns(BiclumWarning, match="training interrupted during epoch 2"):
        model.fit(10, progress=False, progress_callback=interrupt)
    assert model.train_status.startswith("interrupted")
    assert np.isfinite(model.get_cell_embeddings("rna")).all()


def test_bad_paths_in_cli(tmp_path, capsys):
    from biclum.cli import main

    args = ["fit", "--rna", str(tmp_path / "missing.h5ad"), "--other", "x.h5ad", "--out", str(tmp_path / "o")]
    assert main(args) == 2 and "does not exist" in capsys.readouterr().err
    with pytest.raises(BiclumInputError, match="does not exist"):  # --debug: the exception itself
        main(args + ["--debug"])
    bad = tmp_path / "rna.csv"
    bad.write_text("a,b\n")
    assert main(["fit", "--rna", str(bad), "--other", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "is not an .h5ad file" in capsys.readouterr().err
