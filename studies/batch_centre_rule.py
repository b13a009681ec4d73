"""batch_centre="auto" (issue 16): the batch mixing it measures, on every case of benchmarks/batches.py.

    python studies/batch_centre_rule.py [--seeds 0 1 2] [--cells 600 1500] [--name batch_centre_rule] [--no-write]

Per case, simulated size, seed and modality: the batch mixing (biclum.batches.batch_mixing: other-batch share of
each cell's 15 nearest neighbours over the share expected if mixed) of the cell encoder's input centred on batch
means and after the cross-batch MNN shifts. The package's rule ("auto"): MNN shifts without cross-batch pairs when
the mixing after the shifts is at least biclum.batches.SHIFT_ONLY_MIXING in every modality, else batch means with
the pairs. Also shown, rejected: choosing the shifts when they mix better than batch means by more than 0.05
(the gain). Setup only (no training), one thread. Writes benchmarks/results/<name>.md and .csv with the command,
commit and seeds.
"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]


GAIN = 0.05  # the rejected rule's threshold


def _mixings(rna, other, modality, ann, seed: int) -> list:
    from biclum.batches import BatchCentering, BatchShifts, batch_codes, batch_mixing, shifted_mixing
    from biclum.config import BiclumConfig
    from biclum.setup import prepare

    cfg = BiclumConfig.from_preset("default", batch_centre="means", num_threads=1, seed=seed)
    prep = prepare(rna, other, modality, ann, cfg, batch_keys={"rna": "batch", "other": "batch"})
    exact_max, rows = cfg.pairs.exact_knn_max, []
    for m in ("rna", "other"):
        labels = prep.batch_labels[m]
        codes = batch_codes(labels)
        raw = prep.data.pcs[m] + prep.fitted.batch_centering[m].means[codes]  # the input before centring
        shifts = BatchShifts.find(raw, labels, seed, exact_max, m)
        by_means = batch_mixing(BatchCentering.fit(raw, labels).transform(raw, labels), codes, seed, exact_max)
        by_mnn = shifted_mixing(raw, shifts, seed, exact_max)
        rows.append({"modality": m, "mixing_means": by_means, "mixing_mnn": by_mnn, "gain": by_mnn - by_means,
                     "gain_rule": "mnn" if by_mnn - by_means > GAIN else "means"})
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--cells", type=int, nargs="+", default=[600, 1500])
    ap.add_argument("--name", default="batch_centre_rule")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(REPO / "python"))
    sys.path.insert(0, str(REPO / "benchmarks"))
    warnings.filterwarnings("ignore")
    from batches import _real, _simulated
    from biclum._logging import set_verbosity
    from biclum._threads import thread_limit
    from biclum.benchmark.report import mean_sd, source_commit

    set_verbosity("WARNING")
    source_commit()  # read now: the file is written at the end
    from biclum.batches import SHIFT_ONLY_MIXING

    rows = []
    with thread_limit(1):
        for seed in args.seeds:
            cases = [(f"{c[0]} ({n} cells)", *c[1:]) for n in args.cells for c in _simulated(n, seed)]
            for case, rna, other, modality, ann, _ in [*cases, *_real()]:
                found = _mixings(rna, other, modality, ann, seed)
                auto = "mnn, no pairs" if min(r["mixing_mnn"] for r in found) >= SHIFT_ONLY_MIXING else "means"
                for row in found:
                    row = {"case": case, "seed": seed, **row, "auto": auto}
                    print(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()),
                          flush=True)
                    rows.append(row)
    runs = pd.DataFrame(rows)
    counts = lambda v: ", ".join(f"{k} {n}/{len(v)}" for k, n in v.value_counts().items())  # noqa: E731
    table = runs.groupby(["case", "modality"], sort=False).agg(
        seeds=("seed", "size"), **{c: (c, mean_sd) for c in ("mixing_means", "mixing_mnn", "gain")},
        auto=("auto", counts), gain_rule=("gain_rule", counts)).reset_index()
    print(table.to_string(index=False))
    if not args.no_write:
        _write(table, runs, args, argv, SHIFT_ONLY_MIXING)
    return 0


def _write(table, runs, args, argv, threshold: float) -> None:
    from batches import write_results

    write_results(args.name, "batch_centre='auto': batch mixing after each correction, and the choice (issue 16)",
                  "batch_centre_rule.py", argv, f"threads: 1; seeds: {args.seeds}; simulated cells per modality: "
                  f"{args.cells}; setup only (no training)",
                  "mixing_*: other-batch share of each cell's 15 nearest neighbours in the cell encoder's input, over "
                  "the share expected if the batches were mixed (biclum.batches.batch_mixing), after centring on batch "
                  "means and after the cross-batch MNN shifts. auto: the package's choice (batch_centre='auto'): MNN "
                  f"shifts without cross-batch pairs when mixing_mnn >= {threshold} in every modality, else batch "
                  "means with cross-batch pairs. gain_rule: a rule tried and rejected, MNN shifts when they mix "
                  f"better than batch means by more than {GAIN} (gain): it separates the NeurIPS donors (0.17) from "
                  "the simulator at 1,500 cells but not at 600 cells, where the gain is about 0.07 with and without a "
                  "batch effect.", table, runs)


if __name__ == "__main__":
    sys.exit(main())
