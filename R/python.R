# Finding, checking and (lazily) importing the Python side.

.biclum_env <- new.env(parent = emptyenv())

.biclum_venv <- function() getOption("biclum.envname", "r-biclum")

# Python interpreters worth trying when reticulate is not initialised yet and RETICULATE_PYTHON is unset.
.python_candidates <- function() {
  cand <- c(getOption("biclum.python", ""))
  venv <- tryCatch(
    if (reticulate::virtualenv_exists(.biclum_venv())) reticulate::virtualenv_python(.biclum_venv()) else "",
    error = function(e) "")
  cand <- c(cand, venv, Sys.which("python3"), Sys.which("python"))
  cand <- unique(cand[nzchar(cand)])
  cand[file.exists(cand)]
}

# The real interpreter behind a path (pyenv shims and similar wrappers confuse reticulate).
.resolve_python <- function(python) {
  out <- suppressWarnings(tryCatch(
    system2(python, c("-c", shQuote("import sys; print(sys.executable)")), stdout = TRUE, stderr = FALSE),
    error = function(e) character()))
  out <- out[nzchar(out)]
  if (length(out) && file.exists(out[length(out)])) out[length(out)] else python
}

.python_has_biclum <- function(python) {
  out <- suppressWarnings(tryCatch(
    system2(python, c("-c", shQuote("import importlib.util,sys; sys.exit(importlib.util.find_spec('biclum') is None)")),
            stdout = FALSE, stderr = FALSE),
    error = function(e) 1L))
  identical(as.integer(out), 0L)
}

.fix_text <- function() {
  paste0(
    "To fix: run biclum::biclum_install() and restart R (it installs the biclum Python package that this R ",
    "package carries, into a virtualenv), or choose a Python environment where the biclum Python package of the ",
    "same version is installed (pip install ", .bundled_python() %|NA|% "<the biclum checkout>", ") before biclum ",
    "first uses Python: reticulate::use_virtualenv(\"<env>\"), or the environment variable RETICULATE_PYTHON (an ",
    "interpreter) or RETICULATE_PYTHON_ENV (an environment)",
    if (utils::packageVersion("reticulate") < "1.36") {
      paste0("; with reticulate ", utils::packageVersion("reticulate"), " that environment needs NumPy < 2")
    } else "", ".")
}

`%|NA|%` <- function(a, b) if (is.na(a)) b else a

.python_error <- function(msg, class = "biclum_python_missing") {
  structure(class = c(class, "biclum_error", "error", "condition"),
            list(message = msg, call = NULL))
}

# Before reticulate starts Python (once per session), as its vignette "Using reticulate in an R package" asks: the
# user's choice wins (RETICULATE_PYTHON, RETICULATE_PYTHON_ENV, use_python() / use_virtualenv() / use_condaenv());
# without one, biclum suggests an interpreter where biclum is installed (use_python(required = FALSE): the option
# biclum.python, the r-biclum virtualenv, python3 on the PATH), else declares its requirements with py_require()
# (reticulate >= 1.41, which then provisions them). Nothing is written to RETICULATE_PYTHON. Returns the real
# interpreter behind a RETICULATE_PYTHON that is a wrapper (pyenv shim), for the start only, or NULL.
.choose_python <- function() {
  if (reticulate::py_available(initialize = FALSE)) return(NULL)
  env_py <- Sys.getenv("RETICULATE_PYTHON", "")
  if (nzchar(env_py)) {
    if (!file.exists(env_py)) {
      stop(.python_error(paste0(
        "biclum needs Python, but RETICULATE_PYTHON=", env_py, " does not exist. ", .fix_text())))
    }
    real <- .resolve_python(env_py)
    return(if (identical(normalizePath(real), normalizePath(env_py))) NULL else real)
  }
  env_dir <- Sys.getenv("RETICULATE_PYTHON_ENV", "")
  if (nzchar(env_dir)) {
    if (!dir.exists(env_dir)) {
      stop(.python_error(paste0(
        "biclum needs Python, but RETICULATE_PYTHON_ENV=", env_dir, " is not a Python environment (no such ",
        "directory). ", .fix_text())))
    }
    return(NULL)
  }
  if (.user_chose_python()) return(NULL)
  for (py in .python_candidates()) {
    if (.python_has_biclum(py)) {
      reticulate::use_python(.resolve_python(py), required = FALSE)
      return(NULL)
    }
  }
  reqs <- biclum_install(dry_run = TRUE)
  if (identical(attr(reqs, "method"), "py_require")) .declare_requirements(reqs)
  NULL
}

