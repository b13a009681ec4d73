"""scGLUE's two-stage training (as ``scglue.models.fit_SCGLUE``) that a stopped run resumes, epoch by epoch.

scGLUE on its own schedule takes hours on a CPU for ten thousand cells (SNARE-seq: up to 166 epochs per stage at
about a minute each on 2 cores), longer than a machine may be held. :func:`fit_scglue_resumable` runs the same
steps as ``fit_SCGLUE`` (pretraining without the discriminator, balancing weights from the pretrained embedding,
fine-tuning with the seed plus one) in a kept directory:

* each stage saves its model when it ends (``pretrain/pretrain.dill``, ``fine-tune/fine-tune.dill``, as
  ``fit_SCGLUE`` does); a finished stage is loaded, not trained again;
* during a stage, :class:`_ResumePoint` writes ``resume.pt`` after every epoch: the network and optimiser states,
  the epoch, scGLUE's learning-rate schedulers, its early-stopping counter and best checkpoints, and the random
  states (torch and the data loaders'), so that a run started again goes on from the last finished epoch with
  the same schedule, the same early stopping and the same best-checkpoint restore at the end.

:func:`epochs_run` reads how many epochs a stage ran from its tensorboard log, :func:`train_seconds` how long it
trained, over every piece of a resumed run.
"""
from __future__ import annotations

import functools
import glob
import json
import os
import struct
import time
from pathlib import Path
from typing import Optional

import numpy as np

from .._logging import logger
from ..atomic import atomic_path, write_bytes

RESUME_FILE = "resume.pt"
SECONDS_FILE = "train_seconds.json"  # a finished stage's training time, summed over the pieces of a resumed run
STAGES = ("pretrain", "fine-tune")


def fit_scglue_resumable(data: dict, graph, *, skip_balance: bool, init_kws: dict, fit_kws: dict):
    """``scglue.models.fit_SCGLUE(data, graph, skip_balance=..., init_kws=..., fit_kws=...)`` in the kept
    directory ``fit_kws["directory"]``, resumed from what is saved there (see the module docstring)."""
    directory = fit_kws["directory"]
    pretrain = _stage(data, graph, "pretrain", {**init_kws, "shared_batches": False},
                      {**fit_kws, "align_burnin": np.inf, "safe_burnin": False}, directory)
    if not skip_balance:
        _balance(pretrain, data)
    return _stage(data, graph, "fine-tune", init_kws, fit_kws, directory, pretrained=pretrain)


def _stage(data: dict, graph, name: str, init_kws: dict, fit_kws: dict, directory: str, pretrained=None):
    import scglue

    stage_dir = os.path.join(directory, name)
    saved = os.path.join(stage_dir, f"{name}.dill")
    if os.path.exists(saved):
        logger.info("scglue: %s model found in %s (not trained again)", name, saved)
        return scglue.models.load_model(saved)
    model = scglue.models.SCGLUEModel(data, sorted(graph.nodes), **init_kws)
    if pretrained is not None:
        model.adopt_pretrained_model(pretrained)
    model.compile()
    if pretrained is not None:
        model.random_seed += 1  # as fit_SCGLUE: not the pretraining's data order
    trainer = model.trainer
    resume = _ResumePoint()
    trainer.fit = functools.partial(trainer.fit, plugins=[resume])  # SCGLUEModel.fit passes no plugins
    try:
        model.fit(data, graph, **{**fit_kws, "directory": stage_dir})
    finally:
        del trainer.fit  # the class's method again (the model is pickled below)
    write_bytes(os.path.join(stage_dir, SECONDS_FILE), json.dumps({"seconds": resume.seconds()}).encode())
    with atomic_path(saved) as tmp:
        model.save(tmp)
    if os.path.exists(os.path.join(stage_dir, RESUME_FILE)):
        os.remove(os.path.join(stage_dir, RESUME_FILE))
    return model


def _balance(pretrain, data: dict) -> None:
    """fit_SCGLUE's balancing weights: from the pretrained embedding, without batches."""
    from scglue import config as glue_config
    from scglue.data import estimate_balancing_weight

    key = f"X_{glue_config.TMP_PREFIX}"
    for name, adata in data.items():
        adata.obsm[key] = pretrain.encode_data(name, adata)
    estimate_balancing_weight(*data.values(), use_rep=key, use_batch=None, key_added="balancing_weight")
    for adata in data.values():
        adata.uns[glue_config.ANNDATA_KEY]["use_dsc_weight"] = "balancing_weight"
        del adata.obsm[key]


