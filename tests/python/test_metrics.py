"""biclum.metrics: hand-computed small cases, agreement with dense / reference computations, the unpaired case."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.spatial

from biclum import metrics as M
from biclum.errors import BiclumInputError


def _blobs(n_per=40, n_types=3, dim=5, sep=20.0, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(n_types, dim)) * sep
    y = np.repeat(np.arange(n_types), n_per)
    x = centers[y] + rng.normal(size=(len(y), dim))
    return x, np.array([f"t{v}" for v in y], dtype=object)


# ------------------------------------------------------------------------------------------------------ FOSCTTM
def test_foscttm_perfect_alignment_is_zero():
    x, _ = _blobs()
    fx, fy = M.foscttm(x, x.copy())
    assert fx.shape == fy.shape == (len(x),)
    assert fx.max() == 0 and fy.max() == 0
    assert M.foscttm_score(x, x) == 0.0


def test_foscttm_swapped_pair_hand_computed():
    # x = 0,1,2,3 on a line; y swaps the first two cells. By hand (d = |x_i - y_j|):
    # x0: d = [1,0,2,3], true 1 -> one closer (1/4); x1: [0,1,1,2], true 1 -> 1/4; x2, x3: 0.
    # columns: y0 = 1: [1,0,1,2], true 1 -> 1/4; y1 = 0: [0,1,2,3], true 1 -> 1/4; y2, y3: 0.
    x = np.array([[0.0], [1.0], [2.0], [3.0]])
    y = np.array([[1.0], [0.0], [2.0], [3.0]])
    fx, fy = M.foscttm(x, y)
    np.testing.assert_allclose(fx, [0.25, 0.25, 0, 0])
    np.testing.assert_allclose(fy, [0.25, 0.25, 0, 0])
    assert M.foscttm_score(x, y) == pytest.approx(0.125)
    # reversed order y = 3,2,1,0: x0 = 0 has partner 3 and three closer cells; x1 = 1 has partner 2 at distance 1,
    # one closer cell (1) and one tie (0, not counted) -> [3/4, 1/4, 1/4, 3/4]
    fx, fy = M.foscttm(x, x[::-1].copy())
    np.testing.assert_allclose(fx, [0.75, 0.25, 0.25, 0.75])
    np.testing.assert_allclose(fy, [0.75, 0.25, 0.25, 0.75])


def test_foscttm_ties_are_not_closer():
    x = np.ones((6, 3))
    fx, fy = M.foscttm(x, x + 0.0)
    assert fx.sum() == 0 and fy.sum() == 0


@pytest.mark.parametrize("block", [1, 7, 64, None])
def test_foscttm_blocks_match_dense_scglue_formula(block):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 8)).astype(np.float32)
    y = x + rng.normal(scale=1.0, size=x.shape).astype(np.float32)
    fx, fy = M.foscttm(x, y, block_size=block)
    d = scipy.spatial.distance_matrix(x.astype(np.float64), y.astype(np.float64))
    np.testing.assert_array_equal(fx, (d < np.diag(d)[:, None]).mean(axis=1))
    np.testing.assert_array_equal(fy, (d < np.diag(d)[None, :]).mean(axis=0))


def test_foscttm_rejects_unpaired_shapes():
    with pytest.raises(BiclumInputError, match="paired"):
        M.foscttm(np.zeros((5, 2)), np.zeros((4, 2)))


def test_neighborhood_overlap():
    x, _ = _blobs()
    assert M.neighborhood_overlap(x, x, k=30) == 1.0
    far = x + 1e4
    assert M.neighborhood_overlap(x, far, k=30) == 0.0


# ------------------------------------------------------------------------------------------------ label metrics
def test_label_transfer_accuracy_hand_computed():
    src = np.array([[0.0], [1.0], [10.0], [11.0]])
    lab = np.array(["a", "a", "b", "b"])
    tgt = np.array([[0.5], [10.5]])
    assert M.label_transfer_accuracy(src, lab, tgt, ["a", "b"], k=1) == 1.0
    assert M.label_transfer_accuracy(src, lab, tgt, ["b", "a"], k=1) == 0.0
    assert M.label_transfer_accuracy(src, lab, tgt, ["a", "a"], k=1) == 0.5


def test_mean_average_precision_hand_computed():
    # k = round(4 * 0.5) = 2 neighbours. Points 0, 1, 2.5, 10 labelled a, a, b, b:
    # cell 0: [a, b] -> AP 1; cell 1: [a (0), b (2.5)] -> 1; cell 2.5: [a, a] -> 0; cell 10: [b, a] -> 1.
    x = np.array([[0.0], [1.0], [2.5], [10.0]])
    assert M.mean_average_precision(x, np.array(["a", "a", "b", "b"]), neighbor_frac=0.5) == pytest.approx(0.75)
    # 0, 1, 1.8, 10 labelled a, b, a, b: APs 1/2, 0, 1/2, 1/2 -> 0.375
    x = np.array([[0.0], [1.0], [1.8], [10.0]])
    assert M.mean_average_precision(x, np.array(["a", "b", "a", "b"]), neighbor_frac=0.5) == pytest.approx(0.375)


def test_one_cluster():
    x, _ = _blobs(n_types=1, n_per=60)
    y = np.array(["only"] * len(x))
    assert M.mean_average_precision(x, y) == 1.0
    assert M.graph_connectivity(x, y) == 1.0
    with pytest.raises(BiclumInputError, match="2 distinct labels"):
        M.avg_silhouette_width(x, y)
    # one batch per cell type (all cells of the type in one modality): scglue scores it 1
    assert M.avg_silhouette_width_batch(x, np.array(["rna"] * len(x)), y) == 1.0


def test_separated_clusters_score_perfectly():
    x, y = _blobs()
    assert M.mean_average_precision(x, y) == 1.0
    assert M.avg_silhouette_width(x, y) > 0.9
    assert M.graph_connectivity(x, y) == 1.0
    assert M.normalized_mutual_info(x, y) == pytest.approx(1.0)


def test_graph_connectivity_split_label():
    # label A in two far-apart groups of 40 and 20 cells, label B in between: A -> 40/60, B -> 1
    rng = np.random.default_rng(2)
    x = np.concatenate([rng.normal(0, 1, (40, 3)), rng.normal(100, 1, (20, 3)), rng.normal(50, 1, (40, 3))])
    y = np.array(["A"] * 60 + ["B"] * 40)
    assert M.graph_connectivity(x, y) == pytest.approx((40 / 60 + 1) / 2)


def test_omics_mixing_scores():
    x, ct = _blobs()
    both = np.concatenate([x, x])
    batch = np.array(["rna"] * len(x) + ["other"] * len(x))
    cts = np.concatenate([ct, ct])
    # identical copies: perfectly mixed
    assert M.seurat_alignment_score(both, batch, random_state=0) > 0.9
    assert M.avg_silhouette_width_batch(both, batch, cts) > 0.97
    # the other modality far away: not mixed at all
    apart = np.concatenate([x, x + 1e3])
    assert M.seurat_alignment_score(apart, batch, random_state=0) == 0.0
    assert M.avg_silhouette_width_batch(apart, batch, cts) < 0.01


def _seurat_alignment_reference(x, b, random_state, neighbor_frac=0.01, n_repeats=4):
    """scglue's seurat_alignment_score written out with sklearn's exact kNN (independent of biclum.metrics)."""
    from sklearn.neighbors import NearestNeighbors

    rs = np.random.RandomState(random_state)
    groups = [np.where(b == u)[0] for u in np.unique(b)]
    m = min(len(g) for g in groups)
    scores = []
    for _ in range(n_repeats):
        sub = np.concatenate([rs.choice(g, m, replace=False) for g in groups])
        k = max(round(len(sub) * neighbor_frac), 1)
        nni = NearestNeighbors(n_neighbors=k + 1).fit(x[sub]).kneighbors(x[sub], return_distance=False)
        same = (b[sub][nni[:, 1:]] == b[sub][:, None]).sum(axis=1).mean()
        scores.append(min((k - same) * len(groups) / (k * (len(groups) - 1)), 1.0))
    return float(np.mean(scores))


def test_seurat_alignment_score_matches_reference_and_uses_the_seed():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(200, 4))
    b = rng.choice(["a", "b"], size=200)
    x[b == "a"] += 1.0  # partly mixed: a score strictly between 0 and 1, sensitive to the subsample
    for seed in (5, 6):
        assert M.seurat_alignment_score(x, b, random_state=seed, neighbor_frac=0.05) == pytest.approx(
            _seurat_alignment_reference(x, b, seed, neighbor_frac=0.05), abs=1e-12)
    by_seed = {M.seurat_alignment_score(x, b, random_state=s, neighbor_frac=0.05) for s in range(5)}
    assert len(by_seed) > 1  # the seed draws the subsamples
    assert 0.05 < min(by_seed) and max(by_seed) < 0.95


def test_neighbor_conservation():
    x, _ = _blobs()
    batch = np.array(["rna"] * 60 + ["other"] * 60)
    assert M.neighbor_conservation(x, x, batch) == 1.0
    rng = np.random.default_rng(0)
    assert M.neighbor_conservation(x, rng.normal(size=x.shape), batch) < 0.3


def _umap_graph_reference(x, k=15):
    """umap-learn's fuzzy_simplicial_set (local_connectivity=1, set_op_mix_ratio=1) written as its scalar loops."""
    import scipy.sparse as sp
    from sklearn.neighbors import NearestNeighbors

    dist, idx = NearestNeighbors(n_neighbors=k).fit(x).kneighbors(x)
    n, target = len(x), np.log2(k)
    rows, cols, vals = [], [], []
    for i in range(n):
        nz = dist[i][dist[i] > 0]
        rho = nz[0] if nz.size else 0.0
        lo, hi, mid = 0.0, np.inf, 1.0
        for _ in range(64):
            psum = sum(np.exp(-(d - rho) / mid) if d - rho > 0 else 1.0 for d in dist[i, 1:])
            if abs(psum - target) < 1e-5:
                break
            if psum > target:
                hi = mid
                mid = (lo + hi) / 2
            else:
                lo = mid
                mid = mid * 2 if hi == np.inf else (lo + hi) / 2
        sigma = max(mid, 1e-3 * dist[i].mean()) if rho > 0 else max(mid, 1e-3 * dist.mean())
        for j in range(k):
            if idx[i, j] == i:
                continue
            v = 1.0 if dist[i, j] - rho <= 0 or sigma == 0 else np.exp(-(dist[i, j] - rho) / sigma)
            rows.append(i)
            cols.append(idx[i, j])
            vals.append(v)
    a = sp.csr_matrix((vals, (rows, cols)), shape=(n, n))
    return (a + a.T - a.multiply(a.T)).tocsr()


