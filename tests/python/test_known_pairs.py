"""Known pairs (``paired=``): exact positives in the partner matrices, the unpaired run unchanged without them,
bad input, the saved count, the CLI and the R bridge."""
from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import biclum
from biclum.datasets import simulate
from biclum.errors import BiclumInputError
from biclum.known_pairs import read_known_pairs

SMALL = dict(n_top_genes=300, n_pcs=20, mnn_k=20, n_metacells=32, batch_size=128, hidden_dims=(64, 64),
             latent_dim=16, n_shared_pcs=15, feature_batch_size=256, num_threads=1)


@pytest.fixture(scope="module")
def sim():
    rna, adt, _ = simulate(300, modality="protein", paired=True, n_genes=300, seed=1)
    return rna, adt


@pytest.fixture
def biclum_log(caplog):
    from biclum._logging import logger

    logger.propagate = True
    caplog.set_level(logging.INFO, logger="biclum")
    yield caplog
    logger.propagate = False


def _model(sim, **kwargs):
    rna, adt = sim
    return biclum.BiCLUM(rna, adt, "protein", **SMALL, **kwargs)


def _rows(partners: sp.csr_matrix) -> list:
    return [tuple(partners.indices[partners.indptr[i]:partners.indptr[i + 1]]) for i in range(partners.shape[0])]


def test_no_pairs_gives_exactly_the_unpaired_run(sim):
    rna, adt = sim
    runs = [biclum.integrate(rna, adt, "protein", max_epochs=3, progress=False, **SMALL, **extra)
            for extra in ({}, {"paired": None}, {"paired": pd.DataFrame(columns=["rna", "other"])}, {"paired": []})]
    for res in runs[1:]:
        for m in ("rna", "other"):
            assert np.array_equal(getattr(res, m).obsm["X_biclum"], getattr(runs[0], m).obsm["X_biclum"])
        assert res.model.n_known_pairs == 0 and res.rna.uns["biclum"]["params"]["n_known_pairs"] == 0


def test_shared_names_make_each_cell_its_own_partner(sim, biclum_log):
    model = _model(sim, paired=True)
    assert "known pairs: 300 given, 300 kept; 0 of 300 RNA and 0 of 300 other cells unpaired" in biclum_log.text
    assert model.n_known_pairs == 300
    for m in ("rna", "other"):
        assert (model.prepared.data.partners[m] != sp.identity(300, format="csr")).nnz == 0


def test_table_pairs_replace_the_mnn_partners_of_their_cells_only(sim, biclum_log):
    rna, adt = sim
    plain = _model(sim)
    given = rna.obs_names[::10]  # 30 cells
    rna_zero = rna.copy()
    rna_zero.X = sp.csr_matrix(sp.diags((np.arange(300) != 10).astype(np.float32)) @ sp.csr_matrix(rna.X))
    rna_zero.X.eliminate_zeros()  # cell 10, a paired cell, has no counts: dropped, so its pair is not kept
    with pytest.warns(biclum.errors.BiclumWarning, match="zero counts"):
        dropped = biclum.BiCLUM(rna_zero, adt, "protein", paired=pd.DataFrame({"rna": given, "other": given}),
                                **SMALL)
    assert "known pairs: 30 given, 29 kept (1 lost a cell dropped for zero counts); 270 of 299 RNA and 271 of 300" \
        in biclum_log.text
    assert dropped.n_known_pairs == 29
    model = _model(sim, paired=pd.DataFrame({"other": given, "rna": given, "note": "x"}))  # named columns
    paired_rows = set(range(0, 300, 10))
    found = model.prepared.pairs.adjacency  # the MNN pairs, searched with the pairs' map joined to the space
    for m, adjacency in (("rna", found), ("other", found.T.tocsr())):
        got, mnn = _rows(model.prepared.data.partners[m]), _rows(adjacency)
        assert all(got[i] == (i,) for i in paired_rows)
        assert all(got[i] == mnn[i] for i in range(300) if i not in paired_rows)  # paired cells stay candidates
    assert model.n_mnn_pairs != plain.n_mnn_pairs


def test_tables_are_read_from_frames_lists_and_files(sim, tmp_path):
    rna, adt = sim
    names = list(rna.obs_names[:5])
    ref = read_known_pairs(pd.DataFrame({"a": names, "b": names}), rna.obs_names, adt.obs_names)
    assert list(ref.rna) == names and list(ref.other) == names
    header, plain, tsv = tmp_path / "h.csv", tmp_path / "p.csv", tmp_path / "p.tsv"
    header.write_text("rna_cell,adt_cell\n" + "".join(f"{n},{n}\n" for n in names))
    plain.write_text("".join(f"{n},{n}\n" for n in names))
    tsv.write_text("".join(f"{n}\t{n}\n" for n in names))
    for paired in (list(zip(names, names)), str(header), plain, str(tsv)):
        got = read_known_pairs(paired, rna.obs_names, adt.obs_names)
        assert list(got.rna) == names and list(got.other) == names, paired
    assert read_known_pairs("shared", rna.obs_names, adt.obs_names).n == 300


