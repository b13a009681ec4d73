"""CITE-seq / ADT antibodies -> gene symbols (human, HGNC nomenclature).

The built-in table :data:`ADT_GENE_MAP` maps antibody names of common CITE-seq / TotalSeq / ECCITE-seq
panels (CD numbers, common aliases) to the HGNC symbol of the gene encoding the epitope-bearing chain.
Choices worth knowing:

* ``CD3`` -> ``CD3E`` (UCHT1, OKT3, SK7 and most anti-CD3 clones bind the CD3 epsilon chain);
* ``CD8`` -> ``CD8A`` (the CD8 alpha chain, present on CD8ab and CD8aa cells);
* ``CD45``, ``CD45RA``, ``CD45RO``, ``CD45RB``, ``B220``/``CD45R`` -> ``PTPRC`` (isoforms of one gene;
  several such antibodies in one panel are combined by ``aggregate``);
* ``HLA-DR``/``MHCII`` -> ``HLA-DRA``; ``HLA-ABC``/``MHCI`` -> ``HLA-A``; ``TCRab``/``TCRa`` -> ``TRAC``,
  ``TCRb`` -> ``TRBC1``, ``TCRgd``/``TCRd`` -> ``TRDC``, ``TCRg`` -> ``TRGC1``;
* glycan epitopes map to the enzyme that makes them: ``CD15`` -> ``FUT4``, ``CD57`` -> ``B3GAT1``,
  ``CD77`` -> ``A4GALT``; ``CLA`` -> ``SELPLG``; ``CD158`` -> ``KIR2DL1``.

Matching is case- and punctuation-insensitive and tries, in order: the whole name, the name without
common prefixes/suffixes (``ADT_``, ``adt-``, ``anti-human``, ``Hu.``, ``_TotalSeqB``/``_TotalSeqC``, ``_ADT``,
clone after ``_``), the part outside parentheses, the part inside (``"MHCII (HLA-DR)"``, ``"B7-H1 (PD-L1)"``,
``"CD3 (UCHT1)"``), and the pieces of names like ``CD197/CCR7``. A name that is itself a gene symbol of the
table maps to itself. Before that, the naming conventions of the common tools are undone:

* a barcode after ``-`` or ``_`` (8-20 of ACGTN; CITE-seq-Count's ``CD3-TATCCCTTGGGATGG``, REAP-seq's
  ``CD3_AGGATCGA``);
* R's ``make.unique`` suffix (``CD4.1``), tried after the name as given (so ``TCR Va7.2`` stays itself).

Isotype controls (:func:`is_isotype`) and blank / empty barcodes (``Blank``, ``empty``, ``unmapped``) are dropped
with a log line; a user mapping (``mapping=``, or a two-column file read by :func:`read_protein_mapping`) wins
over all of this.
"""
from __future__ import annotations

import os
import re
import warnings
from typing import Mapping, Optional, Sequence, Union

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .._logging import logger
from ..errors import BiclumInputError, BiclumWarning

__all__ = ["protein_to_gene", "match_antibody", "is_isotype", "is_control", "read_protein_mapping", "ADT_GENE_MAP"]

