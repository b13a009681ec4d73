"""Known pairs: cells measured in both modalities (10x Multiome, CITE-seq, TEA-seq), given by the user.

``paired=`` of :func:`biclum.integrate` / :class:`biclum.BiCLUM` (``--paired`` in the CLI, ``paired =`` in R):

* ``None`` or ``False`` (default): every cell is unpaired (the MNN pairs only).
* ``True`` or ``"shared"``: the cell names (obs_names) found in both inputs are the same cells.
* a two-column table of (RNA cell name, other cell name): a pandas DataFrame with columns ``"rna"`` and
  ``"other"`` (or exactly two columns, RNA first), a list of (rna, other) tuples, or the path of a CSV/TSV file
  with those two columns (a header line is optional).

The known pairs guide the unpaired cells too. Each known pair is an exact positive of the cell-level contrastive
loss, twice over, and the pairs' map between the modalities joins the MNN search:

* the MNN pairs of all cells are searched in the shared-gene space joined by the map the known pairs define
  between the modalities' own representations (:func:`with_pair_map`: ridge regressions other <-> RNA fitted on
  the pairs, weighed by how many pairs there are per dimension; logged), so the unpaired cells' partners follow
  what the pairs say beyond the shared genes;
* the partner matrices the training loop samples from (:class:`KnownCellPairs`) give a paired cell its true
  partner only, in place of its MNN partners, whenever pairs are found or re-found (``refresh_pairs_every``);
  unpaired cells keep their MNN partners (paired cells among them);
* a second cell-level NT-Xent on the known pairs alone (the ``"known"`` loss term, weight ``alpha_known``; None,
  the default: ``alpha``) sees up to ``batch_size`` of them in every step, however few are in the step's cells,
  so the encoders learn the cross-modal map the pairs define on every step and carry it to the unpaired cells.
  Logged when training starts: the number of pairs and the weight.

Pairs whose cells were dropped on the way (no counts) are left out, with a log line of how many pairs were given,
kept, and how many cells stay unpaired. No pairs (``None``, or an empty table) leave setup and training exactly as
without the argument (the same embeddings, bit for bit). Memory stays linear in cells: the pairs are a sparse
matrix and two index arrays, the map adds two coordinate blocks per cell.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ._logging import logger
from .errors import BiclumInputError
from .pairs import CellPairs, _normalize_rows

SHARED = "shared"
MAP_WEIGHT = 0.3  # most share of the pairs' map in the cosine of the MNN search, reached with many more pairs than
                  # dimensions (seed 0, FOSCTTM of the cells not given: SNARE-seq 5%, 515 pairs, 0.0867 with 0.3,
                  # 0.0896 without; ECCITE 1%, 5 pairs, 0.130 with 0.3, 0.120 with 0.15, 0.121 without)
MIN_MAP_PAIRS = 3  # fewer known pairs fit no map (leave-one-out needs some left)
RIDGE_ALPHAS = np.logspace(-1, 4, 11)  # ridge penalties tried (leave-one-out on the pairs picks one)
FORMAT = ("give paired=True (or 'shared') when a cell has the same name in both inputs, or a two-column table of "
          "(RNA cell name, other cell name): a DataFrame with columns 'rna' and 'other' (or exactly two columns, "
          "RNA first), a list of (rna, other) tuples, or the path of such a CSV/TSV file")


@dataclass(frozen=True)
class KnownPairs:
    """Known pairs by cell name, checked against the inputs (each name known, each cell in one pair)."""

    rna: np.ndarray    # RNA cell names (object array)
    other: np.ndarray  # the other modality's cell names, same length

    @property
    def n(self) -> int:
        return len(self.rna)

    def matrix(self, rna_cells, other_cells) -> sp.csr_matrix:
        """The pairs whose cells are both among the training cells, as a CSR 0/1 matrix rna cells x other cells
        (one entry in each paired row and column); logs how many were given, kept and how many cells stay
        unpaired."""
        pos_r = pd.Index(rna_cells).get_indexer(self.rna)
        pos_o = pd.Index(other_cells).get_indexer(self.other)
        kept = (pos_r >= 0) & (pos_o >= 0)
        n_r, n_o, n_kept = len(rna_cells), len(other_cells), int(kept.sum())
        logger.info("known pairs: %d given, %d kept%s; %d of %d RNA and %d of %d other cells unpaired (MNN "
                    "partners only)", self.n, n_kept, "" if n_kept == self.n else
                    f" ({self.n - n_kept} lost a cell dropped for zero counts)", n_r - n_kept, n_r, n_o - n_kept, n_o)
        return sp.csr_matrix((np.ones(n_kept, dtype=np.float32), (pos_r[kept], pos_o[kept])), shape=(n_r, n_o))


def read_known_pairs(paired, rna_names, other_names) -> Optional[KnownPairs]:
    """``paired=`` (see the module docstring) checked against the inputs' cell names; None when no pairs are given.
    Raises :class:`BiclumInputError` for unknown names, a cell in two pairs, a table of other columns, or
    ``paired=True`` without shared names. ``paired`` is never modified."""
    if paired is None or paired is False:
        return None
    rna_names, other_names = pd.Index(np.asarray(rna_names, dtype=object)), pd.Index(
        np.asarray(other_names, dtype=object))
    if paired is True or (isinstance(paired, str) and paired.lower() == SHARED):
        shared = rna_names[rna_names.isin(other_names)]
        if not len(shared):
            raise BiclumInputError(
                f"paired={paired!r}: the RNA and the other input share no cell names (e.g. RNA {list(rna_names[:2])}"
                f", other {list(other_names[:2])}), so no cell can be matched by name. Rename the cells so that a "
                f"cell measured in both has the same name in both, or give a two-column table of (RNA cell name, "
                f"other cell name) pairs as paired=.")
        return _checked(shared.to_numpy(), shared.to_numpy(), rna_names, other_names)
    from_file = isinstance(paired, (str, os.PathLike))
    table = _read_file(os.fspath(paired)) if from_file else _as_table(paired)
    if from_file and len(table) and not (table.iloc[0, 0] in rna_names or table.iloc[0, 1] in other_names):
        table = table.iloc[1:]  # a header line: its first row names no cell of the inputs
    if not len(table):
        logger.info("known pairs: the table is empty; every cell is unpaired")
        return None
    return _checked(table["rna"].to_numpy(object), table["other"].to_numpy(object), rna_names, other_names)


def _as_table(paired) -> pd.DataFrame:
    """A (rna, other) frame of strings from a DataFrame, a list of pairs or a CSV/TSV path (copied, never changed)."""
    if isinstance(paired, pd.DataFrame):
        table = paired
    elif isinstance(paired, (list, tuple, np.ndarray)):
        table = pd.DataFrame(list(paired) if len(paired) else np.empty((0, 2), dtype=object))
    else:
        raise BiclumInputError(f"paired: got a {type(paired).__name__}; {FORMAT}.")
    cols = [str(c) for c in table.columns]
    if {"rna", "other"} <= set(cols):
        table = table.iloc[:, [cols.index("rna"), cols.index("other")]]
    elif table.shape[1] != 2:
        raise BiclumInputError(
            f"paired: the table of known pairs has columns {cols[:6]}{' ...' if len(cols) > 6 else ''}; it needs "
            f"two, the RNA cell name and the other cell name: name them 'rna' and 'other' (e.g. "
            f"paired=table.rename(columns={{...}})) or pass only those two columns, RNA first.")
    if table.isna().to_numpy().any():
        raise BiclumInputError(f"paired: {int(table.isna().any(axis=1).sum())} rows of the table of known pairs miss "
                               f"a cell name; drop them (table.dropna()) or fill in the names.")
    return pd.DataFrame({"rna": table.iloc[:, 0].astype(str).to_numpy(object),
                         "other": table.iloc[:, 1].astype(str).to_numpy(object)})


def _read_file(path: str) -> pd.DataFrame:
    """A CSV/TSV (comma, tab or whitespace separated) of (rna, other) names, a header line kept as a row."""
    if not os.path.isfile(path):
        raise BiclumInputError(f"paired: file {path!r} does not exist; {FORMAT}.")
    try:
        table = pd.read_csv(path, sep=None, engine="python", header=None, dtype=str, keep_default_na=False,
                            skip_blank_lines=True, comment="#")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise BiclumInputError(f"paired: {path!r} cannot be read as a table ({err}); {FORMAT}.") from err
    if table.shape[1] == 1 and table.iloc[:, 0].str.contains(r"\s").any():  # whitespace-separated
        table = table.iloc[:, 0].str.split(r"\s+", expand=True)
    return _as_table(table)


def _checked(rna: np.ndarray, other: np.ndarray, rna_names: pd.Index, other_names: pd.Index) -> KnownPairs:
    """The pairs, each name known and each cell in one pair, else a BiclumInputError naming the fix."""
    in_r, in_o = pd.Index(rna).isin(rna_names), pd.Index(other).isin(other_names)
    bad = ~(in_r & in_o)
    if bad.any():
        swapped = pd.Index(other).isin(rna_names).mean() > 0.5 and pd.Index(rna).isin(other_names).mean() > 0.5
        raise BiclumInputError(
            f"paired: {int(bad.sum())} of {len(rna)} known pairs name cells that are not in the inputs "
            f"({int((~in_r).sum())} RNA names not in rna.obs_names, e.g. {list(rna[~in_r][:3])}; "
            f"{int((~in_o).sum())} other names not in other.obs_names, e.g. {list(other[~in_o][:3])}). "
            + ("The columns look swapped: put the RNA cell names first. " if swapped else "")
            + "Use the cell names of the inputs (obs_names; Seurat: colnames) and drop the pairs of cells that are "
              "not in them.")
    for side, names in (("RNA", rna), ("other", other)):
        dup = pd.Index(names)[pd.Index(names).duplicated()].unique()
        if len(dup):
            raise BiclumInputError(
                f"paired: {len(dup)} {side} cells are listed in more than one known pair (e.g. {list(dup[:3])}); a "
                f"cell is measured once, so it has one partner. Keep one pair per cell (e.g. "
                f"table.drop_duplicates(subset=['rna']).drop_duplicates(subset=['other'])) after checking which "
                f"pair is right.")
    return KnownPairs(rna=np.asarray(rna, dtype=object), other=np.asarray(other, dtype=object))


def with_pair_map(z: dict, space: dict, known: Optional[sp.csr_matrix]) -> dict:
    """The MNN search space ``z`` (modality -> cells x d) joined by the map the known pairs define between the
    modalities' own representations ``space`` (the encoder inputs: RNA PCA, ATAC LSI, ADT PCA): two ridge
    regressions fitted on the pairs, other -> RNA and RNA -> other (penalty picked by leave-one-out on the pairs,
    sklearn's RidgeCV), put every cell in both coordinate systems, [RNA, other], its own representation in one
    and its prediction in the other, each block a unit row. Joined to the unit rows of ``z`` so that the map
    weighs ``MAP_WEIGHT * n / (n + d)`` of the cosine (n pairs, d the mean dimension of the two representations:
    a map fitted on few pairs is coarse and weighs less). Memory linear in cells. ``z`` itself without known pairs
    or with fewer than :data:`MIN_MAP_PAIRS` (logged otherwise: the pairs, the penalties, the weight)."""
    if known is None or known.nnz < MIN_MAP_PAIRS:
        if known is not None and known.nnz:
            logger.info("known pairs: %d, too few for a map between the modalities (%d or more)", known.nnz,
                        MIN_MAP_PAIRS)
        return z
    from sklearn.linear_model import RidgeCV

    rows, cols = known.nonzero()
    x_rna, x_other = space["rna"], space["other"]
    to_rna = RidgeCV(alphas=RIDGE_ALPHAS).fit(x_other[cols], x_rna[rows])
    to_other = RidgeCV(alphas=RIDGE_ALPHAS).fit(x_rna[rows], x_other[cols])
    both = {"rna": (x_rna, to_other.predict(x_rna)), "other": (to_rna.predict(x_other), x_other)}
    dim = (x_rna.shape[1] + x_other.shape[1]) / 2
    weight = MAP_WEIGHT * len(rows) / (len(rows) + dim)
    logger.info("known pairs: MNN search space joined by their ridge maps (other -> RNA penalty %g, RNA -> other "
                "%g, leave-one-out on %d pairs), weight %.3g = %g x %d / (%d + %g dimensions)", to_rna.alpha_,
                to_other.alpha_, len(rows), weight, MAP_WEIGHT, len(rows), len(rows), dim)
    return {m: np.hstack([np.sqrt(1 - weight) * _normalize_rows(z[m]),
                          np.sqrt(weight / 2) * _normalize_rows(both[m][0]),
                          np.sqrt(weight / 2) * _normalize_rows(both[m][1])]).astype(np.float32)
            for m in ("rna", "other")}


class KnownCellPairs(CellPairs):
    """MNN pairs (``adjacency``, as found) with the known pairs in the partners the loop samples: a paired
    cell's partners are its true partner only; the other cells keep their MNN partners."""

    def __init__(self, mnn: CellPairs, known: sp.csr_matrix):
        super().__init__(mnn.adjacency)
        self.known = known

    @property
    def rna_partners(self) -> sp.csr_matrix:
        return _replace_rows(self.adjacency, self.known)

    @property
    def other_partners(self) -> sp.csr_matrix:
        return _replace_rows(self.adjacency.T.tocsr(), self.known.T.tocsr())


def with_known_pairs(pairs: CellPairs, known: Optional[sp.csr_matrix]) -> CellPairs:
    """``pairs`` with ``known`` (rna x other, see :meth:`KnownPairs.matrix`) as the paired cells' partners;
    ``pairs`` itself when there are none (training is then exactly that without known pairs)."""
    if known is None or known.nnz == 0:
        return pairs
    return KnownCellPairs(pairs, known)


def _replace_rows(partners: sp.csr_matrix, known: sp.csr_matrix) -> sp.csr_matrix:
    """The rows of ``partners`` that hold a known pair replaced by it (linear in the entries)."""
    paired = np.diff(known.indptr) > 0
    out = (sp.diags((~paired).astype(np.float32)) @ partners + known).tocsr()
    out.eliminate_zeros()
    out.sort_indices()
    out.data[:] = 1.0
    return out.astype(np.float32)
