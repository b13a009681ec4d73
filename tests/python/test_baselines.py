"""biclum.benchmark: baselines (PCA floor, LSI, Seurat via Rscript), peers (scGLUE, MaxFuse) and the runner."""
from __future__ import annotations

import json
import os

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import biclum.benchmark as BM
from biclum.benchmark import baselines as B
from biclum.benchmark import harness, methods
from biclum.benchmark import peers as P
from biclum.config import parse_overrides
from biclum.errors import BiclumInputError
from biclum.preprocessing import StackedOperator, StandardizedOperator, normalize_log1p, sparse_mean_std


def _toy(n=120, n_genes=60, n_shared=40, seed=0):
    """RNA and a gene-space 'other' modality with 3 cell types; the first n_shared genes are shared."""
    rng = np.random.default_rng(seed)
    types = np.repeat(np.arange(3), n // 3)
    prog = rng.gamma(1.0, 1.0, size=(3, n_genes)) * 3
    rna = rng.poisson(prog[types]).astype(np.float32)
    oth = rng.poisson(prog[types] * 0.5).astype(np.float32)
    genes = [f"G{i}" for i in range(n_genes)]
    other_genes = genes[:n_shared] + [f"X{i}" for i in range(n_genes - n_shared)]
    obs = pd.DataFrame({"cell_type": [f"t{t}" for t in types]}, index=[f"c{i}" for i in range(n)])
    a = ad.AnnData(sp.csr_matrix(rna), obs=obs.copy(), var=pd.DataFrame(index=genes))
    b = ad.AnnData(sp.csr_matrix(oth), obs=obs.copy(), var=pd.DataFrame(index=other_genes))
    return a, b


def test_normalize_log1p():
    X = sp.csr_matrix(np.array([[1.0, 3.0, 0.0], [0.0, 0.0, 0.0], [2.0, 2.0, 4.0]], dtype=np.float32))
    out = normalize_log1p(X, 1e4)
    np.testing.assert_allclose(np.expm1(out.toarray()).sum(axis=1), [1e4, 0, 1e4], rtol=1e-5)
    assert X[0, 0] == 1.0  # input untouched


def test_scaled_operator_matches_dense():
    rng = np.random.default_rng(0)
    blocks = [(sp.random(30, 12, density=0.4, random_state=i, format="csr") * 5).astype(np.float32) for i in range(2)]
    op = StackedOperator([StandardizedOperator(X, *sparse_mean_std(X), 1.5) for X in blocks])
    dense = []
    for X in blocks:
        D = X.toarray()
        m, s = D.mean(0), D.std(0, ddof=1)
        s[s == 0] = 1
        D = np.where(D != 0, np.minimum(D, m + 1.5 * s), 0)  # clip non-zeros only
        dense.append((D - m) / s)
    dense = np.vstack(dense)
    M = rng.normal(size=(12, 3))
    U = rng.normal(size=(60, 3))
    np.testing.assert_allclose(op.dot(M), dense @ M, atol=1e-4)  # float32 operator
    np.testing.assert_allclose(op.tdot(U), dense.T @ U, atol=1e-4)


def test_pca_floor_matches_dense_pca_and_is_deterministic():
    rna, oth = _toy()
    before = rna.X.copy()
    r, o = B.pca_floor(rna, oth, n_comps=5, max_value=None)
    assert r.shape == (120, 5) and o.shape == (120, 5) and r.dtype == np.float32
    assert (rna.X != before).nnz == 0
    r2, o2 = B.pca_floor(rna, oth, n_comps=5, max_value=None)
    np.testing.assert_array_equal(r, r2)
    # dense reference: per-modality standardised shared genes, PCA by SVD
    shared = [g for g in rna.var_names if g in set(oth.var_names)]
    Z = []
    for a in (rna, oth):
        D = normalize_log1p(a.X, 1e4)[:, a.var_names.get_indexer(shared)].toarray()
        s = D.std(0, ddof=1)
        s[s == 0] = 1
        Z.append((D - D.mean(0)) / s)
    U, S, Vt = np.linalg.svd(np.vstack(Z), full_matrices=False)
    ref = U[:, :5] * S[:5]
    ours = np.vstack([r, o])
    for c in range(3):  # leading components agree up to sign
        assert abs(np.corrcoef(ref[:, c], ours[:, c])[0, 1]) > 0.999
    # separated types: the floor transfers labels on this easy toy
    from biclum.metrics import label_transfer_accuracy

    assert label_transfer_accuracy(r, rna.obs.cell_type, o, oth.obs.cell_type) > 0.9


def test_pca_floor_errors():
    rna, oth = _toy()
    oth.var_names = [f"Z{i}" for i in range(oth.n_vars)]
    with pytest.raises(BiclumInputError, match="share 0 gene"):
        B.pca_floor(rna, oth)
    rna2, oth2 = _toy()
    oth2.X = -oth2.X
    with pytest.raises(BiclumInputError, match="negative"):
        B.pca_floor(rna2, oth2)


def test_lsi_is_the_models_peak_lsi():
    from biclum.preprocessing import PeakLSI

    rng = np.random.default_rng(0)
    peaks = ad.AnnData(sp.csr_matrix(rng.poisson(0.3, size=(80, 200)).astype(np.float32)))
    emb = B.lsi(peaks, 10)
    assert emb.shape == (80, 10)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1, rtol=1e-4)  # rows of unit length, depth dropped
    np.testing.assert_array_equal(emb, PeakLSI.fit(peaks.X, np.asarray(peaks.var_names), 10, 0)[1])


