"""Tests of biclum.downstream on constructed cases with known answers (fast), plus an ECCITE smoke test."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import anndata as ad  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import scipy.sparse as sp  # noqa: E402
from scipy import stats  # noqa: E402

import biclum.downstream as ds  # noqa: E402
from biclum.errors import BiclumInputError  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt
    plt.close("all")


# ----------------------------------------------------------------------------------------------- helpers
def _clustered(n_per, n_types, dim=8, noise=0.15, seed=0, prefix="c"):
    """Cells around one centre per type in a shared embedding space."""
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(123).normal(size=(n_types, dim)) * 2
    lab = np.repeat(np.arange(n_types), n_per)
    E = centres[lab] + noise * rng.normal(size=(lab.size, dim))
    names = [f"{prefix}{i}" for i in range(lab.size)]
    return E.astype(np.float32), np.array([f"T{t}" for t in lab], dtype=object), names


def _counts_adata(n_per, n_types, n_genes, up, seed=0, prefix="c", base=0.3, fold=8.0, embed=True):
    """Poisson counts; ``up`` maps type index -> gene indices that are up ``fold`` times in that type."""
    rng = np.random.default_rng(seed)
    E, lab, names = _clustered(n_per, n_types, seed=seed, prefix=prefix)
    codes = np.array([int(x[1:]) for x in lab])
    mu = np.full((n_types, n_genes), base)
    for t, genes in up.items():
        mu[t, genes] *= fold
    X = rng.poisson(mu[codes]).astype(np.float32)
    a = ad.AnnData(X=sp.csr_matrix(X), obs=pd.DataFrame({"cell_type": lab}, index=names),
                   var=pd.DataFrame(index=[f"G{j}" for j in range(n_genes)]))
    if embed:
        a.obsm["X_biclum"] = E
    return a


def _same(a, b):
    Xa = a.X.toarray() if sp.issparse(a.X) else a.X
    Xb = b.X.toarray() if sp.issparse(b.X) else b.X
    return np.array_equal(Xa, Xb) and a.obs.equals(b.obs) and set(a.obsm) == set(b.obsm)


# ---------------------------------------------------------------------------------------------- matching
def test_match_cells_and_transfer_labels():
    E1, lab1, n1 = _clustered(40, 4, seed=1, prefix="r")
    E2, lab2, n2 = _clustered(30, 4, seed=2, prefix="o")
    rna = ad.AnnData(obs=pd.DataFrame({"cell_type": lab1}, index=n1))
    rna.obsm["X_biclum"] = E1
    oth = ad.AnnData(obs=pd.DataFrame(index=n2))
    oth.obsm["X_biclum"] = E2
    m = ds.match_cells(oth, rna, k=5)
    assert len(m) == 30 * 4 * 5 and set(m.columns) >= {"query", "reference", "rank", "similarity"}
    q_lab = pd.Series(lab2, index=n2)[m["query"]].to_numpy()
    r_lab = pd.Series(lab1, index=n1)[m["reference"]].to_numpy()
    assert (q_lab == r_lab).mean() > 0.99
    assert (np.diff(m["similarity"].to_numpy().reshape(-1, 5), axis=1) <= 1e-6).all()
    tl = ds.transfer_labels(oth, rna, "cell_type", k=10)
    assert list(tl.index) == n2
    assert (tl["label"].to_numpy() == lab2).mean() > 0.99 and tl["confidence"].between(0, 1).all()
    with pytest.raises(BiclumInputError, match="obsm has no embedding"):
        ds.transfer_labels(oth, rna, "cell_type", use_rep="X_nope")


def test_matched_metacells_pure_and_input_untouched():
    rna = _counts_adata(50, 3, 20, {0: [0, 1], 1: [2, 3], 2: [4, 5]}, seed=3, prefix="r")
    oth = _counts_adata(40, 3, 30, {0: [0], 1: [1], 2: [2]}, seed=4, prefix="o")
    del oth.obs["cell_type"]
    rna0, oth0 = rna.copy(), oth.copy()
    mem = ds.assign_metacells(rna, oth, n_metacells=6, k=10, seed=0)
    assert set(mem["modality"]) == {"rna", "other"} and mem["metacell"].nunique() == 6
    # every metacell draws both modalities from the same type
    lab_o = np.repeat(["T0", "T1", "T2"], 40)
    for mc, d in mem.groupby("metacell"):
        r = rna.obs["cell_type"].to_numpy()[d.loc[d.modality == "rna", "index"]]
        o = lab_o[d.loc[d.modality == "other", "index"]]
        assert len(set(r)) == 1 and set(r) == set(o)
    rmc, omc = ds.matched_metacells(rna, oth, n_metacells=6, k=10)
    assert rmc.shape == (6, 20) and omc.shape == (6, 30)
    assert list(rmc.obs_names) == list(omc.obs_names)
    assert (rmc.obs["n_cells"] == 10).all()
    assert _same(rna, rna0) and _same(oth, oth0)


# ------------------------------------------------------------------------------------------- gene-peak links
def _links_case(seed=0, n_types=12, n_per=25):
    """Genes on chr1-chr4, each with a cis peak 5-60 kb away whose accessibility follows the gene's
    cell-type pattern, plus distal peaks (> 300 kb away) with independent patterns."""
    rng = np.random.default_rng(seed)
    rows, peaks, gene_pat, peak_pat = [], [], [], []
    gi = 0
    for c in range(1, 5):
        for j in range(12):
            tss = 1_000_000 + j * 2_000_000
            pat = rng.normal(size=n_types)
            rows.append((f"g{gi}", f"chr{c}", tss + 1, tss + 5000, "+"))
            gene_pat.append(pat)
            off = int(rng.integers(5_000, 60_000)) * (1 if rng.random() < 0.5 else -1)
            peaks.append((f"chr{c}", tss + off - 100, tss + off + 100))
            peak_pat.append(pat + 0.3 * rng.normal(size=n_types))
            for extra in range(2):  # unrelated peaks, also near the gene (distance-matched pool)
                off = int(rng.integers(5_000, 60_000)) * (-1 if extra else 1)
                peaks.append((f"chr{c}", tss + off + 30_000 * extra - 100, tss + off + 30_000 * extra + 100))
                peak_pat.append(rng.normal(size=n_types))
            gi += 1
    ann = pd.DataFrame(rows, columns=["gene_name", "chrom", "start", "end", "strand"])
    G, P = np.array(gene_pat), np.array(peak_pat)
    lab = np.repeat(np.arange(n_types), n_per)
    n = lab.size
    rate_g = np.exp(0.8 * G[:, lab].T)
    rate_p = np.exp(0.8 * P[:, lab].T) * 0.5
    Xg = rng.poisson(rate_g).astype(np.float32)
    Xp = rng.poisson(rate_p).astype(np.float32)
    E, _, names = _clustered(n_per, n_types, seed=seed, prefix="c")
    rna = ad.AnnData(sp.csr_matrix(Xg), obs=pd.DataFrame({"cell_type": lab.astype(str)}, index=names),
                     var=pd.DataFrame(index=ann["gene_name"].to_numpy()))
    pk_names = [f"{c}-{s}-{e}" for c, s, e in peaks]
    atac = ad.AnnData(sp.csr_matrix(Xp), obs=pd.DataFrame(index=[f"a{i}" for i in range(n)]),
                      var=pd.DataFrame(index=pk_names))
    # unpaired: ATAC cells are other draws from the same types, with their own embedding noise
    E2, _, _ = _clustered(n_per, n_types, seed=seed + 7, prefix="a")
    rna.obsm["X_biclum"] = E
    atac.obsm["X_biclum"] = E2
    return rna, atac, ann, lab


def test_nearby_pairs_window_and_strand():
    ann = pd.DataFrame({"gene_name": ["a", "b"], "chrom": ["chr1", "chr2"], "start": [10_001, 50_001],
                        "end": [20_000, 60_000], "strand": ["+", "-"]})
    peaks = ["chr1-10000-10200", "chr1-150000-150200", "chr2-59000-59200", "chr2-200000-200200", "chr3-1-100"]
    pr = ds.nearby_pairs(["a", "b"], peaks, ann, window=100_000)
    assert set(zip(pr.gene, pr.peak)) == {("a", "chr1-10000-10200"), ("b", "chr2-59000-59200")}
    # TSS of b is its end (minus strand, 0-based 59999); peak centre 59100 lies 899 bp downstream of it
    row = pr[pr.gene == "b"].iloc[0]
    assert row.distance == 899 and row.signed_distance == 899


def test_gene_peak_links_recovers_planted_cis_pairs():
    rna, atac, ann, lab = _links_case()
    rmc, amc = ds.matched_metacells(rna, atac, n_metacells=24, k=15, seed=0)
    links = ds.gene_peak_links(rmc, amc, ann, window=100_000, n_control=10, seed=0)
    near = links[links.pair_type == "nearby"]
    ctrl = links[links.pair_type == "control"]
    # planted cis pairs are the peaks whose index is a multiple of 3
    pk_index = pd.Index(atac.var_names).get_indexer(near["peak"])
    planted = near[pk_index % 3 == 0]
    assert len(planted) == 48
    unplanted = near[pk_index % 3 != 0]
    assert planted["correlation"].median() > 0.6
    assert planted["correlation"].median() - unplanted["correlation"].median() > 0.5
    assert planted["fdr"].median() < 0.05 and (planted["pval"] < 0.05).mean() > 0.8
    # control scheme: same genes, peaks on another chromosome, same distance bins
    chrom_of_peak = ctrl["peak"].str.split("-").str[0]
    chrom_of_gene = ann.set_index("gene_name").loc[ctrl["gene"], "chrom"].to_numpy()
    assert (chrom_of_peak.to_numpy() != chrom_of_gene).all()
    matched = near.reset_index(drop=True).loc[ctrl["matched_to"].to_numpy()]
    assert (matched["gene"].to_numpy() == ctrl["gene"].to_numpy()).all()
    assert (matched["distance_bin"].to_numpy() == ctrl["distance_bin"].to_numpy()).all()
    summ = ds.links_vs_control(links)
    allrow = summ.iloc[0]
    assert allrow["subset"] == "all" and allrow["median_difference"] > 0.1
    assert allrow["pval"] < 1e-3 and 0 < allrow["rank_biserial"] <= 1
    # rank-biserial equals Cliff's delta computed directly
    x, y = near["correlation"].to_numpy(), ctrl["correlation"].to_numpy()
    cliff = (np.sign(x[:, None] - y[None, :])).mean()
    assert allrow["rank_biserial"] == pytest.approx(cliff, abs=1e-9)
    fig = ds.plot_links_vs_control(links, summ)
    assert len(fig.axes) == 3


def test_gene_peak_links_pair_correlation_matches_numpy():
    rna, atac, ann, _ = _links_case(seed=2)
    rmc, amc = ds.matched_metacells(rna, atac, n_metacells=12, k=10, seed=1)
    links = ds.gene_peak_links(rmc, amc, ann, n_control=2, method="spearman")
    row = links.iloc[0]
    g = rmc[:, row.gene].X.ravel()
    p = amc[:, row.peak].X.ravel()
    assert row.correlation == pytest.approx(stats.spearmanr(g, p)[0], abs=1e-9)
    with pytest.raises(BiclumInputError, match="same obs names"):
        ds.gene_peak_links(rmc, amc[::-1], ann)


# ---------------------------------------------------------------------------------------------- TF activity
def _tf_case(seed=0):
    up = {0: list(range(0, 10)), 1: list(range(10, 20)), 2: list(range(20, 30))}
    a = _counts_adata(60, 3, 200, up, seed=seed, base=1.0, fold=6.0)
    net = pd.DataFrame({"source": ["TFA"] * 10 + ["TFB"] * 10 + ["TFC"] * 10 + ["TFR"] * 10,
                        "target": [f"G{j}" for j in range(30)] + [f"G{j}" for j in range(20, 30)],
                        "weight": [1.0] * 30 + [-1.0] * 10})
    return a, net


@pytest.mark.parametrize("method", ["ulm", "wmean"])
def test_tf_activity_planted_targets(method):
    a, net = _tf_case()
    a0 = a.copy()
    act = ds.tf_activity(a, net, method=method)
    assert act.shape == (180, 4) and list(act.index) == list(a.obs_names)
    by = ds.activity_by_group(act, a.obs["cell_type"])
    assert by["TFA"].idxmax() == "T0" and by["TFB"].idxmax() == "T1" and by["TFC"].idxmax() == "T2"
    assert by["TFR"].idxmin() == "T2"  # repressor of the T2 genes
    assert _same(a, a0)


def test_tf_activity_ulm_equals_linear_regression_t():
    a, net = _tf_case(seed=5)
    act = ds.tf_activity(a, net, method="ulm", normalize="log1p")
    X = a.X.toarray()
    x = np.log1p(X[7] / X[7].sum() * 1e4)
    w = np.zeros(a.n_vars)
    w[:10] = 1
    lr = stats.linregress(w, x)
    assert act.loc["c7", "TFA"] == pytest.approx(lr.slope / lr.stderr, rel=1e-6)


def test_tf_activity_wmean_perm_gmt_and_compare(tmp_path):
    a, net = _tf_case(seed=1)
    gmt = tmp_path / "net.gmt"
    ds.write_gmt({"TFA": [f"G{j}" for j in range(10)], "TFB": [f"G{j}" for j in range(10, 20)],
                  "TFX": ["G1", "nothere"]}, gmt)
    act_rna = ds.tf_activity(a, str(gmt), method="wmean", n_perm=20)
    assert list(act_rna.columns) == ["TFA", "TFB"]  # TFX has < 5 measured targets
    other = _counts_adata(50, 3, 200, {0: list(range(0, 10)), 1: list(range(10, 20))}, seed=9, prefix="o")
    act_oth = ds.tf_activity(other, str(gmt), method="ulm")
    cmp_ = ds.compare_tf_activity(act_rna, a.obs["cell_type"], act_oth, other.obs["cell_type"])
    assert cmp_["agree"].all() and (cmp_["pearson_r"] > 0.9).all()
    fig = ds.plot_tf_activity(cmp_)
    heat = [ax for ax in fig.axes if ax.get_images()]
    assert len(heat) == 2  # one heatmap per modality (plus their colour bars)
    by = cmp_.attrs["by_group"]
    for ax, name in zip(heat, by):
        assert ax.get_title().startswith(f"TF activity ({name})")
        assert ax.get_images()[0].get_array().shape == by[name].shape
        assert [t.get_text() for t in ax.get_xticklabels()] == list(by[name].columns)
    assert f"top type agrees for {int(cmp_['agree'].sum())}/{len(cmp_)} TFs" in fig._suptitle.get_text()
    with pytest.raises(BiclumInputError, match="no TF has"):
        ds.tf_activity(a, {"TFZ": ["x", "y"]})


# ------------------------------------------------------------------------------------------------- markers
def test_find_markers_planted_and_matches_scipy():
    up = {0: [0, 1, 2], 1: [3, 4], 2: [5]}
    a = _counts_adata(50, 3, 40, up, seed=2, base=0.5, fold=10)
    m = ds.find_markers(a, "cell_type", method="wilcoxon")
    for t, genes in up.items():
        top = m[m.group == f"T{t}"].head(len(genes))["gene"]
        assert set(top) == {f"G{g}" for g in genes}
    # Wilcoxon z / p equal scipy's tie-corrected normal approximation without continuity correction
    Xn = np.log1p(a.X.toarray() / a.X.toarray().sum(1, keepdims=True) * 1e4)
    ing = a.obs["cell_type"].to_numpy() == "T1"
    for gene in ("G3", "G10"):
        j = int(gene[1:])
        ref = stats.mannwhitneyu(Xn[ing, j], Xn[~ing, j], use_continuity=False, method="asymptotic")
        row = m[(m.group == "T1") & (m.gene == gene)].iloc[0]
        assert row.pval == pytest.approx(ref.pvalue, rel=1e-6)
        assert row.auc == pytest.approx(ref.statistic / (ing.sum() * (~ing).sum()), rel=1e-9)
    t = ds.find_markers(a, "cell_type", method="t-test", chunk_mb=0.01)
    ref = stats.ttest_ind(Xn[ing, 3], Xn[~ing, 3], equal_var=False)
    row = t[(t.group == "T1") & (t.gene == "G3")].iloc[0]
    assert row.score == pytest.approx(ref.statistic, rel=1e-6) and row.pval == pytest.approx(ref.pvalue, rel=1e-5)
    # chunking does not change the Wilcoxon result
    m2 = ds.find_markers(a, "cell_type", chunk_mb=0.005)
    pd.testing.assert_frame_equal(m, m2)


def test_cross_modal_markers_embedding_markers_and_overlap():
    up = {0: [0, 1, 2, 3], 1: [4, 5, 6, 7], 2: [8, 9, 10, 11]}
    rna = _counts_adata(50, 3, 60, up, seed=3, prefix="r", fold=6)
    oth = _counts_adata(40, 3, 60, up, seed=4, prefix="o", fold=4)
    true_o = oth.obs["cell_type"].to_numpy().copy()
    del oth.obs["cell_type"]
    cm = ds.cross_modal_markers(rna, oth, "cell_type")
    assert (cm.attrs["other_labels"].to_numpy() == true_o).mean() > 0.99
    assert set(cm["modality"]) == {"rna", "other"}
    ov = ds.marker_overlap(cm[cm.modality == "other"], cm[cm.modality == "rna"], n_top=4, n_null=2000)
    allrow = ov[ov.group == "all"].iloc[0]
    assert allrow["overlap"] == 12 and allrow["expected"] == pytest.approx(3 * 16 / 60)
    assert allrow["pval_perm"] < 0.001 and (ov.loc[ov.group != "all", "pval_hypergeom"] < 0.01).all()
    # random marker lists do not overlap more than the null
    rng = np.random.default_rng(0)
    genes = list(rna.var_names)
    rnd = {g: list(rng.choice(genes, 4, replace=False)) for g in ("T0", "T1", "T2")}
    ov_r = ds.marker_overlap(rnd, ds.top_markers(cm[cm.modality == "rna"], 4), universe=genes, n_null=2000)
    assert ov_r[ov_r.group == "all"]["pval_perm"].iloc[0] > 0.01
    # embedding markers: loadings of the marker genes point to their type's centroid
    E = rna.obsm["X_biclum"]
    lab = rna.obs["cell_type"].to_numpy()
    cent = np.vstack([E[lab == t].mean(0) for t in ("T0", "T1", "T2")]) - E.mean(0)
    L = np.random.default_rng(1).normal(size=(60, E.shape[1])) * 0.1
    for t, genes_t in up.items():
        L[genes_t] += cent[t]
    L[59] = 0  # unused feature
    r2 = rna.copy()
    r2.varm["biclum_loadings"] = L
    em = ds.embedding_markers(r2, "cell_type")
    assert "G59" not in set(em["gene"])
    for t, genes_t in up.items():
        assert set(em[em.group == f"T{t}"].head(4)["gene"]) == {f"G{g}" for g in genes_t}
    fig = ds.plot_marker_dotplot(rna, cm[cm.modality == "rna"], "cell_type", n_top=2)
    ax = fig.axes[0]
    genes = [t.get_text() for t in ax.get_xticklabels()]
    assert len(genes) == 6 and set(genes) <= set(rna.var_names)  # 2 markers x 3 types
    assert [t.get_text() for t in ax.get_yticklabels()] == ["T0", "T1", "T2"]
    assert len(ax.collections[0].get_offsets()) == 6 * 3  # one dot per gene and type
    fig2 = ds.plot_marker_overlap(ov)
    ax2 = fig2.axes[0]
    assert len(ax2.patches) == 2 * 3  # observed and expected bars per type
    assert sorted(p.get_height() for p in ax2.patches[:3]) == sorted(ov.loc[ov.group != "all", "overlap"])
    assert "all types: 12 shared" in ax2.get_title()


# ----------------------------------------------------------------------------------------------- enrichment
def test_enrichment_planted_set_is_top_and_p_is_hypergeometric(tmp_path):
    rng = np.random.default_rng(0)
    universe = [f"g{i}" for i in range(500)]
    sets = {f"S{i}": list(rng.choice(universe, 30, replace=False)) for i in range(40)}
    sets["PLANTED"] = universe[:30]
    gmt = tmp_path / "sets.gmt"
    ds.write_gmt(sets, gmt)
    assert ds.read_gmt(gmt)["PLANTED"] == universe[:30]
    query = universe[:12] + list(rng.choice(universe[30:], 8, replace=False))
    enr = ds.enrichment({"q": query}, str(gmt), universe=universe)
    top = enr.iloc[0]
    assert top["term"] == "PLANTED" and top["overlap"] >= 12 and top["fdr"] < 1e-6
    # p equals the one-sided Fisher exact test of the 2x2 table
    k, n, K, N = int(top.overlap), int(top.query_size), int(top.term_size), int(top.universe_size)
    fisher = stats.fisher_exact([[k, n - k], [K - k, N - n - K + k]], alternative="greater")[1]
    assert top["pval"] == pytest.approx(fisher, rel=1e-9)
    assert set(top["genes"].split(";")) == set(query) & set(universe[:30])
    # enrich_markers on a marker table with planted markers
    markers = pd.DataFrame({"group": ["A"] * 500, "gene": universe, "score": np.r_[np.arange(500, 480, -1),
                                                                                   np.zeros(480)]})
    em = ds.enrich_markers(markers, sets, n_top=20)
    assert em.iloc[0]["term"] == "PLANTED" and em.iloc[0]["query"] == "A"
    fig = ds.plot_enrichment(enr, n_top=3)
    ax = fig.axes[0]
    terms = [t.get_text() for t in ax.get_yticklabels()]
    assert terms[0] == "PLANTED" and len(terms) == 3  # one query: its 3 best terms, best first
    assert len(ax.collections[0].get_offsets()) == 3


# --------------------------------------------------------------------------------------------- interactions
def test_ligand_receptor_planted_pair_significant():
    # 4 types; L0 up in T0 (sender), R0 up in T2 (receiver); L1/R1 flat
    a = _counts_adata(40, 4, 10, {0: [0], 2: [1]}, seed=6, base=1.0, fold=8.0)
    a.var_names = ["L0", "R0", "L1", "R1"] + [f"X{i}" for i in range(6)]
    lr = pd.DataFrame({"ligand": ["L0", "L1", "Lmissing"], "receptor": ["R0", "R1", "R0"], "pathway": ["p", "q", "r"]})
    res = ds.ligand_receptor(a, "cell_type", lr, n_perm=1000, seed=0)
    assert len(res) == 2 * 4 * 4 and "pathway" in res.columns
    top = res.iloc[0]
    assert (top.ligand, top.receptor, top.sender, top.receiver) == ("L0", "R0", "T0", "T2")
    assert top.pval <= 2 / 1001 and top.fdr < 0.05
    flat = res[res.ligand == "L1"]
    assert (flat["fdr"] > 0.05).all()
    # receptor on another (unpaired) modality with transferred labels
    oth = _counts_adata(30, 4, 4, {2: [1]}, seed=7, prefix="o", base=1.0, fold=8.0)
    oth.var_names = ["L0", "R0", "L1", "R1"]
    labs = ds.transfer_labels(oth, a, "cell_type")["label"]
    res2 = ds.ligand_receptor(a, "cell_type", lr, receptor_adata=oth, receptor_groupby=labs.to_numpy(), n_perm=300,
                              score="mean")
    t2 = res2.iloc[0]
    assert (t2.ligand, t2.receptor, t2.sender, t2.receiver) == ("L0", "R0", "T0", "T2") and t2.fdr < 0.05
    fig = ds.plot_interactions(res, n_top=10)
    ax = fig.axes[0]
    pairs = [t.get_text() for t in ax.get_yticklabels()]
    assert pairs[0] == "L0 -> R0" and "T0 -> T2" in [t.get_text() for t in ax.get_xticklabels()]
    assert 1 <= len(ax.collections[0].get_offsets()) <= 10
    with pytest.raises(BiclumInputError, match="no pair"):
        ds.ligand_receptor(a, "cell_type", pd.DataFrame({"ligand": ["x"], "receptor": ["y"]}), n_perm=1)


def test_example_files_load():
    for sp_ in ("mouse", "human"):
        net = ds.read_network(ds.example_path(f"tf_network_{sp_}.tsv"))
        assert {"source", "target", "weight"} <= set(net.columns) and net["source"].nunique() >= 9
        assert len(ds.read_gmt(ds.example_path(f"gene_sets_{sp_}.gmt"))) >= 10
        assert len(ds.read_lr_table(ds.example_path(f"lr_pairs_{sp_}.tsv"))) >= 30
    with pytest.raises(BiclumInputError, match="no example file"):
        ds.example_path("nope.tsv")


# ------------------------------------------------------------------------------------ real data smoke test
@pytest.mark.slow
def test_eccite_end_to_end(shared_data):
    d = shared_data / "eccite_pbmc_mimitou2019_citefuse"
    rna = ad.read_h5ad(d / "rna.h5ad")
    keep = rna.obs["cell_type"] != "unassigned"
    rna = rna[keep.to_numpy()].copy()
    act = ds.tf_activity(rna, ds.example_path("tf_network_human.tsv"))
    by = ds.activity_by_group(act, rna.obs["cell_type"])
    assert by["SPI1"].idxmax() == "CD14/CD11b+ myeloid" and by["PAX5"].idxmax() == "B"
    m = ds.find_markers(rna, "cell_type")
    enr = ds.enrich_markers(m, ds.example_path("gene_sets_human.gmt"), n_top=100)
    best = enr.sort_values("pval").groupby("query").head(1).set_index("query")["term"]
    assert best["CD14/CD11b+ myeloid"] == "MONOCYTE" and best["B"] == "B_CELL"
    lr = ds.ligand_receptor(rna, "cell_type", ds.example_path("lr_pairs_human.tsv"), n_perm=200)
    assert len(lr) > 0 and lr["pval"].between(0, 1).all()
