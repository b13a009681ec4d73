"""Baselines the benchmark compares biclum with, on the same inputs.

* :func:`pca_floor` - joint PCA of the genes shared by RNA and the other modality's gene-space matrix (gene
  activity for ATAC, protein-coding genes for ADT). The "floor" of ``../shared/ANCHORS.md``.
* :func:`seurat_cca` - Seurat's scATAC integration vignette (v4; also runs with v5): CCA anchors from RNA to the
  gene-space query, TransferData of the imputed RNA expression, merge, PCA co-embedding; via ``Rscript`` running
  ``benchmarks/seurat_cca.R``. Returns None (and logs why) when Rscript or Seurat is missing.
* :func:`scglue_baseline` - GLUE on raw peaks with its RNA-anchored guidance graph (built from the same gene
  annotation biclum uses), when the optional ``scglue`` package (and the ``bedtools`` program it calls) is
  installed (returns None otherwise). ATAC only.
* :func:`maxfuse_baseline` - MaxFuse (pip ``maxfuse``) after its CITE-seq tutorial, the shared features given by
  biclum's own antibody -> gene mapping (:func:`biclum.prior.protein_to_gene`); returns None when maxfuse is
  missing. Protein only.

The peers (scglue, maxfuse) may live in a separate Python environment (``make peers`` builds one at
``.venv-peers`` with ``--system-site-packages``, so it shares numpy/anndata/torch with the main one): set
``BICLUM_PEERS_PYTHON`` to its interpreter and ``biclum benchmark`` runs those methods' worker processes with it
(:func:`peer_python`).

Every baseline returns ``(rna_embedding, other_embedding)`` float32 arrays, rows in the inputs' cell order
(Seurat additionally returns its own TransferData labels, see :func:`seurat_cca`).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Optional, Sequence, Tuple

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ._logging import logger
from .errors import BiclumInputError
from .preprocessing import sparse_mean_std

__all__ = ["log_normalize", "pca_floor", "lsi", "seurat_cca", "seurat_available", "scglue_baseline",
           "scglue_available", "maxfuse_baseline", "maxfuse_available", "peer_available", "peer_python",
           "SEURAT_SCRIPT"]

#: the R script behind :func:`seurat_cca` (in the source tree; override with ``BICLUM_SEURAT_SCRIPT``)
SEURAT_SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "seurat_cca.R"


# ----------------------------------------------------------------------------------------------------- helpers
def _counts(adata, layer: Optional[str], name: str) -> sp.csr_matrix:
    X = adata.layers[layer] if layer is not None else adata.X
    if X is None:
        raise BiclumInputError(f"{name} has no X; pass an AnnData with counts in X (or name the layer).")
    X = sp.csr_matrix(X) if not sp.issparse(X) else X.tocsr()
    X = X.astype(np.float32)
    if X.nnz and X.data.min() < 0:
        raise BiclumInputError(f"{name} has negative values; the baselines need raw counts (cells x features).")
    return X


def log_normalize(X: sp.csr_matrix, target_sum: float = 1e4) -> sp.csr_matrix:
    """log1p(counts / library size * target_sum) on the CSR non-zeros (a new matrix; cells with 0 counts stay 0)."""
    X = sp.csr_matrix(X, dtype=np.float32, copy=True)
    lib = np.asarray(X.sum(axis=1)).ravel()
    fac = np.where(lib > 0, target_sum / np.maximum(lib, 1e-12), 0.0).astype(np.float32)
    X.data *= np.repeat(fac, np.diff(X.indptr))
    np.log1p(X.data, out=X.data)
    return X


class _Scaled:
    """Row-stacked blocks (X_b - mean_b) / std_b of sparse matrices over the same columns, never densified."""

    def __init__(self, blocks: Sequence[sp.csr_matrix], max_value: Optional[float] = None):
        self.blocks = []
        for X in blocks:
            mean, std = sparse_mean_std(X)
            X = X.astype(np.float64)
            if max_value is not None:  # scanpy's scale(max_value): clip the non-zeros at mean + max_value * std
                X.data = np.minimum(X.data, (mean + max_value * std)[X.indices])
            self.blocks.append((X, mean, 1.0 / std))
        self.shape = (sum(b[0].shape[0] for b in self.blocks), blocks[0].shape[1])

    def dot(self, M: np.ndarray) -> np.ndarray:  # (n x m) @ (m x r)
        out = []
        for X, mean, inv in self.blocks:
            Ms = M * inv[:, None]
            out.append(np.asarray(X @ Ms) - (mean @ Ms)[None, :])
        return np.vstack(out)

    def tdot(self, U: np.ndarray) -> np.ndarray:  # (m x n) @ (n x r)
        res, start = 0.0, 0
        for X, mean, inv in self.blocks:
            Ub = U[start:start + X.shape[0]]
            start += X.shape[0]
            res = res + (np.asarray(X.T @ Ub) - mean[:, None] * Ub.sum(axis=0)[None, :]) * inv[:, None]
        return res


def _randomized_svd(op, k: int, seed: int = 0, n_iter: int = 7, oversample: int = 10):
    """Halko et al. randomized SVD of a linear operator with dot/tdot; returns (U*S, S) with a sign convention."""
    rng = np.random.default_rng(seed)
    n, m = op.shape
    k = min(k, n - 1, m)
    ell = min(k + oversample, n, m)
    Q, _ = np.linalg.qr(op.dot(rng.standard_normal((m, ell))))
    for _ in range(n_iter):
        Z, _ = np.linalg.qr(op.tdot(Q))
        Q, _ = np.linalg.qr(op.dot(Z))
    Ub, S, Vt = np.linalg.svd(op.tdot(Q).T, full_matrices=False)
    U = Q @ Ub[:, :k]
    V = Vt[:k]
    signs = np.sign(V[np.arange(k), np.abs(V).argmax(axis=1)])
    signs[signs == 0] = 1
    return U * (S[:k] * signs)[None, :], S[:k]


# --------------------------------------------------------------------------------------------------- PCA floor
def pca_floor(rna, other_gene, n_comps: int = 30, *, target_sum: float = 1e4, max_value: Optional[float] = 10.0,
              seed: int = 0, rna_layer: Optional[str] = None,
              other_layer: Optional[str] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Joint PCA of the shared genes: the floor any integration method should beat.

    Both count matrices are library-size normalised (``target_sum``, over all their genes) and log1p'd, reduced to
    the genes they share (RNA order), scaled to zero mean and unit variance **within each modality** (implicitly:
    no dense copy; values above ``max_value`` standard deviations clipped as ``sc.pp.scale(max_value=10)``, zeros
    never clipped), stacked, and reduced by a randomized PCA (``seed``) to ``n_comps`` components.

    The defaults (30 components, clip 10) reproduce the floor of ``../shared/ANCHORS.md`` on SNARE-seq (RNA vs
    gene activity): FOSCTTM 0.252, transfer RNA->ATAC 0.50, ATAC->RNA 0.73; with 50 components FOSCTTM is 0.28-0.29.

    Parameters
    ----------
    rna
        AnnData, cells x genes, raw counts.
    other_gene
        AnnData of the other modality already in gene space, raw counts: gene activity for ATAC
        (:func:`biclum.prior.gene_activity`) or antibodies mapped to genes (:func:`biclum.prior.protein_to_gene`).

    Returns
    -------
    (rna_embedding, other_embedding): float32 arrays, cells x components.
    """
    shared = pd.Index(rna.var_names).intersection(pd.Index(other_gene.var_names), sort=False)
    if len(shared) < 2:
        raise BiclumInputError(f"pca_floor: RNA and the other modality share {len(shared)} gene names; map the "
                               "other modality to gene symbols first (gene_activity / protein_to_gene).")
    Xr = log_normalize(_counts(rna, rna_layer, "rna"), target_sum)
    Xo = log_normalize(_counts(other_gene, other_layer, "other_gene"), target_sum)
    Xr = Xr[:, pd.Index(rna.var_names).get_indexer(shared)]
    Xo = Xo[:, pd.Index(other_gene.var_names).get_indexer(shared)]
    scores, _ = _randomized_svd(_Scaled([Xr, Xo], max_value=max_value), n_comps, seed=seed)
    logger.info("pca_floor: joint PCA of %d shared genes -> %d components", len(shared), scores.shape[1])
    scores = scores.astype(np.float32)
    return scores[: rna.n_obs], scores[rna.n_obs:]


