"""Two lessons at once on one engine: how much does taking turns cost? (target: at most 1.3x the sum)

050 and 060 both own ``flask-demo``, so the second to reach ``fresh_start`` waits
for the first (engine.claims).  Serializing must not add much over running them
one after the other.  The script runs, in one go so the noisy machine weighs on
all of them alike: 050 alone, 060 alone, then both at the same moment; each
under nbval in its own process, as two kernels would.  Rounds alternate the
order, and the table shows medians.

Usage: ``python bench/bench_concurrency.py [rounds]`` from the repository root (default 3).
"""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
A, B = ROOT / "notebooks" / "050-cache-busting.ipynb", ROOT / "notebooks" / "060-caching-dependencies.ipynb"


def _start(notebook: Path, workspace: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval",
                             "--nbval-current-env", "--nbval-sanitize-with", "notebooks/sanitize.cfg", str(notebook)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "COURSE_WORKSPACE": workspace})


def _wait(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        out = proc.communicate()[0]
        if proc.returncode != 0:
            raise SystemExit(f"a notebook failed under nbval:\n{out[-3000:]}")


def _timed(notebooks: list[Path], workspace: str) -> float:
    start = time.perf_counter()
    _wait([_start(nb, workspace) for nb in notebooks])
    return time.perf_counter() - start


def main(rounds: int = 3) -> int:
    alone_a, alone_b, both = [], [], []
    with tempfile.TemporaryDirectory(prefix="bench-concurrency-") as ws:
        for i in range(rounds):
            order = [(alone_a, [A]), (alone_b, [B]), (both, [A, B])]
            for sink, notebooks in (order if i % 2 == 0 else order[::-1]):
                sink.append(_timed(notebooks, ws))
                print(f"round {i + 1}: {', '.join(n.name[:3] for n in notebooks)} {sink[-1]:.1f} s", flush=True)
    a, b, ab = statistics.median(alone_a), statistics.median(alone_b), statistics.median(both)
    ratio = ab / (a + b)
    print(f"\n{'run':<28} median s")
    print(f"{'050 alone':<28} {a:8.1f}")
    print(f"{'060 alone':<28} {b:8.1f}")
    print(f"{'sum of the two':<28} {a + b:8.1f}")
    print(f"{'050 and 060 at once':<28} {ab:8.1f}")
    print(f"ratio at once / sum: {ratio:.2f} (target <= 1.3: {'met' if ratio <= 1.3 else 'MISSED'})")
    return 0 if ratio <= 1.3 else 1


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 3))