def test_seurat_skipped_without_rscript(monkeypatch, caplog):
    monkeypatch.setenv("BICLUM_RSCRIPT", "/nonexistent/Rscript")
    ok, why = B.seurat_available()
    assert not ok and "Rscript" in why
    rna, oth = _toy()
    assert B.seurat_cca(rna, oth) is None


def test_scglue_skipped_when_missing():
    if P.scglue_available()[0]:
        pytest.skip("scglue is importable here: the missing-package path cannot be exercised")
    rna, oth = _toy()
    assert P.scglue_baseline(rna, oth, None) is None


def test_maxfuse_skipped_when_missing():
    if P.maxfuse_available()[0]:
        pytest.skip("maxfuse is importable here: the missing-package path cannot be exercised")
    rna, oth = _toy()
    assert P.maxfuse_baseline(rna, oth) is None


@pytest.mark.parametrize("method, modality", [("scglue", "atac"), ("maxfuse", "protein")])
def test_peer_rows_skipped_with_reason(method, modality, monkeypatch):
    """A peer whose package is missing (here and in BICLUM_PEERS_PYTHON) is a 'skipped: <why>' row."""
    if methods._method_unavailable(method) is None:
        pytest.skip(f"{method} is installed here (or in BICLUM_PEERS_PYTHON): its row runs instead")
    rna, oth = _toy()
    ds = BM.BenchmarkInput("toy", rna, oth, modality)
    table = BM.run_benchmark([ds], [method], nmi=False, umap=False, isolate=False)
    status = table.set_index("method").loc[method, "status"]
    assert status.startswith("skipped: ") and method in status and "pip install" in status
    assert np.isnan(table.set_index("method").loc[method, "transfer_rna_to_other"])


def test_peers_refuse_the_other_modality():
    rna, oth = _toy()
    for method, modality in (("scglue", "protein"), ("maxfuse", "atac")):
        prep = BM.prepare_input(rna, oth, modality)
        with pytest.raises(methods._Skip, match=f"{method} baseline here supports"):
            methods._RUNNERS[method](prep, 0, None, None)


@pytest.mark.slow
def test_seurat_cca_runs(shared_data):
    ok, why = B.seurat_available()
    if not ok:
        pytest.skip(why)
    from biclum.prior import gene_activity

    folder = shared_data / "pbmc_small_archr_testdata"
    rna = ad.read_h5ad(folder / "rna.h5ad")
    atac = ad.read_h5ad(folder / "atac_tiles5kb.h5ad")
    ga = gene_activity(atac, shared_data / "annotation" / "hg19_genes.tsv.gz")
    r, o, pred = B.seurat_cca(rna, ga, other_reduction=B.lsi(atac, 30), rna_labels=rna.obs.cell_type.values)
    assert r.shape == (150, 30) and o.shape == (150, 30) and np.isfinite(r).all()
    assert np.mean(pred == atac.obs.cell_type.values) > 0.6


