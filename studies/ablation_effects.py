"""How much each ablation worsens each measure, against twice the seed sd (from the ablation table's per-run CSV).

    python studies/ablation_effects.py [benchmarks/results/ablation_seeds.csv]

"worse by" = (variant mean - full mean), sign-flipped for measures where higher is better; "2 sd" = twice the larger
of the two seed standard deviations. Writes benchmarks/results/ablation_effects.md.
"""
import sys
from pathlib import Path

import pandas as pd

MEASURES = {"foscttm": 1, "transfer_rna_to_other": -1, "transfer_other_to_rna": -1, "loadings_recon_corr": -1,
            "loadings_marker_overlap": -1}


def effects(runs: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for ds, g in runs.groupby("dataset", sort=False):
        full = g[g.variant == "full"]
        for variant in [v for v in g.variant.unique() if v != "full"]:
            x = g[g.variant == variant]
            for col, sign in MEASURES.items():
                if col not in g or x[col].isna().all():
                    continue
                delta = (x[col].mean() - full[col].mean()) * sign
                two_sd = 2 * max(x[col].std(ddof=1), full[col].std(ddof=1))
                rows.append({"dataset": ds, "ablation": variant, "measure": col, "worse by": round(delta, 4),
                             "2 sd": round(two_sd, 4), "worse > 2 sd": bool(delta > two_sd)})
    return pd.DataFrame(rows)


if __name__ == "__main__":
    default = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "ablation_seeds.csv"
    src = Path(sys.argv[1] if len(sys.argv) > 1 else default)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))
    from biclum.benchmark import markdown_table

    table = effects(pd.read_csv(src))
    text = (f"# Ablation effects (from {src.name})\n\nCommand: `python studies/ablation_effects.py`; the runs: "
            f"`python benchmarks/all_datasets.py --datasets snareseq eccite --ablation --loadings --name "
            f"ablation_seeds` (seeds 0, 1, 2; see ablation_seeds.md for commit and machine).\n\n"
            + markdown_table(table, 4) + "\n")
    print(text)
    (src.parent / "ablation_effects.md").write_text(text)
