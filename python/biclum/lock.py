"""One run per output folder: ``biclum fit --out DIR`` holds ``DIR/.biclum.lock`` while it runs.

The lock is an ``fcntl.flock`` on that file, taken without waiting: a second run on the same folder stops at once
with :class:`~biclum.errors.BiclumIOError` naming the run that holds it (process, host, start time, recorded in the
file). The kernel drops a flock when its process ends, however it ends, so a run killed with ``kill -9`` leaves a
lock file but no lock: the next run takes it over and logs whose it was (and whether that process is gone).
A normal end removes the file. Where the file system cannot lock (some network or FUSE mounts, Windows), the run
goes on unlocked with a warning.
"""
from __future__ import annotations

import json
import os
import time

from ._logging import logger
from .atomic import host_name, process_alive
from .errors import BiclumIOError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

LOCK_FILE = ".biclum.lock"


def _describe(record: dict) -> str:
    return (f"process {record.get('pid', '?')} on host {record.get('host', '?')}, started "
            f"{record.get('started', '?')}")


def _read_record(fd: int) -> dict:
    try:
        record = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


class OutputLock:
    """``with OutputLock(out_dir, "biclum fit"):`` - the folder is this run's until the block ends."""

    def __init__(self, directory, what: str = "biclum fit"):
        self.path = os.path.join(os.fspath(directory), LOCK_FILE)
        self.what = what
        self.fd = None

    def __enter__(self) -> "OutputLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def acquire(self) -> None:
        if fcntl is None:
            logger.warning("cannot lock %s on this system: two runs on one output folder are not prevented", self.path)
            return
        while self.fd is None:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            if not self._lock(fd):
                return
            try:
                same_file = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same_file = False
            if same_file:  # else the holder removed the file as we opened it: try again on the new one
                self.fd = fd
            else:
                os.close(fd)
        self._take_over(_read_record(self.fd))
        record = {"pid": os.getpid(), "host": host_name(), "what": self.what,
                  "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, json.dumps(record).encode(), 0)

    def _lock(self, fd: int) -> bool:
        """Lock ``fd`` without waiting: True when locked, False when locking is unsupported (warned), raises when
        another run holds it."""
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            holder = _read_record(fd)
            os.close(fd)
            folder = os.path.dirname(self.path) or "."
            raise BiclumIOError(
                f"the output folder {folder!r} is in use by another run of {self.what} ({_describe(holder)}); two "
                f"runs writing one folder would mix their outputs. Fix: wait for that run to end or stop it, or give "
                f"another --out.") from None
        except OSError as err:
            os.close(fd)
            logger.warning("cannot lock %s (%s): two runs on one output folder are not prevented", self.path, err)
            return False

    def _take_over(self, previous: dict) -> None:
        if not previous:
            return
        pid = previous.get("pid")
        gone = previous.get("host") == host_name() and isinstance(pid, int) and not process_alive(pid)
        logger.warning("taking over the lock of %s left by %s, %s", os.path.dirname(self.path) or ".",
                       _describe(previous), "which is no longer running" if gone else "which did not release it")

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            os.unlink(self.path)  # while still locked: a run that opened this file meanwhile sees it gone, retries
        except OSError:
            pass
        os.close(self.fd)
        self.fd = None
