"""Benchmark inputs: a dataset (shared by name, or a user's own AnnData / .h5ad files) prepared once for every
method: paired cells put in the same order, labels and batches pulled out of obs."""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Optional, Tuple

from .._logging import logger
from ..errors import BiclumInputError


@dataclass
class BenchmarkInput:
    """One dataset of a benchmark.

    Either ``name`` of a shared dataset (:func:`biclum.datasets.load_shared`: ``snareseq``, ``eccite``,
    ``pbmc_small``, ``bmmc``), loaded lazily, or a user's own ``rna`` / ``other``: AnnData objects or paths of
    .h5ad files (raw counts; ``other`` = ATAC peaks or gene-level ATAC, or ADT) with ``modality`` and
    ``annotation`` (gene table, ATAC only). ``paired``: None = detect (the same cell names in both).
    ``label_key``: obs column of cell types in both. ``rna_batch_key`` / ``other_batch_key``: obs column of the
    batches within each modality (``batch_key``: the same column in both); they add the within-modality mixing
    metrics (pass ``config={"rna_batch_key": ..., "other_batch_key": ...}`` to have biclum use them too).
    """

    name: str
    rna: Any = None
    other: Any = None
    modality: Optional[str] = None
    annotation: Optional[str] = None
    label_key: Optional[str] = "cell_type"
    paired: Optional[bool] = None
    data_dir: Optional[str] = None
    batch_key: Optional[str] = None
    rna_batch_key: Optional[str] = None
    other_batch_key: Optional[str] = None
    _prepared: Optional[dict] = field(default=None, repr=False)

    def batch_keys(self) -> Tuple[Optional[str], Optional[str]]:
        return self.rna_batch_key or self.batch_key, self.other_batch_key or self.batch_key

    def load(self) -> dict:
        """The prepared inputs: dict rna, other, modality, annotation, paired, rna_labels, other_labels,
        rna_batch, other_batch."""
        if self._prepared is None:
            rna, other, modality, annotation = self.rna, self.other, self.modality, self.annotation
            if rna is None or other is None:
                from ..datasets import load_shared

                rna, other, modality, annotation = load_shared(self.name, self.data_dir)
            rna, other = _read(rna, "--rna"), _read(other, "--other")
            if modality not in ("atac", "protein"):
                raise BiclumInputError(f"dataset {self.name!r}: modality must be 'atac' or 'protein', got "
                                       f"{modality!r}.")
            rna_key, other_key = self.batch_keys()
            self._prepared = prepare_input(rna, other, modality, annotation, label_key=self.label_key,
                                           paired=self.paired, rna_batch_key=rna_key, other_batch_key=other_key)
        return self._prepared

    def spec(self, tmpdir: Path) -> dict:
        """JSON-able reference a worker process can load (in-memory data is written to tmpdir as h5ad)."""
        keys = {"name": self.name, "label_key": self.label_key, "paired": self.paired, "batch_key": self.batch_key,
                "rna_batch_key": self.rna_batch_key, "other_batch_key": self.other_batch_key}
        if self.rna is None or self.other is None:
            return {**keys, "data_dir": self.data_dir}
        paths = []
        for side, data in (("rna", self.rna), ("other", self.other)):
            path = data if isinstance(data, (str, Path)) else tmpdir / f"{self.name}_{side}.h5ad"
            if not isinstance(data, (str, Path)) and not Path(path).exists():
                data.write_h5ad(path)
            paths.append(str(path))
        annotation = self.annotation if self.annotation is None or isinstance(self.annotation, (str, Path)) \
            else _write_annotation(self.annotation, tmpdir / f"{self.name}_annotation.tsv")
        return {**keys, "rna": paths[0], "other": paths[1], "modality": self.modality,
                "annotation": None if annotation is None else str(annotation)}

    @classmethod
    def from_spec(cls, spec: dict) -> "BenchmarkInput":
        return cls(**{k: v for k, v in spec.items() if k in {f.name for f in fields(cls)}})


def _read(data, what):
    """An AnnData as given, or read from an .h5ad path."""
    if not isinstance(data, (str, Path)):
        return data
    from ..cli import read_h5ad

    return read_h5ad(str(data), what)


def _write_annotation(table, path: Path) -> Path:
    table.to_csv(path, sep="\t", index=False)
    return path


def _as_input(obj) -> BenchmarkInput:
    if isinstance(obj, BenchmarkInput):
        return obj
    if isinstance(obj, str):
        return BenchmarkInput(obj)
    raise BiclumInputError(f"a dataset must be a shared dataset name or a BenchmarkInput, got {type(obj).__name__}.")


def prepare_input(rna, other, modality: str, annotation=None, *, label_key: Optional[str] = "cell_type",
                  paired: Optional[bool] = None, rna_batch_key: Optional[str] = None,
                  other_batch_key: Optional[str] = None) -> dict:
    """Align paired data and pull the labels out (inputs are not modified).

    Paired = both modalities hold the same set of unique cell names (or ``paired=True``, which then requires it);
    the other modality is then reordered to the RNA order. Labels: ``obs[label_key]`` of each modality, None when
    the column is missing from either. Batches within each modality: ``obs[rna_batch_key]`` and
    ``obs[other_batch_key]`` (None when not given; a BiclumInputError when the column is missing).
    """
    same = (rna.obs_names.is_unique and other.obs_names.is_unique and rna.n_obs == other.n_obs
            and set(rna.obs_names) == set(other.obs_names))
    if paired is None:
        paired = same
    elif paired and not same:
        raise BiclumInputError("paired=True but the RNA and other cell names are not the same set of unique names; "
                               "rename the cells so a cell has the same name in both, or use paired=False.")
    if paired and not rna.obs_names.equals(other.obs_names):
        other = other[rna.obs_names].copy()
    have = label_key is not None and label_key in rna.obs and label_key in other.obs
    if label_key is not None and not have:
        logger.info("benchmark: no obs[%r] in both modalities; label metrics will be skipped", label_key)
    return {
        "rna": rna, "other": other, "modality": modality, "annotation": annotation, "paired": bool(paired),
        "rna_labels": rna.obs[label_key].astype(str).to_numpy() if have else None,
        "other_labels": other.obs[label_key].astype(str).to_numpy() if have else None,
        "rna_batch": _batches(rna, rna_batch_key, "RNA"), "other_batch": _batches(other, other_batch_key, "other"),
    }


def named_inputs(datasets, files=()) -> dict:
    """name -> :func:`prepare_input` of each shared dataset in ``datasets`` (:func:`biclum.datasets.load_shared`)
    and of each (name, RNA .h5ad, ATAC .h5ad, annotation) in ``files`` (``--files`` of the studies)."""
    import anndata as ad

    from ..datasets import load_shared

    out = {name: prepare_input(*load_shared(name)) for name in datasets}
    for name, rna, atac, annotation in files:
        out[name] = prepare_input(ad.read_h5ad(rna), ad.read_h5ad(atac), "atac", annotation)
    return out


def _batches(adata, key: Optional[str], what: str):
    if key is None:
        return None
    if key not in adata.obs:
        raise BiclumInputError(f"benchmark: the {what} data has no obs column {key!r} for its batches (columns: "
                               f"{list(adata.obs.columns)[:10]}); give an existing column as the batch key.")
    return adata.obs[key].astype(str).to_numpy()


def other_in_gene_space(prep: dict):
    """The other modality in gene space, as the model maps it (:func:`biclum.model.to_gene_space`)."""
    from ..model import to_gene_space

    return to_gene_space(prep["other"], prep["modality"], prep["annotation"])


