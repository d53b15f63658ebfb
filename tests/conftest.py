"""Shared fixtures: the real engine, and cleanup of whatever this test session made."""
from __future__ import annotations

import uuid

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
