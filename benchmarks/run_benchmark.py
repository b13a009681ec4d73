#!/usr/bin/env python
"""Run the biclum benchmark, ablation or sensitivity grid from the repository (same as the ``biclum`` CLI).

    python benchmarks/run_benchmark.py [benchmark] --datasets snareseq eccite --methods biclum pca seurat \
        --out benchmarks/results/run
    python benchmarks/run_benchmark.py ablation --dataset snareseq --out benchmarks/results/ablation
    python benchmarks/run_benchmark.py sensitivity --dataset snareseq --params tau_cell mnn_k --out ...

Options: see ``--help`` of each; the implementation is biclum.benchmark (main_benchmark, main_ablation,
main_sensitivity). Tables are written as <out>/<kind>.md (with this command line) and <out>/<kind>.csv.
"""
from __future__ import annotations

import sys

from biclum.benchmark import main_ablation, main_benchmark, main_sensitivity

if __name__ == "__main__":
    argv = sys.argv[1:]
    kind = "benchmark"
    if argv and argv[0] in ("benchmark", "ablation", "sensitivity"):
        kind, argv = argv[0], argv[1:]
    main = {"benchmark": main_benchmark, "ablation": main_ablation, "sensitivity": main_sensitivity}[kind]
    prog = "python benchmarks/run_benchmark.py" + ("" if kind == "benchmark" else f" {kind}")
    sys.exit(main(argv, prog=prog))
