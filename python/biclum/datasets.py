"""Example data: a simulator of RNA + ATAC peaks (with the gene annotation that links them) and RNA + ADT, and
readers for the real datasets kept next to the repository in ``../shared/data``.

The simulator draws each cell's state from a low-dimensional latent space (cell types are clusters in it); genes,
the peaks in and upstream of each gene, and the proteins encoded by genes all load on the same latent space, so
the modalities share biology the way real ones do: a gene's expression and the accessibility of its peaks rise
together, and a protein follows its gene. Counts are Poisson, generated in chunks so a million cells fit in memory.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .errors import BiclumInputError

DEFAULT_PANEL = ["CD3", "CD4", "CD8a", "CD14", "CD16", "CD19", "CD20", "CD25", "CD27", "CD28", "CD38", "CD45RA",
                 "CD45RO", "CD56", "CD62L", "CD69", "CD127", "CD161", "HLA-DR", "PD-1", "CD11b", "CD11c", "CD44",
                 "CD2", "CD7", "CD5", "CD57", "CD34", "CD33", "CD1c"]
PANEL_GENES = {"CD3": "CD3E", "CD4": "CD4", "CD8a": "CD8A", "CD14": "CD14", "CD16": "FCGR3A", "CD19": "CD19",
               "CD20": "MS4A1", "CD25": "IL2RA", "CD27": "CD27", "CD28": "CD28", "CD38": "CD38", "CD45RA": "PTPRC",
               "CD45RO": "PTPRC", "CD56": "NCAM1", "CD62L": "SELL", "CD69": "CD69", "CD127": "IL7R",
               "CD161": "KLRB1", "HLA-DR": "HLA-DRA", "PD-1": "PDCD1", "CD11b": "ITGAM", "CD11c": "ITGAX",
               "CD44": "CD44", "CD2": "CD2", "CD7": "CD7", "CD5": "CD5", "CD57": "B3GAT1", "CD34": "CD34",
               "CD33": "CD33", "CD1c": "CD1C"}


def _poisson_csr(rng, log_rates_fn, n_cells: int, chunk: int = 5000) -> sp.csr_matrix:
    """Poisson counts from per-chunk dense rates, accumulated as CSR (memory: one chunk at a time)."""
    parts = []
    for start in range(0, n_cells, chunk):
        rates = log_rates_fn(start, min(start + chunk, n_cells))
        counts = rng.poisson(rates).astype(np.float32)
        parts.append(sp.csr_matrix(counts))
    return sp.vstack(parts, format="csr")


def _softmax_rates(logits: np.ndarray, libsize: np.ndarray) -> np.ndarray:
    logits = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(logits, dtype=np.float32)
    p /= p.sum(axis=1, keepdims=True)
    return p * libsize[:, None].astype(np.float32)


def simulate(n_cells: int = 2000, modality: str = "atac", paired: bool = False, n_types: int = 6,
             n_genes: int = 1500, peaks_per_gene: int = 3, n_distal_peaks: int = 1500, n_latent: int = 8,
             rna_depth: float = 1500.0, atac_depth: float = 800.0, adt_depth: float = 2000.0,
             n_other_cells: Optional[int] = None, seed: int = 0, chunk: int = 5000, n_batches: int = 1,
             batch_effect: float = 1.0, independent_batches: bool = False):
    """Simulate RNA + ATAC peaks (``modality="atac"``) or RNA + ADT (``"protein"``) with cell types.

    Returns ``(rna, other, annotation)``: two AnnData objects with raw counts (CSR float32) and ``obs["cell_type"]``,
    and for ATAC a gene annotation DataFrame (gene_name, chrom, start, end, strand; 1-based inclusive) that links
    peaks (named ``chrN-start-end``) to genes; ``None`` for protein. ``paired=True`` gives the same cells (same
    names and states) in both; otherwise independent cells (``n_other_cells``, default ``n_cells``).

    ``n_batches > 1`` assigns cells at random to batches (``obs["batch"]``: "b0", "b1", ...; a paired cell is in
    the same batch in both unless ``independent_batches``, which draws each modality's batches on their own, so
    that a cell's batch tells nothing about its partner's) and gives each batch of each modality its own effect on every feature's log rate:
    a shift drawn N(0, 0.5 * batch_effect) and a scale of the biological signal drawn
    lognormal(0, 0.15 * batch_effect) (``batch_effect=1`` is a strong effect: without correction the batches
    separate within every cell type). With ``n_batches=1`` the data are those of earlier versions (same seed).
    """
    import anndata as ad

    if modality not in ("atac", "protein"):
        raise BiclumInputError(f"modality={modality!r}: simulate 'atac' or 'protein'.")
    rng = np.random.default_rng(seed)
    n_other = n_cells if (paired or n_other_cells is None) else int(n_other_cells)
    centers = rng.normal(0, 1.6, size=(n_types, n_latent)).astype(np.float32)
    type_p = rng.dirichlet(np.full(n_types, 4.0))

    def draw_cells(n):
        types = rng.choice(n_types, size=n, p=type_p)
        z = centers[types] + rng.normal(0, 0.45, size=(n, n_latent)).astype(np.float32)
        return types, z

    types_rna, z_rna = draw_cells(n_cells)
    types_other, z_other = (types_rna, z_rna) if paired else draw_cells(n_other)
    batches = _BatchEffects(n_batches, batch_effect, seed, n_cells, n_other, paired and not independent_batches)

    genes = np.array([f"Gene{i:05d}" for i in range(n_genes)], dtype=object)
    if modality == "protein":
        panel_genes = list(dict.fromkeys(PANEL_GENES[a] for a in DEFAULT_PANEL))
        genes[: len(panel_genes)] = panel_genes
    mask = rng.random((n_latent, n_genes)) < 0.3
    W = (rng.normal(0, 0.9, size=(n_latent, n_genes)) * mask).astype(np.float32)
    base = rng.normal(0, 1.0, size=n_genes).astype(np.float32)

    lib_rna = rng.lognormal(np.log(rna_depth), 0.4, size=n_cells).astype(np.float32)
    eff_rna = batches.effects("rna", n_genes)
    rna_X = _poisson_csr(rng, lambda a, b: _softmax_rates(
        base + batches.apply(eff_rna, "rna", a, b, z_rna[a:b] @ W), lib_rna[a:b]), n_cells, chunk)
    names_rna = [f"cell{i}" if paired else f"rna{i}" for i in range(n_cells)]
    type_names = np.array([f"type{t}" for t in range(n_types)], dtype=object)
    rna = ad.AnnData(X=rna_X, obs=pd.DataFrame({"cell_type": pd.Categorical(type_names[types_rna])},
                                              index=names_rna), var=pd.DataFrame(index=genes))
    batches.annotate(rna, "rna")

    names_other = [f"cell{i}" if paired else f"{modality}{i}" for i in range(n_other)]
    obs_other = pd.DataFrame({"cell_type": pd.Categorical(type_names[types_other])}, index=names_other)
    if modality == "protein":
        gene_pos = {g: i for i, g in enumerate(genes)}
        idx = np.array([gene_pos[PANEL_GENES[a]] for a in DEFAULT_PANEL])
        Wp = W[:, idx] * 1.3
        bp = np.full(len(idx), 1.0, dtype=np.float32)
        lib_adt = rng.lognormal(np.log(adt_depth), 0.3, size=n_other).astype(np.float32)
        eff_adt = batches.effects("other", len(idx))
        adt_X = _poisson_csr(rng, lambda a, b: _softmax_rates(
            bp + batches.apply(eff_adt, "other", a, b, z_other[a:b] @ Wp), lib_adt[a:b]) + 2.0, n_other, chunk)
        iso = sp.csr_matrix(rng.poisson(3.0, size=(n_other, 1)).astype(np.float32))
        other = ad.AnnData(X=sp.hstack([adt_X, iso], format="csr"), obs=obs_other,
                           var=pd.DataFrame(index=DEFAULT_PANEL + ["IgG1_isotype"]))
        batches.annotate(other, "other")
        return rna, other, None

    # genome: genes laid out on 10 chromosomes, ~60 kb apart; peaks in the gene body / 2 kb upstream of the TSS
    n_chrom = 10
    chrom_of = np.sort(rng.integers(0, n_chrom, size=n_genes))
    length = rng.integers(5_000, 40_000, size=n_genes)
    strand = np.where(rng.random(n_genes) < 0.5, "+", "-")
    start = np.zeros(n_genes, dtype=np.int64)
    for c in range(n_chrom):
        sel = np.flatnonzero(chrom_of == c)
        gaps = rng.integers(30_000, 90_000, size=len(sel))
        start[sel] = 100_000 + np.cumsum(gaps + np.r_[0, length[sel][:-1]])
    end = start + length
    annotation = pd.DataFrame({"gene_name": genes, "chrom": [f"chr{c + 1}" for c in chrom_of], "start": start,
                               "end": end, "strand": strand})
    tss = np.where(strand == "+", start, end)
    owner = np.repeat(np.arange(n_genes), peaks_per_gene)
    offset = rng.integers(-1500, 3000, size=len(owner))  # around the TSS, mostly inside the body
    centre = np.where(strand[owner] == "+", tss[owner] + offset, tss[owner] - offset)
    p_chrom = chrom_of[owner]
    # distal peaks: in gene deserts between genes (no overlap with any gene window)
    d_owner = rng.integers(0, n_genes, size=n_distal_peaks)
    d_centre = end[d_owner] + rng.integers(8_000, 20_000, size=n_distal_peaks)
    all_chrom = np.r_[p_chrom, chrom_of[d_owner]]
    all_centre = np.r_[centre, d_centre]
    order = np.lexsort((all_centre, all_chrom))
    key = all_chrom[order].astype(np.int64) * 10**10 + all_centre[order]
    order = order[np.r_[True, key[1:] != key[:-1]]]  # one peak per position
    peak_start = (all_centre - 250)[order]
    peak_end = (all_centre + 250)[order]
    peak_chrom = all_chrom[order]
    peak_names = [f"chr{c + 1}-{s}-{e}" for c, s, e in zip(peak_chrom, peak_start, peak_end)]
    linked = np.r_[owner, np.full(n_distal_peaks, -1)][order]
    Wa = np.where(linked >= 0, 0.85 * W[:, np.maximum(linked, 0)], 0).astype(np.float32)
    Wa += (rng.normal(0, 0.35, size=Wa.shape) * (rng.random(Wa.shape) < 0.3)).astype(np.float32)
    ba = rng.normal(0, 0.7, size=len(order)).astype(np.float32)
    lib_atac = rng.lognormal(np.log(atac_depth), 0.5, size=n_other).astype(np.float32)
    eff_atac = batches.effects("other", len(order))
    atac_X = _poisson_csr(rng, lambda a, b: _softmax_rates(
        ba + batches.apply(eff_atac, "other", a, b, z_other[a:b] @ Wa), lib_atac[a:b]), n_other, chunk)
    var = pd.DataFrame({"chrom": [f"chr{c + 1}" for c in peak_chrom], "start": peak_start, "end": peak_end},
                       index=pd.Index(peak_names))
    other = ad.AnnData(X=atac_X, obs=obs_other, var=var)
    batches.annotate(other, "other")
    return rna, other, annotation


class _BatchEffects:
    """Per-batch effects of :func:`simulate`, drawn from their own random stream (so ``n_batches=1`` leaves the
    simulator's main stream, hence its data, exactly as before)."""

    def __init__(self, n_batches: int, strength: float, seed: int, n_rna: int, n_other: int, same: bool):
        if int(n_batches) < 1:
            raise BiclumInputError(f"n_batches={n_batches}: use 1 (no batches) or more.")
        self.n, self.strength = int(n_batches), float(strength)
        self.rng = np.random.default_rng([int(seed), 7919])
        codes_rna = self.rng.integers(0, self.n, size=n_rna)
        self.codes = {"rna": codes_rna, "other": codes_rna if same else self.rng.integers(0, self.n, size=n_other)}

    def effects(self, modality: str, n_features: int):
        """(shifts n_batches x features, scales n_batches) of one modality; None without batches."""
        if self.n == 1:
            return None
        shift = self.rng.normal(0, 0.5 * self.strength, size=(self.n, n_features)).astype(np.float32)
        scale = self.rng.lognormal(0, 0.15 * self.strength, size=self.n).astype(np.float32)
        return shift, scale

    def apply(self, effects, modality: str, a: int, b: int, signal: np.ndarray) -> np.ndarray:
        if effects is None:
            return signal
        shift, scale = effects
        code = self.codes[modality][a:b]
        return signal * scale[code][:, None] + shift[code]

    def annotate(self, adata, modality: str) -> None:
        if self.n > 1:
            adata.obs["batch"] = pd.Categorical(np.array([f"b{c}" for c in self.codes[modality]]))


# ---------------------------------------------------------------------------------------------- shared datasets
SHARED = {
    "snareseq": ("mop_snareseq_chen2019", "rna.h5ad", "atac.h5ad", "atac", "annotation/mm10_genes.tsv.gz"),
    "eccite": ("eccite_pbmc_mimitou2019_citefuse", "rna.h5ad", "adt.h5ad", "protein", None),
    "pbmc_small": ("pbmc_small_archr_testdata", "rna.h5ad", "atac_tiles5kb.h5ad", "atac", "annotation/hg19_genes.tsv.gz"),
    "bmmc": ("bmmc_granja2019_liger", "rna.h5ad", "atac_peaks.h5ad", "atac", "annotation/hg19_genes.tsv.gz"),
    "reapseq": ("reapseq_pbmc_peterson2017", "rna.h5ad", "adt.h5ad", "protein", None),
    "neurips_cite": ("neurips2021_bmmc_cite_starter", "rna.h5ad", "adt.h5ad", "protein", None),
    "neurips_multiome": ("neurips2021_bmmc_multiome_starter", "rna.h5ad", "atac.h5ad", "atac",
                         "annotation/hg38_genes.tsv.gz"),
}


def shared_data_dir() -> Path:
    """``$BICLUM_SHARED_DATA`` or ``../shared/data`` next to the repository / working directory."""
    env = os.environ.get("BICLUM_SHARED_DATA")
    if env:
        return Path(env)
    for base in (Path(__file__).resolve().parents[3], Path.cwd(), Path.cwd().parent):
        cand = base.parent / "shared" / "data" if base.name != "shared" else base / "data"
        if cand.is_dir():
            return cand
    return Path(__file__).resolve().parents[3].parent / "shared" / "data"


def load_shared(name: str, data_dir: Optional[str] = None):
    """Read a shared dataset: returns ``(rna, other, modality, annotation_path_or_None)``."""
    import anndata as ad

    if name not in SHARED:
        raise BiclumInputError(f"unknown dataset {name!r}; choose one of {sorted(SHARED)}.")
    folder, rna_file, other_file, modality, ann = SHARED[name]
    root = Path(data_dir) if data_dir else shared_data_dir()
    if not (root / folder).is_dir():
        raise BiclumInputError(f"dataset {name!r} not found under {root}; set BICLUM_SHARED_DATA to the folder "
                               f"that holds {folder}/.")
    rna = ad.read_h5ad(root / folder / rna_file)
    other = ad.read_h5ad(root / folder / other_file)
    return rna, other, modality, (str(root / ann) if ann else None)
