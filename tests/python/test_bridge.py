"""The R bridge without R: the tagged format each way (biclum.bridge.codec), the calls R makes (entry) and the
annotation tables R passes through unchanged (a GRanges as R's as.data.frame gives it), tidied by
biclum.prior.read_annotation only."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from biclum import bridge, datasets
from biclum.prior import gene_activity, read_annotation


def _frame_spec(df: pd.DataFrame) -> dict:
    """What R's .df_to_py() sends for a data.frame (the same tags frame_to_columns writes)."""
    return bridge.frame_to_columns(df)


def _adata_spec(a) -> dict:
    return bridge.anndata_to_vectors(a)


def test_decode_reads_every_kind_r_sends():
    a = datasets.simulate(n_cells=30, modality="protein", seed=1)[0]
    df = pd.DataFrame({"f": pd.Categorical(["a", "b", "a"]), "n": [1.5, 2.0, np.nan], "s": ["x", None, "z"]},
                      index=["r1", "r2", "r3"])
    value = bridge.decode({
        "adata": _adata_spec(a), "frame": {**_frame_spec(df), "index": list(df.index)},
        "strings": {"kind": "strings", "values": ["g1", "", "g3"], "na": [False, True, False]},
        "sets": {"kind": "sets", "names": ["A", "B"], "values": [["g1"], ["g2", "g3"]]},
        "plain": {"k": 3, "nested": [{"kind": "strings", "values": ["a"]}]}})
    assert sp.issparse(value["adata"].X) and (value["adata"].X != a.X).nnz == 0
    assert list(value["adata"].obs_names) == list(a.obs_names)
    pd.testing.assert_frame_equal(value["frame"], df, check_dtype=False)
    assert value["strings"] == ["g1", None, "g3"]
    assert value["sets"] == {"A": ["g1"], "B": ["g2", "g3"]}
    assert value["plain"] == {"k": 3, "nested": [["a"]]}


def test_encode_tags_frames_lists_and_reductions():
    red = bridge.Reduction(cells=["c1", "c2"], embedding=np.ones((2, 3)), features=["g"],
                           loadings=np.zeros((1, 3)), has_mnn_partner=np.array([True, False]))
    out = bridge.encode({"red": red, "df": pd.DataFrame({"x": [1, 2]}), "dims": [64, 64], "genes": ["a", "b"],
                         "mixed": [1, "a"], "scalar": np.float32(2.5)})
    assert out["kind"] == "dict" and out["names"] == ["red", "df", "dims", "genes", "mixed", "scalar"]
    red_r, df_r, dims, genes, mixed, scalar = out["values"]
    assert red_r["kind"] == "reduction" and red_r["embedding"].dtype == np.float32
    assert red_r["loadings"].shape == (1, 3) and red_r["features"] == ["g"]
    assert df_r["kind"] == "frame" and df_r["index"] == ["0", "1"]
    assert dims == [64, 64] and genes == {"kind": "strings", "values": ["a", "b"]}
    assert mixed["kind"] == "list" and scalar == 2.5


def test_integrate_and_project_from_r_return_reductions_with_the_genes_used(tmp_path):
    rna, adt, _ = datasets.simulate(n_cells=120, modality="protein", seed=0)
    rna.obs["sample"] = np.where(np.arange(rna.n_obs) % 2, "s1", "s2")
    res = bridge.integrate_from_r(_adata_spec(rna), _adata_spec(adt), modality="protein", max_epochs=1,
                                  verbose=False, model_dir=str(tmp_path / "m"),
                                  overrides={"batch_size": 64.0, "num_threads": 1.0, "rna_batch_key": "sample"})
    assert res["ok"], res.get("traceback")
    names = res["value"]["names"]
    rna_r = res["value"]["values"][names.index("rna")]
    assert rna_r["kind"] == "reduction" and rna_r["embedding"].shape[0] == len(rna_r["cells"])
    assert len(rna_r["features"]) == rna_r["loadings"].shape[0] and 0 < len(rna_r["features"]) < rna.n_vars
    assert np.all(np.abs(rna_r["loadings"]).sum(axis=1) > 0)
    fitted = pd.DataFrame(rna_r["embedding"], index=rna_r["cells"])
    proj = bridge.project_from_r(_adata_spec(rna), str(tmp_path / "m"), "rna", batch_key="sample")
    assert proj["ok"], proj.get("traceback")
    emb = pd.DataFrame(proj["value"]["embedding"], index=proj["value"]["cells"])
    assert np.abs(emb.loc[fitted.index].to_numpy() - fitted.to_numpy()).max() < 1e-4
    no_batch = rna.copy()
    no_batch.obs = no_batch.obs.drop(columns="sample")
    plain = bridge.project_from_r(_adata_spec(no_batch), str(tmp_path / "m"), "rna")["value"]["embedding"]
    assert np.abs(plain - emb.to_numpy()).max() > 1e-3  # the batches are used