# Whether use_python(), use_virtualenv() or use_condaenv() was called in this session (reticulate keeps the
# requests; the documented accessors would start Python).
.user_chose_python <- function() {
  g <- tryCatch(get(".globals", envir = asNamespace("reticulate")), error = function(e) NULL)
  is.environment(g) && (length(g$use_python_versions) > 0 || !is.null(g$required_python_version))
}

# Start Python (py_config()); `python`: the interpreter to start instead of a RETICULATE_PYTHON wrapper, set for
# the start only. Returns NULL or the error message.
.start_python <- function(python) {
  if (!is.null(python)) {
    old <- Sys.getenv("RETICULATE_PYTHON")
    Sys.setenv(RETICULATE_PYTHON = python)
    on.exit(Sys.setenv(RETICULATE_PYTHON = old), add = TRUE)
  }
  tryCatch({
    reticulate::py_config()
    NULL
  }, error = function(e) conditionMessage(e))
}

.interpreter_text <- function() {
  cfg <- tryCatch(reticulate::py_config(), error = function(e) NULL)
  if (is.null(cfg)) return("no usable Python interpreter")
  paste0(cfg$python, " (Python ", cfg$version, ")")
}

#' Is the biclum Python package usable from R?
#'
#' Checks (without failing) that a Python interpreter with the `biclum` Python package can be used
#' through reticulate. Use it to skip code, as `RunBiCLUM()` errors with instructions otherwise.
#'
#' @param initialize Whether Python may be started to check (it is started at most once per R
#'   session). The environment is the one you chose for reticulate (`reticulate::use_virtualenv()`,
#'   `use_condaenv()`, `use_python()`, or the environment variables `RETICULATE_PYTHON` /
#'   `RETICULATE_PYTHON_ENV`); without a choice biclum suggests to reticulate the first interpreter where
#'   `biclum` is installed among the `biclum.python` option, the `r-biclum` virtualenv created by
#'   [biclum_install()] and `python3` on the `PATH`, and otherwise (reticulate >= 1.41) declares its
#'   requirements with `reticulate::py_require()`.
#' @return `TRUE` or `FALSE`; with `FALSE`, attribute `"reason"` says why.
#' @examples
#' biclum_available(initialize = FALSE)
#' @export
biclum_available <- function(initialize = TRUE) {
  if (!is.null(.biclum_env$bridge)) return(TRUE)
  if (!initialize) {
    if (reticulate::py_available(initialize = FALSE)) {
      return(isTRUE(tryCatch(reticulate::py_module_available("biclum"), error = function(e) FALSE)))
    }
    env_py <- Sys.getenv("RETICULATE_PYTHON", "")
    env_dir <- Sys.getenv("RETICULATE_PYTHON_ENV", "")
    if (nzchar(env_dir)) env_py <- file.path(env_dir, "bin", "python")
    cands <- if (nzchar(env_py)) env_py[file.exists(env_py)] else .python_candidates()
    return(any(vapply(cands, .python_has_biclum, logical(1))))
  }
  ok <- tryCatch({
    .biclum_bridge()
    TRUE
  }, error = function(e) structure(FALSE, reason = conditionMessage(e)))
  ok
}

