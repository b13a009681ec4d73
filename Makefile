# The README's two commands: `make demo` and `make test`. Both set up a fresh machine first.
PYTHON ?= python3
export BICLUM_SHARED_DATA ?= $(abspath ../shared/data)
export RETICULATE_PYTHON ?= $(shell $(PYTHON) -c 'import sys; print(sys.executable)' 2>/dev/null || command -v $(PYTHON))
DEMO_OUT ?= demo_out

.PHONY: setup demo test test-python test-r check-r clean results peers

setup:
	bash scripts/setup.sh

demo: setup
	$(PYTHON) -m biclum.cli fit --demo --modality atac --out $(DEMO_OUT) --seed 0
	@echo "demo: embeddings in $(DEMO_OUT)/rna.h5ad and $(DEMO_OUT)/other.h5ad, figures $(DEMO_OUT)/loss.png $(DEMO_OUT)/umap.png"

test: setup test-python check-r

test-python:
	$(PYTHON) -m pytest tests/python -q -p no:cacheprovider

# R CMD build (with vignettes) + R CMD check (runs tests/testthat, every Rd example, \donttest ones too, and rebuilds the vignettes)
check-r:
	rm -rf biclum_*.tar.gz biclum.Rcheck
	R CMD build .
	_R_CHECK_FORCE_SUGGESTS_=false R CMD check --no-manual --run-donttest biclum_*.tar.gz
	@if grep -q "WARNING\|ERROR" biclum.Rcheck/00check.log; then echo "R CMD check has warnings or errors"; exit 1; fi
	$(PYTHON) scripts/check_r_tests.py biclum.Rcheck

test-r:
	Rscript -e 'testthat::test_local(".", reporter = "summary", stop_on_failure = TRUE)'

clean:
	rm -rf $(DEMO_OUT) biclum_*.tar.gz biclum.Rcheck .setup-done

# Optional peers of `biclum benchmark` (MaxFuse, scGLUE) in their own environment, sharing this one's numpy,
# anndata and torch (--system-site-packages); scGLUE's guidance graph also needs the bedtools program.
PEERS_VENV ?= .venv-peers
peers:
	$(PYTHON) -m venv --system-site-packages $(PEERS_VENV)
	$(PEERS_VENV)/bin/pip install maxfuse scglue
	@command -v bedtools >/dev/null || { echo "peers: scGLUE's guidance graph needs bedtools: apt-get install bedtools"; \
	  $$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get install -y -qq --no-install-recommends bedtools >/dev/null; }

# Regenerate every file under benchmarks/results from a clean clone: `make results` (3.25 hours on 2 cores before
# the low-depth, linear-floor, LSI and loadings steps were added; it installs the peers first). Three phases: the
# steps that time biclum at 2 threads run alone; the 3-seed tables,
# which run at 1 thread each, run in two lanes side by side (one core each); then the peers table. Files the
# scripts append to are removed first. Per-step wall times, their sum and the wall clock: make_results.md.
RESULTS := benchmarks/results
SEEDS ?= 0 1 2
SCALE_CELLS ?= 10000 20000 40000
BICLUM_PEERS_PYTHON ?= $(abspath $(PEERS_VENV)/bin/python)
export BICLUM_PEERS_PYTHON
RESULTS_RLIB := $(abspath $(RESULTS)/tmp/rlib)
RESULTS_TIMES := $(RESULTS)/tmp/make_results_times.tsv
STEP = RESULTS_TIMES=$(RESULTS_TIMES) bash scripts/timed_step.sh
# the low-depth SNARE-seq proxies (studies/lowdepth_proxy.py) and the user benchmark on them
MM10 := $(BICLUM_SHARED_DATA)/annotation/mm10_genes.tsv.gz
LOWDEPTH := $(RESULTS)/tmp/lowdepth
LOWDEPTH_OPTS = --modality atac --annotation $(MM10) --seeds $(SEEDS) --no-nmi --no-umap --out $(RESULTS)
LOWDEPTH_BENCH = $(PYTHON) -m biclum.cli benchmark --rna $(LOWDEPTH)/rna.h5ad --other $(LOWDEPTH)/atac.h5ad \
	--dataset-name snareseq_lowdepth $(LOWDEPTH_OPTS)
