"""Each chapter's exercise check, given a wrong solution, fails on the real engine and says why.

The reference solutions pass under nbval (the notebooks run them); here each check gets
the mistake a learner is most likely to make, and must fail on the criterion that the
mistake breaks, with what the build showed.  Images go under the module's own repository.
"""
from __future__ import annotations

import pytest

from course_helpers.exercises import cache_mounts, context, linting, multi_stage, stale

pytestmark = pytest.mark.builds  # full tier: the notebooks show these facts in the quick one


def _failed(result, words: str) -> str:
    """The 'saw' of the first failed criterion whose name contains ``words`` (fails the test if none)."""
    for criterion in result.criteria:
        if words in criterion.name and not criterion.ok:
            return criterion.saw
    raise AssertionError(f"no failed criterion about {words!r}:\n{result.text()}")


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


def test_the_plain_pip_step_fails_the_cache_mount_check(repo):
    folder = cache_mounts.prepare("ex-090")  # the sample app's own Dockerfile: no mount at all
    result = cache_mounts.check_cache_mount(folder, tag=f"{repo}:ex090")
    assert not result.passed
    assert "no RUN --mount=type=cache" in _failed(result, "cache mount")
    # The engine's evidence: pip's own output says it downloaded every package again.
    saw = _failed(result, "downloading none")
    assert saw.startswith("0 reused,") and "downloaded" in saw


def test_copying_the_wheels_fails_the_multi_stage_check(repo):
    folder = multi_stage.prepare("ex-100")
    # The lesson's own Dockerfile: its COPY --from keeps the wheel files in the final image.
    (folder / "exercise.Dockerfile").write_text(multi_stage.DOCKERFILE)
    result = multi_stage.check_multi_stage(folder, tag=f"{repo}:ex100")
    assert not result.passed
    assert result.failed == ["no wheel file is left in the final image"]
    assert "/wheels/" in _failed(result, "no wheel file")


def test_an_undeclared_build_argument_fails_the_refresh_check(repo):
    folder = stale.prepare("ex-110")  # no ARG: the build argument changes nothing (cache-rules 11)
    result = stale.check_refresh_arg(folder, tag=f"{repo}:ex110")
    assert not result.passed
    assert "no ARG DEPS_REFRESH" in _failed(result, "declared above")
    assert _failed(result, "pip runs again") == "the pip step cached"


def test_an_argument_below_the_pip_step_fails_too(repo):
    folder = stale.prepare("ex-110b")
    text = (folder / "Dockerfile").read_text().replace("COPY . .\n", "COPY . .\nARG DEPS_REFRESH\n")
    (folder / "Dockerfile").write_text(text)
    result = stale.check_refresh_arg(folder, tag=f"{repo}:ex110b")
    assert _failed(result, "pip runs again") == "the pip step cached"


def test_the_articles_dockerfile_fails_the_lint_check(repo):
    folder = linting.prepare("ex-130")  # the article's Dockerfile as printed
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
