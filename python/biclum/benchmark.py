"""``biclum benchmark`` / ``biclum ablation`` / ``biclum sensitivity``: methods x datasets -> one table.

Every run (one method on one dataset, or one biclum configuration) goes through the same steps:

1. the inputs are prepared once (:func:`prepare_input`): paired data (same cell names in both modalities) is put in
   the same cell order; labels come from ``obs[label_key]``;
2. the method runs, by default in a **fresh child process** (``isolate=True``) that loads the inputs itself, so its
   time and memory are its own: ``wall_s`` = wall-clock seconds of the method call (input loading and interpreter
   start excluded), ``cpu_s`` = CPU seconds of the worker and its child processes (Rscript) during the call,
   ``peak_rss_mb`` = peak resident memory of the worker and its child processes together (Rscript for Seurat):
   the worker's exact high-water mark (``VmHWM``) or the largest sum of resident sets over the worker and its
   children sampled every 0.2 s, whichever is larger. It includes the Python interpreter, imports and the loaded
   inputs (``rss_inputs_mb`` = the worker's high-water mark just before the method started, so
   ``peak_rss_mb - rss_inputs_mb`` is what the method itself added). With ``isolate=False`` the method runs in this
   process and memory is not measured (NaN);
3. :func:`biclum.metrics.evaluate` scores the embeddings (paired-only metrics only for paired data; neighbour
   conservation against each modality's own PCA/LSI, :func:`pre_integration`);
4. a UMAP figure per run (coloured by modality and by cell type) when umap-learn is installed.

Methods: ``biclum`` (:func:`biclum.integrate`), ``pca`` (:func:`biclum.baselines.pca_floor`), ``seurat``
(:func:`biclum.baselines.seurat_cca`, skipped when R/Seurat are missing), ``scglue``
(:func:`biclum.baselines.scglue_baseline`, ATAC only; its per-stage epoch cap ``scglue_epochs`` is stated in the
``epoch_budget`` column) and ``maxfuse`` (:func:`biclum.baselines.maxfuse_baseline`, protein only). The two peers
get the prior knowledge biclum gets (scGLUE: the same gene annotation for its guidance graph; MaxFuse: biclum's
antibody -> gene mapping) and are skipped unless their package imports here or in ``BICLUM_PEERS_PYTHON`` (a
separate environment, ``make peers``; their worker process then runs with that interpreter). A skipped or failed
run is a table row with its reason in ``status``.

Entry points for the CLI: :func:`main_benchmark`, :func:`main_ablation`, :func:`main_sensitivity` (``argv`` lists).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import pandas as pd

from ._logging import logger
from .errors import BiclumInputError
from .metrics import BATCH_METRIC_NAMES, METRIC_NAMES, evaluate

__all__ = [
    "BenchmarkInput", "prepare_input", "pre_integration", "run_method", "run_benchmark", "run_ablation", "run_sensitivity",
    "write_table", "main_benchmark", "main_ablation", "main_sensitivity", "METHODS", "ABLATIONS",
    "SENSITIVITY_GRID",
]

METHODS = ("biclum", "pca", "seurat", "scglue", "maxfuse")

#: peer methods and the pip package each needs (may be installed in a separate environment, BICLUM_PEERS_PYTHON)
PEER_PACKAGES = {"scglue": "scglue", "maxfuse": "maxfuse"}

#: scGLUE's default epoch cap per stage here (pretraining and fine-tuning); ../shared/ANCHORS.md ran 8 + 8
SCGLUE_EPOCHS = 8

#: the ablations of the BiCLUM paper: config overrides of :func:`biclum.integrate`
ABLATIONS: Dict[str, Dict[str, float]] = {
    "full": {},
    "no_cell_loss": {"alpha": 0.0},
    "no_feature_loss": {"beta": 0.0},
    "no_reconstruction": {"gamma_rna": 0.0, "gamma_other": 0.0},
}

#: one-at-a-time sensitivity grid (each parameter varied around the defaults, the others at their defaults)
SENSITIVITY_GRID: Dict[str, List[float]] = {
    "tau_cell": [0.05, 0.1, 0.2, 0.5, 1.0],
    "tau_feature": [0.05, 0.1, 0.2, 0.5, 1.0],
    "alpha": [1e2, 1e3, 1e4, 1e5],
    "beta": [1e2, 1e3, 1e4, 1e5],
    "mnn_k": [20, 50, 100, 200, 400],
    "latent_dim": [16, 32, 50, 64, 128],
}

TIME_COLUMNS = ("wall_s", "cpu_s", "peak_rss_mb", "rss_inputs_mb")


# ------------------------------------------------------------------------------------------------------ inputs
@dataclass
class BenchmarkInput:
    """One dataset of a benchmark.

    Either ``name`` of a shared dataset (:func:`biclum.datasets.load_shared`: ``snareseq``, ``eccite``,
    ``pbmc_small``, ``bmmc``), loaded lazily, or in-memory ``rna`` / ``other`` AnnData (raw counts; ``other`` =
    ATAC peaks or gene-level ATAC, or ADT) with ``modality`` and ``annotation`` (gene table, ATAC only).
    ``paired``: None = detect (the same cell names in both). ``label_key``: obs column of cell types in both.
    ``batch_key``: obs column of batches within each modality (adds the within-modality mixing metrics; pass
    ``config={"rna_batch_key": ..., "other_batch_key": ...}`` to have biclum use them).
    """

    name: str
    rna: Any = None
    other: Any = None
    modality: Optional[str] = None
    annotation: Optional[str] = None
    label_key: Optional[str] = "cell_type"
    paired: Optional[bool] = None
    data_dir: Optional[str] = None
    batch_key: Optional[str] = None
    _prepared: Optional[dict] = field(default=None, repr=False)

    def load(self) -> dict:
        """The prepared inputs: dict rna, other, modality, annotation, paired, rna_labels, other_labels."""
        if self._prepared is None:
            rna, other, modality, annotation = self.rna, self.other, self.modality, self.annotation
            if rna is None or other is None:
                from .datasets import load_shared

                rna, other, modality, annotation = load_shared(self.name, self.data_dir)
            if modality not in ("atac", "protein"):
                raise BiclumInputError(f"dataset {self.name!r}: modality must be 'atac' or 'protein', got "
                                       f"{modality!r}.")
            self._prepared = prepare_input(rna, other, modality, annotation, label_key=self.label_key,
                                           paired=self.paired, batch_key=self.batch_key)
        return self._prepared

    def spec(self, tmpdir: Path) -> dict:
        """JSON-able reference a worker process can load (in-memory data is written to tmpdir as h5ad)."""
        if self.rna is None or self.other is None:
            return {"name": self.name, "data_dir": self.data_dir, "label_key": self.label_key, "paired": self.paired,
                    "batch_key": self.batch_key}
        rna_path, other_path = tmpdir / f"{self.name}_rna.h5ad", tmpdir / f"{self.name}_other.h5ad"
        if not rna_path.exists():
            self.rna.write_h5ad(rna_path)
            self.other.write_h5ad(other_path)
        return {"name": self.name, "rna_path": str(rna_path), "other_path": str(other_path),
                "modality": self.modality, "annotation": self.annotation, "label_key": self.label_key,
                "paired": self.paired, "batch_key": self.batch_key}

    @classmethod
    def from_spec(cls, spec: dict) -> "BenchmarkInput":
        if "rna_path" in spec:
            import anndata as ad

            return cls(spec["name"], ad.read_h5ad(spec["rna_path"]), ad.read_h5ad(spec["other_path"]),
                       spec["modality"], spec["annotation"], spec["label_key"], spec["paired"],
                       batch_key=spec.get("batch_key"))
        return cls(spec["name"], label_key=spec["label_key"], paired=spec["paired"], data_dir=spec["data_dir"],
                   batch_key=spec.get("batch_key"))


def _as_input(obj) -> BenchmarkInput:
    if isinstance(obj, BenchmarkInput):
        return obj
    if isinstance(obj, str):
        return BenchmarkInput(obj)
    raise BiclumInputError(f"a dataset must be a shared dataset name or a BenchmarkInput, got {type(obj).__name__}.")


def prepare_input(rna, other, modality: str, annotation=None, *, label_key: Optional[str] = "cell_type",
                  paired: Optional[bool] = None, batch_key: Optional[str] = None) -> dict:
    """Align paired data and pull the labels out (inputs are not modified).

    Paired = both modalities hold the same set of unique cell names (or ``paired=True``, which then requires it);
    the other modality is then reordered to the RNA order. Labels: ``obs[label_key]`` of each modality, None when
    the column is missing from either. Batches within each modality: ``obs[batch_key]`` (None when not given or
    missing from either).
    """
    same = (rna.obs_names.is_unique and other.obs_names.is_unique and rna.n_obs == other.n_obs
            and set(rna.obs_names) == set(other.obs_names))
    if paired is None:
        paired = same
    elif paired and not same:
        raise BiclumInputError("paired=True but the RNA and other cell names are not the same set of unique names; "
                               "rename the cells so a cell has the same name in both, or use paired=False.")
    if paired and not rna.obs_names.equals(other.obs_names):
        other = other[rna.obs_names].copy()
    have = label_key is not None and label_key in rna.obs and label_key in other.obs
    if label_key is not None and not have:
        logger.info("benchmark: no obs[%r] in both modalities; label metrics will be skipped", label_key)
    return {
        "rna": rna, "other": other, "modality": modality, "annotation": annotation, "paired": bool(paired),
        "rna_labels": rna.obs[label_key].astype(str).to_numpy() if have else None,
        "other_labels": other.obs[label_key].astype(str).to_numpy() if have else None,
        **{f"{m}_batch": (ad.obs[batch_key].astype(str).to_numpy() if batch_key is not None and batch_key in
                          rna.obs and batch_key in other.obs else None) for m, ad in (("rna", rna), ("other", other))},
    }


def _other_in_gene_space(prep: dict):
    from .prior import gene_activity, protein_to_gene

    if prep["modality"] == "atac":
        return gene_activity(prep["other"], prep["annotation"])
    return protein_to_gene(prep["other"], genes=list(prep["rna"].var_names))


# ----------------------------------------------------------------------------------------------------- methods
def _run_biclum(prep, seed, max_epochs, config):
    import biclum

    res = biclum.integrate(prep["rna"], prep["other"], modality=prep["modality"], annotation=prep["annotation"],
                           seed=seed, max_epochs=max_epochs, progress=False, **(config or {}))
    r = res.rna[prep["rna"].obs_names].obsm["X_biclum"] if not res.rna.obs_names.equals(prep["rna"].obs_names) \
        else res.rna.obsm["X_biclum"]
    o = res.other[prep["other"].obs_names].obsm["X_biclum"] if not res.other.obs_names.equals(
        prep["other"].obs_names) else res.other.obsm["X_biclum"]
    extra = {}
    try:
        extra["epochs"] = len(res.history)
    except Exception:  # history is informative only
        pass
    return np.asarray(r), np.asarray(o), extra


def _run_pca(prep, seed, max_epochs, config):
    from .baselines import pca_floor

    r, o = pca_floor(prep["rna"], _other_in_gene_space(prep), seed=seed, **(config or {}))
    return r, o, {}


def _run_seurat(prep, seed, max_epochs, config):
    from .baselines import lsi, seurat_cca

    og = _other_in_gene_space(prep)
    red = lsi(prep["other"], 50, seed=seed) if prep["modality"] == "atac" and _looks_like_peaks(prep["other"]) \
        else None
    out = seurat_cca(prep["rna"], og, other_reduction=red, rna_labels=prep["rna_labels"], **(config or {}))
    if out is None:
        raise _Skip("Rscript or the R package Seurat is not installed")
    r, o, pred = out
    extra = {}
    if pred is not None and prep["other_labels"] is not None:
        extra["transfer_rna_to_other_own"] = float(np.mean(pred == prep["other_labels"]))
    return r, o, extra


def _run_scglue(prep, seed, max_epochs, config):
    from .baselines import scglue_baseline

    if prep["modality"] != "atac":
        raise _Skip("the scglue baseline here supports ATAC only")
    cfg = dict(config or {})
    epochs = cfg.pop("max_epochs", SCGLUE_EPOCHS)
    info: dict = {}
    out = scglue_baseline(prep["rna"], prep["other"], prep["annotation"], seed=seed, max_epochs=epochs, info=info,
                          **cfg)
    if out is None:
        raise _Skip("scglue is not installed (pip install scglue)")
    budget = ("scglue's own (data-size dependent)" if epochs is None else
              f"at most {epochs} pretraining + {epochs} fine-tuning epochs")
    return out[0], out[1], {"epoch_budget": budget, **info}


def _run_maxfuse(prep, seed, max_epochs, config):
    from .baselines import maxfuse_baseline

    if prep["modality"] != "protein":
        raise _Skip("the maxfuse baseline here supports protein only")
    out = maxfuse_baseline(prep["rna"], prep["other"], seed=seed, **(config or {}))
    if out is None:
        raise _Skip("maxfuse is not installed (pip install maxfuse)")
    return out[0], out[1], {}


def _looks_like_peaks(adata) -> bool:
    try:
        from .prior import parse_peaks

        parse_peaks(adata)
        return True
    except Exception:
        return False


_RUNNERS: Dict[str, Callable] = {"biclum": _run_biclum, "pca": _run_pca, "seurat": _run_seurat,
                                 "scglue": _run_scglue, "maxfuse": _run_maxfuse}


class _Skip(Exception):
    """A method cannot run here (tool missing); the row is kept with the reason."""


def _method_unavailable(method: str) -> Optional[str]:
    """Why a method cannot run in this environment (None when it can)."""
    if method == "seurat":
        from .baselines import seurat_available

        ok, why = seurat_available()
        return None if ok else why
    if method in PEER_PACKAGES:
        from .baselines import peer_available, peer_python

        ok, why = peer_available(PEER_PACKAGES[method])
        if not (ok or peer_python(PEER_PACKAGES[method])):
            return why
        if method == "scglue" and shutil.which("bedtools") is None:
            return "scglue's guidance graph needs the bedtools program (Debian: apt-get install bedtools)"
        return None
    if method == "biclum":
        try:
            from .api import integrate  # noqa: F401
        except Exception as exc:
            return f"biclum.integrate is not importable ({type(exc).__name__}: {exc})"
    return None


def _status_kb(pid: Union[int, str], key: str) -> float:
    """A ``/proc/<pid>/status`` memory field in kB (NaN when unreadable, e.g. not Linux or process gone)."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return float(line.split()[1])
    except OSError:
        pass
    return float("nan")


