"""Downstream analyses of an integration (issue 6): everything works on plain AnnData / numpy / pandas and
returns pandas DataFrames (or AnnData for aggregated metacells), so R wrappers can call it directly.

* matching: :func:`match_cells`, :func:`transfer_labels`, :func:`assign_metacells`,
  :func:`aggregate_metacells`, :func:`matched_metacells` (kNN in the joint embedding);
* gene-peak links: :func:`nearby_pairs`, :func:`gene_peak_links`, :func:`links_vs_control`;
* TF activity: :func:`read_network`, :func:`tf_activity` (ULM / weighted mean), :func:`activity_by_group`,
  :func:`compare_tf_activity`;
* markers: :func:`find_markers` (Wilcoxon / t-test), :func:`cross_modal_markers`, :func:`embedding_markers`,
  :func:`top_markers`, :func:`marker_overlap`;
* enrichment: :func:`read_gmt`, :func:`write_gmt`, :func:`enrichment`, :func:`enrich_markers`;
* interactions: :func:`read_lr_table`, :func:`ligand_receptor`;
* figures: ``plot_*`` (matplotlib Figures);
* example resources: :func:`example_path` (small TF network, GMT, ligand-receptor tables, mouse / human).

Typical use on unpaired data::

    res = biclum.integrate(rna, atac, modality="atac", annotation=ann)
    rna2, atac2 = rna.copy(), atac.copy()
    rna2.obsm["X_biclum"] = res.rna.obsm["X_biclum"]; atac2.obsm["X_biclum"] = res.other.obsm["X_biclum"]
    rna_mc, atac_mc = matched_metacells(rna2, atac2)
    links = gene_peak_links(rna_mc, atac_mc, ann); links_vs_control(links)
"""
from __future__ import annotations

from pathlib import Path

from .enrichment import enrich_markers, enrichment, read_gmt, write_gmt
from .interactions import ligand_receptor, read_lr_table
from .links import gene_peak_links, links_vs_control, nearby_pairs, peak_table, tss_table
from .markers import cross_modal_markers, embedding_markers, find_markers, marker_overlap, top_markers
from .matching import aggregate_metacells, assign_metacells, knn_search, match_cells, matched_metacells, \
    transfer_labels
from .plots import plot_enrichment, plot_heatmap, plot_interactions, plot_links_vs_control, plot_marker_dotplot, \
    plot_marker_overlap, plot_tf_activity
from .tf_activity import activity_by_group, compare_tf_activity, read_network, tf_activity

_EXAMPLES = Path(__file__).resolve().parent.parent / "data" / "examples"


def example_path(name: str) -> str:
    """Path of a bundled example file: ``"tf_network_mouse.tsv"``, ``"tf_network_human.tsv"``,
    ``"gene_sets_mouse.gmt"``, ``"gene_sets_human.gmt"``, ``"lr_pairs_mouse.tsv"``, ``"lr_pairs_human.tsv"``
    (see ``data/examples/README.md``: small illustrative tables for tests and docs, not curated databases)."""
    from ..errors import BiclumInputError

    p = _EXAMPLES / name
    if not p.is_file():
        have = sorted(x.name for x in _EXAMPLES.glob("*")) if _EXAMPLES.is_dir() else []
        raise BiclumInputError(f"example_path: no example file {name!r}; available: {have}.")
    return str(p)


__all__ = [
    "match_cells", "knn_search", "transfer_labels", "assign_metacells", "aggregate_metacells", "matched_metacells",
    "tss_table", "peak_table", "nearby_pairs", "gene_peak_links", "links_vs_control",
    "read_network", "tf_activity", "activity_by_group", "compare_tf_activity",
    "find_markers", "cross_modal_markers", "embedding_markers", "top_markers", "marker_overlap",
    "read_gmt", "write_gmt", "enrichment", "enrich_markers",
    "read_lr_table", "ligand_receptor",
    "plot_links_vs_control", "plot_heatmap", "plot_tf_activity", "plot_marker_dotplot", "plot_marker_overlap",
    "plot_enrichment", "plot_interactions", "example_path",
]
