"""Inputs in anndata's backed mode (``anndata.read_h5ad(path, backed="r")``): counts streamed from disk.

A backed AnnData keeps ``.X`` in the .h5ad file. biclum reads it in row chunks straight into one preallocated
CSR float32 matrix (memory O(non-zeros); no dense chunk, no second copy), so a million-cell file costs its
non-zeros in memory and nothing more. The user's object is not modified: a new in-memory AnnData with the
counts in ``.X`` and copies of ``obs`` / ``var`` is what the setup step works on.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import scipy.sparse as sp

from ._logging import logger
from .errors import BiclumInputError
from .validation import ValueScan

CHUNK_ROWS = 50_000
CHUNK_NNZ = 1 << 20  # values per read: a chunk is scanned while it is still in cache
PREFAULT_MIN_NNZ = 1 << 23  # from this size the output's tail is mapped in a background thread ...
PREFAULT_FROM = 0.35  # ... from this fraction on, while the head is read (balances the two cores)


def is_backed(adata) -> bool:
    return bool(getattr(adata, "isbacked", False))


def _nnz_of(ds) -> Optional[int]:
    group = getattr(ds, "group", None)
    try:
        return int(group["data"].shape[0]) if group is not None else None
    except (KeyError, TypeError):
        return None


def _read_into(dataset, out: np.ndarray, a: int, b: int) -> None:
    """``out[a:b] = dataset[a:b]`` without a temporary where the dataset can read into an array (h5py)."""
    read_direct = getattr(dataset, "read_direct", None)
    if read_direct is not None:
        read_direct(out, np.s_[a:b], np.s_[a:b])
    else:  # zarr and other array stores
        out[a:b] = dataset[a:b]


def _prefault_tail(arrays, start: int) -> "threading.Thread":
    """Write zeros to ``array[start:]`` of each array in a background thread, so that the pages of the fresh
    output arrays are mapped on a second core while the reader fills the head. Page mapping costs about as much
    as the read itself for a large first allocation (over 1 s/GB in a virtual machine that returns freed memory to
    its host); numpy's fill releases the GIL."""
    import threading

    def touch():
        for arr in arrays:
            arr[start:].fill(0)

    thread = threading.Thread(target=touch, name="biclum-prefault", daemon=True)
    thread.start()
    return thread


def read_rows_csr(ds, n_rows: int, n_cols: int, chunk_rows: int = CHUNK_ROWS,
                  scan: Optional[ValueScan] = None) -> sp.csr_matrix:
    """A backed matrix (anndata CSR dataset, h5py dense dataset, or anything row-sliceable) as CSR float32,
    read in chunks of whole rows (at most ``chunk_rows`` rows and ``CHUNK_NNZ`` non-zeros).

    The file's CSR arrays are read straight into the output arrays, each chunk scanned by ``scan`` (a
    ``biclum.validation.ValueScan``) while it is in cache, so the checks need no second pass over the matrix.
    """
    nnz = _nnz_of(ds)
    if nnz is None or getattr(ds, "format", "csr") != "csr":  # dense or CSC on disk: chunk list, then stack
        parts = []
        for a in range(0, n_rows, chunk_rows):
            block = ds[a:min(a + chunk_rows, n_rows)]
            parts.append(sp.csr_matrix(block, dtype=np.float32))
        return sp.vstack(parts, format="csr") if parts else sp.csr_matrix((0, n_cols), dtype=np.float32)
    data = np.empty(nnz, dtype=np.float32)
    indices = np.empty(nnz, dtype=np.int32 if n_cols < 2**31 else np.int64)
    group = ds.group
    try:  # the CSR arrays of the file, read straight into the output, chunk by chunk of whole rows
        indptr = np.asarray(group["indptr"][:])
        well_formed = len(indptr) == n_rows + 1 and int(indptr[0]) == 0 and int(indptr[-1]) == nnz
    except (KeyError, TypeError):
        well_formed = False
    if well_formed:
        if scan is not None:
            scan.reset(n_rows, n_cols, nnz)
        indptr = indptr.astype(np.int32 if nnz < 2**31 else np.int64, copy=False)
        data_ds, indices_ds, r = group["data"], group["indices"], 0
        tail = int(nnz * PREFAULT_FROM)
        prefault = _prefault_tail((data, indices), tail) if nnz >= PREFAULT_MIN_NNZ else None
        while r < n_rows:  # rows r .. e-1: at most chunk_rows rows, and at most CHUNK_NNZ values unless one row
            last_fitting = int(np.searchsorted(indptr, indptr[r] + CHUNK_NNZ, "right")) - 1
            e = min(n_rows, r + chunk_rows, max(r + 1, last_fitting))
            a, b = int(indptr[r]), int(indptr[e])
            if prefault is not None and b > tail:  # the tail is being zeroed: wait until that is done
                prefault.join()
                prefault = None
            _read_into(data_ds, data, a, b)
            _read_into(indices_ds, indices, a, b)
            if scan is not None:
                scan.update_rows(data[a:b], indices[a:b], r, indptr[r:e + 1])
            r = e
        if scan is not None:
            scan.complete = True
        return sp.csr_matrix((data, indices, indptr), shape=(n_rows, n_cols))
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    pos = 0
    for a in range(0, n_rows, chunk_rows):
        b = min(a + chunk_rows, n_rows)
        block = sp.csr_matrix(ds[a:b])
        k = block.nnz
        data[pos:pos + k] = block.data
        indices[pos:pos + k] = block.indices
        indptr[a + 1:b + 1] = pos + block.indptr[1:]
        pos += k
    if pos != nnz:
        raise BiclumInputError(f"the backed matrix reported {nnz} non-zeros but {pos} were read; the .h5ad file "
                               f"may be damaged (rewrite it with anndata).")
    if pos < 2**31:
        indptr = indptr.astype(np.int32)
    return sp.csr_matrix((data, indices, indptr), shape=(n_rows, n_cols))


def load_backed(adata, layer: Optional[str], name: str, chunk_rows: int = CHUNK_ROWS,
                scan: Optional[ValueScan] = None):
    """An in-memory AnnData with the counts of a backed ``adata`` in ``.X`` (CSR float32); non-backed inputs are
    returned unchanged. Returns ``(adata, layer)`` with the layer to read afterwards (None once moved to X).

    A ``ValueScan`` passed as ``scan`` is filled while the file is read (``scan.complete`` tells whether it was);
    ``biclum.validation.check_modality(..., scan=scan)`` then checks the values without reading them again."""
    if not is_backed(adata):
        return adata, layer
    import anndata as ad

    if layer is not None:
        if layer not in adata.layers:
            raise BiclumInputError(f"{name}: layer {layer!r} does not exist; available layers: "
                                   f"{list(adata.layers.keys()) or 'none'}.")
        ds = adata.layers[layer]
    else:
        ds = adata.X
        if ds is None:
            raise BiclumInputError(f"{name}: the backed file has no X; name the layer that holds the counts.")
    if sp.issparse(ds) or isinstance(ds, np.ndarray):
        X = sp.csr_matrix(ds, dtype=np.float32)
    else:
        X = read_rows_csr(ds, adata.n_obs, adata.n_vars, chunk_rows, scan)
    logger.info("%s: read %d x %d counts (%d non-zeros) from the backed file %s", name, X.shape[0], X.shape[1],
                X.nnz, getattr(adata, "filename", "?"))
    return ad.AnnData(X=X, obs=adata.obs.copy(), var=adata.var.copy()), None
