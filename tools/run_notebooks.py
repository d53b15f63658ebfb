"""Run notebooks top to bottom on the real engine and store their outputs, as JupyterLab's Run All would.

Stored outputs are what nbval compares, so they must come from real runs, never
from hand edits.  This is the only way the project writes them:

    .venv/bin/python tools/run_notebooks.py                       # every notebook
    .venv/bin/python tools/run_notebooks.py notebooks/050-*.ipynb  # some

A cell tagged ``raises-exception`` may raise; any other error stops the run
and leaves that notebook's file unchanged.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parent.parent


def run(path: Path, timeout: int = 900) -> float:
    """Execute one notebook in its own folder and write it back; returns the seconds it took."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    start = time.monotonic()
    client.execute()
    seconds = time.monotonic() - start
    nbformat.write(nb, path)
    return seconds


def main(argv: list[str]) -> int:
    paths = [Path(a) for a in argv] or sorted((ROOT / "notebooks").glob("*.ipynb"))
    for path in paths:
        print(f"running {path.name} ...", flush=True)
        try:
            print(f"  done in {run(path):.0f} s", flush=True)
        except CellExecutionError as exc:
            print(f"  FAILED; {path.name} left as it was:\n{exc}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