def lsi(peaks, n_comps: int = 50, *, seed: int = 0, layer: Optional[str] = None) -> np.ndarray:
    """Signac-style LSI of a peak matrix: TF-IDF (log1p(tf * idf * 1e4)), randomized SVD, each component
    standardised (Signac ``RunSVD(scale.embeddings=TRUE)``). Returns cells x n_comps float32; component 1 usually
    tracks sequencing depth (Seurat's vignette uses dims 2:30)."""
    X = _counts(peaks, layer, "peaks")
    lib = np.asarray(X.sum(axis=1)).ravel()
    tf = X.multiply(1.0 / np.maximum(lib, 1e-12)[:, None]).tocsr()
    idf = X.shape[0] / np.maximum(np.asarray(X.sum(axis=0)).ravel(), 1e-12)
    tf = tf.multiply(idf[None, :]).tocsr().astype(np.float64)
    tf.data = np.log1p(tf.data * 1e4)

    class _Op:
        shape = tf.shape

        @staticmethod
        def dot(M):
            return np.asarray(tf @ M)

        @staticmethod
        def tdot(U):
            return np.asarray(tf.T @ U)

    emb, _ = _randomized_svd(_Op, n_comps, seed=seed)
    emb = (emb - emb.mean(axis=0)) / np.maximum(emb.std(axis=0, ddof=1), 1e-12)
    return emb.astype(np.float32)


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


