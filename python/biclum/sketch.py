"""The feature encoders' input: a fixed-size sketch of each feature's profile over cells.

The published BiCLUM feature encoder reads a feature's vector over *all* cells, so its first layer has n_cells
inputs: parameters and per-step cost grow with the data and a fitted model cannot take new cells. We instead
describe each feature by its mean normalised expression over ``n_metacells`` metacells (mini-batch k-means
clusters of the modality's PCA space). Why metacells rather than a random projection of the cell vector:

* the sketch is the feature's profile across cell states, the same information the full vector carries once
  cell-level noise is averaged out (a random projection keeps that noise and mixes unrelated cells);
* its size is a constant (256 by default), so the feature encoder costs the same at 10k or 1M cells;
* it is computed once, in O(nnz), as a sparse (metacells x cells) @ (cells x features) product.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ._logging import logger


def metacell_assignments(scores: np.ndarray, n_metacells: int, seed: int, n_dims: int = 30) -> np.ndarray:
    """Cluster cells into metacells with mini-batch k-means on their leading PCs."""
    from sklearn.cluster import MiniBatchKMeans

    n_clusters = int(min(n_metacells, max(2, scores.shape[0] // 5)))
    if n_clusters < n_metacells:
        logger.info("only %d cells: %d metacells instead of %d", scores.shape[0], n_clusters, n_metacells)
    km = MiniBatchKMeans(n_clusters=n_clusters, random_state=seed, batch_size=4096, n_init=1,
                         max_iter=100)
    return km.fit_predict(np.ascontiguousarray(scores[:, :n_dims], dtype=np.float32))


def feature_sketch(norm: sp.csr_matrix, labels: np.ndarray, n_metacells: int, scaling=None) -> np.ndarray:
    """Features x n_metacells matrix of mean normalised values per metacell (zero-padded to n_metacells).

    ``scaling`` = (mean, std) per feature: the means are standardised, so a feature is described by the shape of
    its profile across metacells, not by its expression level (which the decoder's bias and scale carry); a
    metacell without cells of this modality stays 0 (the feature's average)."""
    n = norm.shape[0]
    membership = sp.csr_matrix((np.ones(n, dtype=np.float32), (labels, np.arange(n))),
                               shape=(n_metacells, n))
    sizes = np.asarray(membership.sum(axis=1)).ravel()
    means = np.asarray((membership @ norm).todense()) / np.maximum(sizes, 1)[:, None]
    if scaling is not None:
        mean, std = scaling
        means = np.where(sizes[:, None] > 0, (means - mean[None, :]) / std[None, :], 0.0)
    return np.ascontiguousarray(means.T, dtype=np.float32)


def joint_metacells(z_rna: np.ndarray, z_other: np.ndarray, n_metacells: int, seed: int) -> tuple:
    """Metacells of both modalities' cells together, clustered in the joint (shared-gene) space: metacell j is the
    same cell state in RNA and in the other modality, so column j of both sketches describes one state and the
    feature-level loss compares like with like. Returns (rna labels, other labels)."""
    z = np.vstack([z_rna, z_other])
    z = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
    labels = metacell_assignments(z, n_metacells, seed, n_dims=z.shape[1])
    return labels[: len(z_rna)], labels[len(z_rna):]
