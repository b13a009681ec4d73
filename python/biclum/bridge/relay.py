"""Logs, progress, warnings and errors of a Python call made from R.

:func:`call_for_r` runs a body for R: biclum's log records go to R as they happen (INFO only when verbose),
Python warnings and WARNING records are collected (R re-raises them as R warnings), and errors come back as
values (R re-raises them as R conditions with the Python message), never raised through reticulate.
"""
from __future__ import annotations

import logging
import time
import traceback
import warnings
from typing import Callable

__all__ = ["Relay", "call_for_r"]


class Relay:
    """Sends biclum log records and progress events to R, in order, as they happen.

    INFO records go to ``log_fn(level, message)`` at once; WARNING and above are collected (re-raised as R
    warnings after the call). Progress goes to ``progress_fn(stage, step, total, message)``: the first and
    last step of each stage always, otherwise at most every ``interval`` seconds; an event whose message
    is the log line just sent (the core logs each setup stage and reports it as progress) is not sent
    twice. Exceptions raised by the R callbacks never stop the fit.
    """

    def __init__(self, log_fn: Callable | None, progress_fn: Callable | None = None, interval: float = 1.0):
        self.log_fn, self.progress_fn, self.interval = log_fn, progress_fn, float(interval)
        self.sink: list[str] = []
        self.last_log: str | None = None
        self.stage: str | None = None
        self.t = 0.0

    @staticmethod
    def _call(fn: Callable, *args) -> None:
        try:
            fn(*args)
        except KeyboardInterrupt:
            raise
        except Exception:
            pass

    def log(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        if record.levelno >= logging.WARNING:
            self.sink.append(msg)
            return
        self.last_log = msg
        if self.log_fn is not None:
            self._call(self.log_fn, record.levelname, msg)

    def progress(self, stage: str, step: int, total: int, message: str = "") -> None:
        message = "" if message is None else str(message)
        repeated = self.last_log is not None and message == self.last_log
        self.last_log = None
        now = time.monotonic()
        first = stage != self.stage
        last = total is not None and int(total) > 0 and int(step) >= int(total)
        if not (first or last or now - self.t >= self.interval):
            return
        self.stage, self.t = stage, now
        if self.progress_fn is not None and not (repeated and self.log_fn is not None):
            self._call(self.progress_fn, str(stage), int(step), int(total or 0), message)


class _ForwardHandler(logging.Handler):
    """Routes biclum log records to a :class:`Relay` instead of the Python stderr."""

    def __init__(self, relay: Relay):
        super().__init__(level=logging.DEBUG)
        self.relay = relay

    def emit(self, record: logging.LogRecord) -> None:  # pragma: no cover - trivial
        try:
            self.relay.log(record)
        except KeyboardInterrupt:
            raise
        except Exception:
            pass


def _error_value(e: Exception) -> dict:
    return {"ok": False, "error_class": type(e).__name__,
            "error_classes": [c.__name__ for c in type(e).__mro__ if c is not object],
            "message": str(e), "traceback": traceback.format_exc()}


def call_for_r(body: Callable[[], dict], relay: Relay, verbose: bool) -> dict:
    """Run ``body()`` for R with biclum's log records going through ``relay`` (INFO only when ``verbose``).

    Returns ``{"ok": True, "warnings", **body()}`` or ``{"ok": False, "warnings", "error_class",
    "error_classes", "message", "traceback"}``; warnings keep their order, exact duplicates dropped.
    """
    from .._logging import logger

    handler = _ForwardHandler(relay)
    saved_handlers, saved_level = list(logger.handlers), logger.level
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for h in saved_handlers:
                logger.removeHandler(h)
            logger.addHandler(handler)
            if not verbose:
                logger.setLevel(max(saved_level, logging.WARNING))
            try:
                out = {"ok": True, **body()}
            except KeyboardInterrupt:
                raise
            except Exception as e:  # returned, re-raised in R with the same message
                out = _error_value(e)
            relay.sink.extend(str(w.message) for w in caught)
    finally:
        logger.removeHandler(handler)
        for h in saved_handlers:
            if h not in logger.handlers:
                logger.addHandler(h)
        logger.setLevel(saved_level)
    seen: set = set()  # keep order, drop exact duplicates (a warning that was also logged)
    out["warnings"] = [w for w in relay.sink if not (w in seen or seen.add(w))]
    return out