def test_umap_graph_matches_reference():
    # scanpy.pp.neighbors' graph; also checked against umap-learn 0.5 (max difference 2e-6, float32 there)
    x, _ = _blobs(n_per=30, sep=2.0)
    ref = _umap_graph_reference(x)
    ours = M._umap_graph(x, 15)
    assert ours.nnz == ref.nnz
    assert abs(ours - ref).max() < 1e-9


# ------------------------------------------------------------------------------------------------------ evaluate
def test_evaluate_paired_perfect():
    x, y = _blobs()
    res, skipped = M.evaluate(x, x, y, y, paired=True, return_skipped=True, rna_pre=x, other_pre=x)
    assert res["foscttm"] == 0.0 and res["neighborhood_overlap"] == 1.0
    assert res["transfer_rna_to_other"] == 1.0 and res["transfer_other_to_rna"] == 1.0
    assert res["neighbor_conservation"] == 1.0
    assert set(res) == set(M.METRIC_NAMES) and not skipped
    assert list(res) == list(M.METRIC_NAMES)
    om = np.mean([res["neighborhood_overlap"], res["graph_connectivity"], res["seurat_alignment_score"],
                  res["asw_batch"]])
    assert res["omics_mixing"] == pytest.approx(om)
    assert res["biology_conservation"] == pytest.approx(np.mean([res["map"], res["asw_celltype"], res["nmi"]]))


