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

CHUNK_ROWS = 50_000


def is_backed(adata) -> bool:
    return bool(getattr(adata, "isbacked", False))


def _nnz_of(ds) -> Optional[int]:
    group = getattr(ds, "group", None)
    try:
        return int(group["data"].shape[0]) if group is not None else None
    except (KeyError, TypeError):
        return None


def read_rows_csr(ds, n_rows: int, n_cols: int, chunk_rows: int = CHUNK_ROWS) -> sp.csr_matrix:
    """A backed matrix (anndata CSR dataset, h5py dense dataset, or anything row-sliceable) as CSR float32,
    read ``chunk_rows`` rows at a time."""
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
    try:  # the CSR arrays of the file, read straight into the output in slices of non-zeros
        indptr = np.asarray(group["indptr"][:], dtype=np.int64)
        step = max(1, chunk_rows * 1000)
        for a in range(0, nnz, step):
            b = min(a + step, nnz)
            data[a:b] = group["data"][a:b]
            indices[a:b] = group["indices"][a:b]
        if len(indptr) == n_rows + 1 and indptr[-1] == nnz:
            if nnz < 2**31:
                indptr = indptr.astype(np.int32)
            return sp.csr_matrix((data, indices, indptr), shape=(n_rows, n_cols))
    except (KeyError, TypeError, ValueError):
        pass
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


def load_backed(adata, layer: Optional[str], name: str, chunk_rows: int = CHUNK_ROWS):
    """An in-memory AnnData with the counts of a backed ``adata`` in ``.X`` (CSR float32); non-backed inputs are
    returned unchanged. Returns ``(adata, layer)`` with the layer to read afterwards (None once moved to X)."""
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
        X = read_rows_csr(ds, adata.n_obs, adata.n_vars, chunk_rows)
    logger.info("%s: read %d x %d counts (%d non-zeros) from the backed file %s", name, X.shape[0], X.shape[1],
                X.nnz, getattr(adata, "filename", "?"))
    return ad.AnnData(X=X, obs=adata.obs.copy(), var=adata.var.copy()), None
