"""Figures: loss curves per term, and a UMAP of the joint embedding by modality and cell type."""
from __future__ import annotations

import os
from typing import Optional, Sequence

import numpy as np

from ._logging import logger
from .atomic import atomic_path

LOSS_TERMS = ("total", "recon_rna", "recon_other", "cell", "feature")


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str, **kwargs) -> None:
    """``fig.savefig(path, **kwargs)`` written whole or not at all (:func:`biclum.atomic.atomic_path`); the
    format follows the suffix of ``path`` (a file object is written to directly)."""
    if hasattr(path, "write"):
        fig.savefig(path, **kwargs)
        return
    suffix = os.path.splitext(os.fspath(path))[1].lstrip(".")
    kwargs.setdefault("format", suffix or _plt().rcParams["savefig.format"])
    with atomic_path(path) as tmp:
        fig.savefig(tmp, **kwargs)


def plot_loss(history: Sequence[dict], path: Optional[str] = None):
    """One panel per loss term over epochs."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(LOSS_TERMS), figsize=(3.2 * len(LOSS_TERMS), 2.8))
    epochs = [h["epoch"] + 1 for h in history]
    for ax, term in zip(axes, LOSS_TERMS):
        ax.plot(epochs, [h[term] for h in history], lw=1.5)
        ax.set_title(term)
        ax.set_xlabel("epoch")
    fig.tight_layout()
    if path:
        save_figure(fig, path, dpi=120)
        plt.close(fig)
    return fig


def embed_2d(x: np.ndarray, seed: int = 0, n_neighbors: int = 15) -> np.ndarray:
    """2-D coordinates: UMAP (umap-learn) when installed, else the first two PCs (logged)."""
    try:
        import umap
    except ImportError:
        logger.info("umap-learn is not installed: plotting the first two principal components instead")
        xc = x - x.mean(0)
        u, s, _ = np.linalg.svd(xc, full_matrices=False)
        return u[:, :2] * s[:2]
    return umap.UMAP(n_neighbors=n_neighbors, random_state=seed, min_dist=0.3).fit_transform(x)


def plot_joint_umap(rna_emb: np.ndarray, other_emb: np.ndarray, rna_labels=None, other_labels=None,
                    other_name: str = "other", path: Optional[str] = None, seed: int = 0, max_cells: int = 50_000,
                    coords: Optional[np.ndarray] = None, title: str = ""):
    """UMAP of both modalities' cells together, coloured by modality and (when given) by cell type (``title``
    prefixes the panel titles). Returns (figure, 2-D coordinates)."""
    plt = _plt()
    rng = np.random.default_rng(seed)
    n_a, n_b = len(rna_emb), len(other_emb)
    ia = np.sort(rng.choice(n_a, min(n_a, max_cells // 2), replace=False))
    ib = np.sort(rng.choice(n_b, min(n_b, max_cells // 2), replace=False))
    if coords is None:
        coords = embed_2d(np.vstack([rna_emb[ia], other_emb[ib]]), seed=seed)
    modality = np.r_[np.zeros(len(ia)), np.ones(len(ib))]
    has_labels = rna_labels is not None and other_labels is not None
    fig, axes = plt.subplots(1, 2 if has_labels else 1, figsize=(12 if has_labels else 6, 5), squeeze=False)
    order = rng.permutation(len(coords))
    ax = axes[0, 0]
    for value, name, color in ((0, "rna", "#1f77b4"), (1, other_name, "#ff7f0e")):
        sel = order[modality[order] == value]
        ax.scatter(coords[sel, 0], coords[sel, 1], s=2, c=color, label=name, alpha=0.6, rasterized=True)
    ax.legend(markerscale=5, frameon=False)
    ax.set_title(f"{title} - modality" if title else "modality")
    if has_labels:
        labels = np.r_[np.asarray(rna_labels, dtype=str)[ia], np.asarray(other_labels, dtype=str)[ib]]
        cats = sorted(set(labels))
        cmap = plt.get_cmap("tab20" if len(cats) > 10 else "tab10")
        ax = axes[0, 1]
        for i, cat in enumerate(cats):
            sel = labels == cat
            ax.scatter(coords[sel, 0], coords[sel, 1], s=2, color=cmap(i % cmap.N), label=cat, alpha=0.6,
                       rasterized=True)
        ax.legend(markerscale=5, frameon=False, fontsize=7, loc="center left", bbox_to_anchor=(1, 0.5))
        ax.set_title(f"{title} - cell type" if title else "cell type")
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    if path:
        save_figure(fig, path, dpi=120)
        plt.close(fig)
    return fig, coords
