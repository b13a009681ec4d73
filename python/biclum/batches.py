"""Batches within a modality (samples, donors): per-batch centring of the encoder inputs and cross-batch MNN pairs.

The design (measured in benchmarks/results/batches.md):

* **centring**: each modality's PCA/LSI scores (the cell encoders' input) and its shared-gene coordinates (the
  cross-modal MNN search space) have each batch's mean subtracted, so a shift of a whole batch, the bulk of a
  batch effect in these linear spaces, is gone before training and before the pairs are searched; the
  smoothing kNN graph is built on the centred scores, so it links cells across batches;
* **cross-batch pairs**: mutual nearest neighbours between every two batches of a modality (in its centred
  scores, k as the cross-modal search) are extra positives of a second cell-level NT-Xent term (weight
  ``alpha_batch``, default ``alpha``), which pulls the same state from different batches together;
* **targets**: the standardised reconstruction targets subtract each batch's own feature means, so the decoder
  does not ask the embedding to carry the batch.

An unseen batch in query mapping (``BiCLUM.transform``) is centred on its own mean when the query names its
batch
column, on the stored mean of a batch seen in training, and on the training cells' overall mean when the query
gives no batch column. Everything is linear in cells (one pass per batch; MNN per pair of batches).
"""
from __future__ import annotations

import warnings
from typing import Optional

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ._logging import logger
from .errors import BiclumInputError, BiclumWarning
from .pairs import auto_mnn_k, mutual_nearest_neighbors


def batch_labels(adata, key: Optional[str], what: str) -> Optional[np.ndarray]:
    """``adata.obs[key]`` as strings; None when ``key`` is None. A missing column or missing values raise."""
    if key is None:
        return None
    if key not in adata.obs.columns:
        raise BiclumInputError(f"{what}: obs has no column {key!r} (the batch key); give one of "
                               f"{list(adata.obs.columns)[:10]} or leave the batch key unset.")
    col = adata.obs[key]
    if col.isna().any():
        raise BiclumInputError(f"{what}: obs[{key!r}] has {int(col.isna().sum())} missing values; give every cell "
                               f"a batch (e.g. fill them with 'unknown').")
    return col.astype(str).to_numpy()


class BatchCentering:
    """Per-batch means of a modality's coordinates: ``levels`` (batch names), ``means`` (levels x dims),
    ``overall`` / ``std`` (mean and standard deviation of all training cells), stored with the model for query
    mapping. With ``scales`` (levels x dims: each batch's standard deviation over ``std``) each batch is also
    rescaled to the overall spread."""

    def __init__(self, levels, means, overall, std, scales=None):
        self.levels, self.means, self.overall = np.asarray(levels, dtype=str), means, overall
        self.std, self.scales = std, scales

    @classmethod
    def fit(cls, x: np.ndarray, labels: np.ndarray, scale: bool = False) -> "BatchCentering":
        levels, codes = np.unique(labels, return_inverse=True)
        means, std = _group_means(x, codes, len(levels)), x.std(axis=0).astype(np.float32)
        return cls(levels, means, x.mean(axis=0).astype(np.float32), std,
                   _group_scales(x, codes, means, std) if scale else None)

    def transform(self, x: np.ndarray, labels: Optional[np.ndarray] = None, what: str = "") -> np.ndarray:
        """``x`` centred (and scaled) per batch: seen batches with their stored mean (and scale), unseen ones with
        their own, and all cells on the overall training mean when ``labels`` is None."""
        if labels is None:
            logger.info("%s: no batch column; centred on the training cells' overall mean", what)
            return (x - self.overall).astype(np.float32)
        levels, codes = np.unique(labels, return_inverse=True)
        means = _group_means(x, codes, len(levels))
        pos = pd.Index(self.levels).get_indexer(levels)
        seen = pos >= 0
        if not seen.all():
            logger.info("%s: batch(es) %s unseen in training; centred on their own mean", what, list(levels[~seen]))
        scales = None if self.scales is None else _group_scales(x, codes, means, self.std)
        means[seen] = self.means[pos[seen]]
        out = x - means[codes]
        if scales is not None:
            scales[seen] = self.scales[pos[seen]]
            out /= scales[codes]
        return out.astype(np.float32)

    def to_arrays(self, prefix: str) -> dict:
        out = {f"{prefix}batch_levels": self.levels, f"{prefix}batch_means": self.means,
               f"{prefix}batch_overall": self.overall, f"{prefix}batch_std": self.std}
        return out if self.scales is None else {**out, f"{prefix}batch_scales": self.scales}

    @classmethod
    def from_arrays(cls, arrays, prefix: str) -> Optional["BatchCentering"]:
        if f"{prefix}batch_levels" not in arrays:
            return None
        return cls(*(arrays[f"{prefix}batch_{k}"] for k in ("levels", "means", "overall", "std")),
                   arrays[f"{prefix}batch_scales"] if f"{prefix}batch_scales" in arrays else None)


