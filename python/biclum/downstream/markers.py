"""Marker genes per cell type: from each modality (Wilcoxon / Welch t-test, one group vs the rest) and from
the feature embeddings (cosine similarity of gene loadings to cell-type centroids); overlap of two marker
lists against random gene sets of the same size.

The Wilcoxon rank-sum test ranks gene chunks (a few hundred genes densified at a time, never the whole
matrix) with average ranks for ties and the tie-corrected normal approximation (as scanpy's
``rank_genes_groups(method="wilcoxon")``); the score is the z statistic. For the unlabelled modality of an
unpaired pair, labels are transferred through the joint embedding (:func:`cross_modal_markers`).
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy import stats

from .._logging import logger
from ..errors import BiclumInputError
from ._utils import bh_fdr, get_labels, get_matrix, get_rep, group_indicator, normalize_matrix, resolve_normalize

__all__ = ["find_markers", "cross_modal_markers", "embedding_markers", "top_markers", "marker_overlap"]


def _tie_term(S: np.ndarray) -> np.ndarray:
    """sum(t^3 - t) over tie groups of each column of the column-sorted matrix S."""
    n, c = S.shape
    F = S.T.ravel()
    starts = np.ones(F.size, dtype=bool)
    starts[1:] = F[1:] != F[:-1]
    starts[::n] = True
    idx = np.flatnonzero(starts)
    t = np.diff(np.r_[idx, F.size]).astype(np.float64)
    return np.bincount(idx // n, weights=t ** 3 - t, minlength=c)


def find_markers(adata, groupby, method: str = "wilcoxon", layer: Optional[str] = None,
                 normalize: Optional[str] = "auto", groups: Optional[Sequence[str]] = None,
                 min_cells: int = 3, chunk_mb: float = 64.0) -> pd.DataFrame:
    """Marker features of each group against all other cells.

    Parameters
    ----------
    adata
        AnnData cells x genes (RNA, gene activity, proteins); not modified.
    groupby
        obs column with the labels, or an array / Series of labels (one per cell; e.g. transferred labels).
        Cells with a missing label are ignored.
    method
        ``"wilcoxon"`` (rank-sum, tie-corrected normal approximation) or ``"t-test"`` (Welch).
    layer, normalize
        Values: X or a layer; ``"auto"`` log-normalises raw counts (counts per 10,000, log1p).
    groups
        Only these groups (default: all with at least ``min_cells`` cells).
    chunk_mb
        Memory for one dense chunk of genes (Wilcoxon).

    Returns
    -------
    Long DataFrame sorted by group and decreasing score: ``group``, ``gene``, ``score`` (z for Wilcoxon,
    t for the t-test), ``logfoldchange`` (log2 of the ratio of mean expression on the linear scale when the
    data are log1p-normalised; difference of means otherwise), ``pval``, ``padj`` (BH within the group),
    ``auc`` (Wilcoxon), ``pct_group``, ``pct_rest``, ``mean_group``, ``mean_rest``, ``rank`` (0 = best).
    """
    if method not in ("wilcoxon", "t-test"):
        raise BiclumInputError(f"find_markers: method={method!r}; use 'wilcoxon' or 't-test'.")
    X0 = get_matrix(adata, layer, "adata")
    norm = resolve_normalize(X0, normalize)
    X = normalize_matrix(X0, norm)
    labels = get_labels(adata, groupby, "adata")
    cats, codes, G = group_indicator(labels)
    sizes = np.asarray(G.sum(axis=1)).ravel()
    use = np.flatnonzero(sizes >= min_cells)
    if groups is not None:
        want = pd.Index([str(g) for g in groups])
        missing = want.difference(cats)
        if len(missing):
            raise BiclumInputError(f"find_markers: groups {list(missing)} are not among the labels {list(cats)}.")
        use = np.intersect1d(use, cats.get_indexer(want))
    if use.size == 0:
        raise BiclumInputError(f"find_markers: no group has >= {min_cells} cells (sizes {dict(zip(cats, sizes))}); "
                               "check the labels.")
    labelled = codes >= 0
    if not labelled.all():
        X = X[labelled]
        G = G[:, labelled]
        codes = codes[labelled]
    n = X.shape[0]
    if (n - sizes[use] < 1).any():
        raise BiclumInputError("find_markers: a group contains all labelled cells; markers need >= 2 groups.")
    G = sp.csr_matrix(G[use])
    n1 = sizes[use].astype(np.float64)[:, None]
    n2 = n - n1
    Xs = sp.csr_matrix(X, dtype=np.float64) if sp.issparse(X) else None
    Xd = None if sp.issparse(X) else np.asarray(X, dtype=np.float64)

    def gsum(M):
        out = G @ M
        return out.toarray() if sp.issparse(out) else np.asarray(out)

    Xm = Xs if Xs is not None else Xd
    tot = np.asarray(Xm.sum(axis=0)).ravel()[None, :]  # noqa: E501
    s_g = gsum(Xm)
    mean_g = s_g / n1
    mean_r = (tot - s_g) / n2
    nz = (Xs != 0).astype(np.float64) if Xs is not None else (Xd != 0).astype(np.float64)
    nz_tot = np.asarray(nz.sum(axis=0)).ravel()[None, :]
    nz_g = gsum(nz)
    pct_g, pct_r = nz_g / n1, (nz_tot - nz_g) / n2

    if method == "t-test":
        sq = Xs.multiply(Xs) if Xs is not None else Xd ** 2
        sq_tot = np.asarray(sq.sum(axis=0)).ravel()[None, :]
        sq_g = gsum(sq)
        var_g = np.maximum((sq_g - n1 * mean_g ** 2) / np.maximum(n1 - 1, 1), 0)
        var_r = np.maximum(((sq_tot - sq_g) - n2 * mean_r ** 2) / np.maximum(n2 - 1, 1), 0)
        se2 = var_g / n1 + var_r / n2
        with np.errstate(invalid="ignore", divide="ignore"):
            score = np.where(se2 > 0, (mean_g - mean_r) / np.sqrt(se2), 0.0)
            df = se2 ** 2 / ((var_g / n1) ** 2 / np.maximum(n1 - 1, 1) + (var_r / n2) ** 2 / np.maximum(n2 - 1, 1))
        df = np.where(np.isfinite(df) & (df > 0), df, 1.0)
        pval = np.where(se2 > 0, 2 * stats.t.sf(np.abs(score), df), 1.0)
        auc = np.full_like(score, np.nan)
    else:
        n_genes = X.shape[1]
        chunk = int(max(1, min(n_genes, chunk_mb * 1e6 / (8 * 3 * max(n, 1)))))
        score = np.empty((use.size, n_genes))
        auc = np.empty((use.size, n_genes))
        for s in range(0, n_genes, chunk):
            cols = slice(s, min(s + chunk, n_genes))
            D = Xs[:, cols].toarray() if Xs is not None else Xd[:, cols]
            R = stats.rankdata(D, axis=0)
            T = _tie_term(np.sort(D, axis=0))
            del D
            U = gsum(R) - n1 * (n1 + 1) / 2
            sigma = np.sqrt(n1 * n2 / 12.0 * ((n + 1) - T[None, :] / (n * (n - 1))))
            with np.errstate(invalid="ignore", divide="ignore"):
                score[:, cols] = np.where(sigma > 0, (U - n1 * n2 / 2) / sigma, 0.0)
            auc[:, cols] = U / (n1 * n2)
        pval = 2 * stats.norm.sf(np.abs(score))

    if norm == "log1p":
        lfc = np.log2(np.expm1(mean_g) + 1e-9) - np.log2(np.expm1(mean_r) + 1e-9)
    else:
        lfc = mean_g - mean_r
    genes = np.asarray(adata.var_names).astype(str)
    frames = []
    for i, gi in enumerate(use):  # loop over groups
        order = np.argsort(-score[i], kind="stable")
        frames.append(pd.DataFrame({
            "group": cats[gi], "gene": genes[order], "score": score[i, order], "logfoldchange": lfc[i, order],
            "pval": pval[i, order], "padj": bh_fdr(pval[i, order]), "auc": auc[i, order],
            "pct_group": pct_g[i, order], "pct_rest": pct_r[i, order], "mean_group": mean_g[i, order],
            "mean_rest": mean_r[i, order], "rank": np.arange(order.size)}))
    return pd.concat(frames, ignore_index=True)


def cross_modal_markers(rna, other, groupby, other_groupby=None, use_rep: str = "X_biclum", k: int = 15,
                        method: str = "wilcoxon", layer_rna: Optional[str] = None,
                        layer_other: Optional[str] = None, normalize: Optional[str] = "auto") -> pd.DataFrame:
    """Markers of each cell type on both modalities.

    ``rna`` and ``other`` are AnnData in gene space (``other``: gene activity or protein-as-gene) that hold
    values in X (or the given layers). If ``other_groupby`` is None, the labels of ``other`` are transferred
    from ``rna[groupby]`` by kNN vote in the joint embedding ``obsm[use_rep]`` (:func:`transfer_labels`);
    the transferred labels are returned in ``.attrs["other_labels"]``.

    Returns :func:`find_markers` tables of both sides concatenated, with a ``modality`` column
    (``"rna"`` / ``"other"``).
    """
    from .matching import transfer_labels

    if other_groupby is None:
        tl = transfer_labels(other, rna, groupby, use_rep=use_rep, k=k)
        other_labels = tl["label"]
        logger.info("cross_modal_markers: labels transferred to other (median confidence %.2f)",
                    float(tl["confidence"].median()))
    else:
        other_labels = get_labels(other, other_groupby, "other")
    m_rna = find_markers(rna, groupby, method=method, layer=layer_rna, normalize=normalize)
    m_oth = find_markers(other, other_labels.to_numpy(), method=method, layer=layer_other, normalize=normalize)
    out = pd.concat([m_rna.assign(modality="rna"), m_oth.assign(modality="other")], ignore_index=True)
    out.attrs["other_labels"] = other_labels
    return out


def embedding_markers(adata, groupby, use_rep: str = "X_biclum", varm_key: str = "biclum_loadings",
                      center: bool = True) -> pd.DataFrame:
    """Markers from the feature embeddings: cosine similarity of each gene's embedding
    (``adata.varm[varm_key]``) to each cell type's centroid of the cell embedding (``adata.obsm[use_rep]``).

    ``center``: subtract the mean embedding of all cells from the centroids (so the score reflects what is
    specific to a type). Genes whose loading row is all zero (not used by the model) are left out.

    Returns long DataFrame sorted by group and decreasing similarity: ``group``, ``gene``, ``similarity``,
    ``specificity`` (similarity minus the gene's mean similarity over the other groups) and ``rank``.
    """
    E = get_rep(adata, use_rep, "adata").astype(np.float64)
    if varm_key not in adata.varm:
        raise BiclumInputError(f"embedding_markers: varm has no {varm_key!r} (varm keys: {list(adata.varm.keys())}); "
                               "use res.rna / res.other of biclum.integrate or pass varm_key=.")
    L = np.asarray(adata.varm[varm_key], dtype=np.float64)
    if L.shape[1] != E.shape[1]:
        raise BiclumInputError(f"embedding_markers: varm[{varm_key!r}] has {L.shape[1]} dimensions but "
                               f"obsm[{use_rep!r}] has {E.shape[1]}; they must share the latent space.")
    labels = get_labels(adata, groupby, "adata")
    cats, codes, G = group_indicator(labels)
    sizes = np.asarray(G.sum(axis=1)).ravel()
    C = (G @ E) / np.maximum(sizes, 1)[:, None]
    if center:
        C = C - E[codes >= 0].mean(axis=0)
    keep = np.linalg.norm(L, axis=1) > 0
    Ln = L[keep] / np.linalg.norm(L[keep], axis=1, keepdims=True)
    Cn = C / np.where(np.linalg.norm(C, axis=1, keepdims=True) > 0, np.linalg.norm(C, axis=1, keepdims=True), 1)
    S = Cn @ Ln.T  # groups x genes
    k = S.shape[0]
    spec = S - (S.sum(axis=0, keepdims=True) - S) / max(k - 1, 1)
    genes = np.asarray(adata.var_names).astype(str)[keep]
    frames = []
    for i in range(k):
        order = np.argsort(-S[i], kind="stable")
        frames.append(pd.DataFrame({"group": cats[i], "gene": genes[order], "similarity": S[i, order],
                                    "specificity": spec[i, order], "rank": np.arange(order.size)}))
    return pd.concat(frames, ignore_index=True)


def top_markers(markers: pd.DataFrame, n_top: int = 50, score: Optional[str] = None,
                padj_max: Optional[float] = None, min_logfc: Optional[float] = None) -> dict:
    """``{group: [genes]}`` with the ``n_top`` best genes per group of a marker table (find_markers /
    embedding_markers), ordered by ``score`` (default: ``score`` or ``similarity``), optionally filtered by
    ``padj`` and ``logfoldchange``."""
    if score is None:
        score = "score" if "score" in markers.columns else "similarity"
    for c in ("group", "gene", score):
        if c not in markers.columns:
            raise BiclumInputError(f"top_markers: the marker table has no column {c!r}; pass find_markers output.")
    m = markers
    if padj_max is not None and "padj" in m.columns:
        m = m[m["padj"] <= padj_max]
    if min_logfc is not None and "logfoldchange" in m.columns:
        m = m[m["logfoldchange"] >= min_logfc]
    m = m.sort_values(["group", score], ascending=[True, False], kind="stable")
    out = {str(g): list(d["gene"].head(n_top)) for g, d in m.groupby("group", sort=True, observed=True)}
    return out


def marker_overlap(markers_a, markers_b, n_top: int = 50, universe: Optional[Sequence[str]] = None,
                   n_null: int = 10_000, seed: int = 0, **top_kwargs) -> pd.DataFrame:
    """Overlap of two marker lists per group (e.g. ATAC-side vs RNA-side markers) against random gene sets.

    ``markers_a`` / ``markers_b``: marker tables (:func:`find_markers` / :func:`embedding_markers`) or dicts
    ``{group: [genes]}``. Tables are cut to their ``n_top`` best genes per group (:func:`top_markers`).
    ``universe``: genes both lists could contain (default: genes present in both tables; for dicts, the
    union of all their genes). Sets are restricted to the universe.

    Null: a random gene set of the same size as set A drawn from the universe; its overlap with set B is
    hypergeometric, sampled ``n_null`` times. Returns one row per shared group plus a row ``"all"`` (sum of
    overlaps vs. the sum of the per-group nulls): ``size_a``, ``size_b``, ``universe``, ``overlap``,
    ``expected``, ``null_q95``, ``fold`` (overlap / expected), ``jaccard``, ``pval_perm`` and ``pval_hypergeom``.
    """
    def as_sets(m):
        if isinstance(m, dict):
            return {str(k): list(v) for k, v in m.items()}, None
        return top_markers(m, n_top=n_top, **top_kwargs), set(m["gene"].astype(str))

    A, ua = as_sets(markers_a)
    B, ub = as_sets(markers_b)
    if universe is None:
        if ua is not None and ub is not None:
            U = ua & ub
        else:
            U = set().union(*A.values(), *B.values())
    else:
        U = set(map(str, universe))
    N = len(U)
    groups = [g for g in A if g in B]
    if not groups or N == 0:
        raise BiclumInputError(f"marker_overlap: no shared group (a: {list(A)[:5]}, b: {list(B)[:5]}) or empty "
                               "universe; label both modalities with the same cell types.")
    rng = np.random.default_rng(seed)
    rows, null_sum = [], np.zeros(n_null)
    for g in groups:
        a, b = [x for x in A[g] if x in U], set(x for x in B[g] if x in U)
        a = list(dict.fromkeys(a))
        ov = len(set(a) & b)
        na, nb = len(a), len(b)
        null = rng.hypergeometric(nb, N - nb, na, size=n_null) if na and nb else np.zeros(n_null)
        null_sum += null
        rows.append({"group": g, "size_a": na, "size_b": nb, "universe": N, "overlap": ov,
                     "expected": na * nb / N, "null_q95": float(np.quantile(null, 0.95)),
                     "fold": ov / (na * nb / N) if na and nb else np.nan,
                     "jaccard": ov / max(len(set(a) | b), 1),
                     "pval_perm": (1 + np.sum(null >= ov)) / (1 + n_null),
                     "pval_hypergeom": float(stats.hypergeom.sf(ov - 1, N, nb, na)) if na and nb else np.nan})
    df = pd.DataFrame(rows)
    tot = int(df["overlap"].sum())
    exp_tot = float(df["expected"].sum())
    rows.append({"group": "all", "size_a": int(df["size_a"].sum()), "size_b": int(df["size_b"].sum()), "universe": N,
                 "overlap": tot, "expected": exp_tot, "null_q95": float(np.quantile(null_sum, 0.95)),
                 "fold": tot / exp_tot if exp_tot else np.nan, "jaccard": np.nan,
                 "pval_perm": (1 + np.sum(null_sum >= tot)) / (1 + n_null), "pval_hypergeom": np.nan})
    return pd.DataFrame(rows)
