"""The setup stage: validated inputs -> one immutable :class:`Prepared` object holding all that training needs.

Order: validate both modalities (and their batch columns) first, move the other modality into gene space, select
features (seurat_v3 HVGs per modality, union), fit the preprocessing (normalise, scale, PCA; peak LSI for the
ATAC encoder; the joint shared-gene block with ``joint_input``), centre the encoder inputs per batch, find the MNN
pairs (and cross-batch pairs), build the feature sketches and the reconstruction targets. Every automatic choice
is logged and kept in ``Prepared.choices``.
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import pandas as pd

from ._logging import logger
from .backed import is_backed
from .batches import (SHIFT_ONLY_MIXING, BatchCentering, BatchShifts, batch_codes, batch_labels, cross_batch_pairs,
                      per_batch_feature_means, shifted_mixing)
from .config import BiclumConfig
from .errors import BiclumInputError, BiclumWarning
from .genes import reconcile_gene_names
from .joint_input import auto_joint_input, fit_joint_inputs
from .known_pairs import read_known_pairs, with_known_pairs, with_pair_map
from .module import MODALITIES
from .pairs import CellPairs, auto_mnn_k, auto_smooth_k, feature_pairs, mutual_nearest_neighbors, neighbor_smooth
from .preprocessing import ModalityPreprocessor, PeakLSI, as_csr32, joint_shared_pca, seurat_v3_hvg
from .sketch import feature_sketch, joint_metacells, metacell_assignments
from .state import FittedSetup
from .training import TrainingData
from .validation import FEW_SHARED_GENES, check_shared_genes, load_checked

N_STAGES = 6


@dataclass(frozen=True)
class Prepared:
    """The setup stage's result, never modified: training reads ``data``; a model keeps ``fitted``."""

    fitted: FittedSetup      # features, preprocessors, sketches, peak LSI, batch centring, annotation, renames
    data: TrainingData       # encoder inputs (batch-centred), targets, sketches, MNN and cross-batch partners
    pairs: CellPairs         # the MNN pairs found at setup (with the known pairs in their partners, if any)
    known_pairs: Optional[object]  # known pairs (rna x other CSR of the training cells), or None
    cell_names: dict         # modality -> training cell names (cells dropped on the way excluded)
    input_var_names: dict    # "rna" / "other_genes" -> var names of the inputs (gene space for other)
    gene_var: pd.DataFrame   # var of the other modality in gene space
    batch_labels: dict       # modality -> batch label per training cell, or None
    choices: dict            # automatic choices (components, k of the MNN search and smoothing, ...)
    timings: dict            # seconds per stage


def auto_n_pcs(n_cells: int, n_features: int, requested: Optional[int], what: str) -> int:
    """Components of a modality's PCA/LSI (the cell encoder's input): ``requested`` when given, else about one
    per 10 cells between 10 and 100 (on 150 cells, 100 components are mostly noise: 5-NN accuracy within the
    ArchR PBMC's ATAC is 0.73 with 100 LSI components and 0.83 with 15); always below the features and cells."""
    n = int(requested) if requested else int(min(100, max(10, round(n_cells / 10))))
    capped = max(1, min(n, n_features - 1, n_cells - 1))
    logger.info("%s: %d components%s", what, capped, "" if requested and capped == n else
                f" (auto from {n_cells} cells, {n_features} features)" if not requested else " (capped by the data)")
    return capped


def to_gene_space(other, modality: str, annotation=None, gene_activity_kwargs: Optional[dict] = None,
                  protein_mapping=None, rna_genes=None):
    """The other modality as a cells x genes AnnData (gene activity for ATAC, mapped genes for protein).
    ``rna_genes``: the RNA's genes, for ``gene_activity_kwargs={"mode": "auto"}`` (:func:`atac_to_genes`)."""
    from . import prior

    if modality == "atac":
        return atac_to_genes(other, () if rna_genes is None else rna_genes, annotation, gene_activity_kwargs or {})
    return prior.protein_to_gene(other, mapping=protein_mapping)


def gene_activity_options(config: BiclumConfig, gene_activity_kwargs: Optional[dict] = None) -> dict:
    """The keyword arguments of :func:`biclum.prior.gene_activity`: the config's ``gene_activity`` mode (may be
    ``"auto"``, see :func:`atac_to_genes`), overridden by the user's ``gene_activity_kwargs``."""
    return {"mode": config.preprocess.gene_activity, **(gene_activity_kwargs or {})}


