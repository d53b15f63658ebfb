"""The three-way quiz (cached / runs / depends) feeds check_prediction() as a mapping does."""
from __future__ import annotations

from course_helpers.cache.predict import check_prediction
from course_helpers.cache.quiz import prediction_quiz
from course_helpers.builder.report import BuildReport, Step


def test_quiz_lists_the_steps_and_yields_what_is_ticked(tmp_path):
    (tmp_path / "Dockerfile").write_text(
        "FROM python:3.11-slim-bookworm\nWORKDIR /usr/src/app\nCOPY . .\nRUN pip3 install -r requirements.txt\n"
        'CMD ["python3", "-m", "flask", "run"]\n')
    quiz = prediction_quiz(tmp_path)
    assert quiz.instructions == ["WORKDIR /usr/src/app", "COPY . .", "RUN pip3 install -r requirements.txt"]
    assert set(quiz.answers.values()) == {"runs"}  # untouched: the guess "everything runs"
    quiz.buttons[0].value = "cached"  # as a learner's click would
    assert list(quiz) == ["WORKDIR /usr/src/app"]
    # A report as a build of that Dockerfile after an app.py edit gives it (these are report data, not a build).
    report = BuildReport("sha256:" + "0" * 64, ["t:1"], "buildkit", 1.0, "", [
        Step(1, "0", "FROM python:3.11-slim-bookworm", True), Step(2, "0", "WORKDIR /usr/src/app", True),
        Step(3, "0", "COPY . .", False), Step(4, "0", "RUN pip3 install -r requirements.txt", False)])
    check = check_prediction(quiz, report)
    assert check.agreed == 3 and "3 of 3" in check.text()


def test_depends_is_its_own_answer_and_never_right_for_a_knowable_step():
    report = BuildReport("sha256:" + "0" * 64, ["t:1"], "buildkit", 1.0, "", [
        Step(1, "0", "FROM python:3.11-slim-bookworm", True), Step(2, "0", "COPY . .", False)])
    check = check_prediction({"COPY . .": "depends"}, report)
    assert check.rows == [("COPY . .", "depends", "ran", False)]
    assert "DISAGREE expected depends, was ran: COPY . ." in check.text()
