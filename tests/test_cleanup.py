"""cleanup.py on the real engine: only labelled things go; fresh_start makes BuildKit miss again."""
from __future__ import annotations

import io
import subprocess
import time
import uuid

import pytest
from docker.errors import ImageNotFound, NotFound

import importlib

# The package exports a function named cleanup, which hides the module of that name.
cleanup_mod = importlib.import_module("course_helpers.cleanup")
import course_helpers.config as config
from course_helpers.config import BASE_IMAGE, LABEL_MANAGED, LABEL_ROLE, LABEL_SESSION

pytestmark = pytest.mark.usefixtures("engine")



@pytest.fixture
def own_session(monkeypatch):
    """A session id of this test's own, so cleanup() cannot touch what other tests of this run made."""
    sid = "ct" + uuid.uuid4().hex[:10]
    monkeypatch.setattr(config, "SESSION_ID", sid)
    monkeypatch.setattr(cleanup_mod, "SESSION_ID", sid)
    return sid


@pytest.fixture
def private_state(tmp_path, monkeypatch):
    """Build windows recorded in a private file, so other sessions' windows are not pruned here."""
    monkeypatch.setenv("COURSE_STATE_DIR", str(tmp_path / "state"))
    return tmp_path


def _exists(getter, ident) -> bool:
    try:
        getter(ident)
        return True
    except (NotFound, ImageNotFound):
        return False


def _dockerfile_image(engine, text: str, labels: dict | None = None):
    return engine.images.build(fileobj=io.BytesIO(text.encode()), labels=labels or {}, rm=True, forcerm=True)[0]


def test_cleanup_removes_only_this_sessions_things(engine, base, own_session):
    from course_helpers.cleanup import cleanup

    marker = uuid.uuid4().hex
    labels = config.session_labels()
    mine = _dockerfile_image(engine, f"FROM {BASE_IMAGE}\nLABEL marker={marker}-mine\n", labels)
    # Built FROM the base without the helpers, as a learner would: no course label to match.
    theirs = _dockerfile_image(engine, f"FROM {BASE_IMAGE}\nLABEL marker={marker}-theirs\n")
    assert LABEL_MANAGED not in theirs.labels and LABEL_SESSION not in theirs.labels
    my_container = engine.containers.create(mine.id, command=["true"])  # inherits the session label
    their_container = engine.containers.create(BASE_IMAGE, command=["true"])
    try:
        report = cleanup()
        assert not _exists(engine.images.get, mine.id)
        assert not _exists(engine.containers.get, my_container.id)
        assert _exists(engine.images.get, theirs.id)
        assert _exists(engine.containers.get, their_container.id)
        assert engine.images.get(BASE_IMAGE).id == base.id
        assert report.containers == [my_container.name] and len(report.images) == 1
        assert "removed 1 container(s) and 1 image(s)" in str(report)
    finally:
        their_container.remove(force=True)
        engine.images.remove(theirs.id, force=True)
        if _exists(engine.images.get, mine.id):
            engine.images.remove(mine.id, force=True)


def test_base_is_protected_but_children_are_not(engine, base, own_session):
    from course_helpers.cleanup import _protected_ids

    child = _dockerfile_image(engine, f"FROM {BASE_IMAGE}\nLABEL marker={uuid.uuid4().hex}\n",
                              config.session_labels())
    try:
        assert LABEL_ROLE not in child.labels  # the base marks nothing that children would inherit
        protected = _protected_ids(engine)
        assert base.id in protected and child.id not in protected
    finally:
        engine.images.remove(child.id, force=True)


def _cache_ids(engine) -> set[str]:
    return {r["ID"] for r in engine.api.df().get("BuildCache") or []}


def test_fresh_start_makes_buildkit_miss_again(engine, base, own_session, private_state):
    from course_helpers.build import build
    from course_helpers.cleanup import fresh_start
    from course_helpers.workspace import workspace

    repo = f"ct-fresh-{uuid.uuid4().hex[:8]}"
    # An unrelated cache entry, built outside the course's helpers (no window recorded).
    other = private_state / "other"
    other.mkdir()
    (other / "f").write_text(uuid.uuid4().hex)
    (other / "Dockerfile").write_text(f"FROM {BASE_IMAGE}\nCOPY f /f\nRUN cat /f > /g\n")
    before = _cache_ids(engine)
    subprocess.run(["/usr/bin/docker", "build", "-q", "-t", f"{repo}-other:x", str(other)], check=True,
                   env={"DOCKER_BUILDKIT": "1", "PATH": "/usr/bin:/bin"}, capture_output=True)
    engine.images.remove(f"{repo}-other:x")  # unshared now: prunable, so its survival means something
    records = {r["ID"]: r for r in engine.api.df().get("BuildCache") or []}
    # Only this build's RUN record: other builds on a shared engine may make and prune records meanwhile.
    ours = set(records) - before
    unrelated = {rid for rid in ours if records[rid]["Description"] == "mount / from exec /bin/sh -c cat /f > /g"}
    assert unrelated, "the unrelated build should have made cache records"
    time.sleep(2 * cleanup_mod.MARGIN + 0.5)  # keep it outside the course build's window and margin

    ws = workspace(repo)
    (ws / "marker.txt").write_text(uuid.uuid4().hex)  # new content: a cold first build
    first = build(ws, f"{repo}:first", builder="buildkit", progress=False)
    run_step = next(s for s in first.steps if s.instruction.startswith("RUN"))
    assert not run_step.cached
    again = build(ws, f"{repo}:first", builder="buildkit", progress=False)
    assert next(s for s in again.steps if s.instruction.startswith("RUN")).cached
    try:
        report = fresh_start(repo)
        assert f"{repo}:first" in report.images and report.cache_records > 0
        assert "untouched" in str(report)
        assert unrelated <= _cache_ids(engine), f"an unrelated cache record was pruned: {unrelated - _cache_ids(engine)}"
        rebuilt = build(ws, f"{repo}:first", builder="buildkit", progress=False)
        assert not next(s for s in rebuilt.steps if s.instruction.startswith("RUN")).cached
    finally:
        # The rebuild made records in this test's private windows: prune them, or they outlive the test.
        fresh_start(repo, quiet=True)
        for img in engine.images.list(name=repo):
            engine.images.remove(img.id, force=True)
        # The unrelated build's records are ours too: leave no cache behind (children before parents).
        for _ in range(3):  # a parent goes only once its children have: a few passes do it
            for rid in {r["ID"] for r in engine.api.df().get("BuildCache") or []} & ours:
                cleanup_mod._prune_one(engine, rid)


def test_fresh_start_without_windows_prunes_nothing(engine, base, own_session, private_state, monkeypatch):
    from course_helpers.cleanup import fresh_start

    calls = []
    monkeypatch.setattr(cleanup_mod, "_prune_one", lambda cli, rid: calls.append(rid) or 0)
    report = fresh_start(f"ct-none-{uuid.uuid4().hex[:6]}", quiet=True)
    assert report.images == [] and report.cache_records == 0 and calls == []
