"""Ownership, cleanup, fresh_start, claims and the reaper, on the real engine.

The rule under test: the course removes only what it made (an image id its
builds recorded, a container it created), never what a learner made from it,
and two notebooks on one engine take turns instead of colliding.
"""
from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest
from docker.errors import ImageNotFound, NotFound

from course_helpers.config import BASE_IMAGE, LABEL_CONTAINER, LABEL_SESSION

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.builds, pytest.mark.usefixtures("engine")]


@pytest.fixture
def own_session(monkeypatch, tmp_path):
    """A session id and state folder of this test's own, as a separate kernel would have."""
    import course_helpers.config as config
    import course_helpers.engine.housekeeping as housekeeping
    import course_helpers.engine.ownership as ownership

    sid = "ct" + uuid.uuid4().hex[:10]
    for module in (config, housekeeping, ownership):
        monkeypatch.setattr(module, "SESSION_ID", sid)
    monkeypatch.setenv("COURSE_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("COURSE_SESSION_ID", sid)
    return sid


def _exists(getter, ident) -> bool:
    try:
        getter(ident)
        return True
    except (NotFound, ImageNotFound):
        return False


def _hand_build(engine, text: str, tag: str):
    """An image built as a learner would, with the SDK (no course helper, no record)."""
    return engine.images.build(fileobj=io.BytesIO(text.encode()), tag=tag, rm=True, forcerm=True)[0]


def _course_image(tmp_path: Path, tag: str):
    from course_helpers.builder.build import build

    ctx = tmp_path / tag.replace(":", "_")
    ctx.mkdir()
    (ctx / "f.txt").write_text(uuid.uuid4().hex)
    (ctx / "Dockerfile").write_text(f"FROM {BASE_IMAGE}\nCOPY f.txt /f.txt\nRUN cat /f.txt > /g.txt\n")
    return build(ctx, tag, builder="buildkit", progress=False), ctx


def _python(code: str, **env: str) -> subprocess.Popen:
    """A second Python process using the course, as a second kernel would."""
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env={**os.environ, **env})


def _wait_line(proc: subprocess.Popen, prefix: str, seconds: float = 60) -> str:
    deadline = time.monotonic() + seconds
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith(prefix):
            return line[len(prefix):].strip()
        if not line and proc.poll() is not None:
            break
    raise AssertionError(f"the child never printed {prefix!r} (exit {proc.poll()})")


def test_cleanup_removes_what_the_course_made_and_nothing_of_the_learners(engine, base, own_session, tmp_path):
    from course_helpers.config import owner_labels
    from course_helpers.engine.housekeeping import cleanup

    repo = f"ct-own-{uuid.uuid4().hex[:8]}"
    report, _ = _course_image(tmp_path, f"{repo}:course")
    # The learner's: an image FROM the course image (it inherits every course label) and a container from it.
    derived = _hand_build(engine, f"FROM {repo}:course\nRUN echo mine > /mine.txt\n", f"{repo}-mine:1")
    assert derived.labels.get(LABEL_SESSION) == own_session, "the trap: a derived image carries the course's labels"
    by_hand = engine.containers.run(f"{repo}:course", ["sleep", "300"], detach=True)
    ours = engine.containers.create(BASE_IMAGE, ["true"], labels=owner_labels("run_app"))
    try:
        result = cleanup()
        assert not _exists(engine.containers.get, ours.id)
        assert _exists(engine.images.get, derived.id) and engine.containers.get(by_hand.id).status == "running"
        # The course image stays while the learner's container and image need it, and the report says why.
        assert _exists(engine.images.get, report.image_id)
        assert any(f"{repo}:course" in p and by_hand.name in p for p in result.problems), result.problems
        by_hand.remove(force=True)
        engine.images.remove(derived.id)
        result = cleanup()
        assert not _exists(engine.images.get, report.image_id)
        assert f"{repo}:course" in result.images
    finally:
        for thing in (by_hand, ours):
            try:
                thing.remove(force=True)
            except NotFound:
                pass
        for img in engine.images.list(name=repo) + engine.images.list(name=f"{repo}-mine"):
            engine.images.remove(img.id, force=True)


def test_course_clean_lists_what_it_left_and_why(engine, base, own_session, tmp_path):
    repo = f"ct-clean-{uuid.uuid4().hex[:8]}"
    report, _ = _course_image(tmp_path, f"{repo}:course")
    derived = _hand_build(engine, f"FROM {repo}:course\nLABEL mine=1\n", f"{repo}-mine:1")
    by_hand = engine.containers.create(f"{repo}-mine:1", ["true"])
    try:
        proc = subprocess.run([sys.executable, "-m", "course_helpers", "clean"], cwd=ROOT, text=True,
                              capture_output=True, timeout=300, env=dict(os.environ))
        assert proc.returncode == 0, proc.stderr
        assert f"image {repo}-mine:1 (built by you, FROM a course image)" in proc.stdout
        assert f"container {by_hand.name} (started by you)" in proc.stdout
        assert _exists(engine.images.get, derived.id) and _exists(engine.containers.get, by_hand.id)
        assert "Traceback" not in proc.stdout + proc.stderr
    finally:
        by_hand.remove(force=True)
        for img in engine.images.list(name=f"{repo}-mine") + engine.images.list(name=repo):
            engine.images.remove(img.id, force=True)


