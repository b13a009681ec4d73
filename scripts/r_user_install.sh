#!/usr/bin/env bash
# An R user with only the R package, no Python environment and no checkout: install the tarball of R CMD build,
# run biclum::biclum_install(), restart R, RunBiCLUM() on SeuratObject's pbmc_small (protein) and on ArchR's small
# PBMC (ATAC, from the shared data). Each R step is a fresh Rscript (a restart), in an empty temporary directory with
# its own R library, virtualenv root (RETICULATE_VIRTUALENV_ROOT, WORKON_HOME), HOME and R user cache;
# RETICULATE_PYTHON, RETICULATE_PYTHON_ENV, PYTHONPATH and VIRTUAL_ENV unset; on the PATH only a plain python3 (a
# fresh venv of the machine's Python, with venv and pip and nothing else) and the system directories.
#
#   bash scripts/r_user_install.sh [biclum_X.Y.Z.tar.gz]
#
# Without a tarball it builds one from this checkout (R CMD build --no-build-vignettes) first. Writes its log to
# benchmarks/results/r_user_install_debian<N>.md (command, commit, date, versions, each step's output and time);
# BICLUM_COMMIT names the commit where the checkout has no .git (the Debian 13 root of debian13-r.sh).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
debian=$(cut -d. -f1 /etc/debian_version 2>/dev/null || echo unknown)
out=${BICLUM_USER_LOG:-$repo/benchmarks/results/r_user_install_debian$debian.md}
commit=${BICLUM_COMMIT:-$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)}
data=${BICLUM_SHARED_DATA:-$(cd "$repo/.." && pwd)/shared/data}
work=$(mktemp -d "${TMPDIR:-/tmp}/biclum-r-user.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/user" "$work/lib" "$work/home" "$work/venvs" "$work/cache"
body=$work/body.md
status=0

if [ $# -ge 1 ]; then
  tarball=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
else
  (cd "$work" && R CMD build --no-build-vignettes "$repo" > build.log 2>&1) || { cat "$work/build.log"; exit 1; }
  tarball=$(ls "$work"/biclum_*.tar.gz)
fi
cp "$tarball" "$work/user/"
# the plain python3 the user has, with venv and pip and no packages: a fresh venv of the system's python3 where it
# can make one (Debian's python3 with python3-venv), else of the real interpreter behind python3 on the PATH
base_python=/usr/bin/python3
if ! { [ -x "$base_python" ] && "$base_python" -m venv "$work/python" 2>/dev/null; }; then
  rm -rf "$work/python"
  base_python=$(python3 -c 'import os, sys; print(os.path.realpath(sys.base_prefix))')/bin/python3
  "$base_python" -m venv "$work/python"
fi

# the user's environment: nothing of this machine's Python set-up, nothing of the checkout
user_env=(env -u RETICULATE_PYTHON -u RETICULATE_PYTHON_ENV -u PYTHONPATH -u VIRTUAL_ENV
          HOME="$work/home" PATH="$work/python/bin:/usr/local/bin:/usr/bin:/bin"
          R_LIBS="$work/lib" R_LIBS_USER="$work/lib" R_USER_CACHE_DIR="$work/cache"
          RETICULATE_VIRTUALENV_ROOT="$work/venvs" WORKON_HOME="$work/venvs"
          BICLUM_SHARED_DATA="$data" OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}")

step() {  # step <title> <command...>: runs it in the user's directory and environment, logs output and time
  local title=$1; shift
  local t0=$SECONDS rc=0
  (cd "$work/user" && "${user_env[@]}" "$@") > "$work/step.log" 2>&1 || rc=$?
  {
    echo "## $title"; echo
    echo "exit status $rc, $((SECONDS - t0)) s"; echo
    echo '```'; grep -v "^WARNING: Location 'file:///opt/pypi" "$work/step.log" | tail -n 40; echo '```'; echo
  } >> "$body"
  echo "r_user_install: $title: exit $rc, $((SECONDS - t0)) s"
  [ "$rc" = 0 ] || status=1
  return "$rc"
}

step "R CMD INSTALL of the tarball into an empty R library" R CMD INSTALL -l "$work/lib" "$(basename "$tarball")" &&
step "biclum::biclum_install()" Rscript -e 'biclum::biclum_install()' &&
step "restart R: RunBiCLUM() on SeuratObject's pbmc_small (protein)" Rscript -e '
  suppressPackageStartupMessages(library(biclum))
  data("pbmc_small", package = "SeuratObject")
  res <- RunBiCLUM(pbmc_small, pbmc_small, modality = "protein", max_epochs = 5, verbose = FALSE)
  cat("Python:", biclum:::.interpreter_text(), "\n")
  cat("pbmc_small:", dim(SeuratObject::Embeddings(res$rna[["biclum"]])), "(RNA cells x dims),",
      dim(SeuratObject::Embeddings(res$other[["biclum"]])), "(protein cells x dims)\n")' &&
step "restart R: RunBiCLUM() on ArchR's small PBMC (ATAC)" Rscript -e '
  suppressPackageStartupMessages(library(biclum))
  data <- file.path(Sys.getenv("BICLUM_SHARED_DATA"), "pbmc_small_archr_testdata")
  ad <- reticulate::import("anndata", convert = FALSE)
  rna <- anndata_to_seurat(ad$read_h5ad(file.path(data, "rna.h5ad")), assay = "RNA")
  atac <- anndata_to_seurat(ad$read_h5ad(file.path(data, "atac_tiles5kb.h5ad")), assay = "peaks")
  ann <- file.path(dirname(data), "annotation", "hg19_genes.tsv.gz")
  res <- RunBiCLUM(rna, atac, modality = "atac", annotation = ann, max_epochs = 5, verbose = FALSE)
  cat("ArchR PBMC:", dim(SeuratObject::Embeddings(res$rna[["biclum"]])), "(RNA cells x dims),",
      dim(SeuratObject::Embeddings(res$other[["biclum"]])), "(ATAC cells x dims)\n")' || true

versions=$("${user_env[@]}" Rscript -e 'cat(R.version.string, "; reticulate", format(packageVersion("reticulate")),
  "; SeuratObject", format(packageVersion("SeuratObject")), "\n")' 2>/dev/null || true)
{
  echo "# An R user without Python: the tarball, biclum_install(), RunBiCLUM()"; echo
  echo "Command: \`bash scripts/r_user_install.sh${1:+ $1}\`  "
  echo "Commit: $commit; $(date -u '+%Y-%m-%d %H:%M UTC'); Debian $(cat /etc/debian_version 2>/dev/null); $versions  "
  echo "Python: $("$base_python" --version 2>&1) (a fresh venv of $base_python, with pip and nothing else, first on"
  echo "the PATH); RETICULATE_PYTHON unset; R library, virtualenv root and HOME empty temporary directories; threads:"
  echo "OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}; seed 0 (RunBiCLUM's default), max_epochs 5."; echo
  echo "Result: $([ "$status" = 0 ] && echo "every step finished" || echo "a step FAILED")."; echo
  cat "$body"
} > "$out"
echo "r_user_install: log in $out"
exit "$status"
