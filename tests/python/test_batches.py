"""Batches within a modality (issue 16): simulator, mixing metrics, centring, cross-batch pairs, model, query."""
from __future__ import annotations

import numpy as np
import pytest

import biclum
from biclum.batches import BatchCentering, BatchShifts, cross_batch_pairs, per_batch_feature_means
from biclum.datasets import simulate
from biclum.errors import BiclumInputError, BiclumWarning
from biclum.metrics import evaluate, ilisi, within_modality_batch_mixing

SMALL = dict(n_top_genes=300, n_pcs=20, n_metacells=32, batch_size=128, hidden_dims=(64, 64), latent_dim=16,
             n_shared_pcs=15, feature_batch_size=256, num_threads=1)


@pytest.fixture(scope="module")
def sim_batches():
    return simulate(300, modality="protein", n_genes=300, paired=True, n_batches=2, batch_effect=1.0, seed=5)


@pytest.fixture(scope="module")
def fitted_batches(sim_batches):
    rna, adt, _ = sim_batches
    return biclum.integrate(rna, adt, "protein", max_epochs=4, progress=False, rna_batch_key="batch",
                            other_batch_key="batch", **SMALL)


# ------------------------------------------------------------------------------------------------- simulator
def test_simulate_batches_leave_the_default_data_alone():
    a, _, _ = simulate(100, modality="protein", n_genes=200, seed=2)
    b, _, _ = simulate(100, modality="protein", n_genes=200, seed=2, n_batches=1, batch_effect=3.0)
    assert (a.X != b.X).nnz == 0 and "batch" not in a.obs


def test_simulate_batches_shift_counts(sim_batches):
    rna, adt, _ = sim_batches
    assert set(rna.obs["batch"]) == {"b0", "b1"}
    assert (rna.obs["batch"].to_numpy() == adt.obs["batch"].to_numpy()).all()  # paired: same batch
    clean, _, _ = simulate(300, modality="protein", n_genes=300, paired=True, seed=5)
    assert (clean.X != rna.X).nnz > 0


# --------------------------------------------------------------------------------------------------- metrics
def test_ilisi_constructed_cases():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 4))
    b = np.repeat(["a", "b"], 200)
    assert ilisi(x, b) > 0.85  # interleaved batches
    far = x.copy()
    far[200:] += 50
    assert ilisi(far, b) == pytest.approx(0.0, abs=1e-6)  # every neighbourhood holds one batch
    assert ilisi(far, b, scale=False) == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(BiclumInputError, match="at least 2 batches"):
        ilisi(x, np.zeros(400))


def test_batch_asw_within_cell_types():
    rng = np.random.default_rng(1)
    ct = np.repeat(["t0", "t1"], 200)
    x = rng.normal(size=(400, 3)) + np.where(ct == "t1", 30, 0)[:, None]  # types apart, batches mixed
    b = np.tile(["a", "b"], 200)
    mixed = within_modality_batch_mixing(x, b, ct)
    assert mixed["batch_asw"] > 0.9 and mixed["ilisi"] > 0.8
    split = x + np.where(b == "b", 10, 0)[:, None]
    apart = within_modality_batch_mixing(split, b, ct)
    assert apart["batch_asw"] < 0.3 and apart["ilisi"] < 0.05


def test_evaluate_adds_within_modality_mixing_only_with_batches():
    rng = np.random.default_rng(2)
    xr, xo = rng.normal(size=(60, 5)), rng.normal(size=(60, 5))
    base = evaluate(xr, xo, paired=True, nmi=False)
    assert not any(k.startswith(("batch_asw_", "ilisi_")) for k in base)
    b = np.tile(["a", "b"], 30)
    out = evaluate(xr, xo, paired=True, nmi=False, rna_batch=b, other_batch=b)
    assert {"batch_asw_rna", "batch_asw_other", "ilisi_rna", "ilisi_other"} <= set(out)
    assert out["foscttm"] == base["foscttm"]


