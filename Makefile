# The README's two commands: `make demo` and `make test`. Both set up a fresh machine first.
PYTHON ?= python3
export BICLUM_SHARED_DATA ?= $(abspath ../shared/data)
export RETICULATE_PYTHON ?= $(shell command -v $(PYTHON))
DEMO_OUT ?= demo_out

.PHONY: setup demo test test-python test-r check-r clean

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

test-r:
	Rscript -e 'testthat::test_local(".", reporter = "summary", stop_on_failure = TRUE)'

clean:
	rm -rf $(DEMO_OUT) biclum_*.tar.gz biclum.Rcheck .setup-done