# ------------------------------------------------------------------------------------------------------ runner
def test_prepare_input_aligns_paired_cells():
    rna, oth = _toy()
    oth = oth[::-1].copy()
    prep = BM.prepare_input(rna, oth, "protein")
    assert prep["paired"] and prep["other"].obs_names.equals(rna.obs_names)
    assert (prep["rna_labels"] == prep["other_labels"]).all()
    oth.obs_names = [f"z{i}" for i in range(oth.n_obs)]
    assert not BM.prepare_input(rna, oth, "protein")["paired"]
    with pytest.raises(BiclumInputError, match="paired=True"):
        BM.prepare_input(rna, oth, "protein", paired=True)
    assert BM.prepare_input(rna, oth, "protein", label_key="nope")["rna_labels"] is None


@pytest.mark.slow
def test_run_benchmark_pca_isolated(shared_data, tmp_path):
    """The runner end to end on the unpaired ArchR set: child process, metrics, table files, UMAP figure."""
    ds = BM.BenchmarkInput("pbmc_small", data_dir=str(shared_data))
    table = BM.run_benchmark([ds], ["pca"], nmi=False, umap=False, out_dir=tmp_path, command="pytest")
    row = table.set_index("method").loc["pca"]
    assert row["status"] == "ok"
    assert row["transfer_rna_to_other"] == pytest.approx(0.72, abs=0.05)
    assert np.isnan(row["foscttm"])  # unpaired
    # the child process scores exactly what the floor gives in this process
    prep = ds.load()
    r, o, _ = methods._RUNNERS["pca"](prep, 0, None, None)
    here = harness._score(prep, {"rna_emb": r, "other_emb": o}, nmi=False, seed=0)
    for key in ("neighbor_conservation", "omics_mixing", "transfer_other_to_rna", "asw_celltype", "map"):
        assert row[key] == pytest.approx(here[key], abs=1e-6), key
    assert row["peak_rss_mb"] > row["rss_inputs_mb"] > 50 and row["wall_s"] > 0
    md = (tmp_path / "benchmark.md").read_text()
    assert "pytest" in md and "| pbmc_small | pca | 0 | ok |" in md
    assert (tmp_path / "benchmark.csv").exists()
    assert not list(tmp_path.glob("umap_*.png"))  # umap=False (umap-learn's first call JIT-compiles for ~30 s)


def test_run_benchmark_several_seeds(tmp_path):
    """seeds=[...]: one row per seed and method, each scored as a run with that seed alone; the written table
    starts with the mean ± sd over the seeds."""
    rna, oth = _toy()
    ds = BM.BenchmarkInput("toy", rna, oth, "atac")  # gene activity already
    table = BM.run_benchmark([ds], ["pca"], seeds=[0, 1], nmi=False, umap=False, isolate=False, out_dir=tmp_path,
                             command="pytest")
    assert list(table["seed"]) == [0, 1] and table["status"].eq("ok").all()
    alone = BM.run_benchmark([BM.BenchmarkInput("toy", rna, oth, "atac")], ["pca"], seed=1, nmi=False,
                             umap=False, isolate=False)
    assert table.iloc[1]["neighbor_conservation"] == pytest.approx(alone.iloc[0]["neighbor_conservation"])
    md = (tmp_path / "benchmark.md").read_text()
    mean = f"{table['foscttm'].mean():.3f} ± {table['foscttm'].std():.3f}"
    assert "Mean ± sd over seeds 0, 1" in md and f"| toy | pca | 2/2 | {mean} |" in md and "Per run:" in md