def test_fresh_start_touches_only_its_own_repository(engine, base, own_session, tmp_path):
    from course_helpers.builder.build import build
    from course_helpers.engine import claims
    from course_helpers.engine.client import image_store
    from course_helpers.engine.housekeeping import MARGIN, fresh_start

    a, b = f"ct-fa-{uuid.uuid4().hex[:6]}", f"ct-fb-{uuid.uuid4().hex[:6]}"
    rep_a, ctx_a = _course_image(tmp_path, f"{a}:first")
    time.sleep(2 * MARGIN + 0.5)  # records made within seconds of another lesson's build are both's: kept
    rep_b, ctx_b = _course_image(tmp_path, f"{b}:first")
    derived = _hand_build(engine, f"FROM {a}:first\nLABEL mine=1\n", f"{a}-mine:1")
    by_hand = engine.containers.create(f"{a}:first", ["true"])
    try:
        report = fresh_start(a, quiet=True)
        # The image stays while the learner's container uses it.
        assert report.images == [] and any(f"{a}:first" in x for x in report.left), report
        pruned = report.cache_records
        by_hand.remove()
        report = fresh_start(a, quiet=True)
        assert f"{a}:first" in report.images, report
        assert _exists(engine.images.get, derived.id), "an image built FROM a lesson's image was removed"
        # a's unused cache goes: on the classic store at once; on the containerd store an image holds
        # its steps' records, the learner's derived one too, so they go once no image needs them.
        engine.images.remove(derived.id)
        last = fresh_start(a, quiet=True)
        pruned += report.cache_records + last.cache_records
        if image_store(engine) == "containerd":
            # Pruning records there makes b's rebuild below miss: the cache stays, and the report says so.
            assert pruned == 0 and last.cache_kept and "the build cache stays" in str(last), last
        else:
            assert pruned > 0, report
        assert engine.images.get(f"{b}:first").id == rep_b.image_id
        # b's image and cache are untouched: a rebuild of b is all cached.
        assert build(ctx_b, f"{b}:first", builder="buildkit", progress=False).all_cached
    finally:
        claims.release()
        try:
            by_hand.remove(force=True)
        except NotFound:
            pass
        for repo in (a, b, f"{a}-mine"):
            for img in engine.images.list(name=repo):
                engine.images.remove(img.id, force=True)


def test_a_second_notebook_waits_or_says_who_holds_the_lesson(engine, base, own_session):
    from course_helpers.engine import claims
    from course_helpers.engine.housekeeping import fresh_start
    from course_helpers.errors import LessonBusy

    repo = f"ct-claim-{uuid.uuid4().hex[:6]}"
    child = _python(f"""
        from course_helpers import fresh_start
        fresh_start({repo!r}, quiet=True)
        print("HELD", flush=True)
        import time; time.sleep(600)
        """, JPY_SESSION_NAME="/x/050-cache-busting.ipynb", COURSE_SESSION_ID="ct-child")
    try:
        _wait_line(child, "HELD")
        with pytest.raises(LessonBusy, match=r"050-cache-busting\.ipynb .*is using " + repo):
            fresh_start(repo, wait=False, quiet=True)
        # Killed (as a kernel can be): the claim ends with its socket and the waiting notebook goes on.
        child.send_signal(signal.SIGKILL)
        start = time.monotonic()
        fresh_start(repo, quiet=True)
        assert time.monotonic() - start < 15
        assert claims.held() == [repo]
    finally:
        child.kill()
        child.wait()
        claims.release()


def test_a_claim_the_engine_cannot_start_is_named_as_the_engines_fault(engine, own_session, monkeypatch):
    # An image with no `cat`: the engine makes the claim container but cannot start it.  Podman's
    # crun did the same on hybrid cgroups, and its attach answered 409, the code of a taken name,
    # so acquire() once waited for ever for a claim nobody held.
    from course_helpers.engine import claims
    from course_helpers.errors import SetupError

    empty = engine.images.build(fileobj=io.BytesIO(f"FROM scratch\nLABEL {LABEL_SESSION}={own_session}\n".encode()),
                                rm=True)[0]
    repo = f"ct-nostart-{uuid.uuid4().hex[:6]}"
    monkeypatch.setattr(claims, "BASE_IMAGE", empty.id)
    try:
        start = time.monotonic()
        with pytest.raises(SetupError, match=r"(?s)^The engine at .+ cannot start a container \(.+\): no lesson "
                                             r"can run until it can; \./course preflight checks it\.$"):
            claims.acquire(repo, progress=None)
        assert time.monotonic() - start < 30
        assert claims.held() == []
        assert engine.containers.list(all=True, filters={"name": claims.claim_name(repo)}) == []
    finally:
        engine.images.remove(empty.id, force=True)


