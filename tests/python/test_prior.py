"""Tests of biclum.prior: peak parsing, annotation readers, gene activity, genome check, ADT -> genes."""
from __future__ import annotations

import gzip
import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from biclum.errors import BiclumInputError, BiclumWarning
from biclum.prior import (ADT_GENE_MAP, gene_activity, genome_check, is_isotype, match_antibody,
                          normalize_chrom, parse_peaks, protein_to_gene, read_annotation)

# --------------------------------------------------------------------------- fixtures

# 1-based inclusive gene records
ANN = pd.DataFrame({
    "gene_name": ["Plus1", "Minus1", "Plus2", "MtGene", "Far"],
    "chrom": ["chr1", "chr1", "chr2", "chrM", "chr1"],
    "start": [10_001, 20_001, 5_001, 101, 900_001],
    "end": [12_000, 25_000, 6_000, 600, 901_000],
    "strand": ["+", "-", "+", "+", "-"],
})


def _atac(names, X=None, obs=None, var=None):
    n = len(names)
    if X is None:
        X = sp.csr_matrix(np.arange(1, 3 * n + 1, dtype=np.float32).reshape(3, n))
    obs = obs if obs is not None else pd.DataFrame({"cell_type": ["a", "b", "c"]},
                                                   index=[f"c{i}" for i in range(X.shape[0])])
    return ad.AnnData(X=X, obs=obs, var=var if var is not None else pd.DataFrame(index=names))


def _brute_force(X, peaks: pd.DataFrame, ann: pd.DataFrame, upstream=2000, downstream=0):
    """Reference: loop over genes, gene body + upstream window, half-open overlap."""
    key = normalize_chrom(peaks["chrom"])
    ps, pe = peaks["start"].to_numpy(), np.maximum(peaks["end"].to_numpy(), peaks["start"].to_numpy() + 1)
    X = sp.csc_matrix(X)
    cols = []
    for _, g in ann.iterrows():
        s0, e0 = g["start"] - 1, g["end"]
        if g["strand"] == "+":
            ws, we = max(s0 - upstream, 0), e0 + downstream
        else:
            ws, we = max(s0 - downstream, 0), e0 + upstream
        m = (key == normalize_chrom([g["chrom"]])[0]) & (ps < we) & (pe > ws)
        cols.append(np.asarray(X[:, np.flatnonzero(m)].sum(axis=1)).ravel())
    return np.column_stack(cols)


# --------------------------------------------------------------------------- peaks
@pytest.mark.parametrize("names", [
    ["chr1-100-200", "chr2-5-10"], ["chr1:100-200", "chr2:5-10"], ["chr1_100_200", "chr2_5_10"],
    ["chr1:100_200", "chr2:5_10"]])
def test_parse_peaks_formats(names):
    df = parse_peaks(names)
    assert list(df["chrom"]) == ["chr1", "chr2"]
    assert list(df["start"]) == [100, 5] and list(df["end"]) == [200, 10]
    assert df["start"].dtype == np.int64 and list(df.index) == names


def test_parse_peaks_scaffold_and_var_columns():
    df = parse_peaks(["chr1_KI270706v1_random-10-20", "GL000194.1-1-5"])
    assert list(df["chrom"]) == ["chr1_KI270706v1_random", "GL000194.1"]
    var = pd.DataFrame({"seqnames": ["1", "X"], "start": [5, 7], "end": [9, 11]}, index=["p1", "p2"])
    df = parse_peaks(_atac(["p1", "p2"], var=var))
    assert list(df["chrom"]) == ["1", "X"] and list(df["end"]) == [9, 11]


def test_parse_peaks_errors():
    with pytest.raises(BiclumInputError, match="no coordinates"):
        parse_peaks(["chr1-100-200", "Gapdh"])
    with pytest.raises(BiclumInputError, match="end before they start"):
        parse_peaks(["chr1-300-200"])
    df = parse_peaks(["chr1-100-200", "Gapdh"], strict=False)
    assert df["chrom"].iloc[1] is None and df["start"].iloc[1] == -1


