"""Mosaic integration: any number of datasets, each holding one or more of RNA, ATAC and protein on its cells.

``biclum.integrate_mosaic(datasets, ...)`` takes ``{name: {"rna": AnnData, "atac": AnnData, ...}}`` (or a muon
MuData per dataset, its ``.mod`` keyed by modality), e.g. a 10x Multiome bridge (RNA + ATAC), an RNA-only
reference and an ATAC-only query (Seurat's bridge integration), or a multiome and a CITE-seq dataset (three
modalities). Every cell gets one embedding in one space.

How (see :func:`plan_models` and :func:`align_spaces`):

* **One BiCLUM per modality pair with RNA.** For each non-RNA modality M (ATAC, protein) one model RNA <-> M is
  trained on the M of every dataset holding M, and the RNA of every dataset that holds M or RNA alone. Within a
  model, a dataset is a batch of its modality (``dataset_as_batch``), and the cells a dataset measures in both
  RNA and M (the same obs_names in both) are known pairs (:mod:`biclum.known_pairs`): the exact positives of the
  cell-level loss. The rest are integrated as unpaired cells. A bridge is thus a dataset with both modalities.
* **Features across datasets.** RNA and protein of several datasets are joined on their shared features (logged:
  how many of each dataset's features are kept). ATAC of several datasets with different peaks is first moved
  to gene activity dataset by dataset (peaks of different calls do not match), then joined on the genes.
* **One space for three modalities.** With two models (RNA <-> ATAC and RNA <-> protein) the first (ATAC) is the
  reference space; the other is rotated onto it by orthogonal Procrustes (norms and angles kept, so each model's
  own alignment is unchanged). The rotation is fitted on the cells both models embed (RNA of an RNA-only dataset)
  when there are at least ``2 * latent_dim`` of them; else on mutual nearest neighbours between the two models'
  RNA cells on the genes their RNA inputs share (:func:`rna_matches`; NeurIPS BMMC multiome + CITE starters: 100
  genes); else on the feature embeddings of the RNA genes both models keep (the bilateral model places a gene
  where the cells that express it lie). The choice and its fit (mean cosine of the matched rows) are logged.
  Cells embedded by both models take the reference model's embedding.

Inputs are never modified. Cell names only need to be unique within a dataset (they are joined with the dataset
name inside, and given back as they were).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Dict, List, Optional

import numpy as np
import pandas as pd

from ._logging import logger
from .errors import BiclumInputError
from .mosaic_model import MosaicModel

ALIASES = {"rna": "rna", "gex": "rna", "atac": "atac", "peaks": "atac", "chromatin": "atac",
           "protein": "protein", "prot": "protein", "adt": "protein"}
OTHER_ORDER = ("atac", "protein")  # the first modality present gives the reference space
DATASET_KEY = "biclum_dataset"
SEP = "::"
MIN_SHARED_GENES = 10  # RNA genes two models' inputs must share to match their RNA cells


@dataclass
class Dataset:
    """One dataset: its name and its modalities (canonical name -> AnnData, the user's object, never changed)."""

    name: str
    modalities: Dict[str, object]

    def cells(self, modality: str) -> pd.Index:
        return pd.Index(self.modalities[modality].obs_names.astype(str))

    def paired_cells(self, other: str) -> pd.Index:
        """Cells measured in both RNA and ``other`` (the same obs_names in both)."""
        if "rna" not in self.modalities or other not in self.modalities:
            return pd.Index([])
        return self.cells("rna").intersection(self.cells(other))


@dataclass
class MosaicResult:
    """``datasets[name][modality]``: AnnData with the input's obs, no X, ``obsm["X_<key>"]`` (and for RNA
    ``varm["<key>_loadings"]``); ``cells``: one AnnData of every cell (obs ``dataset``, ``modality``, ``cell``;
    ``obsm["X_<key>"]``), for neighbours / UMAP / label transfer across all of them; ``model``: the
    :class:`~biclum.mosaic_model.MosaicModel` (``models``: the fitted BiCLUM per non-RNA modality;
    ``rotations``: the orthogonal map applied to each model's space; ``transform`` embeds new cells; ``save``)."""

    datasets: Dict[str, Dict[str, object]]
    cells: object
    model: MosaicModel

    @property
    def models(self) -> Dict[str, object]:
        return self.model.models

    @property
    def rotations(self) -> Dict[str, np.ndarray]:
        return self.model.rotations

    def __getitem__(self, name: str) -> Dict[str, object]:
        return self.datasets[name]


# ---------------------------------------------------------------------------------------------------- inputs
def read_datasets(datasets) -> List[Dataset]:
    """``datasets`` checked: a mapping of names to {modality: AnnData} or MuData; a one-paragraph
    BiclumInputError naming the fix for an empty dataset, an unknown modality, a non-AnnData, or the modalities
    of one dataset that share no cell."""
    if not isinstance(datasets, Mapping) or not len(datasets):
        raise BiclumInputError(
            f"datasets: got {type(datasets).__name__}; give a dict of dataset name -> {{modality: AnnData}} (or a "
            f"MuData per dataset), e.g. {{'bridge': {{'rna': rna_b, 'atac': atac_b}}, 'reference': {{'rna': "
            f"rna_ref}}, 'query': {{'atac': atac_q}}}}.")
    out = [_read_dataset(str(name), entry) for name, entry in datasets.items()]
    for ds in out:
        _check_cells(ds)
    return out


def _read_dataset(name: str, entry) -> Dataset:
    mods = getattr(entry, "mod", entry)  # a MuData holds its modalities in .mod
    if not isinstance(mods, Mapping):
        raise BiclumInputError(
            f"dataset {name!r}: got a {type(entry).__name__}; give {{modality: AnnData}} (modalities: rna, atac, "
            f"protein), e.g. {{'rna': adata}}, or a MuData.")
    if not len(mods):
        raise BiclumInputError(
            f"dataset {name!r} holds no modality; give it at least one of rna, atac, protein (e.g. "
            f"{{'rna': adata}}) or leave the dataset out.")
    canon: Dict[str, object] = {}
    for key, adata in mods.items():
        mod = ALIASES.get(str(key).lower())
        if mod is None:
            raise BiclumInputError(
                f"dataset {name!r}: unknown modality {key!r}; name each modality one of rna (gex), atac (peaks), "
                f"protein (prot, adt).")
        if mod in canon:
            raise BiclumInputError(f"dataset {name!r}: modality {mod!r} is given twice ({list(mods)}); give each "
                                   f"modality once per dataset, or split the data into two datasets.")
        if not (hasattr(adata, "obs_names") and hasattr(adata, "X")):
            raise BiclumInputError(f"dataset {name!r}, {key!r}: got a {type(adata).__name__}; give an AnnData of "
                                   f"cells x features with counts in X.")
        canon[mod] = adata
    return Dataset(name, canon)


def _check_cells(ds: Dataset) -> None:
    """The modalities of one dataset are measured on the same cells: they must share cell names."""
    for mod in ds.modalities:
        dup = ds.cells(mod)[ds.cells(mod).duplicated()]
        if len(dup):
            raise BiclumInputError(f"dataset {ds.name!r}, {mod}: {len(dup)} cell names occur twice (e.g. "
                                   f"{list(dup[:3])}); make them unique (adata.obs_names_make_unique()).")
    if "rna" not in ds.modalities or len(ds.modalities) < 2:
        return
    for other in (m for m in ds.modalities if m != "rna"):
        shared = ds.paired_cells(other)
        if not len(shared):
            raise BiclumInputError(
                f"dataset {ds.name!r}: its rna and {other} share no cell name (rna e.g. "
                f"{list(ds.cells('rna')[:2])}, {other} e.g. {list(ds.cells(other)[:2])}), but the modalities of one "
                f"dataset must be measured on the same cells. Give the same cell the same name in both, or put "
                f"the two modalities in two datasets if they are different cells.")
        n_r, n_o = len(ds.cells("rna")), len(ds.cells(other))
        logger.info("dataset %r: %d cells measured in rna and %s (known pairs); %d rna-only, %d %s-only",
                    ds.name, len(shared), other, n_r - len(shared), n_o - len(shared), other)


def plan_models(data: List[Dataset]) -> Dict[str, List[Dataset]]:
    """Non-RNA modality -> the datasets its RNA <-> M model trains on (those holding M; RNA-only datasets join
    every model). A BiclumInputError when the modalities cannot be integrated (no RNA, or RNA alone)."""
    present = {m for ds in data for m in ds.modalities}
    others = [m for m in OTHER_ORDER if m in present]
    if "rna" not in present or not others:
        found = ", ".join(f"{ds.name}: {'+'.join(ds.modalities)}" for ds in data)
        raise BiclumInputError(
            f"datasets ({found}): biclum integrates RNA with ATAC and/or protein through gene space, so the "
            f"datasets together need RNA {'and ATAC or protein' if 'rna' in present else '(no dataset holds RNA)'}"
            f". Add an RNA dataset (e.g. the multiome's RNA) or the other modality, or use integrate() for two "
            f"inputs.")
    plan = {m: [ds for ds in data if m in ds.modalities or set(ds.modalities) == {"rna"}] for m in others}
    for m, members in plan.items():
        if not any("rna" in ds.modalities for ds in members):
            raise BiclumInputError(
                f"modality {m}: no dataset holding {m} or RNA alone has RNA ({[ds.name for ds in members]}), so "
                f"{m} cannot be tied to gene space. Add the RNA of a dataset with {m} (a multiome / CITE-seq), or "
                f"an RNA-only dataset.")
    return plan


# ---------------------------------------------------------------------------------------------------- joining
def _tagged(adata, dataset: str, layer: Optional[str]):
    """A light AnnData of ``adata``'s counts (X or ``layer``) with cells named dataset::cell and obs[DATASET_KEY]
    (the matrix is shared, never modified)."""
    import anndata as ad

    obs = adata.obs.copy()
    obs[DATASET_KEY] = dataset
    obs.index = _inner_names(dataset, adata.obs_names)
    X = adata.X if layer is None else adata.layers[layer]
    var = adata.var.copy()  # peak coordinates (chrom/start/end) travel with the peaks
    var.index = adata.var_names.astype(str)
    return ad.AnnData(X=X, obs=obs, var=var)


def join_modality(parts: list, modality: str, what: str):
    """The tagged AnnData of several datasets joined on their shared features (logged); a BiclumInputError
    when they share none."""
    import anndata as ad

    if len(parts) == 1:
        return parts[0]
    shared = parts[0].var_names
    for p in parts[1:]:
        shared = shared.intersection(p.var_names, sort=False)
    sizes = ", ".join(f"{p.obs[DATASET_KEY].iloc[0]} {p.n_vars}" for p in parts)
    if not len(shared):
        raise BiclumInputError(
            f"{what}: the datasets share no {modality} feature (features: {sizes}); name the features alike in "
            f"every dataset (the same gene symbols / antibody names), e.g. with var_names set from a symbol column.")
    logger.info("%s: %d datasets joined on %d shared %s features (of %s)", what, len(parts), len(shared), modality,
                sizes)
    return ad.concat([p[:, shared] for p in parts], join="inner", merge="first")


def model_inputs(members: List[Dataset], other: str, annotation, layers: dict, gene_activity_kwargs: dict):
    """(rna, other, paired table) of the RNA <-> ``other`` model: the tagged, joined inputs and the known pairs
    (cells of one dataset measured in both)."""
    rna = join_modality([_tagged(ds.modalities["rna"], ds.name, layers.get("rna")) for ds in members
                         if "rna" in ds.modalities], "rna", f"rna for the rna <-> {other} model")
    parts = [_tagged(ds.modalities[other], ds.name, layers.get(other)) for ds in members if other in ds.modalities]
    if other == "atac" and len(parts) > 1 and len({tuple(p.var_names) for p in parts}) > 1:
        from .setup import to_gene_space

        logger.info("atac: the datasets' peaks differ, so each dataset's peaks are moved to gene activity first")
        parts = [_with_obs(to_gene_space(p, "atac", annotation, gene_activity_kwargs, rna_genes=rna.var_names), p)
                 for p in parts]
    joined = join_modality(parts, other, f"{other} for the rna <-> {other} model")
    names = np.concatenate([_inner_names(ds.name, ds.paired_cells(other)).to_numpy(object) for ds in members])
    paired = pd.DataFrame({"rna": names, "other": names}) if len(names) else None
    return rna, joined, paired


def _inner_names(dataset: str, cells) -> pd.Index:
    """``dataset::cell`` for every cell name (vectorised)."""
    return pd.Index(f"{dataset}{SEP}" + pd.Index(cells).astype(str), dtype=object)


def _with_obs(gene_level, tagged):
    gene_level.obs = tagged.obs.loc[gene_level.obs_names].copy()
    return gene_level


# ---------------------------------------------------------------------------------------------------- one space
def procrustes(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The orthogonal R minimising ||source @ R - target|| (rows matched; both unit rows)."""
    u, _, vt = np.linalg.svd(source.T @ target, full_matrices=False)
    return (u @ vt).astype(np.float32)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def rna_matches(rna_a, rna_b, emb_a: pd.DataFrame, emb_b: pd.DataFrame, seed: int = 0):
    """Mutual nearest neighbours between the RNA cells of two models (different datasets), on the genes both
    RNA inputs measure: a joint PCA of those genes (log-normalised on each cell's whole library), each cell's
    coordinates smoothed over its neighbours in its own model's embedding, then MNN (k as the cross-modal
    search). Returns (names in a, names in b) of the pairs, or None with fewer than :data:`MIN_SHARED_GENES`
    genes or no pair."""
    from .pairs import auto_mnn_k, auto_smooth_k, mutual_nearest_neighbors, neighbor_smooth
    from .preprocessing import as_csr32, joint_shared_pca, library_sizes, normalize_log1p

    genes = rna_a.var_names.intersection(rna_b.var_names, sort=False)
    if len(genes) < MIN_SHARED_GENES:
        return None
    norms = []
    for adata, emb in ((rna_a, emb_a), (rna_b, emb_b)):
        counts = as_csr32(adata[emb.index].X)
        libsize = library_sizes(counts)
        norms.append(normalize_log1p(counts[:, adata.var_names.get_indexer(genes)], 1e4, libsize))
    z_a, z_b = joint_shared_pca(norms[0], norms[1], min(30, len(genes) - 1), seed)
    k_smooth = auto_smooth_k(len(emb_a), len(emb_b))
    z_a = neighbor_smooth(z_a, emb_a.values, k_smooth, seed=seed)
    z_b = neighbor_smooth(z_b, emb_b.values, k_smooth, seed=seed)
    pairs = mutual_nearest_neighbors(z_a, z_b, auto_mnn_k(len(emb_a), len(emb_b)), seed=seed).adjacency.tocoo()
    if not pairs.nnz:
        return None
    logger.info("one space: %d MNN pairs between the RNA cells of the two models on %d shared genes",
                pairs.nnz, len(genes))
    return emb_a.index[pairs.row], emb_b.index[pairs.col]


def _anchor_rows(ref: str, m: str, embeddings: dict, genes: dict, rna_inputs: dict, min_rows: int, seed: int):
    """(source rows in model m, target rows in the reference model, what they are) for the rotation of m."""
    cells = embeddings[ref]["rna"].index.intersection(embeddings[m]["rna"].index)
    if len(cells) >= min_rows:
        return embeddings[m]["rna"].loc[cells].values, embeddings[ref]["rna"].loc[cells].values, \
            f"{len(cells)} RNA cells both models embed"
    matches = rna_matches(rna_inputs[ref], rna_inputs[m], embeddings[ref]["rna"], embeddings[m]["rna"], seed)
    if matches is not None and len(matches[0]) >= min_rows:
        return embeddings[m]["rna"].loc[matches[1]].values, embeddings[ref]["rna"].loc[matches[0]].values, \
            f"{len(matches[0])} MNN pairs of RNA cells on shared genes (only {len(cells)} shared cells)"
    shared_genes = genes[ref].index.intersection(genes[m].index)
    if len(shared_genes) >= min_rows // 2:
        return genes[m].loc[shared_genes].values, genes[ref].loc[shared_genes].values, \
            f"the embeddings of {len(shared_genes)} RNA genes both models share (too few shared or matched cells)"
    raise BiclumInputError(
        f"the rna <-> {m} and rna <-> {ref} models share {len(cells)} cells and {len(shared_genes)} RNA genes, too "
        f"few (at least {min_rows} cells, or {MIN_SHARED_GENES} genes for matching) to put their cells in one "
        f"space. Add an RNA-only dataset (it joins both models), or RNA with more genes in common.")


def align_spaces(embeddings: Dict[str, Dict[str, pd.DataFrame]], genes: Dict[str, pd.DataFrame],
                 rna_inputs: Dict[str, object], min_rows: int, seed: int = 0) -> Dict[str, np.ndarray]:
    """Model (non-RNA modality) -> the rotation onto the first model's space. ``embeddings[m]["rna"]``: the RNA
    cells of model m (index dataset::cell); ``genes[m]``: its RNA gene embeddings; ``rna_inputs[m]``: its RNA
    counts. Fitted on the cells both models embed when there are ``min_rows`` of them, else on MNN pairs of
    their RNA cells on shared genes (:func:`rna_matches`), else on the shared genes' embeddings (logged, with the
    fit)."""
    models = list(embeddings)
    ref = models[0]
    out = {ref: np.eye(next(iter(genes.values())).shape[1], dtype=np.float32)}
    for m in models[1:]:
        src, tgt, on = _anchor_rows(ref, m, embeddings, genes, rna_inputs, min_rows, seed)
        src, tgt = _unit(src), _unit(tgt)
        rot = procrustes(src, tgt)
        logger.info("one space: the rna <-> %s model rotated onto the rna <-> %s model by orthogonal Procrustes on "
                    "%s; mean cosine of the matched rows %.3f (before %.3f)", m, ref, on,
                    float(np.mean(np.sum((src @ rot) * tgt, axis=1))), float(np.mean(np.sum(src * tgt, axis=1))))
        out[m] = rot
    return out


# ---------------------------------------------------------------------------------------------------- the call
def integrate_mosaic(datasets, annotation=None, *, protein_mapping=None, layers: Optional[dict] = None,
                     dataset_as_batch: bool = True, known_pairs: bool = True, gene_activity_kwargs: Optional[dict] = None, seed: int = 0,
                     max_epochs: Optional[int] = None, preset: str = "default", progress: bool = True,
                     key_added: str = "biclum", **config) -> MosaicResult:
    """Integrate several datasets holding RNA, ATAC and/or protein, paired or not, into one embedding.

    ``datasets``: ``{name: {"rna": AnnData, "atac": AnnData, "protein": AnnData}}`` (any subset per dataset;
    aliases gex, peaks, prot, adt) or ``{name: MuData}``; raw counts in X (or ``layers={"rna": "counts"}``). The
    modalities of one dataset are the same cells, matched by obs_names (those found in both are known pairs).
    ``annotation``: gene annotation for ATAC peaks; ``protein_mapping``: antibody -> gene (as in
    :func:`biclum.integrate`). ``dataset_as_batch``: each dataset is a batch within its modality (obs
    ``biclum_dataset``). ``known_pairs=False`` treats every cell as unpaired (to compare with unpaired runs).
    ``**config``: :class:`biclum.config.BiclumConfig` fields, for every model.
    See the module docstring for the design; returns a :class:`MosaicResult`. Inputs are never modified.
    """
    from .config import BiclumConfig
    from .model import BiCLUM
    from .setup import gene_activity_options

    data = read_datasets(datasets)
    plan = plan_models(data)
    layers = {ALIASES.get(str(k).lower(), k): v for k, v in (layers or {}).items()}
    logger.info("mosaic: %d datasets (%s); models: %s", len(data), ", ".join(
        f"{ds.name}: {'+'.join(ds.modalities)}" for ds in data), ", ".join(
        f"rna <-> {m} on {[ds.name for ds in members]}" for m, members in plan.items()))
    models, embeddings, genes, rna_inputs = {}, {}, {}, {}
    ga_options = gene_activity_options(BiclumConfig.from_preset(preset, **config), gene_activity_kwargs)
    for m, members in plan.items():
        rna, other, paired = model_inputs(members, m, annotation, layers, ga_options)
        if not known_pairs and paired is not None:
            logger.info("known_pairs=False: the %d cells measured in rna and %s are treated as unpaired", len(paired), m)
            paired = None
        batch = {side: DATASET_KEY if dataset_as_batch and a.obs[DATASET_KEY].nunique() > 1 else None
                 for side, a in (("rna", rna), ("other", other))}
        model = BiCLUM(rna, other, m, annotation, preset=preset, seed=seed, protein_mapping=protein_mapping,
                       gene_activity_kwargs=gene_activity_kwargs, rna_batch_key=batch["rna"],
                       other_batch_key=batch["other"], paired=paired, **config)
        model.fit(max_epochs, progress=progress)
        models[m] = model
        embeddings[m] = {side: pd.DataFrame(model.get_cell_embeddings(side), index=model.cell_names[side])
                         for side in ("rna", "other")}
        genes[m] = model.get_feature_embeddings("rna")
        rna_inputs[m] = rna
    latent = next(iter(genes.values())).shape[1]
    rotations = align_spaces(embeddings, genes, rna_inputs, 2 * latent, seed)
    return _results(data, plan, models, embeddings, rotations, key_added)


def _results(data, plan, models, embeddings, rotations, key_added) -> MosaicResult:
    """Per dataset and modality AnnData with the input's obs (names as given) and the embedding in the one space."""
    import anndata as ad

    placed = {}  # modality -> embeddings in the one space (index dataset::cell), the first model's kept
    for m in plan:
        for side, emb in embeddings[m].items():
            mod = "rna" if side == "rna" else m
            rotated = pd.DataFrame(emb.values @ rotations[m], index=emb.index)
            prev = placed.get(mod)
            placed[mod] = rotated if prev is None else pd.concat([prev, rotated[~rotated.index.isin(prev.index)]])
    out, rows, obs = {}, [], []
    for ds in data:
        out[ds.name] = {}
        for mod, adata in ds.modalities.items():
            pos = placed[mod].index.get_indexer(_inner_names(ds.name, adata.obs_names))
            kept = np.flatnonzero(pos >= 0)
            if len(kept) < adata.n_obs:
                logger.info("dataset %r, %s: %d cells without counts on the model's features have no embedding",
                            ds.name, mod, adata.n_obs - len(kept))
            emb = placed[mod].to_numpy(np.float32)[pos[kept]]
            res = ad.AnnData(obs=adata.obs.iloc[kept].copy(), var=pd.DataFrame(index=adata.var_names.copy()))
            res.obsm[f"X_{key_added}"] = emb
            if mod == "rna":
                _add_loadings(res, models, rotations, key_added)
            res.uns[key_added] = {"dataset": ds.name, "modality": mod}
            out[ds.name][mod] = res
            rows.append(emb)
            obs.append(pd.DataFrame({"dataset": ds.name, "modality": mod,
                                     "cell": res.obs_names.astype(str)}))
    table = pd.concat(obs, ignore_index=True)
    table.index = (table["dataset"] + SEP + table["modality"] + SEP + table["cell"]).to_numpy()
    cells = ad.AnnData(obs=table.astype({"dataset": "category", "modality": "category"}))
    cells.obsm[f"X_{key_added}"] = np.vstack(rows)
    return MosaicResult(out, cells, MosaicModel(models, rotations))


def _add_loadings(res, models, rotations, key_added) -> None:
    """The RNA genes' embeddings (the first model holding each gene, rotated) as varm loadings."""
    loadings = np.zeros((res.n_vars, next(iter(rotations.values())).shape[1]), dtype=np.float32)
    filled = np.zeros(res.n_vars, dtype=bool)
    for m, model in models.items():
        fe = model.get_feature_embeddings("rna")
        pos = res.var_names.get_indexer(fe.index)
        take = (pos >= 0) & ~filled[np.maximum(pos, 0)]
        loadings[pos[take]] = fe.values[take] @ rotations[m]
        filled[pos[take]] = True
    res.varm[f"{key_added}_loadings"] = loadings
    res.var[f"{key_added}_feature"] = filled
