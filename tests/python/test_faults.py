"""Faults: a killed save, a full disk, a refused write or a damaged file never cost a model or a clear message
(issue 31). Writers killed with SIGKILL are forked children of this process (fork: no second import of torch),
killed after a random delay within one write; the directory must then load as the old or the new model."""
from __future__ import annotations

import errno
import hashlib
import logging
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import time
from argparse import Namespace
from pathlib import Path
from unittest import mock

import numpy as np
import pandas as pd
import pytest

import biclum
from biclum.atomic import readable_dir
from biclum.datasets import simulate
from biclum.errors import BiclumInputError, BiclumIOError, BiclumModelError
from biclum.lock import LOCK_FILE, OutputLock
from biclum.state import MODEL_FILES

TINY = dict(n_top_genes=100, n_pcs=8, mnn_k=10, n_metacells=12, batch_size=64, hidden_dims=(16,), latent_dim=4,
            n_shared_pcs=6, feature_batch_size=64, num_threads=1)
FIXTURES = Path(__file__).parent / "fixtures"
KILLS = 20
CLEAN_ENV = dict(os.environ)
FORK = multiprocessing.get_context("fork") if "fork" in multiprocessing.get_all_start_methods() else None
needs_fork = pytest.mark.skipif(FORK is None or not hasattr(signal, "SIGKILL"), reason="needs fork and SIGKILL")


def _sim(seed: int):
    return simulate(n_cells=150, modality="atac", n_genes=120, n_distal_peaks=60, seed=seed)


@pytest.fixture(scope="module")
def results():
    """Two tiny fits on different data (a mix of their files would not load): IntegrationResults A and B."""
    sims = [_sim(seed) for seed in (1, 2)]
    return [biclum.integrate(rna, atac, "atac", ann, seed=seed, max_epochs=2, progress=False, **TINY)
            for seed, (rna, atac, ann) in zip((1, 2), sims)]


def fingerprint(model) -> str:
    """The weights and the fitted arrays of a model, hashed."""
    h = hashlib.sha256()
    for value in model.state.module.state_dict().values():
        h.update(value.cpu().numpy().tobytes())
    for m in ("rna", "other"):
        h.update(np.ascontiguousarray(model.state.setup.sketches[m]).tobytes())
        h.update(np.ascontiguousarray(model.state.setup.preprocessors[m].components).tobytes())
    return h.hexdigest()


def _run_and_exit(fn, *args):
    """Child body: run, then leave without Python's exit handlers (the parent's pytest state is not ours)."""
    try:
        fn(*args)
    finally:
        os._exit(0)


def _kill_after(fn, args, delay: float) -> bool:
    """Fork ``fn(*args)`` and SIGKILL it after ``delay`` seconds; whether it was still running then."""
    child = FORK.Process(target=_run_and_exit, args=(fn, *args))
    child.start()
    time.sleep(delay)
    os.kill(child.pid, signal.SIGKILL)
    child.join()
    return child.exitcode == -signal.SIGKILL


def _span(fn, args, runs: int = 3) -> float:
    """Seconds a forked child takes to run ``fn(*args)`` to its end (start included; the fastest of ``runs``)."""
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        child = FORK.Process(target=_run_and_exit, args=(fn, *args))
        child.start()
        child.join()
        times.append(time.perf_counter() - t)
    return min(times)


def _save(model, path):
    model.save(path, overwrite=True)


@needs_fork
def test_save_killed_at_random_moments_leaves_old_or_new(results, tmp_path):
    models = [r.model for r in results]
    prints = [fingerprint(m) for m in models]
    path = str(tmp_path / "model")
    models[0].save(path)
    span = _span(_save, (models[1], path))  # the child wrote model B whole
    rng = np.random.default_rng(31)
    current = 1
    killed = 0
    for i in range(KILLS):
        target = 1 - current
        killed += _kill_after(_save, (models[target], path), rng.uniform(0, span))
        loaded = fingerprint(biclum.BiCLUM.load(path))
        assert loaded in (prints[current], prints[target]), f"kill {i}: neither the old nor the new model"
        current = prints.index(loaded)
    print(f"\nsave: {KILLS} kills within {span:.3f} s, {killed} while the child was running")
    assert killed >= KILLS // 4
    models[current].save(path, overwrite=True)  # the next save removes what the killed ones left
    assert sorted(os.listdir(tmp_path)) == ["model"]