def _handlers(engine):
    """Every handler attached to an ignite engine, unwrapped from ignite's event-filter wrappers."""
    for entries in engine._event_handlers.values():
        for handler, _, _ in entries:
            yield getattr(handler, "__wrapped__", handler)


def _parts(train_engine) -> dict:
    """scGLUE's early stopping, its best-checkpoint keeper and its learning-rate schedulers, found among the
    engine's handlers (scGLUE's plugins attach them; their objects are not otherwise reachable)."""
    import ignite

    parts = {"early_stopping": None, "checkpoint": None, "schedulers": []}
    for h in _handlers(train_engine):
        if isinstance(h, ignite.handlers.EarlyStopping):
            parts["early_stopping"] = h
        elif isinstance(h, ignite.handlers.Checkpoint):
            parts["checkpoint"] = h
        else:
            for cell in getattr(h, "__closure__", None) or ():
                try:
                    owner = cell.cell_contents
                except ValueError:  # an empty cell
                    continue
                if hasattr(owner, "schedulers") and not parts["schedulers"]:
                    parts["schedulers"] = list(owner.schedulers)
    return parts


def _loaders(loader) -> list:
    return [dl for dl in getattr(loader, "data_loaders", []) if getattr(dl, "generator", None) is not None]


class _ResumePoint:
    """A scGLUE training plugin: after every epoch, everything needed to go on from there (``resume.pt``, written
    whole); when attached to a stage that has one, it restores it before the first epoch. It also keeps the
    stage's training seconds, summed over the pieces of a resumed run (:meth:`seconds`)."""

    def __init__(self) -> None:
        self.seconds_before = 0.0  # training time of the earlier pieces of this stage
        self.started: Optional[float] = None

    def seconds(self) -> float:
        return self.seconds_before + (0.0 if self.started is None else time.perf_counter() - self.started)

    def attach(self, net, trainer, train_engine, val_engine, train_loader, val_loader, directory) -> None:
        import torch
        from ignite.engine import Events

        path = Path(directory) / RESUME_FILE
        parts = _parts(train_engine)
        self.started = time.perf_counter()
        if path.exists():
            state = torch.load(path, weights_only=False)
            self._restore(state, net, trainer, train_engine, val_engine, parts, Path(directory))
            self.seconds_before = float(state.get("seconds", 0.0))  # absent in resume points of older versions
            rng = state["rng"]

            @train_engine.on(Events.STARTED)
            def _random_state(engine):  # after Trainer.fit's torch.manual_seed
                torch.set_rng_state(rng["torch"])
                for dl, s in zip(_loaders(train_loader) + _loaders(val_loader), rng["loaders"]):
                    dl.generator.set_state(s)

        @train_engine.on(Events.EPOCH_COMPLETED)
        def _save(engine):
            state = self._state(net, trainer, engine, val_engine, parts, Path(directory), train_loader, val_loader)
            state["seconds"] = self.seconds()
            with atomic_path(path) as tmp:
                torch.save(state, tmp)

    @staticmethod
    def _state(net, trainer, engine, val_engine, parts, directory: Path, train_loader, val_loader) -> dict:
        import torch

        ck = parts["checkpoint"]
        saved = ck.state_dict() if ck is not None else None
        files = {}
        for _, name in _kept_checkpoints(saved):
            files[name] = (directory / name).read_bytes() if (directory / name).exists() else None
        return {
            "epoch": engine.state.epoch, "iteration": engine.state.iteration,
            "epoch_length": engine.state.epoch_length, "max_epochs": engine.state.max_epochs,
            "n_lrs": getattr(engine.state, "n_lrs", 0),
            "val": None if val_engine is None else {"iteration": val_engine.state.iteration,
                                                    "epoch_length": val_engine.state.epoch_length,
                                                    "max_epochs": val_engine.state.max_epochs},
            "net": net.state_dict(), "trainer": trainer.state_dict(),
            "early_stopping": parts["early_stopping"].state_dict() if parts["early_stopping"] else None,
            "checkpoint": saved, "checkpoint_files": files,
            "schedulers": [s.state_dict() for s in parts["schedulers"]],
            "rng": {"torch": torch.get_rng_state(),
                    "loaders": [dl.generator.get_state() for dl in _loaders(train_loader) + _loaders(val_loader)]},
        }

    @staticmethod
    def _restore(state: dict, net, trainer, train_engine, val_engine, parts, directory: Path) -> None:
        net.load_state_dict(state["net"])
        trainer.load_state_dict(dict(state["trainer"]))  # scglue's load_state_dict pops from its argument
        if parts["early_stopping"] is not None and state["early_stopping"] is not None:
            parts["early_stopping"].load_state_dict(state["early_stopping"])
        if parts["checkpoint"] is not None and state["checkpoint"] is not None:
            for name, blob in state["checkpoint_files"].items():  # scGLUE's early stopping cleared them
                if blob is not None:
                    (directory / name).write_bytes(blob)
            parts["checkpoint"].load_state_dict(_without_missing(state["checkpoint"], directory))
        for scheduler, s in zip(parts["schedulers"], state["schedulers"]):
            scheduler.load_state_dict(s)
        train_engine.load_state_dict({k: state[k] for k in ("iteration", "epoch_length", "max_epochs")})
        train_engine.state.n_lrs = state["n_lrs"]
        if val_engine is not None and state["val"] is not None:
            val_engine.load_state_dict(state["val"])
        logger.info("scglue: resuming %s after epoch %d (of at most %d)", directory.name, state["epoch"],
                    state["max_epochs"])


