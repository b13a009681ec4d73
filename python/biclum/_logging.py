"""The package logger. Library code logs through ``biclum.logger``; users set its level."""
from __future__ import annotations

import logging

logger = logging.getLogger("biclum")
if not logger.handlers:
    _handler = logging.StreamHandler()
    _handler.setFormatter(logging.Formatter("[biclum] %(levelname)s: %(message)s"))
    logger.addHandler(_handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def set_verbosity(level: int | str) -> None:
    """Set the biclum logger level (e.g. ``"WARNING"`` to silence progress messages)."""
    logger.setLevel(level)
