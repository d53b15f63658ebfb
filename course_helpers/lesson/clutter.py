"""What a real project folder holds besides the app: the clutter a build context drags along.

:func:`add_clutter` puts into a workspace what a developer's checkout has: a
``.git`` folder whose size comes from its history, a virtual environment,
Python caches, logs at several depths, notes, and a data dump.  The
virtual environment holds real installed packages (copied from the ones this
course runs on); the ``.git`` folder is a stand-in whose pack file is random
bytes, as incompressible as a real pack.  :func:`simulate_commit` changes what
a ``git commit`` changes inside ``.git``.
"""
from __future__ import annotations

import importlib.util
import os
import py_compile
import shutil
import uuid
from pathlib import Path

from ..errors import CourseError
from .workspace import SAMPLE_APP, bump_mtime

#: Packages copied into the stand-in virtual environment (all of them are the course's own dependencies).
VENV_PACKAGES = ("flask", "werkzeug", "jinja2", "click", "markupsafe", "itsdangerous", "blinker")


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _write(path: Path, data: bytes | str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    before = path.stat().st_mtime_ns if path.exists() else 0
    if isinstance(data, str):
        path.write_text(data)
    else:
        path.write_bytes(data)
    if before:
        bump_mtime(path, before)  # a same-size rewrite must not look unchanged to BuildKit


def add_clutter(folder: str | Path, *, history_mb: int = 30) -> list[str]:
    """Add a project's usual clutter to a workspace folder (never to the course's own ``sample_app/``).

    Args:
        folder: a workspace made by :func:`~course_helpers.lesson.workspace.workspace`.
        history_mb: megabytes of "history" in the stand-in ``.git`` pack file.

    Returns:
        The top-level entries added, e.g. ``[".git/", ".venv/", "__pycache__/", ...]``.

    Raises:
        CourseError: the folder does not exist, or it is the course's sample app.
    """
    root = Path(folder)
    if not root.is_dir():
        raise CourseError(f"There is no folder {root}: make one with workspace(...) first.")
    if root.resolve() == SAMPLE_APP.resolve():
        raise CourseError("That is the course's own sample app: add clutter to a copy made with workspace(...).")
    git = root / ".git"
    _write(git / "HEAD", "ref: refs/heads/main\n")
    _write(git / "config", "[core]\n\trepositoryformatversion = 0\n\tbare = false\n")
    _write(git / "refs" / "heads" / "main", uuid.uuid4().hex + uuid.uuid4().hex[:8] + "\n")
    _write(git / "index", os.urandom(2048))
    name = uuid.uuid4().hex + uuid.uuid4().hex[:8]
    # Random bytes: a real pack is zlib-compressed history, just as incompressible.
    _write(git / "objects" / "pack" / f"pack-{name}.pack", os.urandom(history_mb * 1_000_000))
    _write(git / "objects" / "pack" / f"pack-{name}.idx", os.urandom(64_000))
    site = root / ".venv" / "lib" / "python3.11" / "site-packages"
    _write(root / ".venv" / "pyvenv.cfg", "home = /usr/bin\ninclude-system-site-packages = false\n")
    for package in VENV_PACKAGES:
        source = _package_dir(package)
        if source is not None:
            shutil.copytree(source, site / package, ignore=shutil.ignore_patterns("__pycache__"),
                            dirs_exist_ok=True)
    app = root / "app.py"
    if app.is_file():
        py_compile.compile(str(app), cfile=str(root / "__pycache__" / "app.cpython-311.pyc"), doraise=True)
    _write(root / "logs" / "app.log", "INFO started\n")
    _write(root / "logs" / "2026" / "app.log", "INFO started\n")
    _write(root / "docs" / "README.md", "# How to run the app\n\n`docker run -p 127.0.0.1:5000:5000 IMAGE`\n")
    _write(root / "docs" / "todo.md", "- write tests\n")
    _write(root / "data" / "raw" / "dump.csv", "id,value\n" + "".join(f"{i},{i * 7 % 1000}\n" for i in range(200_000)))
    _write(root / "data" / "seed.csv", "id,value\n1,7\n")
    return [".git/", ".venv/", "__pycache__/", "logs/", "docs/", "data/"]


def simulate_commit(folder: str | Path) -> "ChangedPaths":
    """Change inside ``.git`` what ``git commit`` changes: a new object, the branch head, the index.

    Args:
        folder: a folder that :func:`add_clutter` filled.

    Returns:
        The paths changed, relative to the folder.

    Raises:
        CourseError: the folder has no ``.git``.
    """
    git = Path(folder) / ".git"
    if not (git / "HEAD").is_file():
        raise CourseError(f"{folder} has no .git folder: run add_clutter(...) on it first.")
    digest = uuid.uuid4().hex + uuid.uuid4().hex[:8]
    obj = git / "objects" / digest[:2] / digest[2:]
    _write(obj, os.urandom(300))
    _write(git / "refs" / "heads" / "main", digest + "\n")
    _write(git / "index", os.urandom(2048))
    return ChangedPaths(sorted(str(p.relative_to(folder)) for p in (obj, git / "refs" / "heads" / "main", git / "index")))


class ChangedPaths(list):
    """The paths a simulated commit changed; shown with what it stands for (git's, not Docker's)."""

    def __repr__(self) -> str:
        return (super().__repr__() + "\nNo docker command here: this is what git commit changes in .git, "
                "which a build context without a .dockerignore then carries.")
