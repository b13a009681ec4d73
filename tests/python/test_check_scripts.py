"""scripts/check_r_tests.py (make test's R gate) and scripts/check_readme_numbers.py (README numbers vs results)."""
from __future__ import annotations

from pathlib import Path

import pytest
from conftest import load_module

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
R = load_module(SCRIPTS / "check_r_tests.py")
N = load_module(SCRIPTS / "check_readme_numbers.py")

ROUT = """> test_check("biclum")
[ FAIL 0 | WARN 1 | SKIP {skip} | PASS {ok} ]

\u2550\u2550 Skipped tests \u2550\u2550\u2550\u2550\u2550\u2550
{bullets}

\u2550\u2550 Warnings \u2550\u2550\u2550\u2550
[ FAIL 0 | WARN 1 | SKIP {skip} | PASS {ok} ]
"""


def _rout(ok, bullets):
    return ROUT.format(ok=ok, skip=sum(n for _, n in bullets),
                       bullets="\n".join(f"\u2022 {r} ({n})" for r, n in bullets))


def test_r_gate_passes_allowed_skips_only(capsys):
    text = _rout(120, [("SeuratObject 4.1.3 has no v5 assays (Assay5); the split-layer path is tested where "
                        "SeuratObject >= 5 is installed", 1)])
    assert R.parse(text)[0] == {"fail": 0, "warn": 1, "skip": 1, "pass": 120}
    assert R.check(text, have_python=True) == []
    assert "skipped (allowed) x1: SeuratObject 4.1.3" in capsys.readouterr().out


def test_r_gate_reads_wrapped_skip_reasons():
    """testthat 3.2 (Debian 13) wraps a long reason and appends the test's location."""
    text = ROUT.format(ok=555, skip=1, bullets="\u2022 org.Hs.eg.db / GO.db not installed (optional; Debian: apt-get "
                       "install\n  r-bioc-org.hs.eg.db r-bioc-go.db) (1): 'test-downstream.R:311:5'")
    assert R.parse(text)[1] == [("org.Hs.eg.db / GO.db not installed (optional; Debian: apt-get install "
                                 "r-bioc-org.hs.eg.db r-bioc-go.db)", 1)]
    assert R.check(text, have_python=True) == []


def test_r_gate_fails_on_python_skips_no_tests_or_no_summary():
    env_skip = _rout(40, [("the biclum Python package is not available: no module (set RETICULATE_PYTHON to an "
                           "interpreter with biclum installed)", 42)])
    problems = R.check(env_skip, have_python=True)
    assert len(problems) == 1 and "42 test(s) skipped: the biclum Python package" in problems[0]
    assert R.check(env_skip, have_python=False) == []  # a machine without Python: those skips are expected
    assert "ran no test" in " ".join(R.check("[ FAIL 0 | WARN 0 | SKIP 0 | PASS 0 ]\n", have_python=True))
    assert "did not run" in R.check("Error in library(testthat)\n", have_python=True)[0]
    unknown = _rout(10, [("Seurat cannot be loaded", 2)])
    assert "Seurat cannot be loaded" in R.check(unknown, have_python=True)[0]
    failed = "[ FAIL 3 | WARN 0 | SKIP 0 | PASS 10 ]\n"
    assert R.check(failed, have_python=True) == ["3 R test(s) failed"]


def test_r_gate_main_reads_the_rcheck_folder(tmp_path):
    assert R.main([str(tmp_path / "biclum.Rcheck")]) == 1  # nothing there
    tests = tmp_path / "biclum.Rcheck" / "tests"
    tests.mkdir(parents=True)
    (tests / "testthat.Rout").write_text("[ FAIL 0 | WARN 0 | SKIP 0 | PASS 7 ]\n")
    assert R.main([str(tmp_path / "biclum.Rcheck")]) == 0


README = """# biclum 2.13.0

Released 2026-11-30 (doi:10.1371/journal.pcbi.1013932), built with R 4.2.2 and numpy<2; see issue 17.

## 3. Results

On SNARE-seq FOSCTTM 0.135 and transfer 0.65 at 10,309 cells, x11.4 faster; runs with `--cells 3000` and
`k=200`.

A [table](benchmarks/results/scale.md) says 12.4 min and 0.20 (two decimals).

```bash
biclum fit --epochs 999
```

1. first step in 2024 (a year), 2024 cells (a count).
"""


def test_readme_numbers_rules(tmp_path):
    (tmp_path / "README.md").write_text(README)
    found = [(num, cited) for num, _, _, cited in N.numbers(tmp_path / "README.md")]
    nums = [n for n, _ in found]
    assert nums == ["0.135", "0.65", "10,309", "x11.4", "12.4", "0.20", "2024"]
    assert dict(found)["12.4"] == {"scale.md"} and dict(found)["0.135"] == set()
    res = tmp_path / "results"
    res.mkdir()
    (res / "core.md").write_text("| foscttm | 0.1350 |\n| transfer | 0.650 | cells 10309 | 2024 | x11.40 |\n")
    (res / "scale.md").write_text("12.40 min, 0.2\n")
    (res / "other.csv").write_text("0.20\n")
    argv = ["--readme", str(tmp_path / "README.md"), "--vignettes", str(tmp_path), "--results", str(res)]
    assert N.main(argv) == 1  # 0.20 is in other.csv, but the paragraph cites scale.md, which has 0.2 only
    (res / "scale.md").write_text("12.40 min, 0.200\n")
    assert N.main(argv) == 0


def test_readme_numbers_vignette_prose_only(tmp_path):
    (tmp_path / "v.Rmd").write_text("---\ntitle: x 1.5\n---\n\nTrains 7.5 epochs.\n\n```{r}\nx <- 99.9\n```\n")
    assert [n for n, *_ in N.numbers(tmp_path / "v.Rmd", rmd=True)] == ["7.5"]


@pytest.mark.parametrize("num, spelled", [("0.1350", {"0.1350", "0.135"}), ("3.0", {"3.0", "3"}),
                                          ("10,309", {"10309"}), ("x12.40", {"12.40", "12.4"})])
def test_results_number_forms(num, spelled):
    assert N.forms(num) == spelled
