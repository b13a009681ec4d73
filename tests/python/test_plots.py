"""biclum.plotting and the benchmark's figures: the content of each figure (panels, titles, points), not only that
one was returned."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from biclum.benchmark import grid as BM  # noqa: E402
from biclum import plotting as P  # noqa: E402


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def test_plot_loss_one_panel_per_term():
    history = [{"epoch": e, "total": 10.0 - e, "recon_rna": 1.0, "recon_other": 2.0, "cell": 3.0 - e / 2,
                "feature": 4.0} for e in range(4)]
    fig = P.plot_loss(history)
    assert [ax.get_title() for ax in fig.axes] == list(P.LOSS_TERMS)
    for ax, term in zip(fig.axes, P.LOSS_TERMS):
        (line,) = ax.get_lines()
        np.testing.assert_array_equal(line.get_xdata(), [1, 2, 3, 4])
        np.testing.assert_array_equal(line.get_ydata(), [h[term] for h in history])


def test_plot_joint_umap_points_and_legends():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(30, 4)), rng.normal(size=(20, 4))
    coords = rng.normal(size=(50, 2))
    fig, out = P.plot_joint_umap(a, b, ["x"] * 15 + ["y"] * 15, ["x"] * 20, other_name="ATAC", coords=coords)
    assert out is coords
    mod, ct = fig.axes[:2]
    assert (mod.get_title(), ct.get_title()) == ("modality", "cell type")
    assert [len(c.get_offsets()) for c in mod.collections] == [30, 20]
    assert [t.get_text() for t in mod.get_legend().get_texts()] == ["rna", "ATAC"]
    assert sorted(len(c.get_offsets()) for c in ct.collections) == [15, 35]
    fig, _ = P.plot_joint_umap(a, b, coords=coords)
    assert len(fig.axes) == 1  # no labels: the modality panel only


def test_ablation_bar_chart(tmp_path):
    table = pd.DataFrame({"variant": ["full", "no_cell_loss"], "foscttm": [0.1, 0.3],
                          "transfer_rna_to_other": [0.7, 0.5], "map": [np.nan, np.nan]})
    captured = {}
    real_savefig = matplotlib.figure.Figure.savefig

    def keep(fig, *a, **k):
        captured["fig"] = fig
        return real_savefig(fig, *a, **k)

    matplotlib.figure.Figure.savefig = keep
    try:
        BM._plot_ablation(table, tmp_path / "a.png")
    finally:
        matplotlib.figure.Figure.savefig = real_savefig
    ax = captured["fig"].axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["foscttm", "transfer_rna_to_other"]  # map is all NaN
    assert sorted(round(p.get_height(), 6) for p in ax.patches) == [0.1, 0.3, 0.5, 0.7]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["full", "no_cell_loss"]
    assert (tmp_path / "a.png").stat().st_size > 0
