"""The model core: the setup stage's immutable result, the fitted state saved and loaded as a whole, a loaded
model's public methods, and training behaviour as callbacks."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import biclum
from biclum.errors import BiclumModelError
from biclum.module import MODALITIES
from biclum.state import (FittedSetup, FittedState, _ArrayPerModality, _canonical_sha256, _Json, _load_fields,
                          _save_fields, _Store)
from biclum.training import Callback, EarlyStopping

from conftest import SMALL


@pytest.fixture(scope="module")
def sim(small_sim):
    return small_sim


@pytest.fixture(scope="module")
def fitted(sim):
    return biclum.BiCLUM(*sim[:2], "atac", sim[2], **SMALL).fit(2, progress=False)


@pytest.fixture(scope="module")
def loaded(fitted, tmp_path_factory):
    path = str(tmp_path_factory.mktemp("model") / "m")
    fitted.save(path)
    return biclum.BiCLUM.load(path)


def test_prepared_is_immutable_and_state_is_the_models(fitted):
    with pytest.raises(dataclasses.FrozenInstanceError):
        fitted.prepared.fitted = None
    with pytest.raises(dataclasses.FrozenInstanceError):
        fitted.prepared.data.pcs = {}
    assert isinstance(fitted.state, FittedState) and isinstance(fitted.state.setup, FittedSetup)
    assert fitted.features is fitted.state.setup.features and fitted.history is fitted.state.history
    assert {"n_pcs_rna", "n_pcs_other", "mnn_k", "smooth_k"} <= set(fitted.prepared.choices)


def test_loaded_model_public_methods(fitted, loaded, sim, tmp_path):
    rna, atac, _ = sim
    with pytest.raises(BiclumModelError, match="loaded model holds no training cells"):
        loaded.get_cell_embeddings("rna")
    with pytest.raises(BiclumModelError, match="loaded from disk"):
        loaded.fit(1, progress=False)
    with pytest.raises(BiclumModelError, match="loaded model holds no training cells"):
        loaded.write_to(rna, "rna")
    np.testing.assert_allclose(loaded.transform(rna, "rna"), fitted.get_cell_embeddings("rna"), atol=1e-5)
    np.testing.assert_allclose(loaded.transform(atac, "other"), fitted.get_cell_embeddings("other"), atol=1e-5)
    np.testing.assert_array_equal(loaded.get_feature_embeddings("other").values,
                                  fitted.get_feature_embeddings("other").values)
    assert "loaded" in repr(loaded) and loaded.params_for_uns()["epochs"] == 2
    again = biclum.BiCLUM.load(loaded.save(str(tmp_path / "again")))  # a loaded model saves as a whole
    np.testing.assert_array_equal(again.transform(rna, "rna"), loaded.transform(rna, "rna"))


def test_state_round_trip(fitted, loaded):
    a, b = fitted.state, loaded.state
    assert a.modality == b.modality and a.config == b.config and a.history == b.history
    assert a.train_status == b.train_status and a.batch_keys == b.batch_keys
    for m in MODALITIES:
        np.testing.assert_array_equal(a.setup.sketches[m], b.setup.sketches[m])
        np.testing.assert_array_equal(a.setup.preprocessors[m].components, b.setup.preprocessors[m].components)
        assert list(a.setup.features[m]) == list(b.setup.features[m])
    assert a.setup.annotation_rows.equals(b.setup.annotation_rows)
    np.testing.assert_array_equal(a.setup.peak_lsi.components, b.setup.peak_lsi.components)


def test_a_new_state_field_is_one_declaration(tmp_path):
    """A field declared with a codec is written and read back without touching the save/load code."""
    @dataclasses.dataclass
    class Extended:
        note: str = dataclasses.field(metadata={"codec": _Json()})
        per_modality: dict = dataclasses.field(metadata={"codec": _ArrayPerModality("{m}_extra")})

    store = _Store(str(tmp_path), {}, {})
    _save_fields(Extended("x", {m: np.arange(3.0) for m in MODALITIES}), store)
    back = _load_fields(Extended, store)
    assert back.note == "x" and np.array_equal(back.per_modality["other"], np.arange(3.0))


def test_pair_refresh_leaves_the_prepared_pairs(sim):
    rna, atac, ann = sim
    model = biclum.BiCLUM(rna, atac, "atac", ann, refresh_pairs_every=1, **SMALL)
    setup_partners = model.prepared.data.partners["rna"]
    model.fit(2, progress=False)
    assert model.prepared.data.partners["rna"] is setup_partners  # the setup's result is never modified
    assert (model._data.partners["rna"] != setup_partners).nnz > 0  # the loop continues with the new pairs
    assert model.n_mnn_pairs == model._data.partners["rna"].nnz


def test_a_callback_can_end_training(sim):
    rna, atac, ann = sim
    model = biclum.BiCLUM(rna, atac, "atac", ann, **SMALL)
    seen = []

    class StopAfterTwo(Callback):
        def on_epoch_end(self, trainer, record):
            seen.append(record["epoch"])
            return len(seen) == 2

    from biclum.training import Trainer, resolve_device

    trainer = Trainer(model.module, model._data, model.config.train, resolve_device("cpu"), progress=False,
                      callbacks=[StopAfterTwo()])
    state = trainer.fit(10)
    assert seen == [0, 1] and len(state.history) == 2
    assert state.status == "ended by a callback after epoch 1"


def test_early_stopping_alone():
    class T:  # the parts of a Trainer that EarlyStopping reads
        state = __import__("biclum.training", fromlist=["TrainState"]).TrainState()
        best_state, last_good = None, {"w": 1}

    stop, t = EarlyStopping(patience=2, min_delta=0.0), T()
    losses = [3.0, 2.0, 2.5, 2.4]
    flags = [stop.on_epoch_end(t, {"total": v, "epoch": i}) for i, v in enumerate(losses)]
    assert flags == [False, False, False, True] and t.state.best_epoch == 1
    assert t.state.status.startswith("early stopped after epoch 3")


def test_a_saved_model_missing_a_piece_names_its_version(fitted, tmp_path):
    import json

    path = fitted.save(str(tmp_path / "m"))
    with open(f"{path}/model.json") as fh:
        sidecar = json.load(fh)
    del sidecar["config"]  # as another version would write it: a consistent sidecar without that piece
    sidecar["sidecar_sha256"] = _canonical_sha256(sidecar)
    with open(f"{path}/model.json", "w") as fh:
        json.dump(sidecar, fh)
    with pytest.raises(BiclumModelError, match=rf"biclum {biclum.__version__}\) lacks 'config'"):
        biclum.BiCLUM.load(path)


def test_the_callers_config_is_left_alone(sim):
    config = biclum.BiclumConfig.from_preset("default", **SMALL)
    before = config.to_dict()
    model = biclum.BiCLUM(*sim[:2], "atac", sim[2], config=config, latent_dim=8)
    assert config.to_dict() == before and model.config.model.latent_dim == 8