def _descendants(root: int) -> List[int]:
    children: Dict[int, List[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


class _PeakMemory:
    """Peak memory of this process and its descendants while a block runs.

    ``peak_mb`` = max(this process's VmHWM, the largest sampled sum of VmRSS over this process and its descendant
    processes (every ``interval`` s)). /proc/self VmHWM is exact for this process (a fresh address space after
    exec, unlike ``ru_maxrss``, which keeps the parent's size across fork/exec); child processes (Rscript) are
    covered by the sampling. Linux only; NaN elsewhere.
    """

    def __init__(self, interval: float = 0.2):
        self.interval = interval
        self.sampled_kb = 0.0
        self._stop = None
        self._thread = None

    def _sample(self) -> None:
        pid = os.getpid()
        while not self._stop.wait(self.interval):
            total = _status_kb(pid, "VmRSS")
            for c in _descendants(pid):
                rss = _status_kb(c, "VmRSS")
                if rss == rss:
                    total += rss
            self.sampled_kb = max(self.sampled_kb, total)

    def __enter__(self):
        import threading

        self._stop = threading.Event()
        if os.path.isdir("/proc"):
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        return False

    @property
    def peak_mb(self) -> float:
        return max(_status_kb("self", "VmHWM"), self.sampled_kb) / 1024.0


def _cpu_s() -> float:
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def _run_here(prep: dict, method: str, seed: int, max_epochs: Optional[int], config: Optional[dict],
              measure_memory: bool) -> dict:
    """Run one method in this process; returns embeddings, extras and timing."""
    if method not in _RUNNERS:
        raise BiclumInputError(f"unknown method {method!r}; choose from {', '.join(METHODS)}.")
    rss0 = _status_kb("self", "VmHWM") / 1024.0 if measure_memory else float("nan")
    mem = _PeakMemory()
    t0, c0 = time.perf_counter(), _cpu_s()
    if measure_memory:
        with mem:
            r, o, extra = _RUNNERS[method](prep, seed, max_epochs, config)
    else:
        r, o, extra = _RUNNERS[method](prep, seed, max_epochs, config)
    wall, cpu = time.perf_counter() - t0, _cpu_s() - c0
    peak = mem.peak_mb if measure_memory else float("nan")
    return {"rna_emb": np.asarray(r, dtype=np.float32), "other_emb": np.asarray(o, dtype=np.float32),
            "extra": extra, "wall_s": wall, "cpu_s": cpu, "peak_rss_mb": peak, "rss_inputs_mb": rss0}


def _worker(job_path: str) -> int:
    """Child-process entry: load the inputs, run one method, save embeddings and measurements."""
    job = json.loads(Path(job_path).read_text())
    out = Path(job["out"])
    try:
        prep = BenchmarkInput.from_spec(job["dataset"]).load()
        res = _run_here(prep, job["method"], job["seed"], job["max_epochs"], job["config"], measure_memory=True)
    except _Skip as exc:
        out.with_suffix(".json").write_text(json.dumps({"status": f"skipped: {exc}"}))
        return 0
    np.savez(out.with_suffix(".npz"), rna_emb=res.pop("rna_emb"), other_emb=res.pop("other_emb"))
    out.with_suffix(".json").write_text(json.dumps({"status": "ok", **res}, default=float))
    return 0


def _run_streaming(cmd: List[str], env: dict, timeout: Optional[float], prefix: str) -> Tuple[Optional[int], list]:
    """Run a worker, echoing its log lines to stderr (when the biclum logger shows INFO) and keeping the last 50.
    Returns (exit code or None on timeout, last lines)."""
    import collections
    import threading

    echo = logger.isEnabledFor(20)
    tail: collections.deque = collections.deque(maxlen=50)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    timer = None
    timed_out = threading.Event()
    if timeout is not None:
        def _kill():
            timed_out.set()
            proc.kill()
        timer = threading.Timer(timeout, _kill)
        timer.start()
    try:
        for line in proc.stdout:
            line = line.rstrip("\n")
            if not line.strip():
                continue
            tail.append(line)
            if echo and not line.lstrip().startswith(("warn(", "warnings.warn")):
                sys.stderr.write(prefix + line + "\n")
        proc.wait()
    finally:
        if timer is not None:
            timer.cancel()
    return (None if timed_out.is_set() else proc.returncode), list(tail)


def _worker_python(method: str) -> str:
    """This interpreter, or BICLUM_PEERS_PYTHON for a peer whose package imports only there."""
    if method in PEER_PACKAGES:
        from .baselines import peer_available, peer_python

        if not peer_available(PEER_PACKAGES[method])[0]:
            return peer_python(PEER_PACKAGES[method]) or sys.executable
    return sys.executable


def run_method(dataset, method: str, *, seed: int = 0, max_epochs: Optional[int] = None,
               config: Optional[dict] = None, isolate: bool = True, timeout: Optional[float] = None,
               tmpdir: Optional[str] = None) -> dict:
    """Run one method on one dataset; returns a dict with ``status``, ``rna_emb``, ``other_emb`` (None unless ok),
    ``extra``, ``wall_s``, ``cpu_s``, ``peak_rss_mb``, ``rss_inputs_mb`` (see the module docstring).

    ``config``: keyword overrides passed to the method (biclum: :func:`biclum.integrate` config keys; pca:
    :func:`~biclum.baselines.pca_floor` arguments; seurat: :func:`~biclum.baselines.seurat_cca` arguments).
    """
    ds = _as_input(dataset)
    why = _method_unavailable(method) if method in _RUNNERS else None
    if method not in _RUNNERS:
        raise BiclumInputError(f"unknown method {method!r}; choose from {', '.join(METHODS)}.")
    empty = {"rna_emb": None, "other_emb": None, "extra": {}, **{k: float("nan") for k in TIME_COLUMNS}}
    if why:
        logger.warning("benchmark: %s on %s skipped: %s", method, ds.name, why)
        return {**empty, "status": f"skipped: {why}"}
    python = _worker_python(method)
    if not isolate:
        if python != sys.executable:
            return {**empty, "status": f"skipped: {method} is installed only in BICLUM_PEERS_PYTHON={python}; "
                                       "run with isolate=True (drop --no-isolate)"}
        try:
            return {"status": "ok", **_run_here(ds.load(), method, seed, max_epochs, config, measure_memory=False)}
        except _Skip as exc:
            return {**empty, "status": f"skipped: {exc}"}
    with tempfile.TemporaryDirectory(prefix="biclum_bench_", dir=tmpdir) as tmp:
        tmp = Path(tmp)
        job = {"dataset": ds.spec(tmp), "method": method, "seed": seed, "max_epochs": max_epochs,
               "config": config or {}, "out": str(tmp / "result")}
        (tmp / "job.json").write_text(json.dumps(job))
        cmd = [python, "-m", "biclum.benchmark", "--worker", str(tmp / "job.json")]
        logger.info("benchmark: %s on %s (child process%s)", method, ds.name,
                    "" if python == sys.executable else f", {python}")
        src = str(Path(__file__).resolve().parents[1])  # this biclum, also for a peer environment's interpreter
        env = {**os.environ, "PYTHONWARNINGS": os.environ.get("PYTHONWARNINGS", "ignore"),
               "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))}
        returncode, lines = _run_streaming(cmd, env, timeout, prefix=f"  [{ds.name}/{method}] ")
        if returncode is None:
            return {**empty, "status": f"failed: timeout after {timeout} s"}
        meta_path = tmp / "result.json"
        if returncode != 0 or not meta_path.exists():
            msg = lines[-1] if lines else f"exit code {returncode}"
            logger.warning("benchmark: %s on %s failed:\n%s", method, ds.name, "\n".join(lines[-15:]))
            return {**empty, "status": f"failed: {msg}"}
        meta = json.loads(meta_path.read_text())
        if meta["status"] != "ok":
            return {**empty, "status": meta["status"]}
        with np.load(tmp / "result.npz") as z:
            meta["rna_emb"], meta["other_emb"] = z["rna_emb"], z["other_emb"]
        return meta


# ------------------------------------------------------------------------------------------------------ figures
def plot_umap(rna_emb, other_emb, rna_labels=None, other_labels=None, *, title: str = "", path=None,
              seed: int = 0, modality_name: str = "other"):
    """UMAP of the joint embedding, coloured by modality and (when given) by cell type; saved to ``path``.
    Returns the figure, or None when umap-learn is missing."""
    try:
        import umap
    except ImportError:
        logger.warning("UMAP figure skipped: umap-learn is not installed (pip install 'biclum[umap]')")
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.concatenate([rna_emb, other_emb])
    xy = umap.UMAP(n_neighbors=15, min_dist=0.3, random_state=seed, n_jobs=1).fit_transform(x)
    n_r = len(rna_emb)
    panels = [("modality", np.array(["RNA"] * n_r + [modality_name] * len(other_emb)))]
    if rna_labels is not None and other_labels is not None:
        panels.append(("cell type", np.concatenate([np.asarray(rna_labels), np.asarray(other_labels)]).astype(str)))
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.8), squeeze=False)
    order = np.random.default_rng(seed).permutation(len(x))
    for ax, (name, lab) in zip(axes[0], panels):
        cats = pd.unique(lab)
        cmap = plt.get_cmap("tab20" if len(cats) > 10 else "tab10")
        colors = {c: cmap(i % cmap.N) for i, c in enumerate(cats)}
        ax.scatter(xy[order, 0], xy[order, 1], c=[colors[v] for v in lab[order]], s=max(0.5, 2e4 / len(x)) if
                   len(x) > 2000 else 8, linewidths=0, rasterized=True)
        for c in cats:
            ax.scatter([], [], c=[colors[c]], label=c, s=20)
        ax.legend(fontsize=7, markerscale=1, frameon=False, loc="center left", bbox_to_anchor=(1, 0.5))
        ax.set_title(f"{title} - {name}" if title else name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=100)
        plt.close(fig)
    return fig


# ------------------------------------------------------------------------------------------------------ runners
def pre_integration(prep: dict, n_comps: int = 50, seed: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """Each modality's own coordinates before integration, for the neighbour-conservation metric (as scglue's
    evaluation: RNA PCA, ATAC LSI). RNA: PCA of the per-gene standardised log-normalised counts (all genes, clip
    10); ATAC peaks: :func:`~biclum.baselines.lsi`; gene-level ATAC or ADT: PCA as for RNA. Cached in ``prep``."""
    if "pre" not in prep:
        from .baselines import _counts, _randomized_svd, _Scaled, log_normalize, lsi

        def pca(adata):
            X = log_normalize(_counts(adata, None, "data"))
            return _randomized_svd(_Scaled([X], max_value=10.0), min(n_comps, X.shape[1] - 1), seed=seed)[0]

        other = prep["other"]
        o = lsi(other, n_comps, seed=seed) if prep["modality"] == "atac" and _looks_like_peaks(other) else pca(other)
        prep["pre"] = (pca(prep["rna"]).astype(np.float32), np.asarray(o, dtype=np.float32))
    return prep["pre"]


def _score(prep: dict, res: dict, nmi: bool, seed: int) -> dict:
    if res["rna_emb"] is None:
        return {}
    try:
        rna_pre, other_pre = pre_integration(prep, seed=seed)
    except Exception as exc:  # the metric is optional; never lose a run's scores over it
        logger.warning("neighbour conservation skipped: pre-integration coordinates failed (%s)", exc)
        rna_pre = other_pre = None
    return evaluate(res["rna_emb"], res["other_emb"], prep["rna_labels"], prep["other_labels"],
                    paired=prep["paired"], nmi=nmi, random_state=seed, rna_pre=rna_pre, other_pre=other_pre,
                    rna_batch=prep.get("rna_batch"), other_batch=prep.get("other_batch"))


def _row(dataset: str, method: str, res: dict, scores: dict, **label) -> dict:
    row = {"dataset": dataset, "method": method, **label, "status": res["status"]}
    for k in METRIC_NAMES:
        row[k] = scores.get(k, np.nan)
    row.update({k: scores[k] for k in BATCH_METRIC_NAMES if k in scores})  # batches within the modalities
    for k, v in res.get("extra", {}).items():
        row[k] = v
    for k in TIME_COLUMNS:
        row[k] = res.get(k, np.nan)
    return row


def run_benchmark(datasets: Iterable, methods: Sequence[str] = ("biclum", "pca", "seurat"), *, seed: int = 0,
                  max_epochs: Optional[int] = None, biclum_config: Optional[dict] = None,
                  scglue_epochs: Optional[int] = SCGLUE_EPOCHS, nmi: bool = True,
                  umap: bool = True, out_dir=None, isolate: bool = True, timeout: Optional[float] = None,
                  command: Optional[str] = None, table_name: str = "benchmark") -> pd.DataFrame:
    """Run every method on every dataset and score them with the same metrics.

    Parameters
    ----------
    datasets
        Shared dataset names (``"snareseq"``, ``"eccite"``, ``"pbmc_small"``, ...) and/or :class:`BenchmarkInput`.
    methods
        Any of ``"biclum"``, ``"pca"``, ``"seurat"``, ``"scglue"`` (ATAC), ``"maxfuse"`` (protein); a method whose
        tool is missing, or that does not handle the dataset's modality, gives a ``skipped: ...`` row.
    seed, max_epochs, biclum_config
        Passed to :func:`biclum.integrate` (``biclum_config`` = config overrides); ``seed`` also seeds the
        baselines, the metrics' subsampling and the UMAPs.
    scglue_epochs
        scGLUE's epoch cap for each of its two stages (None = scglue's own, data-size dependent budget: hours on
        SNARE-seq on 2 cores); stated in the table's ``epoch_budget`` column.
    nmi
        Compute NMI (20 Leiden runs per method; 2 passes each, subsampled to 10,000 cells, see
        :func:`biclum.metrics.evaluate`).
    umap, out_dir, table_name
        With ``out_dir``, write ``<table_name>.md`` + ``<table_name>.csv`` there and, with ``umap``, one UMAP figure
        per run (``<table_name>_umap_<dataset>_<method>.png``).
    isolate, timeout
        One child process per run (honest time and memory, see the module docstring); ``timeout`` seconds per run.
    command
        The command line recorded in ``benchmark.md``.

    Returns
    -------
    DataFrame, one row per (dataset, method): status, every metric of :data:`biclum.metrics.METRIC_NAMES`,
    method extras (e.g. Seurat's own label transfer ``transfer_rna_to_other_own``), wall_s, cpu_s, peak_rss_mb,
    rss_inputs_mb.
    """
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    rows = []
    for ds in map(_as_input, datasets):
        prep = ds.load()
        for method in methods:
            cfg = (biclum_config if method == "biclum" else
                   {"max_epochs": scglue_epochs} if method == "scglue" else None)
            res = run_method(ds, method, seed=seed, max_epochs=max_epochs, config=cfg, isolate=isolate,
                             timeout=timeout)
            scores = _score(prep, res, nmi, seed)
            rows.append(_row(ds.name, method, res, scores))
            logger.info("benchmark: %s / %s: %s%s", ds.name, method, res["status"],
                        "" if not scores else " " + ", ".join(f"{k}={v:.3f}" for k, v in scores.items()))
            if out is not None and umap and res["rna_emb"] is not None:
                plot_umap(res["rna_emb"], res["other_emb"], prep["rna_labels"], prep["other_labels"],
                          title=f"{ds.name} / {method}", path=out / f"{table_name}_umap_{ds.name}_{method}.png",
                          seed=seed,
                          modality_name=prep["modality"].upper() if prep["modality"] == "atac" else "ADT")
        ds._prepared = None  # free the data before the next dataset
    table = pd.DataFrame(rows)
    if out is not None:
        write_table(table, out / table_name, title="biclum benchmark", command=command)
    return table


def _grid_runs(rna, other, modality, annotation, label_key, paired, variants: Sequence[Tuple[str, dict]], *,
               seed, max_epochs, base_config, nmi, isolate, timeout, name) -> Tuple[pd.DataFrame, dict]:
    ds = rna if isinstance(rna, BenchmarkInput) else (
        BenchmarkInput(rna) if isinstance(rna, str) else
        BenchmarkInput(name, rna, other, modality, annotation, label_key, paired))
    prep = ds.load()
    rows = []
    for label, overrides in variants:
        cfg = {**(base_config or {}), **overrides}
        res = run_method(ds, "biclum", seed=seed, max_epochs=max_epochs, config=cfg, isolate=isolate,
                         timeout=timeout)
        scores = _score(prep, res, nmi, seed)
        rows.append(_row(ds.name, "biclum", res, scores, variant=label,
                         overrides=json.dumps(overrides, sort_keys=True)))
        logger.info("%s: %s", label, res["status"])
    return pd.DataFrame(rows), prep


def run_ablation(rna, other=None, modality: Optional[str] = None, annotation=None, *,
                 grid: Optional[Mapping[str, dict]] = None, label_key: Optional[str] = "cell_type",
                 paired: Optional[bool] = None, seed: int = 0, max_epochs: Optional[int] = None,
                 base_config: Optional[dict] = None, nmi: bool = True, isolate: bool = True,
                 timeout: Optional[float] = None, out_dir=None, command: Optional[str] = None,
                 name: str = "data", table_name: str = "ablation") -> pd.DataFrame:
    """biclum with each loss switched off: one row per ablation, every metric.

    ``rna`` is an AnnData (then ``other``, ``modality``, ``annotation`` as :func:`biclum.integrate`), a shared
    dataset name or a :class:`BenchmarkInput`. ``grid``: ``{row name: config overrides}``, default
    :data:`ABLATIONS` (full model; ``alpha=0``: no cell-level contrastive loss; ``beta=0``: no feature-level loss;
    ``gamma_rna=gamma_other=0``: no reconstruction). ``base_config`` applies to every row. With ``out_dir``:
    ``<table_name>.md``, ``.csv`` and ``.png`` (a bar chart of the main metrics per ablation).
    """
    grid = dict(ABLATIONS if grid is None else grid)
    table, _ = _grid_runs(rna, other, modality, annotation, label_key, paired, list(grid.items()), seed=seed,
                          max_epochs=max_epochs, base_config=base_config, nmi=nmi, isolate=isolate, timeout=timeout,
                          name=name)
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        write_table(table, out / table_name, title="biclum ablation", command=command)
        _plot_ablation(table, out / f"{table_name}.png")
    return table


def run_sensitivity(rna, other=None, modality: Optional[str] = None, annotation=None, *,
                    grid: Optional[Mapping[str, Sequence]] = None, label_key: Optional[str] = "cell_type",
                    paired: Optional[bool] = None, seed: int = 0, max_epochs: Optional[int] = None,
                    base_config: Optional[dict] = None, nmi: bool = True, isolate: bool = True,
                    timeout: Optional[float] = None, out_dir=None, command: Optional[str] = None,
                    name: str = "data", table_name: str = "sensitivity") -> pd.DataFrame:
    """One-at-a-time sensitivity of biclum to its hyperparameters: one row per (parameter, value).

    ``grid``: ``{config key: [values]}``, default :data:`SENSITIVITY_GRID` (tau_cell, tau_feature, alpha, beta,
    mnn_k, latent_dim); each value is run with the other parameters at their defaults (plus ``base_config``).
    Inputs as :func:`run_ablation`. With ``out_dir``: ``<table_name>.md``, ``.csv`` and ``.png`` (one panel per
    parameter: the main metrics against its value).
    """
    grid = dict(SENSITIVITY_GRID if grid is None else grid)
    variants = [(f"{k}={v:g}" if isinstance(v, (int, float)) else f"{k}={v}", {k: v})
                for k, values in grid.items() for v in values]
    table, _ = _grid_runs(rna, other, modality, annotation, label_key, paired, variants, seed=seed,
                          max_epochs=max_epochs, base_config=base_config, nmi=nmi, isolate=isolate, timeout=timeout,
                          name=name)
    table.insert(3, "parameter", [next(iter(json.loads(o))) for o in table["overrides"]])
    table.insert(4, "value", [next(iter(json.loads(o).values())) for o in table["overrides"]])
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        write_table(table, out / table_name, title="biclum sensitivity", command=command)
        _plot_sensitivity(table, out / f"{table_name}.png")
    return table


_PLOT_METRICS = ("foscttm", "transfer_rna_to_other", "transfer_other_to_rna", "map", "asw_celltype", "nmi",
                 "omics_mixing", "biology_conservation")


def _plot_ablation(table: pd.DataFrame, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mets = [m for m in _PLOT_METRICS if m in table and table[m].notna().any()]
    if not mets:
        return
    fig, ax = plt.subplots(figsize=(1.2 * len(mets) + 3, 4))
    w = 0.8 / max(len(table), 1)
    for i, (_, row) in enumerate(table.iterrows()):
        ax.bar(np.arange(len(mets)) + i * w, [row[m] for m in mets], w, label=row["variant"])
    ax.set_xticks(np.arange(len(mets)) + 0.4 - w / 2)
    ax.set_xticklabels(mets, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("score (FOSCTTM: lower is better)")
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _plot_sensitivity(table: pd.DataFrame, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    params = list(pd.unique(table["parameter"]))
    mets = [m for m in _PLOT_METRICS if m in table and table[m].notna().any()]
    if not params or not mets:
        return
    ncol = min(3, len(params))
    nrow = int(np.ceil(len(params) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.3 * nrow), squeeze=False)
    for ax, p in zip(axes.ravel(), params):
        sub = table[table["parameter"] == p].sort_values("value")
        for m in mets:
            ax.plot(sub["value"].astype(float), sub[m], marker="o", label=m)
        if p in ("alpha", "beta", "tau_cell", "tau_feature", "mnn_k"):
            ax.set_xscale("log")
        ax.set_title(p, fontsize=9)
    for ax in axes.ravel()[len(params):]:
        ax.axis("off")
    axes[0, 0].legend(fontsize=6, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ------------------------------------------------------------------------------------------------------- output
def _git_commit(path: Path) -> Optional[str]:
    """Short commit (+ "-dirty" with uncommitted changes) of the git checkout holding ``path``, or None."""
    try:
        cwd = str(path if path.is_dir() else path.parent)
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=cwd, capture_output=True, text=True,
                              timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return head.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def _environment() -> str:
    parts = [f"Python {platform.python_version()}", f"numpy {np.__version__}", f"{os.cpu_count()} CPUs",
             platform.platform(terse=True)]
    try:
        import biclum

        commit = _git_commit(Path(biclum.__file__).resolve().parent)
        where = Path(biclum.__file__).resolve().parents[2]
        parts.insert(0, f"biclum {biclum.__version__} from {where}" + (f" (git {commit})" if commit else ""))
    except Exception:
        pass
    return ", ".join(parts)


def write_table(table: pd.DataFrame, stem, *, title: str = "biclum benchmark", command: Optional[str] = None,
                digits: int = 3) -> Tuple[Path, Path]:
    """Write ``stem.csv`` (full precision) and ``stem.md`` (rounded table, the command and the environment)."""
    stem = Path(stem)
    csv_path, md_path = stem.with_suffix(".csv"), stem.with_suffix(".md")
    table.to_csv(csv_path, index=False)
    show = table.drop(columns=[c for c in table.columns if table[c].isna().all()])
    lines = [f"# {title}", ""]
    if command:
        lines += ["Command:", "", "```", command, "```", ""]
    lines += [f"Environment: {_environment()}; {time.strftime('%Y-%m-%d %H:%M %Z')}.", "",
              "Metrics: biclum.metrics (scglue.metrics definitions; FOSCTTM lower is better, all others higher). "
              "transfer_rna_to_other = kNN (k=5) labels of RNA cells transferred to the other modality's cells. "
              "NMI: best over Leiden resolutions 0.1-2.0 (2 passes each) on at most 10,000 random cells. "
              "omics_mixing / biology_conservation as in the BiCLUM paper. wall_s: the method call only; "
              "cpu_s: CPU time of the worker and its children (Rscript) during the call; "
              "peak_rss_mb: peak resident memory of the method's own worker process and its children (Rscript) "
              "together, including interpreter and loaded inputs (rss_inputs_mb). epochs: biclum's epochs run; "
              "epoch_budget: scGLUE's epoch cap.", ""]
    lines.append(_markdown(show, digits))
    md_path.write_text("\n".join(lines) + "\n")
    logger.info("wrote %s and %s", md_path, csv_path)
    return md_path, csv_path


def _markdown(df: pd.DataFrame, digits: int) -> str:
    integral = {c for c in df.columns if c in ("epochs", "value") and pd.api.types.is_numeric_dtype(df[c])
                and np.all(np.mod(df[c].dropna(), 1) == 0)}

    def fmt(v, col):
        if isinstance(v, (float, np.floating)):
            if np.isnan(v):
                return ""
            if col in integral:
                return str(int(v))
            return f"{v:.1f}" if abs(v) >= 100 else f"{v:.{digits}f}"
        return str(v).replace("|", "\\|")

    head = "| " + " | ".join(df.columns) + " |"
    sep = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(fmt(v, c) for v, c in zip(row, df.columns)) + " |"
            for row in df.itertuples(index=False)]
    return "\n".join([head, sep, *body])


# ---------------------------------------------------------------------------------------------------------- CLI
def _parse_config(items: Optional[Sequence[str]]) -> dict:
    out = {}
    for item in items or []:
        if "=" not in item:
            raise BiclumInputError(f"--config {item!r}: use key=value (e.g. --config mnn_k=50).")
        k, v = item.split("=", 1)
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            out[k] = v
    return out


def _common_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-epochs", type=int, default=None, help="biclum epoch budget (default: the preset's)")
    p.add_argument("--config", action="append", metavar="KEY=VALUE", help="biclum config override (repeatable)")
    p.add_argument("--no-nmi", action="store_true", help="skip NMI (20 Leiden runs per method)")
    p.add_argument("--no-isolate", action="store_true",
                   help="run methods in this process (faster to start; memory is then not measured)")
    p.add_argument("--timeout", type=float, default=None, help="seconds per run")
    p.add_argument("--data-dir", default=None, help="folder of the shared datasets (default: $BICLUM_SHARED_DATA "
                                                    "or ../shared/data)")
    p.add_argument("--out", default=None, help="output folder (tables, figures)")
    p.add_argument("--name", default=None, help="file stem of the table/figures in --out (default: the command's "
                                                "name: benchmark, ablation, sensitivity)")
    p.add_argument("--quiet", action="store_true")


def _command(prog: str, argv: Sequence[str]) -> str:
    return " ".join([prog, *map(shlex.quote, argv)])


def main_benchmark(argv: Optional[Sequence[str]] = None, prog: str = "biclum benchmark") -> int:
    """``biclum benchmark [--datasets snareseq eccite] [--methods biclum pca seurat scglue] [--out DIR] ...``

    ``prog`` is the command name shown in ``--help`` and recorded in the markdown table."""
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog=prog, description="Run biclum and baselines on the same "
                                "inputs and print one table with every metric, wall time and peak memory.")
    p.add_argument("--datasets", nargs="+", default=["snareseq", "eccite"])
    p.add_argument("--methods", nargs="+", default=["biclum", "pca", "seurat"], choices=list(METHODS))
    p.add_argument("--no-umap", action="store_true")
    p.add_argument("--scglue-epochs", type=int, default=SCGLUE_EPOCHS,
                   help=f"scGLUE epoch cap per stage (pretraining, fine-tuning); 0 = scglue's own budget "
                        f"(default {SCGLUE_EPOCHS})")
    _common_args(p)
    a = p.parse_args(argv)
    if a.quiet:
        logger.setLevel("WARNING")
    table = run_benchmark([BenchmarkInput(d, data_dir=a.data_dir) for d in a.datasets], a.methods, seed=a.seed,
                          max_epochs=a.max_epochs, biclum_config=_parse_config(a.config),
                          scglue_epochs=a.scglue_epochs or None, nmi=not a.no_nmi,
                          umap=not a.no_umap, out_dir=a.out, isolate=not a.no_isolate, timeout=a.timeout,
                          command=_command(prog, argv), table_name=a.name or "benchmark")
    print(_markdown(table.drop(columns=[c for c in table.columns if table[c].isna().all()]), 3))
    return 0 if not table["status"].str.startswith("failed").any() else 1


def _grid_main(kind: str, argv: Optional[Sequence[str]], prog: Optional[str] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    prog = prog or f"biclum {kind}"
    p = argparse.ArgumentParser(prog=prog, description=(
        "biclum with each loss switched off (one row per ablation)" if kind == "ablation" else
        "one-at-a-time sensitivity of biclum to tau_cell, tau_feature, alpha, beta, mnn_k, latent_dim"))
    p.add_argument("--dataset", default="snareseq", help="shared dataset name")
    if kind == "sensitivity":
        p.add_argument("--params", nargs="+", default=list(SENSITIVITY_GRID), choices=list(SENSITIVITY_GRID),
                       help="parameters to vary")
        p.add_argument("--values", action="append", metavar="KEY=V1,V2,...", help="override a parameter's values")
    _common_args(p)
    a = p.parse_args(argv)
    if a.quiet:
        logger.setLevel("WARNING")
    ds = BenchmarkInput(a.dataset, data_dir=a.data_dir)
    kw = dict(seed=a.seed, max_epochs=a.max_epochs, base_config=_parse_config(a.config), nmi=not a.no_nmi,
              isolate=not a.no_isolate, timeout=a.timeout, out_dir=a.out, command=_command(prog, argv),
              table_name=a.name or kind)
    if kind == "ablation":
        table = run_ablation(ds, **kw)
    else:
        grid = {k: SENSITIVITY_GRID[k] for k in a.params}
        for item in a.values or []:
            k, _, vals = item.partition("=")
            grid[k] = [json.loads(v) for v in vals.split(",")]
        table = run_sensitivity(ds, grid=grid, **kw)
    print(_markdown(table.drop(columns=[c for c in table.columns if table[c].isna().all()]), 3))
    return 0 if not table["status"].str.startswith("failed").any() else 1


def main_ablation(argv: Optional[Sequence[str]] = None, prog: str = "biclum ablation") -> int:
    """``biclum ablation [--dataset snareseq] [--out DIR] [--max-epochs N] [--config k=v] ...``"""
    return _grid_main("ablation", argv, prog)


def main_sensitivity(argv: Optional[Sequence[str]] = None, prog: str = "biclum sensitivity") -> int:
    """``biclum sensitivity [--dataset snareseq] [--params tau_cell alpha ...] [--values mnn_k=20,50] ...``"""
    return _grid_main("sensitivity", argv, prog)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        sys.exit(_worker(sys.argv[2]))
    sys.exit(main_benchmark())