def _kill_at_step(model, path, step):
    """Child: save, killed at ``step`` of the directory swap (0: before rename 1, 1: between renames 1 and 2,
    2: after rename 2, 3: while removing the old copy)."""
    import biclum.atomic as atomic

    calls = {"rename": 0}
    real_rename, real_remove = os.rename, atomic._remove

    def rename(src, dst):
        if calls["rename"] == step:
            os.kill(os.getpid(), signal.SIGKILL)
        real_rename(src, dst)
        calls["rename"] += 1
        if step == 2 and calls["rename"] == 2:
            os.kill(os.getpid(), signal.SIGKILL)

    def remove(p):
        if step == 3 and p.endswith(".biclum-old"):
            os.unlink(os.path.join(p, "model.pt"))  # half removed
            os.kill(os.getpid(), signal.SIGKILL)
        real_remove(p)

    with mock.patch.object(atomic.os, "rename", rename), mock.patch.object(atomic, "_remove", remove):
        model.save(path, overwrite=True)


@needs_fork
@pytest.mark.parametrize("step, expect", [(0, "old"), (1, "old"), (2, "new"), (3, "new")])
def test_save_killed_at_each_step_of_the_swap(results, tmp_path, step, expect):
    old, new = results[0].model, results[1].model
    path = str(tmp_path / "model")
    old.save(path)
    child = FORK.Process(target=_run_and_exit, args=(_kill_at_step, new, path, step))
    child.start()
    child.join()
    assert child.exitcode == -signal.SIGKILL
    assert os.path.isdir(path) == (step != 1)  # between the renames the directory is missing ...
    assert fingerprint(biclum.BiCLUM.load(path)) == fingerprint({"old": old, "new": new}[expect])  # ... yet loads
    old.save(path, overwrite=True)  # and the next save recovers
    assert fingerprint(biclum.BiCLUM.load(path)) == fingerprint(old)
    assert sorted(os.listdir(tmp_path)) == ["model"]


FIT_ARGS = Namespace(no_umap=True, label_key="cell_type", modality="atac", seed=0)


def _write_outputs(res, out):
    from biclum.cli import write_fit_outputs

    write_fit_outputs(res, out, FIT_ARGS)


def _output_versions(out: Path, results, prints) -> set:
    """Which result (0 or 1) each output file of ``biclum fit`` holds; fails on a file that is neither."""
    import anndata as ad
    import matplotlib.image

    found = {}
    for name, side in (("rna.h5ad", "rna"), ("other.h5ad", "other")):
        emb = ad.read_h5ad(out / name).obsm["X_biclum"]
        found[name] = [i for i, r in enumerate(results) if np.array_equal(emb, getattr(r, side).obsm["X_biclum"])]
    found["model"] = [prints.index(fingerprint(biclum.BiCLUM.load(str(out / "model"))))]
    history = pd.read_csv(out / "loss_history.csv")
    found["loss_history.csv"] = [i for i, r in enumerate(results)
                                 if np.allclose(history.values, pd.DataFrame(r.history).values)]
    assert matplotlib.image.imread(out / "loss.png").ndim == 3  # a whole PNG (old or new: not told apart)
    for name, which in found.items():
        assert len(which) == 1, f"{name} is neither the old nor the new output"
    return {which[0] for which in found.values()}


@needs_fork
def test_fit_output_writing_killed_at_random_moments(results, tmp_path):
    prints = [fingerprint(r.model) for r in results]
    out = tmp_path / "out"
    _write_outputs(results[0], out)
    span = _span(_write_outputs, (results[1], out), runs=1)
    assert _output_versions(out, results, prints) == {1}
    rng = np.random.default_rng(131)
    killed = mixed = 0
    for i in range(KILLS):
        # random moments, denser early: the small files come first, the loss figure (slow to draw) last
        killed += _kill_after(_write_outputs, (results[i % 2], out), span * rng.uniform() ** 2)
        mixed += len(_output_versions(out, results, prints)) > 1  # files of both runs: each one whole
    print(f"\nfit outputs: {KILLS} kills within {span:.3f} s, {killed} while the child was running, "
          f"{mixed} left files of both results (each file whole)")
    assert killed >= KILLS // 4