def test_normalize_chrom():
    got = normalize_chrom(["chr1", "1", "CHR1", "chrM", "MT", "chrMT", "M", "chrX", "x", "chrUn_gl1"])
    assert list(got) == ["1", "1", "1", "M", "M", "M", "M", "X", "X", "UN_GL1"]


# --------------------------------------------------------------------------- annotation readers
GTF = (
    '#!genome-build test\n'
    'chr1\tsrc\tgene\t10001\t12000\t.\t+\t.\tgene_id "G1"; gene_name "Plus1"; gene_biotype "protein_coding";\n'
    'chr1\tsrc\ttranscript\t10001\t11000\t.\t+\t.\tgene_id "G1"; transcript_id "T1"; gene_name "Plus1";\n'
    'chr1\tsrc\tgene\t20001\t25000\t.\t-\t.\tgene_id "G2"; gene_name "Minus1";\n'
    'chr1\tsrc\tgene\t30001\t30100\t.\t-\t.\tgene_id "G3"; gene_name "Minus1";\n'
    '1\tsrc\tgene\t40001\t40100\t.\t+\t.\tgene_id "G4";\n'
)
GFF3 = (
    '##gff-version 3\n'
    'chr1\tsrc\tgene\t10001\t12000\t.\t+\t.\tID=gene:G1;Name=Plus1;biotype=protein_coding\n'
    'chr1\tsrc\tmRNA\t10001\t11000\t.\t+\t.\tID=transcript:T1;Parent=gene:G1\n'
    'chr1\tsrc\tncRNA_gene\t20001\t25000\t.\t-\t.\tID=gene:G2;Name=Minus1\n'
)


def test_read_gtf_gff3(tmp_path):
    p = tmp_path / "a.gtf.gz"
    with gzip.open(p, "wt") as fh:
        fh.write(GTF)
    df = read_annotation(p)
    assert list(df.columns[:5]) == ["gene_name", "chrom", "start", "end", "strand"]
    # Minus1 duplicated: the longest record (20001-25000) is kept; G4 has no name -> gene_id
    assert list(df["gene_name"]) == ["Plus1", "Minus1", "G4"]
    assert df.set_index("gene_name").loc["Minus1", "start"] == 20001
    assert read_annotation(p, duplicates="first").shape[0] == 3
    assert read_annotation(p, duplicates="keep").shape[0] == 4
    q = tmp_path / "a.gff3"
    q.write_text(GFF3)
    df = read_annotation(q)
    assert list(df["gene_name"]) == ["Plus1", "Minus1"] and list(df["strand"]) == ["+", "-"]
    assert list(df["gene_id"]) == ["G1", "G2"]


def test_read_gtf_without_gene_records(tmp_path):
    p = tmp_path / "tx.gtf"
    p.write_text('chr1\ts\texon\t100\t200\t.\t+\t.\tgene_name "A";\n'
                 'chr1\ts\texon\t500\t900\t.\t+\t.\tgene_name "A";\n')
    df = read_annotation(p)
    assert df.iloc[0][["gene_name", "start", "end"]].tolist() == ["A", 100, 900]


def test_read_bed6_and_tables(tmp_path):
    bed = tmp_path / "g.bed"
    bed.write_text("chr1\t10000\t12000\tPlus1\t0\t+\nchr1\t20000\t25000\tMinus1\t0\t-\n")
    df = read_annotation(bed)
    assert list(df["start"]) == [10001, 20001] and list(df["end"]) == [12000, 25000]  # 0-based -> 1-based
    tsv = tmp_path / "g.tsv.gz"
    ANN.assign(strand=[1, -1, 1, 1, -1]).to_csv(tsv, sep="\t", index=False)
    df = read_annotation(tsv)
    assert list(df["strand"]) == ["+", "-", "+", "+", "-"]
    pd.testing.assert_frame_equal(read_annotation(ANN), ANN)
    alias = ANN.rename(columns={"gene_name": "symbol", "chrom": "seqnames"})
    assert list(read_annotation(alias)["gene_name"]) == list(ANN["gene_name"])


