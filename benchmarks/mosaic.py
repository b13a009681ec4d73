"""Mosaic integration (``biclum.integrate_mosaic``): a multiome bridge, and three modalities in one space.

    python benchmarks/mosaic.py bridge [--datasets snareseq eccite reapseq] [--seeds 0 1 2] [--threads 1]
    python benchmarks/mosaic.py three [--seeds 0 1 2] [--threads 1]
    (both: [--name NAME] [--no-write] [--set KEY=VALUE ...])

``bridge``: per seed the cells of a paired shared dataset are split at random into disjoint parts: 10% a bridge
(RNA + the other modality, paired), 45% an RNA-only reference and 45% an other-only query (Seurat's bridge case).
Arms: ``bridge`` (all three datasets) and ``no_bridge`` (the reference and query alone). The withheld half of
the reference and query cells is used only to score: it is embedded with the fitted model (``transform``), and
FOSCTTM is taken between each reference RNA cell and its own withheld ATAC/ADT profile and between each query
cell and its withheld RNA (the mean of the two). 5-NN label transfer reference RNA -> query (``cell_type``,
where labelled). Writes benchmarks/results/<name>.md (default mosaic_bridge.md).

``three``: the NeurIPS 2021 BMMC multiome starter (RNA + ATAC) and CITE starter (RNA + ADT) in one call. Arms:
``paired`` (a user's call: the cells of each dataset are known pairs) and ``unpaired`` (``known_pairs=False``,
comparable with the two-way unpaired runs of all_datasets.md). Scored: FOSCTTM RNA <-> ATAC on the multiome and
RNA <-> ADT on the CITE cells, and 5-NN label transfer ATAC -> ADT and ADT -> ATAC on the cell types the two
datasets share, beside the same transfer with the source labels shuffled (mean of 20 shuffles). Writes
benchmarks/results/<name>.md (default mosaic_three.md).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
BRIDGE_DATASETS = ("snareseq", "eccite", "reapseq")
SPLIT = (0.10, 0.45)  # bridge, reference; the query is the rest
LABEL = "cell_type"


def split_cells(names: np.ndarray, seed: int) -> dict:
    """Disjoint bridge / reference / query cell names, a random split per seed."""
    order = np.random.default_rng(seed).permutation(len(names))
    n_b, n_r = int(round(SPLIT[0] * len(names))), int(round(SPLIT[1] * len(names)))
    return {"bridge": names[np.sort(order[:n_b])], "reference": names[np.sort(order[n_b:n_b + n_r])],
            "query": names[np.sort(order[n_b + n_r:])]}


def run_bridge(prep: dict, arm: str, seed: int, threads: int, overrides: dict) -> dict:
    import biclum
    from biclum.metrics import foscttm_score, label_transfer_accuracy

    rna, other, mod = prep["rna"], prep["other"], prep["modality"]
    cells = split_cells(np.asarray(rna.obs_names, dtype=object), seed)
    datasets = {"reference": {"rna": rna[cells["reference"]]}, "query": {mod: other[cells["query"]]}}
    if arm == "bridge":
        datasets["bridge"] = {"rna": rna[cells["bridge"]], mod: other[cells["bridge"]]}
    t0 = time.perf_counter()
    res = biclum.integrate_mosaic(datasets, prep["annotation"], seed=seed, progress=False, num_threads=threads,
                                  **overrides)
    wall = time.perf_counter() - t0
    model = res.models[mod]
    ref, query = res["reference"]["rna"], res["query"][mod]
    ref_withheld = model.transform(other[ref.obs_names], "other")
    query_withheld = model.transform(rna[query.obs_names], "rna")
    f_ref = foscttm_score(ref.obsm["X_biclum"], ref_withheld)
    f_query = foscttm_score(query_withheld, query.obsm["X_biclum"])
    row = {"arm": arm, "seed": seed, "cells_bridge": len(cells["bridge"]) if arm == "bridge" else 0,
           "cells_reference": ref.n_obs, "cells_query": query.n_obs, "foscttm": 0.5 * (f_ref + f_query),
           "foscttm_reference": f_ref, "foscttm_query": f_query, "transfer_ref_to_query": np.nan, "wall_s": wall}
    if LABEL in ref.obs and LABEL in query.obs:
        row["transfer_ref_to_query"] = label_transfer_accuracy(
            ref.obsm["X_biclum"], ref.obs[LABEL].astype(str), query.obsm["X_biclum"], query.obs[LABEL].astype(str))
    return row


def _loaded(name: str) -> dict:
    from biclum.benchmark import prepare_input
    from biclum.datasets import load_shared

    rna, other, modality, annotation = load_shared(name)
    return prepare_input(rna, other, modality, annotation, paired=True)


def run_three(arm: str, seed: int, threads: int, overrides: dict, n_shuffles: int = 20) -> dict:
    import biclum
    from biclum.metrics import foscttm_score, label_transfer_accuracy

    mult, cite = _loaded("neurips_multiome"), _loaded("neurips_cite")
    datasets = {"multiome": {"rna": mult["rna"], "atac": mult["other"]},
                "cite": {"rna": cite["rna"], "protein": cite["other"]}}
    t0 = time.perf_counter()
    res = biclum.integrate_mosaic(datasets, mult["annotation"], seed=seed, progress=False, num_threads=threads,
                                  known_pairs=(arm == "paired"), **overrides)
    wall = time.perf_counter() - t0
    m, c = res["multiome"], res["cite"]
    both_m = m["rna"].obs_names.intersection(m["atac"].obs_names)
    both_c = c["rna"].obs_names.intersection(c["protein"].obs_names)
    atac, adt = m["atac"], c["protein"]
    shared = np.intersect1d(atac.obs[LABEL].astype(str), adt.obs[LABEL].astype(str))
    atac, adt = atac[atac.obs[LABEL].astype(str).isin(shared)], adt[adt.obs[LABEL].astype(str).isin(shared)]
    row = {"arm": arm, "seed": seed,
           "foscttm_rna_atac": foscttm_score(m["rna"][both_m].obsm["X_biclum"], m["atac"][both_m].obsm["X_biclum"]),
           "foscttm_rna_adt": foscttm_score(c["rna"][both_c].obsm["X_biclum"],
                                            c["protein"][both_c].obsm["X_biclum"]),
           "shared_types": len(shared), "atac_cells": atac.n_obs, "adt_cells": adt.n_obs}
    rng = np.random.default_rng(seed)
    for src, tgt, tag in ((atac, adt, "atac_to_adt"), (adt, atac, "adt_to_atac")):
        xs, ys = src.obsm["X_biclum"], src.obs[LABEL].astype(str).to_numpy()
        xt, yt = tgt.obsm["X_biclum"], tgt.obs[LABEL].astype(str).to_numpy()
        row[f"transfer_{tag}"] = label_transfer_accuracy(xs, ys, xt, yt)
        row[f"shuffled_{tag}"] = float(np.mean([label_transfer_accuracy(xs, rng.permutation(ys), xt, yt)
                                                for _ in range(n_shuffles)]))
    row["wall_s"] = wall
    return row


def paired_differences(table: pd.DataFrame) -> str:
    """Bridge minus no-bridge on the same split (seed), per dataset: mean ± sd over seeds, as a markdown table."""
    from biclum.benchmark.report import markdown_table, mean_sd

    scores = ["foscttm", "transfer_ref_to_query"]
    wide = table.pivot_table(index=["dataset", "seed"], columns="arm", values=scores)
    if not {"bridge", "no_bridge"} <= set(wide.columns.get_level_values(1)):
        return ""
    diff = pd.DataFrame({s: wide[(s, "bridge")] - wide[(s, "no_bridge")] for s in scores}).reset_index()
    out = diff.groupby("dataset", sort=False).agg(**{f"{s} (bridge - no_bridge)": (s, mean_sd) for s in scores})
    return ("\n\nBridge minus no bridge on the same split (seed), mean ± sd over seeds:\n\n"
            + markdown_table(out.reset_index(), 3))


def _parser():
    from biclum.benchmark.report import add_name_and_set, seeds_parser

    p = seeds_parser(__doc__)
    p.add_argument("part", choices=("bridge", "three"))
    p.add_argument("--datasets", nargs="+", default=list(BRIDGE_DATASETS), help="bridge: shared paired datasets")
    p.add_argument("--arms", nargs="+", default=None, help="bridge: bridge no_bridge; three: paired unpaired")
    return add_name_and_set(p, None)


def main(argv=None) -> int:
    from biclum.benchmark.report import markdown_table, mean_sd, publish, run_stamp, start_run

    argv, a, overrides = start_run(_parser(), argv)
    rows = []
    if a.part == "bridge":
        for name in a.datasets:
            prep = _loaded(name)
            for seed in a.seeds:
                for arm in a.arms or ("bridge", "no_bridge"):
                    rows.append({"dataset": name, **run_bridge(prep, arm, seed, a.threads, overrides)})
                    print(rows[-1], flush=True)
        keys = ["dataset", "arm"]
    else:
        for seed in a.seeds:
            for arm in a.arms or ("paired", "unpaired"):
                rows.append(run_three(arm, seed, a.threads, overrides))
                print(rows[-1], flush=True)
        keys = ["arm"]
    table = pd.DataFrame(rows)
    scores = [c for c in table.columns if c not in keys + ["seed"] and table[c].dtype.kind == "f"]
    summary = table.groupby(keys, sort=False).agg(**{c: (c, mean_sd) for c in scores}).reset_index()
    paired = paired_differences(table) if a.part == "bridge" else ""
    settings = f"biclum defaults with {overrides}" if overrides else "biclum defaults"
    what = {"bridge": "bridge: 10% of the cells a multiome bridge, 45% an RNA-only reference, 45% a query of the "
                      "other modality (disjoint; the withheld half of reference and query cells embedded with "
                      "the fitted model to score FOSCTTM); 5-NN transfer reference -> query",
            "three": "three modalities: NeurIPS BMMC multiome starter (RNA + ATAC) and CITE starter (RNA + ADT) "
                     "in one call; 5-NN transfer between ATAC and ADT on the shared cell types, beside the mean "
                     "of 20 label shuffles"}[a.part]
    text = (run_stamp(__file__, argv, a.threads, a.seeds) + f"; {settings}, `biclum.integrate_mosaic`. {what}. "
            "FOSCTTM lower is better (0.5 random); mean ± sd over seeds.\n\n" + markdown_table(summary, 3)
            + paired + "\n\nPer run:\n\n" + markdown_table(table, 4) + "\n")
    name = a.name or f"mosaic_{a.part}"
    publish(text, REPO / "benchmarks" / "results" / f"{name}.md", f"Mosaic integration: {a.part}", not a.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
