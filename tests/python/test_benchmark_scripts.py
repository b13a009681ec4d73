"""benchmarks/loadings_snare.py: its measures on data whose answer is known; `make results` writes every results
file (or the file is listed with the reason it does not)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from conftest import load_module

LOADINGS = load_module(Path(__file__).resolve().parents[2] / "benchmarks" / "loadings_snare.py")


def test_least_squares_loadings_bound_every_loadings_of_the_embedding():
    """On data of rank 5 spanned by the embedding, least-squares loadings reconstruct every gene (correlation 1);
    any other loadings of the same embedding reach at most that, and a PCA of the same rank reaches it too."""
    rng = np.random.default_rng(0)
    E = rng.normal(size=(400, 5))
    X = E @ rng.normal(size=(5, 30)) + 3.0
    assert LOADINGS.least_squares_recon_corr(E, X) > 0.999
    noisy = X + rng.normal(scale=2.0, size=X.shape)
    bound = LOADINGS.least_squares_recon_corr(E, noisy)
    labels = np.repeat(["a", "b"], 200)
    other = LOADINGS.measures(E, rng.normal(size=(30, 5)), noisy, labels, n_top=5)["recon_corr"]
    assert other < bound < 1.0
    assert LOADINGS.pca_measures(noisy, labels, 5, seed=0)["recon_corr"] >= bound - 0.02


#: results files that `make results` does not write, and why
NOT_FROM_MAKE = {
    "make_results": "make results' own summary of its steps",
    "r_user_install_debian12": "scripts/r_user_install.sh on a machine without Python (one per Debian release)",
    "r_user_install_debian13": "scripts/r_user_install.sh on a machine without Python (one per Debian release)",
    "scglue_own_small_seed0": "the seed-0 run that trained the scGLUE models scglue_own_small reloads (its timings)",
    "scglue_progress_snareseq": "studies/scglue_progress.py on copies of resume points taken while scGLUE ran",
    "scglue_progress_snareseq_lowdepth": "studies/scglue_progress.py on copies of resume points",
    "scglue_progress_snareseq_lowdepth_excitatory": "studies/scglue_progress.py on copies of resume points",
}


def test_make_results_writes_every_results_file():
    """Every benchmarks/results/*.md is a step of `make results` (its step name, --name or --record), or is listed
    in NOT_FROM_MAKE with the reason."""
    import re

    repo = Path(__file__).resolve().parents[2]
    makefile = (repo / "Makefile").read_text()
    made = set(re.findall(r"\$\(STEP\) (\S+)", makefile)) | set(re.findall(r"--(?:name|record) (\S+)", makefile))
    files = {p.stem for p in (repo / "benchmarks" / "results").glob("*.md")}
    assert files - made - set(NOT_FROM_MAKE) == set()
    assert set(NOT_FROM_MAKE) <= files  # no stale entries
