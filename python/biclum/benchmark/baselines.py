"""Baselines the benchmark compares biclum with, on the same inputs.

* :func:`pca_floor` - joint PCA of the genes shared by RNA and the other modality's gene-space matrix (gene
  activity for ATAC, protein-coding genes for ADT). The "floor" of ``../shared/ANCHORS.md``.
* :func:`pca_cosine` - the same joint PCA with 10 components and unit rows (cosine distances, biclum's geometry):
  the stronger linear baseline (studies/linear_floor.py).
* :func:`seurat_cca` - Seurat's scATAC integration vignette (v4; also runs with v5): CCA anchors from RNA to the
  gene-space query, TransferData of the imputed RNA expression, merge, PCA co-embedding; via ``Rscript`` running
  the package's ``seurat_cca.R`` (package data, found with :mod:`importlib.resources`, so it runs from a wheel).
  Returns None (and logs why) when Rscript or Seurat is missing.
* :func:`paired_cca` - a regularised CCA fitted on known pairs of cells alone (what the pairs give without the
  unpaired cells: the linear reference of the known-pair benchmark).
* :func:`lsi` - the model's peak LSI (:class:`biclum.preprocessing.PeakLSI`), for Seurat's weight reduction and
  the ATAC pre-integration coordinates.

The peers (scGLUE, MaxFuse) are in :mod:`biclum.benchmark.peers`. Every step of the preprocessing here is
:mod:`biclum.preprocessing`'s (the model's), not a copy.

Every baseline returns ``(rna_embedding, other_embedding)`` float32 arrays, rows in the inputs' cell order
(Seurat additionally returns its own TransferData labels, see :func:`seurat_cca`).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from contextlib import nullcontext
from importlib import resources
from pathlib import Path
from typing import Optional, Sequence, Tuple

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .._logging import logger
from ..errors import BiclumInputError
from ..preprocessing import (PeakLSI, StandardizedOperator, joint_shared_pca, normalize_log1p, randomized_pca,
                             sparse_mean_std)

__all__ = ["pca_floor", "pca_cosine", "unit_rows", "own_pca", "lsi", "paired_cca", "seurat_cca", "seurat_available",
           "SEURAT_SCRIPT"]

#: the R script behind :func:`seurat_cca`, package data (override with ``BICLUM_SEURAT_SCRIPT``)
SEURAT_SCRIPT = resources.files(__package__).joinpath("seurat_cca.R")

#: power iterations of the baselines' randomised PCA (as before they shared the model's preprocessing)
N_ITER = 7


def _counts(adata, layer: Optional[str], name: str) -> sp.csr_matrix:
    """A new CSR float32 matrix of the raw counts (checked: present and non-negative)."""
    X = adata.layers[layer] if layer is not None else adata.X
    if X is None:
        raise BiclumInputError(f"{name} has no X; pass an AnnData with counts in X (or name the layer).")
    X = sp.csr_matrix(X) if not sp.issparse(X) else X.tocsr()
    X = X.astype(np.float32)
    if X.nnz and X.data.min() < 0:
        raise BiclumInputError(f"{name} has negative values; the baselines need raw counts (cells x features).")
    return X


def pca_floor(rna, other_gene, n_comps: int = 30, *, target_sum: float = 1e4, max_value: Optional[float] = 10.0,
              seed: int = 0, rna_layer: Optional[str] = None,
              other_layer: Optional[str] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Joint PCA of the shared genes: the floor any integration method should beat.

    Both count matrices are library-size normalised (``target_sum``, over all their genes) and log1p'd, reduced to
    the genes they share (RNA order), scaled to zero mean and unit variance **within each modality** (implicitly:
    no dense copy; values above ``max_value`` standard deviations clipped as ``sc.pp.scale(max_value=10)``, zeros
    never clipped), stacked, and reduced by a randomized PCA (``seed``) to ``n_comps`` components: the model's
    :func:`biclum.preprocessing.joint_shared_pca`.

    The defaults (30 components, clip 10) reproduce the floor of ``../shared/ANCHORS.md`` on SNARE-seq (RNA vs
    gene activity): FOSCTTM 0.252, transfer RNA->ATAC 0.50, ATAC->RNA 0.73; with 50 components FOSCTTM is 0.28-0.29.

    Parameters
    ----------
    rna
        AnnData, cells x genes, raw counts.
    other_gene
        AnnData of the other modality already in gene space, raw counts: gene activity for ATAC or antibodies
        mapped to genes (:func:`biclum.model.to_gene_space`).

    Returns
    -------
    (rna_embedding, other_embedding): float32 arrays, cells x components.
    """
    shared = pd.Index(rna.var_names).intersection(pd.Index(other_gene.var_names), sort=False)
    if len(shared) < 2:
        raise BiclumInputError(f"pca_floor: RNA and the other modality share {len(shared)} gene names; map the "
                               "other modality to gene symbols first (biclum.model.to_gene_space).")
    Xr = normalize_log1p(_counts(rna, rna_layer, "rna"), target_sum, copy=False)
    Xo = normalize_log1p(_counts(other_gene, other_layer, "other_gene"), target_sum, copy=False)
    Xr = Xr[:, pd.Index(rna.var_names).get_indexer(shared)]
    Xo = Xo[:, pd.Index(other_gene.var_names).get_indexer(shared)]
    r, o = joint_shared_pca(Xr, Xo, n_comps, seed, max_value=max_value, n_iter=N_ITER)
    logger.info("pca_floor: joint PCA of %d shared genes -> %d components", len(shared), r.shape[1])
    return r, o


