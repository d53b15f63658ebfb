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

BASE = "python:3.11-slim-bookworm"
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


def _report(ctx, image: str, cached: list[bool], builder: str = "buildkit", bases: dict | None = None) -> BuildReport:
    lines = ["FROM python:3.11-slim-bookworm", "WORKDIR /app", "COPY requirements.txt .",
             "RUN pip3 install -r requirements.txt", "COPY . ."]
    steps = [Step(i + 1, "0", text, flag) for i, (text, flag) in enumerate(zip(lines, cached))]
    report = BuildReport(image, ["demo:1"], builder, 1.0, "", steps, context=str(ctx), base_ids=dict(bases or {}))
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


# --- a base whose tag moved ------------------------------------------------------------------------

OLD_BASE, NEW_BASE = "sha256:" + "a1" * 32, "sha256:" + "b2" * 32


def test_explain_names_a_moved_base_and_both_ids(ctx):
    first = _report(ctx, "sha256:aaa", [True, False, False, False, False], bases={BASE: OLD_BASE})
    second = _report(ctx, "sha256:bbb", [True, False, False, False, False], bases={BASE: NEW_BASE})
    why = explain(second, against=first)
    words = (f"the base {BASE} now names sha256:b2b2b2b2b2b2 (the last build used sha256:a1a1a1a1a1a1): "
             "every step runs again")
    assert [s.reason for s in why.steps] == [None] + [words] * 4, why.text()
    # The same base image as both builds used: a step that ran is not put down to the base.
    third = _report(ctx, "sha256:ccc", [True, False, True, True, True], bases={BASE: NEW_BASE})
    assert "now names" not in explain(third, against=second).text()


def test_records_without_base_ids_compare_as_before(ctx):
    # A record of an older course (no "bases") loads, and an ID on one side only moves nothing.
    from course_helpers.builder.records import build_records, record_from_dict

    first = _report(ctx, "sha256:aaa", [True, False, False, False, False])
    item = {k: v for k, v in record_context_snapshot(first).__dict__.items() if k != "bases"}
    assert record_from_dict(item).bases == {} and build_records(ctx)[-1].bases == {}
    second = _report(ctx, "sha256:bbb", [True, True, True, True, False], bases={BASE: NEW_BASE})
    why = explain(second, against=first)
    assert why.steps[-1].reason.startswith("the builder did not reuse its cache although nothing it compares "
                                           "changed"), why.text()


def test_predict_without_an_engine_keeps_the_base(ctx, monkeypatch, tmp_path):
    # The last build kept its base's ID, but no engine answers to say what the tag names now.
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    _report(ctx, "sha256:aaa", [True, False, False, False, False], bases={BASE: OLD_BASE})
    prediction = predict(ctx)
    assert all(s.cached for s in prediction.steps), prediction.text()
    assert prediction.steps[0].reason == "the base image is used as it is"


def test_release_base_refuses_the_base_itself():
    from course_helpers.engine.base_image import release_base
    from course_helpers.errors import CourseError

    with pytest.raises(CourseError, match="is the base itself"):
        release_base(BASE, 2, progress=None)
    with pytest.raises(CourseError, match="version must be a whole number"):
        release_base("movedbase-demo/python:3.11-slim-bookworm", 0, progress=None)
