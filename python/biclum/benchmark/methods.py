"""The methods of a benchmark: one runner per method (prepared inputs -> the two embeddings and extras), and why
a method cannot run here."""
from __future__ import annotations

import shutil
from typing import Callable, Dict, Optional

import numpy as np

from .inputs import other_in_gene_space

METHODS = ("biclum", "pca", "pca_cosine", "seurat", "scglue", "maxfuse")

#: peer methods and the pip package each needs (may be installed in a separate environment, BICLUM_PEERS_PYTHON)
PEER_PACKAGES = {"scglue": "scglue", "maxfuse": "maxfuse"}

#: scGLUE's default epoch cap per stage here (pretraining and fine-tuning); ../shared/ANCHORS.md ran 8 + 8
SCGLUE_EPOCHS = 8


def _run_biclum(prep, seed, max_epochs, config):
    import biclum

    res = biclum.integrate(prep["rna"], prep["other"], modality=prep["modality"], annotation=prep["annotation"],
                           seed=seed, max_epochs=max_epochs, progress=False, **(config or {}))
    r = res.rna[prep["rna"].obs_names].obsm["X_biclum"] if not res.rna.obs_names.equals(prep["rna"].obs_names) \
        else res.rna.obsm["X_biclum"]
    o = res.other[prep["other"].obs_names].obsm["X_biclum"] if not res.other.obs_names.equals(
        prep["other"].obs_names) else res.other.obsm["X_biclum"]
    extra = {}
    try:
        extra["epochs"] = len(res.history)
    except Exception:  # history is informative only
        pass
    return np.asarray(r), np.asarray(o), extra


def _run_pca(prep, seed, max_epochs, config):
    from .baselines import pca_floor

    r, o = pca_floor(prep["rna"], other_in_gene_space(prep), seed=seed, **(config or {}))
    return r, o, {}


def _run_pca_cosine(prep, seed, max_epochs, config):
    from .baselines import pca_cosine

    r, o = pca_cosine(prep["rna"], other_in_gene_space(prep), seed=seed, **(config or {}))
    return r, o, {}


def _run_seurat(prep, seed, max_epochs, config):
    from .baselines import lsi, seurat_cca

    og = other_in_gene_space(prep)
    red = lsi(prep["other"], 50, seed=seed) if prep["modality"] == "atac" and _looks_like_peaks(prep["other"]) \
        else None
    out = seurat_cca(prep["rna"], og, other_reduction=red, rna_labels=prep["rna_labels"], **(config or {}))
    if out is None:
        raise _Skip("Rscript or the R package Seurat is not installed")
    r, o, pred = out
    extra = {}
    if pred is not None and prep["other_labels"] is not None:
        extra["transfer_rna_to_other_own"] = float(np.mean(pred == prep["other_labels"]))
    return r, o, extra


def _run_scglue(prep, seed, max_epochs, config):
    from .peers import scglue_baseline

    if prep["modality"] != "atac":
        raise _Skip("the scglue baseline here supports ATAC only")
    cfg = dict(config or {})
    epochs = cfg.pop("max_epochs", SCGLUE_EPOCHS)
    info: dict = {}
    out = scglue_baseline(prep["rna"], prep["other"], prep["annotation"], seed=seed, max_epochs=epochs, info=info,
                          **cfg)
    if out is None:
        raise _Skip("scglue is not installed (pip install scglue)")
    budget = ("scglue's own (data-size dependent)" if epochs is None else
              f"at most {epochs} pretraining + {epochs} fine-tuning epochs")
    return out[0], out[1], {"epoch_budget": budget, **info}


def _run_maxfuse(prep, seed, max_epochs, config):
    from .peers import maxfuse_baseline

    if prep["modality"] != "protein":
        raise _Skip("the maxfuse baseline here supports protein only")
    out = maxfuse_baseline(prep["rna"], prep["other"], seed=seed, **(config or {}))
    if out is None:
        raise _Skip("maxfuse is not installed (pip install maxfuse)")
    return out[0], out[1], {}


def _looks_like_peaks(adata) -> bool:
    try:
        from ..prior import parse_peaks

        parse_peaks(adata)
        return True
    except Exception:
        return False


_RUNNERS: Dict[str, Callable] = {"biclum": _run_biclum, "pca": _run_pca, "pca_cosine": _run_pca_cosine,
                                 "seurat": _run_seurat, "scglue": _run_scglue, "maxfuse": _run_maxfuse}


class _Skip(Exception):
    """A method cannot run here (tool missing); the row is kept with the reason."""


def _method_unavailable(method: str) -> Optional[str]:
    """Why a method cannot run in this environment (None when it can)."""
    if method == "seurat":
        from .baselines import seurat_available

        ok, why = seurat_available()
        return None if ok else why
    if method in PEER_PACKAGES:
        from .peers import peer_available, peer_python

        ok, why = peer_available(PEER_PACKAGES[method])
        if not (ok or peer_python(PEER_PACKAGES[method])):
            return why
        if method == "scglue" and shutil.which("bedtools") is None:
            return "scglue's guidance graph needs the bedtools program (Debian: apt-get install bedtools)"
        return None
    if method == "biclum":
        try:
            from ..api import integrate  # noqa: F401
        except Exception as exc:
            return f"biclum.integrate is not importable ({type(exc).__name__}: {exc})"
    return None

