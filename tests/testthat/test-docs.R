# The help pages' examples name only arguments that exist: formals of the biclum function called, or, for the fit
# functions (whose ... are configuration overrides), options of biclum.config.BiclumConfig.

test_that("every argument named in an Rd example is a formal or a configuration option", {
  skip_if_no_biclum_python()
  ns <- asNamespace("biclum")
  cfg <- reticulate::import("biclum.config")$BiclumConfig$from_preset("default")$flat()
  options <- c(names(cfg), "gene.symbols")
  formals_of <- function(f) {
    fns <- ls(ns, pattern = paste0("^", f, "(\\.|$)"), all.names = TRUE)
    unique(unlist(lapply(fns, function(n) names(formals(get(n, ns))))))
  }
  exported <- getNamespaceExports("biclum")
  bad <- character()
  n_checked <- 0L
  walk <- function(e, page) {
    if (!is.call(e)) return(invisible())
    fn <- sub("^.*::", "", deparse(e[[1]])[1])
    if (fn %in% exported) {
      args <- setdiff(names(as.list(e))[-1], "")
      ok <- c(formals_of(fn), if (fn %in% c("RunBiCLUM", "runBiCLUM")) options)
      n_checked <<- n_checked + length(args)
      bad <<- c(bad, sprintf("%s: %s(%s = )", page, fn, setdiff(args, ok)))
    }
    for (x in as.list(e)[-1]) if (!missing(x)) walk(x, page)
  }
  db <- tools::Rd_db("biclum")
  for (page in names(db)) {
    ex <- tempfile(fileext = ".R")
    tools::Rd2ex(db[[page]], ex, commentDonttest = FALSE)
    if (file.exists(ex)) for (e in parse(ex)) walk(e, page)
  }
  expect_gt(n_checked, 20)
  expect_identical(bad, character())
})
