"""Mosaic integration (``biclum.integrate_mosaic``): the two-input case unchanged, a bridge's known pairs, three
modalities in one space, bad input, inputs never changed."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import biclum
from biclum.datasets import simulate
from biclum.errors import BiclumInputError
from biclum.mosaic import SEP, procrustes, read_datasets

SMALL = dict(n_top_genes=300, n_pcs=20, mnn_k=20, n_metacells=32, batch_size=128, hidden_dims=(64, 64),
             latent_dim=16, n_shared_pcs=15, feature_batch_size=256, num_threads=1, max_epochs=3, min_steps=0)


@pytest.fixture(scope="module")
def atac_sim():
    rna, atac, ann = simulate(240, modality="atac", paired=True, n_genes=300, seed=1)
    return rna, atac, ann


@pytest.fixture(scope="module")
def protein_sim():
    rna, adt, _ = simulate(200, modality="protein", paired=True, n_genes=300, seed=2)
    return rna, adt


def _split(adata, parts):
    return [adata[adata.obs_names[p]].copy() for p in parts]


def test_two_datasets_equal_integrate(atac_sim):
    """A reference holding RNA and a query holding ATAC: exactly the two-input run."""
    rna, atac, ann = atac_sim
    res = biclum.integrate_mosaic({"ref": {"rna": rna}, "query": {"atac": atac}}, ann, progress=False, **SMALL)
    two = biclum.integrate(rna, atac, "atac", ann, progress=False, **SMALL)
    np.testing.assert_allclose(res["ref"]["rna"].obsm["X_biclum"], two.rna.obsm["X_biclum"], atol=1e-5)
    np.testing.assert_allclose(res["query"]["atac"].obsm["X_biclum"], two.other.obsm["X_biclum"], atol=1e-5)
    assert list(res["ref"]["rna"].obs_names) == list(rna.obs_names)  # the user's names, not the inner ones
    assert res.models["atac"].n_known_pairs == 0


def test_bridge_pairs_and_outputs(atac_sim):
    rna, atac, ann = atac_sim
    idx = np.arange(rna.n_obs)
    bridge, ref, query = idx[:40], idx[40:140], idx[140:]
    (b_rna, r_rna), (b_atac, q_atac) = _split(rna, [bridge, ref]), _split(atac, [bridge, query])
    before = (r_rna.X.copy(), q_atac.X.copy(), list(b_rna.obs.columns))
    res = biclum.integrate_mosaic({"bridge": {"rna": b_rna, "atac": b_atac}, "reference": {"rna": r_rna},
                                   "query": {"peaks": q_atac}}, ann, progress=False, **SMALL)
    assert res.models["atac"].n_known_pairs == 40
    assert res["query"]["atac"].n_obs == 100 and res["bridge"]["atac"].n_obs == 40
    assert res.cells.n_obs == 40 + 40 + 100 + 100
    assert set(res.cells.obs["dataset"]) == {"bridge", "reference", "query"}
    assert res["reference"]["rna"].varm["biclum_loadings"].shape == (r_rna.n_vars, 16)
    assert (r_rna.X != before[0]).nnz == 0 and (q_atac.X != before[1]).nnz == 0
    assert list(b_rna.obs.columns) == before[2]  # no dataset column left on the user's object


def test_three_modalities_one_space(atac_sim, protein_sim, caplog):
    rna, atac, ann = atac_sim
    c_rna, adt = protein_sim
    res = biclum.integrate_mosaic({"multiome": {"rna": rna, "atac": atac}, "cite": {"rna": c_rna, "adt": adt}},
                                  ann, progress=False, **SMALL)
    assert set(res.models) == {"atac", "protein"}
    rot = res.rotations["protein"]
    np.testing.assert_allclose(rot @ rot.T, np.eye(16), atol=1e-4)  # orthogonal: each model's alignment kept
    cite = res["cite"]
    fos_mosaic = biclum.metrics.foscttm_score(cite["rna"].obsm["X_biclum"], cite["protein"].obsm["X_biclum"])
    model = res.models["protein"]
    fos_model = biclum.metrics.foscttm_score(model.get_cell_embeddings("rna"), model.get_cell_embeddings("other"))
    assert fos_mosaic == pytest.approx(fos_model, abs=1e-6)
    assert res.cells.obsm["X_biclum"].shape == (4 * 200 + 80, 16)


def test_procrustes_recovers_a_rotation():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 5))
    q, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    np.testing.assert_allclose(procrustes(x, x @ q), q, atol=1e-5)


@pytest.mark.parametrize("datasets, match", [
    ({}, "dict of dataset name"),
    ({"a": {}}, "holds no modality"),
    ({"a": {"rna": None}}, "give an AnnData"),
    ({"a": {"methylation": "x"}}, "unknown modality"),
    ({"a": "not a dict"}, "give {modality: AnnData}"),
])
def test_bad_structure(datasets, match):
    with pytest.raises(BiclumInputError, match=match):
        read_datasets(datasets)


def test_mismatched_modalities(atac_sim, protein_sim):
    rna, atac, ann = atac_sim
    renamed = atac.copy()
    renamed.obs_names = [f"other{i}" for i in range(renamed.n_obs)]
    with pytest.raises(BiclumInputError, match="share no cell name"):
        biclum.integrate_mosaic({"m": {"rna": rna, "atac": renamed}}, ann, progress=False, **SMALL)
    with pytest.raises(BiclumInputError, match="need RNA"):
        biclum.integrate_mosaic({"a": {"rna": rna}, "b": {"rna": protein_sim[0]}}, progress=False, **SMALL)
    with pytest.raises(BiclumInputError, match="no dataset holds RNA"):
        biclum.integrate_mosaic({"a": {"atac": atac}, "b": {"protein": protein_sim[1]}}, progress=False, **SMALL)
    with pytest.raises(BiclumInputError, match="given twice"):
        read_datasets({"a": {"adt": protein_sim[1], "protein": protein_sim[1]}})


def test_inner_names_keep_datasets_apart(atac_sim):
    """The same cell names in two datasets are different cells (joined with the dataset name inside)."""
    rna, atac, ann = atac_sim
    res = biclum.integrate_mosaic({"r1": {"rna": rna[:120].copy()}, "r2": {"rna": rna[:120].copy()},
                                   "q": {"atac": atac}}, ann, progress=False, **SMALL)
    assert res["r1"]["rna"].n_obs == res["r2"]["rna"].n_obs == 120
    assert all(SEP not in n for n in res["r1"]["rna"].obs_names)
    assert res.models["atac"].batch_keys["rna"] == "biclum_dataset"


def test_save_load_transform(atac_sim, tmp_path):
    """A saved mosaic model loads and embeds new cells in the one space as the fitted one does; a MuData-like
    object (``.mod``) is taken as a dataset."""
    from types import SimpleNamespace

    rna, atac, ann = atac_sim
    res = biclum.integrate_mosaic({"m": SimpleNamespace(mod={"rna": rna, "atac": atac})}, ann, progress=False,
                                  **SMALL)
    res.model.save(str(tmp_path / "mosaic"))
    with pytest.raises(BiclumInputError, match="already holds"):
        res.model.save(str(tmp_path / "mosaic"))
    loaded = biclum.MosaicModel.load(str(tmp_path / "mosaic"))
    for mod in ("rna", "atac"):
        data = rna if mod == "rna" else atac
        np.testing.assert_allclose(loaded.transform(data[:20], mod), res.model.transform(data[:20], mod),
                                   atol=1e-5)
    with pytest.raises(BiclumInputError, match="embeds rna and atac"):
        loaded.transform(rna, "protein")


def test_cli_mosaic(atac_sim, tmp_path, capsys):
    from biclum.cli import main

    rna, atac, ann = atac_sim
    rna.write_h5ad(tmp_path / "rna.h5ad")
    atac[:100].write_h5ad(tmp_path / "atac.h5ad")
    ann.to_csv(tmp_path / "ann.tsv", sep="\t", index=False)
    args = ["mosaic", "--dataset", "ref", f"rna={tmp_path / 'rna.h5ad'}", "--dataset", "query",
            f"atac={tmp_path / 'atac.h5ad'}", "--annotation", str(tmp_path / "ann.tsv"), "--out", str(tmp_path / "o"),
            "--quiet", "--max-epochs", "1", "--set", "min_steps=0", "num_threads=1", "n_metacells=32"]
    assert main(args) == 0
    assert {"ref_rna.h5ad", "query_atac.h5ad", "cells.h5ad", "model", "summary.json"} <= set(
        p.name for p in (tmp_path / "o").iterdir())
    assert biclum.MosaicModel.load(str(tmp_path / "o" / "model")).reference == "atac"
    assert main(["mosaic", "--dataset", "ref", "rna.h5ad", "--out", str(tmp_path / "o2")]) == 2
    assert "MODALITY=FILE" in capsys.readouterr().err
