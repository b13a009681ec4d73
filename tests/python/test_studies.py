"""studies/lowdepth_proxy.py: the thinned SNARE-seq subsets it writes are what its docstring says."""
from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp
from conftest import load_module

LOWDEPTH = load_module(Path(__file__).resolve().parents[2] / "studies" / "lowdepth_proxy.py")


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
