"""The benchmark harness: run one method on one dataset (by default in a fresh child process that measures its
time and memory), score it with :func:`biclum.metrics.evaluate`, and collect the rows of methods x datasets."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from .._logging import logger
from ..errors import BiclumInputError
from ..metrics import BATCH_METRIC_NAMES, METRIC_NAMES, evaluate
from .inputs import BenchmarkInput, _as_input
from .measure import _cpu_s, _PeakMemory, _status_kb
from .methods import _RUNNERS, METHODS, PEER_PACKAGES, SCGLUE_EPOCHS, _looks_like_peaks, _method_unavailable, _Skip
from .report import source_commit, write_table

TIME_COLUMNS = ("wall_s", "cpu_s", "peak_rss_mb", "rss_inputs_mb")


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
        from .peers import peer_available, peer_python

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
        src = str(Path(__file__).resolve().parents[2])  # this biclum, also for a peer environment's interpreter
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


def pre_integration(prep: dict, n_comps: int = 50, seed: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """Each modality's own coordinates before integration, for the neighbour-conservation metric (as scglue's
    evaluation: RNA PCA, ATAC LSI). RNA: PCA of the per-gene standardised log-normalised counts (all genes, clip
    10); ATAC peaks: :func:`~biclum.benchmark.baselines.lsi` (the model's :class:`~biclum.preprocessing.PeakLSI`);
    gene-level ATAC or ADT: PCA as for RNA. Cached in ``prep`` per seed."""
    cache = prep.setdefault("pre", {})
    if seed not in cache:
        from .baselines import lsi, own_pca

        other = prep["other"]
        o = lsi(other, n_comps, seed=seed) if prep["modality"] == "atac" and _looks_like_peaks(other) else \
            own_pca(other, n_comps, seed=seed)
        cache[seed] = (own_pca(prep["rna"], n_comps, seed=seed), np.asarray(o, dtype=np.float32))
    return cache[seed]


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


def _row(dataset: str, method: str, res: dict, scores: dict, paired: Optional[bool] = None, **label) -> dict:
    row = {"dataset": dataset, "method": method, **label, "status": res["status"]}
    if paired is not None:
        row["paired"] = "yes" if paired else "no"
    for k in METRIC_NAMES:
        row[k] = scores.get(k, np.nan)
    row.update({k: scores[k] for k in BATCH_METRIC_NAMES if k in scores})  # batches within the modalities
    for k, v in res.get("extra", {}).items():
        row[k] = v
    for k in TIME_COLUMNS:
        row[k] = res.get(k, np.nan)
    return row


def _scglue_config(epochs: Optional[int], checkpoints, dataset: str, seed: int) -> dict:
    cfg = {"max_epochs": epochs}
    if checkpoints is not None:
        budget = "own" if epochs is None else str(epochs)
        cfg["checkpoint_dir"] = str(Path(checkpoints).resolve() / f"{dataset}_seed{seed}_epochs{budget}")
    return cfg


def run_benchmark(datasets: Iterable, methods: Sequence[str] = ("biclum", "pca", "seurat"), *, seed: int = 0,
                  seeds: Optional[Sequence[int]] = None, max_epochs: Optional[int] = None,
                  biclum_config: Optional[dict] = None,
                  scglue_epochs: Optional[int] = SCGLUE_EPOCHS, scglue_checkpoints=None, nmi: bool = True,
                  umap: bool = True, out_dir=None, isolate: bool = True, timeout: Optional[float] = None,
                  command: Optional[str] = None, table_name: str = "benchmark") -> pd.DataFrame:
    """Run every method on every dataset and score them with the same metrics.

    Parameters
    ----------
    datasets
        Shared dataset names (``"snareseq"``, ``"eccite"``, ``"pbmc_small"``, ...) and/or :class:`BenchmarkInput`.
    methods
        Any of ``"biclum"``, ``"pca"``, ``"pca_cosine"``, ``"seurat"``, ``"scglue"`` (ATAC), ``"maxfuse"``
        (protein); a method whose tool is missing, or that does not handle the dataset's modality, gives a
        ``skipped: ...`` row.
    seed, max_epochs, biclum_config
        Passed to :func:`biclum.integrate` (``biclum_config`` = config overrides); ``seed`` also seeds the
        baselines, the metrics' subsampling and the UMAPs.
    seeds
        Several seeds (in place of ``seed``): every method runs once per seed, one row each; the written table
        starts with the mean ± sd over the seeds (:func:`~biclum.benchmark.report.seed_summary`).
    scglue_epochs
        scGLUE's epoch cap for each of its two stages (None = scglue's own, data-size dependent budget: hours on
        SNARE-seq on 2 cores); stated in the table's ``epoch_budget`` column.
    scglue_checkpoints
        A folder where scGLUE keeps each run's training directory (``<dataset>_seed<seed>_epochs<cap or own>``): a
        run stopped after a stage resumes from it when the same command runs again (see
        :func:`biclum.benchmark.peers.scglue_baseline`). None: temporary directories.
    nmi
        Compute NMI (20 Leiden runs per method; 2 passes each, subsampled to 10,000 cells, see
        :func:`biclum.metrics.evaluate`).
    umap, out_dir, table_name
        With ``out_dir``, write ``<table_name>.md`` + ``<table_name>.csv`` there and, with ``umap``, one UMAP figure
        per run (``<table_name>_umap_<dataset>_<method>[_seed<seed>].png``).
    isolate, timeout
        One child process per run (honest time and memory, see the module docstring); ``timeout`` seconds per run.
    command
        The command line recorded in ``benchmark.md``.

    Returns
    -------
    DataFrame, one row per (dataset, seed, method): status, every metric of :data:`biclum.metrics.METRIC_NAMES`,
    method extras (e.g. Seurat's own label transfer ``transfer_rna_to_other_own``), wall_s, cpu_s, peak_rss_mb,
    rss_inputs_mb.
    """
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        source_commit()  # the code that runs, read now (the table is written at the end)
    seeds = [int(seed)] if seeds is None else [int(s) for s in seeds]
    rows = []
    for ds in map(_as_input, datasets):
        prep = ds.load()
        for s in seeds:
            for method in methods:
                figure = (None if out is None or not umap else
                          out / f"{table_name}_umap_{ds.name}_{method}{f'_seed{s}' if len(seeds) > 1 else ''}.png")
                rows.append(_run_one(ds, prep, method, s, max_epochs=max_epochs, biclum_config=biclum_config,
                                     scglue_epochs=scglue_epochs, scglue_checkpoints=scglue_checkpoints, nmi=nmi,
                                     isolate=isolate, timeout=timeout, umap_path=figure))
        ds._prepared = None  # free the data before the next dataset
    table = pd.DataFrame(rows)
    if out is not None:
        write_table(table, out / table_name, title="biclum benchmark", command=command)
    return table


def _run_one(ds, prep: dict, method: str, seed: int, *, max_epochs, biclum_config, scglue_epochs,
             scglue_checkpoints, nmi: bool, isolate: bool, timeout, umap_path: Optional[Path]) -> dict:
    """One (dataset, seed, method) run of :func:`run_benchmark`: its table row (and UMAP figure)."""
    cfg = (biclum_config if method == "biclum" else
           _scglue_config(scglue_epochs, scglue_checkpoints, ds.name, seed) if method == "scglue" else None)
    res = run_method(ds, method, seed=seed, max_epochs=max_epochs, config=cfg, isolate=isolate, timeout=timeout)
    scores = _score(prep, res, nmi, seed)
    logger.info("benchmark: %s / %s / seed %d: %s%s", ds.name, method, seed, res["status"],
                "" if not scores else " " + ", ".join(f"{k}={v:.3f}" for k, v in scores.items()))
    if umap_path is not None and res["rna_emb"] is not None:
        _umap_figure(prep, res, f"{ds.name} / {method} / seed {seed}", umap_path, seed)
    return _row(ds.name, method, res, scores, paired=prep["paired"], seed=seed)


def _umap_figure(prep: dict, res: dict, title: str, path: Path, seed: int) -> None:
    """The joint UMAP of one run (:func:`biclum.plotting.plot_joint_umap`), by modality and cell type."""
    from ..plotting import plot_joint_umap

    plot_joint_umap(res["rna_emb"], res["other_emb"], prep["rna_labels"], prep["other_labels"],
                    other_name="ATAC" if prep["modality"] == "atac" else "ADT", path=str(path), seed=seed,
                    title=title)
