"""The BiCLUM network as a pure ``torch.nn.Module``: no AnnData, no training loop.

* one cell encoder per modality (its PCA scores -> latent cell embedding);
* one feature encoder per modality (a feature's fixed-size metacell sketch -> latent feature embedding);
* a decoder per modality: ``softplus(scale) * cell_emb @ feature_emb.T + bias`` reconstructs the cell's features;
* losses: NT-Xent between MNN cell pairs, NT-Xent between the two embeddings of the same gene, MSE reconstruction;
  optionally a modality discriminator on the cell embeddings behind a gradient reversal (distribution-level
  alignment, as scGLUE's adversarial term): the discriminator learns to tell the modalities apart, the encoders
  learn to make that impossible, so cells without a good MNN partner are aligned too.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

MODALITIES = ("rna", "other")


def mlp(n_in: int, hidden: Sequence[int], n_out: int, dropout: float, negative_slope: float) -> nn.Sequential:
    """Linear -> BatchNorm -> LeakyReLU -> Dropout blocks, then a linear latent layer."""
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(n_in, width), nn.BatchNorm1d(width), nn.LeakyReLU(negative_slope), nn.Dropout(dropout)]
        n_in = width
    layers.append(nn.Linear(n_in, n_out))
    return nn.Sequential(*layers)


def nt_xent(a: torch.Tensor, b: torch.Tensor, tau: float, similarity: str = "cosine") -> torch.Tensor:
    """NT-Xent (SimCLR) loss of positive pairs (a[i], b[i]); all other 2N-2 samples are negatives.

    For the 2N samples s = [a; b] (L2-normalised for ``similarity="cosine"``; as they are for ``"dot"``, the
    reference code's raw dot product), the loss of sample k with positive p(k) is
    ``-log(exp(sim(k, p)/tau) / sum_{m != k} exp(sim(k, m)/tau))``; the result is the mean over the 2N samples.
    """
    n = a.shape[0]
    z = torch.cat([a, b], dim=0)
    if similarity == "cosine":
        z = F.normalize(z, dim=1)
    sim = z @ z.T / tau
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, targets)


class _GradientReversal(torch.autograd.Function):
    """Identity forward, negated gradient backward: one optimiser trains the discriminator and the encoders
    against it."""

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return -grad


def discriminator(latent_dim: int, width: int, negative_slope: float) -> nn.Sequential:
    """A small MLP scoring a cell embedding as RNA (logit < 0) or the other modality (logit > 0)."""
    return nn.Sequential(nn.Linear(latent_dim, width), nn.LeakyReLU(negative_slope),
                         nn.Linear(width, width), nn.LeakyReLU(negative_slope), nn.Linear(width, 1))


class BiCLUMModule(nn.Module):
    def __init__(self, n_pcs: dict, n_features: dict, sketch_dim: int, hidden_dims: Sequence[int] = (256, 256),
                 latent_dim: int = 50, dropout: float = 0.2, negative_slope: float = 0.2,
                 decode_normalized: bool = False, feature_scale: bool = False, feature_residual: bool = False,
                 modality_discriminator: bool = False):
        super().__init__()
        self.init_params = dict(n_pcs=dict(n_pcs), n_features=dict(n_features), sketch_dim=int(sketch_dim),
                                hidden_dims=[int(h) for h in hidden_dims], latent_dim=int(latent_dim),
                                dropout=float(dropout), negative_slope=float(negative_slope),
                                decode_normalized=bool(decode_normalized), feature_scale=bool(feature_scale),
                                feature_residual=bool(feature_residual),
                                modality_discriminator=bool(modality_discriminator))
        self.decode_normalized = decode_normalized
        self.cell_encoders = nn.ModuleDict(
            {m: mlp(n_pcs[m], hidden_dims, latent_dim, dropout, negative_slope) for m in MODALITIES})
        self.feature_encoders = nn.ModuleDict(
            {m: mlp(sketch_dim, hidden_dims, latent_dim, dropout, negative_slope) for m in MODALITIES})
        scale_shape = {m: (n_features[m],) if feature_scale else () for m in MODALITIES}
        self.log_scale = nn.ParameterDict({m: nn.Parameter(torch.zeros(scale_shape[m])) for m in MODALITIES})
        self.bias = nn.ParameterDict({m: nn.Parameter(torch.zeros(n_features[m])) for m in MODALITIES})
        self.residual = nn.ParameterDict({m: nn.Parameter(torch.zeros(n_features[m], latent_dim))
                                          for m in MODALITIES}) if feature_residual else None
        self.discriminator = (discriminator(latent_dim, hidden_dims[-1], negative_slope)
                              if modality_discriminator else None)

    # inference
    def encode_cells(self, modality: str, pcs: torch.Tensor) -> torch.Tensor:
        return self.cell_encoders[modality](pcs)

    def encode_features(self, modality: str, sketch: torch.Tensor) -> torch.Tensor:
        """Feature embeddings from the sketches of all the modality's features (in the model's feature order)."""
        emb = self.feature_encoders[modality](sketch)
        return emb + self.residual[modality] if self.residual is not None else emb

    # generative
    def decode(self, modality: str, cell_emb: torch.Tensor, feature_emb: torch.Tensor) -> torch.Tensor:
        """``softplus(scale) * cell_emb @ feature_emb.T + bias``; the scale is one number or one per feature, and
        the cell embedding is first L2-normalised when ``decode_normalized`` (the embedding users get)."""
        if self.decode_normalized:
            cell_emb = F.normalize(cell_emb, dim=1)
        return F.softplus(self.log_scale[modality]) * (cell_emb @ feature_emb.T) + self.bias[modality]

    # loss
    def loss(self, batch: dict, sketches: dict, feature_pairs: tuple, weights: dict, tau_cell: float,
             tau_feature: float, similarity: str = "cosine") -> dict:
        """Loss terms of one step.

        ``batch[m]`` holds ``pcs`` (cells to encode), ``target`` (dense targets of the first ``n_recon`` of them),
        ``n_recon``; ``batch["pairs"]`` = (rows into rna cells, rows into other cells) of MNN positives;
        ``feature_pairs`` = (rna feature indices, other feature indices) of the genes used this step;
        ``batch["batch_pairs"]`` (optional) = {modality: (rows, partner rows) or None} of cross-batch pairs.
        Feature embeddings are computed exactly once per call.
        """
        cell = {m: self.encode_cells(m, batch[m]["pcs"]) for m in MODALITIES}
        feat = {m: self.encode_features(m, sketches[m]) for m in MODALITIES}
        terms = {}
        for m in MODALITIES:
            n = batch[m]["n_recon"]
            recon = self.decode(m, cell[m][:n], feat[m])
            terms[f"recon_{m}"] = F.mse_loss(recon, batch[m]["target"])
        ia, ib = batch["pairs"]
        terms["cell"] = (nt_xent(cell["rna"][ia], cell["other"][ib], tau_cell, similarity) if len(ia) > 1
                         else cell["rna"].sum() * 0)
        fa, fb = feature_pairs
        terms["feature"] = (nt_xent(feat["rna"][fa], feat["other"][fb], tau_feature, similarity) if len(fa) > 1
                            else feat["rna"].sum() * 0)
        terms["total"] = (weights["gamma_rna"] * terms["recon_rna"] + weights["gamma_other"] * terms["recon_other"]
                          + weights["alpha"] * terms["cell"] + weights["beta"] * terms["feature"])
        if self.discriminator is not None and weights.get("adversarial", 0) > 0:
            # not part of "total" (the monitored loss, which the encoders' side of the game would raise); the
            # trainer adds weights["adversarial"] * terms["adversarial"] to what it minimises
            terms["adversarial"] = self._adversarial_term(cell, {m: batch[m]["n_recon"] for m in MODALITIES})
        if "batch_pairs" in batch:  # cross-batch MNN pairs within each modality: a second cell-level NT-Xent
            terms["batch"] = self._batch_term(cell, batch["batch_pairs"], tau_cell, similarity)
            terms["total"] = terms["total"] + weights["alpha_batch"] * terms["batch"]
        if "known_pairs" in batch:  # the known pairs (paired=) alone: a second cross-modal NT-Xent
            ka, kb = batch["known_pairs"]
            terms["known"] = (nt_xent(cell["rna"][ka], cell["other"][kb], tau_cell, similarity) if len(ka) > 1
                              else cell["rna"].sum() * 0)
            terms["total"] = terms["total"] + weights["alpha_known"] * terms["known"]
        return terms

    def _adversarial_term(self, cell: dict, n: dict) -> torch.Tensor:
        """Binary cross-entropy of the modality discriminator on the step's own cells (L2-normalised, the space the
        contrastive losses and users see), each modality weighted equally; the gradient reaching the encoders is
        reversed, so minimising the total trains the discriminator and confuses it with the encoders."""
        z = {m: _GradientReversal.apply(F.normalize(cell[m][:n[m]], dim=1)) for m in MODALITIES}
        losses = [F.binary_cross_entropy_with_logits(self.discriminator(z[m]).squeeze(1),
                                                     torch.full((n[m],), float(i), device=z[m].device))
                  for i, m in enumerate(MODALITIES)]
        return (losses[0] + losses[1]) / 2

    @staticmethod
    def _batch_term(cell: dict, pairs: dict, tau: float, similarity: str) -> torch.Tensor:
        """Mean over the modalities with batches of the NT-Xent of their cross-batch pairs (rows into ``cell[m]``)."""
        losses = [nt_xent(cell[m][a], cell[m][b], tau, similarity) for m, p in pairs.items() if p is not None
                  for a, b in [p] if len(a) > 1]
        return torch.stack(losses).mean() if losses else cell["rna"].sum() * 0


@torch.no_grad()
def embed_cells(module: BiCLUMModule, modality: str, pcs: np.ndarray, normalize: bool,
                batch_size: int = 8192) -> np.ndarray:
    """Cell embeddings of ``pcs`` (the encoder input) in eval mode, in batches written into one preallocated
    float32 array (no autograd graph is kept); L2-normalised when ``normalize`` (``normalize_output``)."""
    module.eval()
    enc = module.cell_encoders[modality]
    device = next(module.parameters()).device
    out = np.empty((pcs.shape[0], module.init_params["latent_dim"]), dtype=np.float32)
    for i in range(0, pcs.shape[0], batch_size):
        z = enc(torch.as_tensor(pcs[i:i + batch_size], device=device))
        if normalize:
            z = F.normalize(z, dim=1)
        out[i:i + batch_size] = z.cpu().numpy()
    return out
