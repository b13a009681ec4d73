"""Integration metrics with the definitions of ``scglue.metrics`` (GLUE, Cao & Gao 2022) and the BiCLUM paper.

Every metric takes plain arrays (embeddings ``n_cells x dims``, labels ``n_cells``) so the numbers compare with
published scglue / OpenProblems / BiCLUM numbers. Differences from scglue, all of them documented where they apply:

* :func:`foscttm` is computed in row blocks (no ``n x n`` matrix; 100k cells fit in memory) on squared distances
  from a float64 matrix product. Distances that differ only by floating-point rounding (relative 1e-12) count as
  ties, and ties are not "closer", as in scglue's strict ``<``.
* The kNN graph behind :func:`graph_connectivity` and :func:`normalized_mutual_info` is scanpy's default
  ``sc.pp.neighbors(n_neighbors=15)`` (UMAP fuzzy connectivities) re-implemented here with an *exact* kNN
  (scanpy uses approximate pynndescent above 4,096 cells), so scanpy is not needed.
* Leiden runs on the undirected weighted graph (scanpy builds a directed graph with both arcs; the modularity is
  the same) with ``leidenalg`` and seed 0, as ``sc.tl.leiden``. :func:`evaluate` by default runs 2 Leiden passes
  instead of "until stable" and subsamples NMI to 10,000 cells (see its docstring: scglue's NMI takes over 20 min
  on 20k cells); :func:`normalized_mutual_info` itself defaults to scglue's computation.

Aggregates (BiCLUM paper, ``eva/metrics.py::all_metrics`` of the authors' code, which follows GLUE's grouping):

* ``omics_mixing`` = mean(neighborhood overlap (k=30), graph connectivity, Seurat alignment score, batch ASW) for
  paired data and mean(graph connectivity, Seurat alignment score, batch ASW) for unpaired data;
* ``biology_conservation`` = mean(mean average precision, cell-type ASW, NMI).

All scores are "higher is better" except FOSCTTM (0 = every cell's true partner is its nearest cell of the other
modality, 0.5 = random).

References: Cao & Gao, Nat Biotechnol 40:1458 (2022) (scglue.metrics); Luecken et al., NeurIPS 2021 datasets track
(OpenProblems multimodal joint-embedding metrics); the BiCLUM paper (PLoS Comput Biol 2026) and its code
(github.com/LiminLi-xjtu/BiCLUM, ``eva/metrics.py``).
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from ._logging import logger
from .errors import BiclumInputError

__all__ = [
    "foscttm", "foscttm_score", "label_transfer_accuracy", "mean_average_precision", "normalized_mutual_info",
    "avg_silhouette_width", "graph_connectivity", "seurat_alignment_score", "avg_silhouette_width_batch",
    "neighbor_conservation", "neighborhood_overlap", "omics_mixing", "biology_conservation", "evaluate",
    "METRIC_NAMES", "BATCH_METRIC_NAMES", "ilisi", "within_modality_batch_mixing",
]

#: keys of :func:`evaluate`'s result, in table order
METRIC_NAMES = (
    "foscttm", "foscttm_rna", "foscttm_other", "neighborhood_overlap",
    "transfer_rna_to_other", "transfer_other_to_rna",
    "map", "asw_celltype", "nmi", "graph_connectivity",
    "seurat_alignment_score", "asw_batch", "neighbor_conservation",
    "omics_mixing", "biology_conservation",
)
#: keys :func:`evaluate` adds when batches within the modalities are given (rna_batch / other_batch)
BATCH_METRIC_NAMES = ("batch_asw_rna", "batch_asw_other", "ilisi_rna", "ilisi_other")


# ----------------------------------------------------------------------------------------------------- helpers
def _emb(x, name: str) -> np.ndarray:
    x = np.asarray(x.toarray() if sp.issparse(x) else x)
    if x.ndim != 2:
        raise BiclumInputError(f"{name} must be a 2-D array (cells x dimensions), got shape {x.shape}; "
                               "pass e.g. adata.obsm['X_biclum'].")
    if x.shape[0] == 0:
        raise BiclumInputError(f"{name} has no cells; pass a non-empty embedding.")
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    if not np.all(np.isfinite(x)):
        raise BiclumInputError(f"{name} contains NaN or infinite values; drop or fix those cells first.")
    return x


def _labels(y, n: int, name: str) -> np.ndarray:
    y = np.asarray(pd.Series(np.asarray(y).ravel()).astype(str).to_numpy(), dtype=object)
    if y.shape[0] != n:
        raise BiclumInputError(f"{name} has {y.shape[0]} entries but the embedding has {n} cells; "
                               "give one label per cell, in the embedding's order.")
    return y


def _rs(random_state):
    """scglue.utils.get_rs: an int seeds a new RandomState, a RandomState is used as is, None = numpy global."""
    if isinstance(random_state, (int, np.integer)):
        return np.random.RandomState(int(random_state))
    if isinstance(random_state, np.random.RandomState):
        return random_state
    return np.random


def _knn(x: np.ndarray, k: int, **kwargs) -> Tuple[np.ndarray, np.ndarray]:
    """Exact k nearest neighbours of every row of x among the rows of x (itself included, as sklearn returns)."""
    from sklearn.neighbors import NearestNeighbors

    k = min(k, x.shape[0])
    nn = NearestNeighbors(n_neighbors=k, **kwargs).fit(x)
    return nn.kneighbors(x)


def _smooth_knn_dist(dist: np.ndarray, k: int, n_iter: int = 64, bandwidth: float = 1.0):
    """UMAP's ``smooth_knn_dist`` with local_connectivity=1, vectorised over cells (returns sigma, rho)."""
    n = dist.shape[0]
    target = np.log2(k) * bandwidth
    nonzero = dist > 0
    has = nonzero.any(axis=1)
    rho = np.zeros(n)
    rho[has] = dist[has, np.argmax(nonzero[has], axis=1)]
    d = dist[:, 1:] - rho[:, None]
    lo = np.zeros(n)
    hi = np.full(n, np.inf)
    mid = np.ones(n)
    active = np.ones(n, dtype=bool)
    for _ in range(n_iter):
        if not active.any():
            break
        a = np.flatnonzero(active)
        da = d[a]
        with np.errstate(over="ignore"):
            psum = np.where(da > 0, np.exp(-da / mid[a, None]), 1.0).sum(axis=1)
        done = np.abs(psum - target) < 1e-5
        active[a[done]] = False
        a, psum = a[~done], psum[~done]
        too_big = psum > target
        hi[a[too_big]] = mid[a[too_big]]
        mid[a[too_big]] = (lo[a[too_big]] + hi[a[too_big]]) / 2.0
        small = a[~too_big]
        lo[small] = mid[small]
        inf = np.isinf(hi[small])
        mid[small[inf]] *= 2.0
        mid[small[~inf]] = (lo[small[~inf]] + hi[small[~inf]]) / 2.0
    sigma = mid
    floor_row = 1e-3 * dist.mean(axis=1)
    floor_all = 1e-3 * dist.mean()
    sigma = np.where(rho > 0, np.maximum(sigma, floor_row), np.maximum(sigma, floor_all))
    return sigma, rho


