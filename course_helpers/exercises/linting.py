"""Chapter 130's exercise: fix the article's Dockerfile until hadolint is quiet and the app answers.

The learner's folder holds the article's own Dockerfile, with its quoted
shell-form ``CMD`` (DL3025, the container exits 127, chapter 020) and pip
keeping its cache in the image (DL3042).  The check lints the fixed file,
builds it and asks the app for its page: a quiet linter alone proves nothing.
"""
from __future__ import annotations

from pathlib import Path

from ..dockerfile.lint import lint
from ..errors import CourseError
from ..formatting import shown_path
from ..lesson.exercise import ExerciseResult, build_for_check, grade, not_answered, untouched
from ..lesson.run import run_app
from ..lesson.workspace import workspace

TITLE = "A Dockerfile hadolint has nothing to say about, and that works"

#: The tutorial's Dockerfile as the article prints it.
ARTICLE_DOCKERFILE = """\
FROM python:3.11-slim-bookworm

WORKDIR /usr/src/app

COPY . .

RUN pip3 install -r requirements.txt

CMD "python3 -m flask run --host=0.0.0.0"
"""


def prepare(name: str = "130-linting") -> Path:
    """A fresh copy of the sample app with the article's Dockerfile, quoted CMD and all.

    Returns:
        The folder, named as a command would name it from here (``../workspace/130-linting`` in a
        notebook): the exercise cell's ``%%writefile`` prints that, not this machine's absolute path.
    """
    folder = workspace(name)
    (folder / "Dockerfile").write_text(ARTICLE_DOCKERFILE)
    return Path(shown_path(folder))


def check_lint(folder: str | Path, tag: str = "lint-demo:exercise") -> ExerciseResult:
    """Grade the learner's fixed Dockerfile: hadolint's findings, then a real build and a real request.

    Args:
        folder: the exercise folder (:func:`prepare`).
        tag: the image name to build.

    Returns:
        An :class:`~course_helpers.lesson.exercise.ExerciseResult`, one line per criterion; "not answered
        yet", with no lint and no build, while the Dockerfile is the article's.
    """
    folder = Path(folder)
    if untouched(folder / "Dockerfile", ARTICLE_DOCKERFILE):
        return not_answered(TITLE, "Fix the Dockerfile in the cell above, run that cell, then run this check again.")
    findings = lint(folder)
    by_code = {f.code: f for f in findings}

    def seen(code: str) -> str:
        return f"line {by_code[code].line}: {by_code[code].short_instruction}" if code in by_code else "not reported"

    others = [f"{f.code} on line {f.line}" for f in findings
              if f.code not in ("DL3025", "DL3042") and f.level in ("error", "warning")]
    criteria = [("no DL3025: CMD in JSON (exec) form", "DL3025" not in by_code, seen("DL3025")),
                ("no DL3042: pip keeps no cache in the image", "DL3042" not in by_code, seen("DL3042")),
                ("no other warning or error from hadolint", not others, ", ".join(others) or "none")]
    report, error = build_for_check(folder, tag, "building your image")
    if report is None:
        return grade(TITLE, criteria + [("the image builds and the app answers on /", False, error)])
    print("[check] starting the app ...", flush=True)
    try:
        with run_app(tag) as app:
            body = app.get("/")
        criteria.append(("the image builds and the app answers on /", body.strip() == "Hello world!",
                         f"the app answered {body.strip()[:60]!r}"))
    except CourseError as exc:
        criteria.append(("the image builds and the app answers on /", False, str(exc).splitlines()[0][:200]))
    return grade(TITLE, criteria)
