# Downstream analyses on Seurat objects: Enrichment, ReadGMT, GOGeneSets.
# R wrappers of biclum.downstream (Python), built on the helpers of downstream-utils.R.

# ---------------------------------------------------------------------------------------------------
# enrichment
# ---------------------------------------------------------------------------------------------------

#' Gene-set enrichment of gene lists and marker tables
#'
#' R interface of `biclum.downstream.enrichment()`, `enrich_markers()` and `read_gmt()` (Python): a
#' one-sided hypergeometric test of each gene list against each gene set within a universe, with
#' Benjamini-Hochberg FDR per list. A marker table ([FindBiCLUMMarkers()], [CrossModalMarkers()]) is cut to
#' its `n_top` best genes per group (and modality), with all its genes as the universe by default.
#'
#' `GOGeneSets()` builds Gene Ontology gene sets (gene symbols) from the Bioconductor annotation packages
#' `org.Hs.eg.db` / `org.Mm.eg.db` (with `GO.db` for term names); they are optional (Suggests) and the
#' function stops with a clear error when they are not installed (Debian: `apt-get install
#' r-bioc-org.hs.eg.db r-bioc-go.db`).
#'
#' @param query A character vector of genes, a named list of such vectors, or a marker table
#'   (data.frame with `group` and `gene` columns).
#' @param gene_sets The gene sets: the path of a GMT file, a named list (`list(term = c(genes))`) or a
#'   data.frame (`term`, `gene`). [biclum_example()] gives small illustrative GMT files.
#' @param universe Background genes (default: for marker tables their genes; otherwise the query and
#'   gene-set genes; pass the measured genes when you can).
#' @param n_top,padj_max Marker tables: genes per group, and an optional adjusted p-value cut.
#' @param min_size,max_size Gene sets with fewer / more genes in the universe are not tested.
#' @param min_overlap Rows with a smaller overlap are left out (they still count in the FDR).
#' @param verbose Show the Python core's log messages as R messages.
#' @return `Enrichment()`: a data.frame sorted by query and p-value: `query`, `term`, `overlap`,
#'   `query_size`, `term_size`, `universe_size`, `expected`, `fold_enrichment`, `pval`, `fdr`, `genes`
#'   (`;`-separated). `ReadGMT()`, `GOGeneSets()`: a named list of gene vectors.
#' @examples
#' sets <- list(A = c("g1", "g2", "g3", "g4"), B = c("g5", "g6", "g7"))
#' if (biclum_available(initialize = FALSE)) {
#'   Enrichment(c("g1", "g2", "g3"), sets, universe = paste0("g", 1:50))
#'   gmt <- ReadGMT(biclum_example("gene_sets_mouse.gmt"))
#' }
#' @export
Enrichment <- function(query, gene_sets, universe = NULL, n_top = 100L, padj_max = NULL, min_size = 3L,
                       max_size = 2000L, min_overlap = 1L, verbose = FALSE) {
  gs <- .ds_table_arg(gene_sets, "gene_sets")
  args <- list(gene_sets = gs, universe = if (is.null(universe)) NULL else .ds_strings(universe),
               min_size = .ds_int(min_size, "min_size", min = 0), max_size = .ds_int(max_size, "max_size"),
               min_overlap = .ds_int(min_overlap, "min_overlap", min = 0))
  if (is.data.frame(query)) {
    .ds_markers_arg(query, "query")
    return(.ds_call("enrich_markers", c(list(markers = .ds_frame(query), n_top = .ds_int(n_top, "n_top"),
                                             padj_max = padj_max), args), verbose = verbose))
  }
  if (is.list(query)) {
    q <- .ds_sets(query, "query")
  } else if (is.character(query) || is.factor(query)) {
    q <- .ds_strings(query[!is.na(query)])
  } else {
    stop(.input_error(paste0("query: expected genes (a character vector), a named list of gene vectors or a marker ",
                             "table, got an object of class ", class(query)[1], "."), "biclum_bad_argument"))
  }
  .ds_call("enrichment", c(list(query = q), args), verbose = verbose)
}

#' @rdname Enrichment
#' @param path Path of a GMT file (`name<TAB>description<TAB>gene ...`; `.gz` allowed).
#' @export
ReadGMT <- function(path) {
  out <- .ds_call("read_gmt", list(path = .ds_file(path, "path")))
  lapply(out, as.character)
}

