"""biclum: bilateral contrastive learning for unpaired single-cell multi-omics integration."""
from __future__ import annotations

__version__ = "0.1.0"

from ._logging import logger, set_verbosity
from .errors import BiclumError, BiclumInputError, BiclumModelError, BiclumTrainingError, BiclumWarning

from .config import BiclumConfig
from .model import BiCLUM
from .api import IntegrationResult, integrate
from . import datasets, prior

__all__ = [
    "BiCLUM", "BiclumConfig", "integrate", "IntegrationResult", "datasets", "prior",
    "__version__", "logger", "set_verbosity",
    "BiclumError", "BiclumInputError", "BiclumModelError", "BiclumTrainingError", "BiclumWarning",
]
