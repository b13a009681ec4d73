"""Batches within a modality (samples, donors): batch shifts removed from the encoder inputs, cross-batch MNN pairs.

The design (measured in benchmarks/results/batches.md and batches_mnn.md):

* **shifts**: each batch's shift is removed from each modality's PCA/LSI scores (the cell encoders' input), from
  its coordinates in the joint PCA of the shared genes (the cross-modal MNN search space; the smoothing kNN
  graph is built on the corrected scores, so it links cells across batches) and from the standardised
  reconstruction targets, so the decoder does not ask the embedding to carry the batch. With
  ``batch_centre="means"`` the shift is the batch mean (each batch is centred; the shared-gene PCA scales each
  batch on its own). With ``batch_centre="mnn"`` it is the mean difference over mutual nearest neighbours
  against the largest batch, one vector per batch as in fastMNN (:class:`BatchShifts`): a batch's mean also
  moves when its cell-type composition differs, and centring would then move the same cell type apart between
  batches, while MNN pairs match like with like. ``batch_centre="auto"`` (the default) measures the batch
  mixing after the MNN shifts (:func:`batch_mixing`): when every modality's batches mix at least
  :data:`SHIFT_ONLY_MIXING`, the batch effect is about a shift and the MNN shifts are used without cross-batch
  pairs (NeurIPS CITE starter donors, REAP-seq); otherwise the batches differ by more than a shift (the
  simulator's strong effects scale every feature) and batch means are used with the cross-batch pairs;
* **cross-batch pairs**: mutual nearest neighbours between every two batches of a modality (in its corrected
  scores, k as the cross-modal search) are extra positives of a second cell-level NT-Xent term (weight
  ``alpha_batch``), which pulls the same state from different batches together.

An unseen batch in query mapping (``BiCLUM.transform``) is centred on its own mean when the query names its
batch column, shifted by the stored shift of a batch seen in training, and centred on the training cells'
overall mean when the query gives no batch column. Everything is linear in cells (one pass per batch; MNN per
pair of batches).
"""
from __future__ import annotations

import warnings
from typing import Optional

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ._logging import logger
from .errors import BiclumInputError, BiclumWarning
from .pairs import auto_mnn_k, knn_cosine, mutual_nearest_neighbors


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
    def fit(cls, x: np.ndarray, labels: np.ndarray, scale: bool = False,
            shifts: Optional["BatchShifts"] = None) -> "BatchCentering":
        """Per-batch means (``shifts`` None), or the MNN ``shifts`` plus the overall mean of the corrected cells
        (so a seen batch is moved by its shift and the training cells end up centred as a whole)."""
        levels, codes = np.unique(labels, return_inverse=True)
        means = _group_means(x, codes, len(levels)) if shifts is None else shifts.apply_to_means(x, codes)
        std = x.std(axis=0).astype(np.float32)
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


