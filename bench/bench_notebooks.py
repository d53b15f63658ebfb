"""How long do the notebooks take under nbval, one by one and in all? (target: under 3 minutes in all)

Runs ``pytest --nbval`` on each notebook in turn, exactly as ``./course test``
does, and prints a table of wall-clock seconds.  Needs the engine and the base
image (``./course setup``).

Usage: ``python bench/bench_notebooks.py`` from the repository root.
"""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    rows = []
    failures: list[str] = []
    for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval",
                               "--nbval-current-env", "--nbval-sanitize-with", "notebooks/sanitize.cfg",
                               str(notebook.relative_to(ROOT))], cwd=ROOT, capture_output=True, text=True)
        rows.append((notebook.name, time.perf_counter() - start, "pass" if proc.returncode == 0 else "FAIL"))
        if proc.returncode != 0:  # say why, or a failure on a shared, loaded engine cannot be told from a bug
            failures.append(f"--- {notebook.name}\n" + "\n".join(proc.stdout.splitlines()[-40:]))
    width = max(len(name) for name, _, _ in rows)
    print(f"{'notebook':<{width}}  seconds  nbval")
    for name, seconds, verdict in rows:
        print(f"{name:<{width}}  {seconds:7.1f}  {verdict}")
    total = sum(seconds for _, seconds, _ in rows)
    print(f"{'all':<{width}}  {total:7.1f}  target < 180 s: {'met' if total < 180 else 'MISSED'}")
    for failure in failures:
        print(failure)
    return 0 if all(v == "pass" for _, _, v in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
