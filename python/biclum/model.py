"""``BiCLUM``: the model class that owns the data, in the style of scvi-tools' model classes.

Construction is the setup step: it validates both modalities, moves the other modality into gene space, selects
features, fits the preprocessing, finds MNN pairs and builds the feature sketches, all before the network is
built. ``fit`` trains; ``get_cell_embeddings`` / ``get_feature_embeddings`` read results; ``transform`` embeds new
cells (query mapping); ``save`` / ``load`` use a plain state_dict plus a JSON sidecar and an .npz of arrays.
"""
from __future__ import annotations

import json
import os
import time
import warnings
from typing import Callable, Optional

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from . import __version__, distributed
from ._logging import logger
from ._threads import setup_threads, thread_limit
from .backed import is_backed
from .batches import BatchCentering, batch_codes, batch_labels, cross_batch_pairs, per_batch_feature_means
from .config import BiclumConfig
from .errors import BiclumInputError, BiclumModelError, BiclumWarning
from .genes import feature_names, reconcile_gene_names
from .module import MODALITIES, BiCLUMModule
from .pairs import auto_mnn_k, auto_smooth_k, feature_pairs, mutual_nearest_neighbors, neighbor_smooth
from .preprocessing import ModalityPreprocessor, PeakLSI, as_csr32, joint_shared_pca, seurat_v3_hvg
from .sketch import feature_sketch, joint_metacells, metacell_assignments
from .training import Trainer, TrainingData, resolve_device
from .validation import cap_to_data, check_shared_genes, load_checked

MODALITY_KINDS = ("atac", "protein")
WEIGHTS_FILE, SIDECAR_FILE, ARRAYS_FILE = "model.pt", "model.json", "arrays.npz"


def _counts_view(adata, layer, keep=None):
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
                  protein_mapping=None):
    """The other modality as a cells x genes AnnData (gene activity for ATAC, mapped genes for protein)."""
    from . import prior

    if modality == "atac":
        return prior.gene_activity(other, annotation, **(gene_activity_kwargs or {}))
    return prior.protein_to_gene(other, mapping=protein_mapping)


