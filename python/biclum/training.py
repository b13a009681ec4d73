"""The training loop: mini-batch sampling, early stopping, checkpoints, a non-finite guard and clean interruption.

The loop (``Trainer._fit``) runs epochs of steps and calls small parts: after each epoch every :class:`Callback`
(``on_epoch_end(trainer, record) -> stop?``: :class:`EarlyStopping`, :class:`ProgressReport`, the caller's, e.g.
:class:`PairRefresh`, then :class:`Checkpointing`); in each step :class:`NonFiniteStop` before the backward pass
and :class:`InterruptStop` (Ctrl-C) after it. The loop's MNN partners (``Trainer.partners``) start as the
prepared ones; :class:`TrainingData` itself is never modified.

Cost per epoch is linear in cells: each step encodes a fixed number of cells and computes the feature
embeddings (whose input size does not depend on the number of cells) exactly once.
"""
from __future__ import annotations

import copy
import json
import math
import os
import signal
import threading
import time
import warnings
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np
import scipy.sparse as sp
import torch

from . import distributed
from ._logging import logger
from ._threads import thread_limit, training_threads
from .atomic import in_memory, write_bytes
from .config import TrainConfig
from .errors import BiclumInputError, BiclumWarning
from .module import MODALITIES, BiCLUMModule
from .pairs import sample_partners
from .validation import cap_to_data

CHECKPOINT_FILE = "checkpoint.pt"
TERMS = ("total", "recon_rna", "recon_other", "cell", "feature")


@dataclass(frozen=True)
class TrainingData:
    """Everything the loop reads, built once by the setup stage (:func:`biclum.setup.prepare`); never modified."""

    pcs: dict                 # modality -> float32 array (cells x n_pcs)
    targets: dict             # modality -> CSR float32 (cells x features)
    sketches: dict            # modality -> float32 array (features x sketch_dim)
    partners: dict            # modality -> CSR adjacency to the other modality's cells (MNN)
    feature_pairs: tuple      # (rna feature indices, other feature indices)
    target_scaling: Optional[dict] = None  # modality -> (mean, std, max_value): targets standardised per feature
    batch_partners: Optional[dict] = None  # modality -> CSR cells x cells of cross-batch MNN pairs, or None
    target_batches: Optional[dict] = None  # modality -> (batch codes, batches x features means) or None: scaled
                                           # targets centred on their batch's means instead of the overall mean
    known_pairs: Optional[tuple] = None  # (rna rows, other rows) of the known pairs (paired=), or None

    def has_batches(self) -> bool:
        return any(v is not None for v in (self.batch_partners or {}).values())


@dataclass
class TrainState:
    epoch: int = 0
    history: list = field(default_factory=list)
    best_loss: float = math.inf
    best_epoch: int = -1
    bad_epochs: int = 0
    status: str = "not started"


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise BiclumInputError(f"device={device!r} but torch sees no CUDA GPU; use device='cpu' or 'auto'.")
    return torch.device(device)


class _InterruptFlag:
    """SIGINT sets a flag so the loop can finish its current step and return a usable model.

    On leaving, the previous handler is restored exactly: the Python-level one and, where libc's ``sigaction`` is
    reachable, the process-level (C) one. A host that embeds Python (R through reticulate) installs its own C
    handler, which ``signal.signal`` alone would leave replaced by Python's, so the host would no longer see Ctrl-C.
    """

    def __init__(self):
        self.raised = False
        self._previous = None
        self._c_action = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._c_action = _c_sigint_action()
            self._previous = signal.getsignal(signal.SIGINT)
            signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.raised:  # second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.raised = True
        logger.warning("interrupt received: finishing the current step (press Ctrl-C again to abort at once)")

    def __exit__(self, *exc):
        if self._previous is not None:  # None: the handler was not set from Python (an embedding host's)
            signal.signal(signal.SIGINT, self._previous)
        if self._c_action is not None:
            libc, action = self._c_action
            libc.sigaction(signal.SIGINT, action, None)
        return False


