"""Prior knowledge that maps the second modality into gene space.

* :func:`gene_activity` - ATAC peaks (cells x peaks) -> gene activity (cells x genes), Signac-like
  gene-body counts, promoter windows or ArchR-like distance weighting; gene-level input passes through.
* :func:`read_annotation`, :func:`parse_peaks`, :func:`genome_check` - the pieces it is built on.
* :func:`protein_to_gene` - CITE-seq antibodies (cells x ADTs) -> cells x gene symbols.
"""
from __future__ import annotations

from .annotation import read_annotation
from .gene_activity import MIN_TSS_FRACTION, gene_activity, genome_check
from .peaks import normalize_chrom, parse_peaks
from .protein import ADT_GENE_MAP, is_control, is_isotype, match_antibody, protein_to_gene, read_protein_mapping

__all__ = [
    "gene_activity", "read_annotation", "parse_peaks", "genome_check", "normalize_chrom", "MIN_TSS_FRACTION",
    "protein_to_gene", "match_antibody", "is_isotype", "is_control", "read_protein_mapping", "ADT_GENE_MAP",
]