class BiCLUM:
    """Bilateral contrastive learning of cell and feature embeddings for unpaired RNA + ATAC/protein.

    Parameters
    ----------
    rna, other
        AnnData objects (cells x features) with raw counts in ``.X`` (or in ``rna_layer`` / ``other_layer``).
        ``other`` is cells x peaks (ATAC; peaks named chrN-start-end or var chrom/start/end; or an already
        gene-level matrix) or cells x antibodies (protein). Inputs are never modified.
    modality
        ``"atac"`` or ``"protein"``.
    annotation
        Gene annotation for ATAC (path to a GTF/GFF3/BED6/table or a DataFrame); see ``biclum.prior``.
    gene_symbols, other_gene_symbols
        A var column holding the feature names to use instead of the var names (as scanpy's ``gene_symbols``),
        e.g. ``"gene_symbols"`` for RNA indexed by Ensembl IDs; ``other_gene_symbols`` for the other modality
        (antibody names, or gene names of a gene-level ATAC matrix). See ``biclum.genes``.
    protein_mapping
        Antibody -> gene for protein: a dict, a list in var order, or the path of a two-column table (see
        ``biclum.prior.protein_to_gene`` and ``read_protein_mapping``).
    rna_batch_key, other_batch_key
        obs columns naming each cell's batch (sample, donor) within a modality, or None (no batches; results then
        are those of a model without batch support). See :mod:`biclum.batches` for how batches are removed.
    preset, config, **overrides
        ``BiclumConfig.from_preset(preset, **overrides)`` unless a full ``config`` is given. ``num_threads``
        (default None: chosen from the size of the work, see ``biclum._threads``) sets the CPU threads of setup
        and training.
    """

    def __init__(self, rna, other, modality: str = "atac", annotation=None, *, preset: str = "default",
                 config: Optional[BiclumConfig] = None, rna_layer: Optional[str] = None,
                 other_layer: Optional[str] = None, gene_activity_kwargs: Optional[dict] = None,
                 protein_mapping=None, gene_symbols: Optional[str] = None, other_gene_symbols: Optional[str] = None,
                 rna_batch_key: Optional[str] = None, other_batch_key: Optional[str] = None,
                 progress_callback: Optional[Callable] = None, **overrides):
        if modality not in MODALITY_KINDS:
            raise BiclumInputError(f"modality={modality!r}: use 'atac' (peaks or gene activity) or 'protein' (ADT).")
        self.config = config if config is not None else BiclumConfig.from_preset(preset, **overrides)
        if config is not None and overrides:
            self.config.update(**overrides)
        self.modality = modality
        self.is_trained = False
        self.history: list = []
        self.train_status = "not trained"
        self._callback = progress_callback
        self.gene_symbols = {"rna": gene_symbols, "other": other_gene_symbols}
        self.batch_keys = {"rna": rna_batch_key, "other": other_batch_key}
        self.gene_renames: dict = {}  # other gene -> rna spelling (case-insensitive match, biclum.genes)
        n_cells = sum(getattr(a, "shape", (0,))[0] for a in (rna, other))
        threads = setup_threads(self.config.train.num_threads, n_cells)
        with thread_limit(threads):
            self._setup(rna, other, annotation, rna_layer, other_layer, gene_activity_kwargs, protein_mapping)

    # ================================================================== setup
    def _stage(self, i: int, message: str) -> None:
        logger.info(message)
        if self._callback is not None:
            self._callback("setup", i, 6, message)

    def _setup(self, rna, other, annotation, rna_layer, other_layer, ga_kwargs, protein_mapping):
        cfg, t0 = self.config, time.perf_counter()
        self.timings: dict = {}
        self._stage(1, "validating inputs")
        loaded = {"rna": is_backed(rna), "other": is_backed(other)}  # read into a new AnnData of biclum's own
        rna, rna_layer, check_rna = load_checked(rna, rna_layer, "rna", self.gene_symbols["rna"])
        other, other_layer, check_other = load_checked(other, other_layer, "other", self.gene_symbols["other"])
        rna_view = rna if loaded["rna"] and check_rna.keep_cells.all() else \
            _counts_view(rna, rna_layer, check_rna.keep_cells)
        other_view = other if loaded["other"] and check_other.keep_cells.all() else \
            _counts_view(other, other_layer, check_other.keep_cells)
        del rna, other  # a backed input's in-memory copy is now held by the views only
        labels = {"rna": batch_labels(rna_view, self.batch_keys["rna"], "rna"),
                  "other": batch_labels(other_view, self.batch_keys["other"], "other")}
        self._stage(2, f"moving the {self.modality} modality into gene space")
        gene_other = to_gene_space(other_view, self.modality, annotation, ga_kwargs, protein_mapping)
        gene_other = self._match_gene_names(rna_view, gene_other)
        self.gene_space_info = dict(gene_other.uns.get("gene_activity", gene_other.uns.get("protein_to_gene", {})))
        X_rna = as_csr32(rna_view.X)
        X_other = as_csr32(gene_other.X)
        keep_other = np.asarray(X_other.sum(axis=1)).ravel() > 0
        if not keep_other.all():
            warnings.warn(f"other: {int((~keep_other).sum())} cells have no counts on any gene after the move "
                          f"to gene space and were dropped.", BiclumWarning, stacklevel=3)
            X_other, gene_other = X_other[keep_other], gene_other[keep_other]
            labels["other"] = None if labels["other"] is None else labels["other"][keep_other]
        self.timings["gene_space"] = time.perf_counter() - t0
        self.cell_names = {"rna": np.asarray(rna_view.obs_names), "other": np.asarray(gene_other.obs_names)}
        self.input_var_names = {"rna": np.asarray(rna_view.var_names), "other_genes": np.asarray(gene_other.var_names)}
        self._gene_var = gene_other.var.copy()
        self._annotation_rows = self._feature_annotation(gene_other)
        var_names = {"rna": np.asarray(rna_view.var_names, dtype=object),
                     "other": np.asarray(gene_other.var_names, dtype=object)}
        counts = {"rna": X_rna, "other": X_other}

        t = time.perf_counter()
        self._stage(3, "selecting highly variable genes (seurat_v3, per modality, union)")
        union: set = set()
        for m in MODALITIES:
            top, _ = seurat_v3_hvg(counts[m], cfg.preprocess.n_top_genes, cfg.preprocess.hvg_span)
            union.update(var_names[m][top])
        present = {m: set(var_names[m]) for m in MODALITIES}
        self.features = {m: np.array([g for g in var_names[m] if g in union], dtype=object) for m in MODALITIES}
        shared = check_shared_genes(self.features["rna"], self.features["other"], cfg.preprocess.min_shared_genes,
                                    other_name=self.modality)
        if len(shared) < 20:
            warnings.warn(f"rna and {self.modality} share only {len(shared)} genes: the MNN search rests on them "
                          f"(smoothed over each modality's own neighbours). Results are less reliable than with 20 "
                          f"or more; check the gene names or the antibody mapping.", BiclumWarning, stacklevel=3)
        logger.info("features: %d rna, %d %s (gene space), %d shared genes",
                    len(self.features["rna"]), len(self.features["other"]), self.modality, len(shared))
        self.timings["hvg"] = time.perf_counter() - t

        t = time.perf_counter()
        self._stage(4, "normalising, scaling and PCA per modality")
        seed = cfg.train.seed
        self.preprocessors, pcs, norms = {}, {}, {}
        for m in MODALITIES:
            n_pcs = auto_n_pcs(counts[m].shape[0], len(self.features[m]), cfg.preprocess.n_pcs, m)
            self.preprocessors[m], pcs[m], norms[m] = ModalityPreprocessor.fit(
                counts[m], var_names[m], self.features[m], cfg.preprocess.target_sum, n_pcs,
                cfg.preprocess.max_value, seed, cfg.preprocess.pca_max_cells)
        self.timings["preprocess"] = time.perf_counter() - t

        t = time.perf_counter()
        self.peak_lsi = None
        use_lsi = (self.modality == "atac" and cfg.preprocess.atac_encoder_input != "gene_activity"
                   and not self.gene_space_info.get("gene_level", False))
        if cfg.preprocess.atac_encoder_input == "peaks_lsi" and not use_lsi:
            raise BiclumInputError("atac_encoder_input='peaks_lsi' needs ATAC peaks, but the input is gene-level; "
                                   "pass the peak matrix or use atac_encoder_input='gene_activity'.")
        if use_lsi:
            peaks = other_view.X if keep_other.all() else other_view.X[np.flatnonzero(keep_other)]
            self.peak_lsi, pcs["other"] = PeakLSI.fit(peaks, np.asarray(other_view.var_names),
                                                      auto_n_pcs(peaks.shape[0], peaks.shape[1],
                                                                 cfg.preprocess.n_pcs, "ATAC LSI"),
                                                      seed, cfg.preprocess.pca_max_cells)
            logger.info("ATAC cell encoder input: LSI of %d peaks (%d components)", len(self.peak_lsi.peaks),
                        pcs["other"].shape[1])
        self.timings["preprocess"] = time.perf_counter() - t
        self.batch_labels = labels
        self.batch_centering = {m: None if labels[m] is None else BatchCentering.fit(
            pcs[m], labels[m], cfg.preprocess.batch_scale) for m in MODALITIES}
        pcs = {m: pcs[m] if labels[m] is None else self.batch_centering[m].transform(pcs[m], labels[m])
               for m in MODALITIES}

        t = time.perf_counter()
        self._stage(5, "finding mutual nearest neighbours between modalities")
        cell_pairs, joint_space = self._find_pairs(norms, pcs, shared)
        batch_partners = {m: None if labels[m] is None else cross_batch_pairs(
            pcs[m], labels[m], cfg.pairs.batch_mnn_k, cfg.pairs.exact_knn_max, cfg.train.seed, m)
            for m in MODALITIES}
        self.pair_flags = dict(zip(MODALITIES, cell_pairs.flags()))
        self.n_mnn_pairs = cell_pairs.n_pairs
        self.feature_pair_index = feature_pairs(self.features["rna"], self.features["other"])
        self.timings["pairs"] = time.perf_counter() - t

        t = time.perf_counter()
        self._stage(6, "building feature sketches (metacell means)")
        sketches = self._sketches(norms, pcs, joint_space)
        self.sketches = sketches
        self.timings["sketch"] = time.perf_counter() - t
        targets = {m: (self._count_target(counts[m], var_names[m], self.features[m])
                       if cfg.preprocess.target == "counts" else norms[m]) for m in MODALITIES}
        scaling = None if cfg.preprocess.target != "scaled" else {
            m: (self.preprocessors[m].mean, self.preprocessors[m].std, cfg.preprocess.max_value) for m in MODALITIES}
        target_batches = {m: None if labels[m] is None or scaling is None else
                          per_batch_feature_means(norms[m], labels[m]) for m in MODALITIES}
        self._data = TrainingData(pcs=pcs, targets=targets, sketches=sketches, target_scaling=scaling,
                                  partners={"rna": cell_pairs.rna_partners, "other": cell_pairs.other_partners},
                                  feature_pairs=self.feature_pair_index, batch_partners=batch_partners,
                                  target_batches=target_batches)
        self.module = self._build_module()
        self.timings["setup_total"] = time.perf_counter() - t0

    def _find_pairs(self, norms: dict, pcs: dict, shared: np.ndarray):
        """MNN pairs in the joint PCA of the shared genes, each modality's coordinates first smoothed over its own
        neighbourhoods (``smooth_k``, see :func:`biclum.pairs.neighbor_smooth`); k from :func:`auto_mnn_k`."""
        cfg, seed = self.config, self.config.train.seed
        pos = {m: {g: i for i, g in enumerate(self.features[m])} for m in MODALITIES}
        shared_cols = {m: np.array([pos[m][g] for g in shared]) for m in MODALITIES}
        n_shared_pcs = min(cfg.pairs.n_shared_pcs, len(shared) - 1)
        shared_norms = [norms[m] if np.array_equal(shared_cols[m], np.arange(norms[m].shape[1]))
                        else norms[m][:, shared_cols[m]] for m in MODALITIES]  # no copy when all are shared
        codes = [None if self.batch_labels[m] is None else batch_codes(self.batch_labels[m]) for m in MODALITIES]
        z = dict(zip(MODALITIES, joint_shared_pca(*shared_norms, n_shared_pcs, seed, cfg.preprocess.max_value,
                                                  cfg.preprocess.pca_max_cells, batches=codes)))
        del shared_norms
        n = {m: z[m].shape[0] for m in MODALITIES}
        smooth_k = auto_smooth_k(n["rna"], n["other"], cfg.pairs.smooth_k)
        if smooth_k:
            z = {m: neighbor_smooth(z[m], pcs[m], smooth_k, cfg.pairs.exact_knn_max, seed) for m in MODALITIES}
        k = auto_mnn_k(n["rna"], n["other"], cfg.pairs.mnn_k)
        logger.info("MNN search: %d shared genes, %d joint PCs, smoothing over %d within-modality neighbours, "
                    "k=%d%s", len(shared), n_shared_pcs, smooth_k, k, "" if cfg.pairs.mnn_k else " (auto)")
        self.mnn_k = k
        cell_pairs = mutual_nearest_neighbors(z["rna"], z["other"], k, cfg.pairs.exact_knn_max, seed)
        if cell_pairs.n_pairs == 0:
            raise BiclumInputError("no mutual nearest neighbours were found between rna and the other modality; "
                                   "check that both describe the same tissue and that the gene names match, or "
                                   "raise mnn_k.")
        return cell_pairs, z

    def _sketches(self, norms: dict, pcs: dict, joint_space: dict) -> dict:
        """The feature encoders' inputs (:mod:`biclum.sketch`): metacells of the joint space (``metacells="joint"``)
        or of each modality's own PCs; standardised profiles when ``sketch_values="scaled"``."""
        m_cfg, seed = self.config.model, self.config.train.seed
        if m_cfg.metacells == "joint":
            labels = dict(zip(MODALITIES, joint_metacells(joint_space["rna"], joint_space["other"],
                                                          m_cfg.n_metacells, seed)))
        else:
            labels = {m: metacell_assignments(pcs[m], m_cfg.n_metacells, seed) for m in MODALITIES}
        scaled = m_cfg.sketch_values == "scaled"
        return {m: feature_sketch(norms[m], labels[m], m_cfg.n_metacells,
                                  (self.preprocessors[m].mean, self.preprocessors[m].std) if scaled else None)
                for m in MODALITIES}

    def _match_gene_names(self, rna_view, gene_other):
        """The other modality's genes renamed to the RNA's spelling when only a case-insensitive match finds
        enough shared genes (``biclum.genes.reconcile_gene_names``; Ensembl IDs against symbols raise)."""
        self.gene_renames = reconcile_gene_names(rna_view.var_names, gene_other.var_names,
                                                 self.config.preprocess.min_shared_genes, rna_view.var,
                                                 gene_other.var, self.modality)
        return self._renamed(gene_other)

    def _renamed(self, gene_other):
        if not self.gene_renames:
            return gene_other
        import anndata as ad

        var = gene_other.var.copy()
        var.index = pd.Index([self.gene_renames.get(g, g) for g in var.index])
        return ad.AnnData(X=gene_other.X, obs=gene_other.obs, var=var, uns=dict(gene_other.uns))

    @staticmethod
    def _count_target(X, var_names, features):
        index = {g: i for i, g in enumerate(var_names)}
        return X[:, np.array([index[g] for g in features])]

    def _feature_annotation(self, gene_other) -> Optional[pd.DataFrame]:
        cols = [c for c in ("chrom", "start", "end", "strand") if c in gene_other.var.columns]
        if self.modality != "atac" or len(cols) < 4:
            return None
        return gene_other.var[cols].copy()

    def _build_module(self) -> BiCLUMModule:
        m = self.config.model
        torch.manual_seed(self.config.train.seed)
        n_in = {k: self.preprocessors[k].components.shape[1] for k in MODALITIES}
        if getattr(self, "peak_lsi", None) is not None:
            n_in["other"] = self.peak_lsi.components.shape[1]
        return BiCLUMModule(n_pcs=n_in,
                            n_features={k: len(self.features[k]) for k in MODALITIES},
                            sketch_dim=m.n_metacells, hidden_dims=m.hidden_dims, latent_dim=m.latent_dim,
                            dropout=m.dropout, negative_slope=m.negative_slope,
                            decode_normalized=m.normalize_output and m.decoder == "per_feature",
                            feature_scale=m.decoder == "per_feature", feature_residual=m.feature_residual)

    # ================================================================== training
    def fit(self, max_epochs: Optional[int] = None, *, progress: bool = True, checkpoint_dir: Optional[str] = None,
            resume: Optional[str] = None, progress_callback: Optional[Callable] = None) -> "BiCLUM":
        """Train. Logs every automatically chosen setting; returns self.

        ``checkpoint_dir`` writes weights, optimiser and RNG states every ``checkpoint_every`` epochs;
        ``resume`` (a checkpoint_dir or file) continues an interrupted run to the same result.
        """
        if not hasattr(self, "_data"):
            raise BiclumModelError("this model was loaded from disk and holds no training data; it can embed cells "
                                   "(transform) but not be trained again. Build a new BiCLUM on the data to train.")
        t = self.config.train
        max_epochs = int(max_epochs) if max_epochs is not None else self._budget_epochs()
        device = distributed.setup(resolve_device(t.device))  # under torchrun: join the process group (DDP)
        logger.info("config (%s preset): %s", self.config.preset,
                    {k: v for k, v in self.config.flat().items()})
        trainer = Trainer(self.module, self._data, t, device, progress=progress,
                          progress_callback=progress_callback or self._callback, refresh_pairs=self._refresh_pairs)
        self._trainer = trainer
        t0 = time.perf_counter()
        state = trainer.fit(max_epochs, checkpoint_dir=checkpoint_dir, resume=resume)
        self.timings["train"] = time.perf_counter() - t0
        self.module = trainer.module.to("cpu")
        self.history = state.history
        self.train_status = state.status
        self.is_trained = True
        return self

    def _budget_epochs(self) -> int:
        """The config's max_epochs, raised for small data to reach ``min_steps`` optimisation steps (500 cells make
        one step an epoch) and capped for atlases by ``epoch_budget_cells`` (as scvi-tools scales its epoch default
        down with the number of cells): the cap keeps the number of steps, not epochs, about constant above
        ``epoch_budget_cells / max_epochs`` cells per modality. Logged when either applies."""
        t = self.config.train
        n = max(self._data.pcs[m].shape[0] for m in MODALITIES)
        epochs = int(t.max_epochs)
        steps_per_epoch = int(np.ceil(n / max(1, min(t.batch_size, n))))
        if t.min_steps and epochs * steps_per_epoch < t.min_steps:
            epochs = int(np.ceil(t.min_steps / steps_per_epoch))
            logger.info("step budget: %d epochs of %d steps instead of max_epochs=%d (min_steps=%d; pass max_epochs "
                        "to fit, or min_steps=0, to override)", epochs, steps_per_epoch, t.max_epochs, t.min_steps)
        if not t.epoch_budget_cells:
            return epochs
        capped = max(int(t.min_budget_epochs), int(np.ceil(t.epoch_budget_cells / n)))
        if capped < epochs:
            logger.info("epoch budget: %d epochs instead of max_epochs=%d for %d cells per modality "
                        "(epoch_budget_cells=%d; pass max_epochs to fit, or epoch_budget_cells=0, to override)",
                        capped, t.max_epochs, n, t.epoch_budget_cells)
            return capped
        return epochs

    def _refresh_pairs(self, module) -> dict:
        """MNN pairs re-found in the current joint embedding (``refresh_pairs_every``)."""
        emb = {m: self._encode(m, self._data.pcs[m]) for m in MODALITIES}
        k = auto_mnn_k(emb["rna"].shape[0], emb["other"].shape[0], self.config.pairs.mnn_k)
        pairs = mutual_nearest_neighbors(emb["rna"], emb["other"], k, self.config.pairs.exact_knn_max,
                                         self.config.train.seed)
        self.pair_flags = dict(zip(MODALITIES, pairs.flags()))
        self.n_mnn_pairs = pairs.n_pairs
        return {"rna": pairs.rna_partners, "other": pairs.other_partners}

    # ================================================================== results
    def _device(self):
        return next(self.module.parameters()).device

    @torch.no_grad()
    @torch.no_grad()
    def _encode(self, modality: str, pcs: np.ndarray, batch_size: int = 8192) -> np.ndarray:
        """Cell embeddings in batches, written into one preallocated array (no autograd graph is kept)."""
        self.module.eval()
        enc = self.module.cell_encoders[modality]
        out = np.empty((pcs.shape[0], self.config.model.latent_dim), dtype=np.float32)
        for i in range(0, pcs.shape[0], batch_size):
            z = enc(torch.as_tensor(pcs[i:i + batch_size], device=self._device()))
            if self.config.model.normalize_output:
                z = torch.nn.functional.normalize(z, dim=1)
            out[i:i + batch_size] = z.cpu().numpy()
        return out

    def get_cell_embeddings(self, modality: str = "rna") -> np.ndarray:
        """Latent embeddings of the training cells of ``modality`` ("rna" or "other")."""
        self._check_modality_name(modality)
        if not hasattr(self, "_data"):
            raise BiclumModelError("a loaded model holds no training cells; use transform(adata, modality).")
        return self._encode(modality, self._data.pcs[modality])

    @torch.no_grad()
    def get_feature_embeddings(self, modality: str = "rna") -> pd.DataFrame:
        """Latent embeddings of the model's features (genes) of ``modality``, as a DataFrame indexed by gene."""
        self._check_modality_name(modality)
        self.module.eval()
        emb = self.module.encode_features(modality, torch.as_tensor(self.sketches[modality], device=self._device()))
        return pd.DataFrame(emb.cpu().numpy(), index=pd.Index(self.features[modality], name="gene"))

    @staticmethod
    def _check_modality_name(modality):
        if modality not in MODALITIES:
            raise BiclumInputError(f"modality={modality!r}: use 'rna' or 'other'.")

    def transform(self, adata, modality: str = "rna", layer: Optional[str] = None, annotation=None,
                  batch_key: Optional[str] = None) -> np.ndarray:
        """Embed new cells of ``modality`` with the fitted model (query mapping); returns cells x latent.

        For ATAC peaks the gene activity is computed with the annotation of the model's genes (kept in the
        model) unless another ``annotation`` is given. The data must contain every feature the model uses.
        A model trained with a batch key centres the query's PCA/LSI scores per batch (``obs[batch_key]``, by
        default the training key when the query has that column): a batch seen in training on its stored mean,
        an unseen batch on its own mean, and a query without a batch column on the training cells' mean.
        """
        self._check_modality_name(modality)
        adata, layer, check = load_checked(adata, layer, f"query {modality}", self.gene_symbols.get(modality))
        view = _counts_view(adata, layer, check.keep_cells)
        return self._encode(modality, self._query_batch_centred(modality, view, self._query_scores(
            modality, view, annotation), batch_key))

    def _query_batch_centred(self, modality: str, view, pcs: np.ndarray, batch_key: Optional[str]) -> np.ndarray:
        centering = getattr(self, "batch_centering", {}).get(modality)
        if centering is None:
            return pcs
        key = batch_key or self.batch_keys.get(modality)
        labels = batch_labels(view, key, f"query {modality}") if key in view.obs.columns or batch_key else None
        if labels is not None and len(labels) != pcs.shape[0]:  # cells dropped on the way to gene space
            raise BiclumModelError(f"query {modality}: {len(labels) - pcs.shape[0]} cells have no counts on the "
                                   f"model's features; drop them before transform so batches stay aligned.")
        return centering.transform(pcs, labels, f"query {modality}")

    def _query_scores(self, modality: str, view, annotation) -> np.ndarray:
        """The query's encoder input (PCA scores, or peak LSI for ATAC) before any batch centring."""
        if modality == "other" and self.peak_lsi is not None:
            return self.peak_lsi.transform(as_csr32(view.X), np.asarray(view.var_names))
        if modality == "other":
            if self.modality == "atac" and annotation is None and self._annotation_rows is not None:
                ann = self._annotation_rows.reset_index(names="gene_name")
                annotation = ann[["gene_name", "chrom", "start", "end", "strand"]]
            view = self._renamed(to_gene_space(view, self.modality, annotation))
        names = np.asarray(view.var_names, dtype=object)
        missing = np.setdiff1d(self.preprocessors[modality].features.astype(str), names.astype(str))
        if len(missing):
            raise BiclumModelError(
                f"query {modality}: the data lacks {len(missing)} of the model's {len(self.features[modality])} "
                f"features (e.g. {list(missing[:5])}); a model only embeds data with the features it was "
                f"trained on. Subset or reorder nothing: add the missing features (as zeros if truly absent).")
        return self.preprocessors[modality].transform(as_csr32(view.X), names)[0]

    def write_to(self, adata, modality: str, key_added: str = "biclum", copy: bool = True):
        """Results as an AnnData with the input's obs/var and no X: ``.obsm[f"X_{key}"]``,
        ``.varm[f"{key}_loadings"]`` (zero rows for unused features) and ``.uns[key]["params"]``.

        For modality "other" the var are those of the gene space (gene activity / mapped protein genes).
        """
        import anndata as ad

        if not hasattr(self, "cell_names"):
            raise BiclumModelError("a loaded model holds no training cells, so it has no results to write; embed "
                                   "cells with transform(adata, modality) and store them in adata.obsm yourself.")
        cells = self.cell_names[modality]
        emb = self.get_cell_embeddings(modality)
        if modality == "rna":
            obs, var = adata.obs.loc[cells].copy(), adata.var.copy()
        else:
            obs, var = adata.obs.loc[cells].copy(), self._gene_var.copy()
        out = ad.AnnData(obs=obs, var=var)
        out.obsm[f"X_{key_added}"] = emb
        loadings = np.zeros((out.n_vars, emb.shape[1]), dtype=np.float32)
        fe = self.get_feature_embeddings(modality)
        names = feature_names(out, self.gene_symbols.get(modality), modality) if modality == "rna" else out.var_names
        pos = pd.Index(names).get_indexer(fe.index)
        loadings[pos[pos >= 0]] = fe.values[pos >= 0]
        out.varm[f"{key_added}_loadings"] = loadings
        out.obs[f"{key_added}_has_mnn_partner"] = self.pair_flags[modality]
        out.var[f"{key_added}_feature"] = pd.Index(names).isin(fe.index)
        out.uns[key_added] = {"params": self.params_for_uns(), "modality": "rna" if modality == "rna" else
                              self.modality}
        return out

    def params_for_uns(self) -> dict:
        flat = self.config.flat()
        flat["hidden_dims"] = list(flat["hidden_dims"])
        return {**{k: (v if v is not None else "None") for k, v in flat.items()},
                "version": __version__, "n_mnn_pairs": int(self.n_mnn_pairs) if hasattr(self, "n_mnn_pairs") else -1,
                "train_status": self.train_status, "epochs": len(self.history)}

    # ================================================================== save / load
    def save(self, directory: str, overwrite: bool = False) -> str:
        """Write ``model.pt`` (state_dict), ``model.json`` (config, init params, features) and ``arrays.npz``."""
        if os.path.exists(os.path.join(directory, SIDECAR_FILE)) and not overwrite:
            raise BiclumInputError(f"{directory!r} already holds a saved model; pass overwrite=True to replace it.")
        os.makedirs(directory, exist_ok=True)
        torch.save(self.module.state_dict(), os.path.join(directory, WEIGHTS_FILE))
        arrays = {}
        for m in MODALITIES:
            arrays.update(self.preprocessors[m].to_arrays(f"{m}_"))
            arrays[f"{m}_sketch"] = self.sketches[m]
        if self.peak_lsi is not None:
            arrays.update(self.peak_lsi.to_arrays("lsi_"))
        for m, centering in getattr(self, "batch_centering", {}).items():
            if centering is not None:
                arrays.update(centering.to_arrays(f"{m}_"))
        if self._annotation_rows is not None:
            ann = self._annotation_rows
            arrays.update(ann_genes=np.asarray(ann.index, dtype=str), ann_chrom=np.asarray(ann["chrom"], dtype=str),
                          ann_start=np.asarray(ann["start"], dtype=np.int64),
                          ann_end=np.asarray(ann["end"], dtype=np.int64),
                          ann_strand=np.asarray(ann["strand"], dtype=str))
        np.savez_compressed(os.path.join(directory, ARRAYS_FILE), **arrays)
        sidecar = {"biclum_version": __version__, "modality": self.modality, "config": self.config.to_dict(),
                   "init_params": self.module.init_params,
                   "features": {m: [str(g) for g in self.features[m]] for m in MODALITIES},
                   "history": self.history, "train_status": self.train_status,
                   "gene_symbols": self.gene_symbols, "gene_renames": self.gene_renames,
                   "batch_keys": self.batch_keys,
                   "gene_space_info": json.loads(json.dumps(self.gene_space_info, default=str))}
        with open(os.path.join(directory, SIDECAR_FILE), "w") as fh:
            json.dump(sidecar, fh, indent=1, default=str)
        logger.info("saved model to %s", directory)
        return directory

    @classmethod
    def load(cls, directory: str) -> "BiCLUM":
        """Rebuild a saved model from its recorded init parameters and weights (no pickled objects)."""
        sidecar_path = os.path.join(directory, SIDECAR_FILE)
        if not os.path.exists(sidecar_path):
            raise BiclumInputError(f"{directory!r} holds no saved biclum model ({SIDECAR_FILE} missing).")
        with open(sidecar_path) as fh:
            sidecar = json.load(fh)
        self = cls.__new__(cls)
        self.config = BiclumConfig.from_dict(sidecar["config"])
        self.modality = sidecar["modality"]
        self.history = sidecar.get("history", [])
        self.train_status = sidecar.get("train_status", "loaded")
        self.gene_space_info = sidecar.get("gene_space_info", {})
        self.gene_symbols = sidecar.get("gene_symbols", {"rna": None, "other": None})
        self.gene_renames = sidecar.get("gene_renames", {})
        self.features = {m: np.array(sidecar["features"][m], dtype=object) for m in MODALITIES}
        self._callback = None
        self.timings = {}
        arrays = np.load(os.path.join(directory, ARRAYS_FILE), allow_pickle=False)
        self.preprocessors = {m: ModalityPreprocessor.from_arrays(arrays, f"{m}_") for m in MODALITIES}
        self.sketches = {m: arrays[f"{m}_sketch"] for m in MODALITIES}
        for m in MODALITIES:
            if list(self.preprocessors[m].features.astype(str)) != list(self.features[m].astype(str)):
                raise BiclumModelError(f"{directory!r}: the feature list in {SIDECAR_FILE} does not match "
                                       f"{ARRAYS_FILE} ({m}); the saved model is inconsistent.")
        self.peak_lsi = PeakLSI.from_arrays(arrays, "lsi_") if "lsi_peaks" in arrays else None
        self.batch_keys = sidecar.get("batch_keys", {"rna": None, "other": None})
        self.batch_centering = {m: BatchCentering.from_arrays(arrays, f"{m}_") for m in MODALITIES}
        self._annotation_rows = None
        if "ann_genes" in arrays:
            self._annotation_rows = pd.DataFrame(
                {"chrom": arrays["ann_chrom"], "start": arrays["ann_start"], "end": arrays["ann_end"],
                 "strand": arrays["ann_strand"]}, index=pd.Index(arrays["ann_genes"].astype(object)))
        ip = sidecar["init_params"]
        self.module = BiCLUMModule(**ip)
        state = torch.load(os.path.join(directory, WEIGHTS_FILE), map_location="cpu", weights_only=True)
        self.module.load_state_dict(state)
        self.module.eval()
        self.is_trained = True
        return self

    def __repr__(self) -> str:
        nf = {m: len(self.features[m]) for m in MODALITIES}
        cells = {m: len(self.cell_names[m]) for m in MODALITIES} if hasattr(self, "cell_names") else "loaded"
        return (f"BiCLUM(modality={self.modality!r}, cells={cells}, features={nf}, "
                f"status={self.train_status!r})")
