"""CPU threads: fast on a shared machine, reproducible at a given setting.

Two things make a multi-threaded fit collapse when another process holds a core (measured on REAP-seq, 2 cores
beside two busy loops: 36.7 s per epoch with torch's default of 2 threads against 1.4 s on the quiet machine):

* OpenMP threads that spin while they wait for work (GNU OpenMP's default) burn the core the busy process needs,
  and a preempted thread stalls its siblings at every barrier. ``OMP_WAIT_POLICY=PASSIVE`` (set here, before
  torch, scikit-learn or faiss load their OpenMP runtime, unless the user set it) makes them sleep instead.
* Many threads for small matrices: biclum's default model (about 0.2M parameters, batches of 512 cells) trains
  as fast on one thread as on two on the quiet machine, and one thread cannot be stalled by a sibling.

So ``num_threads=None`` (the default) picks the count from the size of the work, never from the machine's load:
one thread below :data:`TRAIN_WORK_PER_THREAD` (parameters x batch size) in training and below
:data:`SETUP_CELLS_PER_THREAD` cells in setup, all cores (at most :data:`MAX_AUTO_THREADS`) above. The same data,
settings and seed give the same count, hence the same embeddings, whether the machine is busy or not. An explicit
``num_threads`` is used for both setup and training. torch's intra-op threads and, through threadpoolctl, the
BLAS and OpenMP pools of numpy, scikit-learn and faiss are limited for the duration of the step only.
"""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from typing import Optional

OMP_WAIT_SET_BY_BICLUM = "OMP_WAIT_POLICY" not in os.environ and "torch" not in sys.modules
if OMP_WAIT_SET_BY_BICLUM:  # before any OpenMP runtime is loaded (torch is imported after this module)
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"

TRAIN_WORK_PER_THREAD = 5e8  # parameters x batch size per step; the default model is ~1e8 (REAP-seq: 0.22M x 512)
SETUP_CELLS_PER_THREAD = 50_000  # cells (both modalities) below which setup (PCA, k-means, kNN) uses one thread
MAX_AUTO_THREADS = 8


def _cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover (not on every platform)
        return max(1, os.cpu_count() or 1)


def auto_threads(work: float, per_thread: float, requested: Optional[int] = None) -> int:
    """``requested`` when given; else 1 when ``work`` is below ``per_thread``, else all cores (at most
    ``MAX_AUTO_THREADS``). Depends on the work and the core count only, never on the machine's load."""
    if requested:
        return int(requested)
    return 1 if work < per_thread else min(_cores(), MAX_AUTO_THREADS)


def training_threads(requested: Optional[int], n_params: int, batch_size: int) -> int:
    return auto_threads(float(n_params) * batch_size, TRAIN_WORK_PER_THREAD, requested)


def setup_threads(requested: Optional[int], n_cells: int) -> int:
    return auto_threads(n_cells, SETUP_CELLS_PER_THREAD, requested)


def _load_pools() -> None:
    """Load the libraries whose thread pools setup uses, so that threadpoolctl sees (and limits) them."""
    for name in ("faiss", "sklearn.cluster"):
        if name.split(".")[0] not in sys.modules:
            try:
                __import__(name)
            except ImportError:  # pragma: no cover (faiss is optional for some uses)
                pass


@contextmanager
def thread_limit(n: int):
    """torch intra-op threads and the BLAS/OpenMP pools (threadpoolctl, when installed) set to ``n`` inside the
    block, restored after it."""
    import torch

    _load_pools()
    previous = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover (threadpoolctl comes with scikit-learn)
        threadpool_limits = None
    try:
        if threadpool_limits is None:
            yield n
        else:
            with threadpool_limits(limits=int(n)):
                yield n
    finally:
        torch.set_num_threads(previous)
