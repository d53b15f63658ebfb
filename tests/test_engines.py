"""Every notebook on each other engine the course supports, run as a learner of that engine would.

The stored outputs are recorded on the default engine (Docker 28, buildx, the
containerd image store), where the quick tier compares every one of them. On
Docker 20.10 and on Docker 26 with overlay2, every notebook must run with no
error, and the cells tagged ``nbval-check-output`` (the facts that hold on every
engine) are still compared: conftest.py turns on ``--nbval-lax`` on an engine the
outputs are not from (notebooks/recorded-on.txt). Each engine is a private
one (its own socket, data root and bridge), started from Debian's packages,
with the base image imported from the kept root filesystem, and the release's
own docker client first on PATH, as on a machine where that engine is the one
installed. Podman runs them too, through its Docker-compatible service, with
Buildah as the builder.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.full

#: (release, image store): the engines besides the default one whose notebooks CI runs.
OTHER_ENGINES = [("docker20", "overlay2"), ("docker26", "overlay2")]


def notebook_run(env: dict[str, str], *args: str, timeout: int = 1800) -> subprocess.CompletedProcess[str]:
    """pytest over every notebook in a process of its own, with the whole environment ``env``."""
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "--rootdir", str(ROOT), *args,
                           str(ROOT / "notebooks")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("release,store", OTHER_ENGINES, ids=[f"{r}-{s}" for r, s in OTHER_ENGINES])
def test_every_notebook_runs_and_keeps_its_engine_independent_facts(release, store):
    if os.geteuid() != 0 or not shutil.which("iptables"):
        pytest.skip("another engine needs root and iptables (./course setup installs iptables)")
    from course_helpers.engine.base_image import ensure_base_image
    from course_helpers.engine.daemon import start_private_engine

    engine = start_private_engine(f"nb{release[6:]}", release=release, store=store, progress=None)
    try:
        cli = engine.client()
        ensure_base_image(progress=None, pull=False, cli=cli)
        proc = notebook_run(engine.process_env())  # conftest.py: lax, as the outputs are Docker 28's
        assert proc.returncode == 0, f"on {release} ({store}):\n" + "\n".join(proc.stdout.splitlines()[-60:])
        assert " passed" in proc.stdout.splitlines()[-1]
        assert (f"this engine is Docker {release[6:]}, classic store: comparing the cells tagged "
                "nbval-check-output only") in proc.stdout
        # The lessons ran on this engine, not on the default one.
        assert cli.images.list(name="flask-demo")
    finally:
        engine.stop(wipe=True)


@pytest.mark.podman
def test_every_notebook_runs_on_podman_and_keeps_its_engine_independent_facts():
    from course_helpers.config import BASE_IMAGE
    from course_helpers.engine.podman import PodmanService

    service = PodmanService(Path(f"/tmp/course-nb-podman-{uuid.uuid4().hex[:8]}"))  # a socket path has a limit
    try:
        service.start(progress=None)
    except Exception as exc:  # not installed and not installable here: the sentence says which
        pytest.skip(f"no Podman service: {exc}")
    try:
        service.load_image(BASE_IMAGE, progress=None)
        env = {**os.environ, "DOCKER_HOST": service.address, "CONTAINERS_CONF": str(service.conf)}
        proc = notebook_run(env)
        assert "this engine is Podman " in proc.stdout, proc.stdout[-2000:]
        assert proc.returncode == 0, "on Podman:\n" + "\n".join(proc.stdout.splitlines()[-60:])
        assert any("flask-demo" in t for img in service.client().images.list() for t in img.tags)
    finally:
        service.stop(remove_storage=True)
