"""R <-> Python bridge used by the R package (through reticulate).

* :mod:`~biclum.bridge.codec`: the one tagged format of values each way (sparse matrices as the ``(x, i, p,
  dim)`` vectors of an R ``dgCMatrix``, data frames as typed columns, results as reductions), never relying on
  reticulate's automatic SciPy/pandas conversion (broken with reticulate < 1.29 and current SciPy/pandas 2);
* :mod:`~biclum.bridge.entry`: the calls R makes (integrate, mosaic, project, downstream);
* :mod:`~biclum.bridge.relay`: logs, progress, warnings and errors of those calls, sent to R.

R users do not call this package directly: see the R functions ``RunBiCLUM()``, ``runBiCLUM()``,
``ProjectBiCLUM()``, ``seurat_to_anndata()`` ... .
"""
from __future__ import annotations

from .codec import (Reduction, anndata_from_vectors, anndata_to_vectors, as_anndata, columns_to_frame, decode,
                    encode, frame_to_columns, reduction_from_result, sparse_from_vectors, sparse_to_vectors)
from .entry import downstream_from_r, integrate_from_r, mosaic_from_r, project_from_r, runtime_info

__all__ = [
    "sparse_to_vectors", "sparse_from_vectors", "frame_to_columns", "columns_to_frame", "anndata_from_vectors",
    "anndata_to_vectors", "read_h5ad_vectors", "as_anndata", "decode", "encode", "Reduction",
    "reduction_from_result", "integrate_from_r", "mosaic_from_r", "project_from_r", "runtime_info", "downstream_from_r",
]


def read_h5ad_vectors(path: str, layer: str | None = None) -> dict:
    """Read an ``.h5ad`` file and return :func:`anndata_to_vectors` of it."""
    import anndata as ad

    return anndata_to_vectors(ad.read_h5ad(str(path)), layer=layer)
