"""The fitted state of a model, written and read as a whole by ``BiCLUM.save`` / ``BiCLUM.load``.

:class:`FittedSetup` holds what the setup stage fitted (features, preprocessors, sketches, peak LSI, batch centring,
the annotation of the model's genes, the joint input); :class:`FittedState` adds the network, the config and the
training record. Each field names its codec, which says where the value is stored: the JSON sidecar
(``model.json``), the array file (``arrays.npz``) or, for the network, a plain state_dict (``model.pt``) plus its
init parameters in the sidecar. Adding a piece of fitted state is one field here; :func:`save_state` and
:func:`load_state` walk the fields. No pickled objects are written. The layout (key names) is that of biclum 0.1.0,
so models saved by earlier versions load.

The directory is written whole or not at all (:func:`biclum.atomic.atomic_dir`: built beside, then swapped in by
renames), so an overwrite killed at any moment leaves the old model or the new one. The sidecar records the size
and sha256 of ``model.pt`` and ``arrays.npz`` (``files``) and a sha256 of its own content (``sidecar_sha256``);
:func:`load_state` reads each file once, checks it against the record and raises :class:`BiclumModelError`
naming the damaged file, what is wrong and the fix. Sidecars without the record (saved before it existed) load
unchecked, but a file that cannot be parsed still names itself.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Optional

import numpy as np
import pandas as pd
import torch

from . import __version__, atomic
from .batches import BatchCentering
from .config import BiclumConfig
from .errors import BiclumInputError, BiclumModelError
from .joint_input import JointInput
from .module import MODALITIES, BiCLUMModule
from .preprocessing import ModalityPreprocessor, PeakLSI

WEIGHTS_FILE, SIDECAR_FILE, ARRAYS_FILE = "model.pt", "model.json", "arrays.npz"
MODEL_FILES = (SIDECAR_FILE, WEIGHTS_FILE, ARRAYS_FILE)
RESAVE = ("save the model again from the session that fitted it (model.save(directory, overwrite=True)), or copy "
          "the directory again from where it was saved")


@dataclass
class _Store:
    """Where the codecs write and read: the directory, the sidecar dict, the arrays (dict) and the weights file's
    bytes (``weights``: written by save, read by load)."""

    directory: str
    sidecar: dict
    arrays: Any
    weights: bytes = b""


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
        store.weights = atomic.in_memory(lambda fh: torch.save(module.state_dict(), fh))

    def load(self, name: str, store: _Store) -> BiCLUMModule:
        module = BiCLUMModule(**store.sidecar["init_params"])
        try:
            weights = torch.load(io.BytesIO(store.weights), map_location="cpu", weights_only=True)
            module.load_state_dict(weights)
        except Exception as err:  # torch raises RuntimeError, OSError, EOFError, UnpicklingError, ...
            raise _damaged(store, WEIGHTS_FILE, f"it cannot be read as the network's weights "
                                                f"({type(err).__name__}: {str(err)[:200]})") from err
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
    joint_input: dict = _stored(_PerModality(JointInput, "{m}_joint_"),  # modality -> JointInput or None
                                default_factory=_no_modalities)


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
    n_known_pairs: int = _stored(_Json(default=int))  # known pairs used in training (biclum.known_pairs)


def _save_fields(obj, store: _Store) -> None:
    for f in fields(obj):
        f.metadata["codec"].save(getattr(obj, f.name), f.name, store)


def _load_fields(cls, store: _Store):
    return cls(**{f.name: f.metadata["codec"].load(f.name, store) for f in fields(cls)})


def field_names() -> set:
    """Names of the state's fields, the setup's included (the attributes a model exposes from its state)."""
    return {f.name for cls in (FittedState, FittedSetup) for f in fields(cls)} - {"setup"}


def save_state(state: FittedState, directory: str, overwrite: bool = False) -> str:
    """``model.pt`` (state_dict), ``model.json`` (version, config, init params, features, checksums, ...) and
    ``arrays.npz``, written whole into ``directory`` (an overwrite keeps the old model until the new one is
    complete; :mod:`biclum.atomic`)."""
    where = atomic.readable_dir(directory)
    if os.path.exists(os.path.join(where, SIDECAR_FILE)) and not overwrite:
        raise BiclumInputError(f"{directory!r} already holds a saved model; pass overwrite=True to replace it.")
    check_save_target(directory)
    store = _Store(directory, {"biclum_version": __version__}, {})
    _save_fields(state, store)
    files = {WEIGHTS_FILE: store.weights,
             ARRAYS_FILE: atomic.in_memory(lambda fh: np.savez_compressed(fh, **store.arrays))}
    store.sidecar["files"] = {name: {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
                              for name, data in files.items()}
    files[SIDECAR_FILE] = _sidecar_bytes(store.sidecar)
    with atomic.atomic_dir(directory) as tmp:
        for name, data in files.items():
            atomic.write_file(os.path.join(tmp, name), data)
    return directory


def check_save_target(directory: str) -> None:
    """A save replaces the directory as a whole: refuse one that holds anything else, or the working directory
    (``biclum fit`` checks its model directory with it before training)."""
    cwd, real = os.getcwd(), os.path.realpath(directory)
    if cwd == real or cwd.startswith(real.rstrip(os.sep) + os.sep):
        raise BiclumInputError(f"{directory!r} is the working directory (or holds it); a save replaces the model "
                               f"directory as a whole, so give it a directory of its own, e.g. 'model'.")
    if not os.path.isdir(directory):
        if os.path.lexists(directory):
            raise BiclumInputError(f"{directory!r} is a file, not a directory; give a directory to save the model in.")
        return
    other = sorted(set(os.listdir(directory)) - set(MODEL_FILES))
    if other:
        raise BiclumInputError(
            f"{directory!r} holds other files than a saved model ({', '.join(other[:5])}"
            f"{', ...' if len(other) > 5 else ''}); a save replaces the model directory as a whole, so save into a "
            f"new directory (or one that holds only a model).")


def _canonical_sha256(sidecar: dict) -> str:
    text = json.dumps({k: v for k, v in sidecar.items() if k != "sidecar_sha256"}, sort_keys=True,
                      separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _sidecar_bytes(sidecar: dict) -> bytes:
    """The sidecar as written (JSON), with the sha256 of its own content (as read back) added."""
    content = json.loads(json.dumps(sidecar, default=str))
    content["sidecar_sha256"] = _canonical_sha256(content)
    return json.dumps(content, indent=1).encode()


def _damaged(store: _Store, name: str, problem: str) -> BiclumModelError:
    saved_by = store.sidecar.get("biclum_version")
    version = f"The model was saved by biclum {saved_by}; this is" if saved_by else "This is"
    return BiclumModelError(
        f"{os.path.join(store.directory, name)!r} is damaged: {problem}. {version} biclum {__version__}. Fix: "
        f"{RESAVE}{f', or load it with biclum {saved_by}' if saved_by and saved_by != __version__ else ''}; a "
        f"model directory cannot be repaired by hand.")


def _read_files(directory: str) -> tuple[str, dict]:
    """The directory read (see :func:`biclum.atomic.readable_dir`) and the bytes of its files (missing: None).

    All files are opened relative to one open handle of the directory, so they come from the same directory even
    if a save swaps it meanwhile."""
    where = atomic.readable_dir(directory)
    if os.path.exists(where) and not os.path.isdir(where):
        raise BiclumInputError(f"{directory!r} is a file, not a model directory; give the directory a model was "
                               f"saved to.")
    if not os.path.isdir(where):
        return where, {}
    use_fd = os.open in os.supports_dir_fd
    dir_fd = os.open(where, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)) if use_fd else None
    try:
        files = {}
        for name in MODEL_FILES:
            opener = (lambda p, flags: os.open(p, flags, dir_fd=dir_fd)) if use_fd else None
            try:
                with open(name if use_fd else os.path.join(where, name), "rb", opener=opener) as fh:
                    files[name] = fh.read()
            except FileNotFoundError:
                files[name] = None
        return where, files
    finally:
        if dir_fd is not None:
            os.close(dir_fd)


def _parse_sidecar(store: _Store, data: bytes) -> dict:
    try:
        sidecar = json.loads(data)
    except (ValueError, UnicodeDecodeError) as err:
        raise _damaged(store, SIDECAR_FILE, f"it is not valid JSON ({err}): cut short or changed") from err
    if not isinstance(sidecar, dict):
        raise _damaged(store, SIDECAR_FILE, "it holds no JSON object")
    return sidecar


def _check_files(store: _Store, files: dict) -> None:
    """Each file against the sidecar's record (when it has one: models saved before it existed have none)."""
    recorded_self = store.sidecar.get("sidecar_sha256")
    if recorded_self is not None and recorded_self != _canonical_sha256(store.sidecar):
        raise _damaged(store, SIDECAR_FILE, "its content differs from what was saved (sha256 of the content does "
                                            "not match sidecar_sha256): it was changed after saving")
    for name in (WEIGHTS_FILE, ARRAYS_FILE):
        if files.get(name) is None:
            raise _damaged(store, name, "the file is missing")
    for name, record in (store.sidecar.get("files") or {}).items():
        data = files.get(name)
        if data is None:
            raise _damaged(store, name, "the file is missing")
        if len(data) != record.get("size"):
            raise _damaged(store, name, f"it has {len(data)} bytes where {record.get('size')} were saved "
                                        f"(cut short by an interrupted copy or a full disk, or changed)")
        if hashlib.sha256(data).hexdigest() != record.get("sha256"):
            raise _damaged(store, name, "its sha256 checksum differs from the one recorded in model.json: its "
                                        "content was changed or damaged after saving")


def _read_arrays(store: _Store, data: bytes) -> dict:
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            return {key: npz[key] for key in npz.files}
    except Exception as err:  # BadZipFile, zlib.error, ValueError, OSError, EOFError
        raise _damaged(store, ARRAYS_FILE, f"it cannot be read as the model's arrays "
                                           f"({type(err).__name__}: {str(err)[:200]})") from err


def load_state(directory: str) -> FittedState:
    """The state saved in ``directory`` (by this version or an earlier one), checked for damage and consistency."""
    where, files = _read_files(directory)
    if files.get(SIDECAR_FILE) is None:
        raise BiclumInputError(f"{directory!r} holds no saved biclum model ({SIDECAR_FILE} missing).")
    store = _Store(where, {}, {})
    store.sidecar = _parse_sidecar(store, files[SIDECAR_FILE])
    _check_files(store, files)
    store.arrays, store.weights = _read_arrays(store, files[ARRAYS_FILE]), files[WEIGHTS_FILE]
    sidecar = store.sidecar
    try:
        state = _load_fields(FittedState, store)
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
