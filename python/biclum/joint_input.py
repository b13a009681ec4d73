"""The joint shared-gene coordinates as a second part of each cell encoder's input (``joint_input=K``).

The MNN search runs in a joint PCA of the genes both modalities share, but each cell encoder reads its own
modality's PCs (or the peak LSI), which can hold less of what the two modalities share. On shallow data, maps
fitted on true pairs between the encoder inputs reach FOSCTTM 0.281, while the 10-component joint PCA of the
shared genes gets 0.254 with no pairs at all (benchmarks/results/foscttm_ceiling.md, linear_floor.md).

With ``joint_input=K`` each encoder also reads the first K components of that joint PCA for its cells (not
smoothed), as unit rows scaled to the median norm of the modality's own input, so the block weighs about as much
as the rest of the input. A modality's block is fitted as a :class:`~biclum.preprocessing.ModalityPreprocessor`
over the shared genes (this modality's mean and standard deviation, the joint components), so query cells get
exactly the transform the training cells got. The joint PCA here scales each modality as a whole, also with batch
keys; the batch centring of the encoder input then covers the block like the rest.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import scipy.sparse as sp

from ._logging import logger
from .module import MODALITIES
from .preprocessing import ModalityPreprocessor, joint_shared_pca, sparse_mean_std
from .validation import FEW_SHARED_GENES

#: ``joint_input="auto"``: components of the block when the modalities share enough genes. On the shared data 10
#: helps FOSCTTM on every paired set (benchmarks/results/trials_joint_input.md, trials_joint_input_protein.md);
#: 5 helped less and 20 cost the NeurIPS CITE starter's transfer in a first look (seed 0).
AUTO_COMPONENTS = 10


def auto_joint_input(requested, n_shared: int, n_pca: int) -> int:
    """Components of the joint block: ``requested`` (capped by the joint PCA's ``n_pca``), or for ``"auto"``
    :data:`AUTO_COMPONENTS` when ``n_shared`` genes are :data:`biclum.validation.FEW_SHARED_GENES` or more, else 0
    (the block would be those few genes themselves, unsmoothed: on the NeurIPS CITE starter's 8 it costs 5-NN
    transfer, 0.437 -> 0.412). Logged."""
    if requested != "auto":
        return min(int(requested), n_pca)
    k = min(AUTO_COMPONENTS, n_pca) if n_shared >= FEW_SHARED_GENES else 0
    logger.info("joint_input='auto': %s (%d shared genes, %s %d)", f"{k} components" if k else "off", n_shared,
                "at least" if k else "fewer than", FEW_SHARED_GENES)
    return k


@dataclass
class JointInput:
    """One modality's joint shared-gene block: ``projection`` (shared genes -> K joint components) and ``scale``
    (the row norm of the block: the median norm of the modality's own encoder input at training)."""

    projection: ModalityPreprocessor
    scale: float

    @property
    def n_components(self) -> int:
        return int(self.projection.components.shape[1])

    def block(self, norm: sp.csr_matrix) -> np.ndarray:
        """The block of cells given their normalised log1p values of the shared genes (``projection.features``)."""
        scores = self.projection.project(norm)
        norms = np.linalg.norm(scores, axis=1, keepdims=True)
        return (scores * (self.scale / np.maximum(norms, 1e-12))).astype(np.float32)

    def transform(self, counts: sp.csr_matrix, var_names: np.ndarray) -> np.ndarray:
        """The block of new cells from their counts in gene space (``var_names`` holding the shared genes)."""
        return self.block(self.projection.transform(counts, var_names)[1])

    def to_arrays(self, prefix: str) -> dict:
        return {**self.projection.to_arrays(prefix), f"{prefix}row_scale": np.array([self.scale])}

    @classmethod
    def from_arrays(cls, arrays, prefix: str) -> Optional["JointInput"]:
        if f"{prefix}row_scale" not in arrays:
            return None
        return cls(ModalityPreprocessor.from_arrays(arrays, prefix), float(arrays[f"{prefix}row_scale"][0]))


def fit_joint_inputs(shared_norms: dict, shared: np.ndarray, own_inputs: dict, n_components: int, n_pca: int,
                     seed: int, target_sum: float, max_value: Optional[float],
                     max_cells: Optional[int]) -> tuple[dict, dict, dict]:
    """Per modality the :class:`JointInput`, its block for the training cells and the cells' joint PCA scores
    (all ``n_pca`` components: without batch codes, the MNN search's joint space before smoothing).

    ``shared_norms``: modality -> normalised log1p values of the ``shared`` genes (cells x shared, that order);
    ``own_inputs``: modality -> the encoder's own input (PCs or peak LSI), for the scale. The joint PCA has
    ``n_pca`` components (as the MNN search's, for the same accuracy) of which the first ``n_components`` are
    kept."""
    *scores, components = joint_shared_pca(shared_norms["rna"], shared_norms["other"], n_pca, seed, max_value,
                                      max_cells, return_components=True)
    fitted, blocks = {}, {}
    for m in MODALITIES:
        mean, std = sparse_mean_std(shared_norms[m])
        projection = ModalityPreprocessor(np.asarray(shared), mean.astype(np.float32), std.astype(np.float32),
                                          np.ascontiguousarray(components[:, :n_components]), target_sum, max_value)
        scale = float(np.median(np.linalg.norm(own_inputs[m], axis=1)))
        fitted[m] = JointInput(projection, scale)
        blocks[m] = fitted[m].block(shared_norms[m])
    logger.info("joint_input: the first %d of %d joint shared-gene components (%d genes) appended to each cell "
                "encoder's input, rows scaled to %s", n_components, n_pca, len(shared),
                {m: round(fitted[m].scale, 2) for m in MODALITIES})
    return fitted, blocks, dict(zip(MODALITIES, scores))
