#!/usr/bin/env python3
"""Fail `make test` when R CMD check's testthat run proves nothing.

Reads the testthat output that R CMD check leaves in ``<pkg>.Rcheck/tests/testthat.Rout`` (or
``testthat.Rout.fail`` when the tests failed) and exits 1 when

* no testthat summary line (``[ FAIL f | WARN w | SKIP s | PASS p ]``) is there (the tests did not run);
* the run failed (FAIL > 0) or passed nothing (PASS == 0);
* a test was skipped for a reason that is not on the allow-list below. Skips because the biclum Python
  environment or the shared data are missing are never allowed when this machine has a Python that imports
  biclum (``RETICULATE_PYTHON``, else ``python3``): those are the integration tests.

Every skip is printed with its count, allowed or not. Usage: ``check_r_tests.py [biclum.Rcheck]``.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

#: skip reasons that are legitimate on a machine with Python and R (regular expressions, searched)
ALLOWED = [
    r"SeuratObject .*split.?layer",                 # the Seurat v5 split-layer path on SeuratObject 4
    r"org\.Hs\.eg\.db / GO\.db not installed",      # optional GO annotation packages
    r"no Python interpreter without biclum found",  # the 'wrong Python' message test needs a second Python
    r"On Windows|on_os|windows",
]

#: skip reasons that mean the integration tests did not run (never allowed where Python has biclum)
ENVIRONMENT = [
    r"biclum Python package is not available",
    r"shared test data not found",
    r"fit above did not run",
    r"reticulate|RETICULATE_PYTHON|python",
]

SUMMARY = re.compile(r"\[ FAIL (\d+) \| WARN (\d+) \| SKIP (\d+) \| PASS (\d+) \]")
BULLET = re.compile(r"^\s*(?:\u2022|\*|-)\s+(.*?)\s+\((\d+)\)(?::.*)?\s*$")


def parse(text: str):
    """(counts dict or None, [(reason, n)]) from a testthat.Rout text; the last summary line counts."""
    sums = SUMMARY.findall(text)
    counts = None if not sums else dict(zip(("fail", "warn", "skip", "pass"), map(int, sums[-1])))
    entries, in_skips = [], False
    for line in text.splitlines():
        if "Skipped tests" in line:
            in_skips = True
            continue
        if not in_skips:
            continue
        if re.match(r"^\s*(?:\u2022|\*|-)\s+", line):
            entries.append(line.strip())
        elif line.startswith(" ") and line.strip() and entries:  # newer testthat wraps long reasons
            entries[-1] += " " + line.strip()
        elif line.strip():
            in_skips = False
    skips = [(m.group(1), int(m.group(2))) for m in map(BULLET.match, entries) if m]
    return counts, skips


def python_has_biclum() -> bool:
    exe = os.environ.get("RETICULATE_PYTHON") or "python3"
    try:
        return subprocess.run([exe, "-c", "import biclum"], capture_output=True, timeout=300).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def check(text: str, have_python: bool) -> list:
    """The problems (empty = pass); prints the summary and every skip."""
    counts, skips = parse(text)
    if counts is None:
        return ["no testthat summary line ([ FAIL .. | PASS .. ]): the R tests did not run"]
    print("R tests: {pass} passed, {fail} failed, {skip} skipped, {warn} warnings".format(**counts))
    problems = []
    if counts["fail"]:
        problems.append(f"{counts['fail']} R test(s) failed")
    if counts["pass"] == 0:
        problems.append("the R suite ran no test (PASS 0)")
    if counts["skip"] and not skips:
        problems.append(f"{counts['skip']} skip(s) but no 'Skipped tests' list to check their reasons")
    for reason, n in skips:
        allowed = any(re.search(p, reason) for p in ALLOWED)
        env = any(re.search(p, reason, re.IGNORECASE) for p in ENVIRONMENT)
        if allowed:
            print(f"  skipped (allowed) x{n}: {reason}")
        elif env and not have_python:
            print(f"  skipped x{n} (no Python with biclum on this machine): {reason}")
        else:
            print(f"  skipped (NOT allowed) x{n}: {reason}")
            problems.append(f"{n} test(s) skipped: {reason}")
    return problems


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    rcheck = Path(argv[0] if argv else "biclum.Rcheck")
    outs = [p for p in (rcheck / "tests" / "testthat.Rout.fail", rcheck / "tests" / "testthat.Rout") if p.exists()]
    if not outs:
        print(f"check_r_tests: no {rcheck}/tests/testthat.Rout(.fail): R CMD check did not run the tests")
        return 1
    problems = check(outs[0].read_text(errors="replace"), python_has_biclum())
    for p in problems:
        print(f"check_r_tests: {p} ({outs[0]})")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
