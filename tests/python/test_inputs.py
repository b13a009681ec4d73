"""Real-world inputs: antibody naming conventions, gene identifiers, counts in a layer, threads, and the CLI's
answer to bad inputs (one paragraph on stderr, no traceback, non-zero exit)."""
from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import biclum
from biclum.datasets import simulate
from biclum.errors import BiclumInputError, BiclumWarning
from biclum.prior import is_control, match_antibody, protein_to_gene, read_protein_mapping

PYTHON_DIR = Path(biclum.__file__).resolve().parents[1]
SMALL = dict(n_top_genes=300, n_pcs=15, mnn_k=15, n_metacells=16, batch_size=64, hidden_dims=(32, 32),
             latent_dim=8, n_shared_pcs=10, feature_batch_size=64, min_shared_genes=10)


@pytest.fixture(scope="module")
def sim_protein():
    return simulate(200, modality="protein", seed=0)[:2]


# ------------------------------------------------------------------------------------------------ antibody names
@pytest.mark.parametrize("name, gene", [
    ("CD3-TATCCCTTGGGATGG", "CD3E"),       # CITE-seq-Count: name-BARCODE
    ("CD4_GAGGTTAGTGATGGA", "CD4"),        # name_BARCODE (REAP-seq: CD3_AGGATCGA)
    ("HLA-DR-AGCTTGCA", "HLA-DRA"),        # a hyphenated name with its barcode
    ("CD19_TotalSeqB", "CD19"), ("CD8a_TotalSeqC", "CD8A"),
    ("ADT_CD14", "CD14"), ("adt-CD56", "NCAM1"),
    ("CD4.1", "CD4"), ("CD45RA.2", "PTPRC"),  # R's make.unique, not CD41
    ("anti-human CD279", "PDCD1"),
    ("CD3 (UCHT1)", "CD3E"),
    ("HLA-A-B-C", "HLA-A"), ("TCR", "TRAC"), ("CD328", "SIGLEC7"), ("FOXP3_ATCGCCAT", "FOXP3"),
])
def test_antibody_naming_conventions(name, gene):
    assert match_antibody(name) == gene


def test_names_that_must_not_be_rewritten():
    assert match_antibody("TCR Va7.2") == "TRAV1-2"  # a dot that is not make.unique
    assert match_antibody("CD41") == "ITGA2B"
    assert match_antibody("TCR_Vb13.1") is None  # not the generic TCR


@pytest.mark.parametrize("name", ["Blank", "empty_2", "Mouse_IgG1_TGTGTATA", "Control_Rat_IgG1_TCACGGTA",
                                  "IgG1-AAGGCAGACGGTGCA", "Mouse IgG2a kappa"])
def test_controls_dropped(name):
    assert is_control(name)


def test_controls_logged_and_unmapped_listed(biclum_log):
    names = ["CD3-TATCCCTTGGGATGG", "Blank", "Mouse_IgG1_TGTGTATA", "Mystery-7"]
    adt = ad.AnnData(X=np.ones((3, 4)), var=pd.DataFrame(index=names))
    with pytest.warns(BiclumWarning, match="Mystery-7"):
        out = protein_to_gene(adt)
    assert list(out.var_names) == ["CD3E"]
    assert out.uns["protein_to_gene"]["isotypes"] == ["Blank", "Mouse_IgG1_TGTGTATA"]
    assert "1 of 4 antibodies mapped" in biclum_log.text and "'Blank'" in biclum_log.text
    assert "1 unmapped: ['Mystery-7']" in biclum_log.text


@pytest.mark.parametrize("text", ["antibody,gene\nMystery-7,CD4\nCD3-AAA,\n", "Mystery-7\tCD4\nCD3-AAA\t\n"])
def test_protein_mapping_file(tmp_path, text):
    path = tmp_path / "map.txt"
    path.write_text(text)
    assert read_protein_mapping(path) == {"Mystery-7": "CD4", "CD3-AAA": None}
    adt = ad.AnnData(X=np.ones((2, 2)), var=pd.DataFrame(index=["Mystery-7", "CD3-AAA"]))
    out = protein_to_gene(adt, mapping=str(path))
    assert list(out.var_names) == ["CD4"]
    with pytest.raises(BiclumInputError, match="does not exist"):
        read_protein_mapping(tmp_path / "nope.csv")
    (tmp_path / "one.csv").write_text("CD4\nCD8\n")
    with pytest.raises(BiclumInputError, match="two"):
        read_protein_mapping(tmp_path / "one.csv")