# The biclum.bridge module (imported with convert = FALSE on first use).
.biclum_bridge <- function() {
  if (!is.null(.biclum_env$bridge)) return(.biclum_env$bridge)
  init <- .start_python(.choose_python())
  if (!is.null(init) || !reticulate::py_available(initialize = TRUE)) {
    stop(.python_error(paste0(
      "biclum needs Python, but reticulate could not start an interpreter",
      if (!is.null(init)) paste0(" (", init, ")") else "", ". ", .fix_text())))
  }
  # NumPy 2 cannot be used by reticulate < 1.36 (arrays fail to convert).
  np_version <- tryCatch(
    reticulate::py_to_r(reticulate::py_eval("__import__('numpy').__version__", convert = FALSE)),
    error = function(e) NA_character_)
  if (is.na(np_version)) {
    stop(.python_error(paste0(
      "biclum needs Python with NumPy, but the interpreter found, ", .interpreter_text(),
      ", cannot import numpy. ", .fix_text())))
  }
  if (!reticulate::py_numpy_available()) {
    stop(.python_error(paste0(
      "reticulate cannot use NumPy ", np_version, " of the interpreter found, ", .interpreter_text(),
      " (if that is a pyenv shim or wrapper script, point RETICULATE_PYTHON at the real interpreter, ",
      "e.g. the output of: python3 -c 'import sys; print(sys.executable)'). ", .fix_text()),
      class = "biclum_python_wrong"))
  }
  if (utils::packageVersion("reticulate") < "1.36" && package_version(np_version) >= "2.0") {
    stop(.python_error(paste0(
      "The interpreter found, ", .interpreter_text(), ", has NumPy ", np_version, ", which reticulate ",
      utils::packageVersion("reticulate"), " cannot use (it needs NumPy < 2, or reticulate >= 1.36). ",
      .fix_text()), class = "biclum_python_wrong"))
  }
  .check_python_version(.python_biclum_version(), as.character(utils::packageVersion("biclum")))
  bridge <- tryCatch(reticulate::import("biclum.bridge", convert = FALSE),
                     error = function(e) e)
  if (inherits(bridge, "error")) {
    stop(.python_error(paste0(
      "biclum needs the biclum Python package, but the interpreter found, ", .interpreter_text(),
      ", cannot import biclum.bridge: ", .py_msg(bridge), ". ", .fix_text())))
  }
  info <- .py_deep(bridge$runtime_info())
  .biclum_env$info <- info
  .biclum_env$bridge <- bridge
  bridge
}

# Message of a reticulate error without its call prefix.
.py_msg <- function(e) {
  msg <- conditionMessage(e)
  msg <- sub("^Error in py_call_impl\\(.*?\\) :\\s*", "", msg)
  msg <- sub("\n*Detailed traceback:.*$", "", msg)
  msg <- sub("\n*Run `reticulate::py_last_error\\(\\)`.*$", "", msg)
  trimws(msg)
}

# The version of the biclum Python package the started interpreter imports (NA when it cannot import biclum: the
# import of biclum.bridge then fails with its own message).
.python_biclum_version <- function() {
  tryCatch(as.character(reticulate::py_to_r(reticulate::py_eval("__import__('biclum').__version__", convert = FALSE))),
           error = function(e) NA_character_)
}

# The R and Python halves must be the same version: otherwise one paragraph naming both versions and the fix.
.check_python_version <- function(py_version, r_version) {
  if (is.na(py_version) || identical(py_version, r_version)) return(invisible(TRUE))
  stop(.python_error(paste0(
    "The biclum Python package in ", .interpreter_text(), " is version ", py_version, ", but the R package biclum ",
    "is version ", r_version, "; the two halves must be the same version. To fix: run biclum::biclum_install() ",
    "(it installs the Python package ", r_version, " that this R package carries into the virtualenv '",
    .biclum_venv(), "') and restart R; or, to keep the environment you chose, install that copy into it: ",
    "pip install ", .bundled_python() %|NA|% "<the biclum checkout>", "."),
    class = c("biclum_python_version", "biclum_python_wrong")))
}

# The biclum Python package that this R package carries: the directory (holding pyproject.toml) that `configure`
# bundled as inst/python, or under devtools::load_all() the checkout itself; NA when there is none.
.bundled_python <- function() {
  root <- system.file(package = "biclum")
  cands <- c(system.file("python", package = "biclum"), if (nzchar(root)) root)
  for (d in cands[nzchar(cands)]) {
    if (file.exists(file.path(d, "pyproject.toml")) && file.exists(file.path(d, "python", "biclum", "__init__.py"))) {
      return(normalizePath(d))
    }
  }
  NA_character_
}

# reticulate's uv, if one is there already (py_require() would otherwise download it, which fails offline).
.uv_available <- function() {
  uv <- tryCatch(utils::getFromNamespace("uv_binary", "reticulate")(bootstrap_install = FALSE),
                 error = function(e) NULL)
  !is.null(uv) && nzchar(uv[1]) && file.exists(uv[1])
}

