"""Sparse preprocessing: seurat_v3 highly variable genes, library-size normalisation, log1p, scaling and PCA.

Nothing here makes a dense copy of a cells x genes matrix: every step works on the CSR non-zeros, and the PCA is
a randomised SVD (Halko et al. 2011) of the *implicitly* centred and scaled matrix, so memory is O(nnz + cells x
components). Fitted parameters (genes, means, standard deviations, clip values, components) are kept in
:class:`ModalityPreprocessor` so new cells (query mapping) go through exactly the same transform.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import scipy.sparse as sp

from ._logging import logger


def as_csr32(X) -> sp.csr_matrix:
    """Return X as a CSR float32 matrix (a copy only when needed)."""
    if sp.issparse(X):
        X = sp.csr_matrix(X)
    else:
        X = sp.csr_matrix(np.asarray(X))
    if X.dtype != np.float32:
        X = X.astype(np.float32)
    return X


def row_scale(X: sp.csr_matrix, factors: np.ndarray, copy: bool = True) -> sp.csr_matrix:
    """Multiply each row of a CSR matrix by a factor (a new matrix, or X itself with ``copy=False``)."""
    out = X.copy() if copy else X
    out.data *= np.repeat(np.asarray(factors, dtype=out.data.dtype), np.diff(out.indptr))
    return out


MOMENT_CHUNK = 1 << 22  # stored values per chunk in column sums: float64 temporaries stay small


def column_moments(X: sp.csr_matrix, clip: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-column sums of the stored values and of their squares (float64), each value first clipped at its
    column's ``clip`` if given; in chunks of values, so no float64 copy of the matrix is made."""
    s1, s2 = np.zeros(X.shape[1]), np.zeros(X.shape[1])
    for a in range(0, X.nnz, MOMENT_CHUNK):
        idx = X.indices[a:a + MOMENT_CHUNK]
        v = X.data[a:a + MOMENT_CHUNK].astype(np.float64)
        if clip is not None:
            np.minimum(v, clip[idx], out=v)
        s1 += np.bincount(idx, weights=v, minlength=X.shape[1])
        v *= v
        s2 += np.bincount(idx, weights=v, minlength=X.shape[1])
    return s1, s2


