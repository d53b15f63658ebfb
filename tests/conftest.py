"""Shared fixtures: the real engine, private engines of other releases, and cleanup of what this session made."""
from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass
from typing import Any

import pytest


@pytest.fixture(scope="session")
def engine():
    """A client for the real engine; tests that need one skip with the reason if none answers."""
    from course_helpers.engine.client import try_client

    cli = try_client()
    if cli is None:
        pytest.skip("no Docker engine answers (run ./course setup first)")
    return cli


@pytest.fixture(scope="session")
def base(engine):
    """The course's base image; tests that build skip, with the reason, when it is missing."""
    from docker.errors import ImageNotFound
    from course_helpers.config import BASE_IMAGE

    try:
        return engine.images.get(BASE_IMAGE)
    except ImageNotFound:
        pytest.skip(f"base image {BASE_IMAGE} missing (run ./course setup)")


@dataclass
class CourseEngine:
    """The engine a test module's helpers talk to: the main one, or a private engine of another release.

    Attributes:
        label: ``main``, or the release and store (``docker20-overlay2``).
        client: a docker-py client for it.
        containerd: whether it uses the containerd image store.
    """

    label: str
    client: Any
    containerd: bool


def _containerd_store(cli: Any) -> bool:
    return any(pair[1] == "io.containerd.snapshotter.v1" for pair in cli.info().get("DriverStatus") or [])


@pytest.fixture(scope="session")
def private_engines():
    """Private engines this session started, by release and store; each stopped, its data wiped, at the end."""
    started: dict[str, Any] = {}
    yield started
    for eng in started.values():
        eng.stop(wipe=True)


def _private_engine(started: dict[str, Any], release: str, store: str) -> Any:
    from course_helpers.engine.base_image import ensure_base_image
    from course_helpers.engine.daemon import start_private_engine
    from course_helpers.errors import SetupError

    key = f"{release}-{store}"
    if key not in started:
        if os.geteuid() != 0 or not shutil.which("iptables"):
            pytest.skip("a private engine needs root and iptables (./course setup installs it), and this "
                        "machine lacks them")
        name = f"ex{release[-2:]}{uuid.uuid4().hex[:4]}"  # 8 characters: the bridge name's limit
        try:
            started[key] = start_private_engine(name, release=release, store=store, progress=None)
            ensure_base_image(cli=started[key].client(), pull=False, progress=None)
        except SetupError as exc:
            pytest.skip(f"no {release} engine ({store} store) can run here: {exc}")
    return started[key]


@pytest.fixture(scope="module", params=["main", pytest.param(("docker20", "overlay2"), marks=pytest.mark.full),
                                        pytest.param(("docker26", "overlay2"), marks=pytest.mark.full)],
                ids=["main", "docker20", "docker26"])
def course_engine(request, engine, base, private_engines):
    """The engine the course's helpers use for this module: the main one, then (full tier) Docker 20.10 and 26.

    For a private engine, ``DOCKER_HOST`` names it and its release's docker client comes first on PATH
    (with its buildx), as a learner of that release has, until the module ends.
    """
    if request.param == "main":
        yield CourseEngine("main", engine, _containerd_store(engine))
        return
    release, store = request.param
    private = _private_engine(private_engines, release, store)
    with private.in_use():
        cli = private.client()
        yield CourseEngine(f"{release}-{store}", cli, _containerd_store(cli))


@pytest.fixture(scope="module")
def repo(engine, base, request):
    """A repository name of the test module's own (``ct-<module>-<random>``); all its tags go at the end."""
    name = f"ct-{request.module.__name__.rsplit('_', 1)[-1]}-{uuid.uuid4().hex[:8]}"
    yield name
    for img in engine.images.list(name=name):
        engine.images.remove(img.id, force=True)


@pytest.fixture(scope="session", autouse=True)
def _scratch_workspace(tmp_path_factory):
    """Workspaces made by tests go to a temporary folder, not <repo>/workspace where learners look."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("COURSE_WORKSPACE", str(tmp_path_factory.mktemp("ws")))
        yield


@pytest.fixture(scope="session", autouse=True)
def _remove_session_leftovers():
    yield
    from course_helpers.engine.client import try_client
    from course_helpers.config import LABEL_SESSION, SESSION_ID

    cli = try_client()
    if cli is None:
        return
    # Belt and braces: tests remove their own things; this catches a test that died midway.
    for c in cli.containers.list(all=True, filters={"label": f"{LABEL_SESSION}={SESSION_ID}"}):
        c.remove(force=True)
    # What this session's course builds made goes too (the images its records name).
    from course_helpers.engine.housekeeping import cleanup
    cleanup()
