"""biclum: bilateral contrastive learning for unpaired single-cell multi-omics integration.

``import biclum`` is light: the torch-based model (``BiCLUM``, ``integrate``) and the submodules load on first use.
"""
from __future__ import annotations

import importlib

from . import _threads  # noqa: F401  (sets OMP_WAIT_POLICY=PASSIVE before torch loads OpenMP; see biclum._threads)

__version__ = "0.1.0"

from ._logging import logger, set_verbosity
from .errors import (BiclumError, BiclumInputError, BiclumIOError, BiclumModelError, BiclumTrainingError,
                     BiclumWarning)

_LAZY = {"BiCLUM": ".model", "BiclumConfig": ".config", "integrate": ".api", "IntegrationResult": ".api",
         "integrate_mosaic": ".mosaic", "MosaicResult": ".mosaic",
         "MosaicModel": ".mosaic_model"}
_SUBMODULES = {"datasets", "prior", "metrics", "downstream", "plotting", "preprocessing", "pairs", "bridge", "io",
               "benchmark", "config", "model", "api", "training", "module", "validation",
               "mosaic"}

__all__ = [
    "BiCLUM", "BiclumConfig", "integrate", "IntegrationResult", "integrate_mosaic", "MosaicResult", "MosaicModel", "datasets", "prior", "metrics", "downstream",
    "__version__", "logger", "set_verbosity",
    "BiclumError", "BiclumInputError", "BiclumIOError", "BiclumModelError", "BiclumTrainingError", "BiclumWarning",
]


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module 'biclum' has no attribute {name!r}")
    globals()[name] = value
    return value