def test_ablation_and_sensitivity_plumbing(monkeypatch, tmp_path):
    """run_ablation / run_sensitivity pass the right overrides to biclum.integrate (stubbed by the floor here)."""
    seen = []

    def fake_biclum(prep, seed, max_epochs, config):
        seen.append(dict(config))
        r, o = B.pca_floor(prep["rna"], prep["other"], n_comps=5)
        return r, o, {"epochs": 0}

    monkeypatch.setitem(methods._RUNNERS, "biclum", fake_biclum)
    monkeypatch.setattr(harness, "_method_unavailable", lambda m: None)
    rna, oth = _toy()
    tab = BM.run_ablation(rna, oth, "protein", isolate=False, nmi=False, out_dir=tmp_path, base_config={"lr": 1})
    assert list(tab["variant"]) == list(BM.ABLATIONS)
    assert seen == [{"lr": 1}, {"lr": 1, "alpha": 0.0}, {"lr": 1, "beta": 0.0},
                    {"lr": 1, "gamma_rna": 0.0, "gamma_other": 0.0}]
    assert tab["foscttm"].notna().all() and tab["status"].eq("ok").all()
    # the fake model is the floor in every row, so every row scores what the floor scores (against each
    # modality's own PCA for neighbour conservation)
    prep = BM.prepare_input(rna, oth, "protein")
    r, o = B.pca_floor(rna, oth, n_comps=5)
    ref = harness._score(prep, {"rna_emb": r, "other_emb": o}, nmi=False, seed=0)
    for key in ("neighbor_conservation", "foscttm", "transfer_rna_to_other"):
        np.testing.assert_allclose(tab[key], ref[key], atol=1e-9, err_msg=key)
    assert (tmp_path / "ablation.md").exists() and (tmp_path / "ablation.png").exists()
    seen.clear()
    tab = BM.run_sensitivity(rna, oth, "protein", grid={"tau_cell": [0.1, 0.5], "mnn_k": [10]}, isolate=False,
                             nmi=False, out_dir=tmp_path)
    assert seen == [{"tau_cell": 0.1}, {"tau_cell": 0.5}, {"mnn_k": 10}]
    assert list(tab["parameter"]) == ["tau_cell", "tau_cell", "mnn_k"] and list(tab["value"]) == [0.1, 0.5, 10]
    assert (tmp_path / "sensitivity.png").exists()
    assert json.loads(tab["overrides"].iloc[2]) == {"mnn_k": 10}


def test_cli_config_parsing():
    assert parse_overrides(["mnn_k=50", "tau_cell=0.2", "device=cpu", "hidden_dims=[64, 64]", "x=true",
                            "hidden=256,256"], "--config") == {
        "mnn_k": 50, "tau_cell": 0.2, "device": "cpu", "hidden_dims": [64, 64], "x": True, "hidden": "256,256"}
    with pytest.raises(BiclumInputError, match="--config 'mnn_k': use KEY=VALUE"):
        parse_overrides(["mnn_k"], "--config")


def _peer_row(method, dataset, shared_data, **kw):
    """The runner's row for one peer on one shared dataset (skipped with the reason when the peer is missing)."""
    why = methods._method_unavailable(method)
    if why:
        pytest.skip(why)
    table = BM.run_benchmark([BM.BenchmarkInput(dataset, data_dir=str(shared_data))], [method], nmi=False,
                             umap=False, **kw)
    row = table.iloc[0]
    assert row["status"] == "ok", row["status"]
    return row


@pytest.mark.slow
def test_maxfuse_on_eccite(shared_data):
    """MaxFuse through the runner, with biclum's antibody -> gene mapping (../shared/ANCHORS.md: FOSCTTM 0.293)."""
    row = _peer_row("maxfuse", "eccite", shared_data)
    assert row["foscttm"] < 0.35  # five runs here: 0.288-0.304 (MaxFuse is not bitwise reproducible)
    assert row["transfer_rna_to_other"] > 0.6


