"""studies/lowdepth_proxy.py: the thinned SNARE-seq subsets it writes are what its docstring says;
studies/linear_floor.py: the variants of the joint PCA it scores; studies/foscttm_ceiling.py: its supervised maps
and splits."""
from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp
from conftest import load_module

STUDIES = Path(__file__).resolve().parents[2] / "studies"
LOWDEPTH = load_module(STUDIES / "lowdepth_proxy.py")
LINEAR = load_module(STUDIES / "linear_floor.py")
CEILING = load_module(STUDIES / "foscttm_ceiling.py")


def test_thinned_keeps_a_binomial_share_of_each_count():
    counts = sp.random(300, 40, density=0.3, format="csr", random_state=0)
    counts.data = np.ceil(counts.data * 5).astype(np.float32)
    adata = ad.AnnData(counts)
    same = LOWDEPTH.thinned(adata, 1.0, np.random.default_rng(0))
    assert (same.X != adata.X).nnz == 0
    half = LOWDEPTH.thinned(adata, 0.5, np.random.default_rng(0))
    assert half.shape == adata.shape and half.X.nnz < adata.X.nnz
    assert (half.X.toarray() <= adata.X.toarray()).all()
    assert np.array_equal(half.X.data, np.round(half.X.data))  # still counts
    assert 0.4 < half.X.sum() / adata.X.sum() < 0.6
    assert adata.X.sum() == counts.sum()  # the input is not changed


def test_make_proxy_draws_cells_of_the_types_asked_and_records_its_options(shared_data, monkeypatch):
    monkeypatch.setenv("BICLUM_SHARED_DATA", str(shared_data))
    rna, atac = LOWDEPTH.make_proxy(150, 0.4, 0.5, types=["L6", "Astro"], seed=3)
    assert rna.n_obs == atac.n_obs == 150
    assert list(rna.obs_names) == list(atac.obs_names)
    assert set(rna.obs["cell_type"]) <= {"L6", "Astro"}
    assert rna.uns["lowdepth_proxy"] == {"cells": 150, "rna_keep": 0.4, "atac_keep": 0.5, "types": ["L6", "Astro"],
                                         "seed": 3}
    again, _ = LOWDEPTH.make_proxy(150, 0.4, 0.5, types=["L6", "Astro"], seed=3)
    assert list(again.obs_names) == list(rna.obs_names) and (again.X != rna.X).nnz == 0
    table = LOWDEPTH.describe(rna, atac)
    assert list(table["cells"]) == [150, 150]
    assert (table["median_counts"] < table["median_counts_before"]).all()
    with pytest.raises(SystemExit, match="only 19 SNARE-seq cells"):
        LOWDEPTH.make_proxy(50, 0.4, 0.5, types=["Peri"])


def test_linear_floor_scores_each_rank_with_both_distances():
    """Simulated paired RNA + ATAC: one row per rank and distance, scored by the benchmark's metrics; the
    30-component euclidean row is the results tables' floor."""
    from biclum.benchmark import prepare_input
    from biclum.benchmark.baselines import pca_floor
    from biclum.benchmark.inputs import other_in_gene_space
    from biclum.datasets import simulate
    from biclum.metrics import foscttm_score

    rna, atac, annotation = simulate(300, modality="atac", paired=True, seed=1)
    prep = prepare_input(rna, atac, "atac", annotation)
    rows = LINEAR.score_variants(prep, [5, 30], seed=0)
    assert [(r["n_comps"], r["distance"]) for r in rows] == [(5, "euclidean"), (5, "cosine"), (30, "euclidean"),
                                                            (30, "cosine")]
    assert all(0 <= r["foscttm"] < 0.5 and 0 < r["transfer_rna_to_other"] <= 1 for r in rows)
    floor = foscttm_score(*pca_floor(prep["rna"], other_in_gene_space(prep), seed=0))
    assert rows[2]["foscttm"] == pytest.approx(floor)


def test_foscttm_ceiling_splits_hold_out_the_cells_scored():
    names = [name for name, _, _ in CEILING.splits(200, seed=0)]
    assert names == ["cv5"] * 5 + ["given 1%", "given 5%", "given 10%", "given 20%"]
    for name, tr, te in CEILING.splits(200, seed=0):
        assert not np.intersect1d(tr, te).size and len(tr) + len(te) == 200
        if name == "given 5%":
            assert len(tr) == 10
    folds = np.concatenate([te for name, _, te in CEILING.splits(200, seed=0) if name == "cv5"])
    assert np.array_equal(np.sort(folds), np.arange(200))  # every cell held out once


def test_foscttm_ceiling_maps_recover_a_linear_relation_and_fail_on_noise():
    """Two views of the same 400 cells related by a linear map plus noise: every supervised map scores far below
    random on held-out cells; shuffled pairs (nothing to learn) score about 0.5; the inputs are not changed."""
    rng = np.random.default_rng(0)
    latent = rng.normal(size=(400, 8))
    x = latent @ rng.normal(size=(8, 30)) + 0.3 * rng.normal(size=(400, 30))
    y = latent @ rng.normal(size=(8, 20)) + 0.3 * rng.normal(size=(400, 20))
    x0 = x.copy()
    tr, te = np.arange(300), np.arange(300, 400)
    scores = CEILING.score_split(x, y, tr, te, seed=0)
    assert set(scores) == {"ridge", "ridge both ways", "cca", "mlp", "best"}
    assert all(v < 0.05 for v in scores.values())
    assert scores["best"] == min(scores.values())
    assert np.array_equal(x, x0)
    noise = CEILING.score_split(x, y[rng.permutation(400)], tr, te, seed=0)
    assert noise["ridge"] > 0.4
    few = CEILING.score_split(x, y, np.arange(20), np.arange(20, 400), seed=0)
    assert np.isnan(few["mlp"]) and few["best"] < 0.5  # too few pairs for the MLP