def test_evaluate_without_labels_and_unpaired():
    x, _ = _blobs()
    res, skipped = M.evaluate(x[:100], x[20:], return_skipped=True)
    assert set(res) == {"seurat_alignment_score"}
    assert "foscttm" in skipped and "unpaired" in skipped["foscttm"]
    assert "map" in skipped and "omics_mixing" in skipped


def test_evaluate_nmi_subsample_and_errors():
    x, y = _blobs(n_per=60)
    res = M.evaluate(x, x + 0.1, y, y, nmi=True, max_cells_for_nmi=100, max_cells_for_silhouette=150)
    # three well-separated types: the subsampled NMI finds them, and the subsampled ASW is that of the full data
    assert res["nmi"] == pytest.approx(1.0, abs=0.02)
    full = M.evaluate(x, x + 0.1, y, y, nmi=False, max_cells_for_silhouette=None)
    assert res["asw_celltype"] == pytest.approx(full["asw_celltype"], abs=0.02) and res["asw_celltype"] > 0.9
    with pytest.raises(BiclumInputError, match="paired=True"):
        M.evaluate(x, x[:10], paired=True)
    with pytest.raises(BiclumInputError, match="dimensions"):
        M.evaluate(x, x[:, :2])
    with pytest.raises(BiclumInputError, match="NaN"):
        M.evaluate(np.full((3, 2), np.nan), x[:3, :2])