def test_annotation_errors(tmp_path):
    with pytest.raises(BiclumInputError, match="no strand column"):
        read_annotation(ANN.drop(columns="strand"))
    bed = tmp_path / "g4.bed"
    bed.write_text("chr1\t10000\t12000\tPlus1\n")
    with pytest.raises(BiclumInputError, match="strand"):
        read_annotation(bed)
    with pytest.raises(BiclumInputError, match="does not exist"):
        read_annotation(tmp_path / "missing.gtf")


# --------------------------------------------------------------------------- gene activity
PEAKS = [
    "chr1-8000-8100",    # 2 kb upstream of Plus1's TSS (10001 -> 0-based 10000): overlaps window [8000, 12000)
    "chr1-7000-7999",    # ends at 7999 (half-open), outside
    "chr1-11900-12100",  # gene end of Plus1
    "chr1-25500-25600",  # upstream of Minus1 (TSS at 25000, window to 27000)
    "chr1-27000-27100",  # starts at window end of Minus1 -> outside
    "chr2-4990-5010",    # TSS of Plus2
    "chrM-150-160",      # MtGene
]


def test_gene_activity_basic_counts():
    atac = _atac(PEAKS)
    before = atac.X.copy()
    ga = gene_activity(atac, ANN, genome_check=False)
    assert sp.isspmatrix_csr(ga.X) and ga.X.dtype == np.float32
    assert list(ga.var_names) == ["Plus1", "Minus1", "Plus2", "MtGene"]  # "Far" has no peak: dropped
    X = atac.X.toarray()
    want = np.column_stack([X[:, [0, 2]].sum(1), X[:, 3], X[:, 5], X[:, 6]])
    np.testing.assert_array_equal(ga.X.toarray(), want)
    assert list(ga.var["n_peaks"]) == [2, 1, 1, 1]
    assert list(ga.var.columns[:4]) == ["chrom", "start", "end", "strand"]
    assert ga.obs.equals(atac.obs) and ga.obs is not atac.obs
    assert (atac.X != before).nnz == 0 and list(atac.var_names) == PEAKS  # input untouched
    p = ga.uns["gene_activity"]
    assert p["mode"] == "gene_body" and p["upstream"] == 2000 and p["n_genes"] == 4
    np.testing.assert_array_equal(ga.X.toarray(), _brute_force(atac.X, parse_peaks(PEAKS),
                                                               ANN.iloc[:4]))
    full = gene_activity(atac, ANN, genome_check=False, keep_empty=True)
    assert full.n_vars == 5 and full[:, "Far"].X.nnz == 0


def test_gene_activity_chromosome_reconciliation():
    renamed = [p.replace("chr", "").replace("M-", "MT-") for p in PEAKS]  # 1-..., MT-...
    atac = _atac(renamed)
    ga = gene_activity(atac, ANN, genome_check=False)
    assert "MtGene" in ga.var_names and ga.n_vars == 4
    ann = ANN.assign(chrom=["1", "1", "2", "MT", "1"])
    ga2 = gene_activity(_atac([p.replace("chrM", "chrMT") for p in PEAKS]), ann, genome_check=False)
    np.testing.assert_array_equal(ga.X.toarray(), ga2.X.toarray())
    ga3 = gene_activity(_atac([p.upper().replace("-", ":", 1) for p in PEAKS]), ann, genome_check=False)
    np.testing.assert_array_equal(ga.X.toarray(), ga3.X.toarray())


