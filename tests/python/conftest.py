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