LOWDEPTH_EXC_BENCH = $(PYTHON) -m biclum.cli benchmark --rna $(LOWDEPTH)_excitatory/rna.h5ad \
	--other $(LOWDEPTH)_excitatory/atac.h5ad --dataset-name snareseq_lowdepth_excitatory $(LOWDEPTH_OPTS)
.PHONY: results-timed results-lane-a results-lane-b results-peers
results: setup peers
	mkdir -p $(RESULTS)/tmp $(RESULTS_RLIB) && rm -f $(RESULTS_TIMES) && date +%s > $(RESULTS_TIMES:.tsv=.start)
	R CMD INSTALL --no-test-load -l $(RESULTS_RLIB) . >/dev/null  # the R steps use this checkout's R package
	rm -f $(RESULTS)/snareseq_core.md $(RESULTS)/distributed_snare.md $(RESULTS)/scale.md $(RESULTS)/scale_joint_input.md
	$(MAKE) --no-print-directory results-timed
	$(MAKE) --no-print-directory -j2 results-lane-a results-lane-b
	$(MAKE) --no-print-directory results-peers
	bash scripts/timed_step.sh --summary $(RESULTS)/make_results.md

# phase 1: nothing else runs (these files report wall times at 2 threads, and threads_busy makes its own load)
results-timed:
	$(STEP) snareseq_core $(PYTHON) benchmarks/snareseq_core.py
	$(STEP) query_mapping $(PYTHON) benchmarks/query_mapping.py
	$(STEP) downstream_snare $(PYTHON) benchmarks/downstream_snare.py --embedding biclum
	$(STEP) distributed_snare $(PYTHON) benchmarks/distributed_snare.py --threads 1
	$(STEP) scale $(PYTHON) benchmarks/scale.py --cells $(SCALE_CELLS)
	$(STEP) scale_1m $(PYTHON) benchmarks/scale.py --cells 100000 1000000 --backed
	$(STEP) scale_joint_input $(PYTHON) benchmarks/scale.py --cells 100000 1000000 --backed --set joint_input=auto \
	    --out $(RESULTS)/scale_joint_input.md
	$(STEP) scale_joint_input_steps sh -c '$(PYTHON) benchmarks/scale.py --cells 100000 --backed --epochs 2 \
	    --out $(RESULTS)/scale_joint_input.md && $(PYTHON) benchmarks/scale.py --cells 100000 --backed --epochs 2 \
	    --set joint_input=auto --out $(RESULTS)/scale_joint_input.md'
	$(STEP) prior_gene_activity $(PYTHON) benchmarks/prior_gene_activity.py
	$(STEP) bridge_speed env R_LIBS=$(RESULTS_RLIB) Rscript benchmarks/bridge_speed.R
	$(STEP) threads_busy $(PYTHON) benchmarks/threads_busy.py
	$(STEP) lsi_components $(PYTHON) studies/lsi_components.py
	$(STEP) archr_runbiclum env R_LIBS=$(RESULTS_RLIB) Rscript benchmarks/archr_runbiclum.R $(SEEDS)