@pytest.mark.slow
def test_scglue_two_epochs_on_archr_pbmc(shared_data):
    """scGLUE runs through the runner on the unpaired ArchR PBMC (2 epochs per stage; too few to score well)."""
    row = _peer_row("scglue", "pbmc_small", shared_data, scglue_epochs=2)
    assert row["epoch_budget"] == "at most 2 pretraining + 2 fine-tuning epochs"
    assert row["epochs"] == 4 and row["epoch_stages"] == "2 pretraining + 2 fine-tuning"  # read from its logs
    assert np.isfinite(row["transfer_rna_to_other"]) and row["wall_s"] > 0


@pytest.mark.slow
def test_scglue_resumes_from_its_checkpoints(shared_data, tmp_path):
    """With --scglue-checkpoints a second run reuses the fine-tuned model, and a run stopped after pretraining
    fine-tunes from the saved pretrained model instead of starting again."""
    kw = {"scglue_epochs": 2, "scglue_checkpoints": tmp_path}
    first = _peer_row("scglue", "pbmc_small", shared_data, **kw)
    runs = [d for d in (tmp_path / "pbmc_small_seed0_epochs2").iterdir() if (d / "fine-tune").is_dir()]
    finetuned = runs[-1] / "fine-tune" / "fine-tune.dill"
    assert (runs[-1] / "pretrain" / "pretrain.dill").exists() and finetuned.exists()
    again = _peer_row("scglue", "pbmc_small", shared_data, **kw)
    assert again["transfer_rna_to_other"] == first["transfer_rna_to_other"]
    assert again["wall_s"] < first["wall_s"]
    finetuned.unlink()  # as if stopped during fine-tuning
    resumed = _peer_row("scglue", "pbmc_small", shared_data, **kw)
    assert finetuned.exists() and np.isfinite(resumed["transfer_rna_to_other"])


RESUME_CHECK = """
import sys
import numpy as np
import torch
torch.use_deterministic_algorithms(True)  # scGLUE on CPU is otherwise not bitwise reproducible (torch's kernels)
from ignite.engine import Events
from biclum.benchmark import prepare_input, scglue_training as T
from biclum.benchmark.peers import scglue_baseline
from biclum.datasets import load_shared

prep = prepare_input(*load_shared("pbmc_small"))
run = lambda d: scglue_baseline(prep["rna"], prep["other"], prep["annotation"], max_epochs=4, checkpoint_dir=d)
whole = run(sys.argv[1] + "/whole")

class Stop(Exception):
    pass

attach = T._ResumePoint.attach
def stopping_attach(self, net, trainer, train_engine, **kwargs):
    attach(self, net, trainer, train_engine, **kwargs)
    @train_engine.on(Events.EPOCH_COMPLETED(once=2))
    def _(engine):  # after the resume point of epoch 2 is written
        raise Stop()
T._ResumePoint.attach = stopping_attach
try:
    run(sys.argv[1] + "/stopped")
    raise SystemExit("not stopped")
except Stop:
    pass
stage = sys.argv[1] + "/stopped/balanced/pretrain"
before = torch.load(stage + "/resume.pt", weights_only=False)["seconds"]  # the first piece's training time
T._ResumePoint.attach = attach
again = run(sys.argv[1] + "/stopped")
print("seconds", before > 0 and T.train_seconds(stage) > before)
print("same", all(np.array_equal(a, b) for a, b in zip(whole, again)))
"""