# gene symbol: antibody names / aliases (the gene symbol itself is always accepted too)
_TABLE: dict[str, tuple[str, ...]] = {
    "CD1A": ("CD1a",), "CD1B": ("CD1b",), "CD1C": ("CD1c", "BDCA-1", "BDCA1"), "CD1D": ("CD1d",),
    "CD2": ("CD2",), "CD3E": ("CD3", "CD3e", "CD3epsilon"), "CD3D": ("CD3d",), "CD3G": ("CD3g",),
    "CD4": ("CD4",), "CD5": ("CD5",), "CD6": ("CD6",), "CD7": ("CD7",),
    "CD8A": ("CD8", "CD8a", "CD8alpha"), "CD8B": ("CD8b", "CD8beta"), "CD9": ("CD9",),
    "MME": ("CD10",), "ITGAL": ("CD11a", "LFA-1"), "ITGAM": ("CD11b", "Mac-1"), "ITGAX": ("CD11c",),
    "ANPEP": ("CD13",), "CD14": ("CD14",), "FUT4": ("CD15", "SSEA-1"), "FCGR3A": ("CD16", "CD16a"),
    "FCGR3B": ("CD16b",), "ITGB2": ("CD18",), "CD19": ("CD19",), "MS4A1": ("CD20",), "CR2": ("CD21",),
    "CD22": ("CD22",), "FCER2": ("CD23",), "CD24": ("CD24",), "IL2RA": ("CD25", "IL-2Ra", "IL2Ralpha"),
    "DPP4": ("CD26",), "CD27": ("CD27",), "CD28": ("CD28",), "ITGB1": ("CD29",), "TNFRSF8": ("CD30",),
    "PECAM1": ("CD31", "PECAM", "PECAM-1"), "FCGR2A": ("CD32",), "CD33": ("CD33",), "CD34": ("CD34",),
    "CR1": ("CD35",), "CD36": ("CD36",), "CD37": ("CD37",), "CD38": ("CD38",), "ENTPD1": ("CD39",),
    "CD40": ("CD40",), "ITGA2B": ("CD41",), "GP1BA": ("CD42b",), "CD44": ("CD44",),
    "PTPRC": ("CD45", "CD45RA", "CD45RO", "CD45RB", "CD45R", "B220", "LCA"), "CD47": ("CD47",),
    "CD48": ("CD48",), "ITGA1": ("CD49a",), "ITGA2": ("CD49b",), "ITGA4": ("CD49d",), "ITGA5": ("CD49e",),
    "ITGA6": ("CD49f",), "CD52": ("CD52",), "CD53": ("CD53",), "ICAM1": ("CD54", "ICAM-1"), "CD55": ("CD55",),
    "NCAM1": ("CD56", "NCAM"), "B3GAT1": ("CD57", "HNK-1"), "CD58": ("CD58", "LFA-3"), "CD59": ("CD59",),
    "ITGB3": ("CD61",), "SELE": ("CD62E", "E-selectin"), "SELL": ("CD62L", "L-selectin"),
    "SELP": ("CD62P", "P-selectin"), "CD63": ("CD63",), "FCGR1A": ("CD64",), "CEACAM8": ("CD66b",),
    "CEACAM1": ("CD66a",), "CD68": ("CD68",), "CD69": ("CD69",), "CD70": ("CD70",), "TFRC": ("CD71",),
    "CD72": ("CD72",), "NT5E": ("CD73",), "CD74": ("CD74",), "A4GALT": ("CD77", "Gb3"),
    "CD79A": ("CD79a",), "CD79B": ("CD79b",), "CD80": ("CD80", "B7-1"), "CD81": ("CD81",), "CD82": ("CD82",),
    "CD83": ("CD83",), "CD84": ("CD84",), "LILRB1": ("CD85j", "ILT2"), "CD86": ("CD86", "B7-2"),
    "C5AR1": ("CD88", "C5aR"), "KLRD1": ("CD94",), "FAS": ("CD95", "Fas", "APO-1"), "CD96": ("CD96", "TACTILE"),
    "SLC3A2": ("CD98",), "CD99": ("CD99",), "CD101": ("CD101",), "ITGAE": ("CD103",), "ENG": ("CD105", "Endoglin"),
    "LAMP1": ("CD107a", "LAMP-1"), "NECTIN2": ("CD112",), "CSF1R": ("CD115", "M-CSFR"),
    "KIT": ("CD117", "c-kit", "ckit"), "IFNGR1": ("CD119",), "IL2RB": ("CD122", "IL-2Rb"),
    "IL3RA": ("CD123", "IL-3Ra"), "IL4R": ("CD124",), "IL7R": ("CD127", "IL7Ralpha", "IL-7Ra", "IL7Ra"),
    "PROM1": ("CD133",), "TNFRSF4": ("CD134", "OX40", "OX-40"), "FLT3": ("CD135", "Flt-3"),
    "TNFRSF9": ("CD137", "4-1BB"), "SDC1": ("CD138", "Syndecan-1"), "THBD": ("CD141", "BDCA-3", "BDCA3"),
    "MCAM": ("CD146",), "CTLA4": ("CD152", "CTLA-4"), "CD40LG": ("CD154", "CD40L"), "PVR": ("CD155",),
    "KIR2DL1": ("CD158", "CD158a"), "KIR2DL3": ("CD158b",), "KIR3DL1": ("CD158e1", "CD158e"),
    "KLRC1": ("CD159a", "NKG2A"), "KLRC2": ("CD159c", "NKG2C"), "CD160": ("CD160",), "KLRB1": ("CD161",),
    "SELPLG": ("CD162", "PSGL-1", "CLA"), "CD163": ("CD163",), "SIGLEC1": ("CD169",), "SIRPA": ("CD172a",),
    "FASLG": ("CD178", "FasL"), "CXCR3": ("CD183",), "CXCR4": ("CD184",), "CXCR5": ("CD185",),
    "CXCR6": ("CD186",), "CCR2": ("CD192",), "CCR4": ("CD194",), "CCR5": ("CD195",), "CCR6": ("CD196",),
    "CCR7": ("CD197",), "CCR8": ("CD198",), "CCR9": ("CD199",), "CCR10": ("CCR10",), "CD200": ("CD200",),
    "ENPP3": ("CD203c",), "LY75": ("CD205", "DEC-205"), "MRC1": ("CD206",), "CD209": ("CD209", "DC-SIGN"),
    "GYPA": ("CD235a", "CD235ab", "Glycophorin A"), "LAG3": ("CD223", "LAG-3"), "CD226": ("CD226", "DNAM-1"),
    "CD244": ("CD244", "2B4"), "CD247": ("CD247", "CD3zeta"), "TNFSF4": ("CD252", "OX40L"),
    "TNFSF10": ("CD253", "TRAIL"), "TNFSF14": ("CD258", "LIGHT"), "TNFRSF13B": ("CD267", "TACI"),
    "TNFRSF13C": ("CD268", "BAFF-R", "BAFFR"), "TNFRSF17": ("CD269", "BCMA"), "TNFRSF14": ("CD270", "HVEM"),
    "BTLA": ("CD272",), "PDCD1LG2": ("CD273", "PD-L2", "B7-DC"), "CD274": ("CD274", "PD-L1", "B7-H1"),
    "ICOSLG": ("CD275", "ICOS-L", "ICOSL"), "CD276": ("CD276", "B7-H3"), "ICOS": ("CD278",),
    "PDCD1": ("CD279", "PD-1", "PD1"), "TLR2": ("CD282",), "TLR4": ("CD284",), "PTGDR2": ("CD294", "CRTH2"),
    "CLEC4C": ("CD303", "BDCA-2", "BDCA2"), "NRP1": ("CD304", "BDCA-4", "BDCA4", "Neuropilin-1"),
    "LAIR1": ("CD305",), "KDR": ("CD309", "VEGFR2", "VEGFR-2"), "KLRK1": ("CD314", "NKG2D"),
    "SLAMF7": ("CD319", "CRACC"), "CDH1": ("CD324", "E-cadherin"), "CDH2": ("CD325", "N-cadherin"),
    "EPCAM": ("CD326",), "NCR1": ("CD335", "NKp46"), "NCR2": ("CD336", "NKp44"), "NCR3": ("CD337", "NKp30"),
    "ERBB2": ("CD340", "HER2", "HER-2"), "SLAMF6": ("CD352", "NTB-A"), "TREM1": ("CD354",),
    "TNFRSF18": ("CD357", "GITR"), "HAVCR2": ("CD366", "TIM-3", "TIM3"), "CLEC9A": ("CD370",),
    "CLEC12A": ("CD371", "CLL-1", "MICL"), "SLAMF1": ("CD150",), "IL6R": ("CD126",), "CD151": ("CD151",),
    "HLA-DRA": ("HLA-DR", "HLADR", "MHCII", "MHC-II", "MHC class II", "MHCclassII"),
    "HLA-A": ("HLA-ABC", "HLA-A,B,C", "HLA-A2", "MHCI", "MHC-I", "MHC class I", "MHCclassI"),
    "HLA-DQA1": ("HLA-DQ",), "HLA-E": ("HLA-E",), "HLA-G": ("HLA-G",), "B2M": ("beta2-microglobulin", "B2M"),
    "TRAC": ("TCRab", "TCRa/b", "TCR alpha/beta", "TCRalphabeta", "TCRa", "TCR alpha"),
    "TRBC1": ("TCRb", "TCR beta"), "TRDC": ("TCRgd", "TCRg/d", "TCR gamma/delta", "TCRgammadelta", "TCRd"),
    "TRGC1": ("TCRg", "TCR gamma"), "TRAV1-2": ("TCR Va7.2", "TCRVa7.2", "Va7.2", "TCR Valpha7.2"),
    "TRDV2": ("TCR Vd2", "TCRVd2", "Vd2"), "TRGV9": ("TCR Vg9", "TCRVg9", "Vg9"),
    "TRAV10": ("TCR Va24-Ja18", "Va24-Ja18", "iNKT"), "IGHD": ("IgD",), "IGHM": ("IgM",), "IGHA1": ("IgA",),
    "IGHE": ("IgE",), "IGKC": ("Ig kappa", "Igkappa", "kappa light chain"),
    "IGLC2": ("Ig lambda", "Iglambda", "lambda light chain"), "KLRG1": ("KLRG1",), "TIGIT": ("TIGIT", "VSTM3"),
    "SIGLEC8": ("Siglec-8",), "SIGLEC7": ("Siglec-7",), "FCER1A": ("FceRIa", "FcERIa", "FcepsilonRIalpha"),
    "CX3CR1": ("CX3CR1",), "ADGRG1": ("GPR56",), "ITGB7": ("Integrin b7", "integrin beta7"),
    "VSIR": ("VISTA",), "LGALS9": ("Galectin-9",), "TNFRSF25": ("DR3",), "VTCN1": ("B7-H4",),
    "PDPN": ("Podoplanin",), "EGFR": ("EGFR",), "CRLF2": ("TSLPR",), "IL21R": ("IL-21R",), "OLR1": ("LOX-1",),
    "FOXP3": ("FOXP3", "FoxP3"), "CD93": ("CD93",), "F3": ("CD142", "Tissue Factor"), "GGT1": ("CD224",),
}
_TABLE["TRAC"] += ("TCR",)  # a panel's bare "TCR" is the alpha/beta TCR (e.g. clone IP26)
_TABLE["SIGLEC7"] += ("CD328",)

