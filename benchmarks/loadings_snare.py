"""Do biclum's gene loadings mean something? Two measures on SNARE-seq RNA against a PCA of the same genes and rank.

    python benchmarks/loadings_snare.py [--seeds 0 1 2] [--threads 1] [--cells N] [--set KEY=VALUE ...] [--no-write]

1. Reconstruction: per gene, the Pearson correlation across cells between the rank-d reconstruction
   ``E @ L.T`` (E: the cell embeddings users get, L: the loadings) and the gene's log-normalised expression;
   the median over the model's RNA genes. PCA: the same with the scores and components of a rank-d PCA of the
   standardised log-normalised expression of the same genes.
2. Markers: for each cell type, the 50 genes with the highest ``L @ centroid(E of the type)``, against the 50 genes
   with the largest Welch t statistic of the type against the rest (log-normalised expression); the overlap,
   averaged over types. PCA: the same with the PCA loadings and score centroids. Random: 50 * 50 / n_genes.

3. The embedding's own limit: the reconstruction correlation of least-squares loadings on biclum's cell
   embeddings (the most any loadings reach with these cell embeddings, as Seurat's ProjectDim computes them), so
   that a shortfall against PCA splits into the cell embeddings' share and the learned loadings' share.

Two PCAs: of the standardised genes (Seurat's ScaleData + RunPCA; every gene weighs the same, so the median gene
is reconstructed well) and of the centred, unscaled log-normalised genes (scanpy's default pca).

Writes benchmarks/results/loadings_snare.md with the command, commit, threads and seeds.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]


def _per_gene_corr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a - a.mean(0)
    b = b - b.mean(0)
    den = np.sqrt((a * a).sum(0) * (b * b).sum(0))
    return np.where(den > 0, (a * b).sum(0) / np.maximum(den, 1e-30), 0.0)


def _de_top(X: np.ndarray, labels: np.ndarray, n_top: int) -> dict:
    out = {}
    for t in np.unique(labels):
        a, b = X[labels == t], X[labels != t]
        se = np.sqrt(a.var(0) / max(len(a), 1) + b.var(0) / max(len(b), 1))
        tstat = (a.mean(0) - b.mean(0)) / np.maximum(se, 1e-12)
        out[t] = set(np.argsort(-tstat)[:n_top])
    return out


def _marker_overlap(E: np.ndarray, L: np.ndarray, labels: np.ndarray, de: dict, n_top: int) -> float:
    overlaps = []
    for t, genes in de.items():
        score = L @ E[labels == t].mean(0)
        overlaps.append(len(genes & set(np.argsort(-score)[:n_top])))
    return float(np.mean(overlaps))


def measures(E: np.ndarray, L: np.ndarray, X: np.ndarray, labels: np.ndarray, n_top: int = 50) -> dict:
    """Reconstruction correlation (median over genes) and marker overlap of embeddings E with loadings L."""
    de = _de_top(X, labels, n_top)
    return {"recon_corr": float(np.median(_per_gene_corr(E @ L.T, X))),
            "marker_overlap": _marker_overlap(E, L, labels, de, n_top)}


def least_squares_recon_corr(E: np.ndarray, X: np.ndarray) -> float:
    """Median per-gene reconstruction correlation of the least-squares loadings of X (standardised) on the
    centred cell embeddings E: the best any loadings of E reach on measure 1."""
    Ec = E - E.mean(0)
    Z = (X - X.mean(0)) / np.maximum(X.std(0), 1e-12)
    W, *_ = np.linalg.lstsq(Ec, Z, rcond=None)
    return float(np.median(_per_gene_corr(Ec @ W, X)))


def pca_measures(X: np.ndarray, labels: np.ndarray, rank: int, seed: int, n_top: int = 50,
                 scale: bool = True) -> dict:
    """The same measures for a rank-``rank`` PCA of the genes: of the standardised log-normalised expression
    (``scale=True``, Seurat's ScaleData + RunPCA, the stronger comparator here) or of the centred log-normalised
    expression (``scale=False``, scanpy's pca without sc.pp.scale)."""
    from sklearn.decomposition import PCA

    Z = X - X.mean(0)
    if scale:
        Z = Z / np.maximum(X.std(0), 1e-12)
    pca = PCA(rank, random_state=seed, svd_solver="randomized").fit(Z)
    return measures(pca.transform(Z), pca.components_.T, X, labels, n_top)


def _log_norm(adata, genes) -> np.ndarray:
    from biclum.preprocessing import as_csr32, normalize_log1p

    X = normalize_log1p(as_csr32(adata.X), 1e4)
    return np.asarray(X[:, adata.var_names.get_indexer(genes)].todense(), dtype=np.float64)


def run(seed: int, threads: int, cells: int, overrides: dict) -> dict:
    import biclum
    from biclum.datasets import load_shared

    rna, atac, modality, annotation = load_shared("snareseq")
    if cells:
        keep = np.sort(np.random.default_rng(0).choice(rna.n_obs, cells, replace=False))
        rna, atac = rna[keep].copy(), atac[rna.obs_names[keep]].copy()
    t0 = time.perf_counter()
    res = biclum.integrate(rna, atac, modality=modality, annotation=annotation, seed=seed, progress=False,
                           num_threads=threads, **overrides)
    wall = time.perf_counter() - t0
    used = res.rna.var["biclum_feature"].to_numpy()
    genes = res.rna.var_names[used]
    E = res.rna.obsm["X_biclum"]
    L = res.rna.varm["biclum_loadings"][used]
    X = _log_norm(rna[res.rna.obs_names], genes)
    labels = rna.obs.loc[res.rna.obs_names, "cell_type"].astype(str).to_numpy()
    out = {"seed": seed, "wall_s": wall, "n_genes": len(genes), "rank": E.shape[1]}
    out.update({f"biclum_{k}": v for k, v in measures(E, L, X, labels).items()})
    out["biclum_least_squares_recon_corr"] = least_squares_recon_corr(E, X)
    out.update({f"pca_{k}": v for k, v in pca_measures(X, labels, E.shape[1], seed).items()})
    out.update({f"pca_unscaled_{k}": v for k, v in pca_measures(X, labels, E.shape[1], seed, scale=False).items()})
    out["random_marker_overlap"] = 50 * 50 / len(genes)
    return out


def main(argv=None) -> int:
    from biclum.benchmark.report import markdown_table, mean_sd, publish, run_stamp, seeds_parser, source_commit

    argv = list(sys.argv[1:] if argv is None else argv)
    p = seeds_parser(__doc__)
    p.add_argument("--cells", type=int, default=0, help="a random subsample of this many paired cells (0: all)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    a = p.parse_args(argv)
    from biclum.config import parse_overrides

    source_commit()  # read now: the file is written at the end

    rows = [run(s, a.threads, a.cells, parse_overrides(a.set)) for s in a.seeds]
    table = pd.DataFrame(rows)
    summary = {c: mean_sd(table[c]) for c in table.columns if c not in ("seed", "n_genes", "rank")}
    ratio = {f"{m} biclum / {name}": (table[f"biclum_{m}"] / table[f"{col}_{m}"]).mean()
             for m in ("recon_corr", "marker_overlap")
             for col, name in (("pca", "PCA of scaled genes"), ("pca_unscaled", "PCA of unscaled genes"))}
    ratio["recon_corr least squares on biclum's embeddings / PCA of scaled genes"] = (
        table["biclum_least_squares_recon_corr"] / table["pca_recon_corr"]).mean()
    ratio["recon_corr biclum / least squares on biclum's embeddings"] = (
        table["biclum_recon_corr"] / table["biclum_least_squares_recon_corr"]).mean()
    text = (run_stamp(__file__, argv, a.threads, a.seeds) + f"; {table['n_genes'].iloc[0]} RNA genes, rank "
            f"{table['rank'].iloc[0]}.\n\n" + markdown_table(pd.DataFrame([summary]), 3) + "\n\nMean ratios: " +
            ", ".join(f"{k} = {v:.2f}" for k, v in ratio.items()) + "\n\nPer seed:\n\n" + markdown_table(table, 3) + "\n")
    publish(text, REPO / "benchmarks" / "results" / "loadings_snare.md",
            "Gene loadings on SNARE-seq RNA: biclum vs PCA of the same genes and rank", not a.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
