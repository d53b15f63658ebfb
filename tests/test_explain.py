"""explain(), predict() and check_prediction() without an engine: reports are made by hand.

The engine scenarios, with both builders, are in tests/test_predict.py.
"""
from __future__ import annotations

import os

import pytest

from course_helpers.errors import DockerfileError
from course_helpers.cache.explain import explain
from course_helpers.cache.predict import check_prediction, predict
from course_helpers.builder.report import BuildReport, Step
from course_helpers.builder.records import record_context_snapshot

DOCKERFILE = ("FROM python:3.11-slim-bookworm\nENV MODE=dev\nWORKDIR /app\nCOPY requirements.txt .\n"
              "RUN pip3 install -r requirements.txt\nCOPY . .\n")


@pytest.fixture(autouse=True)
def _state(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_STATE_DIR", str(tmp_path / "state"))


@pytest.fixture
def ctx(tmp_path):
    root = tmp_path / "ctx"
    root.mkdir()
    (root / "Dockerfile").write_text(DOCKERFILE)
    (root / "requirements.txt").write_text("flask==2.3.1\n")
    (root / "app.py").write_text("print('hello')\n")
    (root / ".dockerignore").write_text("*.log\n")
    return root


def _report(ctx, image: str, cached: list[bool], builder: str = "buildkit") -> BuildReport:
    lines = ["FROM python:3.11-slim-bookworm", "WORKDIR /app", "COPY requirements.txt .",
             "RUN pip3 install -r requirements.txt", "COPY . ."]
    steps = [Step(i + 1, "0", text, flag) for i, (text, flag) in enumerate(zip(lines, cached))]
    report = BuildReport(image, ["demo:1"], builder, 1.0, "", steps, context=str(ctx))
    record_context_snapshot(report)
    return report


def test_content_edit_names_file_and_hashes(ctx):
    _report(ctx, "sha256:aaa", [True, False, False, False, False])
    (ctx / "requirements.txt").write_text("flask==3.0\n")
    prediction = predict(ctx, tag="demo:1")
    assert [s.cached for s in prediction.steps] == [True, True, False, False, False]
    second = _report(ctx, "sha256:bbb", [True, True, False, False, False])
    why = explain(second)
    assert [s.reason is None for s in why.steps] == [True, True, False, False, False]
    assert why.steps[2].reason.startswith("requirements.txt content changed (")
    assert why.steps[3].reason == "parent changed at step 3 (`COPY requirements.txt .`)"
    assert "sha256" not in why.text() and "<table>" in why._repr_html_()


def test_env_change_differs_by_builder(ctx):
    _report(ctx, "sha256:aaa", [True] * 5, builder="classic")
    _report(ctx, "sha256:aab", [True] * 5, builder="buildkit")
    (ctx / "Dockerfile").write_text(DOCKERFILE.replace("MODE=dev", "MODE=prod"))
    kit = predict(ctx, builder="buildkit")
    assert [s.cached for s in kit.steps] == [True, True, True, False, False]
    assert "environment value MODE changed ('dev' -> 'prod')" in kit.steps[3].reason
    classic = predict(ctx, builder="classic")
    assert [s.instruction for s in classic.steps if not s.cached][0] == "ENV MODE=prod"
    assert "`ENV MODE=dev` -> `ENV MODE=prod`" in classic.steps[1].reason


def test_ignored_file_and_touch_keep_the_cache(ctx):
    _report(ctx, "sha256:aaa", [True] * 5)
    (ctx / "debug.log").write_text("noise")
    os.utime(ctx / "app.py", (1e9, 1e9))
    assert all(s.cached for s in predict(ctx).steps)


def test_missing_copy_source_names_the_line(ctx):
    (ctx / "requirements.txt").unlink()
    with pytest.raises(DockerfileError, match=r"line 4: COPY source 'requirements.txt' is not in the build context"):
        predict(ctx)


def test_check_prediction(ctx):
    report = _report(ctx, "sha256:aaa", [True, True, True, False, False])
    check = check_prediction(["WORKDIR /app", "COPY  requirements.txt .", "COPY . ."], report)
    assert [r[3] for r in check.rows] == [True, True, True, False]
    assert check.text().splitlines()[0] == "3 of 4 steps as you expected"
    with pytest.raises(Exception, match="not a step of this build"):
        check_prediction(["RUN nope"], report)
