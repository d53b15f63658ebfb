"""The three-way quiz (cached / runs / depends) feeds check_prediction() as a mapping does.

An untouched quiz or an empty guess is "not answered yet": no score, no verdicts.
"""
from __future__ import annotations

import pytest

from course_helpers.cache.predict import check_prediction
from course_helpers.cache.quiz import prediction_quiz
from course_helpers.builder.report import BuildReport, Step

DOCKERFILE = ("FROM python:3.11-slim-bookworm\nWORKDIR /usr/src/app\nCOPY . .\nRUN pip3 install -r requirements.txt\n"
              'CMD ["python3", "-m", "flask", "run"]\n')


def _after_an_app_edit() -> BuildReport:
    """A report as a build of DOCKERFILE after an app.py edit gives it (report data, not a build)."""
    return BuildReport("sha256:" + "0" * 64, ["t:1"], "buildkit", 1.0, "", [
        Step(1, "0", "FROM python:3.11-slim-bookworm", True), Step(2, "0", "WORKDIR /usr/src/app", True),
        Step(3, "0", "COPY . .", False), Step(4, "0", "RUN pip3 install -r requirements.txt", False)])


def test_quiz_lists_the_steps_and_yields_what_is_ticked(tmp_path):
    (tmp_path / "Dockerfile").write_text(DOCKERFILE)
    quiz = prediction_quiz(tmp_path)
    assert quiz.instructions == ["WORKDIR /usr/src/app", "COPY . .", "RUN pip3 install -r requirements.txt"]
    for button, answer in zip(quiz.buttons, ["cached", "runs", "runs"]):
        button.value = answer  # as a learner's clicks would
    assert list(quiz) == ["WORKDIR /usr/src/app"]
    check = check_prediction(quiz, _after_an_app_edit())
    assert check.agreed == 3 and check.text().splitlines()[0] == "3 of 3 steps as you expected"


def test_an_untouched_quiz_scores_nothing_and_says_so(tmp_path):
    (tmp_path / "Dockerfile").write_text(DOCKERFILE)
    quiz = prediction_quiz(tmp_path)
    assert set(quiz.answers.values()) == {None}  # no choice made for the learner
    check = check_prediction(quiz, _after_an_app_edit())
    assert not check.answered and check.agreed == 0
    # One line, no score and no rows: "2 of 3" for an untouched quiz was a score the learner never earned.
    assert check.text().startswith("not answered yet") and "\n" not in check.text()
    assert " of " not in check.text()
    assert "not answered yet" in check._repr_html_() and "<table" not in check._repr_html_()


@pytest.mark.parametrize("guess", [None, ..., [], {}], ids=["None", "Ellipsis", "empty list", "empty mapping"])
def test_an_empty_guess_is_not_answered_yet(guess):
    check = check_prediction(guess, _after_an_app_edit())
    assert not check.answered and check.agreed == 0
    assert check.text().startswith("not answered yet")


def test_a_half_answered_quiz_scores_the_answers_and_names_the_rest(tmp_path):
    (tmp_path / "Dockerfile").write_text(DOCKERFILE)
    quiz = prediction_quiz(tmp_path)
    quiz.buttons[1].value = "runs"
    check = check_prediction(quiz, _after_an_app_edit())
    assert check.answered and check.agreed == 1 and check.unanswered == 2
    assert check.text().splitlines()[0] == "1 of 3 steps as you expected (2 not answered yet)"
    assert "  NO ANSWER was cached: WORKDIR /usr/src/app" in check.text().splitlines()


def test_depends_is_its_own_answer_and_never_right_for_a_knowable_step():
    report = BuildReport("sha256:" + "0" * 64, ["t:1"], "buildkit", 1.0, "", [
        Step(1, "0", "FROM python:3.11-slim-bookworm", True), Step(2, "0", "COPY . .", False)])
    check = check_prediction({"COPY . .": "depends"}, report)
    assert check.rows == [("COPY . .", "depends", "ran", False)]
    assert "DISAGREE expected depends, was ran: COPY . ." in check.text()
