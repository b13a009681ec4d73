"""Gene-peak links over matched metacells, with a distance-matched random control.

Definitions
-----------
* TSS: gene ``start`` on the + strand, ``end`` on the - strand (annotation 1-based; converted to 0-based).
* Peak position: its centre, ``(start + end) // 2`` (peaks 0-based half-open, as in ``biclum.prior``).
* Nearby pair: a gene measured in RNA and a peak measured in ATAC on the same chromosome with
  ``|peak centre - TSS| <= window`` (default 100 kb).
* Correlation: Pearson (or Spearman) correlation over matched metacells between the gene's normalised
  expression and the peak's normalised accessibility (:func:`biclum.downstream.matched_metacells`).

Distance-matched random control
-------------------------------
Every nearby pair ``(g, p)`` at distance ``d`` in distance bin ``b`` gets ``n_control`` control pairs
``(g, p*)``: the same gene ``g`` (so expression properties are identical) with a random peak ``p*`` that

* lies on a **different chromosome** than ``g`` (so no cis regulation is possible),
* has its own distance to the nearest TSS of a measured gene in the **same distance bin** ``b`` (so ``p*``
  is a promoter-proximal / distal element in the same proportion as the real peaks), and
* (default) is in the same **accessibility quantile bin** (mean over metacells, ``n_accessibility_bins``
  bins) as ``p``, so sparsity / depth cannot explain a difference.

Strata with no candidate on another chromosome fall back to the distance bin alone; pairs without any
candidate get no control (logged). Default bins (bp): 0, 2k, 5k, 10k, 20k, 50k, window.

Test (:func:`links_vs_control`): one-sided Mann-Whitney U (nearby > control) with effect sizes: the
difference of medians and the rank-biserial correlation ``2U/(n1 n2) - 1`` (equal to Cliff's delta),
overall and per distance bin. Per-pair p-values are empirical against the control pairs of the same
distance bin (one-sided, ``(1 + #control >= r) / (1 + n_control)``) with Benjamini-Hochberg FDR.
Metacells overlap, so the metacell count is not an independent sample size; the control comparison
does not rely on it.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy import stats

from .._logging import logger
from ..errors import BiclumInputError
from ._utils import bh_fdr, check_adata

__all__ = ["tss_table", "peak_table", "nearby_pairs", "gene_peak_links", "links_vs_control",
           "DEFAULT_DISTANCE_BINS"]

DEFAULT_DISTANCE_BINS = (0, 2_000, 5_000, 10_000, 20_000, 50_000)


def _norm_chrom(values) -> np.ndarray:
    try:
        from ..prior import normalize_chrom
        return normalize_chrom(values)
    except ImportError:  # pragma: no cover - fallback while prior is absent
        s = pd.Series(list(values), dtype=object).astype(str).str.strip().str.upper()
        s = s.str.replace(r"^CHR(?=.)", "", regex=True)
        return s.where(~s.isin(["M", "MT"]), "M").to_numpy(dtype=object)


def tss_table(annotation, genes: Optional[Sequence[str]] = None) -> pd.DataFrame:
    """Gene TSS positions: DataFrame indexed by gene name with ``chrom`` (normalised key: ``chr1`` -> ``1``),
    ``tss`` (0-based) and ``strand``. ``annotation``: path or DataFrame accepted by
    :func:`biclum.prior.read_annotation` (``gene_name, chrom, start, end, strand``, 1-based).
    ``genes``: restrict to these (genes absent from the annotation are dropped)."""
    try:
        from ..prior import read_annotation
        ann = read_annotation(annotation)
    except ImportError:  # pragma: no cover - fallback while prior is absent
        ann = annotation if isinstance(annotation, pd.DataFrame) else pd.read_csv(annotation, sep="\t")
        ann = ann.drop_duplicates("gene_name")
    for c in ("gene_name", "chrom", "start", "end", "strand"):
        if c not in ann.columns:
            raise BiclumInputError(f"tss_table: the annotation lacks column {c!r}; give gene_name, chrom, start, "
                                   "end, strand (1-based), e.g. ../shared/data/annotation/mm10_genes.tsv.gz.")
    ann = ann.drop_duplicates("gene_name")
    tss = np.where(ann["strand"].astype(str).to_numpy() == "-", ann["end"].to_numpy(), ann["start"].to_numpy())
    out = pd.DataFrame({"chrom": _norm_chrom(ann["chrom"]), "tss": tss.astype(np.int64) - 1,
                        "strand": ann["strand"].astype(str).to_numpy()},
                       index=pd.Index(ann["gene_name"].astype(str), name="gene"))
    if genes is not None:
        genes = pd.Index([str(g) for g in genes])
        out = out.loc[genes[genes.isin(out.index)]]
    return out


def peak_table(peaks) -> pd.DataFrame:
    """Peak coordinates: DataFrame indexed by peak name with ``chrom`` (normalised key), ``start``, ``end``
    and ``center``. ``peaks``: AnnData (var chrom/start/end or names ``chrN-start-end`` / ``chrN:start-end``
    / ``chrN_start_end``), a var DataFrame or a list of names."""
    try:
        from ..prior import parse_peaks
        df = parse_peaks(peaks)
    except ImportError:  # pragma: no cover - fallback while prior is absent
        names = pd.Index(peaks.var_names if hasattr(peaks, "var_names") else list(peaks)).astype(str)
        ext = pd.Series(names).str.extract(r"^(?P<chrom>.+)[:_\-](?P<start>\d+)[_\-](?P<end>\d+)$")
        if ext["chrom"].isna().any():
            raise BiclumInputError("peak_table: some peak names are not chrN-start-end; give var chrom/start/end.")
        df = pd.DataFrame({"chrom": ext["chrom"].to_numpy(), "start": ext["start"].astype(np.int64).to_numpy(),
                           "end": ext["end"].astype(np.int64).to_numpy()}, index=names)
    out = pd.DataFrame({"chrom": _norm_chrom(df["chrom"]), "start": df["start"].to_numpy(np.int64),
                        "end": df["end"].to_numpy(np.int64)}, index=df.index)
    out["center"] = (out["start"] + out["end"]) // 2
    return out


def _by_chrom_pairs(g_chrom, g_pos, p_chrom, p_pos, window):
    """All (gene index, peak index) with equal chromosome and |p_pos - g_pos| <= window (vectorised per chrom)."""
    gi_all, pi_all = [], []
    for c in np.intersect1d(pd.unique(g_chrom), pd.unique(p_chrom)):
        gi = np.flatnonzero(g_chrom == c)
        pi = np.flatnonzero(p_chrom == c)
        order = np.argsort(p_pos[pi], kind="stable")
        pi = pi[order]
        ppos = p_pos[pi]
        lo = np.searchsorted(ppos, g_pos[gi] - window, side="left")
        hi = np.searchsorted(ppos, g_pos[gi] + window, side="right")
        cnt = hi - lo
        if cnt.sum() == 0:
            continue
        rep_g = np.repeat(gi, cnt)
        offs = np.arange(cnt.sum()) - np.repeat(np.cumsum(cnt) - cnt, cnt)
        gi_all.append(rep_g)
        pi_all.append(pi[np.repeat(lo, cnt) + offs])
    if not gi_all:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(gi_all), np.concatenate(pi_all)


def nearby_pairs(genes: Sequence[str], peaks, annotation, window: int = 100_000) -> pd.DataFrame:
    """Gene-peak pairs with the peak centre within ``window`` bp of the gene's TSS.

    Returns DataFrame ``gene, peak, chrom, tss, peak_center, distance`` (``|centre - TSS|`` in bp) and
    ``signed_distance`` (peak centre - TSS, positive = downstream on the gene's strand).
    """
    if window <= 0:
        raise BiclumInputError(f"nearby_pairs: window={window}; use a positive distance in bp (default 100000).")
    tss = tss_table(annotation, genes)
    if len(tss) == 0:
        raise BiclumInputError("nearby_pairs: none of the genes is in the annotation; check the genome (mm10 vs "
                               "hg38) and that gene names are symbols.")
    pk = peak_table(peaks)
    gi, pi = _by_chrom_pairs(tss["chrom"].to_numpy(), tss["tss"].to_numpy(), pk["chrom"].to_numpy(),
                             pk["center"].to_numpy(), window)
    sd = pk["center"].to_numpy()[pi] - tss["tss"].to_numpy()[gi]
    sd = np.where(tss["strand"].to_numpy()[gi] == "-", -sd, sd)
    return pd.DataFrame({
        "gene": tss.index.to_numpy()[gi], "peak": pk.index.to_numpy()[pi], "chrom": tss["chrom"].to_numpy()[gi],
        "tss": tss["tss"].to_numpy()[gi], "peak_center": pk["center"].to_numpy()[pi],
        "distance": np.abs(sd).astype(np.int64), "signed_distance": sd.astype(np.int64),
    })


def _nearest_tss_distance(p_chrom, p_pos, g_chrom, g_pos) -> np.ndarray:
    """Distance of each peak to the nearest TSS on its chromosome (inf if none)."""
    out = np.full(p_pos.shape[0], np.inf)
    for c in pd.unique(p_chrom):
        pi = np.flatnonzero(p_chrom == c)
        t = np.sort(g_pos[g_chrom == c])
        if t.size == 0:
            continue
        j = np.searchsorted(t, p_pos[pi])
        left = np.abs(p_pos[pi] - t[np.clip(j - 1, 0, t.size - 1)])
        right = np.abs(t[np.clip(j, 0, t.size - 1)] - p_pos[pi])
        out[pi] = np.minimum(left, right)
    return out


def _zscore_columns(D: np.ndarray, method: str) -> np.ndarray:
    if method == "spearman":
        D = stats.rankdata(D, axis=0)
    D = D - D.mean(axis=0, keepdims=True)
    sd = np.sqrt((D ** 2).mean(axis=0, keepdims=True))
    with np.errstate(invalid="ignore", divide="ignore"):
        Z = np.where(sd > 0, D / sd, np.nan)
    return Z


def _pair_corr(Zg: np.ndarray, Zp: np.ndarray, gi: np.ndarray, pi: np.ndarray, chunk: int = 20_000) -> np.ndarray:
    out = np.empty(gi.size)
    for s in range(0, gi.size, chunk):
        out[s:s + chunk] = np.einsum("ij,ij->j", Zg[:, gi[s:s + chunk]], Zp[:, pi[s:s + chunk]]) / Zg.shape[0]
    return out


def gene_peak_links(rna_mc, atac_mc, annotation, window: int = 100_000, method: str = "pearson",
                    n_control: int = 5, distance_bins: Sequence[int] = DEFAULT_DISTANCE_BINS,
                    n_accessibility_bins: int = 5, min_mean: float = 0.0, seed: int = 0) -> pd.DataFrame:
    """Correlate each gene with each nearby peak over matched metacells, plus a distance-matched control.

    Parameters
    ----------
    rna_mc, atac_mc
        Metacells x genes and metacells x peaks AnnData with the same obs names in the same order
        (:func:`biclum.downstream.matched_metacells`; for paired data any shared aggregation works).
        X holds normalised values (the output of ``matched_metacells`` already does).
    annotation
        Gene annotation path or DataFrame (``gene_name, chrom, start, end, strand``; 1-based).
    window
        Maximum |peak centre - TSS| in bp for a nearby pair (default 100 kb).
    method
        ``"pearson"`` or ``"spearman"``.
    n_control
        Control pairs per nearby pair (see the module docstring for the matching scheme).
    distance_bins
        Left edges of the distance bins in bp (the last bin ends at ``window``).
    n_accessibility_bins
        Quantile bins of mean peak accessibility used in the matching (0 or 1: not matched).
    min_mean
        Genes / peaks with a mean over metacells <= this are dropped (constant features are always dropped).
    seed
        Seed of the control sampling.

    Returns
    -------
    DataFrame, one row per pair: ``pair_type`` (``"nearby"`` / ``"control"``), ``gene``, ``peak``, ``distance``
    (bp; for control pairs the distance of the nearby pair they are matched to), ``distance_bin``,
    ``correlation``, ``pval`` and ``fdr`` (nearby pairs: empirical vs. the same-bin controls), ``matched_to``
    (control: row number of its nearby pair; nearby: -1). Summarise with :func:`links_vs_control`.
    """
    check_adata(rna_mc, "rna_mc")
    check_adata(atac_mc, "atac_mc")
    if rna_mc.n_obs != atac_mc.n_obs or not np.array_equal(np.asarray(rna_mc.obs_names), np.asarray(atac_mc.obs_names)):
        raise BiclumInputError(
            f"gene_peak_links: rna_mc ({rna_mc.n_obs} rows) and atac_mc ({atac_mc.n_obs} rows) must have the same "
            "obs names in the same order (matched metacells); build them with matched_metacells(rna, atac).")
    if rna_mc.n_obs < 4:
        raise BiclumInputError(f"gene_peak_links: only {rna_mc.n_obs} metacells; correlations need >= 4 (use more "
                               "metacells, e.g. n_metacells=200).")
    if method not in ("pearson", "spearman"):
        raise BiclumInputError(f"gene_peak_links: method={method!r}; use 'pearson' or 'spearman'.")
    rng = np.random.default_rng(seed)
    Xg = rna_mc.X.toarray() if sp.issparse(rna_mc.X) else np.asarray(rna_mc.X)
    Xp = atac_mc.X.toarray() if sp.issparse(atac_mc.X) else np.asarray(atac_mc.X)
    g_ok = (Xg.std(axis=0) > 0) & (Xg.mean(axis=0) > min_mean)
    p_ok = (Xp.std(axis=0) > 0) & (Xp.mean(axis=0) > min_mean)
    genes = np.asarray(rna_mc.var_names)[g_ok]
    tss = tss_table(annotation, genes)
    if len(tss) == 0:
        raise BiclumInputError("gene_peak_links: no expressed gene of rna_mc is in the annotation; check the genome "
                               "and that rna_mc var names are gene symbols.")
    pk = peak_table(atac_mc)
    pk_ok_idx = np.flatnonzero(p_ok)
    g_col = pd.Index(rna_mc.var_names).get_indexer(tss.index)
    g_chrom, g_pos = tss["chrom"].to_numpy(), tss["tss"].to_numpy()
    p_chrom, p_pos = pk["chrom"].to_numpy()[pk_ok_idx], pk["center"].to_numpy()[pk_ok_idx]

    gi, pj = _by_chrom_pairs(g_chrom, g_pos, p_chrom, p_pos, window)
    if gi.size == 0:
        raise BiclumInputError("gene_peak_links: no gene has a peak within the window; check that peaks and "
                               "annotation use the same genome build, or increase window.")
    dist = np.abs(p_pos[pj] - g_pos[gi])
    edges = np.unique(np.r_[[b for b in distance_bins if b < window], 0]).astype(np.int64)
    bin_labels = [f"{edges[i] // 1000}-{(edges[i + 1] if i + 1 < len(edges) else window) // 1000}kb"
                  for i in range(len(edges))]
    pair_bin = np.searchsorted(edges, dist, side="right") - 1

    # control pool: every usable peak, binned by its own distance to the nearest measured TSS and accessibility
    own = _nearest_tss_distance(p_chrom, p_pos, g_chrom, g_pos)
    pool_bin = np.where(own <= window, np.searchsorted(edges, np.minimum(own, window), side="right") - 1, -1)
    nb = len(edges)
    means = Xp[:, pk_ok_idx].mean(axis=0)
    if n_accessibility_bins and n_accessibility_bins > 1:
        q = np.quantile(means, np.linspace(0, 1, n_accessibility_bins + 1)[1:-1])
        acc_bin = np.searchsorted(q, means, side="right")
        n_acc = n_accessibility_bins
    else:
        acc_bin = np.zeros(means.size, dtype=np.int64)
        n_acc = 1

    n_ctrl = int(n_control)
    req_pair = np.repeat(np.arange(gi.size), n_ctrl)
    req_chrom = g_chrom[gi][req_pair]
    chosen = np.full(req_pair.size, -1, dtype=np.int64)
    todo = np.arange(req_pair.size)
    for level in ("distance+accessibility", "distance"):
        if todo.size == 0:
            break
        pool_key = np.where(pool_bin >= 0, pool_bin * n_acc + (acc_bin if level != "distance" else 0), -1)
        req_key = (pair_bin[req_pair[todo]] * n_acc + (acc_bin[pj[req_pair[todo]]] if level != "distance" else 0))
        valid = np.flatnonzero(pool_key >= 0)
        order = valid[np.argsort(pool_key[valid], kind="stable")]
        sorted_keys = pool_key[order]
        start = np.searchsorted(sorted_keys, req_key, side="left")
        count = np.searchsorted(sorted_keys, req_key, side="right") - start
        has = count > 0
        pending = todo[has]
        st, ct = start[has], count[has]
        for _ in range(30):  # redraw candidates that fall on the gene's own chromosome
            if pending.size == 0:
                break
            cand = order[st + (rng.random(pending.size) * ct).astype(np.int64)]
            good = p_chrom[cand] != req_chrom[pending]
            chosen[pending[good]] = cand[good]
            pending, st, ct = pending[~good], st[~good], ct[~good]
        todo = np.flatnonzero(chosen < 0)
    if todo.size:
        logger.info("gene_peak_links: %d of %d control draws found no peak on another chromosome in their stratum",
                    todo.size, req_pair.size)
    okc = chosen >= 0
    c_pair, c_peak = req_pair[okc], chosen[okc]

    Zg = _zscore_columns(Xg[:, g_col].astype(np.float64), method)
    Zp = _zscore_columns(Xp[:, pk_ok_idx].astype(np.float64), method)
    r_near = _pair_corr(Zg, Zp, gi, pj)
    r_ctrl = _pair_corr(Zg, Zp, gi[c_pair], c_peak)

    # empirical one-sided p-values against the controls of the same distance bin
    pval = np.full(gi.size, np.nan)
    c_bin = pair_bin[c_pair]
    for b in range(nb):
        m = pair_bin == b
        cb = np.sort(r_ctrl[c_bin == b])
        if cb.size == 0 or not m.any():
            continue
        n_ge = cb.size - np.searchsorted(cb, r_near[m], side="left")
        pval[m] = (1 + n_ge) / (1 + cb.size)
    fdr = bh_fdr(pval)

    peak_names = np.asarray(atac_mc.var_names)[pk_ok_idx]
    gene_names = tss.index.to_numpy()
    near = pd.DataFrame({
        "pair_type": "nearby", "gene": gene_names[gi], "peak": peak_names[pj], "distance": dist.astype(np.int64),
        "distance_bin": np.asarray(bin_labels, dtype=object)[pair_bin], "correlation": r_near,
        "pval": pval, "fdr": fdr, "matched_to": -1,
    })
    ctrl = pd.DataFrame({
        "pair_type": "control", "gene": gene_names[gi[c_pair]], "peak": peak_names[c_peak],
        "distance": dist[c_pair].astype(np.int64), "distance_bin": np.asarray(bin_labels, dtype=object)[c_bin],
        "correlation": r_ctrl, "pval": np.nan, "fdr": np.nan, "matched_to": c_pair,
    })
    out = pd.concat([near, ctrl], ignore_index=True)
    out["distance_bin"] = pd.Categorical(out["distance_bin"], categories=bin_labels, ordered=True)
    out = out[np.isfinite(out["correlation"].to_numpy())].reset_index(drop=True)
    logger.info("gene_peak_links: %d nearby pairs (%d genes, %d peaks), %d control pairs, %d metacells",
                len(near), len(np.unique(gi)), len(np.unique(pj)), len(ctrl), rna_mc.n_obs)
    return out


def _mwu_row(x: np.ndarray, y: np.ndarray, label: str) -> dict:
    x, y = x[np.isfinite(x)], y[np.isfinite(y)]
    row = {"subset": label, "n_nearby": x.size, "n_control": y.size,
           "median_nearby": np.median(x) if x.size else np.nan, "median_control": np.median(y) if y.size else np.nan,
           "mean_nearby": x.mean() if x.size else np.nan, "mean_control": y.mean() if y.size else np.nan}
    if x.size and y.size:
        u, p = stats.mannwhitneyu(x, y, alternative="greater", method="asymptotic")
        n1, n2 = x.size, y.size
        z = (float(u) - n1 * n2 / 2) / np.sqrt(n1 * n2 * (n1 + n2 + 1) / 12)
        row.update(median_difference=row["median_nearby"] - row["median_control"], U=float(u),
                   rank_biserial=2 * float(u) / (n1 * n2) - 1, z=z, pval=float(p))
    else:
        row.update(median_difference=np.nan, U=np.nan, rank_biserial=np.nan, z=np.nan, pval=np.nan)
    return row


def links_vs_control(links: pd.DataFrame) -> pd.DataFrame:
    """Compare nearby-pair correlations with the distance-matched control (output of :func:`gene_peak_links`).

    Returns one row for all pairs (``subset="all"``) and one per distance bin, with ``n_nearby``,
    ``n_control``, medians and means, ``median_difference``, the one-sided Mann-Whitney ``U``, its normal
    approximation ``z`` (without tie correction; useful when ``pval`` underflows to 0) and ``pval``
    (nearby > control), and ``rank_biserial`` (= Cliff's delta, in [-1, 1]).
    """
    for c in ("pair_type", "correlation"):
        if c not in links.columns:
            raise BiclumInputError(f"links_vs_control: the table has no column {c!r}; pass gene_peak_links' output.")
    near = links["pair_type"].to_numpy() == "nearby"
    r = links["correlation"].to_numpy(dtype=np.float64)
    rows = [_mwu_row(r[near], r[~near], "all")]
    if "distance_bin" in links.columns:
        bins = links["distance_bin"]
        cats = bins.cat.categories if hasattr(bins, "cat") else pd.unique(bins)
        for b in cats:
            m = (bins == b).to_numpy()
            if m.any():
                rows.append(_mwu_row(r[near & m], r[~near & m], str(b)))
    return pd.DataFrame(rows)
