"""Input validation: one setup step that checks both modalities before anything is built.

Every error names the object, the problem and the fix. Cells with zero counts, which biclum drops, produce a
``BiclumWarning`` that says what was done; automatic choices that need nothing from the user (a batch size or k
capped to the cells available) are logged; an ``.X`` that is not counts
is replaced by ``layers["counts"]`` when that exists (``load_checked``, logged) and is an error otherwise.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import Optional

import numpy as np
import scipy.sparse as sp

from ._logging import logger
from .errors import BiclumInputError, BiclumWarning

MIN_CELLS = 10  # below this a modality cannot be integrated (PCA, metacells and kNN need a few cells)
SCAN_CHUNK = 1 << 23  # values scanned per chunk


def _matrix(adata, layer: Optional[str], name: str):
    if layer is None:
        X = adata.X
        if X is None:
            raise BiclumInputError(f"{name}: .X is empty; put the counts in .X or name the layer that holds them "
                                   f"(layer=...).")
        return X
    if layer not in adata.layers:
        raise BiclumInputError(f"{name}: layer {layer!r} does not exist; available layers: "
                               f"{list(adata.layers.keys()) or 'none'}.")
    return adata.layers[layer]


def _values(X) -> np.ndarray:
    if sp.issparse(X):
        return X.data
    return np.asarray(X).ravel()


class ValueScan:
    """What the checks need from a matrix's stored values, accumulated chunk by chunk: NaN/Inf and negative
    counts, the minimum, non-integer values (in about ``INTEGER_SAMPLE`` values evenly spaced over the whole
    matrix), the features with a non-zero value and, when rows are scanned whole, each row's total (float32: only
    compared with 0). One pass, no temporary the size of the matrix; filled either by ``check_modality`` or while
    a backed file is streamed (``biclum.backed``)."""

    INTEGER_SAMPLE = 1_000_000

    def __init__(self, n_rows: int = 0, n_features: int = 0, n_values: int = 0):
        self.reset(n_rows, n_features, n_values)

    def reset(self, n_rows: int, n_features: int, n_values: int = 0) -> None:
        """Start a scan of a matrix of ``n_rows`` x ``n_features`` with ``n_values`` stored values (0: unknown;
        then every value is checked for integrality)."""
        self.n_rows, self.n_features = n_rows, n_features
        self.kind = None
        self.n_bad = self.n_neg = self.n_sampled = self._position = 0
        self._stride = max(1, int(n_values) // self.INTEGER_SAMPLE)
        self.vmin = np.inf
        self.non_integer: Optional[float] = None  # the first non-integer value seen, if any
        self.detected = np.zeros(n_features, dtype=bool)
        self._n_unseen = n_features
        self.row_totals: Optional[np.ndarray] = None  # set by update_rows
        self.complete = False

    def update(self, values: np.ndarray, feature_index: Optional[np.ndarray] = None) -> None:
        """Scan a chunk of stored values; ``feature_index`` gives each value's feature (CSR column indices)."""
        self.kind = values.dtype.kind  # numeric: checked by check_modality; backed reads are float32
        if not values.size:
            return
        low, high = values.min(), values.max()  # NaN propagates through both; Inf shows in one of them
        if self.kind == "f" and not (np.isfinite(low) and np.isfinite(high)):
            self.n_bad += int(values.size - np.count_nonzero(np.isfinite(values)))
        if self.n_bad:
            return
        self.vmin = min(self.vmin, float(low))
        if low < 0:
            self.n_neg += int(np.count_nonzero(values < 0))
        if self.kind == "f" and self.non_integer is None:
            self._check_integers(values)
        self._position += values.size
        if feature_index is not None:
            self._detect(feature_index if low > 0 else feature_index[values != 0])

    def _check_integers(self, values: np.ndarray) -> None:
        """Check every ``_stride``-th value of the matrix (positions counted over all chunks)."""
        sample = values[(-self._position) % self._stride::self._stride]
        off = np.flatnonzero(sample != np.round(sample))
        if off.size:
            self.non_integer = float(sample[off[0]])
        self.n_sampled += sample.size

    def _detect(self, feature_index: np.ndarray) -> None:
        """Mark the features of these non-zero values. Once most features are seen, only the unseen ones are
        looked up (a gather, cheaper than a scatter), and once all are seen nothing is done."""
        if self._n_unseen == 0 or not feature_index.size:
            return
        if self._n_unseen > self.n_features // 8:
            self.detected[feature_index] = True
        else:
            unseen = ~self.detected
            hit = np.take(unseen, feature_index)
            if not hit.any():
                return
            self.detected[feature_index[hit]] = True
        self._n_unseen = int(self.n_features - np.count_nonzero(self.detected))

    def update_rows(self, values: np.ndarray, feature_index: np.ndarray, row_start: int, indptr: np.ndarray) -> None:
        """Scan the whole rows ``row_start .. row_start + len(indptr) - 2`` of a CSR matrix; ``indptr`` is their
        slice of the row pointer, relative to ``values``."""
        self.update(values, feature_index)
        if self.row_totals is None:
            self.row_totals = np.zeros(self.n_rows, dtype=np.float32)  # compared with 0 only
        lengths = np.diff(indptr)
        filled = lengths > 0
        if self.n_bad or not filled.any():
            return
        rows = np.arange(row_start, row_start + len(lengths))[filled]
        self.row_totals[rows] = np.add.reduceat(values, indptr[:-1][filled] - indptr[0])


