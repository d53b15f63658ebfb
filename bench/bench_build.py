"""How much does build() add to a fully cached BuildKit build?

Runs, interleaved in one process, N fully cached ``build()`` calls and N bare
``docker build -q`` runs of the same context with the same docker CLI, and
prints the medians and their ratio (target: build() / bare <= 1.3).

Usage: ``python bench/bench_build.py [-n 15] [--json]`` from the repository root
(``--json``: one line of medians, for bench/bench_engines.py).
The context is a copy of sample_app with a marker file, built once before
timing; both images are tagged ``course-bench-<random>`` and removed at the end.
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from course_helpers.builder.build import build  # noqa: E402
from course_helpers.engine.cli import buildkit_client, describe_probes  # noqa: E402
from course_helpers.config import REPO_ROOT  # noqa: E402
from course_helpers.engine.client import client  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=15, help="repetitions of each (default 15)")
    parser.add_argument("--json", action="store_true", help="print one JSON line of medians")
    args = parser.parse_args()
    cli = buildkit_client()
    if cli is None:
        print(f"no BuildKit-capable docker client (tried: {describe_probes()}); nothing to compare")
        return 2
    sdk = client()
    name = f"course-bench-{uuid.uuid4().hex[:8]}"
    helper_tag, bare_tag = f"{name}:helper", f"{name}:bare"
    with tempfile.TemporaryDirectory() as tmp:
        ctx = Path(tmp) / "app"
        shutil.copytree(REPO_ROOT / "sample_app", ctx)
        (ctx / "bench-marker.txt").write_text(uuid.uuid4().hex + "\n")
        bare_cmd = cli.build_command() + ["-q", "-t", bare_tag, str(ctx)]
        env = cli.environment()
        try:
            build(ctx, helper_tag, builder="buildkit", progress=False, client=sdk)  # fill the cache
            subprocess.run(bare_cmd, env=env, check=True, capture_output=True)
            helper, bare = [], []
            for rep in range(args.n):
                order = ("helper", "bare") if rep % 2 == 0 else ("bare", "helper")  # no order bias
                for which in order:
                    t0 = time.perf_counter()
                    if which == "helper":
                        report = build(ctx, helper_tag, builder="buildkit", progress=False, client=sdk)
                        assert report.all_cached, report.text()
                        helper.append(time.perf_counter() - t0)
                    else:
                        subprocess.run(bare_cmd, env=env, check=True, capture_output=True)
                        bare.append(time.perf_counter() - t0)
        finally:
            for tag in (helper_tag, bare_tag):
                try:
                    sdk.images.remove(tag)
                except Exception:
                    pass
    mh, mb = statistics.median(helper), statistics.median(bare)
    if args.json:
        print(json.dumps({"helper": mh, "bare": mb, "client": f"{cli.version} {cli.via} {cli.progress}"}))
        return 0
    print(f"client: {cli.path} {cli.version} (BuildKit {cli.via}, progress {cli.progress}); n={args.n}, interleaved")
    print(f"{'':28}{'median':>9}{'min':>9}{'max':>9}")
    print(f"{'build() fully cached':28}{mh:>8.3f}s{min(helper):>8.3f}s{max(helper):>8.3f}s")
    print(f"{'docker build -q (bare)':28}{mb:>8.3f}s{min(bare):>8.3f}s{max(bare):>8.3f}s")
    ratio = mh / mb
    print(f"{'ratio build()/bare':28}{ratio:>8.2f}   (target <= 1.30: {'PASS' if ratio <= 1.3 else 'FAIL'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