#: antibody alias -> gene symbol (human, HGNC). Keys are the display aliases of the table above.
ADT_GENE_MAP: dict[str, str] = {alias: gene for gene, aliases in _TABLE.items() for alias in aliases}

_AGGREGATES = ("sum", "mean", "max", "first")


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def _build_index() -> dict[str, str]:
    idx: dict[str, str] = {}
    for gene in _TABLE:  # gene symbols map to themselves (lowest priority)
        idx.setdefault(_norm(gene), gene)
    for gene, aliases in _TABLE.items():  # aliases override symbols that collide (none expected)
        for a in aliases:
            idx[_norm(a)] = gene
    return idx


_INDEX = _build_index()

_PREFIX_RE = re.compile(r"^(?:adt|prot|protein|ab|antibody|cite)[_\-\.: ]+|^anti[\- ]?(?:human|mouse|hu|ms)?[\- _]*"
                        r"|^(?:human|hu|h)[\._ ]+", re.I)
_SUFFIX_RE = re.compile(r"[_\-\.\s|]+(?:totalseq[\-_ ]?[abcd]?|tsa|tsb|tsc|adt|prot|protein|antibody|ab)"
                        r"(?:[_\-\s]*\d+)?$", re.I)
_SPECIES = r"(?:mouse|ms|rat|rt|rabbit|rb|hamster|armenianhamster|syrianhamster|goat|human|hu)"
_GENERIC = {"tcr"}  # names too generic to stand for a longer name's first word ("TCR Vb13.1" is not "TCR")
_BARCODE_RE = re.compile(r"[-_.][ACGTN]{8,20}$")
_UNIQUE_RE = re.compile(r"\.\d+$")  # R's make.unique: CD4, CD4.1, CD4.2
_BLANK_RE = re.compile(r"^(?:blank|empty|unmapped|no[_\- ]?antibody|none)[_\-\.\d]*$", re.I)
_ISO_RE = re.compile(rf"^{_SPECIES}?ig[gmae]\d?[abc]?(?:kappa|k|lambda|l)?(?:isotype|iso|ctrl|control)*\d*$")


