"""Time diff_images(files=True) of two ~200 MB images beside the engine's own export of them, on two engines.

Run: python bench/bench_diff.py [--repeat N] [--engines main,docker20] [--keep]

On each engine (the main one, whatever its store, and a private Docker 20.10
engine with the classic store, started here and stopped at the end; or any
release and store, e.g. ``docker28:containerd``) it builds
the sample app twice, as chapter 050 does (``first``, and ``third`` with the
requirements copied first and app.py edited: about 200 MB each on the 191 MB
base), then times, interleaved so the machine's noise falls on all alike:

* the engine's export alone: ``GET /images/get`` of both images drained, and
  ``docker save`` of both to /dev/null (that engine's own client);
* ``diff_images(files=True)`` as a lesson meets it: the base layer's scan kept
  from an earlier diff or explore, the layers the two builds made read now;
* the same with nothing kept (the first diff on a machine), and with every
  layer kept (the same diff again: no export at all);
* ``diff_images(files=False)``: the layer table alone.

Prints one table: the figures per engine, the CPU this process spent, and the
ratio to the drained export, taken round by round (each case against the
export timed next to it, the median of those) so that the load other work
puts on the machine cancels out.  Target: the lesson's file diff at most 1.1
times the export.  It
forgets only the kept scans of its own images' layers (the base layer's is
read again and kept); those images, and their layers' scans, go at the end.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from course_helpers.builder.build import build  # noqa: E402
from course_helpers.engine.base_image import ensure_base_image  # noqa: E402
from course_helpers.engine.client import client  # noqa: E402
from course_helpers.engine.daemon import start_private_engine  # noqa: E402
from course_helpers.engine.endpoint import resolve  # noqa: E402
from course_helpers.formatting import format_size  # noqa: E402
from course_helpers.layers import diff, export  # noqa: E402
from course_helpers.lesson.workspace import edit, workspace  # noqa: E402

THIRD = """FROM python:3.11-slim-bookworm
WORKDIR /usr/src/app
COPY requirements.txt ./
RUN pip3 install -r requirements.txt
COPY . .
CMD ["python3", "-m", "flask", "run", "--host=0.0.0.0"]
"""
TARGET = 1.1
LESSON = "diff files=True, base kept (a lesson)"


@contextlib.contextmanager
def _engine(label: str) -> Iterator[str]:
    """The course's engine for a while: the main one as it is, or a private one of a release, made here."""
    if label == "main":
        info = client().info()
        store = "containerd" if any(p[1] == "io.containerd.snapshotter.v1" for p in info.get("DriverStatus") or []) \
            else info.get("Driver", "?")
        yield f"main (Docker {client().version().get('Version', '?')}, {store} store)"
        return
    release, _, store = label.partition(":")
    engine = start_private_engine(f"exb{uuid.uuid4().hex[:5]}", release=release, store=store or "overlay2",
                                  progress=None)
    try:
        ensure_base_image(cli=engine.client(), pull=False, progress=None)
        with engine.in_use():
            yield f"{release} (Docker {client().version().get('Version', '?')}, {engine.store} store)"
    finally:
        engine.stop(wipe=True)


def _cases(cli: Any, first: Any, third: Any, layers: list[str]
           ) -> list[tuple[str, Callable[[], None] | None, Callable[[], Any]]]:
    api = cli.api
    ids = [first.image_id, third.image_id]
    above_base = [d for d in layers if d != layers[0]]
    docker = shutil.which("docker") or "docker"

    def drained() -> None:
        res = api._get(api._url("/images/get"), params={"names": ids}, stream=True)
        for _ in res.raw.stream(1 << 20, decode_content=False):
            pass

    def saved() -> None:
        subprocess.run([docker, "save", *ids], stdout=subprocess.DEVNULL, check=True, env=resolve().cli_environment())

    files = lambda: diff.diff_images(first, third, files=True)  # noqa: E731
    return [
        ("engine export: GET drained", None, drained),
        ("engine export: docker save >/dev/null", None, saved),
        (LESSON, lambda: export.forget(above_base), files),
        ("diff files=True, nothing kept", lambda: export.forget(layers), files),
        ("diff files=True, all kept (again)", None, files),
        ("diff files=False", None, lambda: diff.diff_images(first, third)),
    ]


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _measure(label: str, repeat: int, keep: bool) -> tuple[str, list[tuple[str, list[float], list[float]]], str]:
    with _engine(label) as title:
        cli = client()
        repo = f"bench-diff-{uuid.uuid4().hex[:6]}"
        first = build(workspace(f"{repo}-first"), f"{repo}:first", builder="buildkit", progress=False)
        ws = workspace(f"{repo}-third")
        (ws / "Dockerfile").write_text(THIRD)
        edit(ws / "app.py", "Hello world!", "Hello universe!")
        third = build(ws, f"{repo}:third", builder="buildkit", progress=False)
        layers = [d for r in (first, third) for d in cli.images.get(r.image_id).attrs["RootFS"]["Layers"]]
        try:
            cases = _cases(cli, first, third, layers)
            answer = diff.diff_images(first, third, files=True)
            times: dict[str, list[float]] = {name: [] for name, _, _ in cases}
            cpu: dict[str, list[float]] = {name: [] for name, _, _ in cases}
            for _ in range(repeat):
                for name, before, fn in cases:
                    if before:
                        before()
                    started, used = time.perf_counter(), _cpu()
                    result = fn()
                    times[name].append(time.perf_counter() - started)
                    cpu[name].append(_cpu() - used)
                    if isinstance(result, diff.ImageDiff) and result.files is not None:
                        assert list(result.files) == list(answer.files), f"{name} gave another answer"
            sizes = [cli.images.get(r.image_id).attrs["Size"] for r in (first, third)]
            note = (f"{title}: {repo}:first {format_size(sizes[0])}, :third {format_size(sizes[1])} "
                    f"(docker images sizes); {answer.files.summary()}")
            return title, [(name, times[name], cpu[name]) for name in times], note
        finally:
            if not keep:
                for r in (first, third):
                    cli.images.remove(r.image_id, force=True)
                export.forget(d for d in layers if d != layers[0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--engines", default="main,docker20",
                        help="main and/or releases with an optional store: docker20, docker26, docker28:containerd")
    parser.add_argument("--keep", action="store_true", help="keep the images (main engine only)")
    args = parser.parse_args()
    scratch = tempfile.mkdtemp(prefix="bench-diff-")
    os.environ["COURSE_WORKSPACE"] = scratch  # keep <repo>/workspace out of it
    try:
        results = [_measure(label, args.repeat, args.keep) for label in args.engines.split(",")]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"{args.repeat} rounds, each case once per round; seconds; cpu: this process's, median; "
          "ratio: the median over rounds of the case's time over the drained export's in the same round")
    print(f"{'engine':48} {'what':40} {'min':>6} {'median':>7} {'max':>6} {'cpu':>5} {'ratio':>6}")
    ok = True
    for title, rows, _ in results:
        floor = rows[0][1]
        for name, times, cpu in rows:
            ratio = statistics.median(t / f for t, f in zip(times, floor))
            print(f"{title:48} {name:40} {min(times):6.2f} {statistics.median(times):7.2f} {max(times):6.2f} "
                  f"{statistics.median(cpu):5.2f} {ratio:6.2f}")
            if name == LESSON:
                ok = ok and ratio <= TARGET
    for _, _, note in results:
        print(note)
    print("PASS" if ok else "FAIL", f"a lesson's file diff at most {TARGET} times the engine's export on every engine")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
