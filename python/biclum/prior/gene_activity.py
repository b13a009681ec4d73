"""ATAC peaks -> gene activity (cells x genes), and the genome-build check.

Overlaps are computed per chromosome with sorted arrays and ``np.searchsorted`` (no Python loop over
peaks, genes or cells); they give a sparse peaks x genes weight matrix ``W`` and the result is
``X @ W``.

Coordinates: annotations are 1-based inclusive (Ensembl/GTF); peaks are 0-based half-open (BED).
Internally everything is converted to 0-based half-open.
"""
from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .._logging import logger
from ..preprocessing import as_csr32
from ..errors import BiclumInputError, BiclumWarning
from .annotation import AnnotationLike, read_annotation
from .peaks import _parse, normalize_chrom

__all__ = ["gene_activity", "genome_check", "MIN_TSS_FRACTION"]

#: Default ``min_tss_fraction``: below this fraction of peaks within 1 kb of an annotated TSS the genome
#: check warns. Peaks called on the right build typically give 10-40% (SNARE-seq's sparse region set:
#: 9.7%; 10x peak sets: 20-40%); peaks from another species or build give about the random expectation
#: of a few percent (mm10 SNARE-seq regions with an hg38 table: ~3%). The check also warns when peaks are
#: not enriched near TSSs compared with the same peaks shifted by +-50 kb (see :func:`genome_check`),
#: which catches wide bins (e.g. 5-kb tiles) whose random expectation is high.
MIN_TSS_FRACTION = 0.05
#: Minimum enrichment of the TSS fraction over the +-50 kb shifted peaks (wrong build: ~1).
MIN_TSS_ENRICHMENT = 1.5

_MODES = ("gene_body", "promoter", "distance_weighted")
_SYMBOL_RE = r"^[A-Za-z][A-Za-z0-9._\-@/]*$"
_BUILD_RE = re.compile(r"(hg19|hg38|grch37|grch38|t2t|chm13|mm9|mm10|mm39|grcm38|grcm39|dm6|danrer\d+|rn\d+)",
                       re.I)


# --------------------------------------------------------------------------- helpers
def _annotation_label(annotation) -> str:
    if isinstance(annotation, pd.DataFrame):
        return "<DataFrame>"
    if isinstance(annotation, (str, os.PathLike)):
        return Path(os.fspath(annotation)).name
    return type(annotation).__name__


