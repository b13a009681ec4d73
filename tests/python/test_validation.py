"""Bad input (issue 8): each case raises a clear error (type and message) or warns and works around it."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import scipy.sparse as sp

import biclum
from biclum.datasets import simulate
from biclum.errors import BiclumInputError, BiclumWarning
from biclum.validation import MIN_CELLS, cap_to_data, check_modality

SMALL = dict(n_top_genes=300, n_pcs=20, mnn_k=20, n_metacells=32, batch_size=128, hidden_dims=(64, 64),
             latent_dim=16, n_shared_pcs=15, feature_batch_size=256)


@pytest.fixture(scope="module")
def sim():
    return simulate(300, modality="atac", n_genes=300, n_distal_peaks=200, seed=9)


def test_not_anndata():
    with pytest.raises(BiclumInputError, match="expected an AnnData .* got ndarray"):
        check_modality(np.ones((5, 5)), "rna")


def test_zero_features(sim):
    rna, _, _ = sim
    with pytest.raises(BiclumInputError, match="rna: the modality has zero features"):
        check_modality(rna[:, :0].copy(), "rna")


def test_inf_values(sim):
    rna, _, _ = sim
    bad = rna.copy()
    bad.X = bad.X.tocsr(copy=True)
    bad.X.data[3] = np.inf
    with pytest.raises(BiclumInputError, match="1 NaN/Inf values"):
        check_modality(bad, "rna")


def test_missing_layer(sim):
    rna, _, _ = sim
    with pytest.raises(BiclumInputError, match="layer 'counts' does not exist"):
        check_modality(rna, "rna", layer="counts")


def test_layer_is_used(sim):
    rna, atac, ann = sim
    r = rna.copy()
    r.layers["counts"] = r.X.copy()
    r.X = sp.csr_matrix(r.X.shape, dtype=np.float32)  # X empty: the counts are in the layer
    model = biclum.BiCLUM(r, atac, "atac", ann, rna_layer="counts", **SMALL)
    assert len(model.cell_names["rna"]) == r.n_obs


def test_too_few_cells(sim):
    rna, _, _ = sim
    with pytest.raises(BiclumInputError, match=f"only 5 cells with counts; biclum needs at least {MIN_CELLS}"):
        check_modality(rna[:5].copy(), "rna")


def test_all_cells_zero(sim):
    rna, _, _ = sim
    z = rna.copy()
    z.X = sp.csr_matrix(z.X.shape, dtype=np.float32)
    with pytest.raises(BiclumInputError, match="every cell has zero counts"):
        check_modality(z, "rna")


def test_zero_count_genes_are_ignored(sim, caplog):
    rna, _, _ = sim
    r = rna.copy()
    X = r.X.tolil()
    X[:, :4] = 0
    r.X = sp.csr_matrix(X)
    biclum.logger.propagate = True
    try:
        with caplog.at_level(logging.INFO, logger="biclum"):
            check_modality(r, "rna")
    finally:
        biclum.logger.propagate = False
    assert any("features have zero counts in every cell; they are ignored" in rec.message for rec in caplog.records)


def test_batch_larger_than_cells_is_capped(biclum_log, recwarn):
    # an automatic choice: logged (INFO), not warned (warnings are for what a user must act on)
    assert cap_to_data(512, 100, "batch_size") == 100
    assert any("batch_size=512 is larger than the 100 cells available; using 100" in r.message
               for r in biclum_log.records)
    assert not [w for w in recwarn if issubclass(w.category, BiclumWarning)]


def test_batch_capped_in_training(sim, biclum_log, recwarn):
    rna, atac, ann = sim
    model = biclum.BiCLUM(rna, atac, "atac", ann, **{**SMALL, "batch_size": 1000})
    model.fit(1, progress=False)
    assert any("batch_size (rna)=1000 is larger than the 300 cells available" in r.message
               for r in biclum_log.records)
    assert not [w for w in recwarn if issubclass(w.category, BiclumWarning)]


def test_string_matrix_refused(sim):
    import anndata as ad

    a = ad.AnnData(X=np.array([["a", "b"], ["c", "d"]], dtype=object))
    with pytest.raises(BiclumInputError, match="must hold numbers"):
        check_modality(a, "rna")


def test_bad_config_values():
    with pytest.raises(BiclumInputError, match="tau_cell must be > 0"):
        biclum.BiclumConfig.from_preset("default", tau_cell=0)
    with pytest.raises(BiclumInputError, match="dropout must be in"):
        biclum.BiclumConfig.from_preset("default", dropout=1.5)
    with pytest.raises(BiclumInputError, match="preset='fast' is unknown"):
        biclum.BiclumConfig.from_preset("fast")


def test_annotation_of_other_genome_warns(sim):
    rna, atac, ann = sim
    shifted = ann.copy()
    shifted["start"] += 5_000_000
    shifted["end"] += 5_000_000
    with pytest.raises(BiclumInputError, match="no peak of atac overlaps any gene window"):
        with pytest.warns(BiclumWarning, match="(?i)genome|TSS"):  # ... after the genome check warned
            biclum.BiCLUM(rna, atac, "atac", shifted, **SMALL)


def test_gpu_requested_without_gpu(sim):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    rna, atac, ann = sim
    model = biclum.BiCLUM(rna, atac, "atac", ann, device="cuda", **SMALL)
    with pytest.raises(BiclumInputError, match="torch sees no CUDA GPU"):
        model.fit(1, progress=False)