#' @rdname Enrichment
#' @param species `"human"` (org.Hs.eg.db) or `"mouse"` (org.Mm.eg.db).
#' @param ontology GO ontologies to include (`"BP"`, `"CC"`, `"MF"`).
#' @param genes If given, gene sets are restricted to these genes (e.g. the measured genes) before the
#'   size filter.
#' @param use_names Name the sets `"GO:xxxxxxx <term name>"` (needs GO.db) instead of the GO id.
#' @export
GOGeneSets <- function(species = c("human", "mouse"), ontology = "BP", genes = NULL, min_size = 10L,
                       max_size = 500L, use_names = TRUE) {
  species <- .ds_choice(species, c("human", "mouse"), "species")
  ontology <- toupper(ontology)
  if (!length(ontology) || !all(ontology %in% c("BP", "CC", "MF"))) {
    stop(.input_error("ontology must be one or more of \"BP\", \"CC\", \"MF\".", "biclum_bad_argument"))
  }
  pkg <- if (species == "human") "org.Hs.eg.db" else "org.Mm.eg.db"
  prefix <- if (species == "human") "org.Hs.eg" else "org.Mm.eg"
  need <- c("AnnotationDbi", pkg, if (isTRUE(use_names)) "GO.db")
  missing <- need[!vapply(need, requireNamespace, logical(1), quietly = TRUE)]
  if (length(missing)) {
    stop(structure(class = c("biclum_missing_package", "biclum_error", "error", "condition"), list(
      message = paste0("GOGeneSets() needs the Bioconductor package(s) ", paste(missing, collapse = ", "),
                       ", which are not installed. Install them (Debian: apt-get install ",
                       paste0("r-bioc-", tolower(missing), collapse = " "), "; or BiocManager::install(c(",
                       paste0("\"", missing, "\"", collapse = ", "), "))), or give gene sets as a GMT file or a ",
                       "named list."), call = NULL)))
  }
  db <- getExportedValue(pkg, pkg)
  if (is.null(genes)) { # the whole organism: one table of GO id -> (all) Entrez ids, then symbols
    go2eg <- AnnotationDbi::toTable(getExportedValue(pkg, paste0(prefix, "GO2ALLEGS")))
    go2eg <- go2eg[go2eg$Ontology %in% ontology, c("gene_id", "go_id"), drop = FALSE]
    sym <- AnnotationDbi::toTable(getExportedValue(pkg, paste0(prefix, "SYMBOL")))
    tab <- data.frame(symbol = sym$symbol[match(go2eg$gene_id, sym$gene_id)], go_id = go2eg$go_id,
                      stringsAsFactors = FALSE)
  } else { # only the given genes: a (much faster) query by symbol
    keys <- intersect(unique(as.character(genes)), AnnotationDbi::keys(db, "SYMBOL"))
    if (!length(keys)) {
      stop(.input_error(paste0("genes: none of the ", length(unique(genes)), " genes is a ", species, " gene symbol ",
                               "of ", pkg, " (e.g. ", paste(utils::head(genes, 3), collapse = ", "), "); check the ",
                               "species and that the genes are symbols."), "biclum_bad_argument"))
    }
    sel <- suppressMessages(AnnotationDbi::select(db, keys = keys, keytype = "SYMBOL",
                                                  columns = c("GOALL", "ONTOLOGYALL")))
    sel <- sel[!is.na(sel$GOALL) & sel$ONTOLOGYALL %in% ontology, , drop = FALSE]
    tab <- data.frame(symbol = sel$SYMBOL, go_id = sel$GOALL, stringsAsFactors = FALSE)
  }
  tab <- tab[!is.na(tab$symbol), , drop = FALSE]
  sets <- lapply(split(tab$symbol, tab$go_id), function(g) sort(unique(g)))
  n <- lengths(sets)
  sets <- sets[n >= min_size & n <= max_size]
  if (isTRUE(use_names) && length(sets)) {
    terms <- AnnotationDbi::Term(names(sets))
    names(sets) <- paste(names(sets), unname(terms[names(sets)]))
  }
  sets
}