def _umap_graph(x: np.ndarray, n_neighbors: int = 15) -> sp.csr_matrix:
    """Symmetric fuzzy kNN graph as ``scanpy.pp.neighbors(adata, n_neighbors, use_rep='X')`` (exact kNN)."""
    n = x.shape[0]
    k = min(n_neighbors, n)
    dist, idx = _knn(x, k)
    dist = dist.astype(np.float64)
    sigma, rho = _smooth_knn_dist(dist, k)
    with np.errstate(over="ignore", invalid="ignore"):
        val = np.exp(-(dist - rho[:, None]) / sigma[:, None])
    val = np.where((dist - rho[:, None] <= 0) | (sigma[:, None] == 0), 1.0, val)
    val[idx == np.arange(n)[:, None]] = 0.0
    a = sp.csr_matrix((val.ravel(), (np.repeat(np.arange(n), k), idx.ravel())), shape=(n, n))
    a.eliminate_zeros()
    at = a.T.tocsr()
    g = (a + at - a.multiply(at)).tocsr()
    g.eliminate_zeros()
    return g


# ---------------------------------------------------------------------------------------------- paired metrics
def foscttm(x, y, block_size: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Fraction of samples closer than the true match, per cell, both directions (scglue.metrics.foscttm).

    ``foscttm_x[i]`` = fraction of cells j of Y with ``d(x_i, y_j) < d(x_i, y_i)``; ``foscttm_y[j]`` = fraction of
    cells i of X with ``d(x_i, y_j) < d(x_j, y_j)`` (euclidean). Row i of x and row i of y must be the same cell.
    Computed in blocks of ``block_size`` rows (default: about 64 MB of float64 per block), so memory is
    O(n x block) and 100k cells never need a dense n x n matrix. Lower is better; 0.5 is random.
    """
    x = _emb(x, "x")
    y = _emb(y, "y")
    if x.shape != y.shape:
        raise BiclumInputError(f"foscttm needs paired embeddings of the same shape, got x {x.shape} and y {y.shape}; "
                               "row i of both must be the same cell (the metric is skipped for unpaired data).")
    x = x.astype(np.float64, copy=False)
    y = y.astype(np.float64, copy=False)
    n = x.shape[0]
    if block_size is None:
        block_size = max(1, min(n, (1 << 23) // max(n, 1)))
    xx = np.einsum("ij,ij->i", x, x)
    yy = np.einsum("ij,ij->i", y, y)
    diag = np.einsum("ij,ij->i", x - y, x - y)  # squared true-match distances, computed directly
    scale = xx.max() + yy.max()
    tol = 1e-12 * scale  # rounding of the expanded formula; differences below it are ties
    count_x = np.zeros(n, dtype=np.int64)
    count_y = np.zeros(n, dtype=np.int64)
    for start in range(0, n, block_size):
        stop = min(n, start + block_size)
        d2 = x[start:stop] @ y.T  # squared distances, in place: |x|^2 + |y|^2 - 2 x.y
        d2 *= -2.0
        d2 += xx[start:stop, None]
        d2 += yy[None, :]
        count_x[start:stop] = np.count_nonzero(d2 < (diag[start:stop, None] - tol), axis=1)
        count_y += np.count_nonzero(d2 < (diag[None, :] - tol), axis=0)
    return count_x / n, count_y / n


def foscttm_score(x, y, **kwargs) -> float:
    """Mean FOSCTTM over both directions (the single number the BiCLUM paper and GLUE report)."""
    fx, fy = foscttm(x, y, **kwargs)
    return float(np.concatenate([fx, fy]).mean())


def neighborhood_overlap(x, y, k: int = 30) -> float:
    """Fraction of cells whose paired partner is among their k nearest cells of the joint embedding.

    The BiCLUM paper's ``neigh_overlap`` (eva/metrics.py): kNN (itself included) on the concatenation of x and y;
    the mean over both modalities of [partner in the k-list]. Paired data only; higher is better.
    """
    x = _emb(x, "x")
    y = _emb(y, "y")
    if x.shape != y.shape:
        raise BiclumInputError(f"neighborhood_overlap needs paired embeddings of the same shape, got {x.shape} and "
                               f"{y.shape}.")
    n = x.shape[0]
    _, idx = _knn(np.concatenate([x, y]), k)
    hit_x = (idx[:n] == (np.arange(n) + n)[:, None]).any(axis=1)
    hit_y = (idx[n:] == np.arange(n)[:, None]).any(axis=1)
    return float(0.5 * (hit_x.sum() + hit_y.sum()) / n)


# ----------------------------------------------------------------------------------------------- label metrics
def label_transfer_accuracy(source_emb, source_labels, target_emb, target_labels, k: int = 5) -> float:
    """Accuracy of transferring labels from source cells to target cells by k-NN majority vote (sklearn).

    ``KNeighborsClassifier(n_neighbors=k)`` fitted on the source cells predicts each target cell; the result is the
    fraction predicted correctly. The BiCLUM paper's "transfer accuracy" is source = other modality, target = RNA.
    """
    from sklearn.neighbors import KNeighborsClassifier

    xs = _emb(source_emb, "source_emb")
    xt = _emb(target_emb, "target_emb")
    ys = _labels(source_labels, xs.shape[0], "source_labels")
    yt = _labels(target_labels, xt.shape[0], "target_labels")
    if xs.shape[1] != xt.shape[1]:
        raise BiclumInputError(f"source_emb has {xs.shape[1]} dimensions and target_emb {xt.shape[1]}; "
                               "both must live in the same joint space.")
    clf = KNeighborsClassifier(n_neighbors=min(k, xs.shape[0])).fit(xs, ys)
    return float(np.mean(clf.predict(xt) == yt))


def _average_precision(match: np.ndarray) -> np.ndarray:
    """Row-wise average precision of boolean hit rows (0 where a row has no hit)."""
    match = match.astype(np.float64)
    prec = np.cumsum(match, axis=1) / np.arange(1, match.shape[1] + 1)
    hits = match.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ap = (prec * match).sum(axis=1) / hits
    return np.where(hits > 0, ap, 0.0)


def mean_average_precision(x, y, neighbor_frac: float = 0.01, **kwargs) -> float:
    """Mean average precision of same-label neighbours (scglue.metrics.mean_average_precision).

    k = max(round(n * neighbor_frac), 1) nearest neighbours (self excluded) of every cell; per cell the average
    precision of the hits (neighbours with the same label) in distance order; the mean over cells.
    ``kwargs`` go to :class:`sklearn.neighbors.NearestNeighbors`.
    """
    x = _emb(x, "x")
    y = _labels(y, x.shape[0], "y")
    k = max(round(y.shape[0] * neighbor_frac), 1)
    _, nni = _knn(x, min(y.shape[0], k + 1), **kwargs)
    match = y[nni[:, 1:]] == y[:, None]
    return float(_average_precision(match).mean())


def avg_silhouette_width(x, y, **kwargs) -> float:
    """Cell-type average silhouette width rescaled to [0, 1]: (ASW + 1) / 2 (scglue / OpenProblems)."""
    from sklearn.metrics import silhouette_score

    x = _emb(x, "x")
    y = _labels(y, x.shape[0], "y")
    if len(np.unique(y)) < 2:
        raise BiclumInputError("avg_silhouette_width needs at least 2 distinct labels (silhouette is undefined "
                               "for one cluster).")
    return float((silhouette_score(x, y, **kwargs) + 1) / 2)


def avg_silhouette_width_batch(x, y, ct, **kwargs) -> float:
    """Batch (omics layer) ASW: mean over cell types of mean(1 - |silhouette of the batch labels|).

    scglue.metrics.avg_silhouette_width_batch: within each cell type the silhouette of the batch labels y; a cell
    type with one batch only (or too few cells) scores 1. Higher = better mixed.
    """
    from sklearn.metrics import silhouette_samples

    x = _emb(x, "x")
    y = _labels(y, x.shape[0], "y")
    ct = _labels(ct, x.shape[0], "ct")
    scores = []
    for t in np.unique(ct):
        mask = ct == t
        try:
            s = silhouette_samples(x[mask], y[mask], **kwargs)
        except ValueError:  # one batch or too few cells: as scglue, silhouette 0
            s = np.zeros(1)
        scores.append(float((1 - np.fabs(s)).mean()))
    return float(np.mean(scores))


def normalized_mutual_info(x, y, resolutions: Optional[Sequence[float]] = None, n_neighbors: int = 15,
                           random_state: int = 0, n_iterations: int = -1, return_all: bool = False, **kwargs):
    """Best NMI between Leiden clusterings and the labels (scglue.metrics.normalized_mutual_info).

    The kNN graph of ``scanpy.pp.neighbors(n_neighbors=15)`` (UMAP connectivities, exact kNN), Leiden
    (RBConfiguration, seed ``random_state``, ``n_iterations`` passes; -1 = until stable, as ``sc.tl.leiden``) at
    resolutions 0.1, 0.2, ..., 2.0, and the maximum of ``sklearn.metrics.normalized_mutual_info_score(y,
    clusters)``. Needs ``igraph`` and ``leidenalg`` (``pip install biclum[cluster]``). With ``return_all``
    returns ``(best, {resolution: nmi})``.
    """
    try:
        import igraph as ig
        import leidenalg
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("normalized_mutual_info needs igraph and leidenalg: pip install 'biclum[cluster]'") from exc
    from sklearn.metrics import normalized_mutual_info_score

    x = _emb(x, "x")
    y = _labels(y, x.shape[0], "y")
    if resolutions is None:
        resolutions = (np.arange(20) + 1) / 10
    g = sp.triu(_umap_graph(x, n_neighbors), k=1).tocoo()
    graph = ig.Graph(n=x.shape[0], edges=np.column_stack([g.row, g.col]).tolist(), directed=False)
    graph.es["weight"] = g.data.tolist()
    scores = {}
    for res in resolutions:
        part = leidenalg.find_partition(graph, leidenalg.RBConfigurationVertexPartition, weights="weight",
                                        resolution_parameter=float(res), n_iterations=n_iterations,
                                        seed=random_state)
        scores[float(res)] = float(normalized_mutual_info_score(y, np.asarray(part.membership), **kwargs))
    best = max(scores.values())
    return (best, scores) if return_all else best


def graph_connectivity(x, y, n_neighbors: int = 15) -> float:
    """Graph connectivity (scglue / OpenProblems): mean over labels of the largest connected component's share.

    The kNN graph is scanpy's default ``neighbors`` graph (15 neighbours, UMAP connectivities, exact kNN); for each
    label, the subgraph of its cells is split into connected components and the largest one's cell fraction kept.
    """
    x = _emb(x, "x")
    y = _labels(y, x.shape[0], "y")
    g = _umap_graph(x, n_neighbors)
    conns = []
    for lab in np.unique(y):
        idx = np.flatnonzero(y == lab)
        _, comp = connected_components(g[idx][:, idx], connection="strong")
        counts = np.bincount(comp)
        conns.append(counts.max() / counts.sum())
    return float(np.mean(conns))


def seurat_alignment_score(x, y, neighbor_frac: float = 0.01, n_repeats: int = 4, random_state=None,
                           **kwargs) -> float:
    """Seurat alignment score of the batch (omics layer) labels y (scglue.metrics.seurat_alignment_score).

    Each repeat subsamples every batch to the smallest batch's size (``RandomState(random_state)``, as scglue),
    takes k = max(round(n_sub * neighbor_frac), 1) neighbours and scores
    ``(k - mean same-batch hits) * B / (k * (B - 1))`` capped at 1; the mean over repeats. 1 = perfectly mixed.
    """
    x = _emb(x, "x")
    y = _labels(y, x.shape[0], "y")
    rs = _rs(random_state)
    idx_list = [np.where(y == u)[0] for u in np.unique(y)]
    if len(idx_list) < 2:
        raise BiclumInputError("seurat_alignment_score needs at least 2 batches (omics layers) in y.")
    min_size = min(idx.size for idx in idx_list)
    scores = []
    for _ in range(n_repeats):
        sub = np.concatenate([rs.choice(idx, min_size, replace=False) for idx in idx_list])
        xs, ys = x[sub], y[sub]
        k = max(round(sub.size * neighbor_frac), 1)
        _, nni = _knn(xs, k + 1, **kwargs)
        same = (ys[nni[:, 1:]] == ys[:, None]).sum(axis=1).mean()
        score = (k - same) * len(idx_list) / (k * (len(idx_list) - 1))
        scores.append(min(score, 1.0))
    return float(np.mean(scores))


def neighbor_conservation(x, y, batch, neighbor_frac: float = 0.01, **kwargs) -> float:
    """Neighbour conservation (scglue.metrics.neighbor_conservation): kNN Jaccard before vs after integration.

    x: coordinates after integration, y: coordinates before (e.g. each modality's own PCA/LSI), batch: omics layer.
    Within each batch, the Jaccard index of every cell's k neighbours (self excluded; k from the *total* cell count,
    as scglue) in x and in y, averaged over cells and then over batches.
    """
    from sklearn.neighbors import NearestNeighbors

    x = _emb(x, "x")
    batch = _labels(batch, x.shape[0], "batch")
    if isinstance(y, (list, tuple)):
        raise BiclumInputError("neighbor_conservation's y must be one array of pre-integration coordinates.")
    y = np.asarray(y)
    if y.shape[0] != x.shape[0]:
        raise BiclumInputError(f"neighbor_conservation: y has {y.shape[0]} cells, x {x.shape[0]}.")
    k = max(round(x.shape[0] * neighbor_frac), 1)
    per_batch = []
    for b in np.unique(batch):
        mask = batch == b
        xb, yb = x[mask], y[mask]
        nnx = NearestNeighbors(n_neighbors=min(xb.shape[0], k + 1), **kwargs).fit(xb).kneighbors_graph(xb)
        nny = NearestNeighbors(n_neighbors=min(yb.shape[0], k + 1), **kwargs).fit(yb).kneighbors_graph(yb)
        nnx = nnx.tolil()
        nny = nny.tolil()
        nnx.setdiag(0)
        nny.setdiag(0)
        nnx, nny = nnx.tocsr(), nny.tocsr()
        nnx.eliminate_zeros()
        nny.eliminate_zeros()
        inter = np.asarray(nnx.multiply(nny).sum(axis=1)).ravel()
        union = np.asarray((nnx + nny).astype(bool).sum(axis=1)).ravel()
        per_batch.append(float(np.mean(inter / union)))
    return float(np.mean(per_batch))


def _simpson(dist: np.ndarray, codes: np.ndarray, n_codes: int, perplexity: float, n_iter: int = 50) -> np.ndarray:
    """Harmony's ``compute_simpson``: per row, Gaussian weights on the neighbour distances with the bandwidth found
    by bisection so their entropy is log(perplexity), then sum over batches of (weight share)^2."""
    n = dist.shape[0]
    beta = np.ones(n)
    lo, hi = np.full(n, -np.inf), np.full(n, np.inf)
    target = np.log(perplexity)
    d = dist - dist[:, :1]  # shift per row for stability (cancels in the normalisation)
    for _ in range(n_iter):
        p = np.exp(-d * beta[:, None])
        s = np.maximum(p.sum(axis=1), 1e-300)
        h = np.log(s) + beta * (d * p).sum(axis=1) / s
        up = h > target  # entropy too high: narrow the kernel
        lo = np.where(up, beta, lo)
        hi = np.where(up, hi, beta)
        beta = np.where(up, np.where(np.isfinite(hi), (beta + hi) / 2, beta * 2),
                        np.where(np.isfinite(lo), (beta + lo) / 2, beta / 2))
    p = np.exp(-d * beta[:, None])
    p /= np.maximum(p.sum(axis=1, keepdims=True), 1e-300)
    share = np.zeros((n, n_codes))
    for j in range(codes.shape[1]):
        np.add.at(share, (np.arange(n), codes[:, j]), p[:, j])
    return (share ** 2).sum(axis=1)


def ilisi(x, batch, perplexity: float = 30.0, scale: bool = True) -> float:
    """Integration LISI of the batch labels (Korsunsky et al. 2019, Harmony's ``compute_lisi``), as scIB's
    ``ilisi_graph`` on an embedding: the median over cells of 1/Simpson's index of the batches among the cell's
    3 * perplexity nearest neighbours (exact, Euclidean), Gaussian-weighted to the given perplexity. With
    ``scale`` (scIB) the result is (median - 1) / (B - 1): 0 = every neighbourhood holds one batch, 1 = the
    batches are as mixed as B equal-sized batches can be."""
    x = _emb(x, "x")
    b = _labels(batch, x.shape[0], "batch")
    levels, codes = np.unique(b, return_inverse=True)
    if len(levels) < 2:
        raise BiclumInputError("ilisi needs at least 2 batches.")
    k = int(min(x.shape[0] - 1, 3 * perplexity))
    dist, idx = _knn(x, k + 1)
    simpson = _simpson(dist[:, 1:], codes[idx[:, 1:]], len(levels), min(perplexity, k / 3))
    lisi = float(np.median(1.0 / simpson))
    return (lisi - 1) / (len(levels) - 1) if scale else lisi


def within_modality_batch_mixing(x, batch, labels=None, max_cells: Optional[int] = 50000,
                                 random_state: int = 0) -> Dict[str, float]:
    """Mixing of the batches of one modality in its embedding: ``batch_asw`` (scIB: 1 - |silhouette of the
    batch labels| within each cell type, averaged over types; one group of all cells when ``labels`` is None)
    and scaled ``ilisi``; both 1 = well mixed. Above ``max_cells`` cells both use a random subsample."""
    x = _emb(x, "x")
    b = _labels(batch, x.shape[0], "batch")
    ct = _labels(labels, x.shape[0], "labels") if labels is not None else np.zeros(x.shape[0], dtype=object)
    sub = np.arange(x.shape[0])
    if max_cells is not None and x.shape[0] > max_cells:
        sub = np.sort(np.random.RandomState(random_state).choice(x.shape[0], max_cells, replace=False))
    return {"batch_asw": avg_silhouette_width_batch(x[sub], b[sub], ct[sub]), "ilisi": ilisi(x[sub], b[sub])}


# ------------------------------------------------------------------------------------------------- aggregates
def omics_mixing(metrics: Dict[str, float], paired: bool) -> Optional[float]:
    """BiCLUM paper's omics mixing: mean(neighbourhood overlap, graph connectivity, SAS, batch ASW) when paired,
    mean(graph connectivity, SAS, batch ASW) when unpaired (``all_metrics`` in the authors' eva/metrics.py).
    Returns None when a component is missing."""
    keys = (["neighborhood_overlap"] if paired else []) + ["graph_connectivity", "seurat_alignment_score",
                                                           "asw_batch"]
    vals = [metrics.get(k) for k in keys]
    if any(v is None or not np.isfinite(v) for v in vals):
        return None
    return float(np.mean(vals))


def biology_conservation(metrics: Dict[str, float]) -> Optional[float]:
    """BiCLUM paper / GLUE biology conservation: mean(MAP, cell-type ASW, NMI); None when a component is missing."""
    vals = [metrics.get(k) for k in ("map", "asw_celltype", "nmi")]
    if any(v is None or not np.isfinite(v) for v in vals):
        return None
    return float(np.mean(vals))


# --------------------------------------------------------------------------------------------------- evaluate
def evaluate(rna_emb, other_emb, rna_labels=None, other_labels=None, *, paired: bool = False, nmi: bool = True,
             max_cells_for_nmi: Optional[int] = 10000, nmi_iterations: int = 2,
             max_cells_for_silhouette: Optional[int] = 50000,
             k_transfer: int = 5, neighbor_frac: float = 0.01, overlap_k: int = 30, rna_pre=None, other_pre=None,
             rna_batch=None, other_batch=None, random_state: int = 0, return_skipped: bool = False):
    """All metrics of one joint embedding, as a dict (keys in :data:`METRIC_NAMES` order; skipped ones absent).

    Parameters
    ----------
    rna_emb, other_emb
        Cell embeddings of the RNA cells and of the other modality's cells in the joint space.
    rna_labels, other_labels
        Cell-type labels (optional). Without both, the label metrics (transfer, MAP, ASW, NMI, graph connectivity,
        batch ASW and the aggregates) are skipped with a logged reason.
    paired
        True when row i of both embeddings is the same cell: adds FOSCTTM (mean and per direction) and the
        neighbourhood overlap; for unpaired data these are skipped.
    nmi, max_cells_for_nmi, nmi_iterations
        Compute NMI (20 Leiden runs; by far the slowest metric). When the joint embedding has more than
        ``max_cells_for_nmi`` cells, NMI is computed on a uniform random subsample of that many cells
        (``random_state``); None = never subsample. Leiden runs ``nmi_iterations`` passes (scglue/scanpy: -1,
        until stable; 2 is scanpy's recommended value and 3x faster: on 4,000 SNARE-seq cells the best NMI was
        0.338 with 2 passes vs 0.340 until stable). Pass ``max_cells_for_nmi=None, nmi_iterations=-1`` for the
        exact scglue computation.
    max_cells_for_silhouette
        Cell-type and batch ASW are O(n^2); above this many cells they use a uniform random subsample.
    k_transfer
        Neighbours of the kNN label transfer (5, sklearn's default, as the BiCLUM paper).
    rna_pre, other_pre
        Each modality's pre-integration coordinates (e.g. its own PCA/LSI) for scglue's neighbour conservation;
        skipped when absent.
    rna_batch, other_batch
        Batch (sample/donor) labels of the cells within each modality, optional: each modality with at least two
        batches adds ``batch_asw_<m>`` and ``ilisi_<m>`` (:func:`within_modality_batch_mixing`, per cell type
        when labels are given) for its cells in the joint embedding.
    return_skipped
        Also return ``{metric: reason}`` for the skipped metrics.

    Metrics on the joint embedding (RNA cells stacked over the other cells, omics layer as the batch): MAP,
    cell-type ASW, NMI and graph connectivity use the cell types; Seurat alignment score and batch ASW the omics
    layer; ``transfer_rna_to_other`` = labels of RNA cells transferred to the other cells (kNN), and
    ``transfer_other_to_rna`` the reverse (the BiCLUM paper's "transfer accuracy").
    """
    xr = _emb(rna_emb, "rna_emb")
    xo = _emb(other_emb, "other_emb")
    if xr.shape[1] != xo.shape[1]:
        raise BiclumInputError(f"rna_emb has {xr.shape[1]} dimensions and other_emb {xo.shape[1]}; "
                               "pass two embeddings of the same joint space.")
    nr, no = xr.shape[0], xo.shape[0]
    if paired and nr != no:
        raise BiclumInputError(f"paired=True but rna_emb has {nr} cells and other_emb {no}; paired embeddings "
                               "must list the same cells in the same order (or pass paired=False).")
    out: Dict[str, float] = {}
    skipped: Dict[str, str] = {}

    def skip(keys, reason):
        for key in keys:
            skipped[key] = reason
        logger.info("metrics: skipped %s (%s)", ", ".join(keys), reason)

    if paired:
        fx, fy = foscttm(xr, xo)
        out["foscttm"] = float(np.concatenate([fx, fy]).mean())
        out["foscttm_rna"] = float(fx.mean())
        out["foscttm_other"] = float(fy.mean())
        out["neighborhood_overlap"] = neighborhood_overlap(xr, xo, k=overlap_k)
    else:
        skip(["foscttm", "foscttm_rna", "foscttm_other", "neighborhood_overlap"], "unpaired data")

    x = np.concatenate([xr, xo]).astype(np.float32 if xr.dtype == np.float32 else np.float64, copy=False)
    omics = np.array(["rna"] * nr + ["other"] * no, dtype=object)
    rs = np.random.RandomState(random_state)

    def subsample(limit, what):
        if limit is None or x.shape[0] <= limit:
            return np.arange(x.shape[0])
        logger.info("metrics: %s on a random subsample of %d of %d cells", what, limit, x.shape[0])
        return np.sort(rs.choice(x.shape[0], limit, replace=False))

    out["seurat_alignment_score"] = seurat_alignment_score(x, omics, neighbor_frac=neighbor_frac,
                                                           random_state=random_state)
    have_labels = rna_labels is not None and other_labels is not None
    label_keys = ["transfer_rna_to_other", "transfer_other_to_rna", "map", "asw_celltype", "nmi",
                  "graph_connectivity", "asw_batch"]
    if have_labels:
        yr = _labels(rna_labels, nr, "rna_labels")
        yo = _labels(other_labels, no, "other_labels")
        y = np.concatenate([yr, yo])
        out["transfer_rna_to_other"] = label_transfer_accuracy(xr, yr, xo, yo, k=k_transfer)
        out["transfer_other_to_rna"] = label_transfer_accuracy(xo, yo, xr, yr, k=k_transfer)
        out["map"] = mean_average_precision(x, y, neighbor_frac=neighbor_frac)
        sil = subsample(max_cells_for_silhouette, "silhouette widths")
        if len(np.unique(y[sil])) >= 2:
            out["asw_celltype"] = avg_silhouette_width(x[sil], y[sil])
        else:
            skip(["asw_celltype"], "one cell type only")
        if nmi:
            try:
                sub = subsample(max_cells_for_nmi, "NMI")
                out["nmi"] = normalized_mutual_info(x[sub], y[sub], random_state=random_state,
                                                   n_iterations=nmi_iterations)
            except ImportError as exc:
                skip(["nmi"], str(exc))
        else:
            skip(["nmi"], "nmi=False")
        out["graph_connectivity"] = graph_connectivity(x, y)
        out["asw_batch"] = avg_silhouette_width_batch(x[sil], omics[sil], y[sil])
    else:
        skip(label_keys, "no cell-type labels for both modalities")

    if rna_pre is not None and other_pre is not None:
        pre_r, pre_o = _emb(rna_pre, "rna_pre"), _emb(other_pre, "other_pre")
        if pre_r.shape[0] != nr or pre_o.shape[0] != no:
            raise BiclumInputError("rna_pre/other_pre must have as many cells as rna_emb/other_emb.")
        # = neighbor_conservation(joint, stacked pre-integration coordinates, omics layer); per layer here so the
        # two pre-integration spaces may have different dimensions. k comes from the total cell count, as scglue.
        k = max(round(x.shape[0] * neighbor_frac), 1)
        scores = [_jaccard_knn(emb, pre, k) for emb, pre in ((xo, pre_o), (xr, pre_r))]
        out["neighbor_conservation"] = float(np.mean(scores))
    else:
        skip(["neighbor_conservation"], "no pre-integration coordinates (rna_pre/other_pre)")

    for m, xm, batch, labels in (("rna", xr, rna_batch, rna_labels if have_labels else None),
                                 ("other", xo, other_batch, other_labels if have_labels else None)):
        if batch is None:  # optional metrics: absent, not "skipped"
            continue
        if len(np.unique(_labels(batch, xm.shape[0], f"{m}_batch"))) < 2:
            skip([f"batch_asw_{m}", f"ilisi_{m}"], f"one batch only within {m}")
            continue
        mix = within_modality_batch_mixing(xm, batch, labels, max_cells_for_silhouette, random_state)
        out[f"batch_asw_{m}"], out[f"ilisi_{m}"] = mix["batch_asw"], mix["ilisi"]

    om = omics_mixing(out, paired)
    if om is not None:
        out["omics_mixing"] = om
    else:
        skip(["omics_mixing"], "a component is missing")
    bc = biology_conservation(out)
    if bc is not None:
        out["biology_conservation"] = bc
    else:
        skip(["biology_conservation"], "a component is missing")
    ordered = {k: out[k] for k in METRIC_NAMES + BATCH_METRIC_NAMES if k in out}
    return (ordered, skipped) if return_skipped else ordered


def _jaccard_knn(x: np.ndarray, y: np.ndarray, k: int) -> float:
    """Mean Jaccard index of k-NN sets (self excluded) of the same cells in x and in y."""
    n = x.shape[0]
    kk = min(n, k + 1)
    _, ix = _knn(x, kk)
    _, iy = _knn(y, kk)
    rows = np.repeat(np.arange(n), kk)
    a = sp.csr_matrix((np.ones(n * kk), (rows, ix.ravel())), shape=(n, n))
    b = sp.csr_matrix((np.ones(n * kk), (rows, iy.ravel())), shape=(n, n))
    a.setdiag(0)
    b.setdiag(0)
    a.eliminate_zeros()
    b.eliminate_zeros()
    inter = np.asarray(a.multiply(b).sum(axis=1)).ravel()
    union = np.asarray((a + b).astype(bool).sum(axis=1)).ravel()
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(np.nanmean(inter / union))
