"""Figures of the downstream analyses. Every function returns a matplotlib Figure (``save=`` writes it)."""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..errors import BiclumInputError
from ..plotting import save_figure
from ._utils import get_labels, get_matrix, group_indicator, normalize_matrix, resolve_normalize

__all__ = ["plot_links_vs_control", "plot_heatmap", "plot_tf_activity", "plot_marker_dotplot",
           "plot_marker_overlap", "plot_enrichment", "plot_interactions"]


def _plt():
    import matplotlib.pyplot as plt
    return plt


def _finish(fig, save):
    fig.tight_layout()
    if save:
        save_figure(fig, save, dpi=150, bbox_inches="tight")
    return fig


def plot_links_vs_control(links: pd.DataFrame, summary: Optional[pd.DataFrame] = None, title: str = "",
                          save: Optional[str] = None):
    """Gene-peak correlations of nearby pairs vs. the distance-matched control: density + ECDF, and the
    medians per distance bin (with the effect size from :func:`links_vs_control`)."""
    from .links import links_vs_control

    plt = _plt()
    if summary is None:
        summary = links_vs_control(links)
    near = links["pair_type"].to_numpy() == "nearby"
    r = links["correlation"].to_numpy()
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    lo, hi = np.nanpercentile(r, [0.5, 99.5])
    bins = np.linspace(lo, hi, 60)
    for m, lab, col in ((near, "nearby (<= window)", "C3"), (~near, "distance-matched control", "C0")):
        axes[0].hist(r[m], bins=bins, density=True, histtype="step", lw=1.8, color=col, label=f"{lab} (n={m.sum()})")
        xs = np.sort(r[m])
        axes[1].plot(xs, np.arange(1, xs.size + 1) / xs.size, color=col, lw=1.8, label=lab)
        axes[0].axvline(np.median(r[m]), color=col, ls="--", lw=1)
    axes[0].set_xlabel("gene-peak correlation over metacells")
    axes[0].set_ylabel("density")
    axes[0].legend(fontsize=8)
    row = summary.iloc[0]
    ptxt = f"p = {row['pval']:.2e}" if row["pval"] > 0 else "p < 1e-300"
    axes[0].set_title(f"median diff {row['median_difference']:.3f}, rank-biserial {row['rank_biserial']:.3f}\n"
                      f"one-sided Mann-Whitney z = {row.get('z', np.nan):.1f}, {ptxt}", fontsize=9)
    axes[1].set_xlabel("gene-peak correlation")
    axes[1].set_ylabel("ECDF")
    axes[1].legend(fontsize=8)
    per = summary[summary["subset"] != "all"]
    x = np.arange(len(per))
    axes[2].plot(x, per["median_nearby"], "o-", color="C3", label="nearby")
    axes[2].plot(x, per["median_control"], "s-", color="C0", label="control")
    axes[2].set_xticks(x)
    axes[2].set_xticklabels(per["subset"], rotation=45, ha="right", fontsize=8)
    axes[2].set_xlabel("|peak centre - TSS| bin")
    axes[2].set_ylabel("median correlation")
    axes[2].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return _finish(fig, save)


def plot_heatmap(df: pd.DataFrame, ax=None, cmap: str = "RdBu_r", center: bool = True, title: str = "",
                 cbar_label: str = "", save: Optional[str] = None):
    """Heatmap of a (small) DataFrame, rows x columns labelled."""
    plt = _plt()
    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(max(4, 0.35 * df.shape[1] + 2), max(3, 0.3 * df.shape[0] + 1.5)))
    A = df.to_numpy(dtype=float)
    v = np.nanmax(np.abs(A)) if center and np.isfinite(A).any() else None
    im = ax.imshow(A, aspect="auto", cmap=cmap, vmin=-v if v else None, vmax=v if v else None,
                   interpolation="nearest")
    ax.set_xticks(np.arange(df.shape[1]))
    ax.set_xticklabels(df.columns, rotation=90, fontsize=8)
    ax.set_yticks(np.arange(df.shape[0]))
    ax.set_yticklabels(df.index, fontsize=8)
    ax.set_title(title, fontsize=10)
    cb = ax.figure.colorbar(im, ax=ax, fraction=0.04)
    cb.set_label(cbar_label)
    return _finish(fig, save) if fig is not None else ax.figure


