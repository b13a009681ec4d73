"""Import torch inside R so that it keeps its own BLAS.

R puts its BLAS (``libblas.so.3``; on a default Debian R the reference BLAS) into the process's global symbol
scope. A torch imported after it binds its ``sgemm_`` calls there instead of to its own MKL, and every matrix
product runs on that BLAS: RunBiCLUM on ArchR's 150 + 150 cells took 135 s a seed (benchmarks/results/
archr_runbiclum.md at f52af59) and takes 14 s with this import, with the same embeddings. Importing torch with
``RTLD_DEEPBIND`` makes its libraries look up their own symbols first, so torch runs as fast inside R as in Python.
"""
from __future__ import annotations

import ctypes
import os
import sys
import warnings

from .._logging import logger

_imported_here = None  # how import_torch imported torch in this process, once it has


def blas_in_global_scope() -> bool:
    """Whether a BLAS ``sgemm_`` is visible in the process's global symbol scope (true inside R)."""
    try:
        return hasattr(ctypes.CDLL(None), "sgemm_")
    except OSError:  # pragma: no cover - no dlopen(NULL) on this platform
        return False


def import_torch() -> str:
    """Import torch (once) so that it uses its own BLAS; returns how: "deepbind", "plain", "already imported",
    "already imported (global BLAS)" (something else imported torch first inside R; warns) or "missing" (torch
    is not installed; biclum's fit says how to install it)."""
    global _imported_here
    if _imported_here is not None:
        return _imported_here
    global_blas = blas_in_global_scope()
    if "torch" in sys.modules:
        if global_blas:
            warnings.warn("torch was imported before biclum inside a process that also holds R's BLAS, so its "
                          "matrix products may run on that BLAS and training may be 10 times slower; restart R "
                          "and call a biclum function before anything else imports torch.", stacklevel=2)
            return "already imported (global BLAS)"
        return "already imported"
    deepbind = global_blas and hasattr(os, "RTLD_DEEPBIND")
    flags = sys.getdlopenflags()
    if deepbind:
        sys.setdlopenflags(flags | os.RTLD_DEEPBIND)
    try:
        import torch  # noqa: F401
    except ImportError:
        return "missing"
    finally:
        sys.setdlopenflags(flags)
    how = _imported_here = "deepbind" if deepbind else "plain"
    logger.debug("torch imported (%s; BLAS in the global scope: %s)", how, global_blas)
    return how
