"""What limits 5-NN label transfer RNA -> ATAC on SNARE-seq? The ATAC side's own separability, per cell type.

    python studies/transfer_ceiling.py [--seeds 0 1 2] [--threads 1] [--no-write]

Per seed, biclum with its defaults; then, with the labels (``cell_type``):
- transfer RNA -> ATAC as in all_datasets.py, and the same without the ATAC cells labelled "Mis"
  (miscellaneous/unknown in the dataset README) and without "Mis" on either side;
- within-modality 5-NN accuracy (sklearn 5-fold cross-validation, KNeighborsClassifier(5)) of biclum's ATAC and
  RNA embeddings: how well each modality's own cells separate the types in the joint space;
- per cell type, the share of ATAC cells whose 5 RNA neighbours vote for the right type.
Once (no seed): within-ATAC 5-NN accuracy of the ATAC encoder's input (peak LSI, as many components as the model
uses), of a 50-component PCA of gene activity, and of the two side by side; then supervised classifiers trained on
the ATAC cells' own labels (stratified 5-fold cross-validation, shuffled with seed 0): logistic regression on the
LSI, on the LSI with the gene-activity PCs and on a 300-component LSI, and a one-hidden-layer MLP (256 units) on
the LSI. These use the labels that an unsupervised integration never sees, so they bound what the ATAC data can
tell about the types.

Writes benchmarks/results/transfer_ceiling.md with the command, commit, threads and seeds.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
UNKNOWN = "Mis"


def _within(x: np.ndarray, y: np.ndarray) -> float:
    from sklearn.model_selection import cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    return float(cross_val_score(KNeighborsClassifier(5), x, y, cv=5).mean())


def _predict(source: np.ndarray, ys: np.ndarray, target: np.ndarray) -> np.ndarray:
    from sklearn.neighbors import KNeighborsClassifier

    return KNeighborsClassifier(5).fit(source, ys).predict(target)


def _prepare():
    sys.path.insert(0, str(REPO / "benchmarks"))
    from all_datasets import _prepare as prepare

    return prepare("snareseq")


def run(prep: dict, seed: int, threads: int) -> tuple[dict, pd.Series]:
    import biclum

    t0 = time.perf_counter()
    res = biclum.integrate(prep["rna"], prep["other"], modality="atac", annotation=prep["annotation"], seed=seed,
                           progress=False, num_threads=threads)
    wall = time.perf_counter() - t0
    r = res.rna[prep["rna"].obs_names].obsm["X_biclum"]
    o = res.other[prep["other"].obs_names].obsm["X_biclum"]
    yr, yo = prep["rna_labels"], prep["other_labels"]
    pred = _predict(r, yr, o)
    known_o, known_r = yo != UNKNOWN, yr != UNKNOWN
    row = {"seed": seed, "wall_s": wall, "transfer_rna_to_atac": float(np.mean(pred == yo)),
           "transfer_without_mis_atac": float(np.mean(pred[known_o] == yo[known_o])),
           "transfer_without_mis_both": float(np.mean(_predict(r[known_r], yr[known_r], o[known_o]) == yo[known_o])),
           "within_atac_embedding": _within(o, yo), "within_rna_embedding": _within(r, yr)}
    per_type = pd.Series(pred == yo).groupby(yo).mean()
    return row, per_type


def inputs_only(prep: dict) -> dict:
    """Within-ATAC 5-NN accuracy of the encoder input (peak LSI) and of gene-activity PCs, before any training."""
    import scipy.sparse as sp
    from sklearn.decomposition import PCA

    from biclum.benchmark import other_in_gene_space
    from biclum.preprocessing import PeakLSI, as_csr32, normalize_log1p
    from biclum.setup import auto_n_pcs

    peaks = as_csr32(prep["other"].X)
    n = auto_n_pcs(peaks.shape[0], peaks.shape[1], None, "ATAC LSI")
    _, lsi = PeakLSI.fit(peaks, np.asarray(prep["other"].var_names), n, 0)
    ga = normalize_log1p(as_csr32(other_in_gene_space(prep).X), 1e4)
    ga_pcs = PCA(50, random_state=0).fit_transform(np.asarray(sp.csr_matrix(ga).todense()))
    ga_unit = ga_pcs / np.maximum(np.linalg.norm(ga_pcs, axis=1, keepdims=True), 1e-12)
    y = prep["other_labels"]
    both = np.hstack([lsi, 0.5 * ga_unit])
    _, lsi300 = PeakLSI.fit(peaks, np.asarray(prep["other"].var_names), min(300, peaks.shape[1] - 1), 0)
    return {f"peak LSI ({n} components, the encoder input)": _within(lsi, y),
            "gene-activity PCA (50 components)": _within(ga_pcs, y),
            "peak LSI + 0.5 x unit gene-activity PCs": _within(both, y),
            **supervised(lsi, both, lsi300, y)}


def supervised(lsi: np.ndarray, both: np.ndarray, lsi300: np.ndarray, y: np.ndarray) -> dict:
    """Cross-validated accuracy of classifiers trained on the ATAC labels themselves (the data's own ceiling)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.neural_network import MLPClassifier

    cv = StratifiedKFold(5, shuffle=True, random_state=0)
    models = {"supervised: logistic regression on the peak LSI": (LogisticRegression(C=1.0, max_iter=3000), lsi),
              "supervised: logistic regression on the peak LSI + gene-activity PCs":
                  (LogisticRegression(C=1.0, max_iter=3000), both),
              "supervised: logistic regression on a 300-component peak LSI":
                  (LogisticRegression(C=1.0, max_iter=3000), lsi300),
              "supervised: MLP (256 hidden units) on the peak LSI":
                  (MLPClassifier((256,), alpha=1e-2, early_stopping=True, random_state=0, max_iter=300), lsi)}
    return {name: float(cross_val_score(model, x, y, cv=cv).mean()) for name, (model, x) in models.items()}


def main(argv=None) -> int:
    from biclum.benchmark.report import markdown_table, mean_sd, publish, run_stamp, seeds_parser, source_commit

    argv = list(sys.argv[1:] if argv is None else argv)
    a = seeds_parser(__doc__).parse_args(argv)
    source_commit()  # read now: the file is written at the end
    prep = _prepare()
    runs = [run(prep, s, a.threads) for s in a.seeds]
    table = pd.DataFrame([r for r, _ in runs])
    summary = pd.DataFrame([{c: mean_sd(table[c]) for c in table.columns if c != "seed"}])
    per_type = pd.concat([t for _, t in runs], axis=1)
    counts = pd.Series(prep["other_labels"]).value_counts()
    types = pd.DataFrame({"cell type": per_type.index, "ATAC cells": counts.reindex(per_type.index).to_numpy(),
                          "transfer accuracy": [mean_sd(per_type.loc[t]) for t in per_type.index]})
    types = types.sort_values("ATAC cells", ascending=False)
    inputs = pd.DataFrame([{"ATAC input": k, "within-ATAC accuracy": v} for k, v in inputs_only(prep).items()])
    text = (run_stamp(__file__, argv, a.threads, a.seeds) + "; biclum defaults.\n\n" + markdown_table(summary, 3) +
            "\n\nPer cell type (ATAC cells predicted right by their 5 RNA neighbours; mean ± sd over seeds):\n\n" +
            markdown_table(types, 3) + "\n\nThe ATAC encoder's possible inputs, before training (5-NN accuracy), and "
            "classifiers trained on the ATAC labels (accuracy); both 5-fold CV:\n\n" + markdown_table(inputs, 3) +
            "\n\nPer seed:\n\n" + markdown_table(table, 3) + "\n")
    publish(text, REPO / "benchmarks" / "results" / "transfer_ceiling.md",
            "SNARE-seq: what limits label transfer RNA -> ATAC", not a.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