def plot_tf_activity(comparison: pd.DataFrame, save: Optional[str] = None):
    """Side-by-side heatmaps of per-type TF activity (z-scored) on the two modalities, from
    :func:`compare_tf_activity` (its ``attrs["by_group"]``), with the per-TF correlation in the titles."""
    plt = _plt()
    by = comparison.attrs.get("by_group")
    if not by:
        raise BiclumInputError("plot_tf_activity: pass the output of compare_tf_activity (it carries "
                               "attrs['by_group']).")
    names = list(by)
    fig, axes = plt.subplots(1, 2, figsize=(2 * max(4, 0.4 * by[names[0]].shape[1] + 2),
                                            max(3, 0.3 * by[names[0]].shape[0] + 2)))
    for ax, nm in zip(axes, names):
        plot_heatmap(by[nm], ax=ax, title=f"TF activity ({nm}), mean z per type", cbar_label="z")
    r = comparison["pearson_r"]
    fig.suptitle(f"per-TF correlation across types: median r = {np.nanmedian(r):.2f}; "
                 f"top type agrees for {int(comparison['agree'].sum())}/{len(comparison)} TFs", fontsize=10)
    return _finish(fig, save)


def plot_marker_dotplot(adata, markers, groupby, n_top: int = 3, layer: Optional[str] = None,
                        normalize: Optional[str] = "auto", title: str = "", save: Optional[str] = None):
    """Dot plot: dot size = fraction of cells expressing, colour = mean (scaled 0-1 per gene), for the top
    ``n_top`` markers of each group (``markers``: find_markers table or ``{group: [genes]}``)."""
    from .markers import top_markers

    plt = _plt()
    sets = markers if isinstance(markers, dict) else top_markers(markers, n_top=n_top)
    genes = list(dict.fromkeys(g for v in sets.values() for g in v[:n_top] if g in set(adata.var_names)))
    if not genes:
        raise BiclumInputError("plot_marker_dotplot: none of the marker genes is in adata.var_names.")
    X = get_matrix(adata, layer, "adata")
    X = normalize_matrix(X, resolve_normalize(X, normalize))
    cols = pd.Index(adata.var_names).get_indexer(genes)
    sub = X[:, cols]
    D = sub.toarray() if sp.issparse(sub) else np.asarray(sub)
    cats, codes, G = group_indicator(get_labels(adata, groupby, "adata"))
    n = np.maximum(np.asarray(G.sum(axis=1)).ravel(), 1)[:, None]
    M, F = np.asarray(G @ D) / n, np.asarray(G @ (D > 0).astype(float)) / n
    rng = M.max(axis=0) - M.min(axis=0)
    Ms = (M - M.min(axis=0)) / np.where(rng > 0, rng, 1)
    fig, ax = plt.subplots(figsize=(max(5, 0.3 * len(genes) + 2), max(3, 0.3 * len(cats) + 1.5)))
    yy, xx = np.meshgrid(np.arange(len(cats)), np.arange(len(genes)), indexing="ij")
    sc = ax.scatter(xx.ravel(), yy.ravel(), s=250 * F.ravel() + 1, c=Ms.ravel(), cmap="Reds", vmin=0, vmax=1,
                    edgecolors="grey", linewidths=0.3)
    ax.set_xticks(np.arange(len(genes)))
    ax.set_xticklabels(genes, rotation=90, fontsize=7)
    ax.set_yticks(np.arange(len(cats)))
    ax.set_yticklabels(cats, fontsize=8)
    ax.set_xlim(-0.5, len(genes) - 0.5)
    ax.set_ylim(len(cats) - 0.5, -0.5)
    fig.colorbar(sc, ax=ax, fraction=0.03).set_label("mean (scaled)")
    for f in (0.25, 0.5, 1.0):
        ax.scatter([], [], s=250 * f + 1, c="grey", label=f"{int(f * 100)}%")
    ax.legend(title="expressing", fontsize=7, title_fontsize=7, bbox_to_anchor=(1.12, 1), loc="upper left")
    ax.set_title(title, fontsize=10)
    return _finish(fig, save)