def _c_sigint_action():
    """``(libc, the process's current SIGINT action)``, the action kept as the raw bytes of a C ``struct
    sigaction`` (only read and written back, so its layout does not matter); None where unavailable."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        action = ctypes.create_string_buffer(1024)  # larger than struct sigaction on any platform
        return (libc, action) if libc.sigaction(signal.SIGINT, None, action) == 0 else None
    except (OSError, AttributeError, TypeError):  # no libc sigaction (Windows)
        return None


class Callback:
    """A part of the loop. ``on_epoch_end`` runs after every completed epoch (all callbacks, in order) and returns
    True to stop training; ``on_interrupt`` when Ctrl-C stopped an epoch; ``on_train_end`` after the best weights
    are restored."""

    def on_train_begin(self, trainer: "Trainer", max_epochs: int) -> None:
        pass

    def on_epoch_end(self, trainer: "Trainer", record: dict) -> bool:
        return False

    def on_interrupt(self, trainer: "Trainer") -> None:
        pass

    def on_train_end(self, trainer: "Trainer") -> None:
        pass


class EarlyStopping(Callback):
    """Tracks the best epoch (its weights become ``trainer.best_state``); stops after ``patience`` epochs without
    a relative improvement of ``min_delta``."""

    def __init__(self, patience: int, min_delta: float):
        self.patience, self.min_delta = patience, min_delta

    def on_epoch_end(self, trainer, record) -> bool:
        st = trainer.state
        if record["total"] < st.best_loss - self.min_delta * abs(st.best_loss) or trainer.best_state is None:
            st.best_loss, st.best_epoch, st.bad_epochs = record["total"], record["epoch"], 0
            trainer.best_state = trainer.last_good
        else:
            st.bad_epochs += 1
        if st.bad_epochs < self.patience:
            return False
        st.status = f"early stopped after epoch {record['epoch']} (best epoch {st.best_epoch})"
        return True


class ProgressReport(Callback):
    """The tqdm bar, the debug log line and the user's ``progress_callback(stage, step, total, message)``."""

    def __init__(self, show: bool, callback: Optional[Callable]):
        self.show, self.callback, self.bar = show, callback, None

    def on_train_begin(self, trainer, max_epochs) -> None:
        from tqdm.auto import tqdm

        self.max_epochs = max_epochs
        self.bar = tqdm(total=max_epochs, initial=trainer.state.epoch, disable=not (self.show and trainer.main),
                        desc="biclum", unit="epoch", dynamic_ncols=True)

    def on_epoch_end(self, trainer, r) -> bool:
        epoch, n = r["epoch"] + 1, self.max_epochs
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{r['total']:.4g}", cell=f"{r['cell']:.3f}", feat=f"{r['feature']:.3f}")
        logger.debug("epoch %d: %s", r["epoch"], {k: round(v, 5) for k, v in r.items()})
        if self.callback is not None and trainer.main:
            self.callback("train", epoch, n, f"epoch {epoch}/{n}: loss {r['total']:.4g} (recon "
                          f"{r['recon_rna']:.3g}/{r['recon_other']:.3g}, cell {r['cell']:.3g}, feature "
                          f"{r['feature']:.3g})")
        return False

    def on_train_end(self, trainer) -> None:
        self.bar.close()


class PairRefresh(Callback):
    """MNN pairs re-found every ``every`` epochs (``refresh_pairs_every``) by ``find_pairs(module)`` (a
    :class:`biclum.pairs.CellPairs`), which the caller builds from the prepared arrays; ``last`` keeps the latest."""

    def __init__(self, every: int, find_pairs: Callable):
        self.every, self.find_pairs, self.last = every, find_pairs, None

    def on_train_begin(self, trainer, max_epochs) -> None:
        self.max_epochs = max_epochs

    def on_epoch_end(self, trainer, record) -> bool:
        epoch = trainer.state.epoch
        if self.every and epoch % self.every == 0 and epoch < self.max_epochs:
            self.last = self.find_pairs(trainer.module)
            trainer.partners = {"rna": self.last.rna_partners, "other": self.last.other_partners}
            trainer.module.train()
        return False


