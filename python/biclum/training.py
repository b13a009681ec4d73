"""The training loop: mini-batch sampling, early stopping, checkpoints, a non-finite guard and clean interruption.

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
from typing import Callable, Optional

import numpy as np
import scipy.sparse as sp
import torch

from . import distributed
from ._logging import logger
from ._threads import thread_limit, training_threads
from .config import TrainConfig
from .errors import BiclumInputError, BiclumWarning
from .module import MODALITIES, BiCLUMModule
from .validation import cap_to_data

CHECKPOINT_FILE = "checkpoint.pt"
TERMS = ("total", "recon_rna", "recon_other", "cell", "feature")


@dataclass
class TrainingData:
    """Everything the loop reads, built once by the model's setup step."""

    pcs: dict                 # modality -> float32 array (cells x n_pcs)
    targets: dict             # modality -> CSR float32 (cells x features)
    sketches: dict            # modality -> float32 array (features x sketch_dim)
    partners: dict            # modality -> CSR adjacency to the other modality's cells (MNN)
    feature_pairs: tuple      # (rna feature indices, other feature indices)
    target_scaling: Optional[dict] = None  # modality -> (mean, std, max_value): targets standardised per feature
    batch_partners: Optional[dict] = None  # modality -> CSR cells x cells of cross-batch MNN pairs, or None
    target_batches: Optional[dict] = None  # modality -> (batch codes, batches x features means) or None: scaled
                                           # targets centred on their batch's means instead of the overall mean

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


def _sample_pairs(partners: sp.csr_matrix, cells: np.ndarray, rng: np.random.Generator):
    deg = np.diff(partners.indptr)[cells]
    positions = np.flatnonzero(deg > 0)
    offsets = (rng.random(len(positions)) * deg[positions]).astype(np.int64)
    return positions, partners.indices[partners.indptr[cells[positions]] + offsets]


