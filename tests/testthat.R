# R CMD check runs this from a temporary directory: the Python environment comes from RETICULATE_PYTHON
# (or a python3 with biclum on the PATH, or the r-biclum virtualenv) and the data from BICLUM_SHARED_DATA
# (or a ../shared/data next to an enclosing directory); tests needing them skip with a message otherwise.
library(testthat)
library(biclum)

test_check("biclum")