def test_protein_mapping_reaches_integrate(sim_protein, tmp_path):
    rna, adt = sim_protein
    adt = adt.copy()
    adt.var_names = [f"Ab{i}" for i in range(adt.n_vars)]  # names no table knows
    with pytest.raises(BiclumInputError, match="none of the"), pytest.warns(BiclumWarning, match="no gene"):
        biclum.BiCLUM(rna, adt, "protein", **SMALL)
    genes = simulate(200, modality="protein", seed=0)[1].var_names
    path = tmp_path / "map.csv"
    pd.DataFrame({"antibody": adt.var_names, "gene": [match_antibody(g) or "" for g in genes]}).to_csv(path,
                                                                                                      index=False)
    model = biclum.BiCLUM(rna, adt, "protein", protein_mapping=str(path), **SMALL)
    assert model.gene_space_info["n_mapped"] >= 20


# ------------------------------------------------------------------------------------------------ gene identifiers
def _ensembl(rna):
    out = rna.copy()
    out.var["gene_symbols"] = np.asarray(rna.var_names)
    out.var_names = [f"ENSG{i:011d}" for i in range(rna.n_vars)]
    return out


def test_ensembl_ids_error_names_the_column(sim_protein):
    rna, adt = sim_protein
    with pytest.raises(BiclumInputError, match="gene_symbols='gene_symbols'"):
        biclum.BiCLUM(_ensembl(rna), adt, "protein", **SMALL)


def test_gene_symbols_column_integrates(sim_protein):
    rna, adt = sim_protein
    ens = _ensembl(rna)
    res = biclum.integrate(ens, adt, "protein", gene_symbols="gene_symbols", max_epochs=1, progress=False,
                           **SMALL)
    assert list(res.rna.var_names) == list(ens.var_names)  # the user's names come back
    used = res.rna.var["biclum_feature"].to_numpy()
    assert used.sum() > 0 and np.abs(res.rna.varm["biclum_loadings"][used]).sum() > 0
    assert ens.var_names[0].startswith("ENSG") and "X_biclum" not in ens.obsm  # input untouched
    with pytest.raises(BiclumInputError, match="not a var column"):
        biclum.BiCLUM(ens, adt, "protein", gene_symbols="symbol", **SMALL)


def test_gene_symbols_duplicates_made_unique(sim_protein, biclum_log):
    from biclum.genes import feature_names

    rna = _ensembl(sim_protein[0])
    rna.var.iloc[1, 0] = rna.var.iloc[0, 0]
    rna.var.iloc[2, 0] = None
    names = feature_names(rna, "gene_symbols", "rna")
    assert names.is_unique and names[1] == names[0] + "-1" and names[2] == rna.var_names[2]
    assert "1 duplicated names" in biclum_log.text


def test_mouse_rna_with_human_panel(sim_protein, biclum_log):
    rna, adt = sim_protein
    mouse = rna.copy()
    mouse.var_names = [g.capitalize() for g in rna.var_names]  # Cd3e, Cd4, ...
    res = biclum.integrate(mouse, adt, "protein", max_epochs=1, progress=False, **SMALL)
    assert "ignoring case" in biclum_log.text
    assert "Cd4" in set(res.other.var_names)


# ------------------------------------------------------------------------------------------------ counts
def _lognorm(rna):
    out = rna.copy()
    out.layers["counts"] = rna.X.copy()
    X = sp.csr_matrix(rna.X, dtype=np.float32)
    X = sp.diags(1e4 / np.asarray(X.sum(axis=1)).ravel()) @ X
    X.data = np.log1p(X.data)
    out.X = sp.csr_matrix(X, dtype=np.float32)
    return out