@pytest.mark.parametrize("paired, words", [
    (pd.DataFrame({"rna": ["cell0", "nope"], "other": ["cell0", "cell1"]}), ["not in the inputs", "nope",
                                                                            "drop the pairs"]),
    (pd.DataFrame({"rna": ["cell0", "cell0"], "other": ["cell0", "cell1"]}), ["more than one known pair",
                                                                             "drop_duplicates"]),
    (pd.DataFrame({"rna": ["cell0", "cell1"], "other": ["cell1", "cell1"]}), ["other cells are listed"]),
    (pd.DataFrame({"a": ["cell0"], "b": ["cell0"], "c": ["x"]}), ["columns ['a', 'b', 'c']", "'rna' and 'other'"]),
    (pd.DataFrame({"rna": ["cell0", None], "other": ["cell0", "cell1"]}), ["miss a cell name", "dropna"]),
    (42, ["got a int", "paired=True"]),
    ("/no/such/pairs.csv", ["does not exist"]),
])
def test_bad_pairs_raise_one_paragraph_and_change_nothing(sim, paired, words):
    rna, adt = sim
    before = [a.copy() for a in (rna, adt)]
    table = paired.copy() if isinstance(paired, pd.DataFrame) else paired
    with pytest.raises(BiclumInputError) as err:
        _model(sim, paired=paired)
    msg = str(err.value)
    assert "\n" not in msg and all(w in msg for w in words), msg
    for a, b in zip((rna, adt), before):
        assert (a.X != b.X).nnz == 0 if sp.issparse(a.X) else np.array_equal(a.X, b.X)
        assert a.obs.equals(b.obs) and a.obs_names.equals(b.obs_names)
    if isinstance(paired, pd.DataFrame):
        assert paired.equals(table)


def test_swapped_columns_and_no_shared_names_say_the_fix():
    rna_names, other_names = pd.Index(["r1", "r2", "r3"]), pd.Index(["o1", "o2", "o3"])
    with pytest.raises(BiclumInputError, match="look swapped"):
        read_known_pairs(pd.DataFrame({"rna": ["o1", "o2"], "other": ["r1", "r2"]}), rna_names, other_names)
    with pytest.raises(BiclumInputError, match="share no cell names.*two-column table"):
        read_known_pairs(True, rna_names, other_names)


def test_saved_model_and_pair_refresh_keep_the_pairs(sim, tmp_path):
    rna, adt = sim
    given = rna.obs_names[::10]
    res = biclum.integrate(rna, adt, "protein", max_epochs=2, progress=False, refresh_pairs_every=1,
                           paired=pd.DataFrame({"rna": given, "other": given}), **SMALL)
    got = _rows(res.model._data.partners["rna"])  # the loop's partners after a refresh
    assert all(got[i] == (i,) for i in range(0, 300, 10))
    assert res.rna.uns["biclum"]["params"]["n_known_pairs"] == 30
    res.model.save(str(tmp_path / "m"))
    assert biclum.BiCLUM.load(str(tmp_path / "m")).n_known_pairs == 30
    assert json.loads((tmp_path / "m" / "model.json").read_text())["n_known_pairs"] == 30


def test_cli_fit_paired(sim, tmp_path, capsys):
    from biclum.cli import main

    rna, adt = sim
    rna.write_h5ad(tmp_path / "rna.h5ad")
    adt.write_h5ad(tmp_path / "adt.h5ad")
    pairs = tmp_path / "pairs.csv"
    pd.DataFrame({"rna": rna.obs_names[:20], "other": rna.obs_names[:20]}).to_csv(pairs, index=False)
    common = ["fit", "--rna", str(tmp_path / "rna.h5ad"), "--other", str(tmp_path / "adt.h5ad"), "--modality",
              "protein", "--max-epochs", "1", "--quiet", "--no-umap", "--set", "n_top_genes=300", "mnn_k=20",
              "n_metacells=32", "hidden_dims=64", "num_threads=1"]
    assert main([*common, "--out", str(tmp_path / "out"), "--paired", str(pairs)]) == 0
    assert biclum.BiCLUM.load(str(tmp_path / "out" / "model")).n_known_pairs == 20
    assert main(["fit", "--demo", "--demo-cells", "200", "--modality", "protein", "--quiet", "--out",
                 str(tmp_path / "demo"), "--paired"]) == 2  # --paired alone: shared names; the demo has none
    assert "share no cell names" in capsys.readouterr().err