def seurat_cca(rna, other_gene, *, other_reduction: Optional[np.ndarray] = None, reduction_dims: str = "2:30",
               rna_labels: Optional[Sequence] = None, n_dims: int = 30, n_features: int = 2000,
               rscript: Optional[str] = None, script: Optional[str] = None, timeout: Optional[float] = None,
               workdir: Optional[str] = None, rna_layer: Optional[str] = None, other_layer: Optional[str] = None):
    """Seurat CCA anchors + TransferData co-embedding (Seurat's scATAC integration vignette), via Rscript.

    RNA: NormalizeData, FindVariableFeatures (vst, ``n_features``), ScaleData. Query (``other_gene``: gene
    activity or protein genes): NormalizeData, ScaleData. ``FindTransferAnchors(reduction="cca")`` over the variable
    genes present in both (all shared genes when fewer than 200 are), ``TransferData`` of the RNA expression of
    those genes (``weight.reduction``: ``other_reduction`` dims ``reduction_dims``, e.g. the ATAC LSI from
    :func:`lsi`; without it, a PCA of the query computed in R), merge, ScaleData(do.scale=FALSE), RunPCA; the first
    ``n_dims`` PCs are the co-embedding.

    Returns ``(rna_embedding, other_embedding, predicted_labels)`` (``predicted_labels``: Seurat's own
    TransferData cell-type predictions of the query cells when ``rna_labels`` is given, else None), or **None**
    when Rscript or Seurat is missing (logged). Inputs go to R as MatrixMarket files in a temporary folder.
    """
    ok, why = seurat_available(rscript)
    if not ok:
        logger.warning("seurat_cca skipped: %s", why)
        return None
    script = Path(script or os.environ.get("BICLUM_SEURAT_SCRIPT", SEURAT_SCRIPT))
    if not script.is_file():
        logger.warning("seurat_cca skipped: R script %s not found (set BICLUM_SEURAT_SCRIPT)", script)
        return None
    exe = _rscript(rscript)
    Xr = _counts(rna, rna_layer, "rna")
    Xo = _counts(other_gene, other_layer, "other_gene")
    with tempfile.TemporaryDirectory(prefix="biclum_seurat_", dir=workdir) as tmp:
        tmp = Path(tmp)
        _write_mtx(tmp / "rna.mtx", Xr)
        _write_mtx(tmp / "other.mtx", Xo)
        # Seurat turns "_" in feature names into "-": do it here so both sides agree
        _write_lines(tmp / "rna_genes.txt", [str(g).replace("_", "-") for g in rna.var_names])
        _write_lines(tmp / "other_genes.txt", [str(g).replace("_", "-") for g in other_gene.var_names])
        rna_cells = [f"r{i}" for i in range(rna.n_obs)]
        oth_cells = [f"o{i}" for i in range(other_gene.n_obs)]
        _write_lines(tmp / "rna_cells.txt", rna_cells)
        _write_lines(tmp / "other_cells.txt", oth_cells)
        args = [exe, str(script), "--dir", str(tmp), "--ndims", str(int(n_dims)), "--nfeatures", str(int(n_features))]
        if other_reduction is not None:
            red = np.asarray(other_reduction, dtype=np.float64)
            if red.shape[0] != other_gene.n_obs:
                raise BiclumInputError(f"other_reduction has {red.shape[0]} rows but other_gene {other_gene.n_obs} "
                                       "cells; pass e.g. lsi(atac_peaks) of the same cells.")
            pd.DataFrame(red, index=oth_cells).to_csv(tmp / "other_reduction.csv")
            args += ["--reduction-dims", reduction_dims]
        if rna_labels is not None:
            lab = pd.Series(np.asarray(rna_labels).astype(str), index=rna_cells)
            if len(lab) != rna.n_obs:
                raise BiclumInputError("rna_labels must have one label per RNA cell.")
            lab.to_csv(tmp / "rna_labels.csv", header=False)
        logger.info("seurat_cca: running %s (%d RNA cells, %d query cells)", script.name, rna.n_obs,
                    other_gene.n_obs)
        res = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
        if res.returncode != 0:
            tail = "\n".join((res.stderr or res.stdout).strip().splitlines()[-20:])
            raise RuntimeError(f"seurat_cca: Rscript failed (exit {res.returncode}):\n{tail}")
        for line in res.stdout.strip().splitlines()[-5:]:
            logger.debug("seurat_cca: %s", line)
        emb = pd.read_csv(tmp / "coembed.csv", index_col=0)
        rna_emb = emb.loc[rna_cells].to_numpy(np.float32)
        oth_emb = emb.loc[oth_cells].to_numpy(np.float32)
        pred = None
        if (tmp / "predicted.csv").is_file():
            p = pd.read_csv(tmp / "predicted.csv", index_col=0)
            pred = p.loc[oth_cells].iloc[:, 0].astype(str).to_numpy()
    return rna_emb, oth_emb, pred


