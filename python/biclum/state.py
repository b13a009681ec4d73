"""The fitted state of a model, written and read as a whole by ``BiCLUM.save`` / ``BiCLUM.load``.

:class:`FittedSetup` holds what the setup stage fitted (features, preprocessors, sketches, peak LSI, batch
centring, the annotation of the model's genes); :class:`FittedState` adds the network, the config and the training
record. Each field names its codec, which says where the value is stored: the JSON sidecar (``model.json``), the
array file (``arrays.npz``) or, for the network, a plain state_dict (``model.pt``) plus its init parameters in the
sidecar. Adding a piece of fitted state is one field here; :func:`save_state` and :func:`load_state` walk the
fields. No pickled objects are written. The layout (key names) is that of biclum 0.1.0, so models saved by
earlier versions load.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Optional

import numpy as np
import pandas as pd
import torch

from . import __version__
from .batches import BatchCentering
from .config import BiclumConfig
from .errors import BiclumInputError, BiclumModelError
from .module import MODALITIES, BiCLUMModule
from .preprocessing import ModalityPreprocessor, PeakLSI

WEIGHTS_FILE, SIDECAR_FILE, ARRAYS_FILE = "model.pt", "model.json", "arrays.npz"


@dataclass
class _Store:
    """Where the codecs write and read: the directory, the sidecar dict and the arrays (dict or NpzFile)."""

    directory: str
    sidecar: dict
    arrays: Any


class _Json:
    """A JSON value in the sidecar under the field's name; ``default()`` when an older sidecar lacks it."""

    def __init__(self, dump: Callable = lambda v: v, load: Callable = lambda v: v, default: Callable = None):
        self.dump, self.load_value, self.default = dump, load, default

    def save(self, value, name: str, store: _Store) -> None:
        store.sidecar[name] = json.loads(json.dumps(self.dump(value), default=str))

    def load(self, name: str, store: _Store):
        if name in store.sidecar:
            return self.load_value(store.sidecar[name])
        if self.default is None:
            raise KeyError(name)
        return self.default()


class _PerModality:
    """One object per modality with ``to_arrays(prefix)`` / ``from_arrays(arrays, prefix)`` (None: not stored)."""

    def __init__(self, cls, prefix: str = "{m}_"):
        self.cls, self.prefix = cls, prefix

    def save(self, value: dict, name: str, store: _Store) -> None:
        for m, obj in value.items():
            if obj is not None:
                store.arrays.update(obj.to_arrays(self.prefix.format(m=m)))

    def load(self, name: str, store: _Store) -> dict:
        return {m: self.cls.from_arrays(store.arrays, self.prefix.format(m=m)) for m in MODALITIES}


class _Optional:
    """An object with ``to_arrays`` / ``from_arrays`` stored under ``prefix`` when not None (``marker`` present)."""

    def __init__(self, cls, prefix: str, marker: str):
        self.cls, self.prefix, self.marker = cls, prefix, marker

    def save(self, value, name: str, store: _Store) -> None:
        if value is not None:
            store.arrays.update(value.to_arrays(self.prefix))

    def load(self, name: str, store: _Store):
        return self.cls.from_arrays(store.arrays, self.prefix) if self.marker in store.arrays else None


class _ArrayPerModality:
    """One array per modality, under ``key.format(m=modality)``."""

    def __init__(self, key: str):
        self.key = key

    def save(self, value: dict, name: str, store: _Store) -> None:
        store.arrays.update({self.key.format(m=m): value[m] for m in MODALITIES})

    def load(self, name: str, store: _Store) -> dict:
        return {m: store.arrays[self.key.format(m=m)] for m in MODALITIES}


class _AnnotationRows:
    """The model genes' annotation (index gene name; chrom, start, end, strand) as ``ann_*`` arrays."""

    COLUMNS = {"chrom": str, "start": np.int64, "end": np.int64, "strand": str}

    def save(self, value: Optional[pd.DataFrame], name: str, store: _Store) -> None:
        if value is not None:
            store.arrays["ann_genes"] = np.asarray(value.index, dtype=str)
            store.arrays.update({f"ann_{c}": np.asarray(value[c], dtype=t) for c, t in self.COLUMNS.items()})

    def load(self, name: str, store: _Store) -> Optional[pd.DataFrame]:
        if "ann_genes" not in store.arrays:
            return None
        return pd.DataFrame({c: store.arrays[f"ann_{c}"] for c in self.COLUMNS},
                            index=pd.Index(store.arrays["ann_genes"].astype(object)))


class _Module:
    """The network: ``init_params`` in the sidecar, the weights as a plain state_dict in ``model.pt``."""

    def save(self, module: BiCLUMModule, name: str, store: _Store) -> None:
        store.sidecar["init_params"] = module.init_params
        torch.save(module.state_dict(), os.path.join(store.directory, WEIGHTS_FILE))

    def load(self, name: str, store: _Store) -> BiCLUMModule:
        module = BiCLUMModule(**store.sidecar["init_params"])
        path = os.path.join(store.directory, WEIGHTS_FILE)
        module.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return module.eval()


