"""Low-depth RNA + ATAC made from SNARE-seq: do biclum's defaults still beat the PCA floor and scGLUE when both
modalities are much sparser, and when the cells differ only by fine structure?

    python studies/lowdepth_proxy.py --out DIR [--cells 2641] [--rna-keep 0.4] [--atac-keep 0.5]
                                     [--types L2/3 L4/5 L6] [--seed 100] [--record NAME]

Issue 28 keeps aside an RNA + ATAC dataset of another technology (2,641 cells, binary low-depth ATAC) on which
biclum was only a little below its PCA floor and scGLUE well below both. This script writes a stand-in for such
data into DIR (``rna.h5ad``, ``atac.h5ad``, raw counts, the same obs_names, ``cell_type``): ``--cells`` SNARE-seq
cells drawn at random (from ``--types`` only, when given: e.g. the three excitatory neuron types, which differ by
cortical layer only), each count thinned by binomial sampling (a read is kept with probability ``--rna-keep`` /
``--atac-keep``, as a shallower library would have sampled it). SNARE-seq's ATAC is already binary and shallow
(median 83 reads in peaks per cell; 247 RNA UMIs), so the defaults leave about 99 UMIs and 42 reads per cell.

Score it with the user benchmark, which writes the command, commit, threads and seeds with the table:

    biclum benchmark --rna DIR/rna.h5ad --other DIR/atac.h5ad --modality atac \\
        --annotation ../shared/data/annotation/mm10_genes.tsv.gz --dataset-name NAME \\
        --methods biclum pca [scglue --scglue-epochs 0] --seeds 0 1 2 --no-nmi --no-umap \\
        --out benchmarks/results --name lowdepth_NAME

``--record NAME`` also writes ``benchmarks/results/NAME.md``: this command, the commit, and what the proxy holds
(cells, features, median counts per cell before and after thinning). Results: ``benchmarks/results/lowdepth_*.md``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def thinned(adata, keep: float, rng: np.random.Generator):
    """A copy of ``adata`` whose counts are binomially thinned: each read kept with probability ``keep``."""
    out = adata.copy()
    if keep < 1:
        x = out.X.tocsr().astype(np.float32)
        x.data = rng.binomial(x.data.astype(np.int64), keep).astype(np.float32)
        x.eliminate_zeros()
        out.X = x
    return out


def make_proxy(cells: int, rna_keep: float, atac_keep: float, types=None, seed: int = 100):
    """(rna, atac) AnnData of the proxy: ``cells`` SNARE-seq cells (of ``types`` when given), thinned."""
    from biclum.datasets import load_shared

    rna, atac, _, _ = load_shared("snareseq")
    rng = np.random.default_rng(seed)
    pool = np.flatnonzero(rna.obs["cell_type"].isin(types)) if types else np.arange(rna.n_obs)
    if cells > len(pool):
        raise SystemExit(f"--cells {cells}: only {len(pool)} SNARE-seq cells are of the types asked for.")
    rna = rna[np.sort(rng.choice(pool, cells, replace=False))]
    atac = atac[rna.obs_names]
    before = {"rna": _median_counts(rna), "atac": _median_counts(atac)}
    rna, atac = thinned(rna, rna_keep, rng), thinned(atac, atac_keep, rng)
    options = {"cells": cells, "rna_keep": rna_keep, "atac_keep": atac_keep, "types": list(types or []),
               "seed": seed}
    for name, a in (("rna", rna), ("atac", atac)):
        a.uns["lowdepth_proxy"] = options
        a.uns["lowdepth_proxy_before"] = before[name]
    return rna, atac


def _median_counts(adata) -> float:
    return float(np.median(np.asarray(adata.X.sum(axis=1)).ravel()))


def describe(rna, atac) -> "pd.DataFrame":
    """One row per modality of a :func:`make_proxy` pair: cells, features with a count, median counts per cell
    before and after thinning."""
    import pandas as pd

    rows = []
    for name, adata in (("rna", rna), ("atac", atac)):
        x = adata.X.tocsr()
        rows.append({"modality": name, "cells": adata.n_obs, "features": adata.n_vars,
                     "features_with_counts": int((x.getnnz(axis=0) > 0).sum()),
                     "median_counts_before": adata.uns["lowdepth_proxy_before"],
                     "median_counts": _median_counts(adata)})
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="folder for rna.h5ad and atac.h5ad")
    p.add_argument("--cells", type=int, default=2641)
    p.add_argument("--rna-keep", type=float, default=0.4)
    p.add_argument("--atac-keep", type=float, default=0.5)
    p.add_argument("--types", nargs="+", help="draw only cells of these cell types")
    p.add_argument("--seed", type=int, default=100)
    p.add_argument("--record", metavar="NAME", help="also write benchmarks/results/NAME.md")
    argv = list(sys.argv[1:] if argv is None else argv)
    a = p.parse_args(argv)
    from biclum.atomic import atomic_path, write_bytes
    from biclum.benchmark.report import markdown_table, run_stamp, source_commit

    source_commit()  # read now: the record is written at the end
    rna, atac = make_proxy(a.cells, a.rna_keep, a.atac_keep, a.types, a.seed)
    out = Path(a.out)
    for name, adata in (("rna", rna), ("atac", atac)):
        with atomic_path(out / f"{name}.h5ad") as tmp:
            adata.write_h5ad(tmp)
        print(f"wrote {out / (name + '.h5ad')}")
    table = describe(rna, atac)
    options = ", ".join(f"{k} {v}" for k, v in rna.uns["lowdepth_proxy"].items())
    text = (run_stamp(__file__, argv, 1, [a.seed]) + " (the draw and the thinning; no training).  \n"
            f"Options: {options}; counts thinned binomially (each read kept with its modality's probability).\n\n"
            + markdown_table(table, 3) + "\n")
    print(text)
    if a.record:
        path = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / f"{a.record}.md"
        write_bytes(path, f"# Low-depth proxy of SNARE-seq: {a.record}\n\n{text}".encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