def test_a_claim_being_started_is_waited_for_and_an_old_unstarted_one_taken_over(engine, base, own_session):
    # Two notebooks at the same moment: the second must not remove the first's claim between its
    # create and its start, which made the first fail with "No such container".
    from course_helpers.config import LABEL_CLAIM, owner_labels
    from course_helpers.engine import api, claims
    from course_helpers.errors import LessonBusy

    repo = f"ct-starting-{uuid.uuid4().hex[:6]}"
    name = claims.claim_name(repo)

    def created(since: float) -> str:  # what the first notebook's create leaves, before its start
        labels = {**owner_labels("claim"), LABEL_CLAIM: repo, claims.LABEL_SINCE: f"{since:.0f}"}
        return api.create_container_raw(engine, BASE_IMAGE, command=["cat"], name=name, labels=labels,
                                        stdin_open=True, auto_remove=False)

    first = created(time.time())
    try:
        with pytest.raises(LessonBusy, match=f"is using {repo}"):
            claims.acquire(repo, wait=False, progress=None)
        assert engine.containers.get(name).id == first  # left alone while it may still start
        engine.containers.get(first).remove(force=True)
        stale = created(time.time() - claims.START_GRACE - 5)
        claims.acquire(repo, wait=False, progress=None)  # never started: abandoned, taken over
        assert claims.held() == [repo] and engine.containers.get(name).id != stale
    finally:
        claims.release()
        for c in engine.containers.list(all=True, filters={"name": name}):
            c.remove(force=True)


def test_an_idle_notebook_gives_way_and_is_told_when_it_comes_back(engine, base, own_session):
    from course_helpers.engine import claims
    from course_helpers.engine.housekeeping import fresh_start

    repo = f"ct-idle-{uuid.uuid4().hex[:6]}"
    child = _python(f"""
        import sys, time
        from course_helpers import fresh_start, images, LessonInterrupted
        fresh_start({repo!r}, quiet=True)
        print("HELD", flush=True)
        sys.stdin.readline()  # idle until the test says go on
        try:
            images({repo!r})
            print("RESULT ok", flush=True)
        except LessonInterrupted as exc:
            print("RESULT interrupted:", exc, flush=True)
        """, COURSE_LESSON_LEASE="1", JPY_SESSION_NAME="/x/060.ipynb")
    try:
        _wait_line(child, "HELD")
        time.sleep(3)  # past the child's 1 s lease
        fresh_start(repo, wait=False, quiet=True)  # no LessonBusy: the idle claim was free to take
        assert claims.held() == [repo]
        child.stdin.write("go on\n")
        child.stdin.flush()
        result = _wait_line(child, "RESULT")
        assert result.startswith("interrupted:") and "run this notebook again from the top" in result, result
    finally:
        child.kill()
        child.wait()
        claims.release()


def test_a_killed_kernels_app_is_reaped(engine, base, own_session):
    from course_helpers.engine.reaper import sweep

    code = """
        from course_helpers import run_app
        with run_app({image!r}, port=8000, command=["python3", "-m", "http.server", "8000"]) as app:
            print("ID", app.container.id, flush=True)
            import time; time.sleep(600)
        """.format(image=BASE_IMAGE)
    # 1. The watcher removes it within seconds of the kill (the limit is 60 s).
    child = _python(code)
    cid = _wait_line(child, "ID")
    child.send_signal(signal.SIGKILL)
    child.wait()
    deadline = time.monotonic() + 60
    while _exists(engine.containers.get, cid) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not _exists(engine.containers.get, cid), "the watcher did not remove a killed kernel's container"
    # 2. With the watcher gone too, the next course call in any process removes it.
    child = _python(code)
    cid = _wait_line(child, "ID")
    watchers = subprocess.run(["pgrep", "-f", f"course_helpers.engine.reaper {child.pid} "],
                              capture_output=True, text=True).stdout.split()
    assert watchers, "run_app started no watcher"
    for pid in watchers:
        os.kill(int(pid), signal.SIGKILL)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert _exists(engine.containers.get, cid)
    removed = sweep(engine, every=0)
    assert not _exists(engine.containers.get, cid) and removed


def test_containers_the_learner_starts_carry_no_creation_mark(engine, base):
    container = engine.containers.create(BASE_IMAGE, ["true"])
    try:
        assert LABEL_CONTAINER not in (container.labels or {})
    finally:
        container.remove()


