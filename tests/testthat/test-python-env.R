# Errors when no (or the wrong) Python environment is found. Python can only be chosen once per R session,
# so these run a fresh Rscript with a different RETICULATE_PYTHON.
run_fresh_r <- function(code, env) {
  rscript <- file.path(R.home("bin"), "Rscript")
  out <- suppressWarnings(system2(rscript, c("--vanilla", "-e", shQuote(code)), stdout = TRUE, stderr = TRUE,
                                  env = c(paste0("R_LIBS=", paste(.libPaths(), collapse = .Platform$path.sep)), env)))
  paste(out, collapse = "\n")
}

test_that("a missing Python environment gives an error naming the interpreter and the fix", {
  skip_on_os("windows")
  out <- run_fresh_r(
    "m <- matrix(1, 2, 2); tryCatch(biclum::RunBiCLUM(m, m, modality = 'protein'), error = function(e) cat('CLASS:', class(e)[1], '\\nMSG:', conditionMessage(e), '\\n'))",
    "RETICULATE_PYTHON=/nonexistent/bin/python3")
  expect_match(out, "CLASS: biclum_python_missing", fixed = TRUE)
  expect_match(out, "RETICULATE_PYTHON=/nonexistent/bin/python3 does not exist", fixed = TRUE)
  expect_match(out, "biclum_install()", fixed = TRUE)
})

test_that("a Python without biclum gives an error naming that interpreter", {
  skip_on_os("windows")
  old_pp <- Sys.getenv("PYTHONPATH", NA)
  Sys.unsetenv("PYTHONPATH") # a PYTHONPATH pointing at the source tree would make biclum importable everywhere
  on.exit(if (!is.na(old_pp)) Sys.setenv(PYTHONPATH = old_pp), add = TRUE)
  candidates <- c("/usr/bin/python3", "/usr/local/bin/python3")
  candidates <- candidates[file.exists(candidates)]
  no_biclum <- Filter(function(p) !biclum:::.python_has_biclum(p), candidates)
  if (!length(no_biclum)) skip("no Python interpreter without biclum found to test with")
  out <- run_fresh_r(
    "ok <- biclum::biclum_available(); cat('AVAILABLE:', ok, '\\nREASON:', attr(ok, 'reason'), '\\n')",
    paste0("RETICULATE_PYTHON=", no_biclum[1]))
  expect_match(out, "AVAILABLE: FALSE", fixed = TRUE)
  expect_match(out, "REASON: .*(python|Python)")
  expect_match(out, "biclum_install()", fixed = TRUE)
})

test_that("biclum_available() finds the test environment", {
  skip_if_no_biclum_python()
  expect_true(biclum_available())
  expect_true(biclum_available(initialize = FALSE))
})

test_that("torch inside R keeps its own BLAS (imported with RTLD_DEEPBIND, not bound to R's BLAS)", {
  skip_if_no_biclum_python()
  skip_on_os(c("mac", "windows"))  # RTLD_DEEPBIND is a glibc flag; R's BLAS interposition is the Linux case
  biclum_available()
  info <- biclum:::.biclum_env$info
  # R's BLAS (with sgemm_ when it is an external libblas, as on Debian) is in the global symbol scope of the R
  # process; biclum imports torch first in the test session
  ti <- reticulate::import("biclum.bridge.torch_import")
  expect_identical(info$torch_import, if (ti$blas_in_global_scope()) "deepbind" else "plain")
  if (identical(Sys.info()[["sysname"]], "Linux") && file.exists("/etc/debian_version")) {
    expect_identical(info$torch_import, "deepbind")
  }
  torch <- reticulate::import("torch", convert = FALSE)
  a <- torch$randn(64L, 32L)
  b <- torch$randn(32L, 16L)
  got <- reticulate::py_to_r(a$matmul(b)$numpy())
  want <- reticulate::py_to_r(a$numpy()) %*% reticulate::py_to_r(b$numpy())
  expect_lt(max(abs(got - want)), 1e-4)
})

test_that("biclum_install() installs the Python package this R package carries, with requirements that suit reticulate", {
  reqs <- biclum_install(dry_run = TRUE)
  src <- attr(reqs, "source")
  expect_true(file.exists(file.path(src, "pyproject.toml")))
  expect_true(file.exists(file.path(src, "python", "biclum", "__init__.py")))
  # the bundled copy is the R package's version (configure refuses to bundle another)
  toml <- readLines(file.path(src, "pyproject.toml"))
  expect_true(paste0("version = \"", utils::packageVersion("biclum"), "\"") %in% toml)
  expect_true("torch==2.13.0" %in% reqs)
  if (utils::packageVersion("reticulate") < "1.36") expect_true("numpy<2" %in% reqs)
  expect_true(attr(reqs, "method") %in% c("virtualenv", "py_require"))
  if (!"py_require" %in% getNamespaceExports("reticulate")) expect_identical(attr(reqs, "method"), "virtualenv")
  if (attr(reqs, "method") == "virtualenv") expect_identical(reqs[[1]], attr(reqs, "staged"))
  else expect_identical(reqs[[1]], paste0("biclum @ file://", attr(reqs, "staged")))
  reqs <- biclum_install(package = "/src/biclum", extra_packages = "umap-learn", method = "virtualenv",
                         torch = NULL, dry_run = TRUE)
  expect_identical(attr(reqs, "method"), "virtualenv")
  expect_identical(as.vector(reqs[1:2]), c("/src/biclum", "umap-learn"))
  expect_null(attr(reqs, "source"))
})

test_that("a Python half of another version gives one paragraph naming both versions and the fix, no traceback", {
  skip_on_os("windows")
  skip_if_no_biclum_python()
  python <- reticulate::py_config()$python
  fake <- tempfile("fake-biclum-")
  dir.create(file.path(fake, "biclum"), recursive = TRUE)
  writeLines('__version__ = "0.0.1"', file.path(fake, "biclum", "__init__.py"))
  on.exit(unlink(fake, recursive = TRUE), add = TRUE)
  out <- run_fresh_r(paste0(
    "m <- matrix(1, 2, 2); tryCatch(biclum::RunBiCLUM(m, m, modality = 'protein'), error = function(e) ",
    "cat('CLASS:', class(e)[1], '\\nMSG:', gsub('\\n', '<NL>', conditionMessage(e)), '\\n'))"),
    c(paste0("RETICULATE_PYTHON=", python), paste0("PYTHONPATH=", fake)))
  expect_match(out, "CLASS: biclum_python_version", fixed = TRUE)
  expect_match(out, "is version 0.0.1, but the R package biclum is version ", fixed = TRUE)
  expect_match(out, as.character(utils::packageVersion("biclum")), fixed = TRUE)
  expect_match(out, "run biclum::biclum_install()", fixed = TRUE)
  expect_no_match(out, "<NL>", fixed = TRUE)  # one paragraph
  expect_no_match(out, "Traceback", fixed = TRUE)
  # biclum_available() says the same, without an error
  out <- run_fresh_r(
    "ok <- biclum::biclum_available(); cat('AVAILABLE:', ok, '\\nREASON:', attr(ok, 'reason'), '\\n')",
    c(paste0("RETICULATE_PYTHON=", python), paste0("PYTHONPATH=", fake)))
  expect_match(out, "AVAILABLE: FALSE", fixed = TRUE)
  expect_match(out, "REASON: The biclum Python package in .* is version 0.0.1")
})