# ------------------------------------------------------------------------------------------------------- scGLUE
# -------------------------------------------------------------------------------------------------------- peers
def peer_available(package: str) -> Tuple[bool, str]:
    """(True, version) when the peer's package imports in this Python, else (False, reason with the fix)."""
    import importlib

    try:
        mod = importlib.import_module(package)
    except Exception as exc:  # ImportError, or a broken install
        return False, (f"{package} is not importable ({type(exc).__name__}: {exc}); pip install {package}, or set "
                       "BICLUM_PEERS_PYTHON to a Python that has it (make peers)")
    try:
        from importlib.metadata import version

        return True, version(package)
    except Exception:  # version metadata is informative only
        return True, getattr(mod, "__version__", "unknown")


_PEER_PYTHON_CACHE: dict = {}


def peer_python(package: str) -> Optional[str]:
    """The interpreter in ``BICLUM_PEERS_PYTHON`` when ``package`` imports there (None when unset or missing)."""
    exe = os.environ.get("BICLUM_PEERS_PYTHON")
    if not exe:
        return None
    key = (exe, package)
    if key not in _PEER_PYTHON_CACHE:
        try:
            ok = subprocess.run([exe, "-c", f"import {package}"], capture_output=True, timeout=300).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            ok = False
        if not ok:
            logger.warning("BICLUM_PEERS_PYTHON=%s cannot import %s", exe, package)
        _PEER_PYTHON_CACHE[key] = exe if ok else None
    return _PEER_PYTHON_CACHE[key]


def scglue_available() -> Tuple[bool, str]:
    return peer_available("scglue")


def maxfuse_available() -> Tuple[bool, str]:
    return peer_available("maxfuse")