def test_gene_activity_promoter_and_distance():
    atac = _atac(PEAKS)
    pr = gene_activity(atac, ANN, mode="promoter", upstream=2000, downstream=500, genome_check=False)
    X = atac.X.toarray()
    # Plus1 promoter [8000, 10501): peak 0 only; Minus1 TSS 0-based 24999: [24499, 27000): peak 3
    np.testing.assert_array_equal(pr[:, "Plus1"].X.toarray().ravel(), X[:, 0])
    np.testing.assert_array_equal(pr[:, "Minus1"].X.toarray().ravel(), X[:, 3])
    dw = gene_activity(atac, ANN, mode="distance_weighted", decay=5000.0, max_distance=100_000,
                       genome_check=False)
    # Plus1 window [8000, 12000): peaks 0, 2 weight 1; d = bp between nearest bases: peak 1 (last base 7998)
    # d = 2; peak 3 (first base 25500) d = 13501; peak 4 d = 15001
    w = np.array([1, np.exp(-2 / 5000), 1, np.exp(-13501 / 5000), np.exp(-15001 / 5000), 0, 0])
    np.testing.assert_allclose(dw[:, "Plus1"].X.toarray().ravel(), X @ w, rtol=1e-5)
    assert dw.uns["gene_activity"]["mode"] == "distance_weighted"


def test_gene_activity_random_vs_brute_force():
    rng = np.random.default_rng(0)
    n_peaks, n_genes = 400, 60
    chrom = rng.choice(["chr1", "chr2", "chrX"], n_peaks)
    start = rng.integers(0, 200_000, n_peaks)
    peaks = pd.DataFrame({"chrom": chrom, "start": start, "end": start + rng.integers(50, 3000, n_peaks)},
                         index=[f"p{i}" for i in range(n_peaks)])
    gs = rng.integers(1, 200_000, n_genes)
    ann = pd.DataFrame({"gene_name": [f"G{i}" for i in range(n_genes)], "chrom": rng.choice(["1", "2", "X"], n_genes),
                        "start": gs, "end": gs + rng.integers(0, 20_000, n_genes),
                        "strand": rng.choice(["+", "-"], n_genes)})
    X = sp.random(20, n_peaks, density=0.2, random_state=0, format="csr", dtype=np.float32)
    X.data = np.ceil(X.data * 5)
    atac = ad.AnnData(X=X, var=peaks)
    ga = gene_activity(atac, ann, genome_check=False, keep_empty=True, upstream=1500, downstream=300)
    np.testing.assert_array_equal(ga.X.toarray(), _brute_force(X, peaks, ann, 1500, 300))


