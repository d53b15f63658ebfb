"""The seed notebooks on the local engine and on a second engine over TCP with TLS, side by side.

Starts a private dockerd on 127.0.0.1 with TLS (its own data root, exec root,
pidfile and bridge; root and Debian's docker.io needed), copies the base image
into it, then runs notebooks 000-070 under nbval on each engine in turn,
interleaved for ``--rounds`` rounds, and prints a table of median wall-clock
seconds per notebook and the ratio TLS / local.  The private engine is stopped
and its data removed at the end, whatever happened.

Usage: ``.venv/bin/python bench/bench_engines.py [--rounds 2]`` from the repository root.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from course_helpers.config import BASE_IMAGE  # noqa: E402
from course_helpers.engine.daemon import start_private_engine  # noqa: E402


def nbval_seconds(notebook: Path, env: dict[str, str], work: Path) -> tuple[float, bool]:
    """Wall-clock seconds of ``pytest --nbval`` on one notebook, and whether it passed."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval",
                           "--nbval-current-env", "--nbval-sanitize-with", "notebooks/sanitize.cfg",
                           str(notebook.relative_to(ROOT))], cwd=ROOT, capture_output=True, text=True,
                          env={**env, "COURSE_WORKSPACE": str(work)})
    return time.perf_counter() - start, proc.returncode == 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    seed = [p for p in sorted((ROOT / "notebooks").glob("*.ipynb")) if p.name[:3] <= "070"]
    local_env = {k: v for k, v in os.environ.items()}
    print(f"starting a TLS engine and copying {BASE_IMAGE} into it ...", flush=True)
    engine = start_private_engine("bench", tls=True, progress=lambda line: print("  " + line, flush=True))
    times: dict[tuple[str, str], list[float]] = {}
    failed: list[str] = []
    try:
        engine.load_image(BASE_IMAGE)
        engines = {"local": local_env, "tls": {**local_env, **engine.env}}
        with tempfile.TemporaryDirectory() as tmp:
            for n in range(args.rounds):
                for notebook in seed:
                    for name, env in engines.items():  # interleaved, so both see the same machine load
                        seconds, ok = nbval_seconds(notebook, env, Path(tmp) / f"{name}-{n}")
                        times.setdefault((notebook.name, name), []).append(seconds)
                        if not ok:
                            failed.append(f"{notebook.name} on {name}")
                        print(f"  round {n + 1}: {notebook.name} on {name}: {seconds:.1f} s{'' if ok else ' FAIL'}",
                              flush=True)
    finally:
        engine.stop(wipe=True)
    width = max(len(p.name) for p in seed)
    print(f"\n{'notebook':<{width}}  local s  tls s  ratio   (medians of {args.rounds})")
    total = {"local": 0.0, "tls": 0.0}
    for notebook in seed:
        row = {name: statistics.median(times[(notebook.name, name)]) for name in total}
        for name in total:
            total[name] += row[name]
        print(f"{notebook.name:<{width}}  {row['local']:7.1f}  {row['tls']:5.1f}  {row['tls'] / row['local']:5.2f}")
    print(f"{'all':<{width}}  {total['local']:7.1f}  {total['tls']:5.1f}  {total['tls'] / total['local']:5.2f}")
    if failed:
        print("FAILED: " + ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