def _group_means(x, codes: np.ndarray, n_groups: int) -> np.ndarray:
    """Mean row of ``x`` (dense or sparse) per group code, as float32 (groups x columns); linear in cells."""
    ind = sp.csr_matrix((np.ones(len(codes), dtype=np.float32), codes, np.arange(len(codes) + 1)),
                        shape=(len(codes), n_groups))
    sums = np.asarray((ind.T @ x).todense() if sp.issparse(x) else ind.T @ x, dtype=np.float64)
    return (sums / np.maximum(np.bincount(codes, minlength=n_groups), 1)[:, None]).astype(np.float32)


def _group_scales(x: np.ndarray, codes: np.ndarray, means: np.ndarray, overall_std: np.ndarray) -> np.ndarray:
    """Each group's standard deviation per column over ``overall_std`` (floored, so no column is blown up)."""
    sq = _group_means(np.square(x - means[codes]), codes, means.shape[0])
    return (np.sqrt(sq) / np.maximum(overall_std, 1e-6)).clip(0.1, None).astype(np.float32)


def batch_codes(labels: np.ndarray) -> np.ndarray:
    return np.unique(labels, return_inverse=True)[1].astype(np.int64)


def cross_batch_pairs(x: np.ndarray, labels: np.ndarray, k: Optional[int], exact_max: float, seed: int,
                      what: str) -> sp.csr_matrix:
    """Symmetric cells x cells adjacency of mutual nearest neighbours between every two batches (cosine, in
    ``x``); k from :func:`biclum.pairs.auto_mnn_k` on the two batches' sizes unless given."""
    codes = batch_codes(labels)
    n_b, n = codes.max() + 1, len(codes)
    if n_b < 2:
        warnings.warn(f"{what}: the batch key gives one batch only; no cross-batch pairs (the batch key has no "
                      f"effect beyond centring). Check the column, or leave the batch key unset.", BiclumWarning,
                      stacklevel=4)
        return sp.csr_matrix((n, n), dtype=np.float32)
    rows, cols = [], []
    for a in range(n_b):
        for b in range(a + 1, n_b):
            ia, ib = np.flatnonzero(codes == a), np.flatnonzero(codes == b)
            kk = auto_mnn_k(len(ia), len(ib), k)
            adj = mutual_nearest_neighbors(x[ia], x[ib], kk, exact_max, seed).adjacency.tocoo()
            rows += [ia[adj.row], ib[adj.col]]
            cols += [ib[adj.col], ia[adj.row]]
    r, c = np.concatenate(rows), np.concatenate(cols)
    adj = sp.csr_matrix((np.ones(len(r), dtype=np.float32), (r, c)), shape=(n, n))
    has = np.diff(adj.indptr) > 0
    logger.info("%s: %d cross-batch MNN pairs between %d batches; %.1f%% of cells have a partner",
                what, adj.nnz // 2, n_b, 100 * has.mean())
    return adj


def per_batch_feature_means(norm: sp.csr_matrix, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(codes, batches x features float32 means of ``norm``): the per-batch centres of the scaled targets."""
    codes = batch_codes(labels)
    return codes, _group_means(norm, codes, int(codes.max()) + 1)