def test_counts_layer_used_when_x_is_not_counts(sim_protein, biclum_log):
    rna, adt = sim_protein
    lognorm = _lognorm(rna)
    a = biclum.BiCLUM(lognorm, adt, "protein", **SMALL)
    assert "using layers['counts']" in biclum_log.text
    b = biclum.BiCLUM(rna, adt, "protein", **SMALL)
    np.testing.assert_array_equal(a._data.pcs["rna"], b._data.pcs["rna"])


def test_counts_layer_used_when_backed(sim_protein, tmp_path):
    rna, adt = sim_protein
    _lognorm(rna).write_h5ad(tmp_path / "rna.h5ad")
    backed = ad.read_h5ad(tmp_path / "rna.h5ad", backed="r")
    a = biclum.BiCLUM(backed, adt, "protein", **SMALL)
    b = biclum.BiCLUM(rna, adt, "protein", **SMALL)
    np.testing.assert_array_equal(a._data.pcs["rna"], b._data.pcs["rna"])


def test_not_counts_is_an_error(sim_protein):
    rna, adt = sim_protein
    lognorm = _lognorm(rna)
    del lognorm.layers["counts"]
    with pytest.raises(BiclumInputError, match="not raw counts.*layer"):
        biclum.BiCLUM(lognorm, adt, "protein", **SMALL)
    both = _lognorm(rna)
    both.layers["counts"] = both.X.copy()
    with pytest.raises(BiclumInputError, match="neither .X nor layers\\['counts'\\]"):
        biclum.BiCLUM(both, adt, "protein", **SMALL)


def test_integer_check_samples_the_whole_matrix(monkeypatch):
    from biclum.validation import ValueScan, check_modality

    monkeypatch.setattr(ValueScan, "INTEGER_SAMPLE", 1000)
    rng = np.random.default_rng(0)
    X = rng.poisson(1.0, size=(200, 100)).astype(np.float32)
    X[-1] += 0.5  # only the last cell is not integer: beyond the first INTEGER_SAMPLE values
    with pytest.raises(BiclumInputError, match="non-integer"):
        check_modality(ad.AnnData(X=X), "rna")
    scan = ValueScan(200, 100, X.size)
    for a in range(0, X.size, 777):  # in chunks, as a backed file is streamed
        scan.update(X.ravel()[a:a + 777])
    assert scan.non_integer is not None and scan.non_integer % 1 == 0.5
    assert scan.n_sampled <= 2 * ValueScan.INTEGER_SAMPLE


# ------------------------------------------------------------------------------------------------ threads
def test_auto_threads_from_work_not_load(monkeypatch):
    from biclum import _threads

    monkeypatch.setattr(_threads, "_cores", lambda: 16)
    assert _threads.training_threads(None, 222_000, 512) == 1  # the default model: one thread
    assert _threads.training_threads(None, 2_000_000, 2048) == _threads.MAX_AUTO_THREADS
    assert _threads.training_threads(3, 222_000, 512) == 3
    assert _threads.setup_threads(None, 10_000) == 1 and _threads.setup_threads(None, 10**6) == 8
    monkeypatch.setattr(os, "getloadavg", lambda: (99.0, 99.0, 99.0))
    assert _threads.training_threads(None, 222_000, 512) == 1  # load plays no part
    assert os.environ.get("OMP_WAIT_POLICY") == "PASSIVE" or not _threads.OMP_WAIT_SET_BY_BICLUM


