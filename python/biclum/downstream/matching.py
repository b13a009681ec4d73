"""Cross-modal matching in the joint embedding: kNN pairs, label transfer and matched metacells.

All functions work on unpaired data: cells of the two modalities are related only through their joint
embedding (``obsm["X_biclum"]`` of ``biclum.integrate``'s ``res.rna`` / ``res.other``). Similarity is
cosine (rows are L2-normalised; exact search with faiss ``IndexFlatIP``).

Matched metacells (the basis of gene-peak links, and usable for any cross-modal statistic):

1. anchors = ``n_metacells`` k-means centroids (random init) of the L2-normalised embeddings of both modalities
   (the same number of cells is drawn from each modality, so neither dominates the anchors);
2. each anchor collects its ``k`` nearest cells of *each* modality (so every metacell has both sides;
   metacells may overlap, as in ArchR's peak-to-gene links);
3. each side is aggregated over its members: raw counts are summed, then normalised (counts per 10,000,
   log1p); non-count data are averaged.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .._logging import logger
from ..errors import BiclumInputError
from ._utils import get_labels, get_matrix, get_rep, group_indicator, l2_normalize, normalize_matrix, \
    resolve_normalize

__all__ = ["knn_search", "match_cells", "transfer_labels", "assign_metacells", "aggregate_metacells",
           "matched_metacells"]


def _faiss():
    try:
        import faiss  # noqa: F401
        return faiss
    except ImportError:  # pragma: no cover - faiss is a dependency
        return None


def knn_search(query: np.ndarray, reference: np.ndarray, k: int) -> Tuple[np.ndarray, np.ndarray]:
    """Exact cosine kNN: (similarities, indices), both ``n_query x k``, best first."""
    q = l2_normalize(np.asarray(query, dtype=np.float32))
    r = l2_normalize(np.asarray(reference, dtype=np.float32))
    k = int(min(k, r.shape[0]))
    faiss = _faiss()
    if faiss is not None:
        index = faiss.IndexFlatIP(r.shape[1])
        index.add(r)
        sim, idx = index.search(q, k)
        return sim, idx.astype(np.int64)
    from sklearn.neighbors import NearestNeighbors  # pragma: no cover
    nn = NearestNeighbors(n_neighbors=k, metric="cosine").fit(r)  # pragma: no cover
    dist, idx = nn.kneighbors(q)  # pragma: no cover
    return (1 - dist).astype(np.float32), idx  # pragma: no cover


def _embeddings(rna, other, use_rep, other_rep):
    Er = get_rep(rna, use_rep, "rna")
    Eo = get_rep(other, other_rep or use_rep, "other")
    if Er.shape[1] != Eo.shape[1]:
        raise BiclumInputError(
            f"rna.obsm[{use_rep!r}] has {Er.shape[1]} dimensions but other.obsm[{other_rep or use_rep!r}] has "
            f"{Eo.shape[1]}; both must come from the same joint embedding (res.rna and res.other of one run).")
    return Er, Eo


def match_cells(query, reference, use_rep: str = "X_biclum", k: int = 10,
                reference_rep: Optional[str] = None) -> pd.DataFrame:
    """Pair every cell of ``query`` with its ``k`` nearest cells of ``reference`` in the joint embedding.

    Parameters
    ----------
    query, reference
        AnnData objects (e.g. ``res.rna`` and ``res.other``) with the joint embedding in ``obsm``.
    use_rep, reference_rep
        obsm key of the embedding (``reference_rep`` defaults to ``use_rep``).
    k
        Neighbours per query cell.

    Returns
    -------
    DataFrame with one row per (query cell, neighbour): ``query``, ``reference`` (obs names), ``rank``
    (0 = nearest) and ``similarity`` (cosine).
    """
    Eq, Er = _embeddings(query, reference, use_rep, reference_rep)
    if k < 1:
        raise BiclumInputError(f"match_cells: k={k}; use k >= 1 neighbours.")
    sim, idx = knn_search(Eq, Er, k)
    kk = idx.shape[1]
    return pd.DataFrame({
        "query": np.repeat(np.asarray(query.obs_names), kk),
        "reference": np.asarray(reference.obs_names)[idx.ravel()],
        "rank": np.tile(np.arange(kk), Eq.shape[0]),
        "similarity": sim.ravel().astype(np.float64),
    })


def transfer_labels(query, reference, label_key, use_rep: str = "X_biclum", k: int = 15,
                    reference_rep: Optional[str] = None, weighted: bool = True) -> pd.DataFrame:
    """Transfer labels from ``reference`` to ``query`` by a kNN vote in the joint embedding.

    Parameters
    ----------
    query, reference
        AnnData objects with the joint embedding in ``obsm[use_rep]``.
    label_key
        obs column of ``reference`` with the labels (or an array of labels, one per reference cell).
    k
        Neighbours that vote.
    weighted
        Votes weighted by cosine similarity (clipped at 0) instead of one vote per neighbour.

    Returns
    -------
    DataFrame indexed like ``query.obs_names`` with ``label`` (the winning label) and ``confidence``
    (its share of the vote, 0-1).
    """
    Eq, Er = _embeddings(query, reference, use_rep, reference_rep)
    labels = get_labels(reference, label_key, "reference")
    cats, codes, _ = group_indicator(labels)
    if len(cats) == 0:
        raise BiclumInputError("transfer_labels: the reference has no labels (all missing); give a labelled reference.")
    ok = codes >= 0
    if not ok.all():
        Er = Er[ok]
        codes = codes[ok]
    sim, idx = knn_search(Eq, Er, k)
    w = np.clip(sim, 0, None).astype(np.float64) + 1e-12 if weighted else np.ones_like(sim, dtype=np.float64)
    rows = np.repeat(np.arange(Eq.shape[0]), idx.shape[1])
    votes = sp.csr_matrix((w.ravel(), (rows, codes[idx.ravel()])), shape=(Eq.shape[0], len(cats))).toarray()
    best = votes.argmax(axis=1)
    conf = votes[np.arange(len(best)), best] / votes.sum(axis=1)
    return pd.DataFrame({"label": np.asarray(cats)[best], "confidence": conf}, index=query.obs_names.copy())


def assign_metacells(rna, other, use_rep: str = "X_biclum", n_metacells: Optional[int] = None, k: int = 50,
                     other_rep: Optional[str] = None, max_anchor_cells: int = 5_000,
                     seed: int = 0) -> pd.DataFrame:
    """Matched metacells: ``k`` nearest cells of each modality around k-means anchors of the joint embedding.

    Parameters
    ----------
    rna, other
        AnnData objects (unpaired) with the joint embedding in ``obsm[use_rep]`` (``other_rep`` for other).
    n_metacells
        Number of anchors; default ``min(500, max(2, n // 20))`` with ``n`` the smaller cell count.
    k
        Cells per modality in each metacell (capped at the modality's cell count).
    max_anchor_cells
        At most this many cells per modality are used to fit the k-means anchors.
    seed
        Random seed (anchor subsample and k-means).

    Returns
    -------
    Long DataFrame ``metacell`` (``"mc0"``, ...), ``modality`` (``"rna"``/``"other"``), ``cell`` (obs name),
    ``index`` (row in its AnnData), ``rank`` (0 = nearest the anchor) and ``similarity`` (cosine to the anchor).
    """
    from sklearn.cluster import KMeans

    Er, Eo = _embeddings(rna, other, use_rep, other_rep)
    Er, Eo = l2_normalize(Er), l2_normalize(Eo)
    n_min = min(Er.shape[0], Eo.shape[0])
    if n_min < 2:
        raise BiclumInputError(f"assign_metacells: rna has {Er.shape[0]} and other {Eo.shape[0]} cells; "
                               "metacells need at least 2 cells per modality.")
    if n_metacells is None:
        n_metacells = int(min(500, max(2, n_min // 20)))
    n_metacells = int(n_metacells)
    if n_metacells < 1:
        raise BiclumInputError(f"assign_metacells: n_metacells={n_metacells}; use at least 1.")
    rng = np.random.default_rng(seed)
    m = int(min(n_min, max_anchor_cells))
    sub = np.vstack([Er[rng.choice(Er.shape[0], m, replace=False)], Eo[rng.choice(Eo.shape[0], m, replace=False)]])
    n_metacells = min(n_metacells, sub.shape[0])
    km = KMeans(n_clusters=n_metacells, init="random", n_init=1, random_state=seed, max_iter=50).fit(sub)
    anchors = l2_normalize(km.cluster_centers_.astype(np.float32))
    kk_r, kk_o = int(min(k, Er.shape[0])), int(min(k, Eo.shape[0]))
    parts = []
    for mod, E, kk, ad in (("rna", Er, kk_r, rna), ("other", Eo, kk_o, other)):
        sim, idx = knn_search(anchors, E, kk)
        parts.append(pd.DataFrame({
            "metacell": np.repeat(np.array([f"mc{i}" for i in range(n_metacells)], dtype=object), kk),
            "modality": mod,
            "cell": np.asarray(ad.obs_names)[idx.ravel()],
            "index": idx.ravel(),
            "rank": np.tile(np.arange(kk), n_metacells),
            "similarity": sim.ravel().astype(np.float64),
        }))
    out = pd.concat(parts, ignore_index=True)
    logger.info("matched metacells: %d anchors, %d rna + %d other cells each", n_metacells, kk_r, kk_o)
    return out


def aggregate_metacells(adata, membership: pd.DataFrame, modality: str = "rna", layer: Optional[str] = None,
                        normalize: Optional[str] = "auto", name: str = "adata"):
    """Aggregate the cells of one modality over metacells (see :func:`assign_metacells`).

    Raw counts are summed per metacell and then normalised (``normalize="auto"``: counts per 10,000 +
    log1p for integer data; ``"log1p"`` forces it); otherwise values are averaged. Returns a new AnnData
    metacells x features (X dense float32; obs ``n_cells``), var copied from ``adata``.
    """
    import anndata as ad

    X = get_matrix(adata, layer, name)
    mem = membership[membership["modality"] == modality]
    if len(mem) == 0:
        raise BiclumInputError(f"aggregate_metacells: membership has no rows for modality {modality!r} "
                               f"(has {sorted(membership['modality'].unique())}); use the output of assign_metacells.")
    idx = mem["index"].to_numpy()
    if idx.max() >= adata.n_obs:
        raise BiclumInputError(f"aggregate_metacells: membership refers to cell {idx.max()} but {name} has "
                               f"{adata.n_obs} cells; pass the AnnData that assign_metacells was run on.")
    mc_names = pd.Index(pd.unique(membership["metacell"]))
    rows = mc_names.get_indexer(mem["metacell"])
    M = sp.csr_matrix((np.ones(len(idx)), (rows, idx)), shape=(len(mc_names), adata.n_obs))
    n_cells = np.asarray(M.sum(axis=1)).ravel()
    method = resolve_normalize(X, normalize)
    if method == "log1p":
        S = M @ X
        S = normalize_matrix(sp.csr_matrix(S), "log1p")
    else:
        Xn = normalize_matrix(X, method) if method == "clr" else X
        S = sp.diags(1.0 / np.maximum(n_cells, 1)) @ M @ Xn
    S = S.toarray() if sp.issparse(S) else np.asarray(S)
    out = ad.AnnData(X=S.astype(np.float32), obs=pd.DataFrame({"n_cells": n_cells.astype(int)}, index=mc_names),
                     var=adata.var.copy())
    out.uns["biclum_metacells"] = {"normalize": method or "mean", "modality": modality}
    return out


def matched_metacells(rna, other, use_rep: str = "X_biclum", n_metacells: Optional[int] = None, k: int = 50,
                      other_rep: Optional[str] = None, layer_rna: Optional[str] = None,
                      layer_other: Optional[str] = None, normalize: Optional[str] = "auto", seed: int = 0):
    """Matched metacells of two unpaired modalities: ``(rna_mc, other_mc)`` AnnData with the same obs names.

    ``rna`` and ``other`` must hold the values to aggregate (X or a layer: raw counts are best) and the
    joint embedding in ``obsm`` (copy ``res.rna.obsm["X_biclum"]`` / ``res.other.obsm["X_biclum"]`` into
    copies of your input AnnData). ``other`` may be in peak space (for gene-peak links) or gene space.
    The membership table (:func:`assign_metacells`) is in ``rna_mc.uns["metacell_membership"]``.
    """
    mem = assign_metacells(rna, other, use_rep=use_rep, n_metacells=n_metacells, k=k, other_rep=other_rep,
                           seed=seed)
    rna_mc = aggregate_metacells(rna, mem, "rna", layer=layer_rna, normalize=normalize, name="rna")
    other_mc = aggregate_metacells(other, mem, "other", layer=layer_other, normalize=normalize, name="other")
    rna_mc.uns["metacell_membership"] = mem
    return rna_mc, other_mc