GENE_ACTIVITY_PARAMS = ("mode", "upstream", "downstream", "decay", "max_distance", "keep_empty", "duplicates")


def fitted_gene_activity_options(gene_space_info: dict) -> dict:
    """The :func:`biclum.prior.gene_activity` arguments a model's ATAC gene activity was made with (its
    ``gene_space_info``), so that query cells are moved to gene space the same way."""
    return {k: gene_space_info[k] for k in GENE_ACTIVITY_PARAMS if k in gene_space_info}


#: ``gene_activity="auto"``: widen gene-body activity to distance-weighted below this many genes shared with the RNA
#: (the MNN search's joint PCA has 50 components; the NeurIPS multiome starter's 599 peaks share 38 genes with its
#: RNA through their gene bodies and 103 distance-weighted, FOSCTTM 0.455 -> 0.422, seeds 0-2, and the ArchR PBMC
#: keeps its transfer: benchmarks/results/gene_activity_rule.md; SNARE-seq, whose gene bodies share 1,668 genes,
#: is not helped by the wider window: benchmarks/results/gene_activity_rule_snareseq.md)
WIDEN_BELOW_SHARED = 100


def atac_to_genes(atac, rna_genes, annotation, options: dict):
    """ATAC peaks as gene activity with :func:`biclum.prior.gene_activity` ``**options``. Mode ``"auto"``: gene
    body, widened to distance-weighted when the gene bodies share fewer than :data:`WIDEN_BELOW_SHARED` genes with
    ``rna_genes`` (case-insensitive) and the wider window shares more; the choice and both counts are logged."""
    from . import prior

    mode = options.get("mode", "gene_body")
    if mode == "auto" and not len(rna_genes):  # nothing to count shared genes against
        mode = "gene_body"
    if mode != "auto":
        return prior.gene_activity(atac, annotation, **{**options, "mode": mode})
    rna = pd.Index(np.asarray(rna_genes, dtype=str)).str.upper()

    def shared(ga) -> int:
        return int(pd.Index(np.asarray(ga.var_names, dtype=str)).str.upper().isin(rna).sum())

    body = prior.gene_activity(atac, annotation, **{**options, "mode": "gene_body"})
    n_body = shared(body)
    if body.uns["gene_activity"].get("gene_level") or n_body >= WIDEN_BELOW_SHARED:
        logger.info("gene_activity=auto: gene_body (%d genes shared with the RNA, %d or more)", n_body,
                    WIDEN_BELOW_SHARED)
        return body
    wide = prior.gene_activity(atac, annotation, **{**options, "mode": "distance_weighted"})
    n_wide = shared(wide)
    chosen = wide if n_wide > n_body else body
    logger.info("gene_activity=auto: %s (gene bodies share %d genes with the RNA, fewer than %d; distance-weighted "
                "peaks within %d kb share %d)", chosen.uns["gene_activity"]["mode"], n_body, WIDEN_BELOW_SHARED,
                wide.uns["gene_activity"]["max_distance"] // 1000, n_wide)
    return chosen


def counts_view(adata, layer, keep=None):
    """A light AnnData whose X is the counts as CSR float32, restricted to the ``keep`` cells (a boolean mask).
    The matrix is shared with ``adata`` when it already is CSR float32 and every cell is kept (never modified)."""
    import anndata as ad

    X = adata.X if layer is None else adata.layers[layer]
    obs = adata.obs
    if keep is not None and not np.all(keep):
        idx = np.flatnonzero(keep)
        X = X[idx]
        obs = obs.iloc[idx]
    return ad.AnnData(X=as_csr32(X), obs=obs.copy(), var=adata.var.copy())


def renamed(gene_other, renames: dict):
    """``gene_other`` with its genes renamed to the RNA's spelling (``renames``: other gene -> rna gene)."""
    if not renames:
        return gene_other
    import anndata as ad

    var = gene_other.var.copy()
    var.index = pd.Index([renames.get(g, g) for g in var.index])
    return ad.AnnData(X=gene_other.X, obs=gene_other.obs, var=var, uns=dict(gene_other.uns))


@dataclass
class _Inputs:
    """Validated inputs: counts views (CSR float32, empty cells dropped) and batch labels per modality."""

    views: dict
    labels: dict


@dataclass
class _GeneSpace:
    """Both modalities over genes: counts, var names, the gene-space AnnData of the other, peaks kept."""

    counts: dict
    var_names: dict
    gene_other: object
    renames: dict
    info: dict
    peaks: Optional[tuple]  # (ATAC peaks of the kept cells, peak names) when the encoder reads the peak LSI


class _Stages:
    """Logs each stage, reports it to ``callback(stage, step, total, message)`` and times it."""

    def __init__(self, callback: Optional[Callable]):
        self.callback, self.timings, self.t0 = callback, {}, time.perf_counter()
        self.t = self.t0

    def start(self, i: int, message: str) -> None:
        logger.info(message)
        if self.callback is not None:
            self.callback("setup", i, N_STAGES, message)

    def done(self, name: str, since_start: bool = False) -> None:
        now = time.perf_counter()
        self.timings[name] = now - (self.t0 if since_start else self.t)
        self.t = now


def prepare(rna, other, modality: str, annotation, config: BiclumConfig, *, rna_layer: Optional[str] = None,
            other_layer: Optional[str] = None, gene_activity_kwargs: Optional[dict] = None, protein_mapping=None,
            gene_symbols: Optional[dict] = None, batch_keys: Optional[dict] = None,
            progress_callback: Optional[Callable] = None, paired=None) -> Prepared:
    """Validate the inputs, then fit everything training needs (see the module docstring). Inputs are never
    modified. ``gene_symbols`` / ``batch_keys``: {"rna": column or None, "other": column or None}; ``paired``:
    known pairs (:mod:`biclum.known_pairs`)."""
    gene_symbols = gene_symbols or {m: None for m in MODALITIES}
    batch_keys = batch_keys or {m: None for m in MODALITIES}
    stages, choices = _Stages(progress_callback), {}
    stages.start(1, "validating inputs")
    given = read_known_pairs(paired, rna.obs_names, other.obs_names)
    inputs = _validated(rna, other, {"rna": rna_layer, "other": other_layer}, gene_symbols, batch_keys)
    del rna, other  # a backed input's in-memory copy is now held by the views only
    stages.start(2, f"moving the {modality} modality into gene space")
    gs = _gene_space(inputs, modality, annotation, config, gene_activity_kwargs, protein_mapping)
    stages.done("gene_space", since_start=True)
    known = None if given is None else given.matrix(inputs.views["rna"].obs_names, gs.gene_other.obs_names)
    choices["n_known_pairs"] = 0 if known is None else int(known.nnz)
    stages.start(3, "selecting highly variable genes (seurat_v3, per modality, union)")
    features, shared = _select_features(gs, config, modality)
    stages.done("hvg")
    stages.start(4, "normalising, scaling and PCA per modality")
    preprocessors, pcs, norms = _preprocess(gs, features, config, choices)
    peak_lsi = _peak_lsi(gs, config, pcs, choices)
    joint_inputs, encoder_inputs, joint_scores = _joint_input(norms, pcs, shared, features, config, choices)
    stages.done("preprocess")
    centering, encoder_inputs, shifts, cross_pairs = _centre_batches(encoder_inputs, pcs, inputs.labels, config,
                                                                     choices)
    pcs = {m: encoder_inputs[m] if joint_inputs[m] is None else
           np.ascontiguousarray(encoder_inputs[m][:, :pcs[m].shape[1]]) for m in MODALITIES}  # own part
    stages.start(5, "finding mutual nearest neighbours between modalities")
    cell_pairs, joint = _find_pairs(norms, pcs, shared, features, inputs.labels, shifts, config, choices, known,
                                    joint_scores)
    cell_pairs = with_known_pairs(cell_pairs, known)
    batch_partners = {m: None if inputs.labels[m] is None or not cross_pairs else cross_batch_pairs(
        pcs[m], inputs.labels[m], config.pairs.batch_mnn_k, config.pairs.exact_knn_max, config.train.seed, m)
        for m in MODALITIES}
    stages.done("pairs")
    stages.start(6, "building feature sketches (metacell means)")
    sketches = _sketches(norms, pcs, joint, preprocessors, config)
    stages.done("sketch")
    fitted = FittedSetup(features=features, preprocessors=preprocessors, sketches=sketches, peak_lsi=peak_lsi,
                         batch_centering=centering, annotation_rows=_feature_annotation(gs.gene_other, modality),
                         gene_renames=gs.renames, gene_space_info=gs.info, joint_input=joint_inputs)
    data = _training_data(gs, fitted, encoder_inputs, norms, cell_pairs, batch_partners, inputs.labels, shifts,
                          config, known)
    stages.done("setup_total", since_start=True)
    return Prepared(fitted=fitted, data=data, pairs=cell_pairs, known_pairs=known, cell_names={
        "rna": np.asarray(inputs.views["rna"].obs_names), "other": np.asarray(gs.gene_other.obs_names)},
        input_var_names={"rna": np.asarray(inputs.views["rna"].var_names),
                         "other_genes": np.asarray(gs.gene_other.var_names)},
        gene_var=gs.gene_other.var.copy(), batch_labels=inputs.labels, choices=choices, timings=stages.timings)


def _validated(rna, other, layers: dict, gene_symbols: dict, batch_keys: dict) -> _Inputs:
    """Both inputs checked (:func:`biclum.validation.load_checked`) as counts views, and their batch labels."""
    views, labels = {}, {}
    for m, adata in (("rna", rna), ("other", other)):
        loaded = is_backed(adata)  # read into a new AnnData of biclum's own
        adata, layer, check = load_checked(adata, layers[m], m, gene_symbols[m])
        views[m] = adata if loaded and check.keep_cells.all() else counts_view(adata, layer, check.keep_cells)
    for m in MODALITIES:
        labels[m] = batch_labels(views[m], batch_keys[m], m)
    return _Inputs(views, labels)


def _gene_space(inputs: _Inputs, modality: str, annotation, config: BiclumConfig, ga_kwargs,
                protein_mapping) -> _GeneSpace:
    """The other modality moved into gene space and renamed to the RNA's spelling when only a case-insensitive
    match finds enough shared genes (:func:`biclum.genes.reconcile_gene_names`); cells left without counts are
    dropped (with their batch labels)."""
    rna_view, other_view = inputs.views["rna"], inputs.views["other"]
    gene_other = to_gene_space(other_view, modality, annotation, gene_activity_options(config, ga_kwargs),
                               protein_mapping, rna_genes=rna_view.var_names)
    renames = reconcile_gene_names(rna_view.var_names, gene_other.var_names, config.preprocess.min_shared_genes,
                                   rna_view.var, gene_other.var, modality)
    gene_other = renamed(gene_other, renames)
    info = dict(gene_other.uns.get("gene_activity", gene_other.uns.get("protein_to_gene", {})))
    X_rna, X_other = as_csr32(rna_view.X), as_csr32(gene_other.X)
    keep = np.asarray(X_other.sum(axis=1)).ravel() > 0
    if not keep.all():
        warnings.warn(f"other: {int((~keep).sum())} cells have no counts on any gene after the move to gene space "
                      f"and were dropped.", BiclumWarning, stacklevel=4)
        X_other, gene_other = X_other[keep], gene_other[keep]
        labels = inputs.labels["other"]
        inputs.labels["other"] = None if labels is None else labels[keep]
    peaks = None
    if _uses_peak_lsi(modality, info, config):
        peaks = other_view.X if keep.all() else other_view.X[np.flatnonzero(keep)]
        peaks = (peaks, np.asarray(other_view.var_names))
    return _GeneSpace(counts={"rna": X_rna, "other": X_other},
                      var_names={"rna": np.asarray(rna_view.var_names, dtype=object),
                                 "other": np.asarray(gene_other.var_names, dtype=object)},
                      gene_other=gene_other, renames=renames, info=info, peaks=peaks)


def _uses_peak_lsi(modality: str, info: dict, config: BiclumConfig) -> bool:
    """Whether the ATAC cell encoder reads the peak LSI (``atac_encoder_input``); peaks_lsi on gene-level input
    raises before any fitting."""
    mode = config.preprocess.atac_encoder_input
    use = modality == "atac" and mode != "gene_activity" and not info.get("gene_level", False)
    if mode == "peaks_lsi" and not use:
        raise BiclumInputError("atac_encoder_input='peaks_lsi' needs ATAC peaks, but the input is gene-level; "
                               "pass the peak matrix or use atac_encoder_input='gene_activity'.")
    return use


def _select_features(gs: _GeneSpace, config: BiclumConfig, modality: str) -> tuple[dict, np.ndarray]:
    """The union of both modalities' seurat_v3 HVGs, in each modality's var order; and the shared genes."""
    p = config.preprocess
    union: set = set()
    for m in MODALITIES:
        top, _ = seurat_v3_hvg(gs.counts[m], p.n_top_genes, p.hvg_span)
        union.update(gs.var_names[m][top])
    features = {m: np.array([g for g in gs.var_names[m] if g in union], dtype=object) for m in MODALITIES}
    shared = check_shared_genes(features["rna"], features["other"], p.min_shared_genes, other_name=modality)
    if len(shared) < FEW_SHARED_GENES:
        warnings.warn(f"rna and {modality} share only {len(shared)} genes: the MNN search rests on them "
                      f"(smoothed over each modality's own neighbours). Results are less reliable than with "
                      f"{FEW_SHARED_GENES} or more; check the gene names or the antibody mapping.", BiclumWarning,
                      stacklevel=4)
    logger.info("features: %d rna, %d %s (gene space), %d shared genes",
                len(features["rna"]), len(features["other"]), modality, len(shared))
    return features, shared


def _preprocess(gs: _GeneSpace, features: dict, config: BiclumConfig, choices: dict) -> tuple[dict, dict, dict]:
    """Per modality: the fitted preprocessor, the PCA scores (encoder input) and the normalised features."""
    p, seed = config.preprocess, config.train.seed
    preprocessors, pcs, norms = {}, {}, {}
    for m in MODALITIES:
        n_pcs = auto_n_pcs(gs.counts[m].shape[0], len(features[m]), p.n_pcs, m)
        choices[f"n_pcs_{m}"] = n_pcs
        preprocessors[m], pcs[m], norms[m] = ModalityPreprocessor.fit(
            gs.counts[m], gs.var_names[m], features[m], p.target_sum, n_pcs, p.max_value, seed, p.pca_max_cells)
    return preprocessors, pcs, norms


def _peak_lsi(gs: _GeneSpace, config: BiclumConfig, pcs: dict, choices: dict) -> Optional[PeakLSI]:
    """The ATAC encoder's input as the LSI of the peaks (replaces ``pcs["other"]``), when ``gs.peaks`` is set."""
    if gs.peaks is None:
        return None
    peaks, names = gs.peaks
    p = config.preprocess
    n = auto_n_pcs(peaks.shape[0], peaks.shape[1], p.n_lsi or p.n_pcs, "ATAC LSI")
    choices["n_lsi"] = n
    lsi, pcs["other"] = PeakLSI.fit(peaks, names, n, config.train.seed, p.pca_max_cells)
    logger.info("ATAC cell encoder input: LSI of %d peaks (%d components)", len(lsi.peaks), pcs["other"].shape[1])
    return lsi


def _joint_input(norms: dict, pcs: dict, shared: np.ndarray, features: dict, config: BiclumConfig,
                 choices: dict) -> tuple[dict, dict, Optional[dict]]:
    """With ``joint_input=K``: per modality the :class:`~biclum.joint_input.JointInput`, the encoder input
    with its block appended (:mod:`biclum.joint_input`) and the joint PCA scores the block came from; else no
    joint inputs, ``pcs`` as they are and None."""
    p = config.preprocess
    n_pca = min(config.pairs.n_shared_pcs, len(shared) - 1)
    k = auto_joint_input(p.joint_input, len(shared), n_pca)
    choices["joint_input"] = k
    if k <= 0:
        return {m: None for m in MODALITIES}, pcs, None
    shared_norms = dict(zip(MODALITIES, _shared_norms(norms, shared, features)))
    fitted, blocks, scores = fit_joint_inputs(shared_norms, shared, pcs, k, n_pca, config.train.seed,
                                              p.target_sum, p.max_value, p.pca_max_cells)
    return fitted, {m: np.hstack([pcs[m], blocks[m]]).astype(np.float32) for m in MODALITIES}, scores


def _centre_batches(encoder_inputs: dict, pcs: dict, labels: dict, config: BiclumConfig,
                    choices: dict) -> tuple[dict, dict, dict, bool]:
    """Batch shifts removed from the encoder inputs (and scaling with ``batch_scale``), see
    :mod:`biclum.batches`; the shifts are measured on the modality's own ``pcs`` (the encoder inputs' first
    columns). Returns the centring, the corrected inputs, the MNN shifts (modality -> BatchShifts, or None for
    batch means) and whether cross-batch MNN pairs are used."""
    p, x = config.preprocess, encoder_inputs
    shifts, cross_pairs = _batch_shifts(pcs, labels, config, choices)
    centering = {m: None if labels[m] is None else BatchCentering.fit(x[m], labels[m], p.batch_scale, shifts[m])
                 for m in MODALITIES}
    return centering, {m: x[m] if labels[m] is None else centering[m].transform(x[m], labels[m])
                       for m in MODALITIES}, shifts, cross_pairs


def _batch_shifts(pcs: dict, labels: dict, config: BiclumConfig, choices: dict) -> tuple[dict, bool]:
    """(modality -> MNN shifts or None, cross-batch pairs used). ``batch_centre``: "means" (no shifts, pairs),
    "mnn" (shifts, pairs) or "auto": the shifts without pairs when every modality's batches mix at least
    :data:`biclum.batches.SHIFT_ONLY_MIXING` after them (the batch effect is about a shift, and cross-batch pairs
    would only pull cells of different states together), else "means" (pairs correct what a shift cannot)."""
    centre, seed, exact_max = config.preprocess.batch_centre, config.train.seed, config.pairs.exact_knn_max
    batched = [m for m in MODALITIES if labels[m] is not None]
    none = {m: None for m in MODALITIES}
    if centre == "means" or not batched:
        return none, True
    found = {**none, **{m: BatchShifts.find(pcs[m], labels[m], seed, exact_max, m) for m in batched}}
    if centre == "mnn":
        return found, True
    mixing = {m: shifted_mixing(pcs[m], found[m], seed, exact_max) for m in batched}
    shift_only = min(mixing.values()) >= SHIFT_ONLY_MIXING
    choices.update(batch_centre="mnn" if shift_only else "means", cross_batch_pairs=not shift_only)
    logger.info("batch_centre='auto': batch mixing after the MNN shifts %s; %s", {m: round(v, 3) for m, v in
                mixing.items()}, f"all >= {SHIFT_ONLY_MIXING}: MNN shifts, no cross-batch pairs" if shift_only
                else f"below {SHIFT_ONLY_MIXING}: batch means and cross-batch MNN pairs")
    return (found if shift_only else none), not shift_only


def _find_pairs(norms: dict, pcs: dict, shared: np.ndarray, features: dict, labels: dict, shifts: dict,
                config: BiclumConfig, choices: dict, known=None,
                joint_scores: Optional[dict] = None) -> tuple[CellPairs, dict]:
    """MNN pairs in the joint PCA of the shared genes (joined by the map of the ``known`` pairs when given, see
    :func:`biclum.known_pairs.with_pair_map`), each modality's coordinates first smoothed over its own
    neighbourhoods (``smooth_k``, see :func:`biclum.pairs.neighbor_smooth`); k from :func:`auto_mnn_k`.
    ``joint_scores``: that joint PCA already computed without batch codes (by :func:`_joint_input`), used when
    no modality needs its batches scaled apart. Returns the pairs and the joint space."""
    cfg, seed = config, config.train.seed
    n_shared_pcs = min(cfg.pairs.n_shared_pcs, len(shared) - 1)
    codes = [None if labels[m] is None or shifts[m] is not None else batch_codes(labels[m]) for m in MODALITIES]
    z = joint_scores if joint_scores is not None and all(c is None for c in codes) else \
        _joint_space(norms, shared, features, n_shared_pcs, codes, config)
    z = {m: z[m] if shifts[m] is None else z[m] - shifts[m].apply_to_means(z[m])[shifts[m].codes]
         for m in MODALITIES}
    z = with_pair_map(z, pcs, known)  # z itself without known pairs
    n = {m: z[m].shape[0] for m in MODALITIES}
    smooth_k = auto_smooth_k(n["rna"], n["other"], cfg.pairs.smooth_k)
    if smooth_k:
        z = {m: neighbor_smooth(z[m], pcs[m], smooth_k, cfg.pairs.exact_knn_max, seed) for m in MODALITIES}
    k = auto_mnn_k(n["rna"], n["other"], cfg.pairs.mnn_k)
    logger.info("MNN search: %d shared genes, %d joint PCs, smoothing over %d within-modality neighbours, "
                "k=%d%s", len(shared), n_shared_pcs, smooth_k, k, "" if cfg.pairs.mnn_k else " (auto)")
    choices.update(n_shared_pcs=n_shared_pcs, smooth_k=smooth_k, mnn_k=k)
    cell_pairs = mutual_nearest_neighbors(z["rna"], z["other"], k, cfg.pairs.exact_knn_max, seed)
    if cell_pairs.n_pairs == 0:
        raise BiclumInputError("no mutual nearest neighbours were found between rna and the other modality; "
                               "check that both describe the same tissue and that the gene names match, or "
                               "raise mnn_k.")
    return cell_pairs, z


def _joint_space(norms: dict, shared: np.ndarray, features: dict, n_comps: int, codes: list,
                 config: BiclumConfig) -> dict:
    """modality -> scores of the joint PCA of the shared genes (scaled per batch where ``codes`` are given)."""
    p = config.preprocess
    return dict(zip(MODALITIES, joint_shared_pca(*_shared_norms(norms, shared, features), n_comps, config.train.seed,
                                                 p.max_value, p.pca_max_cells, batches=codes)))


def _shared_norms(norms: dict, shared: np.ndarray, features: dict) -> list:
    """Each modality's normalised values of the ``shared`` genes, in that order (rna, other); no copy when a
    modality's features are exactly the shared genes."""
    out = []
    for m in MODALITIES:
        pos = {g: i for i, g in enumerate(features[m])}
        cols = np.array([pos[g] for g in shared])
        out.append(norms[m] if np.array_equal(cols, np.arange(norms[m].shape[1])) else norms[m][:, cols])
    return out


def _sketches(norms: dict, pcs: dict, joint_space: dict, preprocessors: dict, config: BiclumConfig) -> dict:
    """The feature encoders' inputs (:mod:`biclum.sketch`): metacells of the joint space (``metacells="joint"``)
    or of each modality's own PCs; standardised profiles when ``sketch_values="scaled"``."""
    m_cfg, seed = config.model, config.train.seed
    if m_cfg.metacells == "joint":
        labels = dict(zip(MODALITIES, joint_metacells(joint_space["rna"], joint_space["other"],
                                                      m_cfg.n_metacells, seed)))
    else:
        labels = {m: metacell_assignments(pcs[m], m_cfg.n_metacells, seed) for m in MODALITIES}
    scaled = m_cfg.sketch_values == "scaled"
    return {m: feature_sketch(norms[m], labels[m], m_cfg.n_metacells,
                              (preprocessors[m].mean, preprocessors[m].std) if scaled else None)
            for m in MODALITIES}


def _training_data(gs: _GeneSpace, fitted: FittedSetup, encoder_inputs: dict, norms: dict, cell_pairs: CellPairs,
                   batch_partners: dict, labels: dict, shifts: dict, config: BiclumConfig,
                   known=None) -> TrainingData:
    """The encoder inputs, targets (counts of the features, or normalised values standardised in the loop) and
    the pairs."""
    p = config.preprocess
    targets = {m: (_columns(gs.counts[m], gs.var_names[m], fitted.features[m]) if p.target == "counts"
                   else norms[m]) for m in MODALITIES}
    scaling = None if p.target != "scaled" else {
        m: (fitted.preprocessors[m].mean, fitted.preprocessors[m].std, p.max_value) for m in MODALITIES}
    target_batches = {m: None if labels[m] is None or scaling is None else
                      per_batch_feature_means(norms[m], labels[m], shifts[m]) for m in MODALITIES}
    return TrainingData(pcs=encoder_inputs, targets=targets, sketches=fitted.sketches, target_scaling=scaling,
                        partners={"rna": cell_pairs.rna_partners, "other": cell_pairs.other_partners},
                        feature_pairs=feature_pairs(fitted.features["rna"], fitted.features["other"]),
                        batch_partners=batch_partners, target_batches=target_batches,
                        known_pairs=None if known is None or known.nnz == 0 else known.nonzero())


def _columns(X, var_names, features):
    index = {g: i for i, g in enumerate(var_names)}
    return X[:, np.array([index[g] for g in features])]


def _feature_annotation(gene_other, modality: str) -> Optional[pd.DataFrame]:
    """The genes' coordinates (chrom, start, end, strand) of an ATAC gene space, kept for query mapping."""
    cols = [c for c in ("chrom", "start", "end", "strand") if c in gene_other.var.columns]
    if modality != "atac" or len(cols) < 4:
        return None
    return gene_other.var[cols].copy()
