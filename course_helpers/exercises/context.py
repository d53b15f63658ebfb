"""Chapter 080's exercise: a ``.dockerignore`` that keeps the build context small and the cache steady.

The learner's folder is a copy of the sample app with a project's clutter
(:func:`~course_helpers.lesson.clutter.add_clutter`).  The check builds it,
lists the files that reached the image, then commits, logs and edits notes
the way a working day does, and builds again.
"""
from __future__ import annotations

from pathlib import Path

from ..dockerfile.context import context_size
from ..formatting import format_size
from ..layers.images import get_image
from ..lesson.clutter import add_clutter, simulate_commit
from ..lesson.exercise import ExerciseResult, build_for_check, grade, not_answered, not_checked, untouched
from ..lesson.run import run_command
from ..lesson.workspace import REQUIREMENTS_FIRST, workspace

TITLE = "A .dockerignore for a real project folder"
MAX_CONTEXT = 100_000  # bytes: the app itself is well under 1 kB
NEEDED = ("app.py", "requirements.txt", "data/seed.csv", "docs/README.md")
UNWANTED = (".git/", ".venv/", "__pycache__/", "logs/", "data/raw/", "docs/todo.md")

#: The Dockerfile of the lesson and its exercise: chapter 060's, dependencies first.
DOCKERFILE = REQUIREMENTS_FIRST


def prepare(name: str = "080-exercise") -> Path:
    """A fresh workspace for the exercise: the sample app, the Dockerfile above, and the clutter.

    Returns:
        The folder; the learner writes ``.dockerignore`` in it.
    """
    folder = workspace(name)
    (folder / "Dockerfile").write_text(DOCKERFILE)
    add_clutter(folder)
    return folder


def files_in_image(image: str) -> list[str]:
    """Files and links under the image's working directory, relative to it (what ``COPY . .`` brought)."""
    workdir = get_image(image).attrs.get("Config", {}).get("WorkingDir") or "/"
    listing = run_command(image, f"cd {workdir} && find . -mindepth 1 ! -type d | sort", network=False)
    return [line[2:] for line in listing.output.splitlines() if line.startswith("./")]


def _short(paths: list[str], limit: int = 4) -> str:
    return ", ".join(paths[:limit]) + (f" and {len(paths) - limit} more" if len(paths) > limit else "")


def check_dockerignore(folder: str | Path, tag: str = "context-demo:exercise") -> ExerciseResult:
    """Grade the learner's ``.dockerignore`` on a real build.

    Criteria: the context is under 100 kB; the app's files reach the image; nothing of
    ``.git``, ``.venv``, caches, logs, the raw data or the other notes does; and after a
    commit, a log line and a notes edit, a rebuild takes every step from the cache.

    Args:
        folder: the exercise folder (:func:`prepare`).
        tag: the image name to build.

    Returns:
        An :class:`~course_helpers.lesson.exercise.ExerciseResult`, one line per criterion; "not answered
        yet", with no build, while ``.dockerignore`` is missing or holds only comments.
    """
    folder = Path(folder)
    if untouched(folder / ".dockerignore", ""):
        return not_answered(TITLE, "Write your allow-list in the .dockerignore cell above, run that cell, "
                                   "then run this check again.")
    size = context_size(folder)
    biggest = size.by_top_level()[0][0] if size.files else "nothing"
    criteria = [("the context Docker sends is under 100 kB", size.bytes < MAX_CONTEXT,
                 f"{format_size(size.bytes)} in {size.count} files, the biggest entry {biggest}")]
    rest = ["app.py, requirements.txt, data/seed.csv and docs/README.md are in the image",
            "no file of .git, .venv, __pycache__, logs, data/raw or docs/todo.md is in the image",
            "after a commit, a log line and a notes edit, every step comes from the cache"]
    report, error = build_for_check(folder, tag, "building your image")
    if report is None:
        return grade(TITLE, criteria + [("the image builds", False, error)] + not_checked(rest, "the build failed"))
    files = files_in_image(tag)
    missing = [p for p in NEEDED if p not in files]
    criteria.append((rest[0], not missing, f"missing: {', '.join(missing)}" if missing else "all four are there"))
    extra = [f for f in files if any(f.startswith(u) or f == u for u in UNWANTED) or f.endswith((".pyc", ".log"))]
    criteria.append((rest[1], not extra, f"found {_short(extra)}" if extra else f"{len(files)} files, none of those"))
    simulate_commit(folder)
    with open(folder / "logs" / "2026" / "app.log", "a") as log:
        log.write("INFO one more request\n")
    with open(folder / "docs" / "todo.md", "a") as notes:
        notes.write("- check the .dockerignore\n")
    again, error = build_for_check(folder, tag, "building again after a commit, a log line and a notes edit")
    if again is None:
        criteria.append((rest[2], False, error))
    else:
        ran = again.ran_steps
        criteria.append((rest[2], not ran, f"ran: {'; '.join(ran)}" if ran else "every step cached"))
    return grade(TITLE, criteria)
