"""Chapter 015's exercise: a ``.dockerignore`` that keeps ``COPY . .`` cached, judged without an engine.

The learner's folder holds the fifth recorded build's files plus ``notes.txt``,
and a one-line ``.dockerignore`` (``notes.txt``) that still makes ``COPY . .``
run, because the new ``.dockerignore`` is itself part of the context.  The
check asks :func:`~course_helpers.cache.predict.predict` what the next build
would do, compared with the recorded build the learner names, and reads the
context as Docker would select it.
"""
from __future__ import annotations

from pathlib import Path

from ..cache.predict import predict
from ..dockerfile.context import context_size
from ..errors import DockerfileError
from ..lesson.exercise import ExerciseResult, grade, not_answered, untouched

TITLE = "COPY . . from the cache again, with notes.txt left out"

#: The chapter's first attempt, which the exercise starts from.
STARTER = "notes.txt\n"


def check_offline_ignore(folder: str | Path, against) -> ExerciseResult:
    """Grade the learner's ``.dockerignore`` on a prediction: every step cached, and no notes in the context.

    Args:
        folder: the learner's copy of the sample app (chapter 015's ``app_dir``).
        against: the recorded build to compare with (``builds.record("fifth")``).

    Returns:
        An :class:`~course_helpers.lesson.exercise.ExerciseResult`, one line per criterion; "not answered
        yet" while ``.dockerignore`` says only what the starter said.
    """
    folder = Path(folder)
    if untouched(folder / ".dockerignore", STARTER):
        return not_answered(TITLE, "Add to the .dockerignore in the cell above, run that cell, "
                                   "then run this check again.")
    # Deleting notes.txt would also keep COPY . . cached: the exercise is to leave it out, not lose it.
    if not (folder / "notes.txt").exists():
        kept_out, saw = False, "notes.txt is no longer in the folder: put it back"
    else:
        kept_out = "notes.txt" not in context_size(folder).files
        saw = "left out" if kept_out else "notes.txt is in the context"
    criteria = [("notes.txt stays out of the build context", kept_out, saw)]
    try:
        prediction = predict(folder, against=against)
    except DockerfileError as exc:  # e.g. a pattern that leaves out requirements.txt, which a COPY needs
        return grade(TITLE, criteria + [("predict() takes every step from the cache", False,
                                         str(exc).splitlines()[0])])
    runs = [s for s in prediction.steps if s.cached is not True]
    criteria.append(("predict() takes every step from the cache", not runs,
                     "; ".join(f"{s.instruction} {s.verdict}: {s.reason}" for s in runs) or "every step cached"))
    return grade(TITLE, criteria)
