"""How strong is a linear baseline? The benchmark's PCA floor beside the same joint PCA with other ranks and with
cosine distances.

    python studies/linear_floor.py [--datasets snareseq neurips_multiome pbmc_small]
        [--files NAME RNA.h5ad ATAC.h5ad ANNOTATION ...] [--comps 10 20 30 50] [--seeds 0 1 2] [--name NAME]
        [--no-write]

The floor of the results tables (:func:`biclum.benchmark.baselines.pca_floor`, ../shared/ANCHORS.md's) is a joint
PCA of the genes RNA shares with the other modality in gene space, 30 components, scored with euclidean distances.
biclum searches its MNN pairs with cosine similarities and returns L2-normalised embeddings, so the same PCA with
unit rows (each cell's scores divided by their norm: euclidean distances between unit rows rank as cosines do) is
the linear baseline in biclum's own geometry (``biclum benchmark --methods pca_cosine`` runs it at 10 components,
:func:`biclum.benchmark.baselines.pca_cosine`). Every variant is scored by :func:`biclum.metrics.evaluate`, the
benchmark's metric code: FOSCTTM where paired, 5-NN label transfer both ways where labelled.

``--files`` adds your own RNA + ATAC files (e.g. studies/lowdepth_proxy.py's), four values each: a name, the RNA
and ATAC ``.h5ad`` and the peaks' gene annotation. Writes benchmarks/results/NAME.md (default ``linear_floor``)
with the command, commit and seeds.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
SCORES = ("foscttm", "transfer_rna_to_other", "transfer_other_to_rna")


def score_variants(prep: dict, comps, seed: int, other=None) -> list:
    """Rows (n_comps, distance, scores) of the joint PCA of the shared genes at each rank in ``comps``. ``other``:
    the other modality in gene space when already computed (made from ``prep`` otherwise)."""
    from biclum.benchmark.baselines import pca_floor, unit_rows
    from biclum.benchmark.inputs import other_in_gene_space
    from biclum.metrics import evaluate

    other = other_in_gene_space(prep) if other is None else other
    rows = []
    for k in comps:
        r, o = pca_floor(prep["rna"], other, n_comps=k, seed=seed)
        for distance, (a, b) in (("euclidean", (r, o)), ("cosine", (unit_rows(r), unit_rows(o)))):
            s = evaluate(a, b, prep["rna_labels"], prep["other_labels"], paired=prep["paired"], nmi=False,
                         random_state=seed)
            rows.append({"n_comps": k, "distance": distance, **{m: s.get(m, np.nan) for m in SCORES}})
    return rows


def main(argv=None) -> int:
    from biclum.benchmark.inputs import named_inputs, other_in_gene_space
    from biclum.benchmark.report import (add_files_argument, markdown_table, mean_sd, publish, run_stamp,
                                         seeds_parser, source_commit)

    argv = list(sys.argv[1:] if argv is None else argv)
    p = seeds_parser(__doc__)
    p.add_argument("--datasets", nargs="*", default=["snareseq", "neurips_multiome", "pbmc_small"])
    add_files_argument(p)
    p.add_argument("--comps", nargs="+", type=int, default=[10, 20, 30, 50])
    p.add_argument("--name", default="linear_floor")
    a = p.parse_args(argv)
    source_commit()  # read now: the file is written at the end
    t0 = time.perf_counter()
    rows = []
    for name, prep in named_inputs(a.datasets, a.files).items():
        other = other_in_gene_space(prep)  # once per dataset: gene activity does not depend on the seed
        for seed in a.seeds:
            rows += [{"dataset": name, "seed": seed, **r} for r in score_variants(prep, a.comps, seed, other)]
    table = pd.DataFrame(rows)
    keys = ["dataset", "n_comps", "distance"]
    summary = table.groupby(keys, sort=False)[list(SCORES)].agg(mean_sd).reset_index()
    text = (run_stamp(__file__, argv, a.threads, a.seeds) + f"; {time.perf_counter() - t0:.0f} s. Joint PCA of "
            "the shared genes (biclum.benchmark.baselines.pca_floor; 30 components, euclidean: the floor of the "
            "results tables) at each rank, scored on its scores (euclidean) and on unit rows (cosine); FOSCTTM "
            "lower is better, mean ± sd over the PCA's seeds.\n\n" + markdown_table(summary, 3)
            + "\n\nPer seed:\n\n" + markdown_table(table, 4) + "\n")
    publish(text, REPO / "benchmarks" / "results" / f"{a.name}.md",
            "A linear baseline: joint PCA of the shared genes by rank and distance", not a.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
