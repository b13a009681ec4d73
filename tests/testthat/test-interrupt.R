# Ctrl-C during a fit: a child R process fitting BiCLUM gets SIGINT while it trains. Training stops after the current
# step (the model keeps its best weights, with a warning), R goes on evaluating code, and R's own interrupt handling
# is back afterwards: a second SIGINT interrupts R code.

interrupt_child_code <- function(marker) {
  sprintf('
library(biclum)
stopifnot(isTRUE(biclum_available()))
ds <- reticulate::import("biclum.datasets", convert = FALSE)
sim <- ds$simulate(n_cells = 200L, modality = "protein", seed = 0L)
rna <- anndata_to_seurat(reticulate::py_get_item(sim, 0L))
adt <- suppressWarnings(anndata_to_seurat(reticulate::py_get_item(sim, 1L), assay = "ADT"))
options(biclum.progress_interval = 0)
fit <- tryCatch(withCallingHandlers(
  RunBiCLUM(rna, adt, modality = "protein", max_epochs = 100000L, patience = 100000L, batch_size = 64L),
  biclum_progress = function(m) {
    if (grepl("biclum: train", conditionMessage(m))) writeLines(as.character(Sys.getpid()), "%s")
    invokeRestart("muffleMessage")
  },
  message = function(m) invokeRestart("muffleMessage"),
  warning = function(w) {
    cat("WARNING:", conditionMessage(w), "\\n")
    invokeRestart("muffleWarning")
  }), interrupt = function(e) "an R interrupt")
cat("AFTER FIT:", if (is.character(fit)) fit else class(fit$rna)[1], "\\n")
cat("R EVALUATES:", sum(1:10), "\\n")
second <- tryCatch({
  tools::pskill(Sys.getpid(), tools::SIGINT)
  Sys.sleep(20)
  "missed"
}, interrupt = function(e) "an R interrupt")
cat("SECOND CTRL-C:", second, "\\n")
', marker)
}

test_that("SIGINT during an R fit stops training; R evaluates code afterwards and still gets Ctrl-C", {
  skip_on_os("windows")
  skip_if_no_biclum_python()
  skip_if_not_installed("processx")
  dir <- tempfile("biclum-sigint-")
  dir.create(dir)
  on.exit(unlink(dir, recursive = TRUE), add = TRUE)
  marker <- file.path(dir, "training")
  script <- file.path(dir, "fit.R")
  writeLines(interrupt_child_code(marker), script)
  out <- file.path(dir, "out.txt")
  child <- processx::process$new(
    file.path(R.home("bin"), "Rscript"), c("--vanilla", script), stdout = out, stderr = "2>&1",
    env = c("current", R_LIBS = paste(.libPaths(), collapse = .Platform$path.sep), OMP_NUM_THREADS = "1"))
  on.exit(if (child$is_alive()) child$kill(), add = TRUE)
  deadline <- Sys.time() + 300
  while (!file.exists(marker) && child$is_alive() && Sys.time() < deadline) Sys.sleep(0.2)
  expect_true(file.exists(marker), info = paste(readLines(out), collapse = "\n"))
  Sys.sleep(0.5) # well inside the training loop
  child$signal(tools::SIGINT)
  child$wait(180 * 1000)
  log <- paste(readLines(out), collapse = "\n")
  expect_false(child$is_alive())
  expect_match(log, "training interrupted during epoch", fixed = TRUE) # stopped after the step, best weights kept
  expect_match(log, "AFTER FIT: Seurat", fixed = TRUE)
  expect_match(log, "R EVALUATES: 55", fixed = TRUE)
  expect_match(log, "SECOND CTRL-C: an R interrupt", fixed = TRUE)
})