class Trainer:
    def __init__(self, module: BiCLUMModule, data: TrainingData, config: TrainConfig, device: torch.device,
                 progress: bool = True, progress_callback: Optional[Callable] = None,
                 refresh_pairs: Optional[Callable] = None):
        self.module = module.to(device)
        self.data = data
        self.cfg = config
        self.device = device
        self.progress = progress
        self.callback = progress_callback
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
        self.loss_fn = module.loss  # tests may wrap this to inject faults
        self.refresh_pairs = refresh_pairs  # callable(module) -> {"rna": csr, "other": csr} of new MNN partners
        # torchrun (biclum.distributed): DDP around the loss, each rank a disjoint shard of every step. One process:
        # the attributes below leave the loop exactly as it was (one RNG stream, whole batches).
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
        pos_r, part_o = _sample_pairs(self.data.partners["rna"], idx["rna"], self.step_rng)
        pos_o, part_r = _sample_pairs(self.data.partners["other"], idx["other"], self.step_rng)
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
            pos, mates = _sample_pairs(part, idx[m], self.step_rng)
            if len(pos) > self.pair_cap:
                sel = np.sort(self.step_rng.choice(len(pos), size=self.pair_cap, replace=False))
                pos, mates = pos[sel], mates[sel]
            start = len(cells[m])
            cells = {**cells, m: np.concatenate([cells[m], mates])}
            pairs[m] = (torch.as_tensor(pos, device=self.device),
                        torch.as_tensor(start + np.arange(len(mates)), device=self.device))
        return cells, pairs

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
        os.makedirs(directory, exist_ok=True)
        payload = {
            "module": self.module.state_dict(), "optimizer": self.optimizer.state_dict(),
            "torch_rng": torch.get_rng_state(), "numpy_rng": json.dumps(self.rng.bit_generator.state),
            "state": json.dumps(self.state.__dict__), "best_state": self.best_state,
            "partners": {m: {"indptr": torch.as_tensor(self.data.partners[m].indptr.astype(np.int64)),
                             "indices": torch.as_tensor(self.data.partners[m].indices.astype(np.int64)),
                             "shape": list(self.data.partners[m].shape)} for m in MODALITIES},
        }
        tmp = path + ".tmp"
        torch.save(payload, tmp)
        os.replace(tmp, path)
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
            self.data.partners[m] = sp.csr_matrix((np.ones(len(indices), np.float32), indices,
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
        from tqdm.auto import tqdm

        cfg = self.cfg
        torch.manual_seed(cfg.seed)
        if resume is not None:
            self.load_checkpoint(resume)
        n_steps = max(math.ceil(self.n[m] / self.batch_size[m]) for m in MODALITIES)
        if self.dist:
            n_steps = max(math.ceil(self.n[m] / (self.batch_size[m] * self.world)) for m in MODALITIES)
            logger.info("distributed training on %d processes: %d cells per modality per rank and step "
                        "(global batch %d)", self.world, self.batch_size["rna"], self.batch_size["rna"] * self.world)
        logger.info("training: up to %d epochs of %d steps (batch %d, lr %g, patience %d) on %s",
                    max_epochs, n_steps, cfg.batch_size, cfg.lr, cfg.patience, self.device)
        bar = tqdm(total=max_epochs, initial=self.state.epoch, disable=not (self.progress and self.main),
                   desc="biclum", unit="epoch", dynamic_ncols=True)
        self.state.status = "running"
        last_good = copy.deepcopy(self.module.state_dict())
        with _InterruptFlag() as interrupt:
            while self.state.epoch < max_epochs:
                epoch = self.state.epoch
                (self.ddp or self.module).train()
                sums = dict.fromkeys(self.terms, 0.0)
                t0 = time.perf_counter()
                order = self._epoch_order(n_steps)
                if self.dist:
                    self._seed_rank_epoch(epoch)
                stopped = None
                for s in range(n_steps):
                    c = s * self.world + self.rank  # this rank's chunk of the epoch's order (c = s in one process)
                    idx = {m: order[m][c * self.batch_size[m]:(c + 1) * self.batch_size[m]] for m in MODALITIES}
                    terms = self.loss_fn(self._batch(idx), self.sketches, self._feature_pairs(), self.weights,
                                         cfg.tau_cell, cfg.tau_feature, cfg.similarity)
                    bad = [k for k in self.terms if not torch.isfinite(terms[k]).all()]
                    if self.dist:  # all ranks stop together (else the others would wait forever in backward)
                        any_bad, any_interrupt = distributed.any_true(bool(bad), interrupt.raised)
                        bad = bad or (["another rank"] if any_bad else [])
                    if bad:
                        stopped = self._stop_nonfinite(epoch, s, bad, terms, last_good)
                        break
                    if self.state.epoch == 0 and s == 0 and self.main:
                        self.gradient_norms = self._gradient_norms(terms)
                    self.optimizer.zero_grad(set_to_none=True)
                    terms["total"].backward()
                    self.optimizer.step()
                    for k in self.terms:
                        sums[k] += float(terms[k].detach())
                    if (any_interrupt if self.dist else interrupt.raised):
                        stopped = "interrupted"
                        break
                if stopped == "nonfinite":
                    break
                done = s + 1
                record = {k: sums[k] / done for k in self.terms}
                if self.dist:  # the same epoch loss (so the same early stopping) and BatchNorm statistics everywhere
                    record = distributed.all_reduce_mean(record)
                    distributed.average_buffers(self.module)
                record.update(epoch=epoch, seconds=time.perf_counter() - t0, steps=done)
                self.state.history.append(record)
                if stopped == "interrupted":
                    self.state.status = f"interrupted during epoch {epoch}"
                    warnings.warn(f"training interrupted during epoch {epoch}; the model keeps its best weights "
                                  f"so far and can be used or resumed from a checkpoint.", BiclumWarning)
                    if checkpoint_dir:
                        self.save_checkpoint(checkpoint_dir)
                    break
                self.state.epoch = epoch + 1
                last_good = copy.deepcopy(self.module.state_dict())
                improved = record["total"] < self.state.best_loss - cfg.min_delta * abs(self.state.best_loss)
                if improved or self.best_state is None:
                    self.state.best_loss, self.state.best_epoch, self.state.bad_epochs = record["total"], epoch, 0
                    self.best_state = last_good
                else:
                    self.state.bad_epochs += 1
                bar.update(1)
                bar.set_postfix(loss=f"{record['total']:.4g}", cell=f"{record['cell']:.3f}",
                                feat=f"{record['feature']:.3f}")
                logger.debug("epoch %d: %s", epoch, {k: round(v, 5) for k, v in record.items()})
                if self.callback is not None and self.main:
                    self.callback("train", epoch + 1, max_epochs,
                                  f"epoch {epoch + 1}/{max_epochs}: loss {record['total']:.4g} "
                                  f"(recon {record['recon_rna']:.3g}/{record['recon_other']:.3g}, "
                                  f"cell {record['cell']:.3g}, feature {record['feature']:.3g})")
                if (self.refresh_pairs is not None and cfg.refresh_pairs_every
                        and self.state.epoch % cfg.refresh_pairs_every == 0 and self.state.epoch < max_epochs):
                    self.data.partners = self.refresh_pairs(self.module)
                    self.module.train()
                if checkpoint_dir and cfg.checkpoint_every and self.state.epoch % cfg.checkpoint_every == 0:
                    self.save_checkpoint(checkpoint_dir)
                if self.state.bad_epochs >= cfg.patience:
                    self.state.status = f"early stopped after epoch {epoch} (best epoch {self.state.best_epoch})"
                    break
            else:
                self.state.status = f"reached max_epochs={max_epochs}"
        bar.close()
        if self.best_state is not None and not self.state.status.startswith("stopped"):
            self.module.load_state_dict(self.best_state)
        if checkpoint_dir and self.state.status.startswith(("early", "reached")):
            self.save_checkpoint(checkpoint_dir)
        logger.info("training %s; best epoch %d, loss %.5g", self.state.status, self.state.best_epoch,
                    self.state.best_loss)
        return self.state

    def _gradient_norms(self, terms: dict) -> dict:
        """Norm of each weighted loss term's gradient on the cell encoders at the first step (logged): how much
        each term steers the cell embeddings."""
        params = [p for p in self.module.cell_encoders.parameters() if p.requires_grad]
        weight = {"cell": self.weights["alpha"], "feature": self.weights["beta"],
                  "recon_rna": self.weights["gamma_rna"], "recon_other": self.weights["gamma_other"]}
        if "batch" in terms:
            weight["batch"] = self.weights["alpha_batch"]
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

    def _stop_nonfinite(self, epoch, step, bad, terms, last_good) -> str:
        values = {k: float(terms[k].detach()) for k in self.terms}
        finite_params = all(torch.isfinite(p).all() for p in self.module.parameters())
        if not finite_params:
            self.module.load_state_dict(last_good)
        term = next((k for k in bad if k != "total"), "total")
        where = (f"term {term!r} = {values[term]} (all terms: {values})" if term in values
                 else f"on another rank (this is rank {self.rank} of {self.world})")
        msg = (f"non-finite loss at epoch {epoch}, step {step}: {where}; training stopped and the model keeps its "
               f"last good weights. Lower lr, check the inputs for extreme values, or lower alpha/beta.")
        self.state.status = f"stopped: {msg}"
        logger.error(msg)
        warnings.warn(msg, BiclumWarning)
        return "nonfinite"