def _peak_arrays(peaks) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(chrom keys, start, end, ok mask) in 0-based half-open coordinates; zero-width peaks get 1 bp."""
    if isinstance(peaks, pd.DataFrame) and {"chrom", "start", "end"} <= set(peaks.columns):
        df = peaks
        ok = df["chrom"].notna().to_numpy() & (df["start"].to_numpy() >= 0)
    else:
        df, ok = _parse(peaks)
    key = normalize_chrom(df["chrom"].fillna("").to_numpy())
    start = df["start"].to_numpy(dtype=np.int64)
    end = np.maximum(df["end"].to_numpy(dtype=np.int64), start + 1)
    return key, start, end, np.asarray(ok, dtype=bool)


def _overlap_pairs(p_key, p_start, p_end, w_key, w_start, w_end, pad: int = 0):
    """All (peak, window) pairs with the peak within ``pad`` bp of the window (pad=0: overlap).

    Half-open intervals; returns peak indices, window indices and the gap in bp (0 when overlapping,
    else the number of bases from the window to the nearest peak base, >= 1). Vectorised per chromosome.
    """
    P, Wn, G = [], [], []
    for chrom in np.intersect1d(pd.unique(p_key), pd.unique(w_key)):
        pi = np.flatnonzero(p_key == chrom)
        wi = np.flatnonzero(w_key == chrom)
        if len(pi) == 0 or len(wi) == 0:
            continue
        order = np.argsort(p_start[pi], kind="stable")
        pi = pi[order]
        ps, pe = p_start[pi], p_end[pi]
        maxw = int((pe - ps).max())
        ws0, we0 = w_start[wi], w_end[wi]
        ws, we = ws0 - pad, we0 + pad
        hi = np.searchsorted(ps, we, side="left")            # peaks with ps < we
        lo = np.searchsorted(ps, ws - maxw, side="right")     # peaks with ps > ws - maxw (others end <= ws)
        counts = np.maximum(hi - lo, 0)
        total = int(counts.sum())
        if total == 0:
            continue
        rep = np.repeat(np.arange(len(wi)), counts)
        offs = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
        cand = lo[rep] + offs
        keep = pe[cand] > ws[rep]
        cand, rep = cand[keep], rep[keep]
        gap = np.maximum(np.maximum(ws0[rep] - pe[cand] + 1, ps[cand] - we0[rep] + 1), 0)
        P.append(pi[cand])
        Wn.append(wi[rep])
        G.append(gap)
    if not P:
        e = np.zeros(0, dtype=np.int64)
        return e, e, e
    return np.concatenate(P), np.concatenate(Wn), np.concatenate(G)


def _windows(ann: pd.DataFrame, mode: str, upstream: int, downstream: int):
    """0-based half-open gene windows, strand-aware."""
    s0 = ann["start"].to_numpy(dtype=np.int64) - 1
    e0 = ann["end"].to_numpy(dtype=np.int64)
    plus = ann["strand"].to_numpy() == "+"
    if mode == "promoter":
        tss = np.where(plus, s0, e0 - 1)
        ws = np.where(plus, tss - upstream, tss - downstream)
        we = np.where(plus, tss + 1 + downstream, tss + 1 + upstream)
    else:
        ws = np.where(plus, s0 - upstream, s0 - downstream)
        we = np.where(plus, e0 + downstream, e0 + upstream)
    ws = np.maximum(ws, 0)
    we = np.maximum(we, ws + 1)
    return ws, we


def _tss0(ann: pd.DataFrame) -> np.ndarray:
    s0 = ann["start"].to_numpy(dtype=np.int64) - 1
    e0 = ann["end"].to_numpy(dtype=np.int64)
    return np.where(ann["strand"].to_numpy() == "+", s0, e0 - 1)


def _near_tss_fraction(p_key, p_start, p_end, t_key, t_pos, window: int) -> float:
    """Fraction of peaks with a TSS within ``window`` bp (vectorised nearest-TSS search)."""
    near = np.zeros(len(p_key), dtype=bool)
    for chrom in np.intersect1d(pd.unique(p_key), pd.unique(t_key)):
        pi = np.flatnonzero(p_key == chrom)
        t = np.sort(t_pos[t_key == chrom])
        ps, pe = p_start[pi], p_end[pi]
        j = np.searchsorted(t, ps, side="left")              # first TSS >= ps
        right = np.where(j < len(t), t[np.minimum(j, len(t) - 1)], np.iinfo(np.int64).max // 2)
        left = np.where(j > 0, t[np.maximum(j - 1, 0)], np.iinfo(np.int64).min // 2)
        d_right = np.where(right < pe, 0, right - (pe - 1))
        d_left = ps - left
        near[pi] = np.minimum(d_right, d_left) <= window
    return float(near.mean()) if len(near) else 0.0


def _autosome_max(keys) -> int:
    nums = [int(k) for k in pd.unique(pd.Series(keys)) if isinstance(k, str) and k.isdigit()]
    return max(nums) if nums else 0


def _mismatch_hint(p_key, t_key, label: str) -> str:
    pk, tk = set(pd.unique(p_key)) - {""}, set(pd.unique(t_key))
    shared = pk & tk
    if not shared:
        return (f"no peak chromosome ({sorted(pk)[:4]}) is in the annotation ({sorted(tk)[:4]}): "
                "different naming or a different organism?")
    pmax, tmax = _autosome_max(list(pk)), _autosome_max(list(tk))
    n_auto = sum(1 for k in pk if isinstance(k, str) and k.isdigit())
    build = _BUILD_RE.search(label)
    table = (("an " if build.group(1)[0].lower() in "hmr" else "a ") + f"{build.group(1)} table") if build \
        else "this table"
    if n_auto >= 15 and pmax == 19 and tmax >= 22:
        return f"peaks only on chr1-19 while the annotation has chr1-{tmax}: mouse (e.g. mm10) peaks with {table}?"
    if pmax >= 20 and tmax == 19:
        return f"peaks on chr1-{pmax} while the annotation stops at chr19: human peaks with {table}?"
    if build:
        other = {"hg19": "hg38", "grch37": "GRCh38", "hg38": "hg19", "grch38": "GRCh37", "mm10": "mm9 or mm39",
                 "grcm38": "mm9 or GRCm39", "mm9": "mm10", "mm39": "mm10", "grcm39": "mm10"}.get(
                     build.group(1).lower(), "another build")
        return f"{other} peaks with {table}, or a table of another species?"
    return "hg19 vs hg38, mm9/mm10/mm39, or another species?"


def genome_check(peaks, annotation: AnnotationLike, *, window: int = 1000,
                 min_fraction: float = MIN_TSS_FRACTION, min_enrichment: float = MIN_TSS_ENRICHMENT,
                 warn: bool = True) -> float:
    """Fraction of peaks within ``window`` bp (default 1 kb) of an annotated TSS; warns on a likely mismatch.

    Parameters
    ----------
    peaks
        AnnData (cells x peaks), DataFrame with chrom/start/end, or peak names (see :func:`parse_peaks`).
    annotation
        Path or DataFrame accepted by :func:`read_annotation`.
    min_fraction
        Warn (:class:`~biclum.errors.BiclumWarning`) when the fraction is below this
        (default :data:`MIN_TSS_FRACTION` = 0.05).
    min_enrichment
        Also warn when the fraction is less than ``min_enrichment`` times the fraction for the same
        peaks shifted by +50 kb and -50 kb (the random expectation for this peak set; peaks on the wrong
        build are not enriched). Only used with >= 200 peaks. Set 0 to disable.

    Returns
    -------
    The fraction (0-1). The warning names the likely mismatch, e.g. mouse peaks with a human table.
    """
    ann = read_annotation(annotation)
    p_key, p_start, p_end, ok = _peak_arrays(peaks)
    if not ok.any():
        raise BiclumInputError("genome_check: the peaks have no coordinates; name peaks chrN-start-end or give "
                               "var columns chrom/start/end.")
    return _genome_check(p_key[ok], p_start[ok], p_end[ok], ann, _annotation_label(annotation), window=window,
                         min_fraction=min_fraction, min_enrichment=min_enrichment, warn=warn, stacklevel=3)


def _genome_check(p_key, p_start, p_end, ann, label, *, window=1000, min_fraction=MIN_TSS_FRACTION,
                  min_enrichment=MIN_TSS_ENRICHMENT, warn=True, stacklevel=3) -> float:
    t_key = normalize_chrom(ann["chrom"].to_numpy())
    t_pos = _tss0(ann)
    frac = _near_tss_fraction(p_key, p_start, p_end, t_key, t_pos, window)
    null = np.nan
    if len(p_key) >= 200 and min_enrichment > 0:
        null = 0.5 * (_near_tss_fraction(p_key, p_start + 50_000, p_end + 50_000, t_key, t_pos, window)
                      + _near_tss_fraction(p_key, np.maximum(p_start - 50_000, 0),
                                           np.maximum(p_end - 50_000, 1), t_key, t_pos, window))
    low = frac < min_fraction
    flat = bool(np.isfinite(null) and null > 0 and frac < min_enrichment * null)
    logger.debug("genome_check: %.4f of %d peaks within %d bp of a TSS (shifted: %s)", frac, len(p_key),
                 window, null)
    if warn and (low or flat):
        why = (f"only {100 * frac:.1f}% of peaks within {window / 1000:g} kb of a TSS"
               + (f", expected >= {100 * min_fraction:.0f}%" if low else "")
               + (f"; {100 * null:.1f}% for the same peaks shifted by 50 kb" if np.isfinite(null) else "")
               + (", i.e. no enrichment at TSSs" if flat else ""))
        warnings.warn(
            f"genome check: peaks look like a different genome build than the annotation {label!r} ({why}; "
            f"{_mismatch_hint(p_key, t_key, label)}). Gene activity will be unreliable; give the annotation "
            "of the genome the peaks were called on (or genome_check=False to skip this check).",
            BiclumWarning, stacklevel=stacklevel)
    return frac


# --------------------------------------------------------------------------- gene activity
def _looks_gene_level(names: pd.Index, ann: Optional[pd.DataFrame]) -> bool:
    names = pd.Index(names).astype(str)
    if ann is not None:  # with an annotation, gene-level means: most names are its genes
        return bool(names.str.upper().isin(ann["gene_name"].astype(str).str.upper()).mean() >= 0.5)
    return float(pd.Series(names).str.match(_SYMBOL_RE).mean()) >= 0.9


def _to_csr32(X) -> sp.csr_matrix:
    if hasattr(X, "to_memory"):
        X = X.to_memory()
    if sp.issparse(X):
        return sp.csr_matrix(X, dtype=np.float32, copy=True)
    return sp.csr_matrix(np.asarray(X, dtype=np.float32))


def _passthrough(atac, reason: str):
    out = atac.copy() if not getattr(atac, "isbacked", False) else atac.to_memory()
    out.X = _to_csr32(atac.X)
    out.uns = dict(out.uns)
    out.uns["gene_activity"] = {"gene_level": True, "passthrough": True, "reason": reason}
    logger.info("gene_activity: input is already gene-level (%d genes); passed through", out.n_vars)
    return out


def gene_activity(atac, annotation: Optional[AnnotationLike], *, upstream: int = 2000, downstream: int = 0,
                  mode: str = "gene_body", decay: float = 5000.0, max_distance: int = 100_000,
                  genome_check: bool = True, min_tss_fraction: float = MIN_TSS_FRACTION,
                  keep_empty: bool = False, gene_level: Optional[bool] = None,
                  duplicates: str = "longest"):
    """Gene activity (cells x genes) from ATAC peak counts (cells x peaks).

    Parameters
    ----------
    atac
        AnnData, cells x peaks. Peaks come from var columns ``chrom``/``start``/``end`` or names
        ``chrN-start-end``, ``chrN:start-end``, ``chrN_start_end`` (0-based half-open, BED-like).
        Chromosome names are reconciled with the annotation (``chr1`` == ``1``; ``chrM`` == ``MT`` ==
        ``chrMT``; case-insensitive). Features without coordinates are dropped with a warning.
        Not modified.
    annotation
        Path (GTF, GFF3, BED6 or a table with gene_name, chrom, start, end, strand, e.g.
        ``mm10_genes.tsv.gz``) or a DataFrame, read by :func:`read_annotation` (duplicated symbols:
        longest record kept, see ``duplicates``). May be None only for gene-level input.
    upstream, downstream
        Window extension in bp, strand-aware. ``"gene_body"`` (default, as Signac's GeneActivity):
        gene body plus ``upstream`` bp before the TSS and ``downstream`` bp after the gene end.
        ``"promoter"``: the TSS base plus ``upstream`` bp upstream and ``downstream`` bp downstream
        (e.g. ``upstream=2000, downstream=500``).
    mode
        ``"gene_body"`` / ``"promoter"``: count of reads in peaks overlapping the window (weight 1).
        ``"distance_weighted"`` (ArchR-like gene scores): every peak within ``max_distance`` bp of the
        gene-body window gets weight ``exp(-d / decay)``, ``d`` = bp from the window (0 inside the gene
        body or its upstream extension). Unlike ArchR there is no ``+exp(-1)`` floor, no gene-length
        scaling and no stop at neighbouring genes.
    decay, max_distance
        Distance-weighting parameters (``"distance_weighted"`` only).
    genome_check
        Run :func:`genome_check` first (warns on a likely genome-build mismatch).
    min_tss_fraction
        Warning threshold of the genome check (default 0.05 = 5% of peaks within 1 kb of a TSS;
        correct builds give ~10-40%, a wrong build or species ~3%).
    keep_empty
        By default (False) **only genes with at least one peak in their window are kept**; True keeps
        every annotated gene (all-zero columns for genes without peaks).
    gene_level
        None (auto): input whose var names are not peak coordinates but look like gene symbols (e.g. a
        Signac GeneActivity or ArchR GeneScoreMatrix) is passed through unchanged (a copy with X as CSR
        float32). True forces the pass-through, False forces peak parsing.
    duplicates
        Duplicated-symbol rule passed to :func:`read_annotation`.

    Returns
    -------
    AnnData cells x genes: X CSR float32 (``X_peaks @ W``); obs copied from the input; var indexed by
    gene symbol with ``chrom, start, end, strand`` (annotation, 1-based inclusive) and ``n_peaks``;
    ``uns["gene_activity"]`` holds the parameters and counts.

    Raises
    ------
    BiclumInputError
        Peaks without coordinates (and not gene-level), annotation without strand, no peak overlapping
        any gene, bad parameters.
    """
    import anndata as ad

    if not hasattr(atac, "var_names") or not hasattr(atac, "X"):
        raise BiclumInputError(f"gene_activity: atac is a {type(atac).__name__}, not an AnnData; give a cells x "
                               "peaks AnnData.")
    if mode not in _MODES:
        raise BiclumInputError(f"gene_activity: mode={mode!r} is not one of {_MODES}.")
    for nm, v in (("upstream", upstream), ("downstream", downstream), ("max_distance", max_distance)):
        if v is None or int(v) != v or v < 0:
            raise BiclumInputError(f"gene_activity: {nm}={v!r} must be a non-negative integer (bp).")
    if mode == "distance_weighted" and not (decay and decay > 0):
        raise BiclumInputError(f"gene_activity: decay={decay!r} must be > 0 bp for mode='distance_weighted'.")
    if atac.n_vars == 0 or atac.n_obs == 0:
        raise BiclumInputError(f"gene_activity: atac has shape {atac.shape}; it needs cells and peaks.")

    if gene_level is True:
        return _passthrough(atac, "gene_level=True")
    df, ok = _parse(atac)
    parsed = ok.mean() >= 0.5
    ann = None
    if not parsed:
        if gene_level is None:
            ann = read_annotation(annotation, duplicates=duplicates) if annotation is not None else None
            if _looks_gene_level(atac.var_names, ann):
                return _passthrough(atac, "var names are gene symbols, not peak coordinates")
        raise BiclumInputError(
            f"gene_activity: atac has no peak coordinates ({int(ok.sum())} of {atac.n_vars} var names parse, "
            f"e.g. {list(atac.var_names[:3])}); name peaks chrN-start-end, chrN:start-end or chrN_start_end, "
            "give var columns chrom/start/end, or pass gene_level=True for a gene-level matrix.")
    if annotation is None:
        raise BiclumInputError("gene_activity: annotation is None but atac holds peaks; give a gene annotation "
                               "(GTF/GFF3/BED6/.tsv table or DataFrame) of the genome the peaks were called on.")
    if not ok.all():
        warnings.warn(f"gene_activity: {int((~ok).sum())} of {atac.n_vars} features of atac have no coordinates "
                      f"(e.g. {list(atac.var_names[~ok][:3])}) and are ignored.", BiclumWarning, stacklevel=2)
    if ann is None:
        ann = read_annotation(annotation, duplicates=duplicates)
    label = _annotation_label(annotation)

    p_key = normalize_chrom(df["chrom"].fillna("").to_numpy())
    p_start = df["start"].to_numpy(dtype=np.int64)
    p_end = np.maximum(df["end"].to_numpy(dtype=np.int64), p_start + 1)
    p_key = np.where(ok, p_key, "")
    t_key = normalize_chrom(ann["chrom"].to_numpy())

    tss_frac = np.nan
    if genome_check:
        tss_frac = _genome_check(p_key[ok], p_start[ok], p_end[ok], ann, label, min_fraction=min_tss_fraction,
                                 stacklevel=3)

    ws, we = _windows(ann, "gene_body" if mode == "distance_weighted" else mode, int(upstream), int(downstream))
    pad = int(max_distance) if mode == "distance_weighted" else 0
    pi, gi, gap = _overlap_pairs(p_key, p_start, p_end, t_key, ws, we, pad=pad)
    if mode == "distance_weighted":
        w = np.exp(-gap.astype(np.float64) / float(decay)).astype(np.float32)
    else:
        w = np.ones(len(pi), dtype=np.float32)
    if len(pi) == 0:
        shared = sorted(set(pd.unique(p_key[ok])) & set(pd.unique(t_key)))
        raise BiclumInputError(
            f"gene_activity: no peak of atac overlaps any gene window of annotation {label!r} "
            f"(mode={mode!r}, upstream={upstream}, downstream={downstream}; shared chromosomes: "
            f"{shared[:5] if shared else 'none'}, peaks on {sorted(set(pd.unique(df['chrom'][ok])))[:4]}, "
            f"annotation on {list(pd.unique(ann['chrom']))[:4]}); check the genome build and chromosome names "
            "of the peaks and the annotation.")
    W = sp.csr_matrix((w, (pi, gi)), shape=(atac.n_vars, len(ann)), dtype=np.float32)
    n_peaks = np.bincount(gi, minlength=len(ann))
    keep = np.arange(len(ann)) if keep_empty else np.flatnonzero(n_peaks > 0)
    if not keep_empty:
        W = W.tocsc()[:, keep].tocsr()

    X = atac.X.to_memory() if hasattr(atac.X, "to_memory") else atac.X
    G = (as_csr32(X) @ W).tocsr().astype(np.float32, copy=False)  # X is only read: no copy when CSR float32
    G.sort_indices()

    var = ann.iloc[keep][[c for c in ("gene_name", "chrom", "start", "end", "strand", "gene_id")
                          if c in ann.columns]].copy()
    var["n_peaks"] = n_peaks[keep].astype(np.int64)
    var.index = pd.Index(var.pop("gene_name").astype(str).to_numpy(), name=None)
    if not var.index.is_unique:
        var.index = pd.Index(ad.utils.make_index_unique(var.index))
    params = {
        "mode": mode, "upstream": int(upstream), "downstream": int(downstream), "decay": float(decay),
        "max_distance": int(max_distance), "keep_empty": bool(keep_empty), "duplicates": duplicates,
        "annotation": label, "gene_level": False, "n_peaks": int(atac.n_vars),
        "n_peaks_with_coordinates": int(ok.sum()), "n_peaks_used": int(len(np.unique(pi))),
        "n_genes": int(len(keep)), "tss_fraction": float(tss_frac),
        "coordinates": "peaks 0-based half-open (BED); annotation 1-based inclusive",
    }
    out = ad.AnnData(X=G, obs=atac.obs.copy(), var=var)
    out.uns["gene_activity"] = params
    logger.info("gene_activity: %d cells x %d genes from %d peaks (%s, %d peaks used)", out.n_obs, out.n_vars,
                atac.n_vars, mode, params["n_peaks_used"])
    return out
