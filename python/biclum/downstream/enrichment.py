"""Functional enrichment: hypergeometric test of gene lists (e.g. marker sets) against gene sets (GMT).

For a query set ``Q`` and a term ``T`` within a universe ``U`` (the genes that could have been selected;
by default the genes of the marker table, i.e. the measured genes):
``p = P[X >= |Q n T|]`` with ``X ~ Hypergeom(N=|U|, K=|T n U|, n=|Q n U|)``; FDR by Benjamini-Hochberg
within each query over the terms tested (size filter ``min_size <= |T n U| <= max_size``).
"""
from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import Dict, Iterable, Optional, Sequence, Union

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy import stats

from .._logging import logger
from ..errors import BiclumInputError
from ._utils import bh_fdr

__all__ = ["read_gmt", "write_gmt", "enrichment", "enrich_markers"]

GeneSets = Union[str, os.PathLike, Dict[str, Iterable[str]], pd.DataFrame]


def read_gmt(path: Union[str, os.PathLike]) -> Dict[str, list]:
    """Read a GMT file (``name<TAB>description<TAB>gene<TAB>gene ...`` per line; ``.gz`` allowed) into
    ``{name: [genes]}``. Blank lines and lines starting with ``#`` are skipped; duplicate genes removed."""
    path = os.fspath(path)
    if not Path(path).is_file():
        raise BiclumInputError(f"read_gmt: file {path!r} does not exist; check the path.")
    opener = gzip.open if path.endswith(".gz") else open
    out: Dict[str, list] = {}
    with opener(path, "rt") as fh:
        for ln, line in enumerate(fh, 1):
            line = line.rstrip("\n\r")
            if not line.strip() or line.startswith("#"):
                continue
            parts = line.split("\t")
            if len(parts) < 3:
                raise BiclumInputError(f"read_gmt: {path!r} line {ln} has {len(parts)} tab-separated fields; GMT lines "
                                       "are name<TAB>description<TAB>gene1<TAB>gene2 ...")
            genes = [g.strip() for g in parts[2:] if g.strip()]
            out.setdefault(parts[0].strip(), [])
            out[parts[0].strip()] = list(dict.fromkeys(out[parts[0].strip()] + genes))
    if not out:
        raise BiclumInputError(f"read_gmt: {path!r} contains no gene set.")
    return out


def write_gmt(gene_sets: Dict[str, Iterable[str]], path: Union[str, os.PathLike], description: str = "") -> None:
    """Write ``{name: [genes]}`` as a GMT file."""
    with open(os.fspath(path), "w") as fh:
        for k, genes in gene_sets.items():
            fh.write("\t".join([str(k), description or "na"] + [str(g) for g in genes]) + "\n")


def _as_gene_sets(gene_sets: GeneSets) -> Dict[str, list]:
    if isinstance(gene_sets, (str, os.PathLike)):
        return read_gmt(gene_sets)
    if isinstance(gene_sets, pd.DataFrame):
        cols = [c for c in ("term", "source", "set", "name") if c in gene_sets.columns]
        gcol = [c for c in ("gene", "target", "genes") if c in gene_sets.columns]
        if not cols or not gcol:
            raise BiclumInputError("gene sets DataFrame needs a term column ('term'/'source'/'set') and a gene column "
                                   f"('gene'/'target'); got {list(gene_sets.columns)}.")
        return {str(k): list(v.astype(str)) for k, v in gene_sets.groupby(cols[0], sort=False)[gcol[0]]}
    if isinstance(gene_sets, dict):
        return {str(k): [str(g) for g in v] for k, v in gene_sets.items()}
    raise BiclumInputError(f"gene sets: got {type(gene_sets).__name__}; give a GMT path, a dict {{term: [genes]}} "
                           "or a DataFrame (term, gene).")


