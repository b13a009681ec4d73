"""Multi-process / multi-machine training with ``torch.distributed`` (DistributedDataParallel), launched by torchrun.

``torchrun`` sets WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR and MASTER_PORT; when WORLD_SIZE > 1 ``setup`` joins
the process group (``nccl`` when training on CUDA, ``gloo`` on CPU) and returns the device of this process
(``cuda:LOCAL_RANK`` on GPU). Outside torchrun every helper is a no-op and training is the single-process loop,
bit for bit.

How the loop uses it (``biclum.training.Trainer``):

* every rank runs the same deterministic setup (preprocessing, MNN pairs) on the data it reads, so each node needs
  the input files; the network is then wrapped in ``DistributedDataParallel`` (gradients are averaged across
  ranks in backward);
* every rank draws the same seeded permutation of the cells each epoch and takes a disjoint shard of every step:
  the global batch is ``batch_size`` cells per modality (``batch_size // world_size`` per rank), so an epoch visits
  every cell once in total and takes as many optimiser steps as one process would;
* the epoch's loss terms are averaged across ranks, so early stopping and the best epoch are the same everywhere;
  non-finite losses and Ctrl-C are agreed on every step, so all ranks stop together;
* BatchNorm stays per rank (``SyncBatchNorm`` needs a GPU); its running statistics are averaged across ranks at
  the end of each epoch, so all ranks hold identical weights and buffers;
* checkpoints and outputs are written by rank 0 only; ``resume`` reads the checkpoint on rank 0 and broadcasts it.
"""
from __future__ import annotations

import datetime
import os
from typing import Any, Optional

import torch
import torch.distributed as dist
from torch import nn

from ._logging import logger


def env_world_size() -> int:
    """WORLD_SIZE set by torchrun (1 outside it)."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


def env_rank() -> int:
    """RANK set by torchrun (0 outside it); usable before the process group exists."""
    return int(os.environ.get("RANK", "0") or 0)


def env_local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0") or 0)


def is_distributed() -> bool:
    """True inside an initialised process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    """Rank 0 (or no process group): the process that logs and writes outputs."""
    return (rank() if is_distributed() else env_rank()) == 0


def setup(device: torch.device, timeout_minutes: float = 30.0) -> torch.device:
    """Join the torchrun process group when WORLD_SIZE > 1 (idempotent) and return this process's device.

    Backend ``nccl`` on CUDA, ``gloo`` on CPU. On CUDA each process takes ``cuda:LOCAL_RANK``.
    """
    if env_world_size() <= 1 or not dist.is_available():
        return device
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", env_local_rank() % max(torch.cuda.device_count(), 1))
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, init_method="env://",
                                timeout=datetime.timedelta(minutes=timeout_minutes))
        logger.info("distributed: rank %d of %d (%s backend, master %s:%s), device %s", dist.get_rank(),
                    dist.get_world_size(), backend, os.environ.get("MASTER_ADDR"), os.environ.get("MASTER_PORT"),
                    device)
    return device


def destroy() -> None:
    """Leave the process group (no-op outside one)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def _reduce_device() -> torch.device:
    # nccl only reduces CUDA tensors; gloo reduces CPU tensors
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def all_reduce_mean(values: dict) -> dict:
    """The mean over ranks of a dict of floats (unchanged outside a process group)."""
    if not is_distributed():
        return dict(values)
    keys = list(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=_reduce_device())
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    t /= dist.get_world_size()
    return dict(zip(keys, t.cpu().tolist()))


def any_true(*flags: bool) -> tuple:
    """For each flag: whether it is true on any rank."""
    if not is_distributed():
        return tuple(bool(f) for f in flags)
    t = torch.tensor([1.0 if f else 0.0 for f in flags], device=_reduce_device())
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return tuple(bool(v > 0) for v in t.cpu().tolist())


@torch.no_grad()
def average_buffers(module: nn.Module) -> None:
    """Average floating-point buffers (BatchNorm running statistics) across ranks, so all ranks hold the same."""
    if not is_distributed():
        return
    world = dist.get_world_size()
    for buf in module.buffers():
        if buf.is_floating_point():
            dist.all_reduce(buf, op=dist.ReduceOp.SUM)
            buf /= world


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """``obj`` of rank ``src`` on every rank (pickled; CPU tensors only)."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


class LossModule(nn.Module):
    """Calls ``module.loss`` from ``forward`` so that DistributedDataParallel's gradient hooks fire."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, *args, **kwargs):
        return self.module.loss(*args, **kwargs)


def wrap(module: nn.Module, device: torch.device) -> nn.Module:
    """``DistributedDataParallel`` around a loss-computing wrapper of ``module`` (parameters shared with it).

    Construction broadcasts rank 0's parameters. Buffers are not broadcast on every step (training uses batch
    statistics); ``average_buffers`` syncs them once per epoch.
    """
    from torch.nn.parallel import DistributedDataParallel

    import inspect

    device_ids = [device.index] if device.type == "cuda" else None
    # torch >= 2.13 names it forward_sync_buffers (broadcast_buffers is deprecated there)
    no_sync = ("forward_sync_buffers" if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters
               else "broadcast_buffers")
    return DistributedDataParallel(LossModule(module), device_ids=device_ids, **{no_sync: False})


def shard_batch_size(batch_size: int, world: Optional[int] = None) -> int:
    """Cells per rank and step so that the global batch stays ``batch_size``."""
    world = world_size() if world is None else world
    return max(1, int(batch_size) // world)
