"""Typed configuration of a biclum run.

Every hyperparameter of the method lives here with its default and a one-line meaning. Two presets exist:

* ``"paper"``: the paper's method and its RNA+ATAC config as the reference code runs it: raw dot-product NT-Xent
  (tau 0.5/0.5, alpha = beta = 1e4, gamma 1), count targets, a per-feature decoder scale on the raw cell
  embedding, MNN k = 200 in the joint PCA of the shared genes (no smoothing), 100 PCs, the ATAC cell encoder on
  gene-activity PCs, per-modality metacells, lr 1e-4, batch 256, patience 30, up to 1,000 epochs.
* ``"default"``: the same three losses, balanced so that each reaches the cell encoders (alpha = beta = 1,
  gamma = 20 on standardised targets; the first step's gradient norms are logged), with choices that follow
  from the data (MNN k, PCs, smoothing, step budget; each logged) and a shorter epoch budget. Measured on every
  shared dataset: benchmarks/results/all_datasets.md; README, "Defaults".

``BiclumConfig.from_preset("paper", lr=...)`` applies overrides by field name to whichever sub-config owns them.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from typing import Any, Optional, Union

from .errors import BiclumInputError


@dataclass
class PreprocessConfig:
    n_top_genes: int = 2000          # HVGs per modality (seurat_v3 flavour on counts); the union is used
    hvg_span: float = 0.3            # loess span of the seurat_v3 mean-variance fit
    target_sum: float = 1e4          # library-size normalisation target
    n_pcs: Optional[int] = None      # PCA components per modality (the cell encoders' input); None: about
                                     # one per 10 cells, 10..100, logged
    n_lsi: Optional[int] = None      # LSI components of ATAC peaks (the ATAC encoder's input); None: as n_pcs
    pca_max_cells: int = 100_000     # PCA/LSI components fitted on at most this many cells (a random sample)
                                     # per modality; every cell is projected (0: fit on all cells)
    max_value: Optional[float] = 10.0  # clip scaled values (scanpy's sc.pp.scale(max_value=10))
    target: str = "normalized"       # reconstruction target: "scaled" (log1p of normalised, standardised per
                                     # feature and clipped, every gene weighs the same, as in a PCA),
                                     # "normalized" (log1p of normalised) or "counts"
    min_shared_genes: int = 5        # fewer shared genes than this is an error; below 20 a warning (the MNN
                                     # search then rests on few genes, smoothed over each modality's neighbours)
    batch_scale: bool = False        # with batch keys: also rescale each batch's PCA/LSI scores to the overall
                                     # spread (their batch shifts are always removed)
    batch_centre: str = "auto"       # with batch keys, how batch shifts are measured: "means" (batch means; a
                                     # difference in cell-type composition is removed too), "mnn" (mean
                                     # difference over cross-batch mutual nearest neighbours, as fastMNN: keeps
                                     # it), or "auto": "mnn" without cross-batch pairs when the batches mix
                                     # after the MNN shifts (biclum.batches.SHIFT_ONLY_MIXING), else "means"
                                     # with them; logged (benchmarks/results/batch_centre_rule.md)
    gene_activity: str = "auto"      # ATAC peaks -> gene activity (biclum.prior.gene_activity's mode): "gene_body"
                                     # (Signac's GeneActivity: reads in peaks over the gene body + 2 kb
                                     # upstream), "promoter", "distance_weighted" (ArchR-like: every peak within
                                     # 100 kb, weight exp(-distance / 5 kb)), or "auto": gene_body, widened to
                                     # distance_weighted when gene_body shares fewer than 100 genes with the RNA
                                     # (a small peak set; logged). gene_activity_kwargs of integrate() override it
    atac_encoder_input: str = "auto"  # ATAC cell encoder input: "peaks_lsi", "gene_activity", or "auto" (LSI of
                                      # the peaks when the input has peaks; gene-activity PCs otherwise)
    joint_input: Union[int, str] = 0  # also feed each cell encoder the first K components of the joint PCA of
                                     # the shared genes (the MNN search's space, unsmoothed; unit rows scaled to
                                     # the own input's median norm); 0: off; "auto": 10 when the modalities share
                                     # 20 genes or more, else off (logged). See biclum.joint_input


@dataclass
class PairConfig:
    mnn_k: Optional[int] = None      # k of the mutual-nearest-neighbour search (cosine); None: ~2% of the smaller
                                     # modality's cells, 10..200 (the paper: 200), logged
    smooth_k: Optional[int] = None   # shared-gene coordinates averaged over this many within-modality neighbours
                                     # before the MNN search; None: ~1% of cells, 5..20; 0: off
    n_shared_pcs: int = 50           # joint PCA of shared genes used for the MNN search
    exact_knn_max: float = 2.5e9     # exact (flat) faiss search while n_rna*n_other is below this, else IVF
    batch_mnn_k: Optional[int] = None  # with batch keys: k of the cross-batch MNN search within a modality;
                                       # None: as mnn_k's auto rule on the two batches' sizes


@dataclass
class ModelConfig:
    hidden_dims: tuple = (256, 256)  # cell and feature encoder MLP widths
    latent_dim: int = 50
    dropout: float = 0.2
    negative_slope: float = 0.2      # LeakyReLU
    n_metacells: int = 256           # feature encoders' input size: a feature's mean over this many metacells
    metacells: str = "per_modality"  # "joint": metacells clustered in the joint shared-gene space (column j is the
                                     # same cell state in both modalities); "per_modality": each modality's PCs
    sketch_values: str = "normalized"  # "scaled": per-feature standardised metacell means; "normalized": raw means
    normalize_output: bool = True    # return L2-normalised cell embeddings (the contrastive losses use cosine)
    feature_residual: bool = False   # a free per-feature vector added to the feature encoder's output
    decoder: str = "scalar"          # "per_feature": softplus(scale_g) per feature, decoding the embedding users
                                     # get (L2-normalised when normalize_output); "scalar": one scale, raw output


@dataclass
class TrainConfig:
    tau_cell: float = 0.5            # NT-Xent temperature, cell level
    tau_feature: float = 0.5         # NT-Xent temperature, feature level
    similarity: str = "cosine"       # NT-Xent similarity: "cosine", or "dot" (the reference code's raw product)
    alpha: float = 1e4               # weight of the cell-level contrastive loss
    alpha_batch: Optional[float] = None  # with batch keys: weight of the NT-Xent on cross-batch MNN pairs within a
                                         # modality; None: alpha (default preset: 3; simulated strong effect,
                                         # 600 paired RNA+ATAC cells, one seed: batch ASW RNA/ATAC 0.84/0.84 at
                                         # 1, 0.88/0.86 at 3, FOSCTTM 0.058 both)
    beta: float = 1e4                # weight of the feature-level contrastive loss
    adversarial: float = 0.0         # weight of a modality discriminator on the cell embeddings (gradient reversal;
                                     # distribution-level alignment as in scGLUE); 0: none (the paper)
    alpha_known: Optional[float] = None  # with known pairs (paired=): weight of a second cell-level NT-Xent on the
                                         # known pairs alone (up to batch_size of them in every step); None:
                                         # alpha; 0: off (benchmarks/results/known_pairs.md)
    gamma_rna: float = 1.0           # weight of the RNA reconstruction loss
    gamma_other: float = 1.0         # weight of the other modality's reconstruction loss
    lr: float = 1e-4
    weight_decay: float = 5e-5
    batch_size: int = 256            # cells per modality per step
    feature_batch_size: int = 512    # gene pairs per step in the feature-level loss (all when fewer); O(n^2)
    max_epochs: int = 1000
    epoch_budget_cells: int = 0      # atlas budget: when fit() is not given max_epochs, cap epochs at
                                     # ceil(budget / cells per modality) (at least min_budget_epochs); 0: no cap
    min_budget_epochs: int = 4
    min_steps: int = 0               # small data: raise the epochs (when fit() is not given max_epochs) so training
                                     # takes at least this many optimisation steps; 0: no floor
    patience: int = 30               # early stopping on the epoch's total loss
    min_delta: float = 1e-4          # relative improvement that resets patience
    seed: int = 0
    device: str = "cpu"              # "cpu", "cuda", or "auto"
    checkpoint_every: int = 10       # epochs between checkpoints when a checkpoint_dir is given
    refresh_pairs_every: int = 0     # re-find MNN pairs in the learned embedding every N epochs (0: never, paper)
    num_threads: Optional[int] = None  # CPU threads of setup and training (torch, BLAS, OpenMP). None: from the
                                       # size of the work, never from the load (biclum._threads): 1 for the
                                       # default model and < 50k cells, all cores (<= 8) for larger work.
                                       # Same seed + same count = identical embeddings; another count may
                                       # differ in the last bits.


GENE_ACTIVITY_MODES = ("gene_body", "promoter", "distance_weighted")
BEFORE_FIELD = {"gene_activity": "gene_body"}  # what models saved before a field existed used
RETIRED = ("anchor_known_pairs",)  # options of earlier versions, ignored when a saved model is loaded

PRESETS: dict[str, dict[str, Any]] = {
    "paper": {"atac_encoder_input": "gene_activity", "gene_activity": "gene_body", "normalize_output": False,
              "similarity": "dot", "target": "counts", "decoder": "per_feature", "mnn_k": 200, "smooth_k": 0, "n_pcs": 100,
              "min_shared_genes": 20},
    "default": {"lr": 1e-3, "batch_size": 512, "max_epochs": 40, "patience": 10, "epoch_budget_cells": 2_000_000,
                "min_steps": 200, "alpha": 1.0, "beta": 1.0, "gamma_rna": 20.0, "gamma_other": 20.0,
                "target": "scaled", "decoder": "per_feature", "metacells": "joint", "sketch_values": "scaled",
                "alpha_batch": 3.0},
}


@dataclass
class BiclumConfig:
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    pairs: PairConfig = field(default_factory=PairConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    preset: str = "default"

    @classmethod
    def from_preset(cls, preset: str = "default", **overrides: Any) -> "BiclumConfig":
        if preset not in PRESETS:
            raise BiclumInputError(f"preset={preset!r} is unknown; use one of {sorted(PRESETS)}.")
        cfg = cls(preset=preset)
        cfg.update(**PRESETS[preset])
        cfg.update(**overrides)
        return cfg

    def update(self, **overrides: Any) -> "BiclumConfig":
        owners = {f.name: sub for sub in (self.preprocess, self.pairs, self.model, self.train) for f in fields(sub)}
        for key, value in overrides.items():
            if value is None:
                continue
            if key not in owners:
                raise BiclumInputError(
                    f"unknown biclum option {key!r}; valid options are: {', '.join(sorted(owners))}.")
            if key == "hidden_dims":  # a sequence, "256,256", or one width for the paper's two layers
                if isinstance(value, str):
                    value = value.split(",")
                value = (int(value),) * 2 if isinstance(value, (int, float)) else tuple(int(v) for v in value)
            setattr(owners[key], key, value)
        self.validate()
        return self

    def validate(self) -> None:
        p, t, m = self.preprocess, self.train, self.model
        if p.atac_encoder_input not in ("auto", "peaks_lsi", "gene_activity"):
            raise BiclumInputError(f"atac_encoder_input={p.atac_encoder_input!r}: use 'auto', 'peaks_lsi' or "
                                   f"'gene_activity'.")
        if p.gene_activity not in ("auto",) + GENE_ACTIVITY_MODES:
            raise BiclumInputError(f"gene_activity={p.gene_activity!r}: use 'auto' or one of "
                                   f"{', '.join(GENE_ACTIVITY_MODES)}.")
        if p.batch_centre not in ("auto", "mnn", "means"):
            raise BiclumInputError(f"batch_centre={p.batch_centre!r}: use 'auto', 'mnn' or 'means'.")
        if p.target not in ("scaled", "normalized", "counts"):
            raise BiclumInputError(f"target={p.target!r}: use 'scaled', 'normalized' or 'counts'.")
        if m.metacells not in ("joint", "per_modality") or m.sketch_values not in ("scaled", "normalized"):
            raise BiclumInputError(f"metacells={m.metacells!r}, sketch_values={m.sketch_values!r}: use 'joint' or "
                                   f"'per_modality', and 'scaled' or 'normalized'.")
        if t.similarity not in ("cosine", "dot"):
            raise BiclumInputError(f"similarity={t.similarity!r}: use 'cosine' or 'dot'.")
        if m.decoder not in ("per_feature", "scalar"):
            raise BiclumInputError(f"decoder={m.decoder!r}: use 'per_feature' or 'scalar'.")
        for name in ("tau_cell", "tau_feature", "lr"):
            if getattr(t, name) <= 0:
                raise BiclumInputError(f"{name} must be > 0, got {getattr(t, name)}.")
        for name in ("alpha", "beta", "gamma_rna", "gamma_other", "weight_decay", "alpha_batch", "adversarial"):
            if (getattr(t, name) or 0) < 0:
                raise BiclumInputError(f"{name} must be >= 0, got {getattr(t, name)}.")
        for name, value in (("batch_size", t.batch_size), ("max_epochs", t.max_epochs), ("latent_dim", m.latent_dim),
                            ("n_pcs", p.n_pcs or 1), ("n_lsi", p.n_lsi or 1), ("n_top_genes", p.n_top_genes), ("n_metacells", m.n_metacells),
                            ("mnn_k", self.pairs.mnn_k or 1)):
            if int(value) < 1:
                raise BiclumInputError(f"{name} must be >= 1, got {value}.")
        if p.joint_input != "auto" and (isinstance(p.joint_input, (bool, str)) or p.joint_input < 0
                                        or not float(p.joint_input).is_integer()):
            raise BiclumInputError(f"joint_input={p.joint_input!r}: use a number of components >= 0 (0: off) or "
                                   f"'auto'.")
        if t.epoch_budget_cells < 0 or t.min_budget_epochs < 1:
            raise BiclumInputError(f"epoch_budget_cells must be >= 0 and min_budget_epochs >= 1, got "
                                   f"{t.epoch_budget_cells} and {t.min_budget_epochs}.")
        if not 0 <= m.dropout < 1:
            raise BiclumInputError(f"dropout must be in [0, 1), got {m.dropout}.")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "BiclumConfig":
        pairs = {k: v for k, v in d["pairs"].items() if k not in RETIRED}  # a saved model of an older version
        preprocess = {**BEFORE_FIELD, **d["preprocess"]}
        return cls(preprocess=PreprocessConfig(**preprocess), pairs=PairConfig(**pairs),
                   model=ModelConfig(**{**d["model"], "hidden_dims": tuple(d["model"]["hidden_dims"])}),
                   train=TrainConfig(**d["train"]), preset=d.get("preset", "default"))

    def flat(self) -> dict:
        out = {"preset": self.preset}
        for sub in (self.preprocess, self.pairs, self.model, self.train):
            out.update(dataclasses.asdict(sub))
        return out


def _parse_value(text: str):
    """A command-line value: true/false, an integer, a float, JSON (a list, null), else the text itself."""
    import json

    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for cast in (int, float, json.loads):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_overrides(items: Optional[list], option: str = "--set") -> dict:
    """``["KEY=VALUE", ...]`` (``--set`` of ``biclum fit``, ``--config`` of ``biclum benchmark``, the benchmark
    scripts' ``--set``) -> ``{key: value}`` with the values parsed by :func:`_parse_value`."""
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise BiclumInputError(f"{option} {item!r}: use KEY=VALUE (e.g. {option} mnn_k=50).")
        out[key] = _parse_value(value)
    return out