class Checkpointing(Callback):
    """Weights, optimiser, RNG and loop state every ``every`` epochs, at an interruption and at the end."""

    def __init__(self, directory: str, every: int):
        self.directory, self.every = directory, every

    def on_epoch_end(self, trainer, record) -> bool:
        if self.every and trainer.state.epoch % self.every == 0:
            trainer.save_checkpoint(self.directory)
        return False

    def on_interrupt(self, trainer) -> None:
        trainer.save_checkpoint(self.directory)

    def on_train_end(self, trainer) -> None:
        if trainer.state.status.startswith(("early", "reached")):
            trainer.save_checkpoint(self.directory)


class NonFiniteStop:
    """Checked before each backward pass: a non-finite loss term stops training with the last good weights. Under
    torchrun all ranks stop together (one collective also shares the interrupt flag, see :class:`InterruptStop`)."""

    def bad_terms(self, trainer, terms: dict, interrupt: "InterruptStop") -> list:
        bad = [k for k in trainer.terms if not torch.isfinite(terms[k]).all()]
        if trainer.dist:  # else the other ranks would wait forever in backward
            any_bad, interrupt.synced = distributed.any_true(bool(bad), interrupt.flag.raised)
            bad = bad or (["another rank"] if any_bad else [])
        return bad

    def stop(self, trainer, epoch: int, step: int, bad: list, terms: dict) -> str:
        values = {k: float(terms[k].detach()) for k in trainer.terms}
        if not all(torch.isfinite(p).all() for p in trainer.module.parameters()):
            trainer.module.load_state_dict(trainer.last_good)
        term = next((k for k in bad if k != "total"), "total")
        where = (f"term {term!r} = {values[term]} (all terms: {values})" if term in values
                 else f"on another rank (this is rank {trainer.rank} of {trainer.world})")
        msg = (f"non-finite loss at epoch {epoch}, step {step}: {where}; training stopped and the model keeps its "
               f"last good weights. Lower lr, check the inputs for extreme values, or lower alpha/beta.")
        trainer.state.status = f"stopped: {msg}"
        logger.error(msg)
        warnings.warn(msg, BiclumWarning)
        return "nonfinite"


class InterruptStop:
    """Ctrl-C (SIGINT, :class:`_InterruptFlag`) ends the epoch after the current step; the model keeps its best
    weights so far and the checkpoint is written."""

    def __init__(self):
        self.flag, self.synced = _InterruptFlag(), False

    def requested(self, trainer) -> bool:
        return self.synced if trainer.dist else self.flag.raised

    def stop(self, trainer, callbacks: list) -> None:
        epoch = trainer.state.history[-1]["epoch"]
        trainer.state.status = f"interrupted during epoch {epoch}"
        warnings.warn(f"training interrupted during epoch {epoch}; the model keeps its best weights so far and can "
                      f"be used or resumed from a checkpoint.", BiclumWarning)
        for cb in callbacks:
            cb.on_interrupt(trainer)


