"""Integration quality on real data, with default settings and a real training budget.

Each threshold lies between the joint-PCA floor (../shared/ANCHORS.md; benchmarks/results/all_datasets.md) and what
biclum reaches, so the floor fails every test. ``BICLUM_QUALITY_USE_FLOOR=1`` replaces biclum's embeddings with the
floor's, to show that the tests catch a model no better than it.
"""
from __future__ import annotations

import os

import numpy as np
import pytest

import biclum
from biclum.benchmark import other_in_gene_space, prepare_input
from biclum.benchmark.baselines import pca_floor
from biclum.datasets import load_shared
from biclum.metrics import foscttm_score, label_transfer_accuracy


def _embed(name: str, n_cells: int = 0):
    """(rna embedding, other embedding, prepared input), rows in the paired cell order."""
    rna, other, modality, annotation = load_shared(name)
    if n_cells:
        keep = np.sort(np.random.default_rng(0).choice(rna.n_obs, n_cells, replace=False))
        rna = rna[keep].copy()
        other = other[rna.obs_names].copy()
    prep = prepare_input(rna, other, modality, annotation)
    if os.environ.get("BICLUM_QUALITY_USE_FLOOR") == "1":
        r, o = pca_floor(prep["rna"], other_in_gene_space(prep), seed=0)
        return r, o, prep
    res = biclum.integrate(prep["rna"], prep["other"], modality=modality, annotation=annotation, seed=0,
                           progress=False, num_threads=1)
    return (res.rna[prep["rna"].obs_names].obsm["X_biclum"], res.other[prep["other"].obs_names].obsm["X_biclum"],
            prep)


def _transfer(r, o, prep):
    return label_transfer_accuracy(r, prep["rna_labels"], o, prep["other_labels"])


def test_eccite_quality(shared_data):
    """ECCITE (500 cells, RNA + 49 ADT): floor FOSCTTM 0.262, transfer 0.770; biclum about 0.12 and 0.80."""
    r, o, prep = _embed("eccite")
    assert foscttm_score(r, o) < 0.18
    assert _transfer(r, o, prep) > 0.75


def test_neurips_cite_quality(shared_data):
    """NeurIPS BMMC CITE starter (600 cells, 8 shared genes): floor FOSCTTM 0.188; biclum about 0.09."""
    r, o, _ = _embed("neurips_cite")
    assert foscttm_score(r, o) < 0.14


def test_snareseq_subsample_quality(shared_data):
    """3,000 paired SNARE-seq cells (RNA + ATAC peaks): floor FOSCTTM about 0.28; biclum about 0.14."""
    r, o, prep = _embed("snareseq", n_cells=3000)
    assert foscttm_score(r, o) < 0.20
    assert _transfer(r, o, prep) > 0.55
