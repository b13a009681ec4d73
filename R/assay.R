# Reading counts, peak coordinates and gene annotations out of Seurat / SCE objects.

.so_fun <- function(name) getExportedValue("SeuratObject", name)

.seurat_v5 <- function() utils::packageVersion("SeuratObject") >= "4.9.0"

.check_seurat <- function(x, what) {
  if (!inherits(x, "Seurat")) {
    stop(what, ": expected a Seurat object, got an object of class ", class(x)[1], call. = FALSE)
  }
}

.input_error <- function(msg, class = NULL) {
  structure(class = c(class, "biclum_input_error", "biclum_error", "error", "condition"),
            list(message = msg, call = NULL))
}

# The assay biclum reads by default: the default assay, except when that is the gene-activity assay RunBiCLUM()
# added to this object (RunBiCLUM makes it the default, so that Seurat's functions find the genes of the ATAC
# loadings, as after RunPCA): then the peak assay it was made from, recorded in Tool(x, "RunBiCLUM").
.peak_or_default_assay <- function(x) {
  assay <- SeuratObject::DefaultAssay(x)
  tool <- SeuratObject::Tool(x, slot = "RunBiCLUM")
  peaks <- tool$other.assay
  if (identical(assay, tool$activity.assay) && is.character(peaks) && length(peaks) == 1 &&
      peaks %in% SeuratObject::Assays(x)) {
    return(peaks)
  }
  assay
}

.get_assay <- function(object, assay, what) {
  assays <- SeuratObject::Assays(object)
  if (length(assay) != 1 || !assay %in% assays) {
    stop(.input_error(paste0(
      what, ": the Seurat object has no assay '", paste(assay, collapse = ","), "' (its assays: ",
      paste(assays, collapse = ", "), "); give one of those as ",
      if (grepl("rna", what)) "rna.assay" else "other.assay", "."), "biclum_no_assay"))
  }
  object[[assay]]
}

# Counts (features x cells, dgCMatrix) of an assay: v4 Assay / Signac ChromatinAssay (slot=) or v5
# Assay5 (layer=). Split v5 layers (counts.1, counts.2, ...) are joined into one matrix of every cell, on a copy
# and with one message (join_layers = TRUE), or refused; never truncated to the first layer.
.assay_matrix <- function(a, layer = "counts", join_layers = TRUE, what = "assay") {
  if (inherits(a, "StdAssay")) {
    m <- .layer_matrix(a, layer, join_layers, what)
  } else if (.seurat_v5()) {
    m <- SeuratObject::GetAssayData(a, layer = layer)
  } else {
    m <- SeuratObject::GetAssayData(a, slot = layer)
  }
  if (is.null(m) || prod(dim(m)) == 0) {
    stop(.input_error(paste0(
      what, " has an empty '", layer, "' ", if (inherits(a, "StdAssay")) "layer" else "slot",
      "; give the ", if (inherits(a, "StdAssay")) "layer" else "slot", " holding raw counts as layer=."),
      "biclum_no_layer"))
  }
  if (ncol(m) != ncol(a)) {
    stop(.input_error(paste0(what, ": the '", layer, "' data hold ", ncol(m), " of the assay's ", ncol(a),
                             " cells; biclum needs the counts of every cell."), "biclum_split_layers"))
  }
  .as_dgc(m, what)
}

# The layers of a v5 assay named `layer` or `layer.<split>` (no "No layers found" warning when there are none).
.layer_names <- function(a, layer) {
  all <- .so_fun("Layers")(a)
  all[all == layer | startsWith(all, paste0(layer, "."))]
}

.layer_matrix <- function(a, layer, join_layers, what) {
  found <- .layer_names(a, layer)
  if (!length(found)) {
    stop(.input_error(paste0(
      what, " has no layer '", layer, "' (its layers: ", paste(.so_fun("Layers")(a), collapse = ", "),
      "); give the layer of raw counts as layer=."), "biclum_no_layer"))
  }
  if (length(found) == 1) return(.so_fun("LayerData")(a, layer = found))
  if (!isTRUE(join_layers)) {
    stop(.input_error(paste0(
      what, " has its '", layer, "' layer split into ", length(found), " layers (", paste(found, collapse = ", "),
      ") holding ", ncol(a), " cells in total; using only the first would drop cells. Leave join_layers = TRUE ",
      "(joins them on a copy) or join them first: object[[assay]] <- SeuratObject::JoinLayers(object[[assay]])."),
      "biclum_split_layers"))
  }
  .emit(paste0("biclum: ", what, ": joining its ", length(found), " split '", layer, "' layers (",
               paste(found, collapse = ", "), ") on a copy; the object is unchanged"), "biclum_join_layers")
  parts <- lapply(found, function(l) .as_dgc(.so_fun("LayerData")(a, layer = l), what))
  m <- do.call(cbind, parts)
  if (anyDuplicated(colnames(m)) || !setequal(colnames(m), colnames(a))) {
    stop(.input_error(paste0(what, ": the split '", layer, "' layers do not hold each of the assay's ", ncol(a),
                             " cells once; join them with SeuratObject::JoinLayers() first."), "biclum_split_layers"))
  }
  m[, colnames(a), drop = FALSE]
}