class _Nested:
    """A dataclass whose fields are stored with their own codecs, flat beside the outer ones."""

    def __init__(self, cls):
        self.cls = cls

    def save(self, value, name: str, store: _Store) -> None:
        _save_fields(value, store)

    def load(self, name: str, store: _Store):
        return _load_fields(self.cls, store)


def _stored(codec, **kwargs):
    return field(metadata={"codec": codec}, **kwargs)


def _features(value: dict) -> dict:
    return {m: [str(g) for g in value[m]] for m in MODALITIES}


def _object_arrays(value: dict) -> dict:
    return {m: np.array(value[m], dtype=object) for m in MODALITIES}


def _no_modalities() -> dict:
    return {m: None for m in MODALITIES}


@dataclass(frozen=True)
class FittedSetup:
    """What the setup stage fitted and a model keeps (saved with it): enough to embed new cells."""

    features: dict = _stored(_Json(_features, _object_arrays))       # modality -> genes used (object array)
    preprocessors: dict = _stored(_PerModality(ModalityPreprocessor))  # modality -> ModalityPreprocessor
    sketches: dict = _stored(_ArrayPerModality("{m}_sketch"))         # modality -> features x metacells
    peak_lsi: Optional[PeakLSI] = _stored(_Optional(PeakLSI, "lsi_", "lsi_peaks"))  # ATAC encoder input
    batch_centering: dict = _stored(_PerModality(BatchCentering))     # modality -> BatchCentering or None
    annotation_rows: Optional[pd.DataFrame] = _stored(_AnnotationRows())  # ATAC genes' coordinates
    gene_renames: dict = _stored(_Json(default=dict))                  # other gene -> rna spelling
    gene_space_info: dict = _stored(_Json(default=dict))               # uns of gene_activity / protein_to_gene


@dataclass
class FittedState:
    """A model's whole state: the setup's fitted parts, the network and the training record."""

    modality: str = _stored(_Json())
    config: BiclumConfig = _stored(_Json(lambda c: c.to_dict(), BiclumConfig.from_dict))
    setup: FittedSetup = _stored(_Nested(FittedSetup))
    module: BiCLUMModule = _stored(_Module())
    gene_symbols: dict = _stored(_Json(default=_no_modalities))
    batch_keys: dict = _stored(_Json(default=_no_modalities))
    history: list = _stored(_Json(default=list))
    train_status: str = _stored(_Json(default=lambda: "loaded"))


def _save_fields(obj, store: _Store) -> None:
    for f in fields(obj):
        f.metadata["codec"].save(getattr(obj, f.name), f.name, store)


def _load_fields(cls, store: _Store):
    return cls(**{f.name: f.metadata["codec"].load(f.name, store) for f in fields(cls)})


def field_names() -> set:
    """Names of the state's fields, the setup's included (the attributes a model exposes from its state)."""
    return {f.name for cls in (FittedState, FittedSetup) for f in fields(cls)} - {"setup"}


def save_state(state: FittedState, directory: str, overwrite: bool = False) -> str:
    """``model.pt`` (state_dict), ``model.json`` (version, config, init params, features, ...) and ``arrays.npz``."""
    if os.path.exists(os.path.join(directory, SIDECAR_FILE)) and not overwrite:
        raise BiclumInputError(f"{directory!r} already holds a saved model; pass overwrite=True to replace it.")
    os.makedirs(directory, exist_ok=True)
    store = _Store(directory, {"biclum_version": __version__}, {})
    _save_fields(state, store)
    np.savez_compressed(os.path.join(directory, ARRAYS_FILE), **store.arrays)
    with open(os.path.join(directory, SIDECAR_FILE), "w") as fh:
        json.dump(store.sidecar, fh, indent=1, default=str)
    return directory


def load_state(directory: str) -> FittedState:
    """The state saved in ``directory`` (by this version or an earlier one), checked for consistency."""
    sidecar_path = os.path.join(directory, SIDECAR_FILE)
    if not os.path.exists(sidecar_path):
        raise BiclumInputError(f"{directory!r} holds no saved biclum model ({SIDECAR_FILE} missing).")
    with open(sidecar_path) as fh:
        sidecar = json.load(fh)
    with np.load(os.path.join(directory, ARRAYS_FILE), allow_pickle=False) as arrays:
        try:
            state = _load_fields(FittedState, _Store(directory, sidecar, arrays))
        except (KeyError, TypeError) as err:
            raise BiclumModelError(
                f"{directory!r}: the saved model (biclum {sidecar.get('biclum_version', 'unknown')}) lacks "
                f"{err} or stores it differently; this is biclum {__version__}. Load it with the version that "
                f"saved it, or fit the model again.") from err
    for m in MODALITIES:
        if list(state.setup.preprocessors[m].features.astype(str)) != list(state.setup.features[m].astype(str)):
            raise BiclumModelError(f"{directory!r}: the feature list in {SIDECAR_FILE} does not match "
                                   f"{ARRAYS_FILE} ({m}); the saved model is inconsistent.")
    return state
