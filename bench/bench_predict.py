"""predict() on a 10,000-file, 50 MB context: cold (every file hashed) and unchanged (hash cache hit).

Targets (issue 9): under 0.5 s cold, under 0.15 s when nothing changed since the last call.
Run: python bench/bench_predict.py [--repeat N]  (needs no engine)
Each figure is the median of N runs; "cold" empties the hash cache (memory and disk) before each
run, so every file is read and hashed again (from the OS page cache, as on a second look).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

FILES, TOTAL = 10_000, 50_000_000
COLD, UNCHANGED = 0.5, 0.15


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["COURSE_STATE_DIR"] = str(Path(tmp) / "state")  # a hash cache of its own, not the user's
        from course_helpers.builder.report import BuildReport, Step
        from course_helpers.cache.predict import predict
        from course_helpers.builder.records import record_context_snapshot
        from course_helpers.dockerfile.context import forget_hashes

        ctx = Path(tmp) / "ctx"
        size = TOTAL // FILES
        for i in range(FILES):
            d = ctx / f"pkg{i % 100:02d}"
            d.mkdir(parents=True, exist_ok=True)
            (d / f"m{i:05d}.py").write_bytes(os.urandom(size))
        (ctx / "Dockerfile").write_text("FROM python:3.11-slim-bookworm\nWORKDIR /app\nCOPY . .\nRUN ls\n")
        (ctx / ".dockerignore").write_text("**/*.pyc\n")
        steps = [Step(1, "0", "FROM python:3.11-slim-bookworm", True), Step(2, "0", "WORKDIR /app", False),
                 Step(3, "0", "COPY . .", False), Step(4, "0", "RUN ls", False)]
        record_report = BuildReport("sha256:bench", ["bench:1"], "buildkit", 0.0, "", steps, context=str(ctx))

        cpu: dict[str, list[float]] = {}

        def timed(before=None, label: str = "") -> float:
            if before:
                before()
            t0, c0 = time.perf_counter(), time.process_time()
            predict(ctx, builder="buildkit")
            cpu.setdefault(label, []).append(time.process_time() - c0)
            return time.perf_counter() - t0

        cold = [timed(forget_hashes, "cold") for _ in range(args.repeat)]
        record_context_snapshot(record_report)
        unchanged = [timed(None, "unchanged") for _ in range(args.repeat)]
        # A new process: the in-memory cache is gone, the on-disk one remains.
        reload = [timed(lambda: forget_hashes(on_disk=False), "reload") for _ in range(args.repeat)]
        assert all(s.cached for s in predict(ctx, builder="buildkit").steps)
        rows = [("cold (hash everything)", "cold", cold, COLD),
                ("unchanged, same process", "unchanged", unchanged, UNCHANGED),
                ("unchanged, hash cache read from disk", "reload", reload, None)]
        print(f"context: {FILES} files, {TOTAL / 1e6:.0f} MB; median of {args.repeat} runs "
              "(CPU: this process's own time, less sensitive to a busy machine)")
        ok = True
        for label, key, times, target in rows:
            med = statistics.median(times)
            verdict = "" if target is None else f"target < {target} s  {'PASS' if med < target else 'FAIL'}"
            ok = ok and (target is None or med < target)
            print(f"predict() {label:38} {med:.3f} s (min {min(times):.3f}, CPU {statistics.median(cpu[key]):.3f})"
                  f"   {verdict}")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