def is_isotype(name: str) -> bool:
    """True for isotype controls: ``IgG1``, ``IgG2a``, ``Mouse IgG1 kappa``, ``Rat IgG2b``, ``*isotype*``, ...

    Bare ``IgM`` / ``IgA`` / ``IgE`` (and ``IgD``) are real surface immunoglobulins and are not isotypes;
    with a species prefix (``Mouse IgM``) or "isotype"/"ctrl" they are.
    """
    name = _BARCODE_RE.sub("", str(name).strip())
    n = _norm(_SUFFIX_RE.sub("", _PREFIX_RE.sub("", name)))
    full = _norm(name)
    if "isotype" in full or re.search(r"(?:^|[^a-z])(?:ctrl|control)(?:[^a-z]|$)", str(name).lower()):
        return True
    if not _ISO_RE.match(n):
        return False
    # bare IgM/IgA/IgE: a surface immunoglobulin unless marked as a control
    return not re.fullmatch(r"ig[mae]", n)


def is_control(name: str) -> bool:
    """True for isotype controls (:func:`is_isotype`) and blank / empty barcodes (``Blank``, ``empty_1``)."""
    return is_isotype(name) or bool(_BLANK_RE.match(_BARCODE_RE.sub("", str(name).strip())))


def _candidates(name: str) -> list[str]:
    s = _BARCODE_RE.sub("", str(name).strip())
    unique = _UNIQUE_RE.sub("", s)  # "CD4.1" is CD4 (make.unique), not CD41; "TCR Va7.2" falls through
    first = [unique, _SUFFIX_RE.sub("", _PREFIX_RE.sub("", unique)).strip()] if unique != s else []
    return first + _name_candidates(s)


