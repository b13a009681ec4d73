"""Benchmark of biclum.prior (issue 3 acceptance 1-4).

Run from the repo root:  python benchmarks/prior_gene_activity.py
Writes benchmarks/results/prior_gene_activity.md. Data: ../shared/data (or $BICLUM_SHARED_DATA).
"""
from __future__ import annotations

import os
import platform
import sys
import time
import warnings
from importlib.metadata import version
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy
import scipy.sparse as sp

import biclum
from biclum.errors import BiclumWarning
from biclum.prior import gene_activity, genome_check, normalize_chrom, parse_peaks, protein_to_gene, read_annotation

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("BICLUM_SHARED_DATA", REPO.parent / "shared" / "data"))
OUT = REPO / "benchmarks" / "results" / "prior_gene_activity.md"
biclum.set_verbosity("WARNING")


def brute_force(X, peaks: pd.DataFrame, ann: pd.DataFrame, upstream=2000, downstream=0) -> np.ndarray:
    """Reference gene activity: a Python loop over genes, boolean overlap mask per gene."""
    key = normalize_chrom(peaks["chrom"])
    ps = peaks["start"].to_numpy()
    pe = np.maximum(peaks["end"].to_numpy(), ps + 1)
    X = sp.csc_matrix(X)
    cols = []
    for g in ann.itertuples(index=False):
        s0, e0 = g.start - 1, g.end  # 1-based inclusive -> 0-based half-open
        ws, we = (s0 - upstream, e0 + downstream) if g.strand == "+" else (s0 - downstream, e0 + upstream)
        m = (key == normalize_chrom([g.chrom])[0]) & (ps < we) & (pe > max(ws, 0))
        cols.append(np.asarray(X[:, np.flatnonzero(m)].sum(axis=1)).ravel())
    return np.column_stack(cols)


def pseudobulk(X, labels: np.ndarray) -> tuple[np.ndarray, list]:
    types = sorted(pd.unique(labels))
    G = sp.csr_matrix((np.ones(len(labels)), (pd.Categorical(labels, categories=types).codes,
                                              np.arange(len(labels)))), shape=(len(types), len(labels)))
    pb = np.asarray((G @ sp.csr_matrix(X)).todense(), dtype=np.float64)
    pb = pb / pb.sum(axis=1, keepdims=True) * 1e6
    return np.log1p(pb), types


