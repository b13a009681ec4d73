"""The peers of ``biclum benchmark``: scGLUE and MaxFuse (optional packages, possibly in their own environment).

* :func:`scglue_baseline` - GLUE on raw peaks with its RNA-anchored guidance graph (built from the same gene
  annotation biclum uses), when the optional ``scglue`` package (and the ``bedtools`` program it calls) is
  installed (returns None otherwise). ATAC only.
* :func:`maxfuse_baseline` - MaxFuse (pip ``maxfuse``) after its CITE-seq tutorial, the shared features given by
  biclum's own antibody -> gene mapping (:func:`biclum.prior.protein_to_gene`); returns None when maxfuse is
  missing. Protein only.

The peers may live in a separate Python environment (``make peers`` builds one at ``.venv-peers`` with
``--system-site-packages``, so it shares numpy/anndata/torch with the main one): set ``BICLUM_PEERS_PYTHON`` to its
interpreter and ``biclum benchmark`` runs those methods' worker processes with it (:func:`peer_python`).
"""
from __future__ import annotations

import os
import subprocess
import tempfile
from typing import Optional, Tuple

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .._logging import logger
from ..errors import BiclumInputError
from .baselines import _counts
from .scglue_training import STAGES, epochs_run, fit_scglue_resumable, train_seconds

__all__ = ["scglue_baseline", "scglue_available", "maxfuse_baseline", "maxfuse_available", "peer_available",
           "peer_python"]


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
                    max_epochs: Optional[int] = None, workdir: Optional[str] = None, info: Optional[dict] = None,
                    checkpoint_dir: Optional[str] = None):
    """GLUE (scglue) on RNA + raw ATAC peaks with the RNA-anchored guidance graph, as in scglue's tutorial.

    RNA: seurat_v3 HVGs on counts, normalise/log1p/scale/PCA (100); ATAC: LSI (100). Gene coordinates come from
    ``annotation`` (a gene table readable by :func:`biclum.prior.read_annotation`, the one biclum's gene activity
    uses). ``max_epochs`` caps each of scglue's two stages (pretraining and fine-tuning); None = scglue's own
    budget (scaled to the data size). Returns ``(rna_embedding, atac_embedding)`` or None (logged) when scglue is
    not installed. Needs scanpy (a scglue dependency) and the ``bedtools`` program (guidance graph). ATAC only.

    scglue's cell-type balancing weights come out NaN when its pretrained embedding has no matching clusters
    (a few epochs on a few hundred cells); the fit is then repeated without balancing
    (``fit_SCGLUE(skip_balance=True)``) and ``info["note"]`` says so (``info``: an optional dict filled in).

    ``checkpoint_dir``: scglue's training directory, kept: a run given the same directory (same data, seed and
    budget) goes on from the last epoch saved there, so a run of hours on a CPU that is stopped loses at most one
    epoch (:func:`biclum.benchmark.scglue_training.fit_scglue_resumable`, the steps of ``fit_SCGLUE``). None:
    ``fit_SCGLUE`` itself, in a new temporary directory (under ``workdir``).
    """
    ok, why = scglue_available()
    if not ok:
        logger.warning("scglue baseline skipped: %s", why)
        return None
    import scglue

    rna, atac, guidance_hvf = scglue_inputs(rna, atac_peaks, annotation, n_hvg=n_hvg)
    info = {} if info is None else info
    attempts = (False, True)
    if checkpoint_dir and os.path.isdir(os.path.join(checkpoint_dir, "unbalanced")):
        attempts = (True,)  # an earlier run of this checkpoint found NaN balancing weights
        info["note"] = "scglue balancing weights were NaN; refitted with skip_balance=True"
    for skip_balance in attempts:
        data = {"rna": rna.copy(), "atac": atac.copy()}  # fit_SCGLUE writes balancing weights into its inputs
        scglue_configure(data)
        directory = (os.path.join(checkpoint_dir, "unbalanced" if skip_balance else "balanced") if checkpoint_dir
                     else tempfile.mkdtemp(prefix="biclum_glue_", dir=workdir))
        fit_kws = {"directory": directory}
        if max_epochs is not None:
            fit_kws["max_epochs"] = max_epochs
        fit = fit_scglue_resumable if checkpoint_dir else scglue.models.fit_SCGLUE
        glue = fit(data, guidance_hvf, skip_balance=skip_balance,
                   init_kws={"latent_dim": latent_dim, "random_seed": seed}, fit_kws=fit_kws)
        weights = [np.asarray(a.obs.get("balancing_weight", 1.0), dtype=float) for a in data.values()]
        if skip_balance or all(np.isfinite(w).all() for w in weights):
            break
        logger.warning("scglue: NaN balancing weights (no matching clusters after pretraining); fitting again with "
                       "skip_balance=True")
        info["note"] = "scglue balancing weights were NaN; refitted with skip_balance=True"
    stages = [epochs_run(os.path.join(directory, stage)) for stage in STAGES]
    if None not in stages:
        info["epochs"] = sum(stages)
        info["epoch_stages"] = f"{stages[0]} pretraining + {stages[1]} fine-tuning"
    seconds = [train_seconds(os.path.join(directory, stage)) for stage in STAGES] if checkpoint_dir else [None]
    if None not in seconds:
        info["train_s_all_pieces"] = sum(seconds)
    return (glue.encode_data("rna", data["rna"]).astype(np.float32),
            glue.encode_data("atac", data["atac"]).astype(np.float32))


def scglue_inputs(rna, atac_peaks, annotation, *, n_hvg: int = 2000):
    """scglue's tutorial preprocessing (the inputs of :func:`scglue_baseline`): RNA seurat_v3 HVGs on counts,
    normalise/log1p/scale/PCA (100), ATAC LSI (100), gene and peak coordinates, and the RNA-anchored guidance graph
    restricted to the highly variable features. Returns ``(rna, atac, guidance_hvf)``; the inputs are not changed."""
    import scanpy as sc
    import scglue

    from ..prior import parse_peaks, read_annotation

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
    pk = parse_peaks(atac)
    atac.var["chrom"] = pk["chrom"].values
    atac.var["chromStart"] = pk["start"].values.astype(int)
    atac.var["chromEnd"] = pk["end"].values.astype(int)
    guidance = scglue.genomics.rna_anchored_guidance_graph(rna, atac)  # also marks atac.var["highly_variable"]
    hvf = list(rna.var_names[rna.var["highly_variable"]]) + list(atac.var_names[atac.var["highly_variable"]])
    guidance_hvf = guidance.subgraph(hvf).copy()
    return rna, atac, guidance_hvf


def scglue_configure(data: dict) -> None:
    """scglue.models.configure_dataset on ``{"rna": ..., "atac": ...}`` from :func:`scglue_inputs`, as the tutorial."""
    import scglue

    scglue.models.configure_dataset(data["rna"], "NB", use_highly_variable=True, use_layer="counts", use_rep="X_pca")
    scglue.models.configure_dataset(data["atac"], "NB", use_highly_variable=True, use_rep="X_lsi")


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

    from ..prior import protein_to_gene

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
