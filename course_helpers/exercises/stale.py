"""Chapter 110's exercise: a build argument that refreshes the dependency layer on demand.

A ``RUN`` step's cache key holds the build arguments declared before it, even
when its command never reads them (docs/cache-rules.md, scenario 9).  So
``ARG DEPS_REFRESH`` above the pip step turns "install the dependencies again"
into a value the learner chooses: the same value keeps the cache, a new one
(``build_args={"DEPS_REFRESH": "2026-12-01"}``) runs pip afresh.  The check
builds three times and reads which steps ran.
"""
from __future__ import annotations

import uuid
from pathlib import Path

from ..builder.report import BuildReport
from ..dockerfile.parse import parse_dockerfile
from ..errors import DockerfileError
from ..lesson.exercise import ExerciseResult, build_for_check, grade, not_answered, not_checked, untouched
from ..lesson.workspace import REQUIREMENTS_FIRST, edit, workspace

TITLE = "Refresh the dependencies when you decide to"
ARG = "DEPS_REFRESH"

#: The Dockerfile of the lesson and its exercise: chapter 060's, dependencies first.
DOCKERFILE = REQUIREMENTS_FIRST


def prepare(name: str = "110-exercise") -> Path:
    """A fresh copy of the sample app with the lesson's :data:`DOCKERFILE`."""
    folder = workspace(name)
    (folder / "Dockerfile").write_text(DOCKERFILE)
    return folder


def _pip_step(report: BuildReport) -> tuple[str, bool] | None:
    """(instruction, cached) of the build's first RUN that calls pip."""
    for step in report.steps:
        if step.instruction.split()[0].upper() == "RUN" and "pip" in step.instruction:
            return step.instruction, step.cached
    return None


def check_refresh_arg(folder: str | Path, tag: str = "stale-demo:exercise") -> ExerciseResult:
    """Grade the learner's Dockerfile: does ``DEPS_REFRESH`` decide when pip runs again, and nothing else?

    Builds three times: with a new value; with the same value after an ``app.py`` edit (pip must
    stay cached); with another new value (pip must run).

    Args:
        folder: the exercise folder (:func:`prepare`).
        tag: the image name to build.

    Returns:
        An :class:`~course_helpers.lesson.exercise.ExerciseResult`, one line per criterion; "not answered
        yet", with no build, while the Dockerfile is the lesson's :data:`DOCKERFILE`.
    """
    folder = Path(folder)
    if untouched(folder / "Dockerfile", DOCKERFILE):
        return not_answered(TITLE, f"Add ARG {ARG} in the Dockerfile cell above, run that cell, "
                                   "then run this check again.")
    try:
        df = parse_dockerfile(folder / "Dockerfile")
    except DockerfileError as exc:
        return grade(TITLE, [("the Dockerfile can be read", False, str(exc))])
    pip_runs = [i for i in df.instructions if i.keyword == "RUN" and "pip" in i.text]
    declared = [i for i in df.instructions if i.keyword == "ARG" and i.words and i.words[0].split("=")[0] == ARG]
    before = bool(pip_runs and declared and declared[0].number < pip_runs[0].number
                  and declared[0].stage == pip_runs[0].stage)
    where = (f"ARG on line {declared[0].line}, pip on line {pip_runs[0].line}" if declared and pip_runs else
             "no RUN calls pip" if not pip_runs else f"no ARG {ARG} in the Dockerfile")
    criteria = [(f"ARG {ARG} is declared above the pip step, in its stage", before, where)]
    rest = [f"the same {ARG} after an app.py edit: pip comes from the cache",
            f"a new {ARG}: pip runs again"]
    first, second = uuid.uuid4().hex[:8], uuid.uuid4().hex[:8]
    report, error = build_for_check(folder, tag, f"building with a new {ARG}", build_args={ARG: first})
    if report is None:
        return grade(TITLE, criteria + [("the image builds", False, error)] + not_checked(rest, "the build failed"))
    if _pip_step(report) is None:
        return grade(TITLE, criteria + not_checked(rest, "no step of the build calls pip"))
    change = edit(folder / "app.py", "Hello", "Hello again,", count=1)
    try:
        same, error = build_for_check(folder, tag, f"building after an app.py edit, same {ARG}",
                                      build_args={ARG: first})
    finally:
        edit(change.path, "Hello again,", "Hello", count=1)
    word = {True: "cached", False: "ran"}
    if same is None:
        criteria.append((rest[0], False, error))
    else:
        step = _pip_step(same)
        cached = bool(step and step[1])
        ran_steps = "; ".join(same.ran_steps) or "nothing"
        criteria.append((rest[0], cached, f"the pip step {word[cached]}; ran: {ran_steps}"))
    fresh, error = build_for_check(folder, tag, f"building with another new {ARG}", build_args={ARG: second})
    if fresh is None:
        criteria.append((rest[1], False, error))
    else:
        step = _pip_step(fresh)
        ran = not bool(step and step[1])
        criteria.append((rest[1], ran, f"the pip step {word[not ran]}"))
    return grade(TITLE, criteria)
