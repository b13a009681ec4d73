"""biclum.bridge.torch_import: torch imported inside a process whose global scope holds a BLAS (as inside R)."""
import ctypes.util
import os
import subprocess
import sys

import pytest

CLEAN_ENV = dict(os.environ)  # before other test modules embed R (R's LD_LIBRARY_PATH would give a child Python
#                               the system's libpython; see test_reliability)

SCRIPT = """
import ctypes, os, sys
ctypes.CDLL({lib!r}, mode=os.RTLD_NOW | ctypes.RTLD_GLOBAL)  # what R does with its BLAS
from biclum.bridge.torch_import import blas_in_global_scope, import_torch
assert blas_in_global_scope()
flags = sys.getdlopenflags()
print(import_torch())
assert sys.getdlopenflags() == flags
import numpy as np, torch
a, b = torch.randn(64, 32), torch.randn(32, 16)
assert np.abs((a @ b).numpy() - a.numpy() @ b.numpy()).max() < 1e-4
print(import_torch())
"""
SCRIPT_LATE = """
import ctypes, os, warnings
ctypes.CDLL({lib!r}, mode=os.RTLD_NOW | ctypes.RTLD_GLOBAL)
import torch  # imported by something else first
from biclum.bridge.torch_import import import_torch
with warnings.catch_warnings(record=True) as w:
    warnings.simplefilter("always")
    print(import_torch())
assert any("restart R" in str(x.message) for x in w), [str(x.message) for x in w]
"""


def test_import_torch_plain_in_python():
    out = subprocess.run([sys.executable, "-c", "from biclum.bridge.torch_import import import_torch; "
                          "print(import_torch()); print(import_torch())"], capture_output=True, text=True, env=CLEAN_ENV)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["plain", "plain"]


def test_import_torch_deepbind_beside_a_global_blas():
    lib = ctypes.util.find_library("blas")
    if lib is None or not sys.platform.startswith("linux"):
        pytest.skip("no system BLAS library (libblas) to load globally here")
    out = subprocess.run([sys.executable, "-c", SCRIPT.format(lib=lib)], capture_output=True, text=True, env=CLEAN_ENV)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["deepbind", "deepbind"]
    late = subprocess.run([sys.executable, "-c", SCRIPT_LATE.format(lib=lib)], capture_output=True, text=True, env=CLEAN_ENV)
    assert late.returncode == 0, late.stderr
    assert late.stdout.splitlines() == ["already imported (global BLAS)"]
