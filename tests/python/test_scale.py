"""Atlas-scale data path: backed .h5ad inputs, components fitted on a cell sample, MNN, the epoch budget."""
import anndata as ad
import numpy as np
import scipy.sparse as sp

import biclum
from biclum.backed import load_backed, read_rows_csr
from biclum.datasets import simulate


def test_read_rows_csr_matches_in_memory(tmp_path):
    rna, _, _ = simulate(300, modality="protein", seed=1)
    path = tmp_path / "rna.h5ad"
    rna.write_h5ad(path)
    backed = ad.read_h5ad(path, backed="r")
    X = read_rows_csr(backed.X, backed.n_obs, backed.n_vars, chunk_rows=64)  # several chunks, last one short
    assert X.dtype == np.float32 and (X != rna.X).nnz == 0
    loaded, layer = load_backed(backed, None, "rna")
    assert layer is None and not loaded.isbacked and (loaded.X != rna.X).nnz == 0
    assert list(loaded.obs_names) == list(rna.obs_names)
    # a dense X on disk works too
    dense = ad.AnnData(X=rna.X.toarray(), obs=rna.obs, var=rna.var)
    dense.write_h5ad(tmp_path / "dense.h5ad")
    d = ad.read_h5ad(tmp_path / "dense.h5ad", backed="r")
    assert (load_backed(d, None, "rna")[0].X != rna.X).nnz == 0


def test_backed_fit_equals_in_memory(tmp_path):
    rna, atac, ann = simulate(250, modality="atac", seed=2)
    rna.write_h5ad(tmp_path / "rna.h5ad")
    atac.write_h5ad(tmp_path / "atac.h5ad")
    b_rna = ad.read_h5ad(tmp_path / "rna.h5ad", backed="r")
    b_atac = ad.read_h5ad(tmp_path / "atac.h5ad", backed="r")
    kw = dict(seed=0, max_epochs=1, batch_size=128, num_threads=1, progress=False)
    mem = biclum.integrate(rna, atac, "atac", ann, **kw)
    bk = biclum.integrate(b_rna, b_atac, "atac", ann, **kw)
    for m in ("rna", "other"):
        np.testing.assert_array_equal(mem.model.get_cell_embeddings(m), bk.model.get_cell_embeddings(m))
    assert b_rna.isbacked and b_atac.isbacked  # the user's objects are still backed, unchanged
    # query mapping from a backed file
    np.testing.assert_allclose(bk.model.transform(b_rna, "rna"), mem.model.get_cell_embeddings("rna"), atol=1e-5)


def test_components_from_a_cell_sample_span_the_same_space():
    from biclum.preprocessing import ModalityPreprocessor

    rna, _, _ = simulate(3000, modality="protein", n_genes=300, seed=3)
    names = np.asarray(rna.var_names)
    full, s_full, _ = ModalityPreprocessor.fit(rna.X, names, names, 1e4, 10, 10.0, 0)
    part, s_part, _ = ModalityPreprocessor.fit(rna.X, names, names, 1e4, 10, 10.0, 0, max_cells=1000)
    assert s_part.shape == s_full.shape  # every cell projected
    np.testing.assert_array_equal(part.mean, full.mean)  # means/sds from all cells
    # principal angles between the two 5-dim leading subspaces: cosines near 1
    cos = np.linalg.svd(full.components[:, :5].T @ part.components[:, :5], compute_uv=False)
    assert cos.min() > 0.95, cos


def test_mnn_matches_brute_force():
    from biclum.pairs import mutual_nearest_neighbors

    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((120, 8)), rng.standard_normal((90, 8))
    k = 7
    pairs = mutual_nearest_neighbors(a, b, k)
    an = a / np.linalg.norm(a, axis=1, keepdims=True)
    bn = b / np.linalg.norm(b, axis=1, keepdims=True)
    sim = an @ bn.T
    ab = np.argsort(-sim, axis=1)[:, :k]
    ba = np.argsort(-sim.T, axis=1)[:, :k]
    expected = {(i, j) for i in range(len(a)) for j in ab[i] if i in ba[j]}
    got = set(zip(*pairs.adjacency.nonzero()))
    assert got == expected and len(expected) > 0


def test_epoch_budget_caps_epochs_for_atlases(caplog):
    rna, atac, ann = simulate(300, modality="atac", seed=4)
    model = biclum.BiCLUM(rna, atac, "atac", ann, epoch_budget_cells=600, batch_size=128, num_threads=1)
    assert model._budget_epochs() == 4  # ceil(600 / 300) = 2, raised to min_budget_epochs
    model.config.update(epoch_budget_cells=3000)
    assert model._budget_epochs() == 10
    model.config.update(epoch_budget_cells=0)
    assert model._budget_epochs() == 40
    model.config.update(epoch_budget_cells=600)
    model.fit(progress=False)
    assert len(model.history) == 4
    model.fit(5, progress=False)  # an explicit max_epochs is not capped
    assert len(model.history) == 5
