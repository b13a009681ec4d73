"""``MosaicModel``: the fitted models of a mosaic run (one BiCLUM per non-RNA modality) and the rotations that
put them in one space; embeds new cells of any modality (``transform``), saves and loads as one directory.

Saved layout (written whole or not at all, :func:`biclum.atomic.atomic_dir`): ``mosaic.json`` (version, the
modalities in order, the reference model, each rotation as a list of rows) and one saved BiCLUM per modality in
a subdirectory of that name (``atac/``, ``protein/``; :meth:`biclum.BiCLUM.save`).
"""
from __future__ import annotations

import json
import os
from typing import Dict, Optional

import numpy as np

from . import __version__, atomic
from ._logging import logger
from .errors import BiclumInputError, BiclumModelError

SIDECAR = "mosaic.json"


class MosaicModel:
    """``models``: non-RNA modality -> fitted (or loaded) BiCLUM, the first one the reference space;
    ``rotations``: modality -> orthogonal latent x latent matrix onto the reference space."""

    def __init__(self, models: Dict[str, object], rotations: Dict[str, np.ndarray]):
        self.models = dict(models)
        self.rotations = {m: np.asarray(r, dtype=np.float32) for m, r in rotations.items()}

    @property
    def reference(self) -> str:
        return next(iter(self.models))

    def transform(self, adata, modality: str, layer: Optional[str] = None, annotation=None) -> np.ndarray:
        """Embed new cells of ``modality`` ("rna", "atac" or "protein") in the one space: RNA through the reference
        model, another modality through its own model, rotated."""
        from .mosaic import ALIASES

        mod = ALIASES.get(str(modality).lower())
        if mod is None or (mod != "rna" and mod not in self.models):
            raise BiclumInputError(f"modality={modality!r}: this mosaic model embeds rna and "
                                   f"{', '.join(self.models)}.")
        key = self.reference if mod == "rna" else mod
        side = "rna" if mod == "rna" else "other"
        emb = self.models[key].transform(adata, side, layer=layer, annotation=annotation)
        return emb @ self.rotations[key]

    def save(self, directory: str, overwrite: bool = False) -> str:
        """Write the models and rotations into ``directory`` as a whole (module docs)."""
        where = atomic.readable_dir(directory)
        if os.path.exists(os.path.join(where, SIDECAR)) and not overwrite:
            raise BiclumInputError(f"{directory!r} already holds a saved mosaic model; pass overwrite=True to "
                                   f"replace it.")
        if os.path.isdir(where) and os.listdir(where) and not os.path.exists(os.path.join(where, SIDECAR)):
            raise BiclumInputError(f"{directory!r} holds other files; a save replaces the whole directory, so give "
                                   f"an empty or new directory.")
        with atomic.atomic_dir(directory) as tmp:
            for m, model in self.models.items():
                model.save(os.path.join(tmp, m))
            side = {"biclum_version": __version__, "modalities": list(self.models), "reference": self.reference,
                    "rotations": {m: r.tolist() for m, r in self.rotations.items()}}
            atomic.write_file(os.path.join(tmp, SIDECAR), json.dumps(side, indent=1).encode())
        logger.info("saved mosaic model (%s) to %s", ", ".join(self.models), directory)
        return directory

    @classmethod
    def load(cls, directory: str) -> "MosaicModel":
        """The saved models and rotations (each model checked as :meth:`biclum.BiCLUM.load` does)."""
        from .model import BiCLUM

        where = atomic.readable_dir(directory)
        path = os.path.join(where, SIDECAR)
        if not os.path.isfile(path):
            raise BiclumInputError(f"{directory!r} holds no saved mosaic model ({SIDECAR} missing).")
        try:
            with open(path, "rb") as fh:
                side = json.loads(fh.read())
            mods = list(side["modalities"])
            rotations = {m: np.asarray(side["rotations"][m], dtype=np.float32) for m in mods}
        except (ValueError, KeyError, TypeError) as err:
            raise BiclumModelError(f"{path}: damaged ({err}); save the mosaic model again.") from err
        return cls({m: BiCLUM.load(os.path.join(where, m)) for m in mods}, rotations)