# --------------------------------------------------------------------------------------- centring and pairs
def test_batch_centering_seen_unseen_and_none():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(100, 3)).astype(np.float32)
    labels = np.repeat(["a", "b"], 50)
    x[50:] += 5
    c = BatchCentering.fit(x, labels)
    out = c.transform(x, labels)
    np.testing.assert_allclose(out[:50].mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(out[50:].mean(0), 0, atol=1e-5)
    query = x[50:] + 3  # an unseen batch is centred on its own mean
    np.testing.assert_allclose(c.transform(query, np.repeat("new", 50)), out[50:], atol=1e-5)
    np.testing.assert_allclose(c.transform(x[:10], None), x[:10] - x.mean(0), atol=1e-5)
    again = BatchCentering.from_arrays(c.to_arrays("rna_"), "rna_")
    np.testing.assert_allclose(again.transform(x, labels), out)
    scaled = BatchCentering.fit(x * np.where(labels == "b", 3, 1)[:, None], labels, scale=True)
    assert scaled.scales[1].mean() > 2 * scaled.scales[0].mean()


def _two_donors(rng, shift):
    """Two cell types 8 apart; batch a is 80% type 0, batch b 20%; batch b moved by ``shift``."""
    centres = np.zeros((2, 4), dtype=np.float32)
    centres[1, 0] = 8
    types = np.r_[np.repeat([0, 1], [160, 40]), np.repeat([0, 1], [40, 160])]
    labels = np.repeat(["a", "b"], 200)
    x = centres[types] + 0.3 * rng.normal(size=(400, 4)).astype(np.float32)
    x[labels == "b"] += shift
    return x, labels, types


def test_mnn_shifts_keep_a_composition_difference():
    # batch means differ by the shift plus the composition (0.6 * 8 on axis 0); MNN pairs give the shift alone
    rng = np.random.default_rng(5)
    shift = np.array([0.0, 2.0, -1.0, 0.5], dtype=np.float32)
    x, labels, types = _two_donors(rng, shift)
    shifts = BatchShifts.find(x, labels, 0, 2.5e9, "test")
    np.testing.assert_allclose(shifts.of(x)[1] - shifts.of(x)[0], shift, atol=0.15)
    for centre in (BatchCentering.fit(x, labels, shifts=shifts), BatchCentering.fit(x, labels)):
        out = centre.transform(x, labels)
        gap = out[(labels == "b") & (types == 0)].mean(0) - out[(labels == "a") & (types == 0)].mean(0)
        if centre.means[1, 0] - centre.means[0, 0] < 2:  # MNN: type 0 of both batches lands together
            assert np.abs(gap).max() < 0.2
        else:  # batch means: type 0 of batch b is pulled 4.8 away from type 0 of batch a
            assert abs(gap[0]) > 4
    np.testing.assert_allclose(BatchCentering.fit(x, labels, shifts=shifts).transform(x, labels).mean(0), 0,
                               atol=1e-4)
    import scipy.sparse as sp  # the same shifts on a sparse feature matrix of the same cells (the targets)
    codes, means = per_batch_feature_means(sp.csr_matrix(x), labels, shifts)
    np.testing.assert_allclose(means[1] - means[0], shifts.of(x)[1], atol=1e-4)


def test_auto_centre_keeps_pairs_only_for_more_than_a_shift():
    from biclum.config import BiclumConfig
    from biclum.setup import _batch_shifts

    rng = np.random.default_rng(7)
    shift = np.array([0.0, 2.0, -1.0, 0.5], dtype=np.float32)
    x, labels, _ = _two_donors(rng, shift)  # a pure shift, compositions 80/20 against 20/80
    cfg, none = BiclumConfig.from_preset("default"), {"other": None}
    shifts, pairs = _batch_shifts({"rna": x, "other": None}, {"rna": labels, **none}, cfg, choices := {})
    assert shifts["rna"] is not None and not pairs and choices["batch_centre"] == "mnn"
    np.testing.assert_allclose(shifts["rna"].of(x)[1], shift, atol=0.15)
    y = x.copy()  # batch b also stretched and turned: no shift mixes it, cross-batch pairs are needed
    y[labels == "b"] = y[labels == "b"] @ (3 * np.linalg.qr(rng.normal(size=(4, 4)))[0]).astype(np.float32)
    shifts, pairs = _batch_shifts({"rna": y, "other": None}, {"rna": labels, **none}, cfg, choices := {})
    assert shifts["rna"] is None and pairs and choices["batch_centre"] == "means"
    for centre in ("means", "mnn"):  # explicit choices keep the pairs
        assert _batch_shifts({"rna": x, "other": None}, {"rna": labels, **none},
                             BiclumConfig.from_preset("default", batch_centre=centre), {})[1]


def test_cross_batch_pairs_link_batches_only():
    rng = np.random.default_rng(4)
    states = rng.normal(size=(40, 6)).astype(np.float32)
    x = np.vstack([states, states + 0.01 * rng.normal(size=states.shape).astype(np.float32)])
    labels = np.repeat(["a", "b"], 40)
    adj = cross_batch_pairs(x, labels, 1, 2.5e9, 0, "test").tocoo()
    assert adj.nnz == 80 and (labels[adj.row] != labels[adj.col]).all()
    assert (np.abs(adj.row - adj.col) == 40).all()  # each state's partner is itself in the other batch
    assert (abs(adj - adj.T)).nnz == 0


# ------------------------------------------------------------------------------------------------------ model
def test_batch_keys_improve_within_modality_mixing(sim_batches, fitted_batches):
    rna, adt, _ = sim_batches
    plain = biclum.integrate(rna, adt, "protein", max_epochs=4, progress=False, **SMALL)
    b = rna.obs["batch"].to_numpy()
    for m in ("rna", "other"):
        with_key = ilisi(getattr(fitted_batches, m).obsm["X_biclum"], b)
        without = ilisi(getattr(plain, m).obsm["X_biclum"], b)
        assert with_key > without + 0.1, (m, with_key, without)
    assert "batch" in fitted_batches.history[0] and "batch" not in plain.history[0]


def test_save_load_and_query_batches(sim_batches, fitted_batches, tmp_path):
    rna, adt, _ = sim_batches
    model = fitted_batches.model
    model.save(str(tmp_path / "m"))
    loaded = biclum.BiCLUM.load(str(tmp_path / "m"))
    assert loaded.batch_keys == {"rna": "batch", "other": "batch"}
    emb = model.get_cell_embeddings("rna")
    np.testing.assert_allclose(loaded.transform(rna, "rna"), emb, atol=1e-5)  # seen batches: stored means
    renamed = rna[rna.obs["batch"] == "b1"].copy()
    renamed.obs["batch"] = "new donor"  # unseen, same cells: its own mean is the stored one
    np.testing.assert_allclose(loaded.transform(renamed, "rna"), emb[(rna.obs["batch"] == "b1").to_numpy()],
                               atol=1e-4)
    no_column = rna.copy()
    del no_column.obs["batch"]
    assert loaded.transform(no_column, "rna").shape == emb.shape  # the training mean
    np.testing.assert_allclose(loaded.transform(adt, "other"), model.get_cell_embeddings("other"), atol=1e-5)


def test_mnn_batch_centre_trains_saves_and_maps_queries(sim_batches, tmp_path):
    rna, adt, _ = sim_batches
    res = biclum.integrate(rna, adt, "protein", max_epochs=2, progress=False, rna_batch_key="batch",
                           other_batch_key="batch", batch_centre="mnn", **SMALL)
    model = res.model
    assert model.config.preprocess.batch_centre == "mnn"
    model.save(str(tmp_path / "m"))
    loaded = biclum.BiCLUM.load(str(tmp_path / "m"))
    np.testing.assert_allclose(loaded.transform(rna, "rna"), model.get_cell_embeddings("rna"), atol=1e-5)
    with pytest.raises(BiclumInputError, match="batch_centre='median': use 'auto', 'mnn' or 'means'"):
        biclum.BiCLUM(rna, adt, "protein", rna_batch_key="batch", batch_centre="median", **SMALL)


def test_batch_key_errors(sim_batches):
    rna, adt, _ = sim_batches
    with pytest.raises(BiclumInputError, match="no column 'donor'"):
        biclum.BiCLUM(rna, adt, "protein", rna_batch_key="donor", **SMALL)
    bad = rna.copy()
    bad.obs["batch"] = bad.obs["batch"].astype(object)
    bad.obs.iloc[0, bad.obs.columns.get_loc("batch")] = None
    with pytest.raises(BiclumInputError, match="missing values"):
        biclum.BiCLUM(bad, adt, "protein", rna_batch_key="batch", **SMALL)


def test_cli_batch_key_options():
    from biclum.cli import build_parser

    args = build_parser().parse_args(["fit", "--demo", "--out", "x", "--rna-batch-key", "sample",
                                      "--other-batch-key", "donor"])
    assert (args.rna_batch_key, args.other_batch_key) == ("sample", "donor")


def test_one_batch_warns_and_trains(sim_batches):
    rna, adt, _ = sim_batches
    one = rna.copy()
    one.obs["batch"] = "only"
    with pytest.warns(BiclumWarning, match="one batch only"):
        res = biclum.integrate(one, adt, "protein", max_epochs=1, progress=False, rna_batch_key="batch", **SMALL)
    assert np.isfinite(res.rna.obsm["X_biclum"]).all()
