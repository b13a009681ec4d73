"""The Python side of the mixed R/Python workflow: objects written by R in this test run are read back with
biclum.io (rpy2 + anndata2ri) and give the same counts; plus the bridge's vector round trips."""
from __future__ import annotations

import re
import shutil
import subprocess
import textwrap
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import scipy.sparse as sp

import biclum
from biclum import bridge

REPO = Path(__file__).resolve().parents[2]
RSCRIPT = shutil.which("Rscript")


def _r_has(pkg: str) -> bool:
    if RSCRIPT is None:
        return False
    out = subprocess.run([RSCRIPT, "-e", f"cat(requireNamespace('{pkg}', quietly=TRUE))"], capture_output=True,
                         text=True)
    return out.stdout.strip().endswith("TRUE")


def _need_r(*pkgs: str):
    if RSCRIPT is None:
        pytest.skip("R (Rscript) is not installed")
    pytest.importorskip("rpy2", reason="rpy2 is not installed (pip install 'biclum[r]')")
    for pkg in pkgs:
        if not _r_has(pkg):
            pytest.skip(f"the R package {pkg} is not installed")


def _run_r(code: str, tmp_path: Path) -> None:
    script = tmp_path / "write.R"
    script.write_text(textwrap.dedent(code))
    out = subprocess.run([RSCRIPT, "--vanilla", str(script)], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr


def _counts(n_features=80, n_cells=60, seed=0) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    X = sp.random(n_cells, n_features, density=0.15, random_state=rng, format="csr",
                  data_rvs=lambda n: rng.poisson(4, n) + 1).astype(np.float32)
    X = X.tolil()
    X[3] = 0  # a cell without counts
    X = X.tocsr()
    X.eliminate_zeros()
    return X


@pytest.mark.r
def test_read_seurat_gets_the_counts_r_wrote(tmp_path):
    _need_r("SeuratObject")
    from biclum.io import read_seurat

    X = _counts()
    scipy.io.mmwrite(tmp_path / "counts.mtx", X.T.tocoo())  # features x cells for R
    _run_r("""
        suppressPackageStartupMessages(library(SeuratObject))
        m <- methods::as(Matrix::readMM("counts.mtx"), "CsparseMatrix")
        dimnames(m) <- list(paste0("Gene", seq_len(nrow(m))), paste0("cell", seq_len(ncol(m))))
        meta <- data.frame(cell_type = factor(rep(c("T", "B", "NK"), length.out = ncol(m))),
                           score = seq_len(ncol(m)) / 2, row.names = colnames(m))
        obj <- CreateSeuratObject(m, meta.data = meta, min.cells = 0, min.features = 0)
        obj[["ADT"]] <- CreateAssayObject(counts = m[1:10, ] * 2)
        saveRDS(obj, "seurat.rds")
    """, tmp_path)
    adata = read_seurat(tmp_path / "seurat.rds")
    assert adata.shape == X.shape
    assert sp.issparse(adata.X) and adata.X.dtype == np.float32
    assert (adata.X != X).nnz == 0
    assert list(adata.obs_names[:2]) == ["cell1", "cell2"]
    assert list(adata.var_names[:2]) == ["Gene1", "Gene2"]
    assert list(adata.obs["cell_type"][:3]) == ["T", "B", "NK"]
    np.testing.assert_allclose(adata.obs["score"].to_numpy(), np.arange(1, X.shape[0] + 1) / 2)
    adt = read_seurat(str(tmp_path / "seurat.rds"), assay="ADT")
    assert (adt.X != X[:, :10] * 2).nnz == 0
    with pytest.raises(biclum.BiclumInputError, match="no assay 'peaks'"):
        read_seurat(tmp_path / "seurat.rds", assay="peaks")


@pytest.mark.r
def test_from_sce_gets_the_counts_and_ranges_r_wrote(tmp_path):
    _need_r("SingleCellExperiment", "GenomicRanges")
    pytest.importorskip("anndata2ri")
    from biclum.io import from_sce

    X = _counts(n_features=40, n_cells=30, seed=1)
    scipy.io.mmwrite(tmp_path / "counts.mtx", X.T.tocoo())
    _run_r("""
        suppressPackageStartupMessages(library(SingleCellExperiment))
        m <- methods::as(Matrix::readMM("counts.mtx"), "CsparseMatrix")
        dimnames(m) <- list(paste0("peak", seq_len(nrow(m))), paste0("cell", seq_len(ncol(m))))
        gr <- GenomicRanges::GRanges("chr3", IRanges::IRanges(start = seq(1000, by = 1000, length.out = nrow(m)),
                                                              width = 300))
        sce <- SingleCellExperiment(list(counts = m, logcounts = log1p(m)), rowRanges = gr,
                                    colData = S4Vectors::DataFrame(batch = rep(c("a", "b"), length.out = ncol(m))))
        rownames(sce) <- rownames(m)
        saveRDS(sce, "sce.rds")
    """, tmp_path)
    adata = from_sce(tmp_path / "sce.rds")
    assert adata.shape == X.shape
    assert sp.issparse(adata.X)
    assert (sp.csr_matrix(adata.X) != X).nnz == 0
    assert "logcounts" in adata.layers
    assert list(adata.var["chrom"].unique()) == ["chr3"]
    np.testing.assert_array_equal(adata.var["start"].to_numpy(), np.arange(1000, 1000 * (X.shape[1] + 1), 1000))
    assert list(adata.obs["batch"][:2]) == ["a", "b"]
    with pytest.raises(biclum.BiclumInputError, match="no assay 'raw'"):
        from_sce(tmp_path / "sce.rds", assay="raw")


def test_bridge_vectors_round_trip():
    X = _counts()
    v = bridge.sparse_to_vectors(X)
    assert v["dim"] == [X.shape[0], X.shape[1]]
    assert v["i"].dtype == np.int32 and v["p"].dtype == np.int32
    Y = bridge.sparse_from_vectors(v["x"], v["i"], v["p"], v["dim"])
    assert Y.format == "csr" and (Y != X).nnz == 0
    # non-canonical input (unsorted indices, duplicates) is made canonical, as a dgCMatrix requires
    coo = sp.coo_matrix((np.array([1.0, 2.0, 3.0]), (np.array([0, 0, 1]), np.array([2, 2, 0]))), shape=(2, 3))
    v = bridge.sparse_to_vectors(coo)
    np.testing.assert_array_equal(v["x"], [3.0, 3.0])
    with pytest.raises(ValueError, match="inconsistent sparse vectors"):
        bridge.sparse_from_vectors(v["x"], v["i"], v["p"][:-1], v["dim"])


def test_bridge_anndata_and_frames_round_trip():
    import pandas as pd

    X = _counts(20, 10)
    obs = pd.DataFrame({"t": pd.Categorical(["a", None, "b", "a", "b", "a", "a", "b", "b", "a"]),
                        "s": ["x", None] + ["y"] * 8, "n": np.arange(10), "f": np.linspace(0, 1, 10),
                        "b": [True, False] * 5})
    v = bridge.sparse_to_vectors(X)
    ad = bridge.anndata_from_vectors(v["x"], v["i"], v["p"], v["dim"], [f"c{i}" for i in range(10)],
                                     [f"g{i}" for i in range(20)], obs=obs)
    out = bridge.anndata_to_vectors(ad)
    back = bridge.columns_to_frame(out["obs"], index=out["obs_names"])
    pd.testing.assert_frame_equal(back.reset_index(drop=True), obs.reset_index(drop=True), check_dtype=False)
    assert back["t"].isna().sum() == 1 and back["s"].isna().sum() == 1


def test_versions_in_lockstep():
    desc = (REPO / "DESCRIPTION").read_text()
    pyproject = (REPO / "pyproject.toml").read_text()
    r_version = re.search(r"^Version:\s*(\S+)", desc, re.M).group(1)
    py_version = re.search(r'^version\s*=\s*"([^"]+)"', pyproject, re.M).group(1)
    assert r_version == py_version == biclum.__version__
