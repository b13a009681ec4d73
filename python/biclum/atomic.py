"""Atomic writes: every file and model directory biclum leaves behind is there whole or not at all.

A file (:func:`atomic_path`, :func:`write_bytes`) is written to a hidden temporary file beside its target (same
directory, hence same file system), fsynced, then ``os.replace``\\ d over the target, and the directory is
fsynced. ``os.replace`` is atomic on POSIX file systems, so whoever opens the target (now, or after a crash or a
``kill -9`` at any moment) finds the old file or the new one, never a part of either.

A directory whose files must match one another (a saved model: weights, sidecar and arrays) is written by
:func:`atomic_dir`: the new content goes whole into a hidden sibling ``.NAME.biclum-tmp-HOST-PID-HEX``, is
fsynced, and is swapped in by two renames in the parent directory::

    1. TARGET -> .NAME.biclum-old        (only when TARGET exists)
    2. tmp    -> TARGET
    3. remove .NAME.biclum-old

A reader resolves the directory with :func:`readable_dir`: TARGET when it exists, else ``.NAME.biclum-old``.
Why it always sees the complete old or the complete new directory:

* TARGET only ever comes into being by rename 2 of a complete, fsynced directory (or was written whole by an
  earlier save), and a rename is atomic: while TARGET exists it is complete;
* before 1, TARGET is the old directory: the reader gets the old one;
* between 1 and 2 (the only moment TARGET is missing) ``.NAME.biclum-old`` is the complete old directory, renamed
  as a whole: the reader gets the old one;
* after 2, TARGET is the new directory: the reader gets the new one, whatever is left of ``.NAME.biclum-old``
  (step 3 half done) is never read while TARGET exists.

A write killed between 1 and 2 leaves TARGET missing and ``.NAME.biclum-old`` holding the old directory; the next
write skips step 1 and removes it only after its own step 2. A stale ``.NAME.biclum-old`` beside an existing
TARGET is removed before step 1. Temporary files and directories of writers that are gone (same host, process
no longer running) are removed by the next write of the same target.

Targets are resolved with ``os.path.realpath``: a symbolic link keeps pointing at the written file or directory.

Disk full, quota exceeded, permission denied or a read-only file system while writing raise
:class:`~biclum.errors.BiclumIOError` (one paragraph: the path, the cause, the fix); the temporary file is removed
and the target is left as it was. Other errors propagate unchanged (after the same clean-up).
"""
from __future__ import annotations

import errno
import io
import os
import re
import secrets
import shutil
import socket
from contextlib import contextmanager
from typing import BinaryIO, Callable, Iterator

from ._logging import logger
from .errors import BiclumIOError

__all__ = ["atomic_path", "write_bytes", "atomic_dir", "readable_dir", "in_memory", "write_file",
           "process_alive", "io_error"]

_CAUSES = {
    errno.ENOSPC: ("the disk is full", "free space on that disk, or write to another directory"),
    errno.EDQUOT: ("the disk quota is exceeded", "free space within your quota, or write to another directory"),
    errno.EACCES: ("permission denied", "make the directory writable for this user, or write to another directory"),
    errno.EPERM: ("operation not permitted", "make the directory writable for this user, or write to another "
                                             "directory"),
    errno.EROFS: ("the file system is read-only", "write to another directory"),
}
_HDF5_ERRNO = re.compile(r"errno = (\d+)")


def host_name() -> str:
    """This machine's name, safe in a file name."""
    return re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname()) or "host"


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine (one owned by another user counts as running)."""
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _errno_of(err: BaseException):
    """The errno of an OSError, also when a library put it only in the message (h5py: ``errno = 28``)."""
    if not isinstance(err, OSError):
        return None
    if err.errno is not None:
        return err.errno
    found = _HDF5_ERRNO.search(str(err))
    return int(found.group(1)) if found else None


def io_error(path: str, err: BaseException, hint: str = "") -> BiclumIOError | None:
    """A :class:`BiclumIOError` for a full disk or a refused write to ``path``; None for other errors."""
    code = _errno_of(err)
    if code not in _CAUSES:
        return None
    cause, fix = _CAUSES[code]
    detail = getattr(err, "strerror", None) or str(err)
    return BiclumIOError(
        f"could not write {path!r}: {cause} ({errno.errorcode.get(code, code)}: {detail}). Nothing was replaced: "
        f"{os.path.basename(path)!r} is as it was before the write (if it existed), and no partial file is left. "
        f"Fix: {fix}{'; ' + hint if hint else ''}.")


def _temp_name(target: str) -> str:
    """A hidden sibling of ``target`` that names its writer (host, pid) and keeps the target's suffix."""
    parent, name = os.path.split(target)
    suffix = os.path.splitext(name)[1]
    return os.path.join(parent, f".{name}.biclum-tmp-{host_name()}-{os.getpid()}-{secrets.token_hex(4)}{suffix}")


