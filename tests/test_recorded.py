"""The builds the course ships from a real engine (notebook 015), read back with no engine at all."""
from __future__ import annotations

import json
import re

import pytest

from course_helpers import explain, predict, workspace
from course_helpers.dockerfile.context import take_snapshot
from course_helpers.errors import CourseError
from course_helpers.lesson.recorded import RECORDS, recorded_builds


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No engine (as on Binder) and a state folder of the test's own."""
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    monkeypatch.setenv("COURSE_STATE_DIR", str(tmp_path / "state"))
    app = workspace("recorded-test")
    return app, recorded_builds(app)


def test_the_records_name_the_engine_and_the_day_they_were_made():
    data = json.loads((RECORDS / "flask-demo.json").read_text())
    meta = data["recorded_on"]
    assert re.match(r"Docker \d+\.\d+", meta["engine"]) and "BuildKit" in meta["builder"]
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", meta["date"])
    assert [b["name"] for b in data["builds"]] == ["first", "second", "third", "fourth", "fifth"]


def test_the_learners_copy_holds_the_bytes_the_first_build_saw(offline):
    app, builds = offline
    assert builds.provenance.startswith("Recorded with BuildKit") and builds.date in builds.provenance
    seen = {k: tuple(v) for k, v in take_snapshot(app).files.items()}
    assert seen == builds.record("first").files


def test_the_recorded_facts_are_the_articles(offline):
    _, builds = offline
    pip = "RUN pip3 install -r requirements.txt"
    assert builds["second"].all_cached and builds["second"].image_id == builds["first"].image_id
    assert builds["third"].ran_steps == ["COPY . .", pip]
    assert builds["fifth"].ran_steps == ["COPY . ."]


def test_predict_and_explain_work_on_them_without_an_engine(offline):
    from course_helpers.lesson.workspace import edit

    app, builds = offline
    assert {s.verdict for s in predict(app, against=builds.record("first")).steps} == {"cached"}
    edit(app / "app.py", "Hello world!", "Hello universe!")
    assert [s.instruction for s in predict(app, against=builds.record("second")).steps if s.verdict == "runs"] == \
        ["COPY . .", "RUN pip3 install -r requirements.txt"]
    why = {s.instruction: s.reason for s in explain(builds["third"]).steps}
    assert "app.py content changed" in why["COPY . ."]


def test_an_unknown_build_is_one_sentence(offline):
    _, builds = offline
    with pytest.raises(CourseError, match=r"^No recorded build is called 'sixth': the recorded builds are first, "):
        builds["sixth"]
    with pytest.raises(CourseError, match="the course ships: flask-demo"):
        recorded_builds(offline[0], name="nothing")
