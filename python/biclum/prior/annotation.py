"""Gene annotation readers: GTF, GFF3, BED6 and gene tables -> one row per gene symbol.

Every reader returns a DataFrame with columns ``gene_name, chrom, start, end, strand`` (plus ``gene_id``
when the source has one) in **1-based, inclusive** coordinates, as Ensembl / GTF / GFF3 use. BED input
(0-based, half-open) is converted: ``start + 1``, ``end`` unchanged. ``strand`` is ``"+"`` or ``"-"``.

Duplicated gene symbols (e.g. 187 in Ensembl mm10, 1,715 rows in hg38) are resolved by keeping the
**longest** record (ties: the first in file order). Duplicates are mostly extra copies of a symbol on
alternative loci, pseudoautosomal copies or short ncRNA fragments, and the longest copy is almost
always the canonical gene; keeping one row per symbol gives unique var names downstream.
Pass ``duplicates="first"`` to keep the first row instead, or ``"keep"`` to keep them all.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Union

import numpy as np
import pandas as pd

from .._logging import logger
from ..errors import BiclumInputError

__all__ = ["read_annotation"]

AnnotationLike = Union[str, os.PathLike, pd.DataFrame]

_COLS = ["gene_name", "chrom", "start", "end", "strand"]
_ALIASES = {
    "gene_name": ("gene_name", "symbol", "gene_symbol", "gene", "name", "Gene name", "gene_names", "Name"),
    "chrom": ("chrom", "chr", "chromosome", "seqnames", "seqname", "seqid", "Chromosome/scaffold name",
              "Chromosome", "chromosome_name"),
    "start": ("start", "Gene start (bp)", "start_position", "txStart", "chromStart", "Start"),
    "end": ("end", "Gene end (bp)", "end_position", "txEnd", "chromEnd", "End"),
    "strand": ("strand", "Strand"),
    "gene_id": ("gene_id", "Gene stable ID", "ensembl_gene_id", "entrez"),
}

_GENE_TYPES = {"gene", "ncrna_gene", "pseudogene", "protein_coding_gene", "rrna_gene", "trna_gene"}
_cache: dict = {}


def _fmt_from_path(path: str) -> str:
    name = path.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    elif name.endswith(".bgz"):
        name = name[:-4]
    if name.endswith(".gtf"):
        return "gtf"
    if name.endswith(".gff3") or name.endswith(".gff"):
        return "gff3"
    if name.endswith(".bed") or name.endswith(".bed6"):
        return "bed"
    return "table"


def _strand(values: pd.Series, what: str) -> pd.Series:
    s = values.astype(str).str.strip().map({"+": "+", "-": "-", "1": "+", "+1": "+", "-1": "-",
                                            "1.0": "+", "-1.0": "-"})
    return s


def _read_gtf_like(path: str, fmt: str) -> pd.DataFrame:
    raw = pd.read_csv(path, sep="\t", comment="#", header=None, usecols=[0, 2, 3, 4, 6, 8],
                      names=["chrom", "type", "start", "end", "strand", "attr"],
                      dtype={0: str, 2: str, 3: np.int64, 4: np.int64, 6: str, 8: str},
                      low_memory=False)
    if raw.empty:
        raise BiclumInputError(f"read_annotation: {path!r} has no records; give a GTF/GFF3 with gene records.")
    genes, aggregate = _gene_records(raw, "type")
    if genes.empty:
        raise BiclumInputError(f"read_annotation: {path!r} ({fmt.upper()}) has no gene, transcript or exon "
                               "records; give an annotation with gene records.")
    attr = genes["attr"].astype(str)
    if fmt == "gtf":
        name = attr.str.extract(r'gene_name "([^"]+)"', expand=False)
        gid = attr.str.extract(r'gene_id "([^"]+)"', expand=False)
    else:
        name = attr.str.extract(r"(?:^|;)\s*gene_name=([^;]+)", expand=False)
        name = name.fillna(attr.str.extract(r"(?:^|;)\s*Name=([^;]+)", expand=False))
        gid = attr.str.extract(r"(?:^|;)\s*gene_id=([^;]+)", expand=False)
        gid = gid.fillna(attr.str.extract(r"(?:^|;)\s*ID=(?:gene:)?([^;]+)", expand=False))
    name = name.fillna(gid)
    df = pd.DataFrame({"gene_name": name.to_numpy(), "chrom": genes["chrom"].to_numpy(),
                       "start": genes["start"].to_numpy(), "end": genes["end"].to_numpy(),
                       "strand": genes["strand"].to_numpy(), "gene_id": gid.to_numpy()})
    return _collapse_to_genes(df) if aggregate else df


def _gene_records(df: pd.DataFrame, type_col: str) -> tuple[pd.DataFrame, bool]:
    """The gene records of an annotation with a feature-type column (GTF/GFF3 ``type``, a Signac/EnsDb GRanges'
    ``type``): the ``gene`` rows if there are any, else the transcript (or exon) rows, which
    :func:`_collapse_to_genes` must then merge into gene spans (second value True); no rows when the column
    names none of these."""
    t = df[type_col].astype(str).str.lower()
    genes = df[t.isin(_GENE_TYPES) | t.str.endswith("_gene")]
    if not genes.empty:
        return genes, False
    for typ in ("transcript", "mrna", "exon"):
        if (t == typ).any():
            return df[t == typ], True  # Signac's exon/cds/utr/gap rows: their exons
    return df.iloc[:0], False


def _collapse_to_genes(df: pd.DataFrame) -> pd.DataFrame:
    """One span per gene and chromosome: rows of a feature-level annotation (transcripts, exons, UTRs) merged per
    (gene_name, chrom, strand) into the smallest start and largest end; a name on several chromosomes keeps one
    row per chromosome (the duplicate rule of :func:`_tidy` then chooses)."""
    extra = {"gene_id": ("gene_id", "first")} if "gene_id" in df.columns else {}
    return (df.groupby(["gene_name", "chrom", "strand"], sort=False, dropna=True, observed=True)
              .agg(start=("start", "min"), end=("end", "max"), **extra).reset_index())


def _read_bed(path: str) -> pd.DataFrame:
    raw = pd.read_csv(path, sep="\t", header=None, comment="#", low_memory=False)
    if raw.shape[1] > 0 and str(raw.iloc[0, 0]).startswith(("track", "browser")):
        raw = raw.iloc[1:]
    if raw.shape[1] < 6:
        raise BiclumInputError(
            f"read_annotation: BED file {path!r} has {raw.shape[1]} columns, so no strand column; gene "
            "windows need the strand. Give a BED6 (chrom, start, end, name, score, strand), a GTF/GFF3, "
            "or a table with gene_name, chrom, start, end, strand.")
    return pd.DataFrame({"gene_name": raw[3].astype(str).to_numpy(), "chrom": raw[0].astype(str).to_numpy(),
                         "start": pd.to_numeric(raw[1]).to_numpy() + 1,  # BED 0-based -> 1-based inclusive
                         "end": pd.to_numeric(raw[2]).to_numpy(), "strand": raw[5].to_numpy()})


def _column(df: pd.DataFrame, aliases) -> Optional[str]:
    col = next((c for c in aliases if c in df.columns), None)
    if col is None:
        lower = {str(c).lower(): c for c in df.columns}
        col = next((lower[a.lower()] for a in aliases if a.lower() in lower), None)
    return col


def _from_table(df: pd.DataFrame, what: str) -> pd.DataFrame:
    """The columns of a table (or of a GRanges as R's ``as.data.frame`` gives it) by their aliases; a table
    with a feature-type column ``type`` (Signac/EnsDb: exon, cds, utr, gap rows) keeps its gene records or
    merges its transcripts/exons into gene spans, as the GTF reader does."""
    cols = {key: _column(df, aliases) for key, aliases in _ALIASES.items()}
    if cols["gene_name"] is None:
        cols["gene_name"] = cols["gene_id"]  # e.g. a GRanges with gene_id only
    for key in ("gene_name", "chrom", "start", "end", "strand"):
        if cols[key] is not None:
            continue
        if key == "strand":
            raise BiclumInputError(
                f"read_annotation: {what} has no strand column (columns: {list(df.columns)[:10]}); "
                "gene windows extend upstream of the TSS, which needs the strand. Add a 'strand' column "
                "(+/-) or use a GTF/GFF3/BED6 annotation.")
        raise BiclumInputError(
            f"read_annotation: {what} has no {key!r} column (columns: {list(df.columns)[:10]}); "
            "an annotation table needs columns gene_name, chrom, start, end, strand.")
    out = pd.DataFrame({key: df[col].to_numpy() for key, col in cols.items() if col is not None})
    type_col = _column(df, ("type",))
    if type_col is None:
        return out
    rows, aggregate = _gene_records(out.assign(_type=df[type_col].to_numpy()), "_type")
    if rows.empty:  # a "type" column of something else (e.g. biotypes): the rows are genes
        return out
    rows = rows.drop(columns="_type")
    return _collapse_to_genes(rows) if aggregate else rows


def _tidy(df: pd.DataFrame, what: str, duplicates: str) -> pd.DataFrame:
    df = df.copy()
    df["strand"] = _strand(df["strand"], what)
    df["gene_name"] = df["gene_name"].astype(object)
    bad_name = df["gene_name"].isna() | (df["gene_name"].astype(str).str.strip().isin(["", "nan", "NA", "None"]))
    df = df[~bad_name]
    df["gene_name"] = df["gene_name"].astype(str).str.strip()
    df["chrom"] = df["chrom"].astype(str)
    df["start"] = pd.to_numeric(df["start"], errors="coerce")
    df["end"] = pd.to_numeric(df["end"], errors="coerce")
    ok = df["start"].notna() & df["end"].notna()
    df = df[ok]
    if df.empty:
        raise BiclumInputError(f"read_annotation: {what} has no gene rows with a name and numeric start/end; "
                               "check the file format and columns.")
    nostrand = df["strand"].isna()
    if nostrand.all():
        raise BiclumInputError(f"read_annotation: {what} has no usable strand values (expected +/- or 1/-1); "
                               "give stranded gene records.")
    if nostrand.any():
        logger.info("read_annotation: dropped %d genes of %s without a +/- strand", int(nostrand.sum()), what)
        df = df[~nostrand]
    df["start"] = df["start"].astype(np.int64)
    df["end"] = df["end"].astype(np.int64)
    swap = df["end"] < df["start"]
    if swap.any():
        s = df.loc[swap, "start"].to_numpy()
        df.loc[swap, "start"] = df.loc[swap, "end"].to_numpy()
        df.loc[swap, "end"] = s
    df = df.reset_index(drop=True)
    if duplicates not in ("longest", "first", "keep"):
        raise BiclumInputError(f"read_annotation: duplicates={duplicates!r} is not one of 'longest', 'first', "
                               "'keep'.")
    n_dup = int(df["gene_name"].duplicated().sum())
    if n_dup and duplicates != "keep":
        if duplicates == "longest":
            length = (df["end"] - df["start"]).to_numpy()
            order = np.lexsort((np.arange(len(df)), -length))  # longest first, ties by file order
            keep = ~df["gene_name"].iloc[order].duplicated().to_numpy()
            idx = np.sort(order[keep])
        else:
            idx = np.flatnonzero(~df["gene_name"].duplicated().to_numpy())
        df = df.iloc[idx].reset_index(drop=True)
        logger.debug("read_annotation: %d duplicated symbols in %s resolved (%s)", n_dup, what, duplicates)
    cols = _COLS + (["gene_id"] if "gene_id" in df.columns else [])
    return df[cols]


def read_annotation(path_or_df: AnnotationLike, *, duplicates: str = "longest") -> pd.DataFrame:
    """Read a gene annotation into a DataFrame ``gene_name, chrom, start, end, strand`` (+ ``gene_id``).

    Parameters
    ----------
    path_or_df
        * a GTF (``.gtf[.gz]``): ``gene`` records, symbol from ``gene_name`` (else ``gene_id``);
        * a GFF3 (``.gff3[.gz]``, ``.gff``): ``gene`` / ``ncRNA_gene`` / ``pseudogene`` records, symbol
          from ``gene_name=`` or ``Name=`` (else ``ID``). Files without gene records are collapsed from
          transcript (or exon) records per symbol;
        * a BED6 (``.bed[.gz]``): chrom, start, end, name, score, strand; 0-based half-open, converted;
        * any other path: a tab-separated table (``.csv``: comma) with a header holding ``gene_name``,
          ``chrom``, ``start``, ``end``, ``strand`` (common aliases accepted: ``symbol``, ``seqnames``,
          ...), 1-based inclusive, e.g. ``../shared/data/annotation/mm10_genes.tsv.gz``;
        * a pandas DataFrame with those columns (1-based inclusive).
    duplicates
        Rule for symbols that occur several times: ``"longest"`` (default, keep the longest record,
        ties by file order), ``"first"`` or ``"keep"``.

    Returns
    -------
    DataFrame with 1-based inclusive coordinates; strand is ``"+"``/``"-"`` (``1``/``-1`` converted);
    rows without a symbol or strand are dropped. A missing strand column raises
    :class:`~biclum.errors.BiclumInputError`.
    """
    if isinstance(path_or_df, pd.DataFrame):
        return _tidy(_from_table(path_or_df, "the annotation DataFrame"), "the annotation DataFrame", duplicates)
    if not isinstance(path_or_df, (str, os.PathLike)):
        raise BiclumInputError(
            f"read_annotation: got {type(path_or_df).__name__}; give a path (GTF, GFF3, BED6 or a .tsv table) "
            "or a DataFrame with columns gene_name, chrom, start, end, strand.")
    path = os.fspath(path_or_df)
    if not Path(path).is_file():
        raise BiclumInputError(f"read_annotation: annotation file {path!r} does not exist; check the path.")
    st = os.stat(path)
    key = (os.path.abspath(path), st.st_mtime_ns, st.st_size, duplicates)
    if key in _cache:
        return _cache[key].copy()
    fmt = _fmt_from_path(path)
    what = f"annotation {Path(path).name!r}"
    if fmt in ("gtf", "gff3"):
        df = _read_gtf_like(path, fmt)
    elif fmt == "bed":
        df = _read_bed(path)
    else:
        sep = "," if path.lower().replace(".gz", "").endswith(".csv") else "\t"
        table = pd.read_csv(path, sep=sep, low_memory=False)
        if table.shape[1] == 1:
            table = pd.read_csv(path, sep=r"\s+", engine="python")
        df = _from_table(table, what)
    out = _tidy(df, what, duplicates)
    if len(_cache) > 8:
        _cache.clear()
    _cache[key] = out
    logger.debug("read_annotation: %d genes from %s", len(out), what)
    return out.copy()