def enrichment(query: Union[Sequence[str], Dict[str, Iterable[str]]], gene_sets: GeneSets,
               universe: Optional[Iterable[str]] = None, min_size: int = 3, max_size: int = 2000,
               min_overlap: int = 1) -> pd.DataFrame:
    """Hypergeometric enrichment of one or several gene lists in gene sets.

    Parameters
    ----------
    query
        A list of genes, or ``{name: [genes]}`` (e.g. :func:`biclum.downstream.top_markers` output).
    gene_sets
        GMT path, ``{term: [genes]}`` or DataFrame (term, gene).
    universe
        Background genes (the measured / tested genes). Default: the union of the query genes and the
        gene-set genes (less conservative; pass the measured genes when you can).
    min_size, max_size
        Terms with fewer / more genes in the universe are not tested.
    min_overlap
        Rows with a smaller overlap are left out of the output (they are still counted in the FDR).

    Returns
    -------
    DataFrame sorted by query and p-value: ``query``, ``term``, ``overlap``, ``query_size``, ``term_size``,
    ``universe_size``, ``expected``, ``fold_enrichment``, ``pval``, ``fdr``, ``genes`` (overlap, ``;``-joined).
    """
    gs = _as_gene_sets(gene_sets)
    queries = {"query": list(query)} if not isinstance(query, dict) else {str(k): list(v) for k, v in query.items()}
    if universe is None:
        U = pd.Index(sorted(set().union(*[set(v) for v in queries.values()], *[set(v) for v in gs.values()])))
        logger.info("enrichment: no universe given; using the %d genes of the query and gene sets (pass the measured "
                    "genes as universe= for a proper background)", len(U))
    else:
        U = pd.Index(sorted(set(map(str, universe))))
    N = len(U)
    if N == 0:
        raise BiclumInputError("enrichment: the universe is empty.")

    def membership(sets: Dict[str, list]):
        names = list(sets)
        rows, cols = [], []
        for i, k in enumerate(names):  # loop over sets, not cells
            idx = U.get_indexer(pd.Index(list(dict.fromkeys(sets[k]))))
            idx = idx[idx >= 0]
            rows.append(np.full(idx.size, i))
            cols.append(idx)
        r = np.concatenate(rows) if rows else np.zeros(0, int)
        c = np.concatenate(cols) if cols else np.zeros(0, int)
        return names, sp.csr_matrix((np.ones(r.size), (r, c)), shape=(len(names), N))

    qn, Q = membership(queries)
    tn, T = membership(gs)
    t_size = np.asarray(T.sum(axis=1)).ravel()
    tok = (t_size >= min_size) & (t_size <= max_size)
    if not tok.any():
        raise BiclumInputError(f"enrichment: no gene set has {min_size}-{max_size} genes in the universe of {N} genes; "
                               "check gene identifiers (symbols, species) or the size limits.")
    T = T[tok]
    tn = [t for t, k in zip(tn, tok) if k]
    t_size = t_size[tok]
    q_size = np.asarray(Q.sum(axis=1)).ravel()
    O = np.asarray((Q @ T.T).todense())
    K = np.broadcast_to(t_size[None, :], O.shape)
    n = np.broadcast_to(q_size[:, None], O.shape)
    p = stats.hypergeom.sf(O - 1, N, K, n)
    p = np.where(n > 0, p, np.nan)
    Ud = U.to_numpy()
    frames = []
    for i, q in enumerate(qn):
        fdr = bh_fdr(p[i])
        keep = np.flatnonzero(O[i] >= min_overlap)
        qi = Q[i].indices
        genes = []
        for j in keep:  # overlap gene lists for reported rows (loop over terms)
            genes.append(";".join(Ud[np.intersect1d(qi, T[j].indices)]))
        exp = q_size[i] * t_size[keep] / N
        frames.append(pd.DataFrame({
            "query": q, "term": np.asarray(tn, dtype=object)[keep], "overlap": O[i, keep].astype(int),
            "query_size": int(q_size[i]), "term_size": t_size[keep].astype(int), "universe_size": N,
            "expected": exp, "fold_enrichment": O[i, keep] / np.where(exp > 0, exp, np.nan),
            "pval": p[i, keep], "fdr": fdr[keep], "genes": genes}))
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if len(out):
        out = out.sort_values(["query", "pval"], kind="stable").reset_index(drop=True)
    return out


def enrich_markers(markers: pd.DataFrame, gene_sets: GeneSets, n_top: int = 100,
                   universe: Optional[Iterable[str]] = None, padj_max: Optional[float] = None,
                   **kwargs) -> pd.DataFrame:
    """Enrichment of each group's top ``n_top`` markers (:func:`biclum.downstream.find_markers` table; a
    ``modality`` column, if any, is kept apart as ``query = "<modality>:<group>"``). The universe defaults
    to all genes of the marker table."""
    from .markers import top_markers

    if universe is None:
        universe = markers["gene"].astype(str).unique()
    if "modality" in markers.columns:
        query = {}
        for mod, d in markers.groupby("modality", sort=False):
            for g, genes in top_markers(d, n_top=n_top, padj_max=padj_max).items():
                query[f"{mod}:{g}"] = genes
    else:
        query = top_markers(markers, n_top=n_top, padj_max=padj_max)
    return enrichment(query, gene_sets, universe=universe, **kwargs)
