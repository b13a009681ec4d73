"""studies/lowdepth_proxy.py: the thinned SNARE-seq subsets it writes are what its docstring says;
studies/linear_floor.py: the variants of the joint PCA it scores."""
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
