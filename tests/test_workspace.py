"""workspace.py: fresh copies of the sample app, and edits every builder notices."""
from __future__ import annotations

import hashlib

import pytest

from course_helpers.config import REPO_ROOT
from course_helpers.errors import CourseError


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_WORKSPACE", str(tmp_path / "ws"))
    return tmp_path / "ws"


def _digest(folder) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(p.name.encode() + p.read_bytes() + str(p.stat().st_mtime_ns).encode())
    return h.hexdigest()


def test_fresh_copy_every_call(root):
    from course_helpers.lesson.workspace import workspace

    ws = workspace("demo")
    assert ws == root / "demo"
    assert sorted(p.name for p in ws.iterdir()) == ["Dockerfile", "app.py", "requirements.txt"]
    (ws / "stray.txt").write_text("x")
    (ws / "app.py").write_text("changed")
    ws2 = workspace("demo")
    assert not (ws2 / "stray.txt").exists()
    assert (ws2 / "app.py").read_text() == (REPO_ROOT / "sample_app" / "app.py").read_text()


def test_default_root_is_gitignored(monkeypatch):
    from course_helpers.lesson.workspace import workspace_root

    monkeypatch.delenv("COURSE_WORKSPACE", raising=False)
    assert workspace_root() == REPO_ROOT / "workspace"
    assert "/workspace/" in (REPO_ROOT / ".gitignore").read_text().split()


def test_bad_names_refused(root):
    from course_helpers.lesson.workspace import workspace

    for bad in ("", "../x", "a/b", ".hidden"):
        with pytest.raises(CourseError):
            workspace(bad)


def test_edit_and_revert_bump_mtime_and_leave_sample_app_alone(root):
    from course_helpers.lesson.workspace import edit, workspace

    sample = _digest(REPO_ROOT / "sample_app")
    ws = workspace("edit")
    app = ws / "app.py"
    size0, mtime0 = app.stat().st_size, app.stat().st_mtime_ns
    result = edit(app, "Hello world!", "Hello there!")  # same length: only the mtime can tell
    assert app.stat().st_size == size0
    mtime1 = app.stat().st_mtime_ns
    assert mtime1 >= mtime0 + 1_000_000_000
    assert str(result).splitlines() == ["--- app.py", "+++ app.py", "@@ -6 +6 @@",
                                        "-    return 'Hello world!'", "+    return 'Hello there!'"]
    edit(app, "Hello there!", "Hello world!")  # a revert restores the original size and text
    assert app.stat().st_size == size0 and app.stat().st_mtime_ns >= mtime1 + 1_000_000_000
    assert _digest(REPO_ROOT / "sample_app") == sample


def test_edit_errors_name_the_file(root):
    from course_helpers.lesson.workspace import edit, workspace

    ws = workspace("err")
    with pytest.raises(CourseError, match="not in .*app.py"):
        edit(ws / "app.py", "Goodbye", "x")
    with pytest.raises(CourseError, match="no file"):
        edit(ws / "nope.py", "a", "b")
    with pytest.raises(CourseError, match="sample app"):
        edit(REPO_ROOT / "sample_app" / "app.py", "Hello", "Bye")


def test_edit_count(root):
    from course_helpers.lesson.workspace import edit, workspace

    f = workspace("count") / "requirements.txt"
    f.write_text("a\na\na\n")
    assert edit(f, "a", "b").replaced == 1 and f.read_text() == "b\na\na\n"
    assert edit(f, "a", "c", count=None).replaced == 2 and f.read_text() == "b\nc\nc\n"
