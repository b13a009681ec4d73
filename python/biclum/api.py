"""One call for the common case: ``biclum.integrate(rna, other, modality, annotation)``."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from ._logging import logger
from .model import BiCLUM


@dataclass
class IntegrationResult:
    """``rna`` / ``other``: AnnData with the inputs' obs (and var; gene space for ``other``), no X, and
    ``obsm["X_<key>"]``, ``varm["<key>_loadings"]``, ``uns[key]["params"]``; ``model``: the fitted BiCLUM."""

    rna: "object"
    other: "object"
    model: BiCLUM

    @property
    def history(self) -> list:
        return self.model.history


def integrate(rna, other, modality: str = "atac", annotation=None, *, seed: int = 0,
              max_epochs: Optional[int] = None, preset: str = "default", progress: bool = True,
              key_added: str = "biclum", checkpoint_dir: Optional[str] = None, resume: Optional[str] = None,
              rna_layer: Optional[str] = None, other_layer: Optional[str] = None,
              gene_activity_kwargs: Optional[dict] = None, protein_mapping=None,
              gene_symbols: Optional[str] = None, other_gene_symbols: Optional[str] = None,
              rna_batch_key: Optional[str] = None, other_batch_key: Optional[str] = None,
              progress_callback: Optional[Callable] = None, paired=None, **config) -> IntegrationResult:
    """Integrate unpaired RNA with ATAC (peaks or gene activity) or protein (ADT) in one call.

    The inputs are not modified; results come back on new AnnData objects (see :class:`IntegrationResult`).
    ``**config`` overrides any field of :class:`biclum.config.BiclumConfig` by name (e.g. ``mnn_k=50``).
    ``progress_callback(stage, step, total, message)`` is called at each setup stage and each epoch.
    ``gene_symbols`` / ``other_gene_symbols``: var columns holding the feature names to use (e.g. symbols of an
    Ensembl-indexed RNA object); ``protein_mapping``: antibody -> gene (dict, list or a two-column file).
    ``rna_batch_key`` / ``other_batch_key``: obs columns with each cell's batch (sample, donor) within its
    modality; batch effects within a modality are then removed as well (:mod:`biclum.batches`).
    ``paired``: known pairs, cells measured in both modalities (10x Multiome, CITE-seq): ``True`` / ``"shared"``
    (the obs_names shared by both inputs are the same cells) or a two-column table (RNA cell name, other cell
    name: a DataFrame with columns ``"rna"``/``"other"`` or two columns, a list of tuples, a CSV/TSV path). Each
    pair is the exact positive of the cell-level loss for its cells, and the known pairs alone get a second
    cell-level term in every step (``alpha_known``); the rest keep their MNN partners. ``None``
    (default) or an empty table: exactly the unpaired run. See :class:`biclum.BiCLUM` and
    :mod:`biclum.known_pairs`.
    """
    model = BiCLUM(rna, other, modality, annotation, preset=preset, seed=seed, rna_layer=rna_layer,
                   other_layer=other_layer, gene_activity_kwargs=gene_activity_kwargs,
                   protein_mapping=protein_mapping, gene_symbols=gene_symbols,
                   other_gene_symbols=other_gene_symbols, rna_batch_key=rna_batch_key,
                   other_batch_key=other_batch_key, progress_callback=progress_callback, paired=paired, **config)
    model.fit(max_epochs, progress=progress, checkpoint_dir=checkpoint_dir, resume=resume)
    out_rna = model.write_to(rna, "rna", key_added)
    out_other = model.write_to(other, "other", key_added)
    logger.info("embeddings: rna %s, %s %s", out_rna.obsm[f"X_{key_added}"].shape, modality,
                out_other.obsm[f"X_{key_added}"].shape)
    return IntegrationResult(out_rna, out_other, model)