# phase 2: two lanes of 1-thread, 3-seed tables side by side
results-lane-a:
	$(STEP) all_datasets $(PYTHON) benchmarks/all_datasets.py --seeds $(SEEDS) --threads 1
	$(STEP) ablation_seeds $(PYTHON) benchmarks/all_datasets.py --datasets snareseq eccite --ablation --loadings \
	    --seeds $(SEEDS) --threads 1 --name ablation_seeds
	$(STEP) ablation_effects $(PYTHON) studies/ablation_effects.py
	$(STEP) batch_silhouette $(PYTHON) studies/batch_silhouette.py --seeds $(SEEDS) --threads 1
	$(STEP) loadings_snare $(PYTHON) benchmarks/loadings_snare.py --seeds $(SEEDS) --threads 1
	$(STEP) transfer_ceiling $(PYTHON) studies/transfer_ceiling.py --seeds $(SEEDS) --threads 1
	$(STEP) snare_trials_training $(PYTHON) benchmarks/all_datasets.py --datasets snareseq --seeds $(SEEDS) \
	    --threads 1 --variants default alpha=3 gamma_other=5 gamma_other=50 dropout=0.1 max_epochs=80 \
	    refresh_pairs_every=10 --name snare_trials_training
	$(STEP) trials_all_gamma $(PYTHON) benchmarks/all_datasets.py --seeds $(SEEDS) --threads 1 \
	    --variants default gamma_other=50,dropout=0.1 --name trials_all_gamma
	$(STEP) mosaic_bridge $(PYTHON) benchmarks/mosaic.py bridge --datasets eccite reapseq snareseq --seeds $(SEEDS) \
	    --threads 1
	$(STEP) known_pairs_snareseq $(PYTHON) benchmarks/known_pairs.py --datasets snareseq --seeds $(SEEDS) \
	    --threads 1 --name known_pairs_snareseq
	$(STEP) known_pairs_ceiling $(PYTHON) benchmarks/known_pairs.py --datasets eccite neurips_multiome snareseq \
	    --fractions 0.5 0.8 --seeds $(SEEDS) --threads 1 --name known_pairs_ceiling
	$(STEP) lowdepth_proxy $(PYTHON) studies/lowdepth_proxy.py --out $(LOWDEPTH) --record lowdepth_proxy
	$(STEP) lowdepth_proxy_excitatory $(PYTHON) studies/lowdepth_proxy.py --out $(LOWDEPTH)_excitatory \
	    --types L2/3 L4/5 L6 --record lowdepth_proxy_excitatory
	$(STEP) lowdepth_snareseq $(LOWDEPTH_BENCH) --methods biclum pca --name lowdepth_snareseq
	$(STEP) lowdepth_snareseq_lsi200 $(LOWDEPTH_BENCH) --methods biclum --config n_lsi=200 \
	    --name lowdepth_snareseq_lsi200
	$(STEP) lowdepth_excitatory_snareseq $(LOWDEPTH_EXC_BENCH) --methods biclum pca --name lowdepth_excitatory_snareseq
	$(STEP) lowdepth_excitatory_snareseq_lsi200 $(LOWDEPTH_EXC_BENCH) --methods biclum --config n_lsi=200 \
	    --name lowdepth_excitatory_snareseq_lsi200
	$(STEP) lowdepth_snareseq_smooth0 $(LOWDEPTH_BENCH) --methods biclum --config smooth_k=0 \
	    --name lowdepth_snareseq_smooth0
	$(STEP) lowdepth_excitatory_snareseq_smooth0 $(LOWDEPTH_EXC_BENCH) --methods biclum --config smooth_k=0 \
	    --name lowdepth_excitatory_snareseq_smooth0
	$(STEP) trials_smoothing $(PYTHON) benchmarks/all_datasets.py --datasets snareseq neurips_multiome pbmc_small bmmc \
	    --seeds $(SEEDS) --threads 1 --variants default smooth_k=0 smooth_k=0,n_shared_pcs=10 --name trials_smoothing
	$(STEP) trials_smoothing_protein $(PYTHON) benchmarks/all_datasets.py --datasets eccite reapseq neurips_cite \
	    --seeds $(SEEDS) --threads 1 --variants default smooth_k=0 --name trials_smoothing_protein
	$(STEP) trials_joint_input $(PYTHON) benchmarks/all_datasets.py --datasets snareseq neurips_multiome pbmc_small \
	    bmmc --seeds $(SEEDS) --threads 1 --variants default joint_input=10 --name trials_joint_input
	$(STEP) trials_joint_input_protein $(PYTHON) benchmarks/all_datasets.py --datasets eccite reapseq neurips_cite \
	    --seeds $(SEEDS) --threads 1 --variants default joint_input=10 --name trials_joint_input_protein
	$(STEP) trials_joint_input_auto $(PYTHON) benchmarks/all_datasets.py --datasets snareseq neurips_multiome \
	    pbmc_small bmmc --seeds $(SEEDS) --threads 1 --variants joint_input=auto --name trials_joint_input_auto
	$(STEP) trials_joint_input_auto_protein $(PYTHON) benchmarks/all_datasets.py --datasets eccite reapseq \
	    neurips_cite --seeds $(SEEDS) --threads 1 --variants joint_input=auto --name trials_joint_input_auto_protein
	$(STEP) trials_joint_input_loadings $(PYTHON) benchmarks/all_datasets.py --datasets snareseq --seeds $(SEEDS) \
	    --threads 1 --variants default joint_input=auto --loadings --name trials_joint_input_loadings
	$(STEP) trials_bridge_joint_eccite $(PYTHON) benchmarks/mosaic.py bridge --datasets eccite --seeds $(SEEDS) \
	    --threads 1 --set joint_input=auto --name trials_bridge_joint_eccite
	$(STEP) lowdepth_snareseq_joint10 $(LOWDEPTH_BENCH) --methods biclum --config joint_input=10 \
	    --name lowdepth_snareseq_joint10
	$(STEP) lowdepth_excitatory_snareseq_joint10 $(LOWDEPTH_EXC_BENCH) --methods biclum --config joint_input=10 \
	    --name lowdepth_excitatory_snareseq_joint10
	$(STEP) linear_floor $(PYTHON) studies/linear_floor.py --datasets snareseq neurips_multiome pbmc_small \
	    --files lowdepth $(LOWDEPTH)/rna.h5ad $(LOWDEPTH)/atac.h5ad $(MM10) \
	    --files lowdepth_excitatory $(LOWDEPTH)_excitatory/rna.h5ad $(LOWDEPTH)_excitatory/atac.h5ad $(MM10)
	$(STEP) linear_floor_protein $(PYTHON) studies/linear_floor.py --datasets eccite reapseq neurips_cite \
	    --name linear_floor_protein
	$(STEP) foscttm_ceiling $(PYTHON) studies/foscttm_ceiling.py --seeds $(SEEDS) --threads 1 \
	    --files snareseq_lowdepth $(LOWDEPTH)/rna.h5ad $(LOWDEPTH)/atac.h5ad $(MM10) \
	    --files snareseq_lowdepth_excitatory $(LOWDEPTH)_excitatory/rna.h5ad $(LOWDEPTH)_excitatory/atac.h5ad $(MM10)