# ------------------------------------------------------------------ damaged files
def _damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncate":
        path.write_bytes(data[: len(data) // 2])
    else:  # alter one byte in the middle (JSON: a digit, so the file stays valid JSON)
        pos = len(data) // 2
        if path.suffix == ".json":
            pos = next(i for i in range(pos, len(data)) if chr(data[i]).isdigit())
            path.write_bytes(data[:pos] + (b"1" if data[pos:pos + 1] != b"1" else b"2") + data[pos + 1:])
        else:
            path.write_bytes(data[:pos] + bytes([data[pos] ^ 0xFF]) + data[pos + 1:])


@pytest.mark.parametrize("how", ["truncate", "alter"])
@pytest.mark.parametrize("name", MODEL_FILES)
def test_a_damaged_file_is_named(results, tmp_path, name, how):
    path = tmp_path / "model"
    results[0].model.save(str(path))
    _damage(path / name, how)
    with pytest.raises(BiclumModelError) as err:
        biclum.BiCLUM.load(str(path))
    message = str(err.value)
    assert repr(str(path / name)) in message and "is damaged" in message and "save the model again" in message


@pytest.mark.parametrize("name", MODEL_FILES)
def test_a_damaged_file_of_a_model_saved_before_checksums_is_named(tmp_path, name):
    path = tmp_path / "model"
    shutil.copytree(FIXTURES / "model_c2a28a7", path)
    _damage(path / name, "truncate")
    with pytest.raises(BiclumModelError, match=f"{name}' is damaged"):
        biclum.BiCLUM.load(str(path))


def test_a_missing_file_is_named(results, tmp_path):
    path = tmp_path / "model"
    results[0].model.save(str(path))
    (path / "arrays.npz").unlink()
    with pytest.raises(BiclumModelError, match="arrays.npz' is damaged: the file is missing"):
        biclum.BiCLUM.load(str(path))


def test_model_saved_before_checksums_loads():
    import anndata as ad

    q = np.load(FIXTURES / "query_rna.npz")
    query = ad.AnnData(q["counts"].astype(np.float32), obs=pd.DataFrame(index=q["cells"]),
                       var=pd.DataFrame(index=q["genes"]))
    model = biclum.BiCLUM.load(str(FIXTURES / "model_c2a28a7"))
    assert model.modality == "atac" and len(model.history) == 2
    np.testing.assert_allclose(model.transform(query, "rna"), q["embedding"], atol=1e-5)


def test_save_refuses_a_directory_with_other_files(results, tmp_path, monkeypatch):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(BiclumInputError, match="holds other files than a saved model"):
        results[0].model.save(str(tmp_path), overwrite=True)
    assert (tmp_path / "notes.txt").read_text() == "mine"
    (tmp_path / "empty").mkdir()
    monkeypatch.chdir(tmp_path / "empty")
    with pytest.raises(BiclumInputError, match="is the working directory"):
        results[0].model.save(".")


# ------------------------------------------------------------------ disk full, permission denied
FAULTS = [OSError(errno.ENOSPC, "No space left on device"), PermissionError(errno.EACCES, "Permission denied")]


@pytest.mark.parametrize("fault", FAULTS, ids=["ENOSPC", "EACCES"])
def test_save_fault_keeps_the_old_model(results, tmp_path, fault):
    path = str(tmp_path / "model")
    results[0].model.save(path)
    before = fingerprint(biclum.BiCLUM.load(path))
    with mock.patch("biclum.atomic.write_file", side_effect=fault), pytest.raises(BiclumIOError) as err:
        results[1].model.save(path, overwrite=True)
    assert repr(os.path.abspath(path)) in str(err.value) and "Fix:" in str(err.value)
    assert ("disk is full" if fault.errno == errno.ENOSPC else "permission denied") in str(err.value)
    assert fingerprint(biclum.BiCLUM.load(path)) == before
    assert sorted(os.listdir(tmp_path)) == ["model"]  # no temporary directory left


def test_fsync_fault_keeps_every_output(results, tmp_path):
    out = tmp_path / "out"
    _write_outputs(results[0], out)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    with mock.patch("os.fsync", side_effect=OSError(errno.ENOSPC, "No space left on device")), \
            pytest.raises(BiclumIOError, match="rna.h5ad'.*disk is full"):
        _write_outputs(results[1], out)
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    assert sorted(p.name for p in out.iterdir()) == sorted([*before, "model"])


@pytest.mark.parametrize("fault", FAULTS, ids=["ENOSPC", "EACCES"])
def test_h5ad_and_checkpoint_faults(results, tmp_path, fault):
    import torch

    out = tmp_path / "out"
    _write_outputs(results[0], out)
    before = (out / "rna.h5ad").read_bytes()
    with mock.patch("anndata.AnnData.write_h5ad", side_effect=fault), pytest.raises(BiclumIOError, match="rna.h5ad"):
        _write_outputs(results[1], out)
    assert (out / "rna.h5ad").read_bytes() == before
    ckpt = tmp_path / "ckpt"
    rna, atac, ann = _sim(1)
    biclum.BiCLUM(rna, atac, "atac", ann, **TINY).fit(1, progress=False, checkpoint_dir=str(ckpt))
    saved = (ckpt / "checkpoint.pt").read_bytes()
    with mock.patch("biclum.atomic.write_file", side_effect=fault), \
            pytest.raises(BiclumIOError, match="checkpoint.pt.*resume from it"):
        biclum.BiCLUM(rna, atac, "atac", ann, **TINY).fit(2, progress=False, checkpoint_dir=str(ckpt))
    assert (ckpt / "checkpoint.pt").read_bytes() == saved
    assert torch.load(ckpt / "checkpoint.pt", weights_only=True)["module"]


CLI_FIT = ["fit", "--demo", "--demo-cells", "150", "--max-epochs", "1", "--quiet", "--no-umap", "--set",
           "n_top_genes=100", "n_pcs=8", "mnn_k=10", "n_metacells=12", "hidden_dims=16", "latent_dim=4",
           "n_shared_pcs=6", "batch_size=64", "feature_batch_size=64", "num_threads=1"]


def test_cli_checks_the_model_directory_before_training(tmp_path, capsys):
    from biclum.cli import main

    (tmp_path / "out" / "model").mkdir(parents=True)
    (tmp_path / "out" / "model" / "notes.txt").write_text("mine")
    t = time.perf_counter()
    assert main([*CLI_FIT, "--out", str(tmp_path / "out")]) == 2
    assert time.perf_counter() - t < 5 and "holds other files than a saved model" in capsys.readouterr().err


def test_cli_exits_2_on_a_full_disk(tmp_path, capsys):
    from biclum.cli import main

    with mock.patch("biclum.atomic.write_file", side_effect=OSError(errno.ENOSPC, "No space left on device")):
        rc = main([*CLI_FIT, "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2 and "disk is full" in err and "Traceback" not in err
    assert not (tmp_path / "out" / LOCK_FILE).exists()  # the lock was released


# ------------------------------------------------------------------ one run per --out
def _lock_holder(out: Path) -> subprocess.Popen:
    src = str(Path(__file__).resolve().parents[2] / "python")
    env = {**CLEAN_ENV, "PYTHONPATH": os.pathsep.join(filter(None, [src, CLEAN_ENV.get("PYTHONPATH")]))}
    code = ("import sys, time; from biclum.lock import OutputLock; l = OutputLock(sys.argv[1]); l.acquire(); "
            "print('locked', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(out)], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_second_run_on_one_out_refuses_at_once_and_a_stale_lock_is_taken_over(tmp_path, capsys):
    from biclum.cli import main

    out = tmp_path / "out"
    out.mkdir()
    holder = _lock_holder(out)
    try:
        t = time.perf_counter()
        rc = main([*CLI_FIT, "--out", str(out)])
        seconds = time.perf_counter() - t
    finally:
        holder.kill()  # SIGKILL: the lock file stays, the lock goes
        holder.wait()
    err = capsys.readouterr().err
    print(f"\nsecond run refused in {seconds:.3f} s")
    assert rc == 2 and seconds < 1.0, (rc, seconds)
    assert f"in use by another run of biclum fit (process {holder.pid}" in err and "another --out" in err
    assert (out / LOCK_FILE).exists()
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    biclum.logger.addHandler(handler)
    try:
        with OutputLock(out):
            assert (out / LOCK_FILE).exists()
    finally:
        biclum.logger.removeHandler(handler)
    assert any(f"process {holder.pid}" in r.getMessage() and "no longer running" in r.getMessage()
               for r in records)
    assert not (out / LOCK_FILE).exists()


def test_readable_dir_prefers_the_directory(tmp_path):
    (tmp_path / ".m.biclum-old").mkdir()
    assert readable_dir(tmp_path / "m") == str(tmp_path / ".m.biclum-old")
    (tmp_path / "m").mkdir()
    assert readable_dir(tmp_path / "m") == str(tmp_path / "m")
