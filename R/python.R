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
    "To fix: run biclum::biclum_install() and restart R, or choose a Python environment where the biclum ",
    "Python package is installed (pip install biclum, or pip install -e <repo> from a source checkout) before ",
    "biclum first uses Python: reticulate::use_virtualenv(\"<env>\"), or the environment variable ",
    "RETICULATE_PYTHON (an interpreter) or RETICULATE_PYTHON_ENV (an environment)",
    if (utils::packageVersion("reticulate") < "1.36") {
      paste0("; with reticulate ", utils::packageVersion("reticulate"), " that environment needs NumPy < 2")
    } else "", ".")
}

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
  if ("py_require" %in% getNamespaceExports("reticulate")) {
    getExportedValue("reticulate", "py_require")(as.vector(biclum_install(dry_run = TRUE)))
  }
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
  bridge <- tryCatch(reticulate::import("biclum.bridge", convert = FALSE),
                     error = function(e) e)
  if (inherits(bridge, "error")) {
    stop(.python_error(paste0(
      "biclum needs the biclum Python package, but the interpreter found, ", .interpreter_text(),
      ", cannot import biclum.bridge: ", .py_msg(bridge), ". ", .fix_text())))
  }
  info <- .py_deep(bridge$runtime_info())
  r_version <- as.character(utils::packageVersion("biclum"))
  if (!identical(info$biclum, r_version)) {
    warning("the biclum Python package is version ", info$biclum, " but the R package is ", r_version,
            "; install matching versions (", info$python, ")", call. = FALSE)
  }
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

#' Install the biclum Python package for use from R
#'
#' Creates (or updates) a Python virtual environment with the biclum Python package and the versions
#' that suit the installed reticulate: NumPy < 2 for reticulate < 1.36. With reticulate versions that
#' have `py_require()` (>= 1.41) and `method = "auto"`, the requirements are declared with
#' `reticulate::py_require()` instead, and reticulate provisions them when Python starts.
#'
#' After installing into a virtualenv, restart R: biclum suggests the `envname` virtualenv to reticulate by
#' itself, unless you chose another environment (`reticulate::use_virtualenv()`, `RETICULATE_PYTHON`, ...).
#'
#' @param envname Name (or path) of the virtualenv; default `"r-biclum"` (option `biclum.envname`).
#' @param package The pip requirement for the Python package: `"biclum"` from an index, or the path to a
#'   source checkout (the directory holding `pyproject.toml`).
#' @param python The Python interpreter the virtualenv is created from (default: reticulate's choice).
#' @param extra_packages Further pip requirements (e.g. `"umap-learn"`).
#' @param method `"auto"` (use `py_require()` where reticulate has it, else a virtualenv) or
#'   `"virtualenv"`.
#' @param dry_run If `TRUE`, install nothing and return the requirements that would be installed.
#' @param ... Passed to `reticulate::virtualenv_install()`.
#' @return Invisibly, the pip requirements (character vector), with attribute `"method"`.
#' @examples
#' biclum_install(dry_run = TRUE)
#' @export
biclum_install <- function(envname = .biclum_venv(), package = "biclum", python = NULL,
                           extra_packages = NULL, method = c("auto", "virtualenv"), dry_run = FALSE, ...) {
  method <- match.arg(method)
  reqs <- c(package, extra_packages)
  if (utils::packageVersion("reticulate") < "1.36") reqs <- c(reqs, "numpy<2")
  has_require <- "py_require" %in% getNamespaceExports("reticulate")
  how <- if (method == "auto" && has_require) "py_require" else "virtualenv"
  reqs <- structure(reqs, method = how)
  if (dry_run) return(reqs)
  if (how == "py_require") {
    py_require <- getExportedValue("reticulate", "py_require")
    py_require(as.vector(reqs))
    message("biclum: Python requirements declared with reticulate::py_require(): ",
            paste(reqs, collapse = ", "))
    return(invisible(reqs))
  }
  if (!reticulate::virtualenv_exists(envname)) {
    reticulate::virtualenv_create(envname, python = python)
  }
  reticulate::virtualenv_install(envname, packages = as.vector(reqs), ignore_installed = FALSE, ...)
  message("biclum: installed ", paste(reqs, collapse = ", "), " into the virtualenv '", envname,
          "'. Restart R; biclum will use ", reticulate::virtualenv_python(envname), ".")
  invisible(reqs)
}
