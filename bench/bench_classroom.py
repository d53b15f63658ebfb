"""How fast does a classroom come up, what does an idle learner cost, and how do learners share the cores?

Brings up a real classroom of three learners (its own folder and logins, so it
never meets a real class or the test's), and measures:

* the time from ``./course classroom up --learners 3`` to three servers that
  answer through the hub's proxy, each with an engine that answers and holds
  the base image (the software installed beforehand, not timed);
* the memory of an idle learner: their engine's processes (rootlesskit,
  slirp4netns, dockerd, containerd) and their Jupyter server, as PSS (shared
  pages split between the processes that share them);
* the wall time of notebook 060 under nbval for one learner alone, then for
  three at once, and the ratio;

then prints what that means for a class of 30 on a VM of a stated size.  It
always ends with ``classroom down --purge``.  Root on Linux; about five minutes.

Usage: ``sudo .venv/bin/python bench/bench_classroom.py`` from the repository root.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CLASSROOM_DIR = Path("/var/lib/dlc-classroom-bench")
PREFIX = "dlcb"
NAMES = [f"{PREFIX}{i}" for i in (1, 2, 3)]
NOTEBOOK = "notebooks/060-caching-dependencies.ipynb"
#: The VM the projection is for.
VM_CORES, VM_GIB = 16, 64
CLASS = 30

os.environ["COURSE_CLASSROOM_DIR"] = str(CLASSROOM_DIR)


def _course(*args: str) -> str:
    proc = subprocess.run([str(ROOT / "course"), "classroom", *args], cwd=ROOT, capture_output=True, text=True,
                          env={k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")})
    if proc.returncode != 0:
        raise SystemExit(f"classroom {' '.join(args)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return proc.stdout


def _pss(pid: int) -> int:
    """Proportional set size of a process, in bytes (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _memory(name: str) -> tuple[int, int]:
    """PSS of the learner's engine processes and of their Jupyter server (with its kernels, if any)."""
    from course_helpers.classroom.learners import lookup, processes_of

    engine = server = 0
    for pid in processes_of(lookup(name)):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"jupyterhub-singleuser" in cmd or b"ipykernel" in cmd:
            server += _pss(pid)
        else:
            engine += _pss(pid)
    return engine, server


def _server_env(name: str) -> dict[str, str]:
    from course_helpers.classroom.learners import lookup, server_environment

    env = server_environment(lookup(name))
    if env is None:
        raise SystemExit(f"no Jupyter server runs as {name}")
    return env


def _nbval(names: list[str]) -> float:
    """Run 060 under nbval as each learner, all at once, in their server's environment; wall seconds."""
    from course_helpers.classroom.learners import lookup

    start = time.perf_counter()
    procs = []
    for name in names:
        learner = lookup(name)
        procs.append(subprocess.Popen(
            [str(CLASSROOM_DIR / "venv/bin/python"), "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval",
             "--nbval-current-env", "--nbval-sanitize-with", str(CLASSROOM_DIR / "course/notebooks/sanitize.cfg"),
             NOTEBOOK],
            user=learner.uid, group=learner.gid, extra_groups=[], cwd=learner.course_dir, env=_server_env(name),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    for name, proc in zip(names, procs):
        out = proc.communicate()[0]
        if proc.returncode != 0:
            raise SystemExit(f"060 failed for {name}:\n{out[-2000:]}")
    return time.perf_counter() - start


def main() -> int:
    if os.geteuid() != 0:
        print("run it as root: it creates system users and their engines", file=sys.stderr)
        return 2
    from course_helpers.classroom import setup
    from course_helpers.classroom.hub import HubAPI
    from course_helpers.classroom.learners import disk_usage, lookup
    from course_helpers.classroom.state import load_secrets, load_settings, paths
    from course_helpers.engine.client import from_env
    from course_helpers.formatting import format_size

    where = paths()
    where.make()
    print("preparing the classroom's software (not timed) ...", flush=True)
    setup.ensure_packages(rootless=True, progress=lambda line: None)
    setup.ensure_venv(where, progress=lambda line: None)
    setup.ensure_proxy(where, progress=lambda line: None)
    port = 8790
    rows = []
    try:
        start = time.perf_counter()
        _course("up", "--learners", "3", "--prefix", PREFIX, "--port", str(port), "--disk-gb", "5")
        hub_ready = time.perf_counter() - start
        settings = load_settings(where)
        api = HubAPI(settings, load_secrets(where)["service_token"])
        for name in NAMES:
            api.start_server(name)
        for name in NAMES:
            api.wait_ready(name)
            assert api.through_proxy(name).status_code == 200
            cli = from_env(environment={"DOCKER_HOST": _server_env(name)["DOCKER_HOST"]})
            assert cli.images.get("python:3.11-slim-bookworm")
            cli.close()
        all_ready = time.perf_counter() - start
        rows.append(("`up --learners 3` until the hub answers", f"{hub_ready:.1f} s"))
        rows.append(("... until 3 servers answer with working engines", f"{all_ready:.1f} s"))

        time.sleep(10)  # let the fresh servers settle before measuring them idle
        memory = [_memory(name) for name in NAMES]
        engine_mb = sum(m[0] for m in memory) / len(memory) / 1e6
        server_mb = sum(m[1] for m in memory) / len(memory) / 1e6
        rows.append(("idle engine, per learner (PSS)", f"{engine_mb:.0f} MB"))
        rows.append(("idle Jupyter server, per learner (PSS)", f"{server_mb:.0f} MB"))

        alone = _nbval(NAMES[:1])
        together = _nbval(NAMES)
        ratio = together / alone
        rows.append(("060 under nbval, one learner alone", f"{alone:.1f} s"))
        rows.append(("060 under nbval, three learners at once (2 cores)", f"{together:.1f} s"))
        rows.append(("ratio three-at-once / alone", f"{ratio:.2f}"))
        used = [disk_usage(where, lookup(n))[0] for n in NAMES]
        rows.append(("engine disk used per learner after 060", format_size(int(sum(used) / len(used)))))
    finally:
        _course("down", "--purge")

    width = max(len(r[0]) for r in rows)
    print(f"\n{'what':<{width}}  figure")
    for what, figure in rows:
        print(f"{what:<{width}}  {figure}")
    cores = os.cpu_count() or 2
    # Core-seconds one learner's run needs, from the three-at-once run that kept every core busy.
    core_seconds = together * min(cores, 3) / 3
    idle_gb = CLASS * (engine_mb + server_mb) / 1e3
    print(f"\nA class of {CLASS} on a {VM_CORES}-core, {VM_GIB} GiB VM (an estimate from these figures):")
    print(f"  idle: {idle_gb:.1f} GB for {CLASS} engines and servers, leaving room for builds and kernels")
    for at_once in (CLASS, CLASS // 3):
        # A run is never faster than alone; beyond the cores, runs share them.
        wall = max(alone, at_once * core_seconds / VM_CORES)
        print(f"  {at_once} learners running 060 at the same moment: about {wall:.0f} s each "
              f"(alone: {alone:.0f} s; about {core_seconds:.0f} core-seconds per run)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
