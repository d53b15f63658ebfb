"""Chapters 080 and 090 in numbers: what a cluttered context and a cache mount cost, measured several times.

Two measurements, each repeated ROUNDS times with the variants interleaved, so
that a busy moment on a shared machine hits both:

* **build context (080)**: the sample app with a project's clutter (30 MB of
  ``.git`` history, a virtual environment, data), without and with a
  ``.dockerignore``: a cold build (``no_cache=True``) and a rebuild after a
  commit;
* **cache mount (090)**: after a change to ``requirements.txt``, how long the
  pip step takes without a mount and with chapter 090's wheel-folder mount,
  and how many package files pip downloaded.

Prints one table per measurement with medians and ratios.  Needs the engine and
the base image (``./course setup``); takes a few minutes.  Everything it builds
is removed at the end.

Usage: ``python bench/bench_chapters.py [ROUNDS]`` from the repository root.
"""
from __future__ import annotations

import os
import statistics
import sys
import tempfile
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from course_helpers.lesson.workspace import REQUIREMENTS_FIRST  # noqa: E402

MOUNTED = REQUIREMENTS_FIRST.replace(
    "RUN pip3 install -r requirements.txt",
    "RUN --mount=type=cache,target=/root/.cache/wheels \\\n"
    "    pip3 download --dest /root/.cache/wheels -r requirements.txt \\\n"
    " && pip3 install --no-cache-dir --no-index --find-links /root/.cache/wheels -r requirements.txt")
IGNORE = ".git\n.venv\n**/__pycache__\n**/*.pyc\n**/*.log\ndocs/**\n!docs/README.md\ndata/raw/\nDockerfile\n.dockerignore\n"
TAG = "bench-chapters"


def _median(values: list[float]) -> str:
    return f"{statistics.median(values):6.2f}"


def bench_context(rounds: int) -> None:
    from course_helpers import add_clutter, build, context_size, simulate_commit, workspace

    rows: dict[str, dict[str, list[float]]] = {"without .dockerignore": {}, "with .dockerignore": {}}
    sizes: dict[str, int] = {}
    for n in range(rounds):
        for name, ignore in (("without .dockerignore", None), ("with .dockerignore", IGNORE)):
            folder = workspace(f"bench-context-{n}-{'ign' if ignore else 'raw'}")
            (folder / "Dockerfile").write_text(REQUIREMENTS_FIRST)
            add_clutter(folder)
            if ignore:
                (folder / ".dockerignore").write_text(ignore)
            sizes[name] = context_size(folder).bytes
            cold = build(folder, f"{TAG}:context", no_cache=True, progress=False)
            simulate_commit(folder)
            again = build(folder, f"{TAG}:context", progress=False)
            rows[name].setdefault("cold build (s)", []).append(cold.seconds)
            rows[name].setdefault("rebuild after a commit (s)", []).append(again.seconds)
            print(f"  round {n + 1}, {name}: cold {cold.seconds:.2f} s, after a commit {again.seconds:.2f} s",
                  flush=True)
    print(f"\nBuild context (080), {rounds} rounds, medians")
    print(f"{'':24} {'context MB':>10} {'cold build s':>13} {'after commit s':>15}")
    for name, values in rows.items():
        print(f"{name:24} {sizes[name] / 1e6:10.2f} {_median(values['cold build (s)']):>13} "
              f"{_median(values['rebuild after a commit (s)']):>15}")
    a, b = rows["without .dockerignore"], rows["with .dockerignore"]
    print(f"ratio without/with: cold {statistics.median(a['cold build (s)']) / statistics.median(b['cold build (s)']):.2f}, "
          f"after a commit {statistics.median(a['rebuild after a commit (s)']) / statistics.median(b['rebuild after a commit (s)']):.2f}")


def bench_cache_mount(rounds: int) -> None:
    from course_helpers import build, pip_activity, workspace

    folder = workspace("bench-cache-mount")
    (folder / "Dockerfile").write_text(REQUIREMENTS_FIRST)
    (folder / "mount.Dockerfile").write_text(MOUNTED)
    build(folder, f"{TAG}:plain", progress=False)
    build(folder, f"{TAG}:mount", dockerfile="mount.Dockerfile", progress=False)  # fills the mount
    seconds: dict[str, list[float]] = {"without a mount": [], "with the cache mount": []}
    downloads: dict[str, list[int]] = {"without a mount": [], "with the cache mount": []}
    for n in range(rounds):
        with open(folder / "requirements.txt", "a") as requirements:
            requirements.write(f"# round {uuid.uuid4().hex[:8]}\n")  # pip must run, for the same packages
        for name, dockerfile in (("without a mount", "Dockerfile"), ("with the cache mount", "mount.Dockerfile")):
            report = build(folder, f"{TAG}:{'plain' if dockerfile == 'Dockerfile' else 'mount'}",
                           dockerfile=dockerfile, progress=False)
            step = report.step("pip3")
            seconds[name].append(step.seconds)
            downloads[name].append(len(pip_activity(step).downloaded))
            print(f"  round {n + 1}, {name}: pip step {step.seconds:.2f} s, "
                  f"{downloads[name][-1]} file(s) downloaded", flush=True)
    print(f"\nCache mount (090), reinstall after a change to requirements.txt, {rounds} rounds, medians")
    print(f"{'':22} {'pip step s':>10} {'files downloaded':>17}")
    for name in seconds:
        print(f"{name:22} {_median(seconds[name]):>10} {statistics.median(downloads[name]):17.0f}")
    print(f"ratio with/without: {statistics.median(seconds['with the cache mount']) / statistics.median(seconds['without a mount']):.2f}")


def main() -> int:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    os.environ.setdefault("COURSE_WORKSPACE", tempfile.mkdtemp(prefix="bench-chapters-"))
    from course_helpers import cleanup

    try:
        bench_context(rounds)
        bench_cache_mount(rounds)
    finally:
        cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
