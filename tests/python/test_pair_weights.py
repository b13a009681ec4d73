"""Pair weights (``pair_weight_power``): partners drawn in proportion to the pair's anchor score."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from biclum.pairs import CellPairs, anchor_scores, anchor_weighted, sample_partners


def test_weighted_draws_follow_the_weights():
    rng = np.random.default_rng(0)
    partners = sp.csr_matrix(np.array([[0, 1, 3, 0], [0, 0, 0, 0], [2, 0, 0, 2]], dtype=np.float32))
    counts = {}
    for _ in range(4000):
        pos, mates = sample_partners(partners, np.array([0, 1, 2]), rng)
        for p, m in zip(pos, mates):
            counts[(int(p), int(m))] = counts.get((int(p), int(m)), 0) + 1
    assert set(counts) == {(0, 1), (0, 2), (2, 0), (2, 3)}  # cell 1 has no partner
    assert 2.6 < counts[(0, 2)] / counts[(0, 1)] < 3.4
    assert 0.85 < counts[(2, 0)] / counts[(2, 3)] < 1.18


def test_unweighted_draws_unchanged():
    """All-one entries take the uniform path of earlier versions (same draws for the same seed)."""
    partners = sp.random(50, 40, density=0.2, format="csr", random_state=1, dtype=np.float32)
    partners.data[:] = 1
    cells = np.arange(50)
    pos, mates = sample_partners(partners, cells, np.random.default_rng(3))
    rng = np.random.default_rng(3)
    deg = np.diff(partners.indptr)[cells]
    keep = np.flatnonzero(deg > 0)
    offsets = (rng.random(len(keep)) * deg[keep]).astype(np.int64)
    np.testing.assert_array_equal(pos, keep)
    np.testing.assert_array_equal(mates, partners.indices[partners.indptr[keep] + offsets])


def test_anchor_scores_favour_consistent_pairs():
    """Two clusters; pairs within the matching cluster share neighbourhoods, a lone cross pair does not."""
    rng = np.random.default_rng(0)
    centres = np.array([[5.0, 0, 0], [0, 5.0, 0]])
    x = np.vstack([centres[i] + rng.normal(0, 0.3, (20, 3)) for i in (0, 1)]).astype(np.float32)
    y = x + rng.normal(0, 0.1, x.shape).astype(np.float32)
    block = [(i, j) for c in (0, 20) for i in range(c, c + 20) for j in range(c, c + 20)]
    rows = [i for i, _ in block] + [0]
    cols = [j for _, j in block] + [25]  # the last pair joins two clusters
    adj = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(40, 40))
    score = anchor_scores(x, y, adj, k=5)
    coo = adj.tocoo()
    lone = score[(coo.row == 0) & (coo.col == 25)][0]
    assert lone < np.median(score)
    weighted = anchor_weighted(CellPairs(adj), x, y, power=2, k=5)
    assert weighted.n_pairs == adj.nnz and weighted.adjacency.data.min() >= 1
