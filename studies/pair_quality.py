"""SNARE-seq: how right are the cross-modal MNN pairs that the cell-level loss pulls together?

    python studies/pair_quality.py [--seeds 0 1 2] [--threads 1] [--no-write]

The cell-level NT-Xent places each ATAC cell beside its MNN partners, so 5-NN transfer RNA -> ATAC cannot be much
better than the partners' cell types. Per seed, biclum's setup only (no training) under each variant below, and
with the labels (``cell_type``):
- ``pair_agreement``: share of MNN pairs (RNA cell, ATAC cell) of the same cell type;
- ``partner_vote``: share of the ATAC cells with partners whose partners' majority type is their own;
- ``atac_with_partner``: share of ATAC cells with at least one partner.
Variants: the defaults; ``smooth_k`` (within-modality smoothing before the search: off, 40, 80, 160); ``mnn_k``
(50, 400); a distance-weighted gene activity (:func:`biclum.prior.gene_activity`, ``mode="distance_weighted"``);
and two refinements of the default pairs: a CCA between the RNA PCs and the ATAC LSI fitted on the pairs (10
components, MNN again in it, smoothed as the default), and Seurat-style anchor scores (shared neighbours, 30 per
cell, in each modality's own space) keeping the top half of the pairs.

Writes benchmarks/results/pair_quality.md with the command, commit, threads and seeds.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
VARIANTS = {
    "default": {},
    "smooth_k=0": {"smooth_k": 0},
    "smooth_k=40": {"smooth_k": 40},
    "smooth_k=80": {"smooth_k": 80},
    "smooth_k=160": {"smooth_k": 160},
    "mnn_k=50": {"mnn_k": 50},
    "mnn_k=400": {"mnn_k": 400},
    "gene activity distance_weighted": {"gene_activity_kwargs": {"mode": "distance_weighted"}},
}


def pair_scores(rows: np.ndarray, cols: np.ndarray, y_rna: np.ndarray, y_atac: np.ndarray) -> dict:
    """Label agreement of the pairs (rows: RNA cells, cols: ATAC cells) and of each ATAC cell's partner vote."""
    votes = pd.DataFrame({"atac": cols, "label": y_rna[rows]}).groupby("atac")["label"].agg(
        lambda s: s.value_counts().index[0])
    return {"pair_agreement": float(np.mean(y_rna[rows] == y_atac[cols])),
            "partner_vote": float(np.mean(votes.to_numpy() == y_atac[votes.index.to_numpy()])),
            "atac_with_partner": len(votes) / len(y_atac), "pairs": len(rows)}


def _setup(prep: dict, seed: int, threads: int, overrides: dict):
    from biclum._threads import thread_limit
    from biclum.config import BiclumConfig
    from biclum.setup import prepare

    overrides = dict(overrides)
    ga = overrides.pop("gene_activity_kwargs", None)
    config = BiclumConfig.from_preset("default", seed=seed, **overrides)
    with thread_limit(threads):
        return prepare(prep["rna"], prep["other"], "atac", prep["annotation"], config, gene_activity_kwargs=ga)


def _labels(prepared, prep: dict) -> tuple[np.ndarray, np.ndarray]:
    y_rna = pd.Series(prep["rna_labels"], index=prep["rna"].obs_names)
    y_atac = pd.Series(prep["other_labels"], index=prep["other"].obs_names)
    return (y_rna.loc[prepared.cell_names["rna"]].to_numpy(), y_atac.loc[prepared.cell_names["other"]].to_numpy())


def cca_pairs(x_rna: np.ndarray, x_atac: np.ndarray, rows: np.ndarray, cols: np.ndarray, n_comps: int, k: int,
              smooth_k: int, seed: int):
    """MNN pairs again, in a CCA of the two encoder inputs fitted on the given pairs (ridge 1e-3 of the mean
    variance), each modality's CCA scores smoothed over its own neighbours as the default search does."""
    from biclum.benchmark.baselines import paired_cca
    from biclum.pairs import mutual_nearest_neighbors, neighbor_smooth

    to_cca_rna, to_cca_atac = paired_cca(x_rna[rows], x_atac[cols], n_comps, ridge=1e-3, scaled=False)
    za, zb = to_cca_rna(x_rna), to_cca_atac(x_atac)
    za, zb = neighbor_smooth(za, x_rna, smooth_k, seed=seed), neighbor_smooth(zb, x_atac, smooth_k, seed=seed)
    coo = mutual_nearest_neighbors(za, zb, k, seed=seed).adjacency.tocoo()
    return coo.row, coo.col