@pytest.mark.slow
def test_scglue_resumes_after_a_stop_within_a_stage(shared_data, tmp_path):
    """A scGLUE run stopped after epoch 2 of pretraining and started again gives the embeddings of a run that was
    never stopped: the resume point carries the network, optimisers, schedulers, early stopping and random states.
    Under torch's deterministic algorithms: without them two unstopped runs of scGLUE already differ (by 0.003 after
    2 + 2 epochs here)."""
    import subprocess
    import sys

    why = methods._method_unavailable("scglue")
    if why:
        pytest.skip(why)
    python = P.peer_python("scglue") or sys.executable
    here = os.path.dirname(os.path.dirname(BM.__file__))  # this biclum, for the peers' interpreter too
    env = {**os.environ, "BICLUM_SHARED_DATA": str(shared_data), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([os.path.dirname(here), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([python, "-c", RESUME_CHECK, str(tmp_path)], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "resuming pretrain after epoch 2" in proc.stderr
    assert proc.stdout.strip().splitlines()[-2:] == ["seconds True", "same True"]  # both pieces' time counted


def test_pca_cosine_is_the_floor_at_10_components_with_unit_rows(monkeypatch):
    """pca_cosine: pca_floor's 10-component scores, each row divided by its norm; the benchmark runs it by name."""
    rna, oth = _toy()
    r, o = B.pca_cosine(rna, oth, seed=0)
    fr, fo = B.pca_floor(rna, oth, 10, seed=0)
    assert r.shape == (rna.n_obs, 10) and np.allclose(np.linalg.norm(r, axis=1), 1, atol=1e-5)
    assert np.allclose(r, fr / np.linalg.norm(fr, axis=1, keepdims=True), atol=1e-5)
    assert np.allclose(o, fo / np.linalg.norm(fo, axis=1, keepdims=True), atol=1e-5)
    assert np.array_equal(B.unit_rows(np.zeros((2, 3))), np.zeros((2, 3)))
    monkeypatch.setattr(methods, "other_in_gene_space", lambda prep: prep["other"])  # the toy is in gene space
    prep = BM.prepare_input(rna, oth, "protein")
    assert np.allclose(methods._RUNNERS["pca_cosine"](prep, 0, None, None)[0], r)
    assert "pca_cosine" in methods.METHODS


def test_scglue_resume_point_keeps_and_drops_best_checkpoints(tmp_path):
    """The files of scGLUE's best checkpoints are read from the Checkpoint state under ignite's key ("_saved";
    "saved" in older ignite), and a state listing files that are gone (a resume point written before the files
    were kept) loses those entries, so that ignite does not fail removing them later (logged)."""
    from biclum.benchmark import scglue_training as T

    state = {"_saved": [(-0.15, "checkpoint_157.pt"), (-0.149, "checkpoint_176.pt")]}
    assert T._kept_checkpoints(state) == state["_saved"]
    assert T._kept_checkpoints({"saved": state["_saved"]}) == state["_saved"]
    assert T._kept_checkpoints(None) == []
    (tmp_path / "checkpoint_176.pt").write_bytes(b"x")
    assert T._without_missing(state, tmp_path) == {"_saved": [(-0.149, "checkpoint_176.pt")]}
    assert len(state["_saved"]) == 2  # not changed in place


CHECKPOINT_KEY_CHECK = """
import sys
from ignite.handlers import Checkpoint, DiskSaver
from biclum.benchmark import scglue_training as T
ck = Checkpoint({}, DiskSaver(sys.argv[1], require_empty=False), n_saved=3)
ck.load_state_dict({"_saved": [(-0.15, "checkpoint_157.pt")]})
print(T._kept_checkpoints(ck.state_dict()))
"""


def test_scglue_checkpoint_files_found_with_the_installed_ignite(tmp_path):
    """The installed ignite's Checkpoint state names the files where _ResumePoint looks for them (a wrong key kept
    none, and a resumed run failed on removing a file scGLUE had deleted)."""
    import subprocess
    import sys

    python = P.peer_python("ignite")
    if python is None:
        pytest.skip("BICLUM_PEERS_PYTHON with pytorch-ignite (make peers) is not set")
    here = os.path.dirname(os.path.dirname(BM.__file__))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.path.dirname(here), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([python, "-c", CHECKPOINT_KEY_CHECK, str(tmp_path)], env=env, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "[(-0.15, 'checkpoint_157.pt')]"


@pytest.mark.parametrize("command, option", [("benchmark", "--scglue-epochs"), ("ablation", "--dataset")])
def test_cli_delegates_leading_options(command, option, capsys):
    """`biclum benchmark --datasets ...`: options right after the subcommand reach its own parser."""
    from biclum.cli import main

    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0 and option in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        main([command, "--no-such-option"])
    assert exc.value.code == 2 and "unrecognized arguments: --no-such-option" in capsys.readouterr().err
