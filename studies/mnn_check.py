"""Time of the mutual-nearest-neighbour check alone, on synthetic kNN lists (no search).

n cells per modality in 30 groups, each cell's k = 200 neighbours drawn inside its group; the kNN search is
replaced by these lists so that only the mutual check (``biclum.pairs.mutual_nearest_neighbors``) is timed.

    python studies/mnn_check.py 50000 500000
"""
from __future__ import annotations

import sys
import time

import numpy as np


def knn_lists(n: int, k: int, rng) -> np.ndarray:
    groups_query, groups_base = rng.integers(0, 30, n), rng.integers(0, 30, n)
    out = np.empty((n, k), np.int32)
    for g in range(30):
        rows = np.flatnonzero(groups_query == g)
        out[rows] = rng.choice(np.flatnonzero(groups_base == g), size=(len(rows), k))
    return out


def main(sizes):
    import biclum.pairs as pairs

    k = 200
    for n in sizes:
        rng = np.random.default_rng(0)
        lists = [knn_lists(n, k, rng), knn_lists(n, k, rng)]
        search = pairs.knn_cosine
        pairs.knn_cosine = lambda *args, **kw: lists.pop(0)
        try:
            t = time.perf_counter()
            res = pairs.mutual_nearest_neighbors(np.zeros((n, 2)), np.zeros((n, 2)), k)
            print(f"{n:,} x {n:,} cells, k={k}: mutual check {time.perf_counter() - t:.1f} s, {res.n_pairs:,} pairs")
        finally:
            pairs.knn_cosine = search


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [50000, 500000])