def test_gene_activity_gene_level_passthrough():
    X = sp.random(3, 4, density=0.5, random_state=1, format="csc", dtype=np.float64)
    gl = _atac(["Plus1", "Minus1", "Gapdh", "Actb"], X=X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = gene_activity(gl, ANN)
    assert sp.isspmatrix_csr(out.X) and out.X.dtype == np.float32
    assert list(out.var_names) == list(gl.var_names) and out.uns["gene_activity"]["gene_level"]
    np.testing.assert_allclose(out.X.toarray(), X.toarray(), rtol=1e-6)
    assert sp.isspmatrix_csc(gl.X)  # input untouched
    assert gene_activity(gl, None, gene_level=True).n_vars == 4
    with pytest.raises(BiclumInputError, match="no peak coordinates"):
        gene_activity(gl, ANN, gene_level=False)


def test_gene_activity_errors():
    with pytest.raises(BiclumInputError, match="no peak coordinates"):
        gene_activity(_atac(["peak_a", "peak#2", "3"]), ANN)
    with pytest.raises(BiclumInputError, match="no peak of atac overlaps any gene"):
        gene_activity(_atac(["chr5-100-200", "chr5-300-400"]), ANN, genome_check=False)
    with pytest.raises(BiclumInputError, match="no strand column"):
        gene_activity(_atac(PEAKS), ANN.drop(columns="strand"))
    with pytest.raises(BiclumInputError, match="mode"):
        gene_activity(_atac(PEAKS), ANN, mode="tss")
    with pytest.raises(BiclumInputError, match="annotation is None"):
        gene_activity(_atac(PEAKS), None)


def test_gene_activity_drops_uncoordinated_features_with_warning():
    atac = _atac(PEAKS + ["weird"] , X=sp.csr_matrix(np.ones((3, len(PEAKS) + 1), np.float32)))
    with pytest.warns(BiclumWarning, match="no coordinates"):
        ga = gene_activity(atac, ANN, genome_check=False)
    assert ga.n_vars == 4


def test_genome_check_small():
    # peaks at TSSs: silent
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        f = genome_check(["chr1-9900-10100", "chr1-24900-25100", "chr2-4990-5010"], ANN)
    assert f == 1.0
    with pytest.warns(BiclumWarning, match="different genome build"):
        f = genome_check(["chr1-500000-500100", "chr2-800000-800100"], ANN)
    assert f == 0.0


# --------------------------------------------------------------------------- protein
def test_match_antibody_names():
    cases = {"MHCII (HLA-DR)": "HLA-DRA", "CD8a": "CD8A", "CD45RA_TotalSeqB": "PTPRC", "ADT_CD3": "CD3E",
             "anti-human CD4": "CD4", "Hu.CD16_3G8": "FCGR3A", "CD197/CCR7": "CCR7", "cd-279 (PD-1)": "PDCD1",
             "B7-H1 (PD-L1)": "CD274", "IL7Ralpha (CD127)": "IL7R", "TCRgd": "TRDC", "HLA-A,B,C": "HLA-A",
             "CD11B": "ITGAM", "Siglec-8": "SIGLEC8", "PTPRC": "PTPRC", "IgM": "IGHM"}
    for name, gene in cases.items():
        assert match_antibody(name) == gene, name
    assert match_antibody("NotAnAntibody") is None
    assert match_antibody("MyGene", genes=["MYGENE"]) == "MYGENE"
    assert len(ADT_GENE_MAP) >= 150


def test_is_isotype():
    for n in ["IgG1", "IgG2a", "IgG2b", "Mouse IgG1 kappa", "Rat IgG2b, k", "Mouse_IgG2a_isotype_Ctrl",
              "Rat IgG1 Isotype Control", "Armenian Hamster IgG", "mouse IgM", "isotype_ctrl_1"]:
        assert is_isotype(n), n
    for n in ["IgM", "IgD", "CD4", "TIGIT", "HLA-DR", "CD45RA_TotalSeqB"]:
        assert not is_isotype(n), n


def _adt():
    names = ["CD3", "CD45RA", "CD45RO", "IgG1", "Mouse IgG2a kappa", "CD4", "Mystery-7"]
    X = np.array([[1, 2, 3, 9, 9, 4, 5], [0, 5, 1, 9, 9, 0, 2]], dtype=np.float64)
    return ad.AnnData(X=X, obs=pd.DataFrame(index=["a", "b"]), var=pd.DataFrame(index=names))


def test_protein_to_gene_aggregate_and_warning(tmp_path):
    adt = _adt()
    with pytest.warns(BiclumWarning, match="Mystery-7"):
        out = protein_to_gene(adt)
    assert list(out.var_names) == ["CD3E", "PTPRC", "CD4"] and out.X.dtype == np.float32
    np.testing.assert_array_equal(out.X, [[1, 5, 4], [0, 6, 0]])
    u = out.uns["protein_to_gene"]
    assert u["mapping"]["CD45RO"] == "PTPRC" and u["unmapped"] == ["Mystery-7"]
    assert u["isotypes"] == ["IgG1", "Mouse IgG2a kappa"]
    assert out.var.loc["PTPRC", "n_antibodies"] == 2
    out.write_h5ad(tmp_path / "p.h5ad")  # uns is serialisable
    for agg, want in {"mean": [2.5, 3], "max": [3, 5], "first": [2, 5]}.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", BiclumWarning)
            o = protein_to_gene(adt, aggregate=agg)
        np.testing.assert_allclose(np.asarray(o[:, "PTPRC"].X).ravel(), want)
    adt_sp = adt.copy()
    adt_sp.X = sp.csr_matrix(adt.X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BiclumWarning)
        o = protein_to_gene(adt_sp, aggregate="max")
    assert sp.isspmatrix_csr(o.X)
    np.testing.assert_allclose(o[:, "PTPRC"].X.toarray().ravel(), [3, 5])
    assert adt.var_names[0] == "CD3" and adt.X.dtype == np.float64  # input untouched


def test_protein_to_gene_overrides():
    adt = _adt()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = protein_to_gene(adt, mapping={"Mystery-7": "MYST7", "cd3": "CD3D"})
    assert "MYST7" in out.var_names and "CD3D" in out.var_names and "CD3E" not in out.var_names
    out = protein_to_gene(adt, mapping=["CD3E", None, "PTPRC", "", None, "CD4", "X7"])
    assert list(out.var_names) == ["CD3E", "PTPRC", "CD4", "X7"]
    with pytest.raises(BiclumInputError, match="one gene"):
        protein_to_gene(adt, mapping=["CD3E"])
    with pytest.raises(BiclumInputError, match="aggregate"):
        protein_to_gene(adt, aggregate="median")
    with pytest.raises(BiclumInputError, match="none of the"):
        protein_to_gene(ad.AnnData(X=np.ones((2, 2)), var=pd.DataFrame(index=["IgG1", "IgG2a"])))


# --------------------------------------------------------------------------- real data
@pytest.mark.slow
def test_eccite_adt_coverage(shared_data):
    adt = ad.read_h5ad(shared_data / "eccite_pbmc_mimitou2019_citefuse" / "adt.h5ad")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BiclumWarning)
        out = protein_to_gene(adt)
    u = out.uns["protein_to_gene"]
    non_iso = adt.n_vars - len(u["isotypes"])
    assert set(u["isotypes"]) == {"IgG1", "IgG2a"}
    assert u["n_mapped"] / non_iso >= 0.9