def _kept_checkpoints(saved: Optional[dict]) -> list:
    """The (score, file name) pairs an ignite ``Checkpoint`` state keeps: under ``"_saved"`` (ignite 0.4.x and
    0.5.x) or ``"saved"`` (older ignite)."""
    saved = saved or {}
    return list(saved.get("_saved", saved.get("saved", [])))


def _without_missing(saved: dict, directory: Path) -> dict:
    """A ``Checkpoint`` state without the entries whose files are gone, so that ignite does not fail removing them.

    Resume points written before biclum read the files under ignite 0.5's ``"_saved"`` key hold no files, and
    scGLUE's early stopping deletes the directory's checkpoints when a stage starts: such a run goes on, and
    restores at its end the best checkpoint written after the resume. Logged."""
    key = "_saved" if "_saved" in saved else "saved"
    kept = [(score, name) for score, name in _kept_checkpoints(saved) if (directory / name).exists()]
    dropped = len(_kept_checkpoints(saved)) - len(kept)
    if dropped:
        logger.warning("scglue: %d of the best checkpoints listed in %s are gone (a resume point of an earlier "
                       "version); the stage's best-checkpoint restore will choose among those written from now on",
                       dropped, RESUME_FILE)
    return {**saved, key: kept}


def epochs_run(stage_dir: str) -> Optional[int]:
    """Epochs one scglue stage ran: the last epoch its tensorboard log records (scglue writes the training losses
    there once per epoch, step = epoch). None when the log is missing or unreadable."""
    try:
        from tensorboardX.proto.event_pb2 import Event
    except ImportError:
        return None
    last = None
    for path in glob.glob(os.path.join(stage_dir, "tensorboard", "events.out.tfevents.*")):
        with open(path, "rb") as fh:
            while True:
                head = fh.read(12)  # TFRecord: uint64 length, uint32 crc of the length, data, uint32 crc
                if len(head) < 12:
                    break
                body = fh.read(struct.unpack("<Q", head[:8])[0])
                fh.read(4)
                event = Event.FromString(body)
                if any(v.tag.startswith("train/") for v in event.summary.value):
                    last = max(last or 0, int(event.step))
    return last


def train_seconds(stage_dir: str) -> Optional[float]:
    """Seconds one finished scglue stage trained, summed over every piece of a resumed run (None when the stage
    is not finished or was trained by an earlier version, which did not keep it)."""
    try:
        with open(os.path.join(stage_dir, SECONDS_FILE)) as fh:
            return float(json.load(fh)["seconds"])
    except (OSError, ValueError, KeyError):
        return None