def _name_candidates(s: str) -> list[str]:
    out = [s]
    s1 = _SUFFIX_RE.sub("", _PREFIX_RE.sub("", s)).strip()
    out.append(s1)
    m = re.match(r"^(.*?)\s*[\(\[]\s*(.*?)\s*[\)\]]\s*(.*)$", s1)
    if m:
        out += [m.group(1) + m.group(3), m.group(1), m.group(2)]
    for part in re.split(r"[/|;]|,(?=\s*[A-Za-z]{2})", s1):
        out.append(part)
    tok = re.split(r"[_ ]", s1)
    if len(tok) > 1 and _norm(tok[0]) not in _GENERIC:
        out.append(tok[0])  # e.g. CD3_UCHT1 (clone after the underscore)
    return [c for c in out if c]


def match_antibody(name: str, mapping: Optional[Mapping[str, Optional[str]]] = None,
                   genes: Optional[Sequence[str]] = None) -> Optional[str]:
    """The gene symbol for one antibody name, or None.

    ``mapping`` (user overrides, exact name or normalised name) wins over the built-in table;
    ``genes`` (optional list of valid gene symbols, e.g. the RNA var names) lets names that are
    gene symbols map to themselves.
    """
    if mapping:
        if name in mapping:
            return mapping[name]
        nm = {_norm(k): v for k, v in mapping.items()}
        if _norm(name) in nm:
            return nm[_norm(name)]
    gset = {_norm(g): g for g in genes} if genes is not None else {}
    for c in _candidates(name):
        k = _norm(c)
        if k in _INDEX:
            return _INDEX[k]
        if k in gset:
            return gset[k]
    return None


