"""The optional modality discriminator (``adversarial``): its game stays out of the monitored loss, it is saved and
loaded with the network, and it is absent (the network unchanged) by default."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import biclum
from biclum.datasets import simulate
from biclum.module import BiCLUMModule


@pytest.fixture(scope="module")
def sim():
    rna, atac, ann = simulate(n_cells=300, modality="atac", paired=True, seed=1)
    return rna, atac, ann


def test_default_network_has_no_discriminator(sim):
    rna, atac, ann = sim
    model = biclum.BiCLUM(rna, atac, modality="atac", annotation=ann, seed=0)
    assert model.module.discriminator is None
    assert "modality_discriminator" in model.module.init_params


def test_adversarial_trains_logs_and_round_trips(sim, tmp_path):
    rna, atac, ann = sim
    res = biclum.integrate(rna, atac, modality="atac", annotation=ann, seed=0, max_epochs=3, progress=False,
                           adversarial=3.0)
    history = res.model.history
    assert all("adversarial" in r for r in history)
    assert all(np.isfinite(r["adversarial"]) and r["adversarial"] > 0 for r in history)
    assert res.rna.uns["biclum"]["params"]["adversarial"] == 3.0
    res.model.save(str(tmp_path / "m"))
    loaded = biclum.BiCLUM.load(str(tmp_path / "m"))
    assert loaded.module.discriminator is not None
    np.testing.assert_allclose(loaded.transform(rna, "rna"), res.rna.obsm["X_biclum"], atol=1e-5)


def test_gradient_reversal_trains_both_sides():
    """One step lowers the discriminator's loss while the encoders receive the reversed gradient."""
    torch.manual_seed(0)
    net = BiCLUMModule(n_pcs={"rna": 5, "other": 5}, n_features={"rna": 4, "other": 4}, sketch_dim=3,
                       hidden_dims=(8, 8), latent_dim=4, modality_discriminator=True)
    cell = {"rna": torch.randn(16, 4, requires_grad=True), "other": (torch.randn(16, 4) + 2).requires_grad_()}
    loss = net._adversarial_term(cell, {"rna": 16, "other": 16})
    loss.backward()
    d_grad = net.discriminator[-1].weight.grad
    assert d_grad is not None and float(d_grad.abs().sum()) > 0
    step = 0.1
    z = {m: (c - step * c.grad).detach() for m, c in cell.items()}  # the encoders' side: follows the reversed gradient
    assert float(net._adversarial_term(z, {"rna": 16, "other": 16})) > float(loss)
