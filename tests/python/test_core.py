"""Core model: losses, pairs, setup validation, fit, embeddings, save/load, query mapping, determinism."""
from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch

import biclum
from biclum.datasets import simulate
from biclum.errors import BiclumInputError, BiclumModelError, BiclumWarning
from biclum.module import nt_xent
from biclum.pairs import mutual_nearest_neighbors

SMALL = dict(n_top_genes=300, n_pcs=20, mnn_k=20, n_metacells=32, batch_size=128, hidden_dims=(64, 64),
             latent_dim=16, n_shared_pcs=15, feature_batch_size=256)


@pytest.fixture(scope="module")
def sim_atac():
    return simulate(400, modality="atac", n_genes=300, n_distal_peaks=200, seed=3)


@pytest.fixture(scope="module")
def fitted(sim_atac):
    rna, atac, ann = sim_atac
    return biclum.integrate(rna, atac, "atac", ann, max_epochs=3, progress=False, **SMALL)


# ------------------------------------------------------------------------------------------------ losses / pairs
def test_nt_xent_hand_computed():
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    b = torch.tensor([[2.0, 0.0], [0.0, 3.0]])  # same directions: cosine ignores the norm
    expected = math.log((math.e + 2) / math.e)  # each sample: positive sim 1, two negatives at sim 0 (tau=1)
    assert float(nt_xent(a, b, 1.0)) == pytest.approx(expected, rel=1e-6)
    # temperature 0.5 scales the similarities by 2
    expected_half = math.log((math.e**2 + 2) / math.e**2)
    assert float(nt_xent(a, b, 0.5)) == pytest.approx(expected_half, rel=1e-6)


def test_nt_xent_prefers_true_pairs():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(32, 8, generator=g)
    assert float(nt_xent(a, a + 0.01, 0.5)) < float(nt_xent(a, a[torch.randperm(32, generator=g)], 0.5))


def test_mnn_constructed_case():
    # three well separated points per modality, matched 0<->2, 1<->0, 2<->1; with k=1 the MNN are exactly those
    x_rna = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=np.float32)
    x_other = np.array([[0, 1.0, 0.1], [0.1, 0, 1.0], [1.0, 0.1, 0]], dtype=np.float32)
    pairs = mutual_nearest_neighbors(x_rna, x_other, k=1)
    got = set(zip(*pairs.adjacency.nonzero()))
    assert got == {(0, 2), (1, 0), (2, 1)}
    # with k=2, every mutual pair within the top-2 lists appears and the originals are kept
    pairs2 = mutual_nearest_neighbors(x_rna, x_other, k=2)
    assert {(0, 2), (1, 0), (2, 1)} <= set(zip(*pairs2.adjacency.nonzero()))


def test_mnn_flags_cells_without_partner():
    x_rna = np.array([[1, 0], [0.9, 0.1], [0.95, 0.05]], dtype=np.float32)
    x_other = np.array([[1, 0.01], [0, 1]], dtype=np.float32)
    pairs = mutual_nearest_neighbors(x_rna, x_other, k=1)
    fa, fb = pairs.flags()
    assert fa.sum() == 1 and fb.tolist() == [True, False]


# ------------------------------------------------------------------------------------------------ fit / results
def test_integrate_writes_results(fitted, sim_atac):
    rna, atac, _ = sim_atac
    res = fitted
    assert res.rna.obsm["X_biclum"].shape == (rna.n_obs, 16)
    assert res.other.obsm["X_biclum"].shape == (atac.n_obs, 16)
    assert res.rna.varm["biclum_loadings"].shape == (rna.n_vars, 16)
    used = res.rna.var["biclum_feature"].values
    assert np.all(res.rna.varm["biclum_loadings"][~used] == 0) and np.any(res.rna.varm["biclum_loadings"][used] != 0)
    assert res.rna.X is None and res.other.X is None
    params = res.rna.uns["biclum"]["params"]
    assert params["mnn_k"] == 20 and params["alpha"] == 1.0 and params["preset"] == "default"
    assert len(res.history) == 3 and {"cell", "feature", "recon_rna", "recon_other"} <= set(res.history[0])
    assert np.isfinite(res.rna.obsm["X_biclum"]).all()


