#!/usr/bin/env python3
"""Every number the README and the vignettes state must be in a file under benchmarks/results.

    python scripts/check_readme_numbers.py [--readme README.md] [--vignettes vignettes] [--results benchmarks/results]

Lists each number of README.md and of the vignettes' prose (vignettes/*.Rmd) that no text file under
benchmarks/results contains, with the sentence it comes from; exits 1 when any is missing, 0 when none is.

What counts as a number: a run of digits with an optional decimal part (``0.135``, ``12.4``), thousands separators
(``10,309``) or an exponent (``1e-4``); a leading ``x``/``×`` (``x11.4``) and a trailing ``%`` or unit are not part
of it. Ranges and ratios give one number per side (``739-1333``, ``0.20/0.58``).

How it is matched: as written, up to trivial formatting: thousands separators dropped (``10,309`` = ``10309``),
a leading ``x``/``×`` ignored, and the results may write more trailing zeros than the README (README ``0.135``
matches ``0.1350``, ``12.4`` matches ``12.40``, ``3`` matches ``3.0``) but not fewer (README ``0.20`` does not
match ``0.2``: the README claims two decimals). No rounding: ``0.13`` does not match ``0.1312``. The results side
is every number in every text file (``.md .csv .tsv .txt .json .log``) under the results folder. When the README
paragraph (or table row, or list item) names results files (``benchmarks/results/scale.md``, in a link or in
backticks), its numbers must be in one of those files; otherwise in any. Small integers (``2`` cores) are in
almost every file, so for them the check is weak.

What is ignored (clearly not a result):

* code: fenced blocks (```` ``` ````, ``~~~``; in the vignettes also R chunks), inline code in backticks
  (``--cells 3000``, ``k=200``), HTML comments, the vignettes' YAML header;
* link targets and bare URLs (``(benchmarks/results/scale.md)``, ``https://...``), DOIs (``10.1038/...``);
* version numbers: dotted triples (``4.3.0``), any number after ``v`` or after a software name (R, Python,
  Seurat, SeuratObject, torch, numpy, NumPy, scipy, anndata, scanpy, reticulate, testthat, scglue, MaxFuse, CUDA,
  Debian, Ubuntu, Bioconductor, pandas, SciPy, Matrix, PyTorch, faiss, igraph, leidenalg, umap-learn, pynndescent)
  or a comparison in a requirement (``numpy<2``, ``>= 3.9``);
* dates and years: ``2026-11-30``, and a 4-digit integer 1990-2039 that is not followed by a unit word;
* section and list numbers at the start of a line (``## 3.``, ``1. ``), and issue/PR references (``issue 17``,
  ``#17``);
* numbers inside identifiers and names (``X_biclum2``, ``hg19``, ``mm10``, ``chr1``, ``CD45``, ``log1p``,
  ``5-NN`` stays a number: only letters glued *before* a digit make an identifier).

Run from the repository root (the default paths are relative to it).
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

SOFTWARE = ("R", "Python", "Seurat", "SeuratObject", "torch", "PyTorch", "numpy", "NumPy", "scipy", "SciPy",
            "anndata", "scanpy", "reticulate", "testthat", "scglue", "scGLUE", "MaxFuse", "maxfuse", "CUDA",
            "Debian", "Ubuntu", "Bioconductor", "pandas", "Matrix", "faiss", "igraph", "leidenalg", "umap-learn",
            "pynndescent", "Signac", "BiocManager", "rpy2", "anndata2ri", "zellkonverter", "SingleCellExperiment")
NUMBER = re.compile(r"(?<![\w.])([x\u00d7])?(\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)(?![\w.]*\d)")
VERSION_AFTER = re.compile(r"(?:\b(?:%s)\b|\bv|version|[<>=]=?)\s*$" % "|".join(map(re.escape, SOFTWARE)))
UNIT_AFTER = re.compile(r"^\s*(?:cells|genes|peaks|s\b|min|GB|MB|epochs|cores|proteins|antibodies|%)")
TEXT_SUFFIXES = {".md", ".csv", ".tsv", ".txt", ".json", ".log"}


def normalise(num: str) -> str:
    """A README number as compared: no thousands separators, no leading x."""
    return num.lstrip("x\u00d7").replace(",", "")


def forms(num: str) -> set:
    """The README spellings a results number stands for: itself and with trailing decimal zeros dropped."""
    num = normalise(num)
    out = {num}
    while "." in num and "e" not in num.lower() and num.endswith("0"):
        num = num[:-1]
        out.add(num[:-1] if num.endswith(".") else num)
    return out


def prose(text: str, rmd: bool = False) -> list:
    """(line number, line) of the text outside code, with code spans, links, URLs and comments blanked."""
    if rmd and text.startswith("---"):
        end = text.find("\n---", 3)
        text = "\n" * text[:end + 4].count("\n") + text[end + 4:] if end > 0 else text
    text = re.sub(r"<!--.*?-->", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)
    out, fence = [], None
    for i, line in enumerate(text.splitlines(), 1):
        m = re.match(r"^\s*(```+|~~~+)", line)
        if m:
            fence = None if fence and m.group(1)[0] == fence[0] else (fence or m.group(1))
            continue
        if fence:
            continue
        line = re.sub(r"`[^`]*`", " ", line)                      # inline code
        line = re.sub(r"\]\([^)]*\)", "]", line)                  # link targets
        line = re.sub(r"https?://\S+|doi:\S+|\b10\.\d{4,}/\S+", " ", line)  # URLs, DOIs
        line = re.sub(r"\b\d{4}-\d{2}(?:-\d{2})?\b", " ", line)              # dates
        line = re.sub(r"\bv?\d+\.\d+\.\d+(?:\.\d+)*\b", " ", line)          # dotted versions x.y.z
        out.append((i, line))
    return out


def _ignored(line: str, m: re.Match) -> bool:
    before, after, raw = line[:m.start()], line[m.end():], m.group(2)
    if VERSION_AFTER.search(before):
        return True
    if re.fullmatch(r"(?:199\d|20[0-3]\d)", raw) and not UNIT_AFTER.match(after):  # a year
        return True
    if re.match(r"^\s*(?:#+\s*)?(?:[-*]\s*)?$", before) and re.match(r"^[.)](?:\s|$)", after):  # section/list number
        return True
    if re.search(r"(?:\bissues?|\bPR|#)\s*$", before, re.I):
        return True
    return False


RESULT_FILE = re.compile(r"benchmarks/results/([\w.-]+\.\w+)")


def paragraphs(path: Path, rmd: bool = False) -> list:
    """(first line number, prose text, cited results files) per paragraph, table row or list item."""
    raw = path.read_text(errors="replace").splitlines()
    out, cur = [], None
    for i, line in prose(path.read_text(errors="replace"), rmd):
        starts = re.match(r"^\s*(?:[-*+]\s|\d+[.)]\s|\||#)", line)
        if not line.strip() or starts or cur is None:
            if cur is not None:
                out.append(cur)
            cur = None if not line.strip() else [i, [], set()]
        if cur is not None:
            cur[1].append(line)
            cur[2].update(RESULT_FILE.findall(raw[i - 1]))
    if cur is not None:
        out.append(cur)
    return [(i, " ".join(x.strip() for x in lines), cited) for i, lines, cited in out]


def numbers(path: Path, rmd: bool = False) -> list:
    """(number as written, line number, sentence, cited results files) of each result-like number."""
    found = []
    for i, text, cited in paragraphs(path, rmd):
        for m in NUMBER.finditer(text):
            if _ignored(text, m):
                continue
            pos, sentence = 0, text
            for sent in re.split(r"(?<=[.;!?])\s+(?=[A-Z(*])", text):
                if pos <= m.start() < pos + len(sent) + 1:
                    sentence = sent
                    break
                pos += len(sent) + 1
            found.append((m.group(0), i, sentence.strip(), cited))
    return found


def result_numbers(folder: Path) -> dict:
    """{file name: every README spelling of every number in it} for the text files under ``folder``."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.suffix in TEXT_SUFFIXES:
            text = p.read_text(errors="replace")
            nums = out.setdefault(p.name, set())
            for m in NUMBER.finditer(text):
                nums.update(forms(m.group(0)))
            for m in re.finditer(r"\d+\.\d+", text):  # also numbers glued to text (x12.4, 0.135/0.65)
                nums.update(forms(m.group(0)))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--readme", default="README.md")
    ap.add_argument("--vignettes", default="vignettes")
    ap.add_argument("--results", default="benchmarks/results")
    a = ap.parse_args(argv)
    sources = [(Path(a.readme), False)] + [(p, True) for p in sorted(Path(a.vignettes).glob("*.Rmd"))]
    have = result_numbers(Path(a.results))
    everywhere = set().union(*have.values()) if have else set()
    missing, total = [], 0
    for path, rmd in sources:
        if not path.exists():
            continue
        for num, line, sentence, cited in numbers(path, rmd):
            total += 1
            pool = set().union(*(have.get(c, set()) for c in cited)) if cited else everywhere
            if normalise(num) not in pool:
                missing.append((path, line, num, sentence, cited))
    for path, line, num, sentence, cited in missing:
        where = ", ".join(sorted(cited)) if cited else a.results
        print(f"{path}:{line}: {num} not in {where}: {sentence}")
    print(f"check_readme_numbers: {total} numbers checked, {len(missing)} not found in {a.results}")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