def test_thread_limit_restores():
    import torch

    from biclum._threads import thread_limit

    before = torch.get_num_threads()
    with thread_limit(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_default_threads_reproducible(sim_protein):
    rna, adt = sim_protein
    runs = [biclum.integrate(rna, adt, "protein", max_epochs=2, progress=False, seed=5, **SMALL) for _ in range(2)]
    np.testing.assert_array_equal(runs[0].rna.obsm["X_biclum"], runs[1].rna.obsm["X_biclum"])


# ------------------------------------------------------------------------------------------------ CLI
def run_cli(*args, cwd):
    env = {**os.environ, "PYTHONPATH": str(PYTHON_DIR), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "biclum.cli", "fit", "--out", str(cwd / "out"), "--quiet", *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def _write(adata, path):
    adata.write_h5ad(path)
    return str(path)


def _bad_inputs(tmp_path):
    """name -> (CLI arguments, a phrase of the fix the message must contain)."""
    rna, atac, _ = simulate(40, modality="atac", n_genes=60, n_distal_peaks=20, seed=0)
    prna, adt, _ = simulate(40, modality="protein", seed=0)
    good = _write(rna, tmp_path / "rna.h5ad")
    good_atac = _write(atac, tmp_path / "atac.h5ad")
    (tmp_path / "table.h5ad").write_text("cell,CD3\na,1\n")
    nan, neg, dup, lognorm = rna.copy(), rna.copy(), rna.copy(), _lognorm(rna)
    nan.X = nan.X.toarray().astype(np.float32)
    nan.X[0, 0] = np.nan
    neg.X = neg.X.toarray().astype(np.float32)
    neg.X[0, 0] = -3
    dup.obs_names = ["c0"] * 2 + list(dup.obs_names[2:])
    del lognorm.layers["counts"]
    bad_adt = adt.copy()
    bad_adt.var_names = [f"Ab{i}" for i in range(adt.n_vars)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        paths = {"nan": _write(nan, tmp_path / "nan.h5ad"), "neg": _write(neg, tmp_path / "neg.h5ad"),
                 "dup": _write(dup, tmp_path / "dup.h5ad"), "zero": _write(rna[:0].copy(), tmp_path / "zero.h5ad"),
                 "prna": _write(prna, tmp_path / "prna.h5ad"), "adt": _write(bad_adt, tmp_path / "adt.h5ad"),
                 "lognorm": _write(lognorm, tmp_path / "lognorm.h5ad"),
                 "ensembl": _write(_ensembl(prna), tmp_path / "ens.h5ad"),
                 "good_adt": _write(adt, tmp_path / "good_adt.h5ad")}
    return {
        "missing file": (["--rna", str(tmp_path / "nope.h5ad"), "--other", good_atac], "give the path"),
        "CSV named .h5ad": (["--rna", str(tmp_path / "table.h5ad"), "--other", good_atac], "write_h5ad"),
        "NaN": (["--rna", paths["nan"], "--other", good_atac], "replace or remove"),
        "negative counts": (["--rna", paths["neg"], "--other", good_atac], "counts layer"),
        "duplicated cells": (["--rna", paths["dup"], "--other", good_atac], "obs_names_make_unique"),
        "unmappable antibodies": (["--rna", paths["prna"], "--other", paths["adt"], "--modality", "protein"],
                                  "mapping"),
        "zero cells": (["--rna", paths["zero"], "--other", good_atac], "at least"),
        "unknown modality": (["--rna", good, "--other", good_atac, "--modality", "rna2"], "choose from"),
        "ATAC without annotation": (["--rna", good, "--other", good_atac], "give a gene annotation"),
        "X not counts": (["--rna", paths["lognorm"], "--other", good_atac], "--rna-layer"),
        "Ensembl IDs": (["--rna", paths["ensembl"], "--other", paths["good_adt"], "--modality", "protein"],
                        "--gene-symbols"),
        "missing mapping file": (["--rna", paths["prna"], "--other", paths["adt"], "--modality", "protein",
                                  "--protein-mapping", str(tmp_path / "nope.csv")], "two-column"),
        "unknown option": (["--rna", good, "--other", good_atac, "--set", "mnnk=5"], "valid options"),
        "directory as input": (["--rna", str(tmp_path), "--other", good_atac], ".h5ad"),
    }


def test_cli_bad_inputs_without_traceback(tmp_path):
    cases = _bad_inputs(tmp_path)
    failures = []
    for name, (args, fix) in cases.items():
        r = run_cli(*args, cwd=tmp_path)
        ok = r.returncode != 0 and "Traceback" not in r.stderr and fix in r.stderr and "error" in r.stderr
        if not ok:
            failures.append(f"{name}: rc={r.returncode}\n{r.stderr[-1500:]}")
    assert not failures, "\n\n".join(failures)


def test_cli_debug_shows_traceback(tmp_path):
    r = run_cli("--rna", str(tmp_path / "nope.h5ad"), "--other", str(tmp_path / "nope2.h5ad"), "--debug",
                cwd=tmp_path)
    assert r.returncode != 0 and "Traceback (most recent call last)" in r.stderr