# A writable copy of the bundled Python package (pip and uv build in the source directory, and the R library may
# be read-only): fresh in `dir` (default: a new temporary directory).
.stage_python <- function(src, dir = tempfile("biclum-python-")) {
  unlink(dir, recursive = TRUE)
  dir.create(dir, recursive = TRUE, showWarnings = FALSE)
  for (f in list.files(src, all.files = TRUE, no.. = TRUE)) {
    file.copy(file.path(src, f), dir, recursive = TRUE, copy.mode = FALSE)
  }
  normalizePath(dir)
}

# py_require() the requirements, with the bundled package (attribute "source") staged in a fixed user directory
# (the same requirement string in every session, so reticulate reuses its cached environment).
.declare_requirements <- function(reqs) {
  src <- attr(reqs, "source")
  if (!is.null(src)) {
    dir <- attr(reqs, "staged")
    if (!file.exists(file.path(dir, "pyproject.toml"))) .stage_python(src, dir)
  }
  getExportedValue("reticulate", "py_require")(as.vector(reqs))
}

#' Install the biclum Python package for use from R
#'
#' Installs the Python half of biclum: the biclum Python package that this R package carries (the same version,
#' bundled when the R package was installed; see `system.file("python", package = "biclum")`), with its
#' dependencies from the Python package index (the CPU build of torch pinned by `torch`; NumPy < 2 for reticulate
#' < 1.36). It needs a Python 3 (>= 3.9) with `venv` and `pip`, and the package index; no biclum checkout.
#'
#' With `method = "virtualenv"` (the default where reticulate has no `uv` yet, e.g. offline, and for reticulate <
#' 1.41) the packages go into the virtualenv `envname` (created with `reticulate::virtualenv_create()`, in
#' `RETICULATE_VIRTUALENV_ROOT` or `WORKON_HOME`, default `~/.virtualenvs`). Restart R afterwards: biclum then
#' suggests that virtualenv to reticulate by itself, unless you chose another environment
#' (`reticulate::use_virtualenv()`, `RETICULATE_PYTHON`, ...). With `method = "py_require"` (the default for
#' reticulate >= 1.41 when its `uv` is installed) the requirements, the bundled package as a local path among them,
#' are declared with `reticulate::py_require()`, and reticulate provisions them when Python starts (biclum declares
#' them again in each new R session).
#'
#' When the Python package that R finds has another version than the R package, biclum stops with a message naming
#' both versions; running `biclum_install()` again (and restarting R) fixes it.
#'
#' @param envname Name (or path) of the virtualenv; default `"r-biclum"` (option `biclum.envname`).
#' @param package `NULL` (default): the Python package this R package carries. Otherwise a pip requirement for it,
#'   e.g. the path of a biclum checkout (the directory holding `pyproject.toml`).
#' @param python The Python interpreter the virtualenv is created from (default: the one behind `python3` on the
#'   `PATH` when it has `venv` and `ensurepip`, else reticulate's choice).
#' @param extra_packages Further pip requirements (e.g. `"umap-learn"`).
#' @param method `"auto"`, `"virtualenv"` or `"py_require"` (reticulate >= 1.41), see Details.
#' @param dry_run If `TRUE`, install nothing and return the requirements that would be installed.
#' @param torch The pip requirement for torch: the CPU build that biclum is tested with (`NULL`: let pip choose).
#' @param ... Passed to `reticulate::virtualenv_install()`.
#' @return Invisibly, the pip requirements (character vector), with attribute `"method"`.
#' @examples
#' biclum_install(dry_run = TRUE)
#' @export
biclum_install <- function(envname = .biclum_venv(), package = NULL, python = NULL, extra_packages = NULL,
                           method = c("auto", "virtualenv", "py_require"), dry_run = FALSE,
                           torch = "torch==2.13.0", ...) {
  method <- match.arg(method)
  has_require <- "py_require" %in% getNamespaceExports("reticulate")
  if (method == "py_require" && !has_require) {
    stop(.python_error(paste0("method = \"py_require\" needs reticulate >= 1.41 (this is reticulate ",
                              utils::packageVersion("reticulate"), "); use method = \"virtualenv\"."),
                       "biclum_bad_argument"))
  }
  how <- if (method == "auto") (if (has_require && .uv_available()) "py_require" else "virtualenv") else method
  src <- if (is.null(package)) .bundled_python() else NA_character_
  if (is.null(package) && is.na(src)) {
    stop(.python_error(paste0(
      "This installation of the R package biclum carries no Python package (no python/ in ",
      system.file(package = "biclum"), "): it was installed without its `configure` step. Reinstall it from the ",
      "tarball of R CMD build (or remotes::install_github()), or give the path of a biclum checkout as package =."),
      "biclum_python_missing"))
  }
  staged <- if (how == "py_require") file.path(tools::R_user_dir("biclum", "cache"),
                                               paste0("python-", utils::packageVersion("biclum")))
            else tempfile("biclum-python-")
  first <- if (is.na(src)) package else if (how == "py_require") paste0("biclum @ file://", staged) else staged
  reqs <- c(first, torch, extra_packages)
  if (utils::packageVersion("reticulate") < "1.36") reqs <- c(reqs, "numpy<2")
  reqs <- structure(reqs, method = how)
  if (!is.na(src)) attr(reqs, "source") <- src
  if (!is.na(src)) attr(reqs, "staged") <- staged
  if (dry_run) return(reqs)
  if (how == "py_require") {
    if (!is.na(src)) .stage_python(src, staged)
    .declare_requirements(reqs)
    message("biclum: Python requirements declared with reticulate::py_require(): ", paste(reqs, collapse = ", "))
    return(invisible(reqs))
  }
  if (!is.na(src)) .stage_python(src, staged)
  on.exit(if (!is.na(src)) unlink(staged, recursive = TRUE), add = TRUE)
  if (!reticulate::virtualenv_exists(envname)) {
    reticulate::virtualenv_create(envname, python = python %||% .venv_starter())
  }
  reticulate::virtualenv_install(envname, packages = as.vector(reqs), ignore_installed = FALSE, ...)
  venv_python <- reticulate::virtualenv_python(envname)
  want <- as.character(utils::packageVersion("biclum"))
  if (!is.na(src) && !identical(.venv_biclum_version(venv_python), want)) {
    # pip keeps an installed biclum of the same version number; the bundled one replaces it
    reticulate::virtualenv_install(envname, packages = staged, pip_options = c("--force-reinstall", "--no-deps"))
  }
  message("biclum: installed the biclum Python package ", .venv_biclum_version(venv_python), " and its ",
          "dependencies (", paste(reqs[-1], collapse = ", "), ") into the virtualenv '", envname, "'. Restart R; ",
          "biclum will then use ", venv_python, ".")
  invisible(reqs)
}

