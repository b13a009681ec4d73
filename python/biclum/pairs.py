"""Positive pairs: mutual nearest neighbours between modalities (cells) and shared genes (features).

The kNN search uses faiss (cosine = inner product of L2-normalised vectors): an exact flat index while the
problem is small, an IVF index (approximate, O(n sqrt(n)) instead of O(n^2)) for atlases.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ._logging import logger


def _normalize_rows(x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def knn_cosine(query: np.ndarray, base: np.ndarray, k: int, exact_max: float = 2.5e9, seed: int = 0) -> np.ndarray:
    """Indices (n_query x k) of each query row's k most cosine-similar base rows."""
    import faiss

    q, b = _normalize_rows(query), _normalize_rows(base)
    k = min(k, b.shape[0])
    d = b.shape[1]
    if float(q.shape[0]) * b.shape[0] <= exact_max:
        index = faiss.IndexFlatIP(d)
    else:
        nlist = int(min(4 * np.sqrt(b.shape[0]), 16384))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(seed)
        train = b[rng.choice(b.shape[0], size=min(b.shape[0], 64 * nlist), replace=False)]
        index.train(train)
        index.nprobe = 16
        logger.info("approximate kNN: IVF index with %d lists, nprobe %d", nlist, index.nprobe)
    index.add(b)
    _, idx = index.search(q, k)
    return idx


@dataclass
class CellPairs:
    """MNN pairs as a CSR adjacency (rna cells x other cells) plus convenience views."""

    adjacency: sp.csr_matrix  # n_rna x n_other, 1 where the pair is mutual

    @property
    def rna_partners(self) -> sp.csr_matrix:
        return self.adjacency

    @property
    def other_partners(self) -> sp.csr_matrix:
        return self.adjacency.T.tocsr()

    @property
    def n_pairs(self) -> int:
        return int(self.adjacency.nnz)

    def flags(self) -> tuple[np.ndarray, np.ndarray]:
        """Boolean masks of the cells that have at least one MNN partner (rna, other)."""
        return np.diff(self.rna_partners.indptr) > 0, np.diff(self.other_partners.indptr) > 0


def mutual_nearest_neighbors(x_rna: np.ndarray, x_other: np.ndarray, k: int = 200, exact_max: float = 2.5e9,
                             seed: int = 0) -> CellPairs:
    """Pairs (i, j) where j is among i's k nearest other-cells and i among j's k nearest RNA cells (cosine)."""
    n_a, n_b = x_rna.shape[0], x_other.shape[0]
    ab = knn_cosine(x_rna, x_other, k, exact_max, seed)   # n_a x k (indices into other)
    ba = knn_cosine(x_other, x_rna, k, exact_max, seed)   # n_b x k (indices into rna)
    key_ab = (np.repeat(np.arange(n_a, dtype=np.int64), ab.shape[1]) * n_b + ab.ravel())
    key_ba = (ba.ravel().astype(np.int64) * n_b + np.repeat(np.arange(n_b, dtype=np.int64), ba.shape[1]))
    key_ab = key_ab[ab.ravel() >= 0]
    key_ba = key_ba[ba.ravel() >= 0]
    mutual = np.intersect1d(key_ab, key_ba, assume_unique=False)
    rows, cols = mutual // n_b, mutual % n_b
    adj = sp.csr_matrix((np.ones(len(mutual), dtype=np.float32), (rows, cols)), shape=(n_a, n_b))
    pairs = CellPairs(adj)
    fa, fb = pairs.flags()
    logger.info("MNN (k=%d): %d pairs; %.1f%% of RNA and %.1f%% of other cells have a partner",
                k, pairs.n_pairs, 100 * fa.mean(), 100 * fb.mean())
    return pairs


def sample_partners(partners: sp.csr_matrix, cells: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """For each cell in ``cells`` that has partners, one partner drawn uniformly. Returns (cells kept, partners)."""
    deg = np.diff(partners.indptr)[cells]
    keep = deg > 0
    cells = cells[keep]
    offsets = (rng.random(len(cells)) * deg[keep]).astype(np.int64)
    return cells, partners.indices[partners.indptr[cells] + offsets]


def feature_pairs(features_rna: np.ndarray, features_other: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the same gene in both modalities' feature lists (the feature-level positives)."""
    pos_other = {g: i for i, g in enumerate(features_other)}
    idx_rna = np.array([i for i, g in enumerate(features_rna) if g in pos_other], dtype=np.int64)
    idx_other = np.array([pos_other[features_rna[i]] for i in idx_rna], dtype=np.int64)
    return idx_rna, idx_other