def protein_to_gene(adt, *, mapping: Optional[Union[Mapping[str, Optional[str]], Sequence[Optional[str]]]] = None,
                    drop_isotypes: bool = True, aggregate: str = "sum",
                    genes: Optional[Sequence[str]] = None):
    """Cells x antibodies (ADT) -> cells x gene symbols.

    Parameters
    ----------
    adt
        AnnData, cells x antibodies (counts or normalised values; not modified).
    mapping
        User override. A dict ``{antibody: gene}`` (exact or case/punctuation-insensitive antibody names;
        a value of None drops that antibody) applied before the built-in table :data:`ADT_GENE_MAP`;
        or a list of ``adt.n_vars`` gene symbols in var order (None / "" drops that antibody), which
        replaces the table entirely; or the path of a two-column table (:func:`read_protein_mapping`).
    drop_isotypes
        Drop isotype and blank controls (see :func:`is_control`) before mapping (default True); they are
        listed in ``uns["protein_to_gene"]["isotypes"]``.
    aggregate
        How several antibodies of one gene are combined (e.g. CD45, CD45RA and CD45RO -> PTPRC, or a
        panel with both "PD-1" and "PD1"): ``"sum"`` (default; keeps counts as counts), ``"mean"``,
        ``"max"`` (elementwise per cell) or ``"first"`` (the first antibody in var order).
    genes
        Optional gene symbols (e.g. the RNA var names): antibodies named exactly as one of them
        (case-insensitive) map to it when the table does not know them.

    Returns
    -------
    AnnData cells x genes (float32; CSR if the input X is sparse, else dense), obs/obsm copied, var
    indexed by gene symbol with columns ``antibodies`` ("; "-joined) and ``n_antibodies``;
    ``uns["protein_to_gene"]`` = ``{"mapping": {antibody: gene}, "unmapped": [...], "isotypes": [...],
    "aggregate": ...}``. A :class:`~biclum.errors.BiclumWarning` lists unmapped antibodies.
    """
    import anndata as ad

    if not hasattr(adt, "var_names") or not hasattr(adt, "X"):
        raise BiclumInputError(f"protein_to_gene: adt is a {type(adt).__name__}, not an AnnData; give a cells x "
                               "antibodies AnnData.")
    if aggregate not in _AGGREGATES:
        raise BiclumInputError(f"protein_to_gene: aggregate={aggregate!r} is not one of {_AGGREGATES}.")
    names = [str(n) for n in adt.var_names]
    if len(names) == 0:
        raise BiclumInputError("protein_to_gene: adt has no antibodies (0 var); give a cells x antibodies AnnData.")

    if isinstance(mapping, (str, os.PathLike)):
        mapping = read_protein_mapping(mapping)
    positional = None
    if mapping is not None and not isinstance(mapping, Mapping):
        positional = list(mapping)
        if len(positional) != len(names):
            raise BiclumInputError(
                f"protein_to_gene: mapping is a list of {len(positional)} genes but adt has {len(names)} "
                "antibodies; give one gene (or None) per antibody in var order, or a dict {antibody: gene}.")
        user = {}
    else:
        user = dict(mapping or {})
        unknown = [k for k in user if k not in set(names) and _norm(k) not in {_norm(n) for n in names}]
        if unknown:
            logger.info("protein_to_gene: mapping keys not among adt var names: %s", unknown[:10])

    genes_of, isotypes, unmapped = [], [], []
    user_norm = {_norm(k) for k in user}
    for i, n in enumerate(names):
        if positional is not None:
            g = positional[i]
            g = None if g is None or (isinstance(g, float) and np.isnan(g)) or str(g).strip() == "" else str(g)
            if g is None and drop_isotypes and is_control(n):
                isotypes.append(n)
            genes_of.append(g)
            continue
        in_user = n in user or _norm(n) in user_norm
        if drop_isotypes and not in_user and is_control(n):
            isotypes.append(n)
            genes_of.append(None)
            continue
        g = match_antibody(n, user, genes)
        if g is None and not in_user:
            unmapped.append(n)
        genes_of.append(g)
    if unmapped:
        warnings.warn(
            f"protein_to_gene: {len(unmapped)} of {len(names)} antibodies of adt have no gene and are dropped: "
            f"{unmapped}. Pass mapping={{antibody: gene}} (protein_mapping=..., CLI: --protein-mapping FILE) to map them.", BiclumWarning, stacklevel=2)
    used = [(i, g) for i, g in enumerate(genes_of) if g]
    if not used:
        raise BiclumInputError(
            f"protein_to_gene: none of the {len(names)} antibodies of adt maps to a gene (e.g. {names[:5]}); "
            "pass mapping={antibody: gene}, a list of genes in var order, or a two-column file (antibody, gene) "
            "(integrate/BiCLUM: protein_mapping=..., CLI: --protein-mapping FILE).")

    gene_order = list(dict.fromkeys(g for _, g in used))
    col = {g: j for j, g in enumerate(gene_order)}
    ab_idx = np.array([i for i, _ in used])
    g_idx = np.array([col[g] for _, g in used])
    n_ab = np.bincount(g_idx, minlength=len(gene_order))

    X = adt.X.to_memory() if hasattr(adt.X, "to_memory") else adt.X
    sparse_in = sp.issparse(X)
    Xc = sp.csr_matrix(X, dtype=np.float32) if sparse_in else np.asarray(X, dtype=np.float32)
    if aggregate in ("sum", "mean"):
        M = sp.csr_matrix((np.ones(len(ab_idx), np.float32), (ab_idx, g_idx)), shape=(len(names), len(gene_order)))
        if aggregate == "mean":
            M = M @ sp.diags((1.0 / n_ab).astype(np.float32))
        Y = Xc @ M
    else:
        first = np.array([ab_idx[g_idx == j][0] for j in range(len(gene_order))])
        Y = Xc[:, first]
        if aggregate == "max":
            multi = np.flatnonzero(n_ab > 1)  # loop over the (few) genes with several antibodies
            if len(multi):
                Y = Y.tolil() if sparse_in else Y.copy()
                for j in multi:
                    cols = ab_idx[g_idx == j]
                    m = Xc[:, cols].max(axis=1)
                    Y[:, j] = m.toarray() if sparse_in else m
    Y = sp.csr_matrix(Y, dtype=np.float32) if sparse_in else np.asarray(Y, dtype=np.float32)

    var = pd.DataFrame({
        "antibodies": ["; ".join(names[i] for i in ab_idx[g_idx == j]) for j in range(len(gene_order))],
        "n_antibodies": n_ab.astype(np.int64),
    }, index=pd.Index(gene_order))
    out = ad.AnnData(X=Y, obs=adt.obs.copy(), var=var)
    for k in adt.obsm.keys():
        out.obsm[k] = adt.obsm[k].copy()
    out.uns["protein_to_gene"] = {
        "mapping": {names[i]: g for i, g in used},
        "unmapped": list(unmapped), "isotypes": list(isotypes), "aggregate": aggregate,
        "n_antibodies": len(names), "n_mapped": len(used), "n_genes": len(gene_order),
        "source": "user list" if positional is not None else ("user dict + built-in" if user else "built-in"),
    }
    logger.info("protein_to_gene: %d of %d antibodies mapped -> %d genes; %d isotype/blank controls dropped%s; "
                "%d unmapped%s", len(used), len(names), len(gene_order), len(isotypes),
                f" ({isotypes})" if isotypes else "", len(unmapped), f": {unmapped}" if unmapped else "")
    return out


