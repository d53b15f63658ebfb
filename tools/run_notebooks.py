"""Run notebooks top to bottom on the real engine and store their outputs, as JupyterLab's Run All would.

Stored outputs are what nbval compares, so they must come from real runs, never
from hand edits.  This is the only way the project writes them:

    .venv/bin/python tools/run_notebooks.py                       # every notebook
    .venv/bin/python tools/run_notebooks.py notebooks/050-*.ipynb  # some

A cell tagged ``raises-exception`` may raise; any other error stops the run
and leaves that notebook's file unchanged.  The engine they ran on is written to
notebooks/recorded-on.txt: on any other engine, the tests compare only the cells
tagged ``nbval-check-output`` (conftest.py).  Some notebooks alone may be re-run
only on that same engine.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parent.parent
RECORDED_ON = "recorded-on.txt"


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
    sys.path.insert(0, str(ROOT))
    from course_helpers.engine.client import client
    from course_helpers.engine.preflight import engine_signature

    paths = [Path(a) for a in argv] or sorted((ROOT / "notebooks").glob("*.ipynb"))
    # The kernels run in notebooks/: a relative workspace keeps this checkout's path out of the
    # stored outputs (%%writefile prints the path it writes).
    os.environ.setdefault("COURSE_WORKSPACE", "../workspace")
    engine = engine_signature(client())
    stamp = ROOT / "notebooks" / RECORDED_ON
    if argv and stamp.exists() and stamp.read_text().strip() != engine:
        print(f"The notebooks were recorded on {stamp.read_text().strip()} and this engine is {engine}: "
              "run every notebook (no arguments) so that all outputs come from one engine.", file=sys.stderr)
        return 1
    for path in paths:
        print(f"running {path.name} ...", flush=True)
        try:
            print(f"  done in {run(path):.0f} s", flush=True)
        except CellExecutionError as exc:
            print(f"  FAILED; {path.name} left as it was:\n{exc}", file=sys.stderr)
            return 1
    stamp.write_text(engine + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