#: components of :func:`pca_cosine`: the best rank with unit rows on 5 of the 7 shared datasets and proxies
#: measured (benchmarks/results/linear_floor.md, linear_floor_protein.md)
COSINE_COMPS = 10


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Each row divided by its norm (zero rows stay zero): euclidean distances between them rank as cosines."""
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.where(norm > 0, norm, 1.0)).astype(np.float32)


def pca_cosine(rna, other_gene, n_comps: int = COSINE_COMPS, **kwargs) -> Tuple[np.ndarray, np.ndarray]:
    """The stronger linear baseline: :func:`pca_floor` with ``n_comps`` components (default 10) and unit rows, so
    that distances are cosine ones, the geometry of biclum's MNN search and of its L2-normalised output. On the
    low-depth SNARE-seq proxies it aligns better than biclum; on the shared datasets biclum leads it
    (benchmarks/results/linear_floor.md). ``kwargs``: :func:`pca_floor`'s."""
    r, o = pca_floor(rna, other_gene, n_comps, **kwargs)
    return unit_rows(r), unit_rows(o)


def own_pca(adata, n_comps: int = 50, *, seed: int = 0, max_value: Optional[float] = 10.0) -> np.ndarray:
    """One modality's PCA before integration: the per-feature standardised log-normalised counts (every feature,
    clip ``max_value``), randomised PCA; float32 cells x components."""
    X = normalize_log1p(_counts(adata, None, "data"), 1e4, copy=False)
    mean, std = sparse_mean_std(X)
    op = StandardizedOperator(X, mean, std, max_value)
    return randomized_pca(op, min(n_comps, X.shape[1] - 1), seed=seed, n_iter=N_ITER)[0]


def lsi(peaks, n_comps: int = 50, *, seed: int = 0, layer: Optional[str] = None) -> np.ndarray:
    """The model's peak LSI (:class:`biclum.preprocessing.PeakLSI`: Signac TF-IDF of the binarised peaks,
    standardised, randomised SVD, the first component (sequencing depth) dropped, rows of unit length).
    Returns cells x ``n_comps`` float32 (fewer when the matrix is smaller)."""
    X = _counts(peaks, layer, "peaks")
    return PeakLSI.fit(X, np.asarray(peaks.var_names), n_comps, seed)[1]


