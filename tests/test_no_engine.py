"""Every notebook with no engine at all (a Binder session): one-sentence messages, never a traceback.

Each notebook runs as JupyterLab's "Run All" would, in a fresh kernel whose
``DOCKER_HOST`` points at a socket that does not exist: cells run in order
until the first cell that fails without being meant to (cells tagged
``raises-exception`` are meant to).  Every error shown on the way must be a
course error, shown by the course's display hook as its sentence, not a
traceback through the helpers.  The engine-free notebooks pass nbval as they
are stored.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from course_helpers.config import ENGINE_FREE_NOTEBOOKS
from course_helpers.errors import CourseError

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
NOWHERE = "unix:///nonexistent/docker.sock"


def _family(cls: type) -> set[str]:
    return {cls.__name__}.union(*(_family(sub) for sub in cls.__subclasses__()))


COURSE_ERRORS = _family(CourseError)
#: What a traceback looks like in a cell's outputs (IPython's frames, Python's header).
TRACEBACK = re.compile(r"Traceback \(most recent call last\)|^\s*File \"|^-{20,}|Cell In\[\d+\]|----> \d", re.M)
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture
def no_engine(monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_HOST", NOWHERE)
    for name in ("DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COURSE_WORKSPACE", str(tmp_path / "ws"))
    monkeypatch.setenv("COURSE_STATE_DIR", str(tmp_path / "state"))  # no engine's records, as on Binder


def run_all(path: Path) -> tuple[nbformat.NotebookNode, str | None]:
    """Run a notebook as "Run All" does; return it and the source of the cell that stopped it (None: ran to the end)."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:  # only what this run shows counts, not the outputs stored from an engine's run
        if cell.cell_type == "code":
            cell.outputs = []
    stopped = None
    try:
        NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    except CellExecutionError as exc:
        stopped = str(exc).splitlines()[0] if str(exc) else "?"
    return nb, stopped


def shown_errors(nb: nbformat.NotebookNode) -> list[tuple[str, list[str]]]:
    return [(out.ename, [ANSI.sub("", line) for line in out.traceback])
            for cell in nb.cells if cell.cell_type == "code"
            for out in cell.get("outputs", []) if out.output_type == "error"]


def all_text(nb: nbformat.NotebookNode) -> str:
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            parts.append(out.get("text", ""))
            parts.append(str(out.get("data", {}).get("text/plain", "")))
            parts.extend(out.get("traceback", []))
    return ANSI.sub("", "\n".join(parts))


@pytest.mark.slow
@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda p: p.stem[:3])
def test_every_notebook_without_an_engine_says_so_in_one_sentence(path, no_engine):
    nb, stopped = run_all(path)
    errors = shown_errors(nb)
    assert not TRACEBACK.search(all_text(nb)), all_text(nb)[-3000:]
    for ename, lines in errors:
        assert ename in COURSE_ERRORS, (ename, lines)
        assert len(lines) == 1 and lines[0].startswith(f"{ename}: "), lines
    if path.stem in ENGINE_FREE_NOTEBOOKS or path.stem.startswith("000"):  # 000 reports, it does not fail
        assert stopped is None and not errors, errors
    else:
        # Stopped at the first cell that needs the engine, and that cell named it.
        assert errors and any("engine" in lines[0] for _, lines in errors), errors


def test_notebook_000_says_there_is_no_engine_and_which_notebooks_work(no_engine):
    nb, stopped = run_all(NOTEBOOKS / "000-check-your-setup.ipynb")
    assert stopped is None
    text = all_text(nb)
    sentence = next(line for line in text.splitlines() if line.startswith("No Docker engine answers"))
    assert all(name[:3] in sentence for name in ENGINE_FREE_NOTEBOOKS), sentence
    assert sentence.count(". ") == 0 and sentence.endswith(".")


@pytest.mark.parametrize("name", ENGINE_FREE_NOTEBOOKS)
def test_the_engine_free_notebooks_pass_nbval_without_an_engine(name, no_engine):
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval", "--nbval-current-env",
         "--nbval-sanitize-with", str(NOTEBOOKS / "sanitize.cfg"), "--rootdir", str(ROOT),
         str(NOTEBOOKS / f"{name}.ipynb")], cwd=ROOT, capture_output=True, text=True, timeout=600, env=dict(os.environ))
    assert proc.returncode == 0, proc.stdout[-4000:]