def test_inputs_not_modified(sim_atac):
    rna, atac, ann = sim_atac
    before = (rna.X.copy(), rna.obs.copy(), rna.var.copy(), atac.X.copy(), atac.obs.copy(), atac.var.copy())
    biclum.integrate(rna, atac, "atac", ann, max_epochs=1, progress=False, **SMALL)
    after = (rna.X, rna.obs, rna.var, atac.X, atac.obs, atac.var)
    assert (before[0] != after[0]).nnz == 0 and (before[3] != after[3]).nnz == 0
    for b, a in zip(before[1:3] + before[4:], after[1:3] + after[4:]):
        assert b.equals(a)
    assert not rna.obsm and not atac.obsm and "biclum" not in rna.uns


@pytest.mark.parametrize("threads", [1, 2])
def test_same_seed_identical(sim_atac, threads):
    rna, atac, ann = sim_atac
    fixed = {**SMALL, "num_threads": threads}  # bitwise reproducibility needs a fixed thread count
    r1 = biclum.integrate(rna, atac, "atac", ann, max_epochs=2, progress=False, seed=7, **fixed)
    r2 = biclum.integrate(rna, atac, "atac", ann, max_epochs=2, progress=False, seed=7, **fixed)
    assert np.abs(r1.rna.obsm["X_biclum"] - r2.rna.obsm["X_biclum"]).max() == 0
    assert np.abs(r1.other.obsm["X_biclum"] - r2.other.obsm["X_biclum"]).max() == 0


def test_save_load_round_trip(fitted, sim_atac, tmp_path):
    rna, atac, _ = sim_atac
    model = fitted.model
    model.save(str(tmp_path / "m"))
    loaded = biclum.BiCLUM.load(str(tmp_path / "m"))
    np.testing.assert_allclose(loaded.transform(rna, "rna"), model.get_cell_embeddings("rna"), atol=1e-5)
    # ATAC peaks go through gene activity with the annotation kept in the model
    np.testing.assert_allclose(loaded.transform(atac, "other"), model.get_cell_embeddings("other"), atol=1e-5)
    np.testing.assert_allclose(loaded.get_feature_embeddings("rna").values,
                               model.get_feature_embeddings("rna").values, atol=1e-6)
    with pytest.raises(BiclumInputError, match="already holds a saved model"):
        model.save(str(tmp_path / "m"))
    with pytest.raises(biclum.errors.BiclumModelError, match="loaded model holds no training cells"):
        loaded.write_to(rna, "rna")


def test_load_refuses_other_features(fitted, sim_atac, tmp_path):
    rna, _, _ = sim_atac
    fitted.model.save(str(tmp_path / "m2"))
    loaded = biclum.BiCLUM.load(str(tmp_path / "m2"))
    other_genes = rna[:, 50:].copy()
    with pytest.raises(BiclumModelError, match="lacks .* of the model's"):
        loaded.transform(other_genes, "rna")


def test_protein_modality_runs():
    rna, adt, _ = simulate(300, modality="protein", n_genes=300, seed=1)
    res = biclum.integrate(rna, adt, "protein", max_epochs=2, progress=False, **{**SMALL, "min_shared_genes": 10})
    assert res.other.obsm["X_biclum"].shape[0] == adt.n_obs
    assert "PTPRC" in set(res.other.var_names) and "IgG1_isotype" not in set(res.other.var_names)


# ------------------------------------------------------------------------------------------------ bad input
def _small(sim):
    rna, atac, ann = sim
    return rna.copy(), atac.copy(), ann


def test_error_no_shared_genes(sim_atac):
    rna, atac, ann = _small(sim_atac)
    rna.var_names = [f"other_{g}" for g in rna.var_names]
    with pytest.raises(BiclumInputError, match=r"share 0 genes but biclum needs at least 5"):
        biclum.BiCLUM(rna, atac, "atac", ann, **SMALL)


def test_error_zero_cells(sim_atac):
    rna, atac, ann = _small(sim_atac)
    with pytest.raises(BiclumInputError, match="zero cells"):
        biclum.BiCLUM(rna[:0].copy(), atac, "atac", ann, **SMALL)