class BatchShifts:
    """Cross-batch MNN pairs of one modality (each batch against the largest) and the shift they give, in any
    space whose rows are the same cells: ``of(values)`` is (batches x columns) mean pair differences; a batch
    without pairs falls back to its mean difference."""

    def __init__(self, codes: np.ndarray, ref: int, pairs: dict):
        self.codes, self.ref, self.pairs = codes, ref, pairs  # pairs: batch -> (cells of batch, cells of ref)

    @classmethod
    def find(cls, x: np.ndarray, labels: np.ndarray, seed: int, exact_max: float, what: str) -> "BatchShifts":
        codes = batch_codes(labels)
        n_b = int(codes.max()) + 1
        ref = int(np.argmax(np.bincount(codes)))
        # first search after centring each batch (a large shift cannot hide the partners), then once more after
        # removing the shifts that gives (centring moved batches of different composition apart)
        shifts = cls(codes, ref, cls._pairs(x - _group_means(x, codes, n_b)[codes], codes, ref, exact_max, seed))
        found = cls(codes, ref, cls._pairs(x - shifts.of(x)[codes], codes, ref, exact_max, seed))
        logger.info("%s: batch shifts from MNN pairs against the largest batch (%s): %s pairs; batch means differ "
                    "from them by %s of the cells' spread (cell-type composition)", what, np.unique(labels)[ref],
                    [len(p[0]) for p in found.pairs.values()], np.round(found.composition_gap(x), 3).tolist())
        return found

    def composition_gap(self, x: np.ndarray) -> np.ndarray:
        """Per batch (reference 0): distance between its batch-mean difference and its MNN shift, over the
        root total variance of ``x``: how far centring on batch means would move cells of the same state."""
        n_b = int(self.codes.max()) + 1
        means = _group_means(x, self.codes, n_b)
        gap = np.linalg.norm((means - means[self.ref]) - self.of(x), axis=1)
        return gap / max(float(np.sqrt(x.var(axis=0).sum())), 1e-12)

    @staticmethod
    def _pairs(x: np.ndarray, codes: np.ndarray, ref: int, exact_max: float, seed: int) -> dict:
        pairs = {}
        for b in range(int(codes.max()) + 1):
            if b == ref:
                continue
            ib, ir = np.flatnonzero(codes == b), np.flatnonzero(codes == ref)
            adj = mutual_nearest_neighbors(x[ib], x[ir], auto_mnn_k(len(ib), len(ir)), exact_max, seed)
            coo = adj.adjacency.tocoo()
            pairs[b] = (ib[coo.row], ir[coo.col])
        return pairs

    def of(self, values) -> np.ndarray:
        """Shift of each batch against the reference batch in ``values`` (dense or sparse, cells x columns)."""
        n_b = int(self.codes.max()) + 1
        means = _group_means(values, self.codes, n_b)
        out = np.zeros_like(means)
        for b, (ib, ir) in self.pairs.items():
            if len(ib) == 0:
                out[b] = means[b] - means[self.ref]
                continue
            n = len(self.codes)  # sum over pairs of (row of ib) - (row of ir); ib and ir are different cells
            w = (np.bincount(ib, minlength=n) - np.bincount(ir, minlength=n)).astype(np.float32)
            out[b] = np.asarray(values.T @ w).ravel() / len(ib)
        return out

    def apply_to_means(self, values, codes: Optional[np.ndarray] = None) -> np.ndarray:
        """Per-batch "means" to subtract so each batch moves by its shift and the cells are centred overall."""
        codes = self.codes if codes is None else codes
        shifts = self.of(values)
        counts = np.bincount(codes, minlength=shifts.shape[0]).astype(np.float64)
        overall = np.asarray(values.mean(axis=0)).ravel() - (counts @ shifts) / counts.sum()
        return (shifts + overall).astype(np.float32)


#: ``batch_centre="auto"``: the MNN shifts alone (no cross-batch pairs) when, after them, every modality's batches
#: mix at least this well (:func:`batch_mixing` of the encoder input); else batch means and cross-batch pairs.
#: Measured (benchmarks/results/batch_centre_rule.md, 3 seeds): the simulator's strong effects 0.37-0.57 (600 and
#: 1,500 cells), the NeurIPS CITE starter's donors 0.69-0.70, REAP-seq 0.89, no batch effect about 1.
SHIFT_ONLY_MIXING = 0.63


def batch_mixing(x: np.ndarray, codes: np.ndarray, seed: int, exact_max: float, k: int = 15,
                 max_cells: int = 20_000) -> float:
    """Share of other-batch cells among each cell's ``k`` nearest neighbours (cosine), over the share expected
    if the batches were mixed, averaged over the cells (a random sample of at most ``max_cells``): 1 = mixed,
    0 = apart."""
    keep = np.arange(len(codes))
    if len(keep) > max_cells:
        keep = np.sort(np.random.default_rng(seed).choice(len(keep), max_cells, replace=False))
    xs, cs = x[keep], codes[keep]
    nb = knn_cosine(xs, xs, k + 1, exact_max, seed)[:, 1:]
    found = nb >= 0
    other = ((cs[np.where(found, nb, 0)] != cs[:, None]) & found).sum(1) / np.maximum(found.sum(1), 1)
    expected = 1.0 - np.bincount(cs)[cs] / len(cs)
    return float(other.mean() / max(expected.mean(), 1e-12))


def shifted_mixing(x: np.ndarray, shifts: BatchShifts, seed: int, exact_max: float) -> float:
    """:func:`batch_mixing` of ``x`` after the MNN ``shifts``."""
    return batch_mixing(x - shifts.apply_to_means(x)[shifts.codes], shifts.codes, seed, exact_max)


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


def per_batch_feature_means(norm: sp.csr_matrix, labels: np.ndarray,
                            shifts: Optional[BatchShifts] = None) -> tuple[np.ndarray, np.ndarray]:
    """(codes, batches x features float32): the per-batch centres of the scaled targets, the batch means, or with
    ``shifts`` the overall mean plus each batch's MNN shift (:class:`BatchShifts`)."""
    codes = batch_codes(labels)
    if shifts is not None:
        return codes, shifts.apply_to_means(norm)
    return codes, _group_means(norm, codes, int(codes.max()) + 1)
