"""Each chapter's exercise check, given a wrong solution, fails on the real engine and says why.

The reference solutions pass under nbval (the notebooks run them); here each check gets
the mistake a learner is most likely to make, and must fail on the criterion that the
mistake breaks, with what the build showed.  Images go under the module's own repository.
Given the starter as the chapter leaves it, each check says "not answered yet" without
building (quick tier: no engine needed).
"""
from __future__ import annotations

import os

import pytest


from course_helpers.exercises import base_moves, cache_mounts, ci_runner, context, linting, multi_stage, offline, stale
from course_helpers.lesson.exercise import NotAnswered
from course_helpers.lesson.recorded import recorded_builds
from course_helpers.lesson.workspace import workspace

builds = pytest.mark.builds  # full tier: the notebooks show these facts in the quick one


def _starter_090(name):
    folder = cache_mounts.prepare(name)  # the sample app's own Dockerfile is the starter
    # The notebook's starter cell adds a hint comment: still the starter.
    text = (folder / "Dockerfile").read_text()
    (folder / "Dockerfile").write_text(text.replace("RUN pip3", "# give the pip step a cache mount\nRUN pip3"))
    return folder, cache_mounts.check_cache_mount, {}


def _starter_100(name):
    folder = multi_stage.prepare(name)
    (folder / "exercise.Dockerfile").write_text(multi_stage.DOCKERFILE + "\n# change the final stage\n")
    return folder, multi_stage.check_multi_stage, {}


def _starter_100_missing(name):
    return multi_stage.prepare(name), multi_stage.check_multi_stage, {}  # no exercise.Dockerfile yet


def _starter_080(name):
    folder = context.prepare(name)
    (folder / ".dockerignore").write_text("# Leave out everything, then bring back with ! what the image needs.\n")
    return folder, context.check_dockerignore, {}


def _starter_110(name):
    return stale.prepare(name), stale.check_refresh_arg, {}


def _starter_130(name):
    return linting.prepare(name), linting.check_lint, {}


def _starter_150(name):
    return workspace(name), ci_runner.check_runner_cache, {"cache_from": ""}


def _starter_160(name):
    upstream = "127.0.0.1:5000/library/python:3.11-slim-bookworm"
    return workspace(name), base_moves.check_pinned_base, {"from_line": f"FROM {upstream}", "upstream": upstream}


def _starter_015(name):
    folder = workspace(name)
    recorded = recorded_builds(folder)
    (folder / "Dockerfile").write_text(recorded.dockerfile("fourth"))
    (folder / "notes.txt").write_text("ideas for version 2\n")
    (folder / ".dockerignore").write_text(offline.STARTER)
    return folder, offline.check_offline_ignore, {"against": recorded.record("fifth")}


@pytest.mark.parametrize("starter", [_starter_015, _starter_080, _starter_090, _starter_100, _starter_100_missing,
                                     _starter_110, _starter_130, _starter_150, _starter_160],
                         ids=["015", "080", "090", "100", "100-no-file", "110", "130", "150", "160"])
def test_an_untouched_starter_is_not_answered_yet(starter, capsys):
    folder, check, kwargs = starter("starter-" + starter.__name__.split("_", 2)[-1])
    result = check(folder, **kwargs)
    assert isinstance(result, NotAnswered) and not result.passed
    text = result.text()
    assert "not answered yet" in text and "\n" not in text, text  # one line, no score
    assert "PASS" not in text and "FAIL" not in text
    assert "not answered yet" in result._repr_html_()
    assert "[check]" not in capsys.readouterr().out  # nothing was built for a starter


def test_the_offline_exercise_grades_a_real_attempt_and_its_solution():
    folder, check, kwargs = _starter_015("offline-015")
    (folder / ".dockerignore").write_text("notes.txt\n*.md\n")  # a guess that leaves .dockerignore in
    result = check(folder, **kwargs)
    assert result.text().startswith("FAIL") and result.failed == ["predict() takes every step from the cache"]
    assert ".dockerignore added" in [c.saw for c in result.criteria if not c.ok][0]
    (folder / ".dockerignore").write_text("notes.txt\n.dockerignore\n")
    assert check(folder, **kwargs).passed
    (folder / "notes.txt").unlink()  # keeping COPY . . cached by deleting the notes is not the exercise
    (folder / ".dockerignore").write_text(".dockerignore\n")
    assert check(folder, **kwargs).failed == ["notes.txt stays out of the build context"]


def _failed(result, words: str) -> str:
    """The 'saw' of the first failed criterion whose name contains ``words`` (fails the test if none)."""
    for criterion in result.criteria:
        if words in criterion.name and not criterion.ok:
            return criterion.saw
    raise AssertionError(f"no failed criterion about {words!r}:\n{result.text()}")


@builds
def test_a_cache_source_nobody_exported_fails_the_runner_check(repo):
    if os.geteuid() != 0:
        pytest.skip("the CI runner is a private engine, which needs root")
    from course_helpers.engine.registry import start_registry
    from course_helpers.lesson.ci import stop_ci_runner

    folder = workspace("ex-150")
    # The likeliest slip: a ref that is not the one the export wrote (BuildKit only warns, and builds on).
    wrong = f"type=registry,ref={start_registry(progress=None).ref(repo + '/no-such-cache')}"
    try:
        result = ci_runner.check_runner_cache(folder, wrong, tag=f"{repo}:ex150")
    finally:
        stop_ci_runner()
    assert not result.passed
    assert "RUN pip3 install" in _failed(result, "every step CACHED")
    assert "ran" in _failed(result, "the pip step CACHED")


