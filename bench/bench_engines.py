"""Every notebook, and a fully cached rebuild, on each engine the course supports, side by side in one run.

Engines: the default one (whatever answers here; after ``./course setup`` on a
bare machine, Docker 28 with the containerd store), and private engines started
from Debian's packages beside it: Docker 20.10 (overlay2), Docker 26 (overlay2)
and Docker 28 with overlay2, each with the base image imported from the kept root
filesystem and its own release's client first on PATH. ``--podman`` adds the
course's Podman service.

For each notebook, nbval runs on every engine in turn (interleaved, so all see
the same machine load): strictly on the default engine, ``--nbval-lax`` on the
others, as CI does. Then ``bench/bench_build.py`` measures a fully cached
``build()`` against a bare ``docker build -q`` on each engine, interleaved in
its own process. The table gives seconds per engine and the ratio to the
default engine. Private engines are stopped and wiped at the end.

Usage: ``.venv/bin/python bench/bench_engines.py [--podman] [--rebuilds 7] [--engines docker20 docker26]``
from the repository root (``eval "$(./course env)"`` first, for the course's client).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from course_helpers.config import BASE_IMAGE  # noqa: E402
from course_helpers.engine.base_image import ensure_base_image  # noqa: E402
from course_helpers.engine.daemon import start_private_engine  # noqa: E402

PRIVATE = [("docker20", "overlay2"), ("docker26", "overlay2"), ("docker28", "overlay2")]


def nbval(notebook: Path, env: dict[str, str], strict: bool, work: Path) -> tuple[float, bool]:
    """Wall-clock seconds of nbval on one notebook, and whether it passed."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", *([] if strict else ["--nbval-lax"]),
                           str(notebook.relative_to(ROOT))], cwd=ROOT, capture_output=True, text=True,
                          env={**env, "COURSE_WORKSPACE": str(work)})
    if proc.returncode != 0:  # keep what failed: the table only marks it
        log = Path(tempfile.gettempdir()) / f"bench-engines-{work.name.replace(' ', '-')}-{notebook.stem}.log"
        log.write_text(proc.stdout + proc.stderr)
        print(f"  {notebook.name} failed on {work.name}; its output: {log}", flush=True)
    return time.perf_counter() - start, proc.returncode == 0


def cached_rebuild(env: dict[str, str], n: int) -> dict:
    """bench_build.py's medians on the engine ``env`` names."""
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_build.py"), "-n", str(n), "--json"],
                          cwd=ROOT, capture_output=True, text=True, env=env)
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"error": (proc.stdout + proc.stderr).strip().splitlines()[-1:]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--podman", action="store_true", help="also the course's Podman service")
    parser.add_argument("--rebuilds", type=int, default=7, help="cached rebuilds per engine (default 7)")
    parser.add_argument("--engines", nargs="*", default=[r for r, _ in PRIVATE],
                        help="private engines besides the default one (default: docker20 docker26 docker28)")
    args = parser.parse_args()
    say = lambda line: print("  " + line, flush=True)  # noqa: E731
    engines: dict[str, dict[str, str]] = {"default": dict(os.environ)}  # each: a whole environment
    started, service = [], None
    try:
        for release, store in [p for p in PRIVATE if p[0] in args.engines]:
            engine = start_private_engine(f"be{release[6:]}{store[0]}", release=release, store=store, progress=say)
            started.append(engine)
            ensure_base_image(progress=say, pull=False, cli=engine.client())
            engines[f"{release} {store}"] = engine.process_env()
        if args.podman:
            from course_helpers.engine.podman import PodmanService

            service = PodmanService(Path(tempfile.mkdtemp(prefix="bench-podman-", dir="/tmp"))).start(say)
            service.load_image(BASE_IMAGE, say)
            engines["podman"] = {**os.environ, "DOCKER_HOST": service.address, "CONTAINERS_CONF": str(service.conf)}
        notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
        seconds = {name: 0.0 for name in engines}
        failed: dict[str, list[str]] = {name: [] for name in engines}
        with tempfile.TemporaryDirectory() as tmp:
            for notebook in notebooks:
                for name, env in engines.items():
                    took, ok = nbval(notebook, env, name == "default", Path(tmp) / name)
                    seconds[name] += took
                    if not ok:
                        failed[name].append(notebook.name[:3])
                    say(f"{notebook.name} on {name}: {took:.1f} s{'' if ok else ' FAIL'}")
        # Podman builds through Buildah, which bench_build.py's bare `docker build` cannot drive.
        rebuild = {name: cached_rebuild(env, args.rebuilds) for name, env in engines.items() if name != "podman"}
    finally:
        for engine in started:
            engine.stop(wipe=True)
        if service is not None:
            service.stop(remove_storage=True)
    print(f"\n{len(notebooks)} notebooks under nbval (strict on the default engine, lax elsewhere); "
          f"fully cached rebuild, median of {args.rebuilds}, interleaved with a bare `docker build -q`")
    print(f"{'engine':<20}{'notebooks s':>12}{'ratio':>7}{'failed':>10}{'build() s':>11}{'bare s':>8}{'ratio':>7}")
    for name in engines:
        r = rebuild.get(name, {"error": "not measured (Buildah)"})
        ratio = seconds[name] / seconds["default"]
        tail = (f"{r['helper']:>11.3f}{r['bare']:>8.3f}{r['helper'] / r['bare']:>7.2f}" if "helper" in r
                else f"  {r.get('error')}")
        print(f"{name:<20}{seconds[name]:>12.1f}{ratio:>7.2f}{','.join(failed[name]) or '-':>10}{tail}")
    return 1 if any(failed.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