class NotCountsError(BiclumInputError):
    """The checked matrix holds non-integer values (``load_checked`` then tries ``layers["counts"]``)."""


@dataclass
class ModalityCheck:
    keep_cells: np.ndarray  # boolean mask of cells that enter the model
    n_dropped: int


def check_anndata(adata, name: str) -> None:
    try:
        import anndata
    except ImportError:  # pragma: no cover
        anndata = None
    if anndata is not None and not isinstance(adata, anndata.AnnData):
        raise BiclumInputError(f"{name}: expected an AnnData (cells x features), got {type(adata).__name__}; "
                               f"wrap a matrix with anndata.AnnData(X, obs=..., var=...).")
    if getattr(adata, "isbacked", False):
        return


def check_modality(adata, name: str, layer: Optional[str] = None, expect_counts: bool = True,
                   scan: Optional[ValueScan] = None) -> ModalityCheck:
    """Check one modality: shape, names, finiteness, sign, integrality; find cells with zero counts.

    ``scan`` is a complete ``ValueScan`` of the same matrix made while it was read (``biclum.backed.load_backed``);
    the values are then not scanned a second time."""
    check_anndata(adata, name)
    n_cells, n_features = adata.shape
    if n_cells == 0:
        raise BiclumInputError(f"{name}: the modality has zero cells; pass an AnnData with at least {MIN_CELLS} cells.")
    if n_features == 0:
        raise BiclumInputError(f"{name}: the modality has zero features; pass the counts matrix (cells x features).")
    for axis, names in (("cell", adata.obs_names), ("feature", adata.var_names)):
        if not names.is_unique:
            dup = names[names.duplicated()].unique()[:5].tolist()
            fix = "adata.obs_names_make_unique()" if axis == "cell" else "adata.var_names_make_unique()"
            raise BiclumInputError(f"{name}: duplicated {axis} names, e.g. {dup}; make them unique ({fix}).")
    X = _matrix(adata, layer, name)
    if scan is None or not scan.complete:
        values = _values(X)
        scan = ValueScan(n_cells, n_features, values.size)
        if values.dtype.kind not in "biuf":
            raise BiclumInputError(f"{name}: the matrix has dtype {values.dtype}; it must hold numbers (counts).")
        csr_index = X.indices if sp.issparse(X) and X.format == "csr" else None
        for a in range(0, values.size, SCAN_CHUNK):  # chunked: no temporary the size of the matrix
            scan.update(values[a:a + SCAN_CHUNK], None if csr_index is None else csr_index[a:a + SCAN_CHUNK])
        if sp.issparse(X) and X.format == "csc":
            scan.detected = np.diff(X.indptr) > 0
        elif csr_index is None:
            scan.detected = np.asarray(abs(X).sum(axis=0)).ravel() != 0
    n_bad, n_neg, vmin = scan.n_bad, scan.n_neg, scan.vmin
    if n_bad:
        raise BiclumInputError(f"{name}: the matrix holds {n_bad} NaN/Inf values; biclum needs raw counts "
                               f"(replace or remove them, e.g. X[np.isnan(X)] = 0 if they mean 'not detected').")
    if n_neg:
        raise BiclumInputError(f"{name}: the matrix has {n_neg} negative values (min "
                               f"{vmin:.3g}); biclum needs raw, non-negative counts, not scaled or centred "
                               f"data (use the counts layer: layer='counts').")
    if expect_counts and scan.non_integer is not None:
        where = ".X" if layer is None else f"layers[{layer!r}]"
        raise NotCountsError(
            f"{name}: {where} holds non-integer values (e.g. {scan.non_integer:.4g}), so it is not raw counts "
            f"(log-normalised or scaled data?), and biclum needs raw counts (its normalisation and HVG selection "
            f"model counts). Pass the layer that holds the raw counts (layer=..., CLI --rna-layer/--other-layer); "
            f"corrected counts that are only near-integers (e.g. SoupX) can be rounded first.")
    totals = scan.row_totals if scan.row_totals is not None else np.asarray(X.sum(axis=1)).ravel()
    keep = totals > 0
    n_dropped = int((~keep).sum())
    if n_dropped == n_cells:
        raise BiclumInputError(f"{name}: every cell has zero counts; check that .X (or the layer) holds the counts.")
    if n_dropped:
        warnings.warn(f"{name}: {n_dropped} of {n_cells} cells have zero counts and were dropped "
                      f"(they carry no signal to embed).", BiclumWarning, stacklevel=3)
    if int(keep.sum()) < MIN_CELLS:
        raise BiclumInputError(f"{name}: only {int(keep.sum())} cells with counts; biclum needs at least "
                               f"{MIN_CELLS} per modality.")
    n_zero_genes = int((~scan.detected).sum())
    if n_zero_genes:
        logger.info("%s: %d features have zero counts in every cell; they are ignored.", name, n_zero_genes)
    return ModalityCheck(keep_cells=keep, n_dropped=n_dropped)