def anchor_scores(x_rna: np.ndarray, x_atac: np.ndarray, rows: np.ndarray, cols: np.ndarray, k: int = 30):
    """Seurat's anchor score: shared neighbours of the two cells of each pair, within RNA and within ATAC (each
    modality's own space), the other side's neighbours found through the pairs themselves."""
    import scipy.sparse as sp

    from biclum.pairs import _knn_graph, knn_cosine

    rr = _knn_graph(knn_cosine(x_rna, x_rna, k), len(x_rna)).astype(np.float32)
    aa = _knn_graph(knn_cosine(x_atac, x_atac, k), len(x_atac)).astype(np.float32)
    pairs = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(len(x_rna), len(x_atac)))
    rna_side = (aa[cols].multiply(pairs[rows])).sum(1)        # i's partners among j's ATAC neighbours
    atac_side = (rr[rows].multiply(pairs.T.tocsr()[cols])).sum(1)  # j's partners among i's RNA neighbours
    return np.asarray(rna_side).ravel() + np.asarray(atac_side).ravel()


def run(prep: dict, seed: int, threads: int) -> list[dict]:
    out = []
    for name, overrides in VARIANTS.items():
        prepared = _setup(prep, seed, threads, overrides)
        y_rna, y_atac = _labels(prepared, prep)
        coo = prepared.pairs.adjacency.tocoo()
        out.append({"seed": seed, "variant": name, **pair_scores(coo.row, coo.col, y_rna, y_atac)})
        if name != "default":
            continue
        x_rna, x_atac = prepared.data.pcs["rna"], prepared.data.pcs["other"]
        ch = prepared.choices
        rows, cols = cca_pairs(x_rna, x_atac, coo.row, coo.col, 10, ch["mnn_k"], ch["smooth_k"], seed)
        out.append({"seed": seed, "variant": "default pairs, then MNN in their 10-component CCA",
                    **pair_scores(rows, cols, y_rna, y_atac)})
        score = anchor_scores(x_rna, x_atac, coo.row, coo.col)
        top = score >= np.median(score)
        out.append({"seed": seed, "variant": "default pairs, top half by anchor score",
                    **pair_scores(coo.row[top], coo.col[top], y_rna, y_atac)})
    return out


def main(argv=None) -> int:
    from biclum.benchmark.report import markdown_table, mean_sd, publish, run_stamp, seeds_parser, source_commit

    argv = list(sys.argv[1:] if argv is None else argv)
    a = seeds_parser(__doc__).parse_args(argv)
    source_commit()  # read now: the file is written at the end
    sys.path.insert(0, str(REPO / "benchmarks"))
    from all_datasets import _prepare

    prep = _prepare("snareseq")
    table = pd.DataFrame([row for s in a.seeds for row in run(prep, s, a.threads)])
    order = list(dict.fromkeys(table["variant"]))
    summary = table.groupby("variant", sort=False).agg(
        {c: mean_sd for c in ("pair_agreement", "partner_vote", "atac_with_partner")}).reindex(order).reset_index()
    summary["pairs"] = table.groupby("variant", sort=False)["pairs"].mean().round().astype(int).reindex(order).values
    text = (run_stamp(__file__, argv, a.threads, a.seeds) + "; biclum's setup only (no training).\n\n" +
            markdown_table(summary, 3) + "\n\nPer seed:\n\n" + markdown_table(table, 3) + "\n")
    publish(text, REPO / "benchmarks" / "results" / "pair_quality.md",
            "SNARE-seq: cell types of the cross-modal MNN pairs", not a.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
