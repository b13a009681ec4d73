#!/usr/bin/env bash
# Set up a fresh Debian 12/13 machine for biclum: system R packages (Debian's), the Python package and its
# test dependencies, and the R package. Idempotent: a stamp file skips work already done for this checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
STAMP=.setup-done
want="$( (cat pyproject.toml DESCRIPTION scripts/setup.sh; echo "skip_r=${BICLUM_SKIP_R:-0}") | sha1sum | cut -c1-12)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && [ "${1:-}" != "--force" ]; then
  echo "setup: already done for this checkout (rm $STAMP to redo)"; exit 0
fi
echo "setup: Debian $(cat /etc/debian_version 2>/dev/null || echo '?'), $($PYTHON --version)"

# --- R and its packages, from Debian (CRAN/Bioconductor are not reachable) -------------------------------
if [ "${BICLUM_SKIP_R:-0}" != "1" ]; then
  SUDO=""; [ "$(id -u)" != "0" ] && SUDO="sudo"
  R_PKGS="r-base-core r-base-dev r-cran-seurat r-cran-reticulate r-cran-testthat r-cran-knitr r-cran-rmarkdown
          r-cran-roxygen2 r-bioc-singlecellexperiment r-bioc-biocstyle r-bioc-scater r-cran-matrix pandoc"
  missing=$(for p in $R_PKGS; do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done)
  if [ -n "$missing" ]; then
    echo "setup: apt-get install $missing"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
  fi
fi

# --- Python: the CPU torch wheel first (an unpinned torch would pull GBs of CUDA wheels), NumPy < 2 for
# reticulate < 1.36, then the package with its test and R-bridge extras -----------------------------------
$PYTHON -m pip install -q "torch==2.13.0" "numpy<2"
$PYTHON -m pip install -q -e ".[test]" "numpy<2"
if command -v R >/dev/null 2>&1; then
  $PYTHON -m pip install -q "rpy2==3.5.17" "anndata2ri==2.0.1" "numpy<2" || echo "setup: rpy2 unavailable (R bridge tests from Python will be skipped)"
  R CMD INSTALL --no-test-load . >/dev/null 2>&1 || R CMD INSTALL .
fi
echo "$want" > "$STAMP"
echo "setup: done"