def test_error_nan(sim_atac):
    rna, atac, ann = _small(sim_atac)
    rna.X = rna.X.tocsr(copy=True)
    rna.X.data[0] = np.nan
    with pytest.raises(BiclumInputError, match="NaN/Inf"):
        biclum.BiCLUM(rna, atac, "atac", ann, **SMALL)


def test_error_negative(sim_atac):
    rna, atac, ann = _small(sim_atac)
    atac.X = atac.X.tocsr(copy=True)
    atac.X.data[:5] = -1
    with pytest.raises(BiclumInputError, match="negative values"):
        biclum.BiCLUM(rna, atac, "atac", ann, **SMALL)


@pytest.mark.parametrize("axis", ["cell", "feature"])
def test_error_duplicated_names(sim_atac, axis):
    rna, atac, ann = _small(sim_atac)
    if axis == "cell":
        rna.obs_names = ["same"] * 2 + list(rna.obs_names[2:])
    else:
        rna.var_names = ["Gene00000"] * 2 + list(rna.var_names[2:])
    with pytest.raises(BiclumInputError, match=f"duplicated {axis} names"):
        biclum.BiCLUM(rna, atac, "atac", ann, **SMALL)


def test_error_peaks_without_coordinates(sim_atac):
    rna, atac, ann = _small(sim_atac)
    atac.var = atac.var.drop(columns=["chrom", "start", "end"])
    atac.var_names = [f"peak{i}" for i in range(atac.n_vars)]
    with pytest.raises(BiclumInputError, match="(?i)coordinates"):
        biclum.BiCLUM(rna, atac, "atac", ann, **SMALL)


def test_zero_count_cells_dropped_with_warning(sim_atac):
    rna, atac, ann = _small(sim_atac)
    X = rna.X.tolil()
    X[:3] = 0
    rna.X = sp.csr_matrix(X)
    with pytest.warns(BiclumWarning, match="3 of 400 cells have zero counts"):
        model = biclum.BiCLUM(rna, atac, "atac", ann, **SMALL)
    assert len(model.cell_names["rna"]) == 397


def test_non_integer_is_an_error(sim_atac):
    rna, atac, ann = _small(sim_atac)
    rna.X = rna.X * 0.5
    with pytest.raises(BiclumInputError, match="non-integer values .* not raw counts"):
        biclum.BiCLUM(rna, atac, "atac", ann, **SMALL)


def test_unknown_option_and_modality(sim_atac):
    rna, atac, ann = sim_atac
    with pytest.raises(BiclumInputError, match="unknown biclum option 'mnnk'"):
        biclum.BiCLUM(rna, atac, "atac", ann, mnnk=3)
    with pytest.raises(BiclumInputError, match="modality='rna2'"):
        biclum.BiCLUM(rna, atac, "rna2", ann)


def test_k_capped_to_data(biclum_log):
    rna, atac, ann = simulate(60, n_genes=200, n_distal_peaks=50, seed=2)
    biclum.BiCLUM(rna, atac, "atac", ann, **{**SMALL, "mnn_k": 200})
    assert any("mnn_k=200 is larger than the 60 cells" in r.message for r in biclum_log.records)


def test_cli_fit_demo_writes_outputs(tmp_path):
    import anndata as ad

    from biclum.cli import main

    out = tmp_path / "out"
    rc = main(["fit", "--demo", "--demo-cells", "300", "--out", str(out), "--quiet", "--no-umap",
               "--set", "n_top_genes=300", "mnn_k=20", "n_metacells=32", "hidden_dims=64", "max_epochs=2"])
    assert rc == 0
    for name in ("rna.h5ad", "other.h5ad", "loss_history.csv", "loss.png", "model/model.json",
                 "model/model.pt", "summary.json"):
        assert (out / name).exists(), name
    r = ad.read_h5ad(out / "rna.h5ad")
    assert r.X is None and r.obsm["X_biclum"].shape[0] == 300 and "biclum_loadings" in r.varm
    reloaded = biclum.BiCLUM.load(str(out / "model"))
    assert reloaded.modality == "atac" and len(reloaded.history) == 2  # --set max_epochs=2 as --max-epochs 2