results-lane-b:
	$(STEP) batches $(PYTHON) benchmarks/batches.py --seeds $(SEEDS) --threads 1 --cells 1500
	$(STEP) batches_atac_scale $(PYTHON) benchmarks/batches.py --seeds $(SEEDS) --threads 1 --cells 1500 --parts sim \
	    --only 'sim_atac strong batch effect' --set batch_scale=True --name batches_atac_scale
	$(STEP) batches_mnn $(PYTHON) benchmarks/batches.py --seeds $(SEEDS) --threads 1 --cells 1500 \
	    --only strong neurips_cite --set batch_centre=mnn --name batches_mnn
	$(STEP) batches_mnn_nopairs $(PYTHON) benchmarks/batches.py --seeds $(SEEDS) --threads 1 --cells 1500 \
	    --only strong neurips_cite reapseq --set batch_centre=mnn alpha_batch=0 --name batches_mnn_nopairs
	$(STEP) batch_centre_rule $(PYTHON) studies/batch_centre_rule.py --seeds $(SEEDS)
	$(STEP) snare_trials $(PYTHON) benchmarks/all_datasets.py --datasets snareseq --seeds $(SEEDS) --threads 1 \
	    --variants default n_lsi=30 n_lsi=200 tau_cell=0.2 mnn_k=50 --name snare_trials
	$(STEP) pair_quality $(PYTHON) studies/pair_quality.py --seeds $(SEEDS) --threads 1
	$(STEP) snare_trials_pairs $(PYTHON) benchmarks/all_datasets.py --datasets snareseq --seeds $(SEEDS) --threads 1 \
	    --variants default smooth_k=40 smooth_k=80 smooth_k=80,gamma_other=50,dropout=0.1 --name snare_trials_pairs
	$(STEP) trials_reap_smooth $(PYTHON) benchmarks/all_datasets.py --datasets reapseq --seeds $(SEEDS) --threads 1 \
	    --variants default smooth_k=75 smooth_k=75,gamma_other=50,dropout=0.1 --name trials_reap_smooth
	$(STEP) mosaic_three $(PYTHON) benchmarks/mosaic.py three --seeds $(SEEDS) --threads 1
	$(STEP) known_pairs $(PYTHON) benchmarks/known_pairs.py --datasets eccite --seeds $(SEEDS) --threads 1
	$(STEP) known_pairs_reapseq $(PYTHON) benchmarks/known_pairs.py --datasets reapseq --seeds $(SEEDS) --threads 1 \
	    --name known_pairs_reapseq
	$(STEP) gene_activity_rule $(PYTHON) benchmarks/all_datasets.py --datasets neurips_multiome pbmc_small bmmc \
	    --seeds $(SEEDS) --threads 1 --variants default gene_activity=gene_body gene_activity=distance_weighted \
	    --name gene_activity_rule
	$(STEP) gene_activity_rule_snareseq $(PYTHON) benchmarks/all_datasets.py --datasets snareseq --seeds $(SEEDS) \
	    --threads 1 --variants gene_activity=distance_weighted --name gene_activity_rule_snareseq
	$(STEP) trials_adversarial $(PYTHON) benchmarks/all_datasets.py --seeds $(SEEDS) --threads 1 \
	    --variants adversarial=3 --name trials_adversarial
	$(STEP) trials_lsi $(PYTHON) benchmarks/all_datasets.py --datasets snareseq --seeds $(SEEDS) --threads 1 \
	    --variants default n_lsi=200 --name trials_lsi
	$(STEP) trials_loadings $(PYTHON) benchmarks/all_datasets.py --datasets snareseq eccite --seeds $(SEEDS) \
	    --threads 1 --variants default feature_residual=true feature_residual=true,gamma_rna=100 --loadings \
	    --name trials_loadings