def paired_cca(a: np.ndarray, b: np.ndarray, n_comps: int = 10, ridge: float = 1.0, scaled: bool = True):
    """A CCA of ``a`` and ``b`` (the same cells' two representations, rows paired), each covariance regularised by
    ``ridge`` x its mean variance. Returns two functions mapping new rows of either side onto the first ``n_comps``
    canonical directions, each scaled by the square root of its canonical correlation (``scaled``; float32). The
    defaults are the best of ridge 1e-3, 0.1, 1 and 10, 20, 40 components on SNARE-seq's held-out pairs (seed 0,
    5-80% of the cells fitted)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    mean_a, mean_b = a.mean(0), b.mean(0)
    a, b = a - mean_a, b - mean_b

    def inv_sqrt(cov):
        w, v = np.linalg.eigh(cov + ridge * np.trace(cov) / len(cov) * np.eye(len(cov)))
        return (v / np.sqrt(w)) @ v.T

    wa, wb = inv_sqrt(a.T @ a / len(a)), inv_sqrt(b.T @ b / len(b))
    u, corr, vt = np.linalg.svd(wa @ (a.T @ b / len(a)) @ wb)
    n = min(n_comps, len(corr))
    scale = np.sqrt(np.clip(corr[:n], 0, None)) if scaled else np.ones(n)
    proj_a, proj_b = wa @ u[:, :n] * scale, wb @ vt.T[:, :n] * scale
    return (lambda x: ((np.asarray(x) - mean_a) @ proj_a).astype(np.float32),
            lambda y: ((np.asarray(y) - mean_b) @ proj_b).astype(np.float32))


# ------------------------------------------------------------------------------------------------------- Seurat
def _rscript(rscript: Optional[str]) -> Optional[str]:
    return shutil.which(rscript or os.environ.get("BICLUM_RSCRIPT", "Rscript"))


def seurat_available(rscript: Optional[str] = None) -> Tuple[bool, str]:
    """(True, version) when Rscript runs and Seurat loads, else (False, reason)."""
    exe = _rscript(rscript)
    if exe is None:
        return False, "Rscript not found on PATH (install R, or set BICLUM_RSCRIPT)"
    try:
        res = subprocess.run([exe, "-e", "suppressMessages(library(Seurat)); cat(as.character(packageVersion('Seurat')))"],
                             capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"Rscript failed to start: {exc}"
    if res.returncode != 0:
        return False, "the R package Seurat is not installed (install.packages('Seurat'))"
    return True, res.stdout.strip().splitlines()[-1] if res.stdout.strip() else "unknown"


def _write_mtx(path: Path, X: sp.csr_matrix) -> None:
    """features x cells MatrixMarket (integer counts written as integers)."""
    from scipy.io import mmwrite

    X = X.T.tocoo()
    is_int = X.nnz == 0 or np.all(np.mod(X.data, 1) == 0)
    mmwrite(str(path), X.astype(np.int64) if is_int else X.astype(np.float64), field="integer" if is_int else "real")


def _write_lines(path: Path, items) -> None:
    with open(path, "w") as fh:
        for item in items:
            fh.write(str(item).replace("\n", " ") + "\n")


def seurat_cca(rna, other_gene, *, other_reduction: Optional[np.ndarray] = None, reduction_dims: str = "1:29",
               rna_labels: Optional[Sequence] = None, n_dims: int = 30, n_features: int = 2000,
               rscript: Optional[str] = None, script: Optional[str] = None, timeout: Optional[float] = None,
               workdir: Optional[str] = None, rna_layer: Optional[str] = None, other_layer: Optional[str] = None):
    """Seurat CCA anchors + TransferData co-embedding (Seurat's scATAC integration vignette), via Rscript.

    RNA: NormalizeData, FindVariableFeatures (vst, ``n_features``), ScaleData. Query (``other_gene``: gene
    activity or protein genes): NormalizeData, ScaleData. ``FindTransferAnchors(reduction="cca")`` over the variable
    genes present in both (all shared genes when fewer than 200 are), ``TransferData`` of the RNA expression of
    those genes (``weight.reduction``: ``other_reduction`` dims ``reduction_dims``, e.g. the ATAC LSI from
    :func:`lsi`, whose depth component is already dropped: dims 1:29 = Signac's 2:30; without it, a PCA of the query computed in R), merge, ScaleData(do.scale=FALSE), RunPCA; the first
    ``n_dims`` PCs are the co-embedding.

    Returns ``(rna_embedding, other_embedding, predicted_labels)`` (``predicted_labels``: Seurat's own
    TransferData cell-type predictions of the query cells when ``rna_labels`` is given, else None), or **None**
    when Rscript or Seurat is missing (logged). Inputs go to R as MatrixMarket files in a temporary folder.
    """
    ok, why = seurat_available(rscript)
    if not ok:
        logger.warning("seurat_cca skipped: %s", why)
        return None
    with _script_file(script) as path:
        if not Path(path).is_file():
            logger.warning("seurat_cca skipped: R script %s not found (set BICLUM_SEURAT_SCRIPT)", path)
            return None
        with tempfile.TemporaryDirectory(prefix="biclum_seurat_", dir=workdir) as tmp:
            tmp = Path(tmp)
            args = [_rscript(rscript), str(path), "--dir", str(tmp), "--ndims", str(int(n_dims)), "--nfeatures",
                    str(int(n_features))]
            cells = _write_seurat_inputs(tmp, rna, other_gene, rna_layer, other_layer, rna_labels)
            if other_reduction is not None:
                _write_reduction(tmp / "other_reduction.csv", other_reduction, cells[1])
                args += ["--reduction-dims", reduction_dims]
            logger.info("seurat_cca: running %s (%d RNA cells, %d query cells)", Path(path).name, rna.n_obs,
                        other_gene.n_obs)
            res = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
            if res.returncode != 0:
                tail = "\n".join((res.stderr or res.stdout).strip().splitlines()[-20:])
                raise RuntimeError(f"seurat_cca: Rscript failed (exit {res.returncode}):\n{tail}")
            for line in res.stdout.strip().splitlines()[-5:]:
                logger.debug("seurat_cca: %s", line)
            return _read_seurat_outputs(tmp, *cells)


def _script_file(script: Optional[str]):
    """A context giving the R script's path: ``script``, $BICLUM_SEURAT_SCRIPT, or the package's own file."""
    chosen = script or os.environ.get("BICLUM_SEURAT_SCRIPT")
    return nullcontext(Path(chosen)) if chosen else resources.as_file(SEURAT_SCRIPT)


def _write_seurat_inputs(tmp: Path, rna, other_gene, rna_layer, other_layer, rna_labels):
    """Counts (MatrixMarket), feature and cell names, and the RNA labels; returns the (RNA, other) cell names."""
    _write_mtx(tmp / "rna.mtx", _counts(rna, rna_layer, "rna"))
    _write_mtx(tmp / "other.mtx", _counts(other_gene, other_layer, "other_gene"))
    # Seurat turns "_" in feature names into "-": do it here so both sides agree
    _write_lines(tmp / "rna_genes.txt", [str(g).replace("_", "-") for g in rna.var_names])
    _write_lines(tmp / "other_genes.txt", [str(g).replace("_", "-") for g in other_gene.var_names])
    rna_cells = [f"r{i}" for i in range(rna.n_obs)]
    oth_cells = [f"o{i}" for i in range(other_gene.n_obs)]
    _write_lines(tmp / "rna_cells.txt", rna_cells)
    _write_lines(tmp / "other_cells.txt", oth_cells)
    if rna_labels is not None:
        lab = pd.Series(np.asarray(rna_labels).astype(str))
        if len(lab) != rna.n_obs:
            raise BiclumInputError("rna_labels must have one label per RNA cell.")
        lab.index = rna_cells
        lab.to_csv(tmp / "rna_labels.csv", header=False)
    return rna_cells, oth_cells


def _write_reduction(path: Path, reduction, oth_cells) -> None:
    red = np.asarray(reduction, dtype=np.float64)
    if red.shape[0] != len(oth_cells):
        raise BiclumInputError(f"other_reduction has {red.shape[0]} rows but other_gene {len(oth_cells)} cells; "
                               "pass e.g. lsi(atac_peaks) of the same cells.")
    pd.DataFrame(red, index=oth_cells).to_csv(path)


def _read_seurat_outputs(tmp: Path, rna_cells, oth_cells):
    emb = pd.read_csv(tmp / "coembed.csv", index_col=0)
    pred = None
    if (tmp / "predicted.csv").is_file():
        p = pd.read_csv(tmp / "predicted.csv", index_col=0)
        pred = p.loc[oth_cells].iloc[:, 0].astype(str).to_numpy()
    return emb.loc[rna_cells].to_numpy(np.float32), emb.loc[oth_cells].to_numpy(np.float32), pred