def load_checked(adata, layer: Optional[str], name: str, gene_symbols: Optional[str] = None):
    """Read a backed input into memory (``biclum.backed.load_backed``), name its features by ``gene_symbols``
    (``biclum.genes``) and check it (``check_modality``). When ``.X`` is not counts (non-integer values) and no
    layer was named, ``layers["counts"]`` is used instead, with a log line. Returns ``(adata, layer, check)``."""
    from .backed import load_backed
    from .genes import with_gene_symbols

    scan = ValueScan()
    data, used = load_backed(adata, layer, name, scan=scan)
    data = with_gene_symbols(data, gene_symbols, name)
    try:
        return data, used, check_modality(data, name, used, scan=scan)
    except NotCountsError:
        if layer is not None or "counts" not in adata.layers.keys():
            raise
    logger.info("%s: .X holds non-integer values (not raw counts); using layers['counts'], which holds the counts",
                name)
    try:
        return load_checked(adata, "counts", name, gene_symbols)
    except NotCountsError as err:
        raise NotCountsError(f"{name}: neither .X nor layers['counts'] holds raw counts (both hold non-integer "
                             f"values); biclum needs raw counts: put them in .X or in a layer and name it "
                             f"(layer=..., CLI --rna-layer/--other-layer).") from err


#: fewer shared genes than this and the MNN search rests on few genes (a warning); ``joint_input="auto"`` is off
FEW_SHARED_GENES = 20


def check_shared_genes(genes_rna, genes_other, minimum: int, other_name: str = "other") -> np.ndarray:
    shared = np.intersect1d(np.asarray(genes_rna, dtype=str), np.asarray(genes_other, dtype=str))
    if len(shared) < minimum:
        ex_r = list(genes_rna[:3])
        ex_o = list(genes_other[:3])
        raise BiclumInputError(
            f"rna and {other_name} share {len(shared)} genes but biclum needs at least {minimum}. Feature names "
            f"must be gene symbols in both (rna: {ex_r}, {other_name}: {ex_o}); for ATAC give an annotation of "
            f"the right genome, for protein a mapping of antibodies to genes, or lower min_shared_genes.")
    return shared


def cap_to_data(value: int, n_cells: int, what: str) -> int:
    """Cap batch size / k to the number of cells. An automatic choice that needs nothing from the user: logged
    (INFO), not warned."""
    if value > n_cells:
        logger.info("%s=%d is larger than the %d cells available; using %d", what, value, n_cells, n_cells)
        return n_cells
    return value


def check_h5ad_path(path, what: str) -> str:
    path = os.fspath(path)
    if not os.path.exists(path):
        raise BiclumInputError(f"{what}: file {path!r} does not exist; give the path of an .h5ad file.")
    if not path.endswith(".h5ad"):
        raise BiclumInputError(f"{what}: {path!r} is not an .h5ad file; convert it (anndata.AnnData.write_h5ad, "
                               f"or from R with biclum's bridge) and pass the .h5ad.")
    return path