# Batches of an object's cells for the Python core's batch key: data.frame(biclum_batch) in the assay's cell
# order from the metadata column `column`, else (split = TRUE) from the v5 layer split (`counts.<name>` -> <name>);
# NULL for neither. `arg`: the argument that named the column.
.batch_obs <- function(object, a, column, split, layer, what, arg = paste0(what, ".batch")) {
  if (!is.null(column)) {
    return(.batch_frame(.meta_batch(object[[]], column, colnames(a), what, arg), colnames(a), what))
  }
  if (!isTRUE(split)) return(NULL)
  found <- if (inherits(a, "StdAssay")) .layer_names(a, layer) else character()
  if (length(found) < 2) {
    stop(.input_error(paste0(what, ": split.batches = TRUE needs a Seurat v5 assay whose '", layer, "' layer ",
                             "is split (", layer, ".<batch>), e.g. obj[[\"RNA\"]] <- split(obj[[\"RNA\"]], ",
                             "f = obj$sample); or give ", arg, "."), "biclum_bad_batch"))
  }
  cells <- lapply(found, function(l) colnames(.so_fun("LayerData")(a, layer = l)))
  b <- stats::setNames(rep(substring(found, nchar(layer) + 2), lengths(cells)), unlist(cells))[colnames(a)]
  .batch_frame(b, colnames(a), what)
}

# The metadata column `column` (of a Seurat object's meta.data or an SCE's colData) for `cells` (NULL: every row
# in order), or an error.
.meta_batch <- function(meta, column, cells, what, arg) {
  if (!is.character(column) || length(column) != 1 || !column %in% colnames(meta)) {
    stop(.input_error(paste0(what, ": no metadata column '", paste(column, collapse = ","), "' for ", arg,
                             "; give one of its columns (", paste(utils::head(colnames(meta), 8), collapse = ", "),
                             ")."), "biclum_bad_batch"))
  }
  if (is.null(cells)) meta[[column]] else meta[cells, column]
}

# Batch labels (one per cell, in `cells` order) -> data.frame(biclum_batch), or an error naming what is wrong.
.batch_frame <- function(b, cells, what) {
  if (length(b) != length(cells) || anyNA(b)) {
    stop(.input_error(paste0(what, ": ", if (length(b) != length(cells)) paste0(length(b), " batch labels for ",
                             length(cells), " cells") else paste0(sum(is.na(b)), " cells have no batch"),
                             "; give every cell one batch."), "biclum_bad_batch"))
  }
  data.frame(biclum_batch = as.character(b), row.names = cells, stringsAsFactors = FALSE)
}

# Peak coordinates from a Signac ChromatinAssay's ranges slot (data.frame chrom/start/end) or NULL.
.assay_coords <- function(a, features) {
  if (methods::.hasSlot(a, "ranges")) {
    gr <- methods::slot(a, "ranges")
    if (length(gr) == length(features) && length(gr) > 0) {
      return(.granges_df(gr, features))
    }
  }
  NULL
}

.assay_annotation <- function(a) {
  if (methods::.hasSlot(a, "annotation")) {
    ann <- methods::slot(a, "annotation")
    if (!is.null(ann) && length(ann) > 0) return(ann)
  }
  NULL
}

.granges_df <- function(gr, features = NULL) {
  df <- as.data.frame(gr)
  out <- data.frame(chrom = as.character(df$seqnames), start = as.numeric(df$start),
                    end = as.numeric(df$end), stringsAsFactors = FALSE)
  if (!is.null(features)) rownames(out) <- features
  out
}

.sce_coords <- function(sce) {
  rr <- tryCatch(SummarizedExperiment::rowRanges(sce), error = function(e) NULL)
  if (is.null(rr) || !methods::is(rr, "GRanges") || length(rr) == 0) return(NULL)
  df <- as.data.frame(rr)
  ok <- !is.na(df$seqnames) & df$width > 0 & as.character(df$seqnames) != "" & df$start > 0
  if (!all(ok)) return(NULL)
  .granges_df(rr, rownames(sce))
}