def scglue_baseline(rna, atac_peaks, annotation, *, n_hvg: int = 2000, latent_dim: int = 50, seed: int = 0,
                    max_epochs: Optional[int] = None, workdir: Optional[str] = None, info: Optional[dict] = None):
    """GLUE (scglue) on RNA + raw ATAC peaks with the RNA-anchored guidance graph, as in scglue's tutorial.

    RNA: seurat_v3 HVGs on counts, normalise/log1p/scale/PCA (100); ATAC: LSI (100). Gene coordinates come from
    ``annotation`` (a gene table readable by :func:`biclum.prior.read_annotation`, the one biclum's gene activity
    uses). ``max_epochs`` caps each of scglue's two stages (pretraining and fine-tuning); None = scglue's own
    budget (scaled to the data size). Returns ``(rna_embedding, atac_embedding)`` or None (logged) when scglue is
    not installed. Needs scanpy (a scglue dependency) and the ``bedtools`` program (guidance graph). ATAC only.

    scglue's cell-type balancing weights come out NaN when its pretrained embedding has no matching clusters
    (a few epochs on a few hundred cells); the fit is then repeated without balancing
    (``fit_SCGLUE(skip_balance=True)``) and ``info["note"]`` says so (``info``: an optional dict filled in).
    """
    ok, why = scglue_available()
    if not ok:
        logger.warning("scglue baseline skipped: %s", why)
        return None
    import scanpy as sc
    import scglue

    from .prior import read_annotation

    ann = read_annotation(annotation).drop_duplicates("gene_name").set_index("gene_name")
    rna = rna.copy()
    atac = atac_peaks.copy()
    rna.layers["counts"] = rna.X.copy()
    sc.pp.highly_variable_genes(rna, n_top_genes=n_hvg, flavor="seurat_v3")
    sc.pp.normalize_total(rna)
    sc.pp.log1p(rna)
    sc.pp.scale(rna)
    sc.tl.pca(rna, n_comps=min(100, rna.n_vars - 1), svd_solver="auto")
    scglue.data.lsi(atac, n_components=min(100, atac.n_vars - 1), n_iter=15)
    common = rna.var_names.intersection(ann.index)
    rna = rna[:, common].copy()
    rna.var["chrom"] = ann.loc[common, "chrom"].values
    rna.var["chromStart"] = (ann.loc[common, "start"].values - 1).astype(int)
    rna.var["chromEnd"] = ann.loc[common, "end"].values.astype(int)
    rna.var["strand"] = ann.loc[common, "strand"].values
    from .prior import parse_peaks

    pk = parse_peaks(atac)
    atac.var["chrom"] = pk["chrom"].values
    atac.var["chromStart"] = pk["start"].values.astype(int)
    atac.var["chromEnd"] = pk["end"].values.astype(int)
    guidance = scglue.genomics.rna_anchored_guidance_graph(rna, atac)  # also marks atac.var["highly_variable"]
    hvf = list(rna.var_names[rna.var["highly_variable"]]) + list(atac.var_names[atac.var["highly_variable"]])
    guidance_hvf = guidance.subgraph(hvf).copy()
    info = {} if info is None else info
    for skip_balance in (False, True):
        data = {"rna": rna.copy(), "atac": atac.copy()}  # fit_SCGLUE writes balancing weights into its inputs
        scglue.models.configure_dataset(data["rna"], "NB", use_highly_variable=True, use_layer="counts",
                                        use_rep="X_pca")
        scglue.models.configure_dataset(data["atac"], "NB", use_highly_variable=True, use_rep="X_lsi")
        fit_kws = {"directory": tempfile.mkdtemp(prefix="biclum_glue_", dir=workdir)}
        if max_epochs is not None:
            fit_kws["max_epochs"] = max_epochs
        glue = scglue.models.fit_SCGLUE(data, guidance_hvf, skip_balance=skip_balance,
                                        init_kws={"latent_dim": latent_dim, "random_seed": seed}, fit_kws=fit_kws)
        weights = [np.asarray(a.obs.get("balancing_weight", 1.0), dtype=float) for a in data.values()]
        if skip_balance or all(np.isfinite(w).all() for w in weights):
            break
        logger.warning("scglue: NaN balancing weights (no matching clusters after pretraining); fitting again with "
                       "skip_balance=True")
        info["note"] = "scglue balancing weights were NaN; refitted with skip_balance=True"
    return (glue.encode_data("rna", data["rna"]).astype(np.float32),
            glue.encode_data("atac", data["atac"]).astype(np.float32))


def _tutorial_scaled(X, *, hvg: bool = False, drop_constant: bool = True) -> np.ndarray:
    """MaxFuse tutorial preprocessing (scanpy): normalize_total, log1p, [highly_variable_genes], scale; with
    ``drop_constant``, features constant across cells (sd <= 1e-5) dropped. Returns a dense float array."""
    import anndata as ad
    import scanpy as sc

    a = ad.AnnData(sp.csr_matrix(X, dtype=np.float32))
    sc.pp.normalize_total(a)
    sc.pp.log1p(a)
    if hvg:
        sc.pp.highly_variable_genes(a)
        a = a[:, a.var["highly_variable"].to_numpy()].copy()
    sc.pp.scale(a)
    D = np.asarray(a.X)
    return D[:, D.std(axis=0) > 1e-5] if drop_constant else D


def _varies(X: sp.csr_matrix) -> np.ndarray:
    return (X.max(axis=0) > X.min(axis=0)).toarray().ravel()