def plot_marker_overlap(overlap: pd.DataFrame, title: str = "", save: Optional[str] = None):
    """Observed marker overlap per group vs. the random-set null (expected and 95% quantile), from
    :func:`marker_overlap`."""
    plt = _plt()
    d = overlap[overlap["group"] != "all"]
    x = np.arange(len(d))
    fig, ax = plt.subplots(figsize=(max(5, 0.5 * len(d) + 2), 3.5))
    ax.bar(x - 0.2, d["overlap"], width=0.4, color="C3", label="observed overlap")
    ax.bar(x + 0.2, d["expected"], width=0.4, color="C0", label="random sets: expected")
    ax.scatter(x + 0.2, d["null_q95"], marker="_", s=200, color="k", label="random sets: 95% quantile")
    ax.set_xticks(x)
    ax.set_xticklabels(d["group"], rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("shared marker genes")
    ax.legend(fontsize=8)
    allrow = overlap[overlap["group"] == "all"]
    if len(allrow):
        a = allrow.iloc[0]
        title = (title + "\n" if title else "") + f"all types: {int(a['overlap'])} shared vs {a['expected']:.1f} " \
                                                 f"expected (95% null {a['null_q95']:.0f}), p = {a['pval_perm']:.1e}"
    ax.set_title(title, fontsize=9)
    return _finish(fig, save)


def plot_enrichment(enr: pd.DataFrame, n_top: int = 3, queries: Optional[Sequence[str]] = None,
                    title: str = "", save: Optional[str] = None):
    """Dot plot of the top ``n_top`` terms per query: colour = -log10 FDR, size = overlap."""
    if len(enr) == 0:
        raise BiclumInputError("plot_enrichment: the enrichment table is empty.")
    if queries is not None:
        enr = enr[enr["query"].isin(queries)]
    top = enr.sort_values("pval").groupby("query", sort=False).head(n_top)
    terms = list(dict.fromkeys(top["term"]))
    qs = list(dict.fromkeys(enr["query"]))
    sub = enr[enr["term"].isin(terms) & enr["query"].isin(qs)]
    return _dot_plot(qs, terms, sub["query"], sub["term"], size=20 + 15 * sub["overlap"],
                     color=-np.log10(sub["fdr"].clip(lower=1e-300)), cmap="viridis", label="-log10 FDR",
                     title=title, save=save, col_width=0.45)


def _dot_plot(cols: list, rows: list, col_of, row_of, size, color, cmap: str, label: str, title: str,
              save: Optional[str], col_width: float = 0.4):
    """Dot plot on a grid of ``cols`` (x, labels turned) by ``rows`` (y, first at the top): one dot per entry of
    ``col_of``/``row_of`` with its ``size`` and ``color`` (colour bar ``label``)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(5, col_width * len(cols) + 3), max(3, 0.3 * len(rows) + 1.5)))
    sc = ax.scatter(pd.Index(cols).get_indexer(col_of), pd.Index(rows).get_indexer(row_of), s=size, c=color,
                    cmap=cmap)
    ax.set_xticks(np.arange(len(cols)))
    ax.set_xticklabels(cols, rotation=90, fontsize=7)
    ax.set_yticks(np.arange(len(rows)))
    ax.set_yticklabels(rows, fontsize=7)
    ax.set_ylim(len(rows) - 0.5, -0.5)
    fig.colorbar(sc, ax=ax, fraction=0.03).set_label(label)
    ax.set_title(title, fontsize=10)
    return _finish(fig, save)


def plot_interactions(lr: pd.DataFrame, n_top: int = 25, fdr_max: Optional[float] = None, max_per_pair: int = 5,
                      title: str = "", save: Optional[str] = None):
    """Dot plot of the top ``n_top`` interactions (at most ``max_per_pair`` sender/receiver combinations per
    ligand-receptor pair): rows = ligand -> receptor, columns = sender -> receiver, colour = score,
    size = -log10 p."""
    d = lr[lr["expressed"]] if "expressed" in lr.columns else lr
    if fdr_max is not None:
        d = d[d["fdr"] <= fdr_max]
    d = d.sort_values(["pval", "score"], ascending=[True, False])
    d = d.groupby(["ligand", "receptor"], sort=False).head(max_per_pair).head(n_top)
    if len(d) == 0:
        raise BiclumInputError("plot_interactions: no interaction to plot (all filtered out).")
    pair = d["ligand"] + " -> " + d["receptor"]
    cells = d["sender"] + " -> " + d["receiver"]
    return _dot_plot(list(dict.fromkeys(cells)), list(dict.fromkeys(pair)), cells, pair,
                     size=30 + 40 * -np.log10(d["pval"].clip(lower=1e-4)), color=d["score"], cmap="magma_r",
                     label="score", title=title, save=save)
