"""Low-depth RNA + ATAC made from SNARE-seq: do biclum's defaults still beat the PCA floor and scGLUE when both
modalities are much sparser, and when the cells differ only by fine structure?

    python studies/lowdepth_proxy.py --out DIR [--cells 2641] [--rna-keep 0.4] [--atac-keep 0.5]
                                     [--types L2/3 L4/5 L6] [--seed 100]

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

Results: ``benchmarks/results/lowdepth_*.md`` (their commands name the proxy's options).
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
    rna, atac = thinned(rna, rna_keep, rng), thinned(atac, atac_keep, rng)
    options = {"cells": cells, "rna_keep": rna_keep, "atac_keep": atac_keep, "types": list(types or []),
               "seed": seed}
    for a in (rna, atac):
        a.uns["lowdepth_proxy"] = options
    return rna, atac


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="folder for rna.h5ad and atac.h5ad")
    p.add_argument("--cells", type=int, default=2641)
    p.add_argument("--rna-keep", type=float, default=0.4)
    p.add_argument("--atac-keep", type=float, default=0.5)
    p.add_argument("--types", nargs="+", help="draw only cells of these cell types")
    p.add_argument("--seed", type=int, default=100)
    a = p.parse_args(argv)
    from biclum.atomic import atomic_path

    rna, atac = make_proxy(a.cells, a.rna_keep, a.atac_keep, a.types, a.seed)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, adata in (("rna", rna), ("atac", atac)):
        with atomic_path(out / f"{name}.h5ad") as tmp:
            adata.write_h5ad(tmp)
        depth = np.median(np.asarray(adata.X.sum(axis=1)).ravel())
        print(f"{out / (name + '.h5ad')}: {adata.n_obs} cells x {adata.n_vars} features, median {depth:g} counts")
    return 0


if __name__ == "__main__":
    sys.exit(main())
