"""Cell-cell interactions: ligand-receptor scores between cell types with a label-permutation test.

For a ligand-receptor pair ``(l, r)``, a sender type ``s`` and a receiver type ``t``:

* ``score="product"`` (default): ``mean_s(l) * mean_t(r)``; ``score="mean"`` (CellPhoneDB):
  ``(mean_s(l) + mean_t(r)) / 2``, set to 0 when either mean is 0;
* null: cell-type labels are permuted ``n_perm`` times (ligand and receptor sides together when they are
  the same cells; independently when the receptor side is another modality) and the score recomputed;
  ``pval = (1 + #null >= observed) / (1 + n_perm)``; ``fdr``: Benjamini-Hochberg over all rows;
* a pair is ``expressed`` when at least ``min_frac`` of the sender cells express the ligand and of the
  receiver cells express the receptor; other rows get ``pval = 1``.

On unpaired data the receptor side may be the matched other modality (e.g. CITE-seq proteins converted
to gene names with ``biclum.prior.protein_to_gene``, or ATAC gene activity) with labels transferred
through the joint embedding (:func:`biclum.downstream.transfer_labels`). Single-gene ligands and
receptors only (multi-subunit complexes: list each subunit pair).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Union

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .._logging import logger
from ..errors import BiclumInputError
from ._utils import bh_fdr, columns_dense, get_labels, get_matrix, group_indicator, normalize_matrix, \
    resolve_normalize

__all__ = ["read_lr_table", "ligand_receptor"]


def read_lr_table(table: Union[str, os.PathLike, pd.DataFrame], ligand: Optional[str] = None,
                  receptor: Optional[str] = None) -> pd.DataFrame:
    """Read a ligand-receptor table (DataFrame or tsv/csv path with a header) into ``ligand, receptor``
    (+ any other columns, e.g. ``pathway``). Column names default to ``ligand``/``source``/``from`` and
    ``receptor``/``target``/``to``. Duplicate pairs are dropped."""
    if isinstance(table, (str, os.PathLike)):
        path = os.fspath(table)
        if not Path(path).is_file():
            raise BiclumInputError(f"read_lr_table: file {path!r} does not exist; check the path.")
        sep = "," if path.lower().replace(".gz", "").endswith(".csv") else "\t"
        df = pd.read_csv(path, sep=sep, comment="#")
    elif isinstance(table, pd.DataFrame):
        df = table.copy()
    else:
        raise BiclumInputError(f"read_lr_table: got {type(table).__name__}; give a DataFrame (ligand, receptor) or "
                               "a tsv/csv path.")

    def pick(given, cands, what):
        if given is not None:
            if given not in df.columns:
                raise BiclumInputError(f"read_lr_table: no column {given!r} (columns {list(df.columns)}).")
            return given
        for c in cands:
            if c in df.columns:
                return c
        raise BiclumInputError(f"read_lr_table: no {what} column among {list(df.columns)}; name it {what!r} or pass "
                               f"{what}=.")

    lc = pick(ligand, ("ligand", "source", "from", "ligand_gene"), "ligand")
    rc = pick(receptor, ("receptor", "target", "to", "receptor_gene"), "receptor")
    out = df.rename(columns={lc: "ligand", rc: "receptor"})
    out = out.dropna(subset=["ligand", "receptor"])
    out["ligand"] = out["ligand"].astype(str)
    out["receptor"] = out["receptor"].astype(str)
    out = out.drop_duplicates(["ligand", "receptor"]).reset_index(drop=True)
    if len(out) == 0:
        raise BiclumInputError("read_lr_table: the table has no ligand-receptor pair.")
    return out


def _side(adata, groupby, genes, layer, normalize, name):
    X = get_matrix(adata, layer, name)
    X = normalize_matrix(X, resolve_normalize(X, normalize))
    labels = get_labels(adata, groupby, name)
    cats, codes, _ = group_indicator(labels)
    keep = codes >= 0
    cols = pd.Index(adata.var_names.astype(str)).get_indexer(genes)
    D = columns_dense(X, cols)[keep]
    return cats, codes[keep], D


def _group_stats(codes: np.ndarray, n_groups: int, D: np.ndarray):
    G = sp.csr_matrix((np.ones(codes.size), (codes, np.arange(codes.size))), shape=(n_groups, codes.size))
    n = np.maximum(np.asarray(G.sum(axis=1)).ravel(), 1)[:, None]
    return np.asarray(G @ D) / n, np.asarray(G @ (D > 0).astype(np.float64)) / n


def ligand_receptor(adata, groupby, lr_table, receptor_adata=None, receptor_groupby=None,
                    layer: Optional[str] = None, receptor_layer: Optional[str] = None,
                    normalize: Optional[str] = "auto", receptor_normalize: Optional[str] = "auto",
                    score: str = "product", n_perm: int = 1000, min_frac: float = 0.05,
                    seed: int = 0) -> pd.DataFrame:
    """Ligand-receptor interaction scores between cell types, with a permutation test.

    Parameters
    ----------
    adata, groupby
        Ligand side: AnnData cells x genes (RNA) and its labels (obs column or array).
    lr_table
        :func:`read_lr_table` input (DataFrame or path with ``ligand``, ``receptor`` columns).
    receptor_adata, receptor_groupby
        Receptor side (default: the ligand side). Use the matched other modality in gene space with its
        (transferred) labels to score receptors on, e.g., surface proteins.
    layer, receptor_layer, normalize, receptor_normalize
        Values used on each side; ``"auto"`` log-normalises raw counts (use ``"clr"`` for raw ADT counts).
    score
        ``"product"`` or ``"mean"`` (see the module docstring).
    n_perm
        Label permutations for the p-values.
    min_frac
        Minimum fraction of expressing cells for the ligand in the sender and the receptor in the receiver.

    Returns
    -------
    DataFrame, one row per (pair, sender, receiver), sorted by p-value then decreasing score: ``ligand``,
    ``receptor``, ``sender``, ``receiver``, ``ligand_mean``, ``receptor_mean``, ``ligand_frac``,
    ``receptor_frac``, ``score``, ``expressed``, ``pval``, ``fdr`` (+ extra columns of the table).
    """
    if score not in ("product", "mean"):
        raise BiclumInputError(f"ligand_receptor: score={score!r}; use 'product' or 'mean'.")
    lr = read_lr_table(lr_table)
    same = receptor_adata is None
    radata = adata if same else receptor_adata
    rgroup = groupby if receptor_groupby is None else receptor_groupby
    lg_have = set(adata.var_names.astype(str))
    rc_have = set(radata.var_names.astype(str))
    ok = lr["ligand"].isin(lg_have) & lr["receptor"].isin(rc_have)
    if (~ok).any():
        logger.info("ligand_receptor: %d of %d pairs skipped (ligand or receptor not measured), e.g. %s",
                    int((~ok).sum()), len(lr), lr.loc[~ok, ["ligand", "receptor"]].head(3).values.tolist())
    lr = lr[ok].reset_index(drop=True)
    if len(lr) == 0:
        raise BiclumInputError("ligand_receptor: no pair has its ligand in adata and its receptor in the receptor "
                               "side; check gene names (species, symbols) and the table.")
    lig = pd.Index(pd.unique(lr["ligand"]))
    rec = pd.Index(pd.unique(lr["receptor"]))
    li, ri = lig.get_indexer(lr["ligand"]), rec.get_indexer(lr["receptor"])
    s_cats, s_codes, L = _side(adata, groupby, lig, layer, normalize, "adata")
    if same and receptor_layer is None and receptor_normalize == normalize:
        r_cats, r_codes = s_cats, s_codes
        R = _side(adata, groupby, rec, layer, normalize, "adata")[2]
    else:
        r_cats, r_codes, R = _side(radata, rgroup, rec, receptor_layer, receptor_normalize, "receptor_adata")
    joint_perm = same and np.array_equal(s_codes, r_codes)

    def combine(a, b):
        """a: (..., senders, pairs), b: (..., receivers, pairs) -> (..., senders, receivers, pairs)."""
        a, b = a[..., :, None, :], b[..., None, :, :]
        if score == "product":
            return a * b
        return np.where((a > 0) & (b > 0), (a + b) / 2, 0.0)

    ML, FL = _group_stats(s_codes, len(s_cats), L)
    MR, FR = _group_stats(r_codes, len(r_cats), R)
    obs = combine(ML[:, li], MR[:, ri])
    n_s = np.maximum(np.bincount(s_codes, minlength=len(s_cats)), 1)[None, :, None]
    n_r = np.maximum(np.bincount(r_codes, minlength=len(r_cats)), 1)[None, :, None]

    def perm_means(perms: np.ndarray, n_groups: int, D: np.ndarray, n_g: np.ndarray) -> np.ndarray:
        """Group means for a batch of label permutations (B x n_cells) in one sparse product."""
        B, n = perms.shape
        rows = (np.arange(B)[:, None] * n_groups + perms).ravel()
        M = sp.csr_matrix((np.ones(rows.size), (rows, np.tile(np.arange(n), B))), shape=(B * n_groups, n))
        return np.asarray(M @ D).reshape(B, n_groups, D.shape[1]) / n_g  # group sizes do not change

    rng = np.random.default_rng(seed)
    count = np.zeros_like(obs)
    batch = int(max(1, min(n_perm, 2e6 // max(obs.size, 1), 2e6 // max(s_codes.size, r_codes.size, 1))))
    done = 0
    while done < n_perm:  # batches of permutations, vectorised over cells
        B = min(batch, n_perm - done)
        ps = rng.permuted(np.broadcast_to(s_codes, (B, s_codes.size)), axis=1)
        pr = ps if joint_perm else rng.permuted(np.broadcast_to(r_codes, (B, r_codes.size)), axis=1)
        null = combine(perm_means(ps, len(s_cats), L, n_s)[:, :, li], perm_means(pr, len(r_cats), R, n_r)[:, :, ri])
        count += (null >= obs[None] - 1e-12).sum(axis=0)
        done += B
    pval = (1 + count) / (1 + n_perm) if n_perm > 0 else np.full_like(obs, np.nan)
    expressed = (FL[:, li][:, None, :] >= min_frac) & (FR[:, ri][None, :, :] >= min_frac)
    pval = np.where(expressed, pval, 1.0)
    ns, nr, P = obs.shape
    s_idx, r_idx, p_idx = np.meshgrid(np.arange(ns), np.arange(nr), np.arange(P), indexing="ij")
    s_idx, r_idx, p_idx = s_idx.ravel(), r_idx.ravel(), p_idx.ravel()
    out = pd.DataFrame({
        "ligand": lr["ligand"].to_numpy()[p_idx], "receptor": lr["receptor"].to_numpy()[p_idx],
        "sender": np.asarray(s_cats)[s_idx], "receiver": np.asarray(r_cats)[r_idx],
        "ligand_mean": ML[s_idx, li[p_idx]], "receptor_mean": MR[r_idx, ri[p_idx]],
        "ligand_frac": FL[s_idx, li[p_idx]], "receptor_frac": FR[r_idx, ri[p_idx]],
        "score": obs.ravel(), "expressed": expressed.ravel(), "pval": pval.ravel(),
    })
    out["fdr"] = bh_fdr(out["pval"].to_numpy())
    extra = [c for c in lr.columns if c not in ("ligand", "receptor")]
    for c in extra:
        out[c] = lr[c].to_numpy()[p_idx]
    return out.sort_values(["pval", "score"], ascending=[True, False], kind="stable").reset_index(drop=True)