.coords_to_granges <- function(var, features) {
  if (!all(c("chrom", "start", "end") %in% names(var)) || !requireNamespace("GenomicRanges", quietly = TRUE)) {
    return(NULL)
  }
  if (anyNA(var$start) || anyNA(var$end) || anyNA(var$chrom)) return(NULL)
  gr <- GenomicRanges::GRanges(seqnames = as.character(var$chrom),
                               ranges = IRanges::IRanges(start = as.integer(var$start),
                                                         end = as.integer(var$end)))
  names(gr) <- features
  gr
}

.coord_pattern <- "^([A-Za-z0-9.]+)[-:_]([0-9]+)[-_]([0-9]+)$"

# chrom/start/end parsed from peak names such as chr1-100-200, chr1:100-200, chr1_100_200.
.parse_peaks <- function(features) {
  ok <- grepl(.coord_pattern, features)
  if (!any(ok)) return(NULL)
  structure(data.frame(chrom = sub(.coord_pattern, "\\1", features),
                       start = suppressWarnings(as.numeric(sub(.coord_pattern, "\\2", features))),
                       end = suppressWarnings(as.numeric(sub(.coord_pattern, "\\3", features))),
                       row.names = make.unique(features), stringsAsFactors = FALSE),
            ok = ok)
}

# Feature metadata for the ATAC side: coordinates or a clear error.
.atac_var <- function(features, ranges, gene_level, what) {
  if (isTRUE(gene_level)) return(NULL)
  if (!is.null(ranges)) return(ranges)
  parsed <- .parse_peaks(features)
  ok <- attr(parsed, "ok") %||% rep(FALSE, length(features))
  if (!all(ok)) {
    bad <- utils::head(features[!ok], 3)
    stop(.input_error(paste0(
      what, ": modality 'atac' needs peak coordinates, but ", sum(!ok), " of ", length(features),
      " features have none (e.g. ", paste(bad, collapse = ", "), "). Name peaks chrN-start-end, use a ",
      "Signac ChromatinAssay (or an SCE with rowRanges) holding their ranges, or set gene_level = TRUE ",
      "if the matrix is already gene-level (gene activity)."), "biclum_no_coordinates"))
  }
  attr(parsed, "ok") <- NULL
  parsed
}

# Annotation (GRanges, data.frame, DataFrame, or file) -> what the Python core takes: the file's path, or the
# table's columns as they are (a GRanges' seqnames, start, end, strand, gene_name, type, ...) in a "frame" spec.
# biclum.prior.read_annotation tidies them (aliases, exon rows to gene spans, duplicated names, chromosome names).
.annotation_arg <- function(annotation) {
  if (is.null(annotation)) return(NULL)
  if (is.character(annotation)) {
    if (length(annotation) != 1 || !file.exists(annotation)) {
      stop(.input_error(paste0("annotation: the file '", paste(annotation, collapse = ", "),
                               "' does not exist; give a gene table (gene_name, chrom, start, end, strand), ",
                               "a GRanges or a data.frame."), "biclum_bad_annotation"))
    }
    return(normalizePath(annotation))
  }
  if (!(methods::is(annotation, "GRanges") || is.data.frame(annotation) || methods::is(annotation, "DataFrame"))) {
    stop(.input_error(paste0("annotation: expected a GRanges, a data.frame or a file path, got an object of ",
                             "class ", class(annotation)[1], "."), "biclum_bad_annotation"))
  }
  .df_to_py(annotation)
}

.sce_matrix <- function(sce, assay, what) {
  if (!methods::is(sce, "SummarizedExperiment")) {
    stop(what, ": expected a SingleCellExperiment, got an object of class ", class(sce)[1], call. = FALSE)
  }
  an <- SummarizedExperiment::assayNames(sce)
  if (length(assay) != 1 || !assay %in% an) {
    stop(.input_error(paste0(what, ": no assay '", paste(assay, collapse = ","), "' (its assays: ",
                             paste(an, collapse = ", "), "); name the assay of raw counts."),
                      "biclum_no_assay"))
  }
  m <- SummarizedExperiment::assay(sce, assay, withDimnames = TRUE)
  m <- .as_dgc(m, paste0(what, " assay '", assay, "'"))
  if (is.null(colnames(m))) colnames(m) <- paste0("cell", seq_len(ncol(m)))
  if (is.null(rownames(m))) rownames(m) <- paste0("feature", seq_len(nrow(m)))
  m
}