def test_listing_survives_images_removed_by_another_kernel(engine):
    """Another kernel's cleanup removing images while we list them must not make ours fail."""
    import threading

    from course_helpers.engine.client import list_images

    tag = f"crs-race-{uuid.uuid4().hex[:8]}"
    made = [_hand_build(engine, f"FROM {BASE_IMAGE}\nLABEL course.race={i}\n", f"{tag}:{i}").id
            for i in range(12)]
    removing = threading.Thread(target=lambda: [engine.images.remove(i, force=True) for i in made])
    try:
        removing.start()
        # List while the other kernel removes (each listing inspects every image, so a few overlap the
        # removal), then once more after it: at most 30, as listing a busy engine takes seconds.
        seen = []
        while len(seen) < 30 and (removing.is_alive() or len(seen) < 2):
            seen.append(len(list_images(engine, all=True)))
    finally:
        removing.join()
        for ident in made:
            if _exists(engine.images.get, ident):
                engine.images.remove(ident, force=True)
    assert len(seen) >= 2 and all(n > 0 for n in seen)
    assert not any(_exists(engine.images.get, ident) for ident in made)


@pytest.fixture
def course_client():
    """The course's BuildKit client, probed (once per process) before own_session's state folder hides
    the Docker release the course set up."""
    from course_helpers.engine.cli import buildkit_client

    return buildkit_client()


def test_the_course_removes_its_own_build_records_and_no_others(engine, base, course_client, own_session, tmp_path):
    """``docker buildx history`` records: the course's go with fresh_start and cleanup, a learner's stay."""
    from course_helpers.builder.build import build
    from course_helpers.engine import claims
    from course_helpers.engine.build_history import build_ref, no_history_reason, read_record, remove_records
    from course_helpers.engine.housekeeping import cleanup, fresh_start
    from course_helpers.errors import CourseError

    cli = course_client
    reason = no_history_reason(cli)
    if reason:
        pytest.skip(reason)
    repo = f"ct-rec-{uuid.uuid4().hex[:8]}"
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM {BASE_IMAGE}\nRUN echo {uuid.uuid4().hex} > /marker\n")
    learner_ref = None
    try:
        lesson = build(ctx, f"{repo}:lesson", builder="buildkit", progress=False)
        # The learner builds the same folder, under the same repository, with the same client.
        subprocess.run(cli.build_command() + ["--metadata-file", str(tmp_path / "meta.json"), "-t", f"{repo}:mine",
                                              str(ctx)], env=cli.environment(), check=True, capture_output=True)
        learner_ref = build_ref(tmp_path / "meta.json")
        assert lesson.build_ref and learner_ref and read_record(lesson.build_ref).ref == lesson.build_ref
        report = fresh_start(repo, quiet=True)
        assert report.build_records == 1 and "the engine's record of 1 of their builds went too" in str(report)
        with pytest.raises(CourseError, match=f"The engine has no build record {lesson.build_ref}"):
            read_record(lesson.build_ref)
        assert read_record(learner_ref).ref == learner_ref
        assert fresh_start(repo, quiet=True).build_records == 0  # forgotten once gone
        again = build(ctx, f"{repo}:again", builder="buildkit", progress=False)
        assert cleanup().build_records == 1
        with pytest.raises(CourseError):
            read_record(again.build_ref)
        assert read_record(learner_ref).ref == learner_ref
    finally:
        claims.release()
        if learner_ref:
            remove_records(cli, [learner_ref])  # the test's own stand-in for a learner's record
        for img in engine.images.list(name=repo):
            engine.images.remove(img.id, force=True)


def test_cleanup_removes_the_intermediate_images_of_a_classic_build(own_session, engine, tmp_path):
    """On the containerd store each step of a classic build stays as an untagged image once the
    tagged one is gone; the course records them as its own, and cleanup() takes them too."""
    from course_helpers import build, cleanup
    from course_helpers.engine.ownership import course_image_ids

    app = tmp_path / "app"
    app.mkdir()
    (app / "Dockerfile").write_text(f"FROM {BASE_IMAGE}\nRUN echo one > /one\nRUN echo two > /two\n"
                                    f"ENV COURSE_TEST={own_session}\n")
    tag = f"ct-steps-{uuid.uuid4().hex[:8]}:1"
    report = build(app, tag=tag, builder="classic", no_cache=True, progress=False)
    steps = course_image_ids(own_session) - course_image_ids(own_session, intermediates=False)
    assert len(steps) >= 2 and report.image_id not in steps - {report.image_id}
    cleanup()
    left = [i for i in steps | {report.image_id} if _exists(engine.images.get, i)]
    assert left == [], f"cleanup left the classic build's images {left}"