@builds
def test_a_from_line_by_tag_fails_the_pin_check(repo):
    from course_helpers.engine.registry import start_registry

    upstream = start_registry(progress=None).ref(f"{repo}/python:3.11-slim-bookworm")
    folder = workspace("ex-160")
    # Not pinned: the course's own base by its tag (a different image, so the move changes nothing here,
    # and only the digest criterion can catch it).
    result = base_moves.check_pinned_base(folder, "FROM python:3.11-slim-bookworm", upstream, tag=f"{repo}:ex160")
    assert not result.passed
    assert result.failed == ["FROM names the base by a digest"], result.text()


@builds
def test_a_top_level_only_dockerignore_fails(repo):
    folder = context.prepare("ex-080")
    # *.log matches only at the top; the raw data and the notes are not left out at all.
    (folder / ".dockerignore").write_text(".git\n.venv\n*.log\n")
    result = context.check_dockerignore(folder, tag=f"{repo}:ex080")
    assert not result.passed
    assert "MB" in _failed(result, "under 100 kB")
    saw = _failed(result, "no file of")
    assert "logs/2026/app.log" in saw or "data/raw/dump.csv" in saw
    assert "ran: COPY . ." in _failed(result, "every step comes from the cache")
    assert result.text().startswith("FAIL")


@builds
def test_the_plain_pip_step_fails_the_cache_mount_check(repo):
    folder = cache_mounts.prepare("ex-090")
    # A first attempt: pip told to keep no cache, and still no mount at all.
    text = (folder / "Dockerfile").read_text().replace("pip3 install", "pip3 install --no-cache-dir")
    (folder / "Dockerfile").write_text(text)
    result = cache_mounts.check_cache_mount(folder, tag=f"{repo}:ex090")
    assert not result.passed
    assert "no RUN --mount=type=cache" in _failed(result, "cache mount")
    # The engine's evidence: pip's own output says it downloaded every package again.
    saw = _failed(result, "downloading none")
    assert saw.startswith("0 reused,") and "downloaded" in saw


@builds
def test_copying_the_wheels_fails_the_multi_stage_check(repo):
    folder = multi_stage.prepare("ex-100")
    # The lesson's COPY --from moved to another folder: the wheel files still stay in the final image.
    moved = multi_stage.DOCKERFILE.replace("/wheels /wheels", "/wheels /tmp/wheels")
    (folder / "exercise.Dockerfile").write_text(moved.replace("/wheels/*.whl", "/tmp/wheels/*.whl"))
    result = multi_stage.check_multi_stage(folder, tag=f"{repo}:ex100")
    assert not result.passed
    assert result.failed == ["no wheel file is left in the final image"]
    assert "/wheels/" in _failed(result, "no wheel file")


@builds
def test_an_undeclared_build_argument_fails_the_refresh_check(repo):
    folder = stale.prepare("ex-110")
    # The argument used in the command but never declared: it changes nothing (cache-rules 11).
    text = (folder / "Dockerfile").read_text().replace("RUN pip3 install", "RUN echo $DEPS_REFRESH && pip3 install")
    (folder / "Dockerfile").write_text(text)
    result = stale.check_refresh_arg(folder, tag=f"{repo}:ex110")
    assert not result.passed
    assert "no ARG DEPS_REFRESH" in _failed(result, "declared above")
    assert _failed(result, "pip runs again") == "the pip step cached"


@builds
def test_an_argument_below_the_pip_step_fails_too(repo):
    folder = stale.prepare("ex-110b")
    text = (folder / "Dockerfile").read_text().replace("COPY . .\n", "COPY . .\nARG DEPS_REFRESH\n")
    (folder / "Dockerfile").write_text(text)
    result = stale.check_refresh_arg(folder, tag=f"{repo}:ex110b")
    assert _failed(result, "pip runs again") == "the pip step cached"


@builds
def test_the_articles_dockerfile_fails_the_lint_check(repo):
    folder = linting.prepare("ex-130")
    # The dependencies moved first, as chapter 060 taught, with both of the article's mistakes kept.
    text = (folder / "Dockerfile").read_text().replace(
        "COPY . .\n\nRUN pip3 install -r requirements.txt\n",
        "COPY requirements.txt .\n\nRUN pip3 install -r requirements.txt\n\nCOPY . .\n")
    assert "COPY requirements.txt" in text
    (folder / "Dockerfile").write_text(text)
    result = linting.check_lint(folder, tag=f"{repo}:ex130")
    assert not result.passed
    assert "CMD" in _failed(result, "DL3025")
    assert "pip3 install" in _failed(result, "DL3042")
    # The engine agrees with the linter: the quoted CMD exits 127.
    assert "127" in _failed(result, "the app answers")


@pytest.mark.parametrize("module, check, dockerfile", [
    (cache_mounts, "check_cache_mount", "Dockerfile"),
    (multi_stage, "check_multi_stage", "exercise.Dockerfile"),
    (stale, "check_refresh_arg", "Dockerfile"),
], ids=["090", "100", "110"])
@builds
def test_a_broken_dockerfile_is_a_failed_criterion_with_a_sentence(tmp_path, repo, module, check, dockerfile):
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / dockerfile).write_text("FROM python:3.11-slim-bookworm\nRUNN echo hi\n")
    (folder / "requirements.txt").write_text("flask==2.3.1\n")
    (folder / "app.py").write_text("print('Hello')\n")
    result = getattr(module, check)(folder, tag=f"{repo}:broken")
    assert not result.passed
    saw = [c.saw for c in result.criteria if not c.ok][0]
    assert "RUNN" in saw and "line 2" in saw and "Traceback" not in result.text()
