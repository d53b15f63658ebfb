"""Time diff_images on two ~200 MB images (flask-demo first and third on the 191 MB base).

Run: python bench/bench_diff.py [--repeat N] [--keep]
Builds two images of its own (BuildKit), times diff_images(files=False) and
(files=True), the latter both as the first diff on a machine (no layer scan
kept) and with the base layer's scan kept from an earlier diff, which is the
usual case.  Side by side on the same export: the engine's export alone, the
export read with ``tarfile`` in stream mode (what diff.py does, nothing kept)
and read with the hand-written reader diff.py had before
(bench/old_tar_reader.py).  Runs are interleaved so the machine's noise falls
on all alike.  Checks that both readers see the same files, and removes its
images.  Target: files=True under 3 s.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

sys.path.insert(0, str(Path(__file__).resolve().parent))

import old_tar_reader  # noqa: E402
from course_helpers.builder.build import build  # noqa: E402
from course_helpers.config import state_dir  # noqa: E402
from course_helpers.engine.client import client  # noqa: E402
from course_helpers.formatting import format_size  # noqa: E402
from course_helpers.layers import diff  # noqa: E402
from course_helpers.lesson.workspace import edit, workspace  # noqa: E402

THIRD = """FROM python:3.11-slim-bookworm
WORKDIR /usr/src/app
COPY requirements.txt ./
RUN pip3 install -r requirements.txt
COPY . .
CMD ["python3", "-m", "flask", "run", "--host=0.0.0.0"]
"""
TARGET = 3.0


def _export_seconds(cli, ids: list[str]) -> float:
    """The engine alone: stream its export of both images to nowhere."""
    api = cli.api
    t = time.perf_counter()
    res = api._get(api._url("/images/get"), params={"names": ids}, stream=True)
    for _ in res.raw.stream(1 << 20, decode_content=False):
        pass
    return time.perf_counter() - t


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the two images")
    args = parser.parse_args()
    state = tempfile.mkdtemp(prefix="bench-diff-state-")
    os.environ["COURSE_STATE_DIR"] = state  # kept layer scans of its own, not the user's
    cli = client()
    scratch = tempfile.mkdtemp(prefix="bench-diff-")
    os.environ["COURSE_WORKSPACE"] = scratch  # keep <repo>/workspace out of it
    kept = state_dir() / "layer-scans"

    def forget_scans() -> None:
        shutil.rmtree(kept, ignore_errors=True)

    repo = f"bench-diff-{uuid.uuid4().hex[:6]}"
    first = build(workspace(f"{repo}-first"), f"{repo}:first", builder="buildkit", progress=False)
    ws = workspace(f"{repo}-third")
    (ws / "Dockerfile").write_text(THIRD)
    edit(ws / "app.py", "Hello world!", "Hello universe!")
    third = build(ws, f"{repo}:third", builder="buildkit", progress=False)
    try:
        sizes = [cli.images.get(r.image_id).attrs["Size"] for r in (first, third)]
        ids = [first.image_id, third.image_id]
        cases = [
            ("diff_images(files=False)", None, lambda: diff.diff_images(first, third)),
            ("diff_images(files=True), base scan kept", None, lambda: diff.diff_images(first, third, files=True)),
            ("diff_images(files=True), first on machine", forget_scans,
             lambda: diff.diff_images(first, third, files=True)),
            ("engine export only (both, one stream)", None, lambda: _export_seconds(cli, ids)),
            ("export + read: tarfile, nothing kept", forget_scans, lambda: diff._export_scans(cli, ids)),
            ("export + read: old hand-written reader", None, lambda: old_tar_reader.export_scans(cli, ids)),
        ]
        times: dict[str, list[float]] = {label: [] for label, _, _ in cases}
        diff.diff_images(first, third, files=True)  # keeps the base layer's scan for the "kept" case
        for _ in range(args.repeat):
            for label, before, fn in cases:  # interleaved: each round times every case once
                if before:
                    before()
                t = time.perf_counter()
                fn()
                times[label].append(time.perf_counter() - t)
        rows = [(label, min(ts), statistics.median(ts), max(ts)) for label, ts in times.items()]
        forget_scans()
        new_scans, new_paths = diff._export_scans(cli, ids)
        kept_scans, _ = diff._export_scans(cli, ids)
        old_scans, old_paths = old_tar_reader.export_scans(cli, ids)
        same = new_paths == old_paths and new_scans.keys() == old_scans.keys() and all(
            new_scans[k].items == old_scans[k].items == kept_scans[k].items for k in new_scans)
        d = diff.diff_images(first, third, files=True)
        print(f"images: {repo}:first {format_size(sizes[0])}, {repo}:third {format_size(sizes[1])}; "
              f"{args.repeat} runs each; target files=True < {TARGET:.0f} s")
        print(f"{'what':40} {'min s':>7} {'median s':>9} {'max s':>7}")
        for label, lo, med, hi in rows:
            print(f"{label:40} {lo:7.2f} {med:9.2f} {hi:7.2f}")
        print(f"tarfile / old reader, median: {rows[4][2] / rows[5][2]:.2f}; "
              f"both readers (and the kept scans) see the same entries: {'yes' if same else 'NO'}")
        print(f"result: shared {len(d.shared)}, only a {len(d.only_a)}, only b {len(d.only_b)}; "
              f"{d.files.summary()}; layers parsed beyond the shared prefix: {d.files.layers_read}")
        ok = rows[1][2] < TARGET and same
        print("PASS" if ok else "FAIL", f"median files=True {rows[1][2]:.2f} s vs target {TARGET:.0f} s "
              f"(first on a machine: {rows[2][2]:.2f} s)")
        return 0 if ok else 1
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.rmtree(state, ignore_errors=True)
        if not args.keep:
            for r in (first, third):
                cli.images.remove(r.image_id, force=True)


if __name__ == "__main__":
    sys.exit(main())
