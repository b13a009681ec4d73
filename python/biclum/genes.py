"""Gene identifiers as users have them: symbols in a var column, Ensembl IDs, mouse vs human capitalisation.

biclum matches the two modalities by gene symbol. Three common mismatches are handled here:

* ``gene_symbols="column"`` (as in scanpy) takes the feature names from a var column, e.g. an RNA object indexed
  by Ensembl IDs with the symbols in ``var["gene_symbols"]`` (10x's ``var_names="gene_ids"`` reading). Missing
  symbols keep the original name; duplicated symbols are made unique (``-1``, ``-2``, as
  ``var_names_make_unique``) and counted in the log. The user's object is not changed.
* Ensembl IDs (``ENSG...``, ``ENSMUSG...``) matched against symbols: the error names the var column that holds
  the symbols.
* Mouse RNA (``Cd4``) with a human-named panel or annotation (``CD4``): when the exact match finds few genes and
  a case-insensitive match finds clearly more, the other modality's genes take the RNA's spelling (logged).
"""
from __future__ import annotations

import re
from typing import Optional, Sequence

import numpy as np
import pandas as pd

from ._logging import logger
from .errors import BiclumInputError

ENSEMBL_RE = re.compile(r"^ENS[A-Z]*G\d{6,}(?:\.\d+)?$")
SYMBOL_COLUMNS = ("gene_symbols", "gene_symbol", "symbol", "symbols", "Symbol", "gene_name", "gene_names",
                  "feature_name", "feature_names", "gene", "name")


def looks_like_ensembl(names: Sequence, sample: int = 2000) -> bool:
    """True when most of (an evenly spaced sample of) ``names`` are Ensembl gene IDs."""
    names = np.asarray(names, dtype=object)
    if not len(names):
        return False
    pick = names[np.linspace(0, len(names) - 1, min(sample, len(names))).astype(int)]
    return np.mean([bool(ENSEMBL_RE.match(str(n))) for n in pick]) > 0.5


def symbol_columns(var: pd.DataFrame) -> list:
    """var columns that look like gene symbols (text, mostly not Ensembl IDs), the usual names first."""
    text = [c for c in var.columns if var[c].dtype == object or isinstance(var[c].dtype, pd.CategoricalDtype)]
    ranked = [c for c in SYMBOL_COLUMNS if c in text] + [c for c in text if c not in SYMBOL_COLUMNS]
    return [c for c in ranked if var[c].notna().mean() > 0.5 and not looks_like_ensembl(var[c].dropna().astype(str))]


def feature_names(adata, column: Optional[str], name: str) -> pd.Index:
    """The feature names biclum uses for ``adata``: its var names, or the var column ``column`` (missing values
    keep the var name; duplicates made unique)."""
    if column is None:
        return pd.Index(adata.var_names)
    if column not in adata.var.columns:
        cands = symbol_columns(adata.var)
        raise BiclumInputError(f"{name}: gene_symbols={column!r} is not a var column; var columns: "
                               f"{list(adata.var.columns) or 'none'}" + (f" (symbols seem to be in {cands[0]!r})"
                                                                         if cands else "") + ".")
    values = adata.var[column].astype(object)
    missing = values.isna() | (values.astype(str).str.strip() == "")
    names = pd.Series(np.where(missing, adata.var_names, values.astype(str)), dtype=object)
    dup = names.duplicated(keep="first")
    if dup.any():
        import anndata

        names = pd.Series(anndata.utils.make_index_unique(pd.Index(names)), dtype=object)
        logger.info("%s: %d duplicated names in var[%r] made unique (e.g. %s-1)", name, int(dup.sum()), column,
                    names[dup.values].iloc[0].rsplit("-", 1)[0])
    logger.info("%s: feature names from var[%r] (%d of %d given there)", name, column, int((~missing).sum()),
                len(names))
    return pd.Index(names.values)


def with_gene_symbols(adata, column: Optional[str], name: str):
    """``adata`` itself when ``column`` is None, else a new AnnData (same matrices) named by ``column``."""
    if column is None:
        return adata
    import anndata as ad

    var = adata.var.copy()
    var.index = feature_names(adata, column, name)
    return ad.AnnData(X=adata.X, obs=adata.obs.copy(), var=var, layers=dict(adata.layers))


def _ensembl_error(side: str, var: Optional[pd.DataFrame], option: str, flag: str,
                   other_side: str) -> BiclumInputError:
    cands = symbol_columns(var) if var is not None else []
    fix = (f"pass {option}={cands[0]!r} (CLI: {flag} {cands[0]}), the var column that holds the symbols" +
           (f" (other candidates: {cands[1:4]})" if len(cands) > 1 else "")) if cands else \
        (f"add the gene symbols as a var column and pass {option}='that column' (CLI: {flag} COLUMN); 10x: read "
         f"with var_names='gene_symbols', or use the features.tsv's second column")
    return BiclumInputError(f"{side}: the feature names are Ensembl gene IDs (e.g. ENSG...), but {other_side} is "
                            f"named by gene symbols, so they share almost no genes; {fix}.")


def reconcile_gene_names(rna_names, other_names, min_shared: int, rna_var: Optional[pd.DataFrame] = None,
                         other_var: Optional[pd.DataFrame] = None, other_name: str = "other") -> dict:
    """How to rename the other modality's genes so that they match the RNA's: ``{}`` when the exact match is
    good, a case-insensitive ``{other gene: rna gene}`` when it finds clearly more genes (logged). Raises a
    BiclumInputError naming the symbols column when one side is Ensembl IDs and the other is not."""
    rna = pd.Index(np.asarray(rna_names, dtype=str))
    other = pd.Index(np.asarray(other_names, dtype=str))
    exact = len(rna.intersection(other))
    if exact >= max(min_shared, 0.5 * min(len(rna), len(other))):
        return {}
    first = {}
    for g in rna:
        first.setdefault(g.upper(), g)
    rename, used = {}, set(other)
    for g in other:
        target = first.get(g.upper())
        if target is not None and target != g and target not in used:
            rename[g] = target
            used.add(target)
    n_ci = exact + len(rename)
    if rename and n_ci >= max(min_shared, 1.5 * exact):
        ex = next(iter(rename.items()))
        logger.info("rna and %s share %d genes by exact name but %d ignoring case (e.g. %s ~ %s: mouse and human "
                    "naming?); matching case-insensitively, the %s genes take the rna spelling", other_name, exact,
                    n_ci, ex[1], ex[0], other_name)
        return rename
    if exact < min_shared:
        rna_ens, other_ens = looks_like_ensembl(rna), looks_like_ensembl(other)
        if rna_ens and not other_ens:
            raise _ensembl_error("rna", rna_var, "gene_symbols", "--gene-symbols", other_name)
        if other_ens and not rna_ens:
            raise _ensembl_error(other_name, other_var, "other_gene_symbols", "--other-gene-symbols", "rna")
    return {}