@pytest.mark.slow
def test_snare_gene_activity_and_genome_check(shared_data):
    atac = ad.read_h5ad(shared_data / "mop_snareseq_chen2019" / "atac.h5ad")
    ann_dir = shared_data / "annotation"
    with warnings.catch_warnings():
        warnings.simplefilter("error", BiclumWarning)
        ga = gene_activity(atac, ann_dir / "mm10_genes.tsv.gz")
    assert ga.n_obs == atac.n_obs and ga.X.dtype == np.float32 and ga.var_names.is_unique
    with pytest.warns(BiclumWarning, match="mouse"):
        genome_check(atac, ann_dir / "hg38_genes.tsv.gz")
    ann = read_annotation(ann_dir / "mm10_genes.tsv.gz")
    sub = ann[ann["gene_name"].isin(ga.var_names[::25])]
    ref = _brute_force(atac.X, parse_peaks(atac), sub)
    np.testing.assert_array_equal(ga[:, sub["gene_name"]].X.toarray(), ref)


def test_gene_activity_auto_widens_only_a_small_peak_set(shared_data, biclum_log):
    """gene_activity="auto" (biclum.setup.atac_to_genes): the multiome starter's 599 peaks share 38 genes with
    its RNA through their gene bodies, so they are widened to distance-weighted; the ArchR PBMC's are not."""
    from biclum.datasets import load_shared
    from biclum.setup import WIDEN_BELOW_SHARED, atac_to_genes, fitted_gene_activity_options

    rna, atac, _, annotation = load_shared("neurips_multiome")
    wide = atac_to_genes(atac, rna.var_names, annotation, {"mode": "auto"})
    assert wide.uns["gene_activity"]["mode"] == "distance_weighted"
    assert wide.var_names.isin(rna.var_names).sum() >= WIDEN_BELOW_SHARED
    assert "fewer than 100" in biclum_log.text
    assert fitted_gene_activity_options(wide.uns["gene_activity"])["mode"] == "distance_weighted"
    rna, atac, _, annotation = load_shared("pbmc_small")
    body = atac_to_genes(atac, rna.var_names, annotation, {"mode": "auto"})
    assert body.uns["gene_activity"]["mode"] == "gene_body"
    fixed = atac_to_genes(atac, rna.var_names, annotation, {"mode": "promoter"})
    assert fixed.uns["gene_activity"]["mode"] == "promoter"
