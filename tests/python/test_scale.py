"""Atlas-scale data path: backed .h5ad inputs, components fitted on a cell sample, MNN, the epoch budget."""
import anndata as ad
import numpy as np
import pytest
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


def test_streamed_checks_equal_in_memory_checks(tmp_path, monkeypatch):
    """The checks made while a backed file is read (one pass, tail pages mapped in a background thread) give what
    the in-memory checks give, and bad values in the file raise the same errors."""
    import biclum.backed as backed_module
    from biclum.errors import BiclumInputError
    from biclum.validation import ValueScan, check_modality

    monkeypatch.setattr(backed_module, "CHUNK_NNZ", 200)  # many chunks ...
    monkeypatch.setattr(backed_module, "PREFAULT_MIN_NNZ", 1)  # ... and the background page mapping on
    rna, _, _ = simulate(300, modality="protein", seed=3)
    X = rna.X.tolil()
    X[:7] = 0  # cells with zero counts are dropped
    X[:, :3] = 0  # features never detected
    rna.X = sp.csr_matrix(X, dtype=np.float32)
    rna.write_h5ad(tmp_path / "rna.h5ad")
    scan = ValueScan()
    loaded, _ = load_backed(ad.read_h5ad(tmp_path / "rna.h5ad", backed="r"), None, "rna", scan=scan)
    assert scan.complete and (loaded.X != rna.X).nnz == 0
    with pytest.warns(biclum.BiclumWarning) as streamed:
        got = check_modality(loaded, "rna", scan=scan)
    with pytest.warns(biclum.BiclumWarning) as in_memory:
        want = check_modality(rna, "rna")
    np.testing.assert_array_equal(got.keep_cells, want.keep_cells)
    assert got.n_dropped == want.n_dropped == 7
    assert [str(w.message) for w in streamed] == [str(w.message) for w in in_memory]
    np.testing.assert_array_equal(scan.detected, np.asarray((rna.X != 0).sum(axis=0)).ravel() > 0)
    assert not scan.detected[:3].any()
    for bad, message in ((np.nan, "NaN/Inf"), (-2.0, "negative values"), (0.5, "non-integer")):
        b = rna.copy()
        b.X.data[50] = bad
        b.write_h5ad(tmp_path / "bad.h5ad")
        scan = ValueScan()
        loaded, _ = load_backed(ad.read_h5ad(tmp_path / "bad.h5ad", backed="r"), None, "rna", scan=scan)
        with pytest.raises(BiclumInputError, match=message):
            check_modality(loaded, "rna", scan=scan)


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


def test_mnn_with_missing_neighbours(monkeypatch):
    """Approximate search can return fewer than k neighbours (-1): those entries never pair."""
    import biclum.pairs as pairs_module

    rng = np.random.default_rng(1)
    ab = np.stack([rng.permutation(40)[:6] for _ in range(50)]).astype(np.int32)  # no repeats within a row
    ba = np.stack([rng.permutation(50)[:6] for _ in range(40)]).astype(np.int32)
    ab[::3, :2] = -1
    ba[::4, -3:] = -1
    expected = {(i, int(j)) for i in range(50) for j in ab[i] if j >= 0 and i in ba[j]}
    lists = [ab.copy(), ba.copy()]
    monkeypatch.setattr(pairs_module, "knn_cosine", lambda *args, **kw: lists.pop(0))
    pairs = pairs_module.mutual_nearest_neighbors(np.zeros((50, 2)), np.zeros((40, 2)), 6)
    assert set(zip(*map(lambda x: x.tolist(), pairs.adjacency.nonzero()))) == expected and len(expected) > 0
    assert pairs.adjacency.dtype == np.float32 and (pairs.adjacency.data == 1).all()


def test_epoch_budget_caps_epochs_for_atlases(caplog):
    rna, atac, ann = simulate(300, modality="atac", seed=4)
    model = biclum.BiCLUM(rna, atac, "atac", ann, epoch_budget_cells=600, batch_size=128, num_threads=1,
                          min_steps=0)
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
    model.config.update(epoch_budget_cells=0, min_steps=200)  # 3 steps an epoch: raised to ceil(200 / 3) epochs
    assert model._budget_epochs() == 67
