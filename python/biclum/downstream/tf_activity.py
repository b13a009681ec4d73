"""Per-cell TF activity from a user-given TF -> target network (decoupler-style ULM / weighted mean).

* ``method="ulm"`` (univariate linear model, as decoupler's ``ulm``): for each cell, the gene values
  ``x`` (all genes of the matrix) are regressed on the TF's weight vector ``w`` (target weights, 0 for
  other genes) with an intercept; the activity is the t-value of the slope,
  ``t = r sqrt((n - 2) / (1 - r^2))`` with ``r = corr(x, w)`` over the ``n`` genes.
* ``method="wmean"`` (decoupler's ``wmean`` estimate): ``sum_g w_g x_g / sum_g |w_g|``; with ``n_perm > 0``
  the score is instead the z-score against ``n_perm`` random permutations of the gene labels of ``w``
  (decoupler's ``norm`` variant).

Both are computed from sparse matrix products (no dense cells x genes copy). Compute on RNA and on the
gene-activity side (``biclum.prior.gene_activity``) and compare per cell type with
:func:`compare_tf_activity`.
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
from ._utils import get_matrix, group_indicator, normalize_matrix, resolve_normalize

__all__ = ["read_network", "tf_activity", "activity_by_group", "compare_tf_activity"]

_SRC = ("source", "tf", "TF", "regulator", "term", "set")
_TGT = ("target", "gene", "target_gene", "targets")
_WGT = ("weight", "mor", "sign", "score")


def _read_gmt_pairs(path: str) -> pd.DataFrame:
    from .enrichment import read_gmt
    gs = read_gmt(path)
    rows = [(k, g) for k, genes in gs.items() for g in genes]
    return pd.DataFrame(rows, columns=["source", "target"]).assign(weight=1.0)


def read_network(network: Union[str, os.PathLike, pd.DataFrame, dict], source: Optional[str] = None,
                 target: Optional[str] = None, weight: Optional[str] = None) -> pd.DataFrame:
    """Read a TF -> target network into a DataFrame ``source, target, weight``.

    ``network`` is a DataFrame, a dict ``{tf: [targets]}`` (weights 1), a GMT file (``.gmt``: one TF per line,
    ``name<TAB>description<TAB>target ...``; weights 1) or a delimited table (tsv/csv, optionally gzipped)
    with a header. Column names default to the first match of ``source``/``tf``/``regulator``,
    ``target``/``gene`` and ``weight``/``mor``/``sign`` (missing weight: 1). Duplicated TF-target rows are
    averaged; rows with a missing TF, target or weight are dropped.
    """
    if isinstance(network, dict):
        df = pd.DataFrame([(k, g) for k, v in network.items() for g in v], columns=["source", "target"])
        df["weight"] = 1.0
    elif isinstance(network, pd.DataFrame):
        df = network.copy()
    elif isinstance(network, (str, os.PathLike)):
        path = os.fspath(network)
        if not Path(path).is_file():
            raise BiclumInputError(f"read_network: file {path!r} does not exist; check the path.")
        if path.lower().replace(".gz", "").endswith(".gmt"):
            df = _read_gmt_pairs(path)
        else:
            sep = "," if path.lower().replace(".gz", "").endswith(".csv") else "\t"
            df = pd.read_csv(path, sep=sep, comment="#")
    else:
        raise BiclumInputError(f"read_network: got {type(network).__name__}; give a DataFrame (source, target, "
                               "weight), a dict {tf: [targets]}, a .gmt file or a tsv/csv table.")

    def pick(given, cands, what, required=True):
        if given is not None:
            if given not in df.columns:
                raise BiclumInputError(f"read_network: the network has no column {given!r} (columns: "
                                       f"{list(df.columns)}); pass {what}= an existing column.")
            return given
        for c in cands:
            if c in df.columns:
                return c
        if required:
            raise BiclumInputError(f"read_network: cannot find the {what} column among {list(df.columns)}; name it "
                                   f"{cands[0]!r} or pass {what}=.")
        return None

    s, t = pick(source, _SRC, "source"), pick(target, _TGT, "target")
    w = pick(weight, _WGT, "weight", required=False)
    out = pd.DataFrame({"source": df[s].astype(str), "target": df[t].astype(str),
                        "weight": pd.to_numeric(df[w], errors="coerce") if w else 1.0})
    out = out[df[s].notna().to_numpy() & df[t].notna().to_numpy()].dropna()
    out = out.groupby(["source", "target"], as_index=False, sort=False)["weight"].mean()
    if len(out) == 0:
        raise BiclumInputError("read_network: the network is empty after dropping missing values.")
    return out


def _weight_matrix(net: pd.DataFrame, genes: pd.Index, min_targets: int):
    net = net[net["target"].isin(genes)]
    n_t = net.groupby("source")["target"].nunique()
    keep = n_t.index[n_t >= min_targets]
    dropped = n_t.index[n_t < min_targets]
    if len(dropped):
        logger.info("tf_activity: %d TFs with fewer than %d measured targets skipped (e.g. %s)", len(dropped),
                    min_targets, list(dropped[:5]))
    net = net[net["source"].isin(keep)]
    tfs = pd.Index(sorted(keep))
    W = sp.csr_matrix((net["weight"].to_numpy(np.float64),
                       (genes.get_indexer(net["target"]), tfs.get_indexer(net["source"]))),
                      shape=(len(genes), len(tfs)))
    return tfs, W.toarray()


def tf_activity(adata, network, method: str = "ulm", layer: Optional[str] = None,
                normalize: Optional[str] = "auto", min_targets: int = 5, n_perm: int = 0,
                seed: int = 0) -> pd.DataFrame:
    """Per-cell TF activity scores.

    Parameters
    ----------
    adata
        AnnData cells x genes (RNA or gene activity); not modified.
    network
        Anything :func:`read_network` accepts (DataFrame ``source, target, weight``, dict, GMT or table file).
    method
        ``"ulm"`` (t-value of a univariate linear model, default) or ``"wmean"`` (weighted mean).
    layer
        Layer to use instead of X.
    normalize
        ``"auto"`` (raw counts -> log1p of counts per 10,000; other data as given), ``"log1p"`` or None.
    min_targets
        TFs with fewer measured targets are skipped.
    n_perm
        ``wmean`` only: z-score against this many gene-label permutations (0 = plain weighted mean).

    Returns
    -------
    DataFrame cells x TFs (index ``adata.obs_names``).
    """
    if method not in ("ulm", "wmean"):
        raise BiclumInputError(f"tf_activity: method={method!r}; use 'ulm' or 'wmean'.")
    net = read_network(network)
    X = get_matrix(adata, layer, "adata")
    X = normalize_matrix(X, resolve_normalize(X, normalize))
    X = sp.csr_matrix(X, dtype=np.float64)
    genes = pd.Index(adata.var_names.astype(str))
    tfs, W = _weight_matrix(net, genes, min_targets)
    if len(tfs) == 0:
        raise BiclumInputError(
            f"tf_activity: no TF has >= {min_targets} targets among the {len(genes)} genes of adata; check that "
            "gene names match the network (species, symbols), or lower min_targets.")
    n = X.shape[1]
    XW = np.asarray(X @ W)
    if method == "wmean":
        denom = np.abs(W).sum(axis=0)
        est = XW / denom
        if n_perm and n_perm > 0:
            rng = np.random.default_rng(seed)
            s1 = np.zeros_like(est)
            s2 = np.zeros_like(est)
            for _ in range(int(n_perm)):
                e = np.asarray(X @ W[rng.permutation(n)]) / denom
                s1 += e
                s2 += e * e
            mu = s1 / n_perm
            sd = np.sqrt(np.maximum(s2 / n_perm - mu * mu, 0))
            with np.errstate(invalid="ignore", divide="ignore"):
                est = np.where(sd > 0, (est - mu) / sd, 0.0)
    else:
        sx = np.asarray(X.sum(axis=1)).ravel()[:, None]
        sxx = np.asarray(X.multiply(X).sum(axis=1)).ravel()[:, None]
        sw = W.sum(axis=0)[None, :]
        sww = (W ** 2).sum(axis=0)[None, :]
        cov = XW / n - (sx / n) * (sw / n)
        varx = np.maximum(sxx / n - (sx / n) ** 2, 0)
        varw = np.maximum(sww / n - (sw / n) ** 2, 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            r = np.where((varx > 0) & (varw > 0), cov / np.sqrt(varx * varw), 0.0)
        r = np.clip(r, -1 + 1e-12, 1 - 1e-12)
        est = r * np.sqrt((n - 2) / (1 - r ** 2))
    return pd.DataFrame(est, index=adata.obs_names.copy(), columns=tfs)


def activity_by_group(activity: pd.DataFrame, labels, scale: bool = True) -> pd.DataFrame:
    """Mean activity per group: DataFrame groups x TFs. ``labels``: one label per row of ``activity``
    (array or Series). ``scale``: z-score each TF over cells first (makes RNA and ATAC sides comparable)."""
    lab = pd.Series(np.asarray(labels), index=activity.index)
    if len(lab) != len(activity):
        raise BiclumInputError(f"activity_by_group: {len(lab)} labels for {len(activity)} cells; give one per cell.")
    A = activity.to_numpy(dtype=np.float64)
    if scale:
        sd = A.std(axis=0)
        A = (A - A.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    cats, codes, G = group_indicator(lab)
    n = np.asarray(G.sum(axis=1)).ravel()
    M = (G @ A) / np.maximum(n, 1)[:, None]
    return pd.DataFrame(M, index=cats, columns=activity.columns)


def compare_tf_activity(activity_a: pd.DataFrame, labels_a, activity_b: pd.DataFrame, labels_b,
                        names: tuple = ("rna", "other")) -> pd.DataFrame:
    """Compare TF activity of two modalities per cell type.

    Both activities are z-scored per TF within their modality and averaged per cell type
    (:func:`activity_by_group`); only TFs and cell types present on both sides are compared.

    Returns
    -------
    DataFrame, one row per TF: ``pearson_r`` and ``spearman_r`` between the per-type means of the two sides
    (across cell types), ``top_<a>`` / ``top_<b>`` (cell type with the highest mean on each side), ``agree``
    (same top type) and ``n_types``. The per-type means are in ``.attrs["by_group"]`` as
    ``{name_a: DataFrame, name_b: DataFrame}``.
    """
    from scipy import stats

    Ma = activity_by_group(activity_a, labels_a)
    Mb = activity_by_group(activity_b, labels_b)
    types = Ma.index.intersection(Mb.index)
    tfs = Ma.columns.intersection(Mb.columns)
    if len(types) < 2 or len(tfs) == 0:
        raise BiclumInputError(f"compare_tf_activity: {len(types)} shared cell types and {len(tfs)} shared TFs; need "
                               ">= 2 types and >= 1 TF on both sides (transfer labels to the unlabelled side first).")
    Ma, Mb = Ma.loc[types, tfs], Mb.loc[types, tfs]
    rows = []
    for tf in tfs:  # loop over TFs (few), not cells
        a, b = Ma[tf].to_numpy(), Mb[tf].to_numpy()
        ok = np.std(a) > 0 and np.std(b) > 0
        rows.append({"tf": tf, "pearson_r": float(np.corrcoef(a, b)[0, 1]) if ok else np.nan,
                     "spearman_r": float(stats.spearmanr(a, b)[0]) if ok else np.nan,
                     f"top_{names[0]}": types[int(np.argmax(a))], f"top_{names[1]}": types[int(np.argmax(b))],
                     "n_types": len(types)})
    out = pd.DataFrame(rows).set_index("tf")
    out["agree"] = out[f"top_{names[0]}"] == out[f"top_{names[1]}"]
    out.attrs["by_group"] = {names[0]: Ma, names[1]: Mb}
    return out
