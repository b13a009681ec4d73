"""Shared pytest fixtures: the real datasets in ../shared/data and small simulated data."""
from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def load_module(path: Path):
    """A script that is not part of the package (scripts/, studies/) imported from its file, for its tests."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


#: a small, fast model (the settings of test_model_state.py and test_joint_input.py) and its simulated ATAC data
SMALL = dict(n_top_genes=300, n_pcs=20, mnn_k=20, n_metacells=32, batch_size=128, hidden_dims=(64, 64),
             latent_dim=16, n_shared_pcs=15, feature_batch_size=256, num_threads=1)
SMALL_SIM = dict(n_cells=300, modality="atac", n_genes=300, n_distal_peaks=200, seed=3)


@pytest.fixture(scope="module")
def small_sim():
    """(rna, atac, annotation) simulated with :data:`SMALL_SIM`."""
    from biclum.datasets import simulate

    return simulate(**SMALL_SIM)


def shared_data_dir() -> Path:
    env = os.environ.get("BICLUM_SHARED_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = shared_data_dir()
    if not path.is_dir():
        pytest.skip(f"shared datasets not found at {path} (set BICLUM_SHARED_DATA)")
    return path


@pytest.fixture
def biclum_log(caplog):
    """caplog that sees biclum's log records (INFO and above; the package logger does not propagate otherwise)."""
    logger = logging.getLogger("biclum")
    logger.propagate = True
    caplog.set_level(logging.INFO, logger="biclum")
    yield caplog
    logger.propagate = False
