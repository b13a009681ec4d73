"""Exceptions and warnings raised by biclum. Every message names the object, the problem and the fix."""
from __future__ import annotations


class BiclumError(Exception):
    """Base class of biclum's errors."""


class BiclumInputError(BiclumError, ValueError):
    """The input data cannot be used as given (the message says why and how to fix it)."""


class BiclumModelError(BiclumError, RuntimeError):
    """A model is used in a way its state does not allow (not fitted, other features, ...), or a saved model's
    file is damaged (the message names it)."""


class BiclumTrainingError(BiclumError, RuntimeError):
    """Training had to stop (non-finite loss, ...); the model keeps its last good weights."""


class BiclumWarning(UserWarning):
    """A problem biclum worked around (the message says what it did)."""


class BiclumIOError(BiclumError, OSError):
    """A file could not be written (disk full, permission denied, folder in use); nothing was half written."""