def sparse_mean_var(X: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and unbiased variance of a CSR matrix in O(nnz)."""
    n = X.shape[0]
    s1, s2 = column_moments(X)
    mean = s1 / n
    var = (s2 - n * mean**2) / max(n - 1, 1)
    return mean, np.maximum(var, 0.0)


def sparse_mean_std(X: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and standard deviation for scaling; constant columns get std 1 (they scale to 0)."""
    mean, var = sparse_mean_var(X)
    std = np.sqrt(var)
    std[std == 0] = 1.0
    return mean, std


def seurat_v3_hvg(counts: sp.csr_matrix, n_top_genes: int = 2000, span: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """Highly variable genes with Seurat v3's variance-stabilising rule (as scanpy's ``flavor="seurat_v3"``).

    A loess fit of log10(variance) on log10(mean) gives each gene an expected standard deviation; counts are
    clipped at mean + sqrt(n_cells) * sd and the gene's standardised variance ranks it. Computed on the CSR
    non-zeros only. Returns (indices of the top genes sorted by rank, normalised variance of every gene).
    """
    n = counts.shape[0]
    mean, var = sparse_mean_var(counts)
    not_const = var > 0
    if int(not_const.sum()) <= n_top_genes:  # a small panel: every variable feature is kept, nothing to rank
        norm_var = np.where(not_const, var / np.maximum(mean, 1e-12), 0.0)
        order = np.argsort(-norm_var, kind="stable")
        return order[: int(not_const.sum())], norm_var
    estimated = np.zeros(counts.shape[1])
    estimated[not_const] = _loess_log_variance(np.log10(mean[not_const]), np.log10(var[not_const]), span)
    reg_std = np.sqrt(10**estimated)
    clip_val = reg_std * np.sqrt(n) + mean
    sum_clip, sq_clip = column_moments(counts, clip=clip_val)
    with np.errstate(divide="ignore", invalid="ignore"):
        norm_var = (n * mean**2 + sq_clip - 2 * sum_clip * mean) / ((n - 1) * reg_std**2)
    norm_var[~not_const] = 0.0
    norm_var = np.nan_to_num(norm_var)
    order = np.argsort(-norm_var, kind="stable")
    return order[: min(n_top_genes, int(not_const.sum()))], norm_var


def _loess_log_variance(x: np.ndarray, y: np.ndarray, span: float) -> np.ndarray:
    """Fitted log10 variance from log10 mean (loess, degree 2, as Seurat v3). Near-singular fits (few or tied
    features) retry with a wider span and then degree 1; a straight line is the last resort (logged)."""
    from skmisc.loess import loess

    for s, degree in ((span, 2), (max(span, 0.6), 2), (1.0, 1)):
        try:
            model = loess(x, y, span=s, degree=degree)
            model.fit()
            fitted = np.asarray(model.outputs.fitted_values)
            if np.all(np.isfinite(fitted)):
                if (s, degree) != (span, 2):
                    logger.info("HVG: loess refitted with span %.2f, degree %d (the default fit was singular)",
                                s, degree)
                return fitted
        except ValueError:
            continue
    logger.info("HVG: loess failed on %d features; a linear mean-variance fit is used", len(x))
    return np.polyval(np.polyfit(x, y, 1), x)


def library_sizes(counts: sp.csr_matrix) -> np.ndarray:
    return np.asarray(counts.sum(axis=1)).ravel()


def normalize_log1p(counts: sp.csr_matrix, target_sum: float, libsize: Optional[np.ndarray] = None,
                    copy: bool = True) -> sp.csr_matrix:
    """log1p(counts / library size * target_sum), sparse. ``libsize`` defaults to the row sums; ``copy=False``
    overwrites ``counts`` (for a matrix the caller owns)."""
    if libsize is None:
        libsize = library_sizes(counts)
    factors = target_sum / np.maximum(libsize, 1e-12)
    out = row_scale(counts, factors, copy=copy)
    np.log1p(out.data, out=out.data)
    return out


class StandardizedOperator:
    """The matrix (clip(X) - mean) / std as a linear operator over a sparse X, never materialised.

    Values above mean + max_value * std are clipped (as ``sc.pp.scale(max_value=...)``) without copying X: the
    few clipped entries are kept as a sparse "excess" matrix subtracted in every product. The implicit zeros are
    not clipped (they stand at -mean/std, which is below -max_value only for near-constant, highly expressed
    genes).
    """

    def __init__(self, X: sp.csr_matrix, mean: np.ndarray, std: np.ndarray, max_value: Optional[float]):
        self.X = X
        self.excess = None
        if max_value is not None:
            upper = (mean + max_value * std).astype(np.float32)
            over = np.flatnonzero(X.data > upper[X.indices])
            if len(over):
                rows = np.searchsorted(X.indptr, over, side="right") - 1
                cols = X.indices[over]
                self.excess = sp.csr_matrix(((X.data[over] - upper[cols]).astype(np.float32), (rows, cols)),
                                            shape=X.shape)
        self.mean = mean.astype(np.float32)
        self.inv_std = (1.0 / std).astype(np.float32)
        self.shape = X.shape

    def dot(self, M: np.ndarray) -> np.ndarray:
        Ms = (M * self.inv_std[:, None]).astype(np.float32)
        out = np.asarray(self.X @ Ms)
        if self.excess is not None:
            out -= self.excess @ Ms
        out -= (self.mean @ Ms)[None, :]
        return out

    def tdot(self, U: np.ndarray) -> np.ndarray:
        U = np.asarray(U, dtype=np.float32)
        XtU = np.asarray(self.X.T @ U)
        if self.excess is not None:
            XtU -= self.excess.T @ U
        return (XtU - self.mean[:, None] * U.sum(axis=0)[None, :]) * self.inv_std[:, None]

    def rows(self, idx: np.ndarray) -> "StandardizedOperator":
        """The same transform (same mean, std and clip) over a subset of the rows."""
        sub = StandardizedOperator.__new__(StandardizedOperator)
        sub.X, sub.mean, sub.inv_std = self.X[idx], self.mean, self.inv_std
        sub.excess = self.excess[idx] if self.excess is not None else None
        sub.shape = (len(idx), self.shape[1])
        return sub


class StackedOperator:
    """Row-wise stack of StandardizedOperators over the same columns (a joint PCA of several modalities)."""

    def __init__(self, blocks: Sequence[StandardizedOperator]):
        self.blocks = list(blocks)
        self.sizes = [b.shape[0] for b in self.blocks]
        self.shape = (sum(self.sizes), self.blocks[0].shape[1])

    def dot(self, M):
        return np.vstack([b.dot(M) for b in self.blocks])

    def tdot(self, U):
        out, start = 0, 0
        for b, n in zip(self.blocks, self.sizes):
            out = out + b.tdot(U[start:start + n])
            start += n
        return out

    def rows(self, idx: np.ndarray) -> "StackedOperator":
        """Rows ``idx`` of the stack (indices into the stacked rows, sorted)."""
        bounds = np.cumsum([0, *self.sizes])
        return StackedOperator([b.rows(idx[(idx >= lo) & (idx < hi)] - lo)
                                for b, lo, hi in zip(self.blocks, bounds[:-1], bounds[1:])])


def sample_rows(op, max_rows: Optional[int], seed: int):
    """``op`` itself, or its rows at a random sample of ``max_rows`` (sorted) when it has more rows.

    Atlas-scale PCA/LSI fits its components on a sample of cells and projects every cell, as ArchR's iterative
    LSI (sampleCellsPre) and Seurat v5's sketch-based workflow do: components of 2,000 genes are estimated as
    well from 100,000 cells as from a million, and the fit's cost stops growing with the data.
    """
    if not max_rows or op.shape[0] <= max_rows:
        return op
    idx = np.sort(np.random.default_rng(seed).choice(op.shape[0], size=int(max_rows), replace=False))
    logger.info("components fitted on %d of %d cells (a random sample; pca_max_cells), all cells projected",
                len(idx), op.shape[0])
    return op.rows(idx)


def randomized_pca(op, n_comps: int, seed: int = 0, n_iter: int = 6, oversample: int = 10):
    """Randomised SVD of an (implicitly centred) operator: returns (scores U*S, components V (genes x k), S)."""
    rng = np.random.default_rng(seed)
    n, m = op.shape
    k = min(n_comps, n - 1, m)
    ell = min(k + oversample, m, n)
    Q = op.dot(rng.standard_normal((m, ell)).astype(np.float32))
    Q, _ = np.linalg.qr(Q)
    for _ in range(n_iter):
        Z, _ = np.linalg.qr(op.tdot(Q))
        Q, _ = np.linalg.qr(op.dot(Z))
    B = op.tdot(Q).T  # ell x m
    Ub, S, Vt = np.linalg.svd(B.astype(np.float64), full_matrices=False)
    U = Q @ Ub[:, :k].astype(np.float32)
    V = Vt[:k].T.astype(np.float32)
    # sign convention: largest absolute loading positive (deterministic output)
    signs = np.sign(V[np.abs(V).argmax(axis=0), np.arange(k)])
    signs[signs == 0] = 1
    V *= signs
    U *= signs
    return (U * S[:k].astype(np.float32)).astype(np.float32), V, S[:k]


@dataclass
class ModalityPreprocessor:
    """Fitted per-modality transform: counts -> normalised log1p of the model's features -> scaled -> PCs."""

    features: np.ndarray          # feature names used (order of the model's feature axis)
    mean: np.ndarray
    std: np.ndarray
    components: np.ndarray        # features x n_pcs
    target_sum: float
    max_value: Optional[float]

    @classmethod
    def fit(cls, counts: sp.csr_matrix, var_names: np.ndarray, features: np.ndarray, target_sum: float,
            n_pcs: int, max_value: Optional[float], seed: int,
            max_cells: Optional[int] = None) -> tuple["ModalityPreprocessor", np.ndarray, sp.csr_matrix]:
        """Fit on training counts; returns (preprocessor, PC scores, normalised log1p matrix of the features).
        Means and standard deviations use every cell; components at most ``max_cells`` (:func:`sample_rows`)."""
        norm = cls._normalized(counts, var_names, features, target_sum)
        mean, std = sparse_mean_std(norm)
        op = StandardizedOperator(norm, mean, std, max_value)
        _, components, _ = randomized_pca(sample_rows(op, max_cells, seed), n_pcs, seed=seed)
        scores = op.dot(components).astype(np.float32)  # exactly the transform that query cells get
        pre = cls(np.asarray(features), mean.astype(np.float32), std.astype(np.float32), components, target_sum, max_value)
        return pre, scores, norm

    @staticmethod
    def _normalized(counts, var_names, features, target_sum):
        lib = library_sizes(counts)
        index = {g: i for i, g in enumerate(var_names)}
        cols = np.array([index[g] for g in features], dtype=np.int64)
        return normalize_log1p(counts[:, cols], target_sum, libsize=lib, copy=False)  # the subset is a new matrix

    def transform(self, counts: sp.csr_matrix, var_names: np.ndarray) -> tuple[np.ndarray, sp.csr_matrix]:
        """PC scores and normalised features of new cells (features must contain the fitted ones)."""
        norm = self._normalized(counts, var_names, self.features, self.target_sum)
        return self.project(norm), norm

    def project(self, norm: sp.csr_matrix) -> np.ndarray:
        """Scores of normalised log1p values of the features (columns in ``features`` order)."""
        return StandardizedOperator(norm, self.mean, self.std, self.max_value).dot(self.components).astype(np.float32)

    def to_arrays(self, prefix: str) -> dict:
        return {f"{prefix}features": np.asarray(self.features, dtype=str), f"{prefix}mean": self.mean, f"{prefix}std": self.std,
                f"{prefix}components": self.components,
                f"{prefix}scalars": np.array([self.target_sum, np.nan if self.max_value is None else self.max_value])}

    @classmethod
    def from_arrays(cls, arrays, prefix: str) -> "ModalityPreprocessor":
        target_sum, max_value = arrays[f"{prefix}scalars"]
        return cls(arrays[f"{prefix}features"].astype(object), arrays[f"{prefix}mean"], arrays[f"{prefix}std"],
                   arrays[f"{prefix}components"], float(target_sum), None if np.isnan(max_value) else float(max_value))


def joint_shared_pca(norm_a: sp.csr_matrix, norm_b: sp.csr_matrix, n_comps: int, seed: int,
                     max_value: Optional[float] = 10.0, max_cells: Optional[int] = None,
                     batches: Sequence[Optional[np.ndarray]] = (None, None),
                     n_iter: int = 6, return_components: bool = False) -> tuple:
    """Joint PCA of two modalities over the same (shared) genes, each scaled within its own modality, or within
    each of its batches when ``batches`` gives a modality's batch codes (components fitted on at most
    ``max_cells`` cells of the two together, every cell projected; ``n_iter`` power iterations). Returns the two
    score matrices, and the components (genes x n_comps) after them with ``return_components``."""
    blocks, rows = [], []
    for norm, codes in zip((norm_a, norm_b), batches):
        groups = [np.arange(norm.shape[0])] if codes is None else [np.flatnonzero(codes == c)
                                                                   for c in np.unique(codes)]
        for idx in groups:
            part = norm if codes is None else norm[idx]
            mean, std = sparse_mean_std(part)
            blocks.append(StandardizedOperator(part, mean, std, max_value))
            rows.append(idx + (0 if norm is norm_a else norm_a.shape[0]))
    stacked = StackedOperator(blocks)
    fit_op = sample_rows(stacked, max_cells, seed)
    scores, V, _ = randomized_pca(fit_op, n_comps, seed=seed, n_iter=n_iter)
    if fit_op is not stacked:
        scores = stacked.dot(V)
    if len(blocks) > 2:  # back to the input order of the cells
        order = np.concatenate(rows)
        scores = scores[np.argsort(order, kind="stable")]
    logger.debug("joint PCA of %d shared genes -> %d components", norm_a.shape[1], scores.shape[1])
    split = (scores[: norm_a.shape[0]], scores[norm_a.shape[0]:])
    return (*split, V) if return_components else split


@dataclass
class PeakLSI:
    """Latent semantic indexing of ATAC peaks (TF-IDF as Signac's RunTFIDF method 1, then a randomised SVD of
    the standardised matrix; the first component, which tracks sequencing depth, is dropped as Signac does).

    Used as the ATAC cell encoder's input when the input has peaks: gene activity sums peaks per gene and loses
    information (5-NN cell-type accuracy within SNARE-seq ATAC: 0.50 from gene-activity PCs, 0.66 from peak LSI).
    The reconstruction and the feature-level loss stay in gene space.
    """

    peaks: np.ndarray
    idf: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    components: np.ndarray  # peaks x n_components (first component already dropped)

    @staticmethod
    def _tfidf(P: sp.csr_matrix, idf: np.ndarray) -> sp.csr_matrix:
        """log1p(binarised P / cell totals * 1e4 * idf); shares P's index arrays (one new data array)."""
        nonzero = P.data != 0  # binarised accessibility (explicit zeros stay zero)
        if nonzero.all():
            totals = np.diff(P.indptr).astype(np.float64)
        else:
            cs = np.concatenate([[0.0], np.cumsum(nonzero, dtype=np.float64)])
            totals = cs[P.indptr[1:]] - cs[P.indptr[:-1]]
        data = np.repeat((1e4 / np.maximum(totals, 1.0)).astype(np.float32), np.diff(P.indptr))
        data *= idf[P.indices]
        if not nonzero.all():
            data *= nonzero
        np.log1p(data, out=data)
        T = sp.csr_matrix((data, P.indices, P.indptr), shape=P.shape, copy=False)
        return T

    @classmethod
    def fit(cls, P: sp.csr_matrix, peak_names: np.ndarray, n_components: int, seed: int,
            max_cells: Optional[int] = None) -> tuple["PeakLSI", np.ndarray]:
        nonzero = P.data != 0
        detected = np.bincount(P.indices[nonzero] if not nonzero.all() else P.indices, minlength=P.shape[1])
        keep = detected > 0
        if not keep.all():
            P = P[:, np.flatnonzero(keep)]
        idf = (P.shape[0] / np.maximum(detected[keep], 1)).astype(np.float32)
        T = cls._tfidf(P, idf)
        mean, var = sparse_mean_var(T)
        std = np.sqrt(var)
        std[std == 0] = 1.0
        op = StandardizedOperator(T, mean, std, None)
        k = min(n_components + 1, min(T.shape) - 1)
        _, V, _ = randomized_pca(sample_rows(op, max_cells, seed), k, seed=seed)
        lsi = cls(np.asarray(peak_names)[keep], idf, mean.astype(np.float32), std.astype(np.float32), V[:, 1:])
        return lsi, lsi._scores(op)

    def _scores(self, op) -> np.ndarray:
        s = op.dot(self.components)
        return (s / np.maximum(np.linalg.norm(s, axis=1, keepdims=True), 1e-12)).astype(np.float32)

    def transform(self, P: sp.csr_matrix, peak_names) -> np.ndarray:
        index = {p: i for i, p in enumerate(np.asarray(peak_names))}
        cols = np.array([index.get(p, -1) for p in self.peaks])
        if (cols < 0).any():
            missing = self.peaks[cols < 0]
            from .errors import BiclumModelError

            raise BiclumModelError(f"query ATAC lacks {len(missing)} of the model's {len(self.peaks)} peaks (e.g. "
                                   f"{list(missing[:3])}); the model's ATAC encoder reads these peaks. Use the same "
                                   f"peak set (e.g. re-quantify the query on the model's peaks).")
        T = self._tfidf(as_csr32(P)[:, cols], self.idf)
        return self._scores(StandardizedOperator(T, self.mean, self.std, None))

    def to_arrays(self, prefix: str) -> dict:
        return {f"{prefix}peaks": np.asarray(self.peaks, dtype=str), f"{prefix}idf": self.idf,
                f"{prefix}mean": self.mean, f"{prefix}std": self.std, f"{prefix}components": self.components}

    @classmethod
    def from_arrays(cls, arrays, prefix: str) -> "PeakLSI":
        return cls(arrays[f"{prefix}peaks"].astype(object), arrays[f"{prefix}idf"], arrays[f"{prefix}mean"],
                   arrays[f"{prefix}std"], arrays[f"{prefix}components"])
