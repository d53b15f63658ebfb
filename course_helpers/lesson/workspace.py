"""Scratch copies of the sample app that a notebook may edit freely.

Every notebook starts from a fresh copy, so it runs the same every time and
never changes ``sample_app/``.  Each copy is also marked as this run's: a
comment line with a fresh id goes into its ``requirements.txt`` (pip skips
comments).  ``COPY . .`` and ``COPY requirements.txt .`` therefore copy bytes
that no earlier build had, so a lesson never meets the cache of an earlier run,
or of the learner's own build of the sample app, and no one's cache needs
deleting for the lesson to show what it teaches.  ``edit`` changes a file so that every builder
notices: BuildKit can take a file with the same size and mtime as unchanged
(moby/buildkit#4950), so the mtime is always moved forward by at least a second.
"""
from __future__ import annotations

import difflib
import os
import re
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from ..config import REPO_ROOT
from ..errors import CourseError

SAMPLE_APP = REPO_ROOT / "sample_app"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def workspace_root() -> Path:
    """``$COURSE_WORKSPACE`` or ``<repo>/workspace`` (gitignored)."""
    root = os.environ.get("COURSE_WORKSPACE")
    return Path(root) if root else REPO_ROOT / "workspace"


RUN_MARK = "# course run:"

#: The sample app's Dockerfile as chapter 060 leaves it: the dependency list first, then the code.
REQUIREMENTS_FIRST = """\
FROM python:3.11-slim-bookworm

WORKDIR /usr/src/app

COPY requirements.txt .

RUN pip3 install -r requirements.txt

COPY . .

CMD ["python3", "-m", "flask", "run", "--host=0.0.0.0"]
"""


def workspace(name: str, source: str | Path | None = None, *, mark: bool = True) -> Path:
    """A fresh copy of the sample app (or ``source``) in ``<workspace root>/<name>/``.

    The folder is deleted and copied again on every call, so a notebook always
    starts from the same files.  File times are kept from the source (as
    ``cp -p``), so an unchanged copy builds from the cache like the original.

    Args:
        name: folder name, e.g. ``"030-cache"`` (letters, digits, ``.``, ``_``, ``-``).
        source: folder to copy (default: the repository's ``sample_app/``).
        mark: add this run's mark to ``requirements.txt`` (see the module's docstring).

    Returns:
        The new folder's path.

    Raises:
        CourseError: a bad name, or the source folder does not exist.
    """
    if not _NAME.match(name or ""):
        raise CourseError(f"Workspace name {name!r} is not a plain folder name: use letters, digits, '.', '_', '-'.")
    src = Path(source) if source is not None else SAMPLE_APP
    if not src.is_dir():
        raise CourseError(f"The folder to copy, {src}, does not exist: pass an existing folder as source.")
    root = workspace_root()
    target = root / name
    if src.resolve() == target.resolve() or target.resolve() in src.resolve().parents:
        raise CourseError(f"Cannot copy {src} into itself: choose another workspace name.")
    if target.exists():
        shutil.rmtree(target)
    # A new copy has no build history: explain()/predict() must not compare with an earlier run's builds.
    from ..builder.records import forget_context
    forget_context(target)
    root.mkdir(parents=True, exist_ok=True)
    shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints", "*.pyc"))
    requirements = target / "requirements.txt"
    if mark and requirements.is_file():
        set_run_mark(requirements, f"{RUN_MARK} {uuid.uuid4().hex[:12]}")
    return target


def set_run_mark(requirements: Path, mark: str) -> None:
    """Give ``requirements`` the run mark ``mark`` (``# course run: <id>``) in place of any it had.

    Raises:
        CourseError: the file is missing.
    """
    if not requirements.is_file():
        raise CourseError(f"{requirements} is missing: pass a copy of the sample app (workspace(...)).")
    text = "".join(line for line in requirements.read_text().splitlines(keepends=True)
                   if not line.startswith(RUN_MARK))
    if text and not text.endswith("\n"):
        text += "\n"
    requirements.write_text(text + mark + "\n")


@dataclass(frozen=True)
class Edit:
    """What :func:`edit` changed: ``print()`` it for a short diff.

    Attributes:
        path: the file.
        diff: unified diff (no context lines, no dates).
        replaced: how many occurrences were replaced.
    """

    path: Path
    diff: str
    replaced: int

    def __str__(self) -> str:
        return self.diff

    def __repr__(self) -> str:
        return self.diff


def bump_mtime(path: Path, previous_ns: int) -> None:
    """Set ``path``'s mtime to now, and at least a second past ``previous_ns`` (its mtime before an edit).

    A same-size edit (or a revert to the original size) must never look unchanged to a
    builder, whatever the clock says.
    """
    new_ns = max(time.time_ns(), previous_ns + 1_000_000_000)
    os.utime(path, ns=(new_ns, new_ns))


def edit(path: str | Path, old: str, new: str, *, count: int | None = 1) -> Edit:
    """Replace text in a file, as a learner would in an editor, and make sure builders see it.

    Args:
        path: the file (normally inside a :func:`workspace`).
        old: the exact text to replace.
        new: its replacement.
        count: how many occurrences to replace, from the top (None: all).

    Returns:
        An :class:`Edit`; its text is a short unified diff.

    Raises:
        CourseError: the file does not exist, or ``old`` is not in it.

    Example:
        >>> edit(ws / "app.py", "Hello world!", "Hello universe!")
        --- app.py
        +++ app.py
        @@ -6 +6 @@
        -    return 'Hello world!'
        +    return 'Hello universe!'
    """
    file = Path(path)
    if not file.is_file():
        raise CourseError(f"There is no file {file} to edit: check the path (is it inside the workspace?).")
    if file.resolve().is_relative_to(SAMPLE_APP.resolve()):
        raise CourseError(f"{file} is the course's own sample app: edit a copy made with workspace(...) instead.")
    text = file.read_text()
    found = text.count(old) if old else 0
    if not found:
        raise CourseError(f"The text {old!r} is not in {file}: check spelling and spaces, or edit the file "
                          "from a fresh workspace(...).")
    before_ns = file.stat().st_mtime_ns
    result = text.replace(old, new) if count is None else text.replace(old, new, count)
    file.write_text(result)
    bump_mtime(file, before_ns)
    diff = "".join(difflib.unified_diff(text.splitlines(True), result.splitlines(True),
                                        file.name, file.name, n=0)).rstrip("\n")
    return Edit(file, diff, found if count is None else min(found, count))