@pytest.mark.slow
def test_unpaired_archr_pbmc_small_every_metric(shared_data):
    """The unpaired ArchR PBMC set (150 RNA + 150 ATAC cells) runs through every metric without error."""
    import anndata as ad

    from biclum.benchmark.baselines import lsi, pca_floor
    from biclum.preprocessing import as_csr32, normalize_log1p
    from biclum.prior import gene_activity

    folder = shared_data / "pbmc_small_archr_testdata"
    rna = ad.read_h5ad(folder / "rna.h5ad")
    atac = ad.read_h5ad(folder / "atac_tiles5kb.h5ad")
    ga = gene_activity(atac, shared_data / "annotation" / "hg19_genes.tsv.gz")
    r, o = pca_floor(rna, ga)
    from sklearn.decomposition import TruncatedSVD

    rna_pre = TruncatedSVD(20, random_state=0).fit_transform(normalize_log1p(as_csr32(rna.X), 1e4))
    atac_pre = lsi(atac, 20)
    res, skipped = M.evaluate(r, o, rna.obs["cell_type"], atac.obs["cell_type"], paired=False, rna_pre=rna_pre,
                              other_pre=atac_pre, return_skipped=True)
    assert set(skipped) == {"foscttm", "foscttm_rna", "foscttm_other", "neighborhood_overlap"}
    for key in set(M.METRIC_NAMES) - set(skipped):
        assert np.isfinite(res[key]), key
    assert res["transfer_rna_to_other"] == pytest.approx(0.72, abs=0.05)  # ../shared/ANCHORS.md floor


# ------------------------------------------------------------------------------------------------------- scglue
def test_against_scglue_metrics():
    scglue_metrics = pytest.importorskip("scglue.metrics")
    rng = np.random.default_rng(7)
    n = 400
    x = rng.normal(size=(n, 10))
    y = rng.normal(size=(n, 10)) + x
    ct = rng.choice(list("abcd"), size=2 * n)
    both = np.concatenate([x, y])
    batch = np.array(["rna"] * n + ["atac"] * n)
    fx, fy = M.foscttm(x, y)
    gx, gy = scglue_metrics.foscttm(x, y)
    np.testing.assert_allclose(fx, gx)
    np.testing.assert_allclose(fy, gy)
    assert M.mean_average_precision(both, ct) == pytest.approx(scglue_metrics.mean_average_precision(both, ct))
    assert M.avg_silhouette_width(both, ct) == pytest.approx(scglue_metrics.avg_silhouette_width(both, ct))
    assert M.seurat_alignment_score(both, batch, random_state=0) == pytest.approx(
        scglue_metrics.seurat_alignment_score(both, batch, random_state=0))
    assert M.avg_silhouette_width_batch(both, batch, ct) == pytest.approx(
        scglue_metrics.avg_silhouette_width_batch(both, batch, ct))
    assert M.neighbor_conservation(both, both[::-1].copy(), batch) == pytest.approx(
        scglue_metrics.neighbor_conservation(both, both[::-1].copy(), batch))
    # kNN-graph metrics: scanpy uses approximate neighbours above 4,096 cells only; here exact on both sides
    assert M.graph_connectivity(both, ct) == pytest.approx(scglue_metrics.graph_connectivity(both, ct), abs=1e-6)
    # Leiden's random path differs (directed vs undirected graph build): compare loosely
    assert M.normalized_mutual_info(both, ct) == pytest.approx(scglue_metrics.normalized_mutual_info(both, ct),
                                                               abs=0.05)