# The interpreter behind python3 (else python) on the PATH, when it can make a virtualenv with pip (venv and
# ensurepip); NULL: reticulate's choice (which may be another Python, e.g. a system python3 without venv).
.venv_starter <- function() {
  code <- "import os, sys, venv, ensurepip; print(os.path.join(sys.base_prefix, 'bin', 'python%d.%d' % sys.version_info[:2]))"
  for (py in unique(Sys.which(c("python3", "python")))) {
    if (!nzchar(py)) next
    out <- suppressWarnings(tryCatch(system2(py, c("-c", shQuote(code)), stdout = TRUE, stderr = FALSE),
                                     error = function(e) character()))
    if (length(out) && is.null(attr(out, "status")) && file.exists(out[length(out)])) return(out[length(out)])
  }
  NULL
}

.venv_biclum_version <- function(python) {
  out <- suppressWarnings(tryCatch(
    system2(python, c("-c", shQuote("import importlib.metadata as m; print(m.version('biclum'))")),
            stdout = TRUE, stderr = FALSE),
    error = function(e) character()))
  if (length(out)) out[length(out)] else NA_character_
}

# When the package loads: if the r-biclum virtualenv of biclum_install() exists and the user has chosen no Python
# (no RETICULATE_PYTHON / RETICULATE_PYTHON_ENV, no use_python() & co., Python not started), suggest it to
# reticulate (required = FALSE, so any choice of the user still wins), so that code calling reticulate before biclum
# (e.g. reticulate::import("anndata")) starts the same Python; reticulate >= 1.41 would otherwise provision its own.
# Cheap: no Python process is started.
.onLoad <- function(libname, pkgname) {
  if (nzchar(Sys.getenv("RETICULATE_PYTHON")) || nzchar(Sys.getenv("RETICULATE_PYTHON_ENV"))) return(invisible())
  try(silent = TRUE, {
    if (!reticulate::py_available(initialize = FALSE) && !.user_chose_python() &&
        reticulate::virtualenv_exists(.biclum_venv())) {
      reticulate::use_virtualenv(.biclum_venv(), required = FALSE)
    }
  })
  invisible()
}
