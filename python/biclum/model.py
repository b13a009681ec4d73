"""``BiCLUM``: the model class that owns the data, in the style of scvi-tools' model classes.

Construction runs the setup stage (:func:`biclum.setup.prepare`: validation, the move to gene space, features,
preprocessing, MNN pairs, sketches) into one immutable :class:`~biclum.setup.Prepared` object, then builds the
network. The model's fitted state is one :class:`~biclum.state.FittedState`, which ``save`` / ``load`` write and
read as a whole; a fitted and a loaded model are both made by ``_from_state``. ``fit`` trains
(:mod:`biclum.training`); ``get_cell_embeddings`` / ``get_feature_embeddings`` read results; ``transform`` embeds
new cells (query mapping).
"""
from __future__ import annotations

from copy import deepcopy
import dataclasses
import time
from typing import Callable, Optional

import numpy as np
import pandas as pd
import torch

from . import __version__, distributed
from ._logging import logger
from ._threads import setup_threads, thread_limit
from .batches import batch_labels
from .config import BiclumConfig
from .errors import BiclumInputError, BiclumModelError
from .genes import feature_names
from .known_pairs import with_known_pairs
from .module import MODALITIES, BiCLUMModule, embed_cells
from .pairs import auto_mnn_k, mutual_nearest_neighbors
from .preprocessing import as_csr32
from .setup import (Prepared, counts_view, fitted_gene_activity_options, prepare, renamed,
                    to_gene_space)  # to_gene_space: part of this API
from .state import FittedState, field_names, load_state, save_state
from .training import PairRefresh, Trainer, TrainingData, resolve_device
from .validation import load_checked

MODALITY_KINDS = ("atac", "protein")
_STATE_NAMES = field_names()


def build_module(setup, config: BiclumConfig) -> BiCLUMModule:
    """A new network for the prepared features and encoder inputs (weights drawn from the config's seed)."""
    m = config.model
    torch.manual_seed(config.train.seed)
    n_in = {k: setup.preprocessors[k].components.shape[1] for k in MODALITIES}
    if setup.peak_lsi is not None:
        n_in["other"] = setup.peak_lsi.components.shape[1]
    for k, joint in setup.joint_input.items():  # biclum.joint_input
        n_in[k] += 0 if joint is None else joint.n_components
    return BiCLUMModule(n_pcs=n_in, n_features={k: len(setup.features[k]) for k in MODALITIES},
                        sketch_dim=m.n_metacells, hidden_dims=m.hidden_dims, latent_dim=m.latent_dim,
                        dropout=m.dropout, negative_slope=m.negative_slope,
                        decode_normalized=m.normalize_output and m.decoder == "per_feature",
                        feature_scale=m.decoder == "per_feature", feature_residual=m.feature_residual,
                        modality_discriminator=config.train.adversarial > 0)


