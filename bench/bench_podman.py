"""Podman (Buildah) vs Docker (BuildKit, classic): the seed app's builds, side by side in one run.

For each builder, interleaved round by round so that the machine's load falls on all alike:
a cold build (``no_cache=True``), a fully cached rebuild, and a rebuild after an ``app.py``
edit (COPY and pip run again).  Prints the medians as a table.

Usage, from the repository root: ``python bench/bench_podman.py [-n 3]``.  Podman's side runs
on a service of its own, started for the run (storage under /tmp, base image copied from the
Docker engine) and removed at the end, unless ``--podman-host unix://...`` names one.
Every image goes at the end: the run's own Docker images by tag, Podman's with its storage.
"""
from __future__ import annotations

import argparse
import contextlib
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from course_helpers.builder.build import build, builders_available, using_podman  # noqa: E402
from course_helpers.config import BASE_IMAGE, REPO_ROOT  # noqa: E402
from course_helpers.engine.client import client  # noqa: E402
from course_helpers.engine.podman import PodmanService  # noqa: E402
from course_helpers.formatting import table_text  # noqa: E402

KINDS = ("cold (no_cache)", "fully cached", "app.py edited")


def one_round(ctx: Path, tag: str, builder: str, edit_to: str) -> dict[str, float]:
    out = {}
    for kind in KINDS:
        if kind == "app.py edited":
            (ctx / "app.py").write_text((REPO_ROOT / "sample_app" / "app.py").read_text()
                                        .replace("Hello world!", edit_to))
        t0 = time.perf_counter()
        report = build(ctx, tag, builder=builder, no_cache=kind.startswith("cold"), progress=False)
        out[kind] = time.perf_counter() - t0
        ran = [s.instruction.split()[0] for s in report.steps if not s.cached and not s.is_from]
        if kind == "fully cached":
            assert not ran, report.text()
        if kind == "app.py edited":
            assert ran[:2] == ["COPY", "RUN"], report.text()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=3, help="rounds (default 3)")
    parser.add_argument("--podman-host", help="DOCKER_HOST of a running Podman service with the base image")
    args = parser.parse_args()
    docker_builders = [b for b in builders_available() if b != "buildah"]
    name = f"course-bench-{uuid.uuid4().hex[:8]}"
    times: dict[str, dict[str, list[float]]] = {}
    with contextlib.ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        if args.podman_host:
            address = args.podman_host
        else:
            service = stack.enter_context(PodmanService(Path(f"/tmp/course-podman-{uuid.uuid4().hex[:8]}")))
            service.load_image(BASE_IMAGE, progress=None)
            address = service.address
        contexts = {}
        for builder in docker_builders + ["buildah"]:
            contexts[builder] = ctx = Path(tmp) / builder
            shutil.copytree(REPO_ROOT / "sample_app", ctx)
            (ctx / "requirements.txt").write_text((ctx / "requirements.txt").read_text()
                                                  + f"# bench run: {uuid.uuid4().hex[:12]}\n")
            times[builder] = {kind: [] for kind in KINDS}
        try:
            for rep in range(args.n):
                order = docker_builders + ["buildah"]
                if rep % 2:
                    order.reverse()  # no order bias
                for builder in order:
                    with using_podman(address) if builder == "buildah" else contextlib.nullcontext():
                        got = one_round(contexts[builder], f"{name}:{builder}", builder,
                                        f"Hello round {rep}!")
                    for kind, seconds in got.items():
                        times[builder][kind].append(seconds)
        finally:
            for img in client().images.list(name=name):
                client().images.remove(img.id, force=True)
    columns = {"buildkit": "Docker, BuildKit", "classic": "Docker, classic", "buildah": "Podman, Buildah"}
    rows = [[kind] + [f"{statistics.median(times[b][kind]):.2f} s" for b in times] for kind in KINDS]
    print(f"The seed app, medians of {args.n} rounds, interleaved (engine: {client().version().get('Version')}"
          f" and Podman's service)")
    print(table_text(["build"] + [columns[b] for b in times], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
