"""Peak coordinates: parsing peak names / var columns and reconciling chromosome names.

Coordinate convention for peaks: ``start``/``end`` are taken as BED-like, 0-based half-open
``[start, end)`` (as in Cell Ranger ATAC / MACS2 peak files and names such as ``chr1-100-600``).
Treating 1-based names (Signac's GRanges strings) this way shifts them by one base, which does not
matter for kb-scale gene windows.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np
import pandas as pd

from ..errors import BiclumInputError

__all__ = ["parse_peaks", "normalize_chrom"]

# chrN-start-end, chrN:start-end, chrN_start_end (also chrN:start_end). The chromosome part is
# greedy so that scaffold names with underscores (chr1_KI270706v1_random-10-20) keep them.
_PEAK_RE_GREEDY = r"^(?P<chrom>.+)[:_\-](?P<start>\d+)[_\-](?P<end>\d+)$"

_CHROM_ALIASES = {
    "chrom": ("chrom", "chr", "chromosome", "seqnames", "seqname", "Chromosome", "Chrom", "seqid"),
    "start": ("start", "chromStart", "Start", "start_position"),
    "end": ("end", "chromEnd", "End", "end_position"),
}


def normalize_chrom(names: Iterable) -> np.ndarray:
    """Canonical chromosome keys used to match peaks with an annotation.

    Case-insensitive; a leading ``chr`` is dropped (``chr1`` == ``1`` == ``CHR1``); the mitochondrial
    genome (``chrM``, ``M``, ``MT``, ``chrMT``) becomes ``"M"``. Returns an object array of strings.
    """
    s = pd.Series(list(names), dtype=object).astype(str).str.strip().str.upper()
    s = s.str.replace(r"^CHR(?=.)", "", regex=True)
    s = s.where(~s.isin(["M", "MT", "MITO"]), "M")
    return s.to_numpy(dtype=object)


def _find_col(var: pd.DataFrame, key: str):
    for c in _CHROM_ALIASES[key]:
        if c in var.columns:
            return c
    return None


def _parse(obj) -> tuple[pd.DataFrame, np.ndarray]:
    """(DataFrame chrom/start/end indexed like the input, boolean mask of parsed rows)."""
    var = None
    if hasattr(obj, "var") and hasattr(obj, "var_names"):  # AnnData
        var = obj.var
        names = pd.Index(obj.var_names).astype(str)
    elif isinstance(obj, pd.DataFrame):
        var = obj
        names = pd.Index(obj.index).astype(str)
    else:
        names = pd.Index([str(x) for x in obj])

    if var is not None:
        cc, sc, ec = _find_col(var, "chrom"), _find_col(var, "start"), _find_col(var, "end")
        if cc is not None and sc is not None and ec is not None:
            chrom = var[cc].astype(str).to_numpy(dtype=object)
            start = pd.to_numeric(var[sc], errors="coerce").to_numpy(dtype=float)
            end = pd.to_numeric(var[ec], errors="coerce").to_numpy(dtype=float)
            ok = np.isfinite(start) & np.isfinite(end) & (pd.Series(chrom).str.len().to_numpy() > 0)
            ok &= ~pd.isna(var[cc]).to_numpy()
            df = pd.DataFrame({
                "chrom": np.where(ok, chrom, None),
                "start": np.where(ok, np.nan_to_num(start, nan=-1), -1).astype(np.int64),
                "end": np.where(ok, np.nan_to_num(end, nan=-1), -1).astype(np.int64),
            }, index=names)
            return df, ok

    ext = pd.Series(names, dtype=object).str.strip().str.extract(_PEAK_RE_GREEDY)
    ok = ext["chrom"].notna().to_numpy()
    df = pd.DataFrame({
        "chrom": ext["chrom"].where(ok, None).to_numpy(dtype=object),
        "start": pd.to_numeric(ext["start"], errors="coerce").fillna(-1).astype(np.int64).to_numpy(),
        "end": pd.to_numeric(ext["end"], errors="coerce").fillna(-1).astype(np.int64).to_numpy(),
    }, index=names)
    return df, ok


def parse_peaks(names_or_adata, *, strict: bool = True) -> pd.DataFrame:
    """Peak coordinates as a DataFrame with columns ``chrom`` (str), ``start``, ``end`` (int64).

    Parameters
    ----------
    names_or_adata
        An AnnData (cells x peaks), a DataFrame (e.g. ``adata.var``) or an iterable of peak names.
        If the var/DataFrame has columns ``chrom``/``start``/``end`` (aliases: ``seqnames``/``chr``/
        ``chromosome``, ``chromStart``, ``chromEnd``) they are used; otherwise names are parsed from
        ``chrN-start-end``, ``chrN:start-end`` or ``chrN_start_end``.
    strict
        If True (default), any name that cannot be parsed raises :class:`BiclumInputError`. If False,
        unparsed rows get ``chrom=None``, ``start=end=-1``.

    Coordinates are returned as given; biclum treats them as 0-based half-open (BED).
    The index is the peak name.
    """
    df, ok = _parse(names_or_adata)
    if len(df) == 0:
        raise BiclumInputError("parse_peaks: the input has no peaks (0 features); pass a cells x peaks AnnData "
                               "or a non-empty list of peak names.")
    if strict and not ok.all():
        bad = list(df.index[~ok][:5])
        raise BiclumInputError(
            f"parse_peaks: {int((~ok).sum())} of {len(df)} peak names have no coordinates (e.g. {bad}); "
            "name peaks chrN-start-end, chrN:start-end or chrN_start_end, or give var columns chrom/start/end.")
    bad_order = ok & (df["end"].to_numpy() < df["start"].to_numpy())
    if bad_order.any():
        ex = list(df.index[bad_order][:5])
        raise BiclumInputError(
            f"parse_peaks: {int(bad_order.sum())} peaks end before they start (e.g. {ex}); "
            "peak coordinates must be start <= end; fix the names or the var chrom/start/end columns.")
    return df