class Trainer:
    def __init__(self, module: BiCLUMModule, data: TrainingData, config: TrainConfig, device: torch.device,
                 progress: bool = True, progress_callback: Optional[Callable] = None,
                 callbacks: Sequence[Callback] = ()):
        self.module = module.to(device)
        self.data = data
        self.partners = dict(data.partners)  # the loop's MNN partners (pair refresh and resume replace them)
        self.cfg = config
        self.device = device
        self.progress = progress
        self.callback = progress_callback
        self.extra_callbacks = list(callbacks)
        self.n = {m: data.pcs[m].shape[0] for m in MODALITIES}
        self.pcs = {m: torch.as_tensor(data.pcs[m], device=device) for m in MODALITIES}
        self.sketches = {m: torch.as_tensor(data.sketches[m], device=device) for m in MODALITIES}
        self.batch_size = {m: cap_to_data(config.batch_size, self.n[m], f"batch_size ({m})") for m in MODALITIES}
        self.optimizer = torch.optim.Adam(module.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        self.rng = np.random.default_rng(config.seed)
        self.state = TrainState()
        self.best_state: Optional[dict] = None
        self.weights = dict(alpha=config.alpha, beta=config.beta, gamma_rna=config.gamma_rna,
                            gamma_other=config.gamma_other)
        self.terms = TERMS
        if data.has_batches():  # a second cell-level term on cross-batch pairs within each modality
            self.weights["alpha_batch"] = config.alpha if config.alpha_batch is None else config.alpha_batch
            self.terms = TERMS + ("batch",)
        if config.adversarial > 0 and module.discriminator is not None:
            self.weights["adversarial"] = config.adversarial
            self.terms = self.terms + ("adversarial",)
        self.loss_fn = module.loss  # tests may wrap this to inject faults
        self._setup_distributed(config, device)
        known_weight = config.alpha if config.alpha_known is None else config.alpha_known
        if data.known_pairs is not None and known_weight > 0:  # a cell-level term on the known pairs only
            self.weights["alpha_known"] = known_weight
            self.terms = self.terms + ("known",)
            logger.info("known pairs: a cell-level NT-Xent on the %d known pairs alone (up to %d a step), weight "
                        "%g%s", len(data.known_pairs[0]), self.pair_cap, known_weight,
                        " (alpha_known=None: alpha)" if config.alpha_known is None else "")

    def _setup_distributed(self, config: TrainConfig, device: torch.device) -> None:
        """torchrun (biclum.distributed): DDP around the loss, each rank a disjoint shard of every step. One process:
        the attributes below leave the loop exactly as it was (one RNG stream, whole batches)."""
        self.dist = distributed.is_distributed()
        self.rank, self.world = distributed.rank(), distributed.world_size()
        self.main = self.rank == 0
        self.step_rng = self.rng  # pair/feature sampling; per rank (reseeded each epoch) when distributed
        self.pair_cap = config.batch_size  # most MNN pairs in one step's cell-level loss (per rank)
        self.ddp = None
        if self.dist:
            self.batch_size = {m: distributed.shard_batch_size(b, self.world) for m, b in self.batch_size.items()}
            self.pair_cap = distributed.shard_batch_size(config.batch_size, self.world)
            self.ddp = distributed.wrap(self.module, device)
            self.loss_fn = self.ddp

    # ---------------------------------------------------------------- one step
    def _batch(self, idx: dict) -> dict:
        pos_r, part_o = sample_partners(self.partners["rna"], idx["rna"], self.step_rng)
        pos_o, part_r = sample_partners(self.partners["other"], idx["other"], self.step_rng)
        cells = {"rna": np.concatenate([idx["rna"], part_r]), "other": np.concatenate([idx["other"], part_o])}
        nb = {m: len(idx[m]) for m in MODALITIES}
        ia = np.concatenate([pos_r, nb["rna"] + np.arange(len(part_r))])
        ib = np.concatenate([nb["other"] + np.arange(len(part_o)), pos_o])
        if len(ia) > self.pair_cap:  # the cell-level loss is O(pairs^2): keep batch_size pairs per step
            sel = np.sort(self.step_rng.choice(len(ia), size=self.pair_cap, replace=False))
            ia, ib = ia[sel], ib[sel]
        batch = {"pairs": (torch.as_tensor(ia, device=self.device), torch.as_tensor(ib, device=self.device))}
        if self.data.has_batches():
            cells, batch["batch_pairs"] = self._batch_pairs(idx, cells)
        if "known" in self.terms:
            cells, batch["known_pairs"] = self._known_pairs(cells)
        for m in MODALITIES:
            target = self._target(m, idx[m])
            batch[m] = {"pcs": self.pcs[m][torch.as_tensor(cells[m], device=self.device)],
                        "target": torch.as_tensor(target, device=self.device), "n_recon": nb[m]}
        return batch

    def _batch_pairs(self, idx: dict, cells: dict) -> tuple[dict, dict]:
        """Cross-batch partners of the step's cells, appended to ``cells``; per modality (rows, partner rows) into
        the encoded cells, at most ``pair_cap`` pairs (None for a modality without batches)."""
        pairs = {}
        for m in MODALITIES:
            part = self.data.batch_partners.get(m)
            if part is None:
                pairs[m] = None
                continue
            pos, mates = sample_partners(part, idx[m], self.step_rng)
            if len(pos) > self.pair_cap:
                sel = np.sort(self.step_rng.choice(len(pos), size=self.pair_cap, replace=False))
                pos, mates = pos[sel], mates[sel]
            start = len(cells[m])
            cells = {**cells, m: np.concatenate([cells[m], mates])}
            pairs[m] = (torch.as_tensor(pos, device=self.device),
                        torch.as_tensor(start + np.arange(len(mates)), device=self.device))
        return cells, pairs

    def _known_pairs(self, cells: dict) -> tuple[dict, tuple]:
        """The known pairs (all, or ``pair_cap`` of them drawn at random), their cells appended to ``cells``; (rows
        into the encoded rna cells, rows into the encoded other cells)."""
        kr, ko = self.data.known_pairs
        if len(kr) > self.pair_cap:
            sel = np.sort(self.step_rng.choice(len(kr), size=self.pair_cap, replace=False))
            kr, ko = kr[sel], ko[sel]
        rows = tuple(torch.as_tensor(len(cells[m]) + np.arange(len(kr)), device=self.device) for m in MODALITIES)
        return {"rna": np.concatenate([cells["rna"], kr]), "other": np.concatenate([cells["other"], ko])}, rows

    def _target(self, modality: str, cells: np.ndarray) -> np.ndarray:
        """Dense reconstruction targets of ``cells``; standardised per feature (and clipped) when the data say so,
        centred on each cell's batch means when the modality has batches."""
        target = self.data.targets[modality][cells].toarray()
        if self.data.target_scaling is not None:
            mean, std, max_value = self.data.target_scaling[modality]
            by_batch = (self.data.target_batches or {}).get(modality)
            if by_batch is not None:
                mean = by_batch[1][by_batch[0][cells]]
            target -= mean
            target /= std
            if max_value is not None:
                np.minimum(target, max_value, out=target)
        return target

    def _feature_pairs(self):
        fa, fb = self.data.feature_pairs
        k = self.cfg.feature_batch_size
        if len(fa) > k:
            sel = np.sort(self.step_rng.choice(len(fa), size=k, replace=False))
            fa, fb = fa[sel], fb[sel]
        return torch.as_tensor(fa, device=self.device), torch.as_tensor(fb, device=self.device)

    def _epoch_order(self, n_steps: int) -> dict:
        """The epoch's cells per modality; the same on every rank (``self.rng`` draws nothing else there)."""
        order = {}
        for m in MODALITIES:
            need = n_steps * self.world * self.batch_size[m]
            reps = [self.rng.permutation(self.n[m]) for _ in range(math.ceil(need / self.n[m]))]
            order[m] = np.concatenate(reps)[:need]
        return order

    # ---------------------------------------------------------------- checkpoints
    def save_checkpoint(self, directory: str) -> str:
        path = os.path.join(directory, CHECKPOINT_FILE)
        if not self.main:  # all ranks hold the same state: rank 0 writes it
            return path
        payload = {
            "module": self.module.state_dict(), "optimizer": self.optimizer.state_dict(),
            "torch_rng": torch.get_rng_state(), "numpy_rng": json.dumps(self.rng.bit_generator.state),
            "state": json.dumps(self.state.__dict__), "best_state": self.best_state,
            "partners": {m: {"indptr": torch.as_tensor(self.partners[m].indptr.astype(np.int64)),
                             "indices": torch.as_tensor(self.partners[m].indices.astype(np.int64)),
                             "shape": list(self.partners[m].shape)} for m in MODALITIES},
        }
        write_bytes(path, in_memory(lambda fh: torch.save(payload, fh)),
                    hint=f"the previous checkpoint in {directory!r} (if any) is intact: resume from it (resume= / "
                         f"--resume) once there is room")
        return path

    def load_checkpoint(self, path: str) -> None:
        if os.path.isdir(path):
            path = os.path.join(path, CHECKPOINT_FILE)
        missing = f"resume={path!r}: no checkpoint there; give the checkpoint_dir of the interrupted run (it " \
                  f"holds {CHECKPOINT_FILE})."
        if self.dist:  # rank 0 reads the file (only it needs it) and sends it to the others
            payload = None
            if self.main and os.path.exists(path):
                payload = torch.load(path, map_location="cpu", weights_only=True)
            payload = distributed.broadcast_object(payload)
            if payload is None:
                raise BiclumInputError(missing + " (read by rank 0)")
        else:
            if not os.path.exists(path):
                raise BiclumInputError(missing)
            payload = torch.load(path, map_location=self.device, weights_only=True)
        self.module.load_state_dict(payload["module"])
        self.optimizer.load_state_dict(payload["optimizer"])
        torch.set_rng_state(payload["torch_rng"])
        self.rng.bit_generator.state = json.loads(payload["numpy_rng"])
        self.state = TrainState(**json.loads(payload["state"]))
        self.best_state = payload["best_state"]
        for m in MODALITIES:
            part = payload["partners"][m]
            indices = part["indices"].numpy()
            self.partners[m] = sp.csr_matrix((np.ones(len(indices), np.float32), indices,
                                                   part["indptr"].numpy()), shape=tuple(part["shape"]))
        logger.info("resumed from %s after epoch %d", path, self.state.epoch)

    # ---------------------------------------------------------------- loop
    def fit(self, max_epochs: int, checkpoint_dir: Optional[str] = None, resume: Optional[str] = None) -> TrainState:
        cfg = self.cfg
        n_params = sum(p.numel() for p in self.module.parameters())
        threads = training_threads(cfg.num_threads, n_params, cfg.batch_size)
        logger.info("training on %d CPU thread%s (num_threads=%s)", threads, "s" * (threads > 1), cfg.num_threads)
        with thread_limit(threads):
            return self._fit(max_epochs, checkpoint_dir, resume)

    def _fit(self, max_epochs: int, checkpoint_dir: Optional[str], resume: Optional[str]) -> TrainState:
        torch.manual_seed(self.cfg.seed)
        if resume is not None:
            self.load_checkpoint(resume)
        n_steps = self._n_steps(max_epochs)
        callbacks = self._callbacks(checkpoint_dir)
        for cb in callbacks:
            cb.on_train_begin(self, max_epochs)
        self.state.status = "running"
        self.last_good = copy.deepcopy(self.module.state_dict())
        guard, interrupt = NonFiniteStop(), InterruptStop()
        with interrupt.flag:
            while self.state.epoch < max_epochs:
                stopped = self._epoch(n_steps, guard, interrupt)
                if stopped == "interrupted":
                    interrupt.stop(self, callbacks)
                if stopped or self._end_epoch(callbacks):
                    break
            else:
                self.state.status = f"reached max_epochs={max_epochs}"
        if self.state.status == "running":  # a caller's callback stopped the loop
            self.state.status = f"ended by a callback after epoch {self.state.epoch - 1}"
        if self.best_state is not None and not self.state.status.startswith("stopped"):
            self.module.load_state_dict(self.best_state)
        for cb in callbacks:
            cb.on_train_end(self)
        logger.info("training %s; best epoch %d, loss %.5g", self.state.status, self.state.best_epoch,
                    self.state.best_loss)
        return self.state

    def _callbacks(self, checkpoint_dir: Optional[str]) -> list:
        """Early stopping, progress, the caller's callbacks (pair refresh), then checkpoints: that order."""
        cbs = [EarlyStopping(self.cfg.patience, self.cfg.min_delta), ProgressReport(self.progress, self.callback)]
        cbs += self.extra_callbacks
        return cbs + ([Checkpointing(checkpoint_dir, self.cfg.checkpoint_every)] if checkpoint_dir else [])

    def _n_steps(self, max_epochs: int) -> int:
        cfg = self.cfg
        n_steps = max(math.ceil(self.n[m] / (self.batch_size[m] * self.world)) for m in MODALITIES)
        if self.dist:
            logger.info("distributed training on %d processes: %d cells per modality per rank and step "
                        "(global batch %d)", self.world, self.batch_size["rna"], self.batch_size["rna"] * self.world)
        logger.info("training: up to %d epochs of %d steps (batch %d, lr %g, patience %d) on %s",
                    max_epochs, n_steps, cfg.batch_size, cfg.lr, cfg.patience, self.device)
        return n_steps

    def _epoch(self, n_steps: int, guard: NonFiniteStop, interrupt: InterruptStop) -> Optional[str]:
        """One epoch; its record goes to the history unless a non-finite loss stopped it. Returns why it stopped
        early ("nonfinite", "interrupted") or None."""
        epoch = self.state.epoch
        (self.ddp or self.module).train()
        sums, t0 = dict.fromkeys(self.terms, 0.0), time.perf_counter()
        order = self._epoch_order(n_steps)
        if self.dist:
            self._seed_rank_epoch(epoch)
        stopped = None
        for s in range(n_steps):
            c = s * self.world + self.rank  # this rank's chunk of the epoch's order (c = s in one process)
            idx = {m: order[m][c * self.batch_size[m]:(c + 1) * self.batch_size[m]] for m in MODALITIES}
            terms = self.loss_fn(self._batch(idx), self.sketches, self._feature_pairs(), self.weights,
                                 self.cfg.tau_cell, self.cfg.tau_feature, self.cfg.similarity)
            bad = guard.bad_terms(self, terms, interrupt)
            if bad:
                return guard.stop(self, epoch, s, bad, terms)
            self._optimise(terms, sums, first=epoch == 0 and s == 0)
            if interrupt.requested(self):
                stopped = "interrupted"
                break
        record = {k: sums[k] / (s + 1) for k in self.terms}
        if self.dist:  # the same epoch loss (so the same early stopping) and BatchNorm statistics everywhere
            record = distributed.all_reduce_mean(record)
            distributed.average_buffers(self.module)
        record.update(epoch=epoch, seconds=time.perf_counter() - t0, steps=s + 1)
        self.state.history.append(record)
        return stopped

    def _optimise(self, terms: dict, sums: dict, first: bool) -> None:
        if first and self.main:
            self.gradient_norms = self._gradient_norms(terms)
        self.optimizer.zero_grad(set_to_none=True)
        objective = terms["total"]
        if "adversarial" in terms:  # the discriminator's game, outside the monitored total (module.loss)
            objective = objective + self.weights["adversarial"] * terms["adversarial"]
        objective.backward()
        self.optimizer.step()
        for k in self.terms:
            sums[k] += float(terms[k].detach())

    def _end_epoch(self, callbacks: list) -> bool:
        """A completed epoch: its weights become the last good ones, then every callback runs; True stops."""
        self.state.epoch += 1
        self.last_good = copy.deepcopy(self.module.state_dict())
        return any([cb.on_epoch_end(self, self.state.history[-1]) for cb in callbacks])

    def _gradient_norms(self, terms: dict) -> dict:
        """Norm of each weighted loss term's gradient on the cell encoders at the first step (logged): how much
        each term steers the cell embeddings."""
        params = [p for p in self.module.cell_encoders.parameters() if p.requires_grad]
        weight = {"cell": self.weights["alpha"], "feature": self.weights["beta"],
                  "recon_rna": self.weights["gamma_rna"], "recon_other": self.weights["gamma_other"]}
        for term, key in (("batch", "alpha_batch"), ("adversarial", "adversarial"), ("known", "alpha_known")):
            if term in terms:
                weight[term] = self.weights[key]
        norms = {}
        for term, w in weight.items():
            grads = torch.autograd.grad(w * terms[term], params, retain_graph=True, allow_unused=True)
            norms[term] = float(sum(float((g * g).sum()) for g in grads if g is not None) ** 0.5)
        logger.info("gradient norms on the cell encoders at the first step (weighted): %s",
                    ", ".join(f"{k} {v:.3g}" for k, v in norms.items()))
        return norms

    def _seed_rank_epoch(self, epoch: int) -> None:
        """Distributed: pair/feature sampling and dropout drawn per rank and epoch (so a resumed run draws the same)."""
        seq = np.random.SeedSequence([int(self.cfg.seed), self.rank, epoch])
        self.step_rng = np.random.default_rng(seq)
        torch.manual_seed(int(seq.generate_state(1, np.uint64)[0] >> np.uint64(1)))