def _old_name(target: str) -> str:
    parent, name = os.path.split(target)
    return os.path.join(parent, f".{name}.biclum-old")


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            os.unlink(path)
        except OSError:
            pass


def _sweep(target: str) -> None:
    """Remove temporaries of ``target`` left by writers of this host that are no longer running."""
    parent, name = os.path.split(target)
    prefix = f".{name}.biclum-tmp-"
    pattern = re.compile(r"(?P<host>.+)-(?P<pid>\d+)-[0-9a-f]{8}")
    try:
        entries = os.listdir(parent)
    except OSError:
        return
    for entry in entries:
        found = pattern.match(entry[len(prefix):]) if entry.startswith(prefix) else None
        if found and found["host"] == host_name() and int(found["pid"]) != os.getpid() \
                and not process_alive(int(found["pid"])):
            logger.debug("removing %s, left by an interrupted write", entry)
            _remove(os.path.join(parent, entry))


def _fsync_path(path: str, directory: bool = False) -> None:
    """fsync a file or a directory (best effort for directories: not every file system allows it)."""
    try:
        fd = os.open(path, os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0))
    except OSError:
        if directory:
            return
        raise
    try:
        os.fsync(fd)
    except OSError:
        if not directory:
            raise
    finally:
        os.close(fd)


def _fsync_tree(root: str) -> None:
    for here, dirs, files in os.walk(root):
        for f in files:
            _fsync_path(os.path.join(here, f))
        _fsync_path(here, directory=True)


def _raise_translated(target: str, err: BaseException, hint: str) -> None:
    translated = io_error(target, err, hint)
    if translated is not None:
        raise translated from err


def write_file(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` and fsync it (the one low-level byte writer)."""
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def in_memory(write: Callable[[BinaryIO], None]) -> bytes:
    """The bytes ``write(fileobj)`` writes (``lambda fh: torch.save(obj, fh)``), for :func:`write_bytes`."""
    buf = io.BytesIO()
    write(buf)
    return buf.getvalue()


@contextmanager
def atomic_path(path, hint: str = "") -> Iterator[str]:
    """Yield a temporary path beside ``path`` (same suffix) for a writer; on success it replaces ``path``.
    The parent directory is made when missing.

    ``with atomic_path(out / "rna.h5ad") as tmp: adata.write_h5ad(tmp)``. ``hint`` is added to the fix of a
    :class:`BiclumIOError`.
    """
    target = os.path.realpath(os.fspath(path))
    tmp = _temp_name(target)
    try:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        _sweep(target)
        yield tmp
        _fsync_path(tmp)
        os.replace(tmp, target)
        _fsync_path(os.path.dirname(target), directory=True)
    except BaseException as err:
        _remove(tmp)
        _raise_translated(target, err, hint)
        raise


def write_bytes(path, data: bytes, hint: str = "") -> None:
    """Write ``data`` to ``path`` atomically (:func:`atomic_path`)."""
    with atomic_path(path, hint) as tmp:
        write_file(tmp, data)


@contextmanager
def atomic_dir(path, hint: str = "") -> Iterator[str]:
    """Yield a new empty directory beside ``path``; on success it replaces ``path`` as a whole (module docs).

    The previous content of ``path`` is removed: give it a directory that holds only what is written here.
    """
    target = os.path.realpath(os.fspath(path))
    parent, old = os.path.dirname(target), _old_name(target)
    tmp = _temp_name(target)
    try:
        os.makedirs(parent, exist_ok=True)
        _sweep(target)
        os.mkdir(tmp)
        if os.path.isdir(target):
            shutil.copymode(target, tmp)
        yield tmp
        _fsync_tree(tmp)
        _swap(tmp, target, old)
    except BaseException as err:
        _remove(tmp)
        if not os.path.exists(target) and os.path.isdir(old):  # failed between the renames: put the old back
            os.rename(old, target)
        _raise_translated(target, err, hint)
        raise
    _remove(old)


def _swap(tmp: str, target: str, old: str) -> None:
    """Renames 1 and 2 of the module docs (``old`` must not hold the only copy when TARGET exists)."""
    parent = os.path.dirname(target)
    if os.path.isdir(target):
        if os.path.lexists(old):
            _remove(old)  # stale: TARGET exists, so it is complete and the old copy is not needed
        os.rename(target, old)
        _fsync_path(parent, directory=True)
    os.rename(tmp, target)
    _fsync_path(parent, directory=True)


def readable_dir(path) -> str:
    """The directory to read for ``path``: itself when it exists, else the old copy that a write killed between
    its two renames left (logged), else ``path`` (missing)."""
    target = os.path.realpath(os.fspath(path))
    if os.path.isdir(target):
        return target
    old = _old_name(target)
    if os.path.isdir(old):
        logger.info("%s is missing while a write was replacing it; reading the previous copy %s", target, old)
        return old
    return target