def read_protein_mapping(path) -> dict:
    """A two-column table (antibody, gene; comma-, tab- or whitespace-separated, with or without a header
    line) as ``{antibody: gene}``; an empty gene drops that antibody. For ``mapping=`` /
    ``--protein-mapping``."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise BiclumInputError(f"protein mapping: file {path!r} does not exist; give a two-column table "
                               f"(antibody, gene), e.g. a CSV with lines like 'CD3-TATCCCTTGGGATGG,CD3E'.")
    try:
        with open(path, encoding="utf-8") as fh:
            head = fh.read(65536)
        sep = "\t" if "\t" in head else "," if "," in head else r"\s+"
        table = pd.read_csv(path, sep=sep, engine="python", header=None, dtype=str, skip_blank_lines=True,
                            keep_default_na=False, comment="#")
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as err:
        raise BiclumInputError(f"protein mapping: {path!r} cannot be read as a table ({err}); give a two-column "
                               f"CSV/TSV (antibody, gene).") from err
    if table.shape[1] < 2:
        raise BiclumInputError(f"protein mapping: {path!r} has {table.shape[1]} column(s); it needs two "
                               f"(antibody, gene), separated by a comma or a tab.")
    first = [str(v).strip().lower() for v in table.iloc[0, :2]]
    if first[1] in ("gene", "genes", "gene_name", "gene_symbol", "symbol", "hgnc_symbol") or \
            first[0] in ("antibody", "antibodies", "adt", "protein", "feature", "name", "id"):
        table = table.iloc[1:]
    out = {}
    for ab, gene in zip(table.iloc[:, 0].astype(str).str.strip(), table.iloc[:, 1].astype(str).str.strip()):
        out[ab] = gene or None
    logger.info("protein mapping: %d antibodies read from %s", len(out), path)
    return out
