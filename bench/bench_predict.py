"""predict() on a 10,000-file, 50 MB context: cold (every file hashed) and unchanged (hash cache hit).

Targets (issue 5): under 2 s cold, under 0.3 s when nothing changed since the last call.
Run: python bench/bench_predict.py  (needs no engine)
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

FILES, TOTAL = 10_000, 50_000_000


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["COURSE_STATE_DIR"] = str(Path(tmp) / "state")  # a cold hash cache, not the user's
        from course_helpers.cache.predict import predict
        from course_helpers.builder.report import BuildReport, Step
        from course_helpers.dockerfile.context import _CACHE, record_context_snapshot

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

        t0 = time.perf_counter()
        predict(ctx, builder="buildkit")
        cold = time.perf_counter() - t0
        record_context_snapshot(record_report)
        t0 = time.perf_counter()
        result = predict(ctx, builder="buildkit")
        warm = time.perf_counter() - t0
        # A new process: the in-memory cache is gone, the on-disk one remains.
        _CACHE.loaded, _CACHE.entries = False, {}
        t0 = time.perf_counter()
        predict(ctx, builder="buildkit")
        reload = time.perf_counter() - t0
        assert all(s.cached for s in result.steps)
        print(f"context: {FILES} files, {TOTAL / 1e6:.0f} MB")
        print(f"predict() cold (hash everything): {cold:.3f} s   target < 2 s    {'PASS' if cold < 2 else 'FAIL'}")
        print(f"predict() unchanged, same process: {warm:.3f} s   target < 0.3 s  {'PASS' if warm < 0.3 else 'FAIL'}")
        print(f"predict() unchanged, hash cache read from disk: {reload:.3f} s")


if __name__ == "__main__":
    main()