def pair_finder(data: TrainingData, config: BiclumConfig, known=None) -> Callable:
    """``find_pairs(module)``: MNN pairs re-found in the joint embedding of the prepared encoder inputs (for
    :class:`biclum.training.PairRefresh`, ``refresh_pairs_every``); the known pairs (``known``, rna x other, or
    None) stay the partners of the cells they cover (:func:`biclum.known_pairs.with_known_pairs`)."""
    def find_pairs(module):
        emb = {m: embed_cells(module, m, data.pcs[m], config.model.normalize_output) for m in MODALITIES}
        k = auto_mnn_k(emb["rna"].shape[0], emb["other"].shape[0], config.pairs.mnn_k)
        return with_known_pairs(mutual_nearest_neighbors(emb["rna"], emb["other"], k, config.pairs.exact_knn_max,
                                                         config.train.seed), known)
    return find_pairs


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
    paired
        Known pairs, cells measured in both modalities (10x Multiome, CITE-seq): ``True`` or ``"shared"`` (the
        obs_names found in both inputs are the same cells), or a two-column table of (RNA cell name, other cell
        name): a DataFrame with columns ``"rna"`` and ``"other"`` (or exactly two columns, RNA first), a list of
        (rna, other) tuples, or the path of such a CSV/TSV. A known pair is the exact positive of the cell-level
        contrastive loss for its two cells (in place of their MNN partners), and the known pairs alone get a
        second cell-level term in every step (``alpha_known``, None: ``alpha``; logged), which carries the map
        they define to the unpaired cells (these keep their MNN partners). ``None`` (default) or an empty table:
        all cells unpaired, exactly as without the argument.
        Unknown names, a cell in two pairs, or ``True`` without shared names raise ``BiclumInputError``. The
        number of pairs used is ``model.n_known_pairs`` (saved, and in ``uns["biclum"]["params"]``). See
        :mod:`biclum.known_pairs`.
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
                 progress_callback: Optional[Callable] = None, paired=None, **overrides):
        if modality not in MODALITY_KINDS:
            raise BiclumInputError(f"modality={modality!r}: use 'atac' (peaks or gene activity) or 'protein' (ADT).")
        if config is None:
            config = BiclumConfig.from_preset(preset, **overrides)
        else:  # the caller's config is left as it is
            config = deepcopy(config).update(**overrides)
        symbols = {"rna": gene_symbols, "other": other_gene_symbols}
        batch_keys = {"rna": rna_batch_key, "other": other_batch_key}
        n_cells = sum(getattr(a, "shape", (0,))[0] for a in (rna, other))
        with thread_limit(setup_threads(config.train.num_threads, n_cells)):
            prepared = prepare(rna, other, modality, annotation, config, rna_layer=rna_layer,
                               other_layer=other_layer, gene_activity_kwargs=gene_activity_kwargs,
                               protein_mapping=protein_mapping, gene_symbols=symbols, batch_keys=batch_keys,
                               progress_callback=progress_callback, paired=paired)
            state = FittedState(modality=modality, config=config, setup=prepared.fitted,
                                module=build_module(prepared.fitted, config), gene_symbols=symbols,
                                batch_keys=batch_keys, history=[], train_status="not trained",
                                n_known_pairs=prepared.choices["n_known_pairs"])
        self._from_state(state, prepared, progress_callback)

    def _from_state(self, state: FittedState, prepared: Optional[Prepared] = None,
                    progress_callback: Optional[Callable] = None) -> "BiCLUM":
        """The one constructor path of a fitted (``prepared`` given) and a loaded model (no training cells)."""
        self.state = state
        self.prepared = prepared
        self._callback = progress_callback
        self._data = prepared.data if prepared is not None else None  # the loop's current data (pairs refresh)
        self.timings = dict(prepared.timings) if prepared is not None else {}
        self.is_trained = prepared is None
        self._set_pairs(prepared.pairs if prepared is not None else None)
        return self

    def __getattr__(self, name: str):
        """The state's fields as attributes (``model.features``, ``model.history``, ...); a new field of
        :class:`~biclum.state.FittedState` or :class:`~biclum.state.FittedSetup` needs no edit here."""
        state = self.__dict__.get("state")
        if state is not None and name in _STATE_NAMES:
            return getattr(state, name) if hasattr(state, name) else getattr(state.setup, name)
        prepared = self.__dict__.get("prepared")
        if prepared is not None and hasattr(prepared, name):
            return getattr(prepared, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}"
                             + (" (a loaded model holds no training cells)" if state is not None and prepared is None
                                and name in Prepared.__dataclass_fields__ else ""))

    def __setattr__(self, name: str, value) -> None:
        if name in _STATE_NAMES and name in getattr(self.__dict__.get("state"), "__dataclass_fields__", {}):
            setattr(self.state, name, value)
        else:
            super().__setattr__(name, value)

    def _set_pairs(self, pairs) -> None:
        """MNN pair summaries of the training cells (setup's pairs, or the last refreshed ones)."""
        if pairs is not None:
            self.pair_flags = dict(zip(MODALITIES, pairs.flags()))
            self.n_mnn_pairs = pairs.n_pairs

    def _require_cells(self, what: str) -> None:
        if self.prepared is None:
            raise BiclumModelError(f"a loaded model holds no training cells, so it {what}; embed cells with "
                                   f"transform(adata, modality) and store them in adata.obsm yourself.")

    # ================================================================== training
    def fit(self, max_epochs: Optional[int] = None, *, progress: bool = True, checkpoint_dir: Optional[str] = None,
            resume: Optional[str] = None, progress_callback: Optional[Callable] = None) -> "BiCLUM":
        """Train. Logs every automatically chosen setting; returns self.

        ``checkpoint_dir`` writes weights, optimiser and RNG states every ``checkpoint_every`` epochs;
        ``resume`` (a checkpoint_dir or file) continues an interrupted run to the same result.
        """
        if self.prepared is None:
            raise BiclumModelError("this model was loaded from disk and holds no training data; it can embed cells "
                                   "(transform) but not be trained again. Build a new BiCLUM on the data to train.")
        t = self.config.train
        max_epochs = int(max_epochs) if max_epochs is not None else self._budget_epochs()
        device = distributed.setup(resolve_device(t.device))  # under torchrun: join the process group (DDP)
        logger.info("config (%s preset): %s", self.config.preset,
                    {k: v for k, v in self.config.flat().items()})
        refresh = PairRefresh(t.refresh_pairs_every, pair_finder(self._data, self.config, self.known_pairs))
        trainer = Trainer(self.module, self._data, t, device, progress=progress,
                          progress_callback=progress_callback or self._callback, callbacks=[refresh])
        self._trainer = trainer
        t0 = time.perf_counter()
        state = trainer.fit(max_epochs, checkpoint_dir=checkpoint_dir, resume=resume)
        self.timings["train"] = time.perf_counter() - t0
        self._data = dataclasses.replace(self._data, partners=trainer.partners)
        self._set_pairs(refresh.last)
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

    # ================================================================== results
    def get_cell_embeddings(self, modality: str = "rna") -> np.ndarray:
        """Latent embeddings of the training cells of ``modality`` ("rna" or "other")."""
        self._check_modality_name(modality)
        if self.prepared is None:
            raise BiclumModelError("a loaded model holds no training cells; use transform(adata, modality).")
        return self._encode(modality, self._data.pcs[modality])

    def _encode(self, modality: str, pcs: np.ndarray) -> np.ndarray:
        return embed_cells(self.module, modality, pcs, self.config.model.normalize_output)

    @torch.no_grad()
    def get_feature_embeddings(self, modality: str = "rna") -> pd.DataFrame:
        """Latent embeddings of the model's features (genes) of ``modality``, as a DataFrame indexed by gene."""
        self._check_modality_name(modality)
        self.module.eval()
        device = next(self.module.parameters()).device
        emb = self.module.encode_features(modality, torch.as_tensor(self.sketches[modality], device=device))
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
        view = counts_view(adata, layer, check.keep_cells)
        return self._encode(modality, self._query_batch_centred(modality, view, self._query_scores(
            modality, view, annotation), batch_key))

    def _query_batch_centred(self, modality: str, view, pcs: np.ndarray, batch_key: Optional[str]) -> np.ndarray:
        centering = self.batch_centering.get(modality)
        if centering is None:
            return pcs
        key = batch_key or self.batch_keys.get(modality)
        labels = batch_labels(view, key, f"query {modality}") if key in view.obs.columns or batch_key else None
        if labels is not None and len(labels) != pcs.shape[0]:  # cells dropped on the way to gene space
            raise BiclumModelError(f"query {modality}: {len(labels) - pcs.shape[0]} cells have no counts on the "
                                   f"model's features; drop them before transform so batches stay aligned.")
        return centering.transform(pcs, labels, f"query {modality}")

    def _query_scores(self, modality: str, view, annotation) -> np.ndarray:
        """The query's encoder input (PCA scores, or peak LSI for ATAC; then the joint shared-gene block of a model
        with ``joint_input``) before any batch centring."""
        joint = self.joint_input[modality]
        lsi = modality == "other" and self.peak_lsi is not None
        own = self.peak_lsi.transform(as_csr32(view.X), np.asarray(view.var_names)) if lsi else None
        if lsi and joint is None:
            return own
        genes = self._query_gene_space(modality, view, annotation)
        X, names = as_csr32(genes.X), np.asarray(genes.var_names, dtype=object)
        if own is None:
            own = self.preprocessors[modality].transform(X, names)[0]
        return own if joint is None else np.hstack([own, joint.transform(X, names)])

    def _query_gene_space(self, modality: str, view, annotation):
        """The query in the model's gene space (ATAC peaks -> gene activity as the model's own cells, protein ->
        genes), checked to hold every feature of the model."""
        if modality == "other":
            if self.modality == "atac" and annotation is None and self.annotation_rows is not None:
                ann = self.annotation_rows.reset_index(names="gene_name")
                annotation = ann[["gene_name", "chrom", "start", "end", "strand"]]
            options = fitted_gene_activity_options(self.gene_space_info)  # as the model's own cells
            view = renamed(to_gene_space(view, self.modality, annotation, options), self.gene_renames)
        names = np.asarray(view.var_names, dtype=object)
        missing = np.setdiff1d(self.preprocessors[modality].features.astype(str), names.astype(str))
        if len(missing):
            raise BiclumModelError(
                f"query {modality}: the data lacks {len(missing)} of the model's {len(self.features[modality])} "
                f"features (e.g. {list(missing[:5])}); a model only embeds data with the features it was "
                f"trained on. Subset or reorder nothing: add the missing features (as zeros if truly absent).")
        return view

    def write_to(self, adata, modality: str, key_added: str = "biclum", copy: bool = True):
        """Results as an AnnData with the input's obs/var and no X: ``.obsm[f"X_{key}"]``,
        ``.varm[f"{key}_loadings"]`` (zero rows for unused features) and ``.uns[key]["params"]``.

        For modality "other" the var are those of the gene space (gene activity / mapped protein genes).
        """
        import anndata as ad

        self._require_cells("has no results to write")
        cells = self.cell_names[modality]
        emb = self.get_cell_embeddings(modality)
        if modality == "rna":
            obs, var = adata.obs.loc[cells].copy(), adata.var.copy()
        else:
            obs, var = adata.obs.loc[cells].copy(), self.gene_var.copy()
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
                "version": __version__, "n_mnn_pairs": int(self.n_mnn_pairs) if "n_mnn_pairs" in self.__dict__
                else -1, "n_known_pairs": int(self.n_known_pairs), "train_status": self.train_status,
                "epochs": len(self.history), "gene_activity_used": self._gene_activity_used(),
                "joint_input_used": self._joint_input_used()}

    def _joint_input_used(self) -> int:
        """Components of the joint shared-gene block the cell encoders read (0: none; :mod:`biclum.joint_input`)."""
        joint = self.joint_input["rna"]
        return 0 if joint is None else joint.n_components

    def _gene_activity_used(self) -> str:
        """The gene-activity mode the ATAC peaks were moved to gene space with (``gene_activity="auto"`` resolved;
        "None" for protein or gene-level input), so that R's activity assay is made the same way."""
        info = self.gene_space_info if self.modality == "atac" else {}
        return str(info.get("mode", "None")) if not info.get("gene_level") else "None"

    # ================================================================== save / load
    def save(self, directory: str, overwrite: bool = False) -> str:
        """Write ``model.pt`` (state_dict), ``model.json`` (config, init params, features) and ``arrays.npz``:
        the whole :class:`~biclum.state.FittedState`."""
        save_state(self.state, directory, overwrite)
        logger.info("saved model to %s", directory)
        return directory

    @classmethod
    def load(cls, directory: str) -> "BiCLUM":
        """Rebuild a saved model from its recorded state and weights (no pickled objects); it embeds new cells
        (``transform``) and gives feature embeddings, but holds no training cells."""
        return cls.__new__(cls)._from_state(load_state(directory))

    def __repr__(self) -> str:
        nf = {m: len(self.features[m]) for m in MODALITIES}
        cells = {m: len(self.cell_names[m]) for m in MODALITIES} if self.prepared is not None else "loaded"
        return (f"BiCLUM(modality={self.modality!r}, cells={cells}, features={nf}, "
                f"status={self.train_status!r})")