# phase 3: biclum beside the PCA floor, Seurat, MaxFuse and scGLUE in one run (seed 0; scGLUE capped at 8 + 8
# epochs there, labelled in its epoch_budget column), then every RNA+ATAC dataset with scGLUE on its own schedule
# (--scglue-epochs 0: scglue's data-size budget and early stopping; the small sets with $(SEEDS), SNARE-seq and its
# low-depth proxy with seed 0: they take hours on 2 cores (studies/scglue_progress.py scores them part way); a stopped
# run resumes from its last finished epoch in $(RESULTS)/tmp/scglue when `make results-peers` runs again)
results-peers:
	$(STEP) benchmark $(PYTHON) -m biclum.cli benchmark --datasets eccite reapseq snareseq \
	    --methods biclum pca seurat maxfuse scglue --no-nmi --no-umap --seed 0 --out $(RESULTS) --name benchmark_peers
	$(STEP) scglue_own_small $(PYTHON) -m biclum.cli benchmark --datasets neurips_multiome pbmc_small \
	    --methods biclum pca scglue --scglue-epochs 0 --scglue-checkpoints $(RESULTS)/tmp/scglue --no-nmi --no-umap \
	    --seeds $(SEEDS) --out $(RESULTS) --name scglue_own_small
	$(STEP) scglue_own_snareseq $(PYTHON) -m biclum.cli benchmark --datasets snareseq \
	    --methods biclum pca scglue --scglue-epochs 0 --scglue-checkpoints $(RESULTS)/tmp/scglue --no-nmi --no-umap \
	    --seed 0 --out $(RESULTS) --name scglue_own_snareseq
	$(STEP) scglue_own_snareseq_lowdepth $(PYTHON) -m biclum.cli benchmark --rna $(LOWDEPTH)/rna.h5ad \
	    --other $(LOWDEPTH)/atac.h5ad --modality atac --annotation $(MM10) --dataset-name snareseq_lowdepth \
	    --methods scglue --scglue-epochs 0 --scglue-checkpoints $(RESULTS)/tmp/scglue --no-nmi --no-umap --seed 0 \
	    --out $(RESULTS) --name scglue_own_snareseq_lowdepth
	$(STEP) scglue_own_snareseq_lowdepth_excitatory $(PYTHON) -m biclum.cli benchmark \
	    --rna $(LOWDEPTH)_excitatory/rna.h5ad --other $(LOWDEPTH)_excitatory/atac.h5ad --modality atac \
	    --annotation $(MM10) --dataset-name snareseq_lowdepth_excitatory --methods scglue --scglue-epochs 0 \
	    --scglue-checkpoints $(RESULTS)/tmp/scglue --no-nmi --no-umap --seed 0 --out $(RESULTS) \
	    --name scglue_own_snareseq_lowdepth_excitatory
