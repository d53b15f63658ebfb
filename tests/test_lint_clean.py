"""The course's Python code has no unused import, unused name or undefined name (pyflakes, in the test extra)."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: What pyflakes reads: the package, the tests, the root conftest, the tools and the benchmarks.
CHECKED = ["course_helpers", "tests", "conftest.py", "tools", "bench"]


def _pyflakes(*paths: str | Path) -> subprocess.CompletedProcess:
    assert importlib.util.find_spec("pyflakes"), \
        "pyflakes is missing from this environment: ./course setup installs the test extra, which has it."
    return subprocess.run([sys.executable, "-m", "pyflakes", *map(str, paths)], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)


def test_pyflakes_finds_nothing():
    result = _pyflakes(*CHECKED)
    findings = (result.stdout + result.stderr).strip()
    assert result.returncode == 0 and not findings, f"pyflakes found:\n{findings}"


def test_pyflakes_reports_an_unused_import(tmp_path):
    # The check above can fail: the same command on a file with an unused import says so.
    (tmp_path / "unused.py").write_text("import os\n")
    result = _pyflakes(tmp_path / "unused.py")
    assert result.returncode != 0 and "'os' imported but unused" in result.stdout