def test_mosaic_from_r_returns_a_reduction_per_dataset_and_modality_in_one_space(tmp_path):
    """R's RunBiCLUM(rna, other, bridge = ): reference (RNA), query (ADT), bridge (both) as adata specs."""
    rna, adt, _ = datasets.simulate(n_cells=150, modality="protein", paired=True, seed=0)
    b, r, q = np.arange(50), np.arange(50, 100), np.arange(100, 150)
    specs = {"reference": {"rna": _adata_spec(rna[r])}, "query": {"protein": _adata_spec(adt[q])},
             "bridge": {"rna": _adata_spec(rna[b]), "protein": _adata_spec(adt[b])}}
    res = bridge.mosaic_from_r(specs, max_epochs=1, verbose=False, model_dir=str(tmp_path / "m"),
                               overrides={"batch_size": 64.0, "num_threads": 1.0})
    assert res["ok"], res.get("traceback")
    value = dict(zip(res["value"]["names"], res["value"]["values"]))
    assert value["params"]["kind"] == "dict" and (tmp_path / "m").is_dir()
    sets = {name: dict(zip(mods["names"], mods["values"]))
            for name, mods in zip(value["datasets"]["names"], value["datasets"]["values"])}
    assert {k: sorted(v) for k, v in sets.items()} == {"reference": ["rna"], "query": ["protein"],
                                                       "bridge": ["protein", "rna"]}
    for name, idx in (("reference", r), ("query", q), ("bridge", b)):
        for red in sets[name].values():
            assert red["kind"] == "reduction" and red["cells"] == list(rna.obs_names[idx])
            assert red["embedding"].shape == (len(idx), red["loadings"].shape[1])
            assert len(red["features"]) == red["loadings"].shape[0] > 0
            assert red["has_mnn_partner"].dtype == bool and red["has_mnn_partner"].shape == (len(idx),)
    assert sets["bridge"]["rna"]["has_mnn_partner"].all()  # known pairs: every bridge cell has its partner
    bad = bridge.mosaic_from_r({"query": {"protein": _adata_spec(adt[q])}}, max_epochs=1, verbose=False)
    assert not bad["ok"] and bad["error_class"] == "BiclumInputError" and "RNA" in bad["message"]


def _granges_table() -> pd.DataFrame:
    """A Signac/EnsDb-like GRanges as R's as.data.frame() gives it: one row per exon/gap, factors for seqnames and
    strand, and a gene on two chromosomes (PARG: chrX 10-20 kb, chrY 50-90 kb, the longer)."""
    rows = [("chrX", 10_000, 14_000, "+", "PARG", "exon"), ("chrX", 14_001, 17_999, "+", "PARG", "gap"),
            ("chrX", 18_000, 20_000, "+", "PARG", "exon"), ("chrY", 50_000, 60_000, "+", "PARG", "exon"),
            ("chrY", 80_000, 90_000, "+", "PARG", "exon"), ("chr1", 5_000, 9_000, "-", "G1", "exon"),
            ("chr1", 30_000, 31_000, "+", "G2", "exon"), ("chr1", 33_000, 36_000, "+", "G2", "cds")]
    df = pd.DataFrame(rows, columns=["seqnames", "start", "end", "strand", "gene_name", "type"])
    df["width"] = df["end"] - df["start"] + 1
    df["gene_biotype"] = "protein_coding"
    df["seqnames"] = pd.Categorical(df["seqnames"])
    df["strand"] = pd.Categorical(df["strand"], categories=["+", "-", "*"])
    return df


def _peaks():
    import anndata as ad

    names = ["chrX-15000-15500", "chrY-70000-70500", "chrY-85000-85500", "chr1-7000-7500", "chr1-32000-32500",
             "chr2-100-600"]
    X = sp.csr_matrix(np.random.default_rng(0).poisson(2.0, size=(20, len(names))).astype(np.float32))
    return ad.AnnData(X=X, obs=pd.DataFrame(index=[f"c{i}" for i in range(20)]), var=pd.DataFrame(index=names))


def test_a_granges_table_is_tidied_in_python_exon_rows_to_genes_longest_copy_kept():
    tidy = read_annotation(_granges_table())
    assert list(tidy["gene_name"]) == ["PARG", "G1", "G2"]
    parg = tidy.set_index("gene_name").loc["PARG"]
    assert (parg["chrom"], parg["start"], parg["end"]) == ("chrY", 50_000, 90_000)
    g2 = tidy.set_index("gene_name").loc["G2"]
    assert (g2["start"], g2["end"]) == (30_000, 31_000)  # exon rows only, as for a GTF without gene records


def test_gene_activity_of_a_granges_table_equals_that_of_the_tidy_table():
    atac = _peaks()
    raw = gene_activity(atac, _granges_table(), genome_check=False)
    tidy = pd.DataFrame({"gene_name": ["PARG", "G1", "G2"], "chrom": ["chrY", "chr1", "chr1"],
                         "start": [50_000, 5_000, 30_000], "end": [90_000, 9_000, 31_000], "strand": ["+", "-", "+"]})
    ref = gene_activity(atac, tidy, genome_check=False)
    assert list(raw.var_names) == list(ref.var_names)
    assert (raw.X != ref.X).nnz == 0
    # PARG counts the chrY peaks of its longest copy, not the chrX peak
    parg = np.asarray(raw[:, "PARG"].X.todense()).ravel()
    assert np.array_equal(parg, np.asarray(atac.X[:, [1, 2]].sum(axis=1)).ravel())


def test_an_unknown_type_column_leaves_the_rows_as_genes():
    df = _granges_table().drop(columns="type").assign(type="protein_coding")
    assert len(read_annotation(df, duplicates="keep")) == len(df)


def test_bridge_errors_come_back_as_values():
    res = bridge.project_from_r({"kind": "adata", "obs_names": [], "var_names": []}, "/no/such/model", "rna")
    assert res["ok"] is False and res["error_class"] and res["message"]
    with pytest.raises(ValueError):
        bridge.entry._downstream_function("no_such_function")
