"""``joint_input``: the joint shared-gene block of the cell encoders' input (biclum.joint_input), fitted once,
saved with the model and applied to query cells exactly as to the training cells."""
from __future__ import annotations

import numpy as np
import pytest

import biclum
from biclum.errors import BiclumInputError
from biclum.module import MODALITIES
from conftest import SMALL


@pytest.fixture(scope="module")
def sim(small_sim):
    return small_sim


@pytest.fixture(scope="module")
def joint(sim):
    return biclum.BiCLUM(*sim[:2], "atac", sim[2], joint_input=5, **SMALL).fit(2, progress=False)


def test_off_by_default(sim):
    model = biclum.BiCLUM(*sim[:2], "atac", sim[2], **SMALL)
    assert model.prepared.choices["joint_input"] == 0 and model.params_for_uns()["joint_input_used"] == 0
    assert all(model.joint_input[m] is None for m in MODALITIES)
    assert model.prepared.data.pcs["rna"].shape[1] == model.preprocessors["rna"].components.shape[1]


def test_the_block_is_appended_to_both_inputs(joint):
    data, choices = joint.prepared.data, joint.prepared.choices
    assert choices["joint_input"] == 5 and joint.params_for_uns()["joint_input_used"] == 5
    assert data.pcs["rna"].shape[1] == choices["n_pcs_rna"] + 5
    assert data.pcs["other"].shape[1] == choices["n_lsi"] + 5  # beside the peak LSI
    for m in MODALITIES:
        block = data.pcs[m][:, -5:]
        np.testing.assert_allclose(np.linalg.norm(block, axis=1), joint.joint_input[m].scale, rtol=1e-4)
        assert joint.module.cell_encoders[m][0].in_features == data.pcs[m].shape[1]


def test_query_cells_get_the_training_transform(joint, sim, tmp_path):
    rna, atac, _ = sim
    for m, adata in (("rna", rna), ("other", atac)):
        np.testing.assert_allclose(joint.transform(adata, m), joint.get_cell_embeddings(m), atol=1e-5)
    loaded = biclum.BiCLUM.load(joint.save(str(tmp_path / "m")))
    for m in MODALITIES:
        np.testing.assert_array_equal(loaded.joint_input[m].projection.components,
                                      joint.joint_input[m].projection.components)
        assert loaded.joint_input[m].scale == joint.joint_input[m].scale
    assert loaded.params_for_uns()["joint_input_used"] == 5
    np.testing.assert_allclose(loaded.transform(atac, "other"), joint.get_cell_embeddings("other"), atol=1e-5)


def test_with_batches_the_block_is_centred_too(sim):
    rna, atac, ann = sim
    rna = rna.copy()
    rna.obs["sample"] = np.where(np.arange(rna.n_obs) % 2 == 0, "a", "b")
    model = biclum.BiCLUM(rna, atac, "atac", ann, rna_batch_key="sample", joint_input=5, **SMALL).fit(
        1, progress=False)
    assert model.batch_centering["rna"].means.shape[1] == model.prepared.data.pcs["rna"].shape[1]
    np.testing.assert_allclose(model.transform(rna, "rna"), model.get_cell_embeddings("rna"), atol=1e-5)


@pytest.mark.parametrize("value", [-1, 2.5, "ten", True])
def test_a_bad_value_is_refused(sim, value):
    with pytest.raises(BiclumInputError, match="joint_input="):
        biclum.BiCLUM(*sim[:2], "atac", sim[2], joint_input=value, **SMALL)


def test_auto_follows_the_shared_genes(biclum_log):
    from biclum.joint_input import AUTO_COMPONENTS, auto_joint_input
    from biclum.validation import FEW_SHARED_GENES

    assert auto_joint_input("auto", FEW_SHARED_GENES, 50) == AUTO_COMPONENTS
    assert auto_joint_input("auto", FEW_SHARED_GENES - 1, 18) == 0
    assert auto_joint_input("auto", 1000, 4) == 4 and auto_joint_input(30, 1000, 15) == 15
    assert auto_joint_input(3.0, 1000, 15) == 3
    assert "joint_input='auto': off (19 shared genes, fewer than 20)" in biclum_log.text
