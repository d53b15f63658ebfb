"""Shared fixtures: the real engine, and cleanup of whatever this test session made."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def engine():
    """A client for the real engine; tests that need one skip with the reason if none answers."""
    from course_helpers.engine import try_client

    cli = try_client()
    if cli is None:
        pytest.skip("no Docker engine answers (run ./course setup first)")
    return cli


@pytest.fixture(scope="session", autouse=True)
def _remove_session_leftovers():
    yield
    from course_helpers.engine import try_client
    from course_helpers.config import LABEL_SESSION, SESSION_ID

    cli = try_client()
    if cli is None:
        return
    # Belt and braces: tests remove their own things; this catches a test that died midway.
    for c in cli.containers.list(all=True, filters={"label": f"{LABEL_SESSION}={SESSION_ID}"}):
        c.remove(force=True)