def test_bridge_takes_a_frame_of_pairs(sim):
    from biclum import bridge

    rna, adt = sim
    names = [str(n) for n in rna.obs_names[:15]]
    frame = {"kind": "frame", "names": ["rna", "other"],
             "columns": [{"kind": "character", "values": names}, {"kind": "character", "values": names}]}
    spec = {m: bridge.anndata_to_vectors(a) for m, a in (("rna", rna), ("other", adt))}
    res = bridge.integrate_from_r(spec["rna"], spec["other"], modality="protein", max_epochs=1, verbose=False,
                                  overrides={**SMALL, "hidden_dims": [64, 64]}, paired=frame)
    assert res["ok"], res.get("traceback")
    value = res["value"]
    params = value["values"][value["names"].index("params")]
    assert params["values"][params["names"].index("n_known_pairs")] == 15


def test_known_pairs_get_a_cell_level_term_of_their_own(sim, biclum_log):
    from biclum.training import Trainer

    rna = sim[0]
    table = pd.DataFrame({"rna": rna.obs_names[::10], "other": rna.obs_names[::10]})
    model = _model(sim, paired=table)
    known = model.prepared.data.known_pairs
    assert list(known[0]) == list(range(0, 300, 10)) and list(known[1]) == list(range(0, 300, 10))
    model.fit(max_epochs=2, progress=False)
    assert "known pairs: a cell-level NT-Xent on the 30 known pairs alone (up to 128 a step), weight 1 " \
           "(alpha_known=None: alpha)" in biclum_log.text
    assert all(np.isfinite(r["known"]) for r in model.history)
    trainer = Trainer(model.module, model.prepared.data, model.config.train, torch_cpu())
    cells = {"rna": np.arange(5), "other": np.arange(7)}
    grown, (ra, ob) = trainer._known_pairs(cells)  # every known pair, appended after the step's cells
    assert list(grown["rna"][ra.numpy()]) == list(known[0]) and list(grown["other"][ob.numpy()]) == list(known[1])
    assert list(grown["rna"][:5]) == list(range(5)) and list(grown["other"][:7]) == list(range(7))
    off = _model(sim, paired=table, alpha_known=0)
    off.fit(max_epochs=1, progress=False)
    assert "known" not in off.history[0]


def test_the_pairs_map_joins_the_search_space_weighed_by_their_number(biclum_log):
    from biclum.known_pairs import MAP_WEIGHT, with_pair_map

    rng = np.random.default_rng(0)
    x_rna = rng.normal(size=(60, 6)).astype(np.float32)
    x_other = (x_rna @ rng.normal(size=(6, 4))).astype(np.float32)  # the other side: a linear map of RNA's
    z = {"rna": rng.normal(size=(60, 3)), "other": rng.normal(size=(60, 3))}
    assert with_pair_map(z, {"rna": x_rna, "other": x_other}, None) is z
    two = sp.csr_matrix((np.ones(2, np.float32), (np.arange(2), np.arange(2))), shape=(60, 60))
    assert with_pair_map(z, {"rna": x_rna, "other": x_other}, two) is z  # too few pairs for a map
    assert "known pairs: 2, too few for a map between the modalities (3 or more)" in biclum_log.text
    n = 20
    known = sp.csr_matrix((np.ones(n, np.float32), (np.arange(n), np.arange(n))), shape=(60, 60))
    out = with_pair_map(z, {"rna": x_rna, "other": x_other}, known)
    weight = MAP_WEIGHT * n / (n + 5)
    assert f"weight {weight:.3g} = {MAP_WEIGHT:g} x 20 / (20 + 5 dimensions)" in biclum_log.text
    assert out["rna"].shape == (60, 3 + 6 + 4) and out["rna"].dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out["other"], axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(out["rna"][:, :3], axis=1), np.sqrt(1 - weight), atol=1e-5)
    # an exact linear relation: an unpaired cell's prediction of the other side lands next to its true partner
    pred, true = out["rna"][n:, 9:], out["other"][n:, 9:]
    assert np.mean(np.sum(pred * true, axis=1)) > 0.9 * weight / 2


def test_unpaired_runs_have_no_known_term_and_old_configs_load(sim):
    from biclum.config import BiclumConfig

    model = _model(sim)
    assert model.prepared.data.known_pairs is None
    model.fit(max_epochs=1, progress=False)
    assert "known" not in model.history[0]
    saved = BiclumConfig.from_preset("default").to_dict()
    saved["pairs"]["anchor_known_pairs"] = True  # a model saved by an earlier version
    assert BiclumConfig.from_dict(saved).to_dict() == BiclumConfig.from_preset("default").to_dict()


def torch_cpu():
    import torch

    return torch.device("cpu")