def maxfuse_baseline(rna, adt, *, mapping=None, seed: int = 0, n_neighbors: int = 15,
                     metacell_size: Optional[int] = None, cca_components: Optional[int] = None):
    """MaxFuse (Chen et al., Nat Biotechnol 2023) on RNA + ADT, following its CITE-seq tutorial.

    Shared features: the antibodies mapped to genes by :func:`biclum.prior.protein_to_gene` (``mapping`` as there;
    the same prior knowledge biclum uses) and the RNA counts of those genes, each normalised, log1p'd and scaled.
    Active features: RNA highly variable genes, all non-control antibodies. Components are the tutorial's (a
    228-antibody panel, 10,000 cells: RNA 40 SVD components, protein 15; initial pivots 25/20; CCA 20; metacells
    of 2 cells), scaled down for small data: each capped below the number of features, ``cca_components``
    (None) = min(20, max(5, antibodies // 4)), ``metacell_size`` (None) = 2 from 5,000 RNA cells, else 1. The
    embedding is MaxFuse's CCA embedding of every cell (``Fusor.get_embedding``) fitted on the filtered pivots.
    On ECCITE (500 cells, 47 antibodies, 37 varying shared genes) FOSCTTM is 0.29-0.30 with these choices (five
    runs: 0.288-0.304; MaxFuse is not bitwise reproducible here even with ``seed``); the tutorial's unscaled
    CCA 20 / metacells of 2 give 0.41 (other single changes: 0.31-0.35).
    Returns ``(rna_embedding, adt_embedding)`` float32, or None (logged) when maxfuse is not installed.
    """
    ok, why = maxfuse_available()
    if not ok:
        logger.warning("maxfuse baseline skipped: %s", why)
        return None
    import maxfuse as mf

    from .prior import protein_to_gene

    og = protein_to_gene(adt, mapping=mapping, genes=list(rna.var_names))
    shared = pd.Index(og.var_names).intersection(pd.Index(rna.var_names), sort=False)
    controls = set(og.uns["protein_to_gene"].get("isotypes", []))
    Xr = _counts(rna, None, "rna")
    Xa = _counts(adt, None, "adt")[:, [i for i, n in enumerate(adt.var_names) if n not in controls]]
    Sr = Xr[:, pd.Index(rna.var_names).get_indexer(shared)]
    Sp = _counts(og, None, "adt mapped to genes")[:, pd.Index(og.var_names).get_indexer(shared)]
    varies = _varies(Sr) & _varies(Sp)
    if varies.sum() < 3:
        raise BiclumInputError(f"maxfuse_baseline: the antibodies map to {int(varies.sum())} varying genes of the "
                               "RNA; MaxFuse needs shared features (pass mapping= with the panel's gene symbols).")
    rs = _tutorial_scaled(Sr[:, varies], drop_constant=False)
    ps = _tutorial_scaled(Sp[:, varies], drop_constant=False)
    ra, pa = _tutorial_scaled(Xr, hvg=True), _tutorial_scaled(Xa)
    n_sh, n_p = rs.shape[1], pa.shape[1]
    metacell_size = metacell_size or (2 if rna.n_obs >= 5000 else 1)
    cca_components = cca_components or min(20, max(5, n_p // 4))
    logger.info("maxfuse: %d shared genes, %d RNA HVGs, %d antibodies; metacells of %d, %d CCA components", n_sh,
                ra.shape[1], n_p, metacell_size, cca_components)
    np.random.seed(seed)
    fusor = mf.model.Fusor(shared_arr1=rs, shared_arr2=ps, active_arr1=ra, active_arr2=pa)
    fusor.split_into_batches(max_outward_size=8000, matching_ratio=4, metacell_size=metacell_size, seed=seed,
                             verbose=False)
    fusor.construct_graphs(n_neighbors1=n_neighbors, n_neighbors2=n_neighbors,
                           svd_components1=min(40, ra.shape[1] - 1), svd_components2=min(15, n_p - 1),
                           resolution1=2, resolution2=2, leiden_seed=seed, verbose=False)
    fusor.find_initial_pivots(wt1=0.3, wt2=0.3, svd_components1=min(25, n_sh - 1),
                              svd_components2=min(20, n_sh - 1), verbose=False)
    fusor.refine_pivots(wt1=0.3, wt2=0.3, svd_components1=min(40, ra.shape[1] - 1), svd_components2=None,
                        cca_components=min(cca_components, n_p - 1), n_iters=1, verbose=False)
    fusor.filter_bad_matches(target="pivot", filter_prop=0.5, verbose=False)
    r, p = fusor.get_embedding(active_arr1=fusor.active_arr1, active_arr2=fusor.active_arr2)
    return np.asarray(r, dtype=np.float32), np.asarray(p, dtype=np.float32)
