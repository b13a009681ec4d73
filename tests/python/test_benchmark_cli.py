"""`biclum benchmark` from the command line: help, no arguments, a user's own files, batch keys."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from biclum.cli import main
from biclum.datasets import simulate


def test_help_lists_the_user_file_options(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["benchmark", "--help"])
    out = capsys.readouterr().out
    assert exc.value.code == 0
    for option in ("--datasets", "--rna", "--other", "--modality", "--annotation", "--label-key", "--batch-key",
                   "--rna-batch-key", "--other-batch-key", "--methods"):
        assert option in out, option


def test_no_arguments_is_a_usage_error_without_traceback():
    res = subprocess.run([sys.executable, "-m", "biclum.cli", "benchmark"], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 2
    assert res.stderr.startswith("usage: biclum benchmark")
    assert "give the data: --datasets NAME" in res.stderr and "--rna RNA.h5ad" in res.stderr
    assert "Traceback" not in res.stderr


def test_own_files_need_rna_other_and_modality(capsys, tmp_path):
    with pytest.raises(SystemExit) as exc:
        main(["benchmark", "--rna", str(tmp_path / "r.h5ad"), "--methods", "pca"])
    assert exc.value.code == 2 and "--rna FILE, --other FILE and --modality" in capsys.readouterr().err


@pytest.mark.slow
def test_user_files_unpaired_archr_pca(shared_data, tmp_path, capsys):
    """The ArchR PBMC files as a user's own: unpaired, so no FOSCTTM; label transfer is the score (floor 0.72)."""
    folder = shared_data / "pbmc_small_archr_testdata"
    rc = main(["benchmark", "--rna", str(folder / "rna.h5ad"), "--other", str(folder / "atac_tiles5kb.h5ad"),
               "--modality", "atac", "--annotation", str(shared_data / "annotation" / "hg19_genes.tsv.gz"),
               "--label-key", "cell_type", "--methods", "pca", "--no-nmi", "--no-umap", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == 0
    row = pd.read_csv(tmp_path / "benchmark.csv").iloc[0]
    assert (row["dataset"], row["method"], row["status"], row["paired"]) == ("pbmc_small_archr_testdata", "pca", "ok", "no")
    assert np.isnan(row["foscttm"])
    assert row["transfer_rna_to_other"] == pytest.approx(0.72, abs=0.05)
    md = (tmp_path / "benchmark.md").read_text()
    assert "Unpaired data (pbmc_small_archr_testdata)" in md and "label transfer" in md
    assert "Unpaired data (pbmc_small_archr_testdata)" in out


def test_batch_keys_reach_the_metrics_and_biclum(tmp_path, capsys):
    """A small simulated pair with two batches per modality, a batch key per modality: both methods run and the
    within-modality batch metrics are in the table (that biclum gets the keys: the next test)."""
    rna, adt, _ = simulate(200, modality="protein", n_genes=200, paired=True, n_batches=2, seed=3)
    rna.obs["donor"] = rna.obs["batch"]
    rna.write_h5ad(tmp_path / "rna.h5ad")
    adt.write_h5ad(tmp_path / "adt.h5ad")
    small = ["n_top_genes=200", "n_pcs=10", "n_metacells=16", "batch_size=64", "hidden_dims=32,32", "latent_dim=8",
             "n_shared_pcs=8", "feature_batch_size=128", "num_threads=1"]
    argv = ["benchmark", "--rna", str(tmp_path / "rna.h5ad"), "--other", str(tmp_path / "adt.h5ad"), "--modality",
            "protein", "--rna-batch-key", "donor", "--other-batch-key", "batch", "--methods", "pca", "biclum",
            "--max-epochs", "1", "--no-nmi", "--no-umap", "--no-isolate", "--out", str(tmp_path / "out"),
            *[x for kv in small for x in ("--config", kv)]]
    assert main(argv) == 0
    table = pd.read_csv(tmp_path / "out" / "benchmark.csv").set_index("method")
    assert list(table["status"]) == ["ok", "ok"] and (table["paired"] == "yes").all()
    for col in ("batch_asw_rna", "ilisi_rna", "batch_asw_other", "ilisi_other", "foscttm"):
        assert table[col].notna().all(), col
    capsys.readouterr()


def test_batch_keys_go_to_biclums_config():
    from biclum.benchmark.cli import _benchmark_parser, _biclum_config

    p = _benchmark_parser("biclum benchmark")
    a = p.parse_args(["--datasets", "x", "--batch-key", "b", "--other-batch-key", "d", "--config", "mnn_k=5"])
    assert _biclum_config(a) == {"rna_batch_key": "b", "other_batch_key": "d", "mnn_k": 5}
    assert _biclum_config(p.parse_args(["--datasets", "x"])) == {}


def test_results_files_name_the_commit_a_run_started_on(monkeypatch):
    """A results file written at the end of a long run names the code that ran: the commit is read once, at the
    start, even if commits land meanwhile; an installed copy outside a checkout gives None, not another repo's."""
    import biclum.benchmark.report as report

    calls = []

    def fake_run(cmd, cwd=None, **kwargs):
        calls.append(cmd)
        out = {"ls-files": "biclum/__init__.py\n", "rev-parse": f"c{len(calls)}\n", "status": ""}[cmd[1]]
        return subprocess.CompletedProcess(cmd, 0, stdout=out, stderr="")

    report.source_commit.cache_clear()
    monkeypatch.setattr(report.subprocess, "run", fake_run)
    first = report.source_commit()
    assert first == "c2"
    assert report.run_stamp("benchmarks/x.py", ["--seeds", "0"], 1, [0]).splitlines()[1].startswith("Commit: c2;")
    assert report.run_stamp("studies/y.py", ["--seeds", "0"], 1, [0]).startswith("Command: `python studies/y.py --seeds 0`")
    assert len(calls) == 3  # read once

    report.source_commit.cache_clear()
    monkeypatch.setattr(report.subprocess, "run", lambda cmd, **kw: subprocess.CompletedProcess(
        cmd, 1 if cmd[1] == "ls-files" else 0, stdout="abc\n", stderr=""))
    assert report.source_commit() is None
    report.source_commit.cache_clear()
