"""``biclum benchmark`` / ``biclum ablation`` / ``biclum sensitivity``: methods x datasets -> one table.

Every run (one method on one dataset, or one biclum configuration) goes through the same steps:

1. the inputs are prepared once (:func:`prepare_input`): paired data (same cell names in both modalities) is put in
   the same cell order; labels come from ``obs[label_key]``;
2. the method runs, by default in a **fresh child process** (``isolate=True``) that loads the inputs itself, so its
   time and memory are its own: ``wall_s`` = wall-clock seconds of the method call (input loading and interpreter
   start excluded), ``cpu_s`` = CPU seconds of the worker and its child processes (Rscript) during the call,
   ``peak_rss_mb`` = peak resident memory of the worker and its child processes together (Rscript for Seurat):
   the worker's exact high-water mark (``VmHWM``) or the largest sum of resident sets over the worker and its
   children sampled every 0.2 s, whichever is larger. It includes the Python interpreter, imports and the loaded
   inputs (``rss_inputs_mb`` = the worker's high-water mark just before the method started, so
   ``peak_rss_mb - rss_inputs_mb`` is what the method itself added). With ``isolate=False`` the method runs in this
   process and memory is not measured (NaN);
3. :func:`biclum.metrics.evaluate` scores the embeddings (paired-only metrics only for paired data; neighbour
   conservation against each modality's own PCA/LSI, :func:`pre_integration`);
4. a UMAP figure per run (coloured by modality and by cell type) when umap-learn is installed.

Methods: ``biclum`` (:func:`biclum.integrate`), ``pca`` (:func:`.baselines.pca_floor`), ``pca_cosine``
(:func:`.baselines.pca_cosine`, the same with 10 components and cosine distances), ``seurat``
(:func:`.baselines.seurat_cca`, skipped when R/Seurat are missing), ``scglue`` (:func:`.peers.scglue_baseline`,
ATAC only; its per-stage epoch cap ``scglue_epochs`` is stated in the ``epoch_budget`` column) and ``maxfuse``
(:func:`.peers.maxfuse_baseline`, protein only). The two peers
get the prior knowledge biclum gets (scGLUE: the same gene annotation for its guidance graph; MaxFuse: biclum's
antibody -> gene mapping) and are skipped unless their package imports here or in ``BICLUM_PEERS_PYTHON`` (a
separate environment, ``make peers``; their worker process then runs with that interpreter). A skipped or failed
run is a table row with its reason in ``status``.

Entry points for the CLI: :func:`main_benchmark`, :func:`main_ablation`, :func:`main_sensitivity` (``argv`` lists).

Modules, one job each: ``inputs`` (datasets, prepared once), ``methods`` (one runner per method), ``baselines``
(PCA floor, LSI, Seurat via Rscript and the package's ``seurat_cca.R``), ``peers`` (scGLUE, MaxFuse), ``measure``
(time, memory), ``harness`` (run, score, collect), ``grid`` (ablation, sensitivity), ``report`` (tables), ``cli``.
The model (``biclum.BiCLUM``, ``biclum.integrate``) never imports this package.
"""
from __future__ import annotations

from .cli import main_ablation, main_benchmark, main_sensitivity
from .grid import ABLATIONS, SENSITIVITY_GRID, run_ablation, run_sensitivity
from .harness import pre_integration, run_benchmark, run_method
from .inputs import BenchmarkInput, other_in_gene_space, prepare_input
from .methods import METHODS
from .report import markdown_table, write_table

__all__ = [
    "BenchmarkInput", "prepare_input", "other_in_gene_space", "pre_integration", "run_method", "run_benchmark",
    "run_ablation", "run_sensitivity", "write_table", "markdown_table", "main_benchmark", "main_ablation", "main_sensitivity",
    "METHODS", "ABLATIONS", "SENSITIVITY_GRID",
]
