"""Downstream analyses on SNARE-seq (issue 6 acceptance 1-3), treated as UNPAIRED data.

    python benchmarks/downstream_snare.py [--embedding auto|biclum|standin] [--max-epochs N] [--out DIR]

Writes ``benchmarks/results/downstream_snare.md`` and ``downstream_snare_*.png`` and prints the numbers.

* Joint embedding: ``biclum.integrate(rna, atac, modality="atac", annotation=mm10, seed=0)`` when it imports
  and runs (``--embedding auto``, the default); otherwise a STAND-IN: a joint PCA of the shared genes
  (RNA and ATAC gene activity, each log-normalised and z-scored per gene within its modality, projected on
  the eigenvectors of the averaged gene-gene correlation matrices). The report says which one was used.
* The true cell pairing of SNARE-seq is used ONLY to report FOSCTTM / label-transfer accuracy as a sanity
  check; no analysis uses it. ATAC-side labels are transferred from RNA through the embedding (the ATAC
  file's own labels are used only to score the transfer).
* Acceptance 1: gene-peak links over matched metacells vs the distance-matched control.
* Acceptance 2: ATAC-side (gene activity, transferred labels) markers vs RNA-side markers per type, against
  random gene sets of the same size.
* Acceptance 3: TF activity (RNA vs gene activity), enrichment (GMT) and ligand-receptor interactions with
  the bundled example resources.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import anndata as ad  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import scipy.sparse as sp  # noqa: E402

import biclum  # noqa: E402
import biclum.downstream as ds  # noqa: E402
from biclum.downstream._utils import l2_normalize, normalize_matrix  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
SNARE = DATA / "mop_snareseq_chen2019"
ANN = DATA / "annotation" / "mm10_genes.tsv.gz"


def md_table(df: pd.DataFrame, floatfmt: str = ".3g") -> str:
    """Markdown table without the optional ``tabulate`` dependency."""
    def cell(v):
        if isinstance(v, (float, np.floating)):
            return format(float(v), floatfmt)
        return str(v)
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(cell(v) for v in row) + " |")
    return "\n".join(lines)


def standin_embedding(rna, ga, n_comps: int = 30):
    """Joint PCA of the shared genes (sparse; no dense cells x genes copy)."""
    genes = rna.var_names.intersection(ga.var_names)
    parts = []
    for a in (rna[:, genes], ga[:, genes]):
        X = normalize_matrix(sp.csr_matrix(a.X), "log1p").astype(np.float64)
        n = X.shape[0]
        mu = np.asarray(X.mean(axis=0)).ravel()
        sd = np.sqrt(np.maximum(np.asarray(X.multiply(X).mean(axis=0)).ravel() - mu ** 2, 1e-12))
        C = (np.asarray((X.T @ X).todense()) / n - np.outer(mu, mu)) / np.outer(sd, sd)
        parts.append((X, mu, sd, C))
    C = sum(p[3] for p in parts) / len(parts)
    _, V = np.linalg.eigh(C)
    V = V[:, ::-1][:, :n_comps]
    return [np.asarray(X @ (V / sd[:, None])) - (mu / sd) @ V for X, mu, sd, _ in parts], len(genes)


def foscttm(a, b):
    a, b = l2_normalize(a), l2_normalize(b)
    out = []
    for s in range(0, a.shape[0], 2000):  # chunks of rows of the similarity matrix
        S = a[s:s + 2000] @ b.T
        d = S[np.arange(S.shape[0]), np.arange(s, s + S.shape[0])]
        out.append((S > d[:, None]).mean(axis=1))
    f1 = np.concatenate(out)
    out = []
    for s in range(0, b.shape[0], 2000):
        S = b[s:s + 2000] @ a.T
        d = S[np.arange(S.shape[0]), np.arange(s, s + S.shape[0])]
        out.append((S > d[:, None]).mean(axis=1))
    return float(((f1 + np.concatenate(out)) / 2).mean())


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--embedding", choices=["auto", "biclum", "standin"], default="auto")
    p.add_argument("--max-epochs", type=int, default=None)
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    p.add_argument("--n-metacells", type=int, default=500)
    p.add_argument("--k", type=int, default=50)
    p.add_argument("--n-top", type=int, default=50)
    p.add_argument("--n-perm", type=int, default=1000)
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    md = ["# Downstream analyses on SNARE-seq (issue 6)", "",
          f"Command: `python benchmarks/downstream_snare.py {' '.join(argv if argv is not None else sys.argv[1:])}`",
          ""]

    rna = ad.read_h5ad(SNARE / "rna.h5ad")
    atac = ad.read_h5ad(SNARE / "atac.h5ad")
    true_atac_labels = atac.obs["cell_type"].astype(str).to_numpy()
    atac.obs = atac.obs[[]].copy()  # the method never sees ATAC labels
    ga = biclum.prior.gene_activity(atac, str(ANN))
    print(f"SNARE-seq: rna {rna.shape}, atac {atac.shape}, gene activity {ga.shape}")

    # ------------------------------------------------------------------ joint embedding
    used, note = None, ""
    E_r = E_o = None
    loadings = None
    if args.embedding in ("auto", "biclum"):
        try:
            kw = {} if args.max_epochs is None else {"max_epochs": args.max_epochs}
            t = time.time()
            res = biclum.integrate(rna, atac, modality="atac", annotation=str(ANN), seed=0, progress=False, **kw)
            E_r, E_o = res.rna.obsm["X_biclum"], res.other.obsm["X_biclum"]
            loadings = (res.rna, res.other)
            used = "biclum.integrate(rna, atac, modality='atac', annotation=mm10, seed=0" + \
                   (f", max_epochs={args.max_epochs}" if args.max_epochs else "") + f") ({time.time() - t:.0f} s)"
        except Exception as e:  # noqa: BLE001 - fall back to the stand-in, and say so
            if args.embedding == "biclum":
                raise
            note = f"biclum.integrate failed ({type(e).__name__}: {e}); "
    if E_r is None:
        (E_r, E_o), n_shared = standin_embedding(rna, ga)
        used = f"STAND-IN joint PCA of {n_shared} shared genes (RNA + ATAC gene activity), 30 components"
        note += ("rerun `python benchmarks/downstream_snare.py` (default --embedding auto) to use the BiCLUM "
                 "embedding; these numbers only show that the downstream pipeline works on a simple joint embedding.")
    print("embedding:", used, note)
    rna_e, atac_e, ga_e = rna.copy(), atac.copy(), ga.copy()
    rna_e.obsm["X_biclum"] = np.asarray(E_r, dtype=np.float32)
    atac_e.obsm["X_biclum"] = np.asarray(E_o, dtype=np.float32)
    ga_e.obsm["X_biclum"] = np.asarray(E_o, dtype=np.float32)
    fos = foscttm(E_r, E_o)
    tl = ds.transfer_labels(atac_e, rna_e, "cell_type", k=15)
    acc = float((tl["label"].to_numpy() == true_atac_labels).mean())
    atac_labels = tl["label"].to_numpy()
    md += ["## Joint embedding", "", f"- used: {used}"] + ([f"- {note}"] if note else []) + [
           f"- sanity check with the true pairing (not used by any analysis): FOSCTTM = {fos:.3f}; "
           f"kNN label transfer RNA -> ATAC accuracy = {acc:.3f} (k = 15)", ""]
    print(f"FOSCTTM {fos:.3f}, transfer accuracy {acc:.3f}")

    # ------------------------------------------------------------------ acceptance 1: gene-peak links
    t = time.time()
    rna_mc, atac_mc = ds.matched_metacells(rna_e, atac_e, n_metacells=args.n_metacells, k=args.k, seed=0)
    links = ds.gene_peak_links(rna_mc, atac_mc, str(ANN), window=100_000, n_control=5, seed=0)
    summ = ds.links_vs_control(links)
    ds.plot_links_vs_control(links, summ, title="SNARE-seq gene-peak correlations over matched metacells",
                             save=str(out / "downstream_snare_links.png"))
    a = summ.iloc[0]
    near = links[links.pair_type == "nearby"]
    print(f"[1] nearby median r {a.median_nearby:.4f} vs control {a.median_control:.4f}; diff "
          f"{a.median_difference:.4f}; rank-biserial {a.rank_biserial:.4f}; MWU z {a.z:.1f}, p {a.pval:.3g} "
          f"({time.time() - t:.0f} s)")
    fmt = summ.copy()
    for c in ("median_nearby", "median_control", "mean_nearby", "mean_control", "median_difference", "rank_biserial"):
        fmt[c] = fmt[c].map(lambda v: f"{v:.4f}")
    fmt["pval"] = fmt["pval"].map(lambda v: f"{v:.2e}" if v > 0 else "< 1e-300")
    fmt["z"] = fmt["z"].map(lambda v: f"{v:.1f}")
    fmt = fmt.drop(columns=["U"])
    md += ["## 1. Gene-peak links vs distance-matched control", "",
           f"{rna_mc.n_obs} matched metacells ({args.k} RNA + {args.k} ATAC cells around k-means anchors of the joint "
           "embedding); Pearson correlation of log-normalised expression and accessibility; nearby = peak centre "
           "within "
           "100 kb of the TSS (mm10_genes.tsv.gz); control = 5 pairs per nearby pair: same gene, a peak on another "
           "chromosome whose own distance to the nearest measured TSS is in the same distance bin and whose mean "
           "accessibility is in the same quintile. Test: one-sided Mann-Whitney (nearby > control); effect sizes: "
           "difference of medians and rank-biserial correlation (= Cliff's delta).", "",
           md_table(fmt), "",
           f"Nearby pairs with empirical FDR < 0.1 (vs same-bin controls): {int((near.fdr < 0.1).sum())} of "
           f"{len(near)}; "
           "top 10:", "",
           md_table(near.sort_values("correlation", ascending=False).head(10)[
               ["gene", "peak", "distance", "correlation", "pval", "fdr"]], ".3g"), "",
           "![links](downstream_snare_links.png)", ""]

    # ------------------------------------------------------------------ acceptance 2: markers
    t = time.time()
    m_rna = ds.find_markers(rna, "cell_type", method="wilcoxon")
    m_ga = ds.find_markers(ga, atac_labels, method="wilcoxon")
    universe = sorted(set(m_rna.gene) & set(m_ga.gene))
    m_rna_u, m_ga_u = m_rna[m_rna.gene.isin(universe)], m_ga[m_ga.gene.isin(universe)]
    rows = []
    for n_top in (args.n_top, 100):
        ov = ds.marker_overlap(m_ga_u, m_rna_u, n_top=n_top, n_null=10_000, seed=0)
        ov.insert(0, "n_top", n_top)
        rows.append(ov)
    ov_all = pd.concat(rows, ignore_index=True)
    ov50 = ov_all[ov_all.n_top == args.n_top]
    ds.plot_marker_overlap(ov50, title=f"ATAC (gene activity, transferred labels) vs RNA top-{args.n_top} markers",
                           save=str(out / "downstream_snare_marker_overlap.png"))
    ds.plot_marker_dotplot(rna, m_rna, "cell_type", n_top=2, title="RNA top-2 markers per type",
                           save=str(out / "downstream_snare_dotplot_rna.png"))
    ds.plot_marker_dotplot(ga, ds.top_markers(m_rna, 2), atac_labels, n_top=2,
                           title="same genes on ATAC gene activity (transferred labels)",
                           save=str(out / "downstream_snare_dotplot_atac.png"))
    allrow = ov50[ov50.group == "all"].iloc[0]
    print(f"[2] top-{args.n_top} marker overlap ATAC vs RNA: {allrow.overlap} shared vs {allrow.expected:.1f} expected "
          f"(null 95% {allrow.null_q95:.0f}), p_perm {allrow.pval_perm:.2g}; universe {allrow.universe} "
          f"({time.time() - t:.0f} s)")
    md += ["## 2. Marker genes: ATAC side vs RNA side", "",
           f"Wilcoxon one-vs-rest on log-normalised RNA (published labels) and on ATAC gene activity "
           f"(biclum.prior.gene_activity, gene body + 2 kb; labels transferred from RNA by kNN, accuracy {acc:.3f}). "
           f"Universe = {len(universe)} genes tested on both sides. Null: random gene sets of the same size from the "
           "universe (hypergeometric overlap, 10,000 draws per type; 'all' = sum over types).", "",
           md_table(ov_all, ".3g"), "",
           "![overlap](downstream_snare_marker_overlap.png)", "",
           "![dot RNA](downstream_snare_dotplot_rna.png) ![dot ATAC](downstream_snare_dotplot_atac.png)", ""]
    if loadings is not None and "biclum_loadings" in loadings[0].varm:
        try:
            em = ds.embedding_markers(loadings[0], "cell_type")
            ov_e = ds.marker_overlap(em, m_rna, n_top=args.n_top, n_null=10_000)
            r = ov_e[ov_e.group == "all"].iloc[0]
            md += [f"Feature-embedding markers (cosine of RNA gene loadings to centred type centroids) vs RNA Wilcoxon "
                   f"markers, top {args.n_top}: {r.overlap} shared vs {r.expected:.1f} expected, p_perm "
                   f"{r.pval_perm:.2g}.", ""]
            print(f"[2b] embedding markers vs RNA markers: {r.overlap} vs {r.expected:.1f}, p {r.pval_perm:.2g}")
        except Exception as e:  # noqa: BLE001
            md += [f"Feature-embedding markers not computed: {type(e).__name__}: {e}", ""]

    # ------------------------------------------------------------------ acceptance 3: TF activity, enrichment, LR
    t = time.time()
    net = ds.example_path("tf_network_mouse.tsv")
    act_r = ds.tf_activity(rna, net, method="ulm", min_targets=4)
    act_g = ds.tf_activity(ga, net, method="ulm", min_targets=4)
    cmp_ = ds.compare_tf_activity(act_r, rna.obs["cell_type"].astype(str).to_numpy(), act_g, atac_labels,
                                  names=("rna", "atac"))
    ds.plot_tf_activity(cmp_, save=str(out / "downstream_snare_tf_activity.png"))
    print(f"[3a] TF activity ULM: {len(cmp_)} TFs; median per-TF r across types {cmp_.pearson_r.median():.2f}; "
          f"top type agrees {int(cmp_.agree.sum())}/{len(cmp_)} ({time.time() - t:.0f} s)")
    md += ["## 3. TF activity, enrichment, interactions (bundled example resources)", "",
           "### TF activity (ULM, example mouse network `tf_network_mouse.tsv`, TFs with >= 4 measured targets)", "",
           "Per TF: correlation across cell types of the mean z-scored activity on RNA vs on ATAC gene activity "
           "(transferred labels), and the top cell type on each side.", "",
           md_table(cmp_.reset_index(), ".2f"), "",
           "![tf](downstream_snare_tf_activity.png)", ""]

    t = time.time()
    gmt = ds.example_path("gene_sets_mouse.gmt")
    both = pd.concat([m_rna.assign(modality="rna"), m_ga.assign(modality="atac")], ignore_index=True)
    enr = ds.enrich_markers(both[both.gene.isin(universe)], gmt, n_top=args.n_top, universe=universe)
    best = enr.sort_values("pval").groupby("query", sort=True).head(1)
    ds.plot_enrichment(enr, n_top=2, title=f"top-{args.n_top} markers vs example mouse gene sets",
                       save=str(out / "downstream_snare_enrichment.png"))
    print(f"[3b] enrichment: {len(enr)} rows; best term per query:\n" +
          best[["query", "term", "overlap", "fdr"]].to_string(index=False))
    md += [f"### Enrichment (hypergeometric, BH FDR; top-{args.n_top} markers vs `gene_sets_mouse.gmt`; "
           f"universe {len(universe)} genes)", "", "Best term per cell type and side:", "",
           md_table(best[["query", "term", "overlap", "query_size", "term_size", "fold_enrichment", "pval", "fdr"]],
                    ".3g"), "", "![enr](downstream_snare_enrichment.png)", ""]

    t = time.time()
    lrt = ds.example_path("lr_pairs_mouse.tsv")
    lr_rna = ds.ligand_receptor(rna, "cell_type", lrt, n_perm=args.n_perm, seed=0)
    lr_x = ds.ligand_receptor(rna, "cell_type", lrt, receptor_adata=ga, receptor_groupby=atac_labels,
                              n_perm=args.n_perm, seed=0)
    ds.plot_interactions(lr_rna, n_top=25, title="ligand-receptor (RNA -> RNA), top 25",
                         save=str(out / "downstream_snare_interactions.png"))
    sig_r = lr_rna[(lr_rna.fdr < 0.05)]
    sig_x = lr_x[(lr_x.fdr < 0.05)]
    key = ["ligand", "receptor", "sender", "receiver"]
    shared = len(sig_r[key].merge(sig_x[key]))
    print(f"[3c] interactions: RNA->RNA {len(sig_r)} of {len(lr_rna)} FDR<0.05; RNA->ATAC-GA {len(sig_x)} of "
          f"{len(lr_x)}; shared {shared} ({time.time() - t:.0f} s)")
    cols = key + ["ligand_mean", "receptor_mean", "score", "pval", "fdr"]
    md += [f"### Ligand-receptor interactions (`lr_pairs_mouse.tsv`, {args.n_perm} label permutations)", "",
           f"- ligand and receptor on RNA: {len(lr_rna)} tests, {len(sig_r)} with FDR < 0.05",
           f"- ligand on RNA, receptor on the matched ATAC side (gene activity, transferred labels): {len(lr_x)} "
           "tests, "
           f"{len(sig_x)} with FDR < 0.05; {shared} significant on both", "",
           "Top 10 (RNA -> RNA):", "", md_table(lr_rna.head(10)[cols], ".3g"), "",
           "Top 10 (RNA ligand -> ATAC receptor):", "", md_table(lr_x.head(10)[cols], ".3g"), "",
           "![lr](downstream_snare_interactions.png)", ""]

    # ------------------------------------------------------------------ acceptance summary
    ptxt = f"= {a.pval:.2e}" if a.pval > 0 else "< 1e-300 (underflow)"
    md[4:4] = ["## Acceptance summary", "",
               f"1. Gene-peak links: median r nearby {a.median_nearby:.4f} vs distance-matched control "
               f"{a.median_control:.4f} (difference {a.median_difference:.4f}, rank-biserial {a.rank_biserial:.4f}, "
               f"one-sided Mann-Whitney z = {a.z:.1f}, p {ptxt}; {int(a.n_nearby)} nearby / "
               f"{int(a.n_control)} control pairs) "
               f"-> {'PASS' if a.median_difference > 0 and a.pval < 0.05 else 'FAIL'}",
               f"2. Marker overlap ATAC vs RNA (top {args.n_top}, {len(ov50) - 1} types): {int(allrow.overlap)} "
               "shared vs "
               f"{allrow.expected:.1f} expected for random sets of the same size (95% null {allrow.null_q95:.0f}, "
               f"p_perm = {allrow.pval_perm:.2g}) -> {'PASS' if allrow.overlap > allrow.null_q95 else 'FAIL'}",
               f"3. TF activity ({len(cmp_)} TFs, median per-TF r across types {cmp_.pearson_r.median():.2f}), "
               f"enrichment ({enr['query'].nunique()} queries) and interactions ({len(lr_rna)} + {len(lr_x)} tests) "
               "ran "
               "end to end; constructed-case tests: tests/python/test_downstream.py", "",
               f"Total time {time.time() - t0:.0f} s.", ""]
    (out / "downstream_snare.md").write_text("\n".join(md))
    print(f"wrote {out / 'downstream_snare.md'} ({time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