def per_gene_corr(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    A = A - A.mean(0)
    B = B - B.mean(0)
    den = np.sqrt((A ** 2).sum(0) * (B ** 2).sum(0))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (A * B).sum(0) / den
    return r


def main() -> None:
    lines = ["# biclum.prior benchmark (issue 3)", "",
             f"Command: `python benchmarks/prior_gene_activity.py` (repo root). "
             f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
             f"numpy {np.__version__}, scipy {scipy.__version__}, "
             f"anndata {version('anndata')}.", ""]

    def say(s=""):
        print(s)
        lines.append(s)

    ann_path = DATA / "annotation" / "mm10_genes.tsv.gz"
    atac = ad.read_h5ad(DATA / "mop_snareseq_chen2019" / "atac.h5ad")
    rna = ad.read_h5ad(DATA / "mop_snareseq_chen2019" / "rna.h5ad")

    # 1. timing + brute force
    say("## 1. SNARE-seq gene activity: time and brute-force identity")
    t0 = time.perf_counter()
    ga = gene_activity(atac, ann_path)  # cold: includes reading and parsing the annotation table
    cold = time.perf_counter() - t0
    warm = []
    for _ in range(3):
        t0 = time.perf_counter()
        gene_activity(atac, ann_path)
        warm.append(time.perf_counter() - t0)
    timings = {}
    for mode in ("promoter", "distance_weighted"):
        t0 = time.perf_counter()
        g2 = gene_activity(atac, ann_path, mode=mode)
        timings[mode] = (time.perf_counter() - t0, g2.n_vars)
    say(f"- input: {atac.n_obs:,} cells x {atac.n_vars:,} peaks (nnz {atac.X.nnz:,}); annotation "
        f"{ann_path.name}")
    say(f"- gene_body (default): {ga.n_obs:,} x {ga.n_vars:,} genes, nnz {ga.X.nnz:,}, "
        f"{ga.uns['gene_activity']['n_peaks_used']:,} peaks used")
    say(f"- wall time, first call (reads annotation): **{cold:.2f} s**; later calls (annotation cached): "
        f"median {np.median(warm):.2f} s  (acceptance: <= 5 s)")
    for mode, (t, n) in timings.items():
        say(f"- mode={mode}: {t:.2f} s, {n:,} genes")
    ann = read_annotation(ann_path)
    rng = np.random.default_rng(0)
    pick = rng.choice(ga.n_vars, size=min(500, ga.n_vars), replace=False)
    genes = ga.var_names[pick]
    sub = ann.set_index("gene_name", drop=False).loc[genes]
    t0 = time.perf_counter()
    ref = brute_force(atac.X, parse_peaks(atac), sub)
    tb = time.perf_counter() - t0
    got = ga[:, genes].X.toarray()
    same = np.array_equal(got, ref)
    say(f"- brute force (loop over genes) on {len(genes)} random genes (seed 0): identical = **{same}** "
        f"(max abs diff {np.abs(got - ref).max():g}; brute force took {tb:.1f} s)")
    # also genes without peaks (keep_empty) must be all-zero in both
    empty = ann[~ann["gene_name"].isin(ga.var_names)].sample(200, random_state=0)
    ref0 = brute_force(atac.X, parse_peaks(atac), empty)
    say(f"- 200 random genes dropped as empty: brute force all zero = {not ref0.any()}")
    say("")

    # 2. pseudo-bulk correlation RNA vs gene activity
    say("## 2. Pseudo-bulk correlation (15 cell types), gene activity vs RNA")
    labels = atac.obs["cell_type"].astype(str).to_numpy()
    assert (rna.obs_names == atac.obs_names).all()
    shared = rna.var_names.intersection(ga.var_names)
    pb_rna, types = pseudobulk(rna[:, shared].X, labels)
    pb_ga, _ = pseudobulk(ga.X, labels)
    pb_ga = pb_ga[:, ga.var_names.get_indexer(shared)]
    # library-size normalisation uses all genes of each modality
    pb_rna_all, _ = pseudobulk(rna.X, labels)
    pb_rna = pb_rna_all[:, rna.var_names.get_indexer(shared)]
    r = per_gene_corr(pb_ga, pb_rna)
    shuf = []
    for s in range(20):
        perm = np.random.default_rng(s).permutation(len(shared))
        shuf.append(np.nanmedian(per_gene_corr(pb_ga[:, perm], pb_rna)))
    say(f"- {len(types)} cell types, {len(shared):,} genes in both RNA ({rna.n_vars:,}) and gene activity")
    say(f"- median per-gene Pearson r, real gene labels: **{np.nanmedian(r):.3f}** "
        f"(mean {np.nanmean(r):.3f}, {np.mean(r > 0) * 100:.0f}% of genes r > 0)")
    say(f"- median per-gene Pearson r, gene labels shuffled (20 permutations): **{np.mean(shuf):.3f}** "
        f"(range {min(shuf):.3f} to {max(shuf):.3f})")
    say(f"- real > shuffled: {np.nanmedian(r) > max(shuf)}")
    say("")

    # 3. genome check
    say("## 3. Genome-build check")
    for tab in ("mm10_genes.tsv.gz", "hg38_genes.tsv.gz", "hg19_genes.tsv.gz"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            f = genome_check(atac, DATA / "annotation" / tab)
        ws = [str(w.message) for w in caught if issubclass(w.category, BiclumWarning)]
        say(f"- SNARE-seq (mm10) peaks with {tab}: {100 * f:.1f}% of peaks within 1 kb of a TSS; "
            + (f"BiclumWarning: \"{ws[0]}\"" if ws else "no warning"))
    for ds, tabs in (("pbmc_small_archr_testdata/atac_tiles5kb.h5ad", ("hg19_genes.tsv.gz", "hg38_genes.tsv.gz")),
                     ("bmmc_granja2019_liger/atac_peaks.h5ad", ("hg19_genes.tsv.gz", "hg38_genes.tsv.gz",
                                                                "mm10_genes.tsv.gz"))):
        b = ad.read_h5ad(DATA / ds)
        for tab in tabs:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                f = genome_check(b, DATA / "annotation" / tab)
            n = sum(issubclass(w.category, BiclumWarning) for w in caught)
            say(f"- {ds} (hg19) with {tab}: {100 * f:.1f}%; {'warning' if n else 'no warning'}")
    say("")

    # 4. ADT coverage
    say("## 4. ADT -> gene coverage (ECCITE-seq PBMC, CiteFuse)")
    adt = ad.read_h5ad(DATA / "eccite_pbmc_mimitou2019_citefuse" / "adt.h5ad")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pg = protein_to_gene(adt)
    u = pg.uns["protein_to_gene"]
    non_iso = adt.n_vars - len(u["isotypes"])
    say(f"- {adt.n_vars} antibodies, isotypes dropped: {u['isotypes']}; mapped {u['n_mapped']} of {non_iso} "
        f"non-isotype antibodies = **{100 * u['n_mapped'] / non_iso:.1f}%** -> {u['n_genes']} genes; "
        f"unmapped: {u['unmapped'] or 'none'}")
    multi = pg.var[pg.var["n_antibodies"] > 1]
    say("- several antibodies to one gene (aggregate='sum'): "
        + "; ".join(f"{g} <- {a}" for g, a in multi["antibodies"].items()))
    say("")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("\n".join(lines) + "\n")
    print(f"\nwritten {OUT.relative_to(REPO)}")


if __name__ == "__main__":
    sys.exit(main())
