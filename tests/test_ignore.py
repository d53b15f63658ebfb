""".dockerignore matching, checked against what Docker does (cases seen on the engine in docs/cache-rules.md)."""
from __future__ import annotations

import pytest

from course_helpers.dockerfile.ignore import DockerIgnore, clean, glob_regex, read_dockerignore


@pytest.mark.parametrize("raw, cleaned", [("./a//b/", "a/b"), ("/abs", "abs"), ("a/../b", "b"), ("/", "/")])
def test_clean(raw, cleaned):
    assert clean(raw) == cleaned


@pytest.mark.parametrize("patterns, path, excluded", [
    (["*.log"], "debug.log", True),
    (["*.log"], "sub/debug.log", False),          # seen on the engine: a new sub/y.log invalidated COPY . .
    (["**/*.log"], "sub/deep/debug.log", True),
    (["**/__pycache__"], "pkg/__pycache__/m.pyc", True),
    (["docs/**", "!docs/keep.md"], "docs/keep.md", False),
    (["docs/**", "!docs/keep.md"], "docs/skip.md", True),
    (["!docs/keep.md", "docs/**"], "docs/keep.md", True),   # the last match wins
    (["build"], "build/out/x.o", True),                      # a directory covers what is under it
    (["a?c"], "abc", True),
    (["[ab].txt"], "b.txt", True),
    (["# comment", "", "  spaced.txt  "], "spaced.txt", True),
    (["Dockerfile"], "Dockerfile", True),
])
def test_matching(patterns, path, excluded):
    assert DockerIgnore(patterns).excluded(path) is excluded


def test_read_dockerignore(tmp_path):
    assert read_dockerignore(tmp_path).patterns == []
    (tmp_path / ".dockerignore").write_text("# c\n./x/\n!x/keep\n")
    assert read_dockerignore(tmp_path).patterns == ["x", "!x/keep"]


@pytest.mark.parametrize("patterns", [
    ["*.log", "build", "**/__pycache__"],            # no '!': the walk skips excluded folders whole
    ["docs/**", "!docs/keep.md", "*.log", "a/b"],    # with '!': excluded folders are walked for exceptions
])
def test_snapshot_walk_agrees_with_matching_each_path(tmp_path, patterns):
    from course_helpers.dockerfile.context import take_snapshot

    files = ["app.py", "x.log", "sub/y.log", "build/out/x.o", "pkg/__pycache__/m.pyc", "pkg/m.py",
             "docs/keep.md", "docs/skip.md", "docs/deep/keep.md", "a/b/c.txt", "a/c.txt"]
    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(name)
    (tmp_path / ".dockerignore").write_text("\n".join(patterns) + "\n")
    ignore = DockerIgnore(patterns)
    kept = {k for k, v in take_snapshot(tmp_path).files.items() if v.digest != "dir"}
    assert kept == {name for name in files + [".dockerignore"] if not ignore.excluded(name)}


@pytest.mark.parametrize("pattern, globstar, path, matches", [
    ("file[12].txt", True, "file2.txt", True),
    ("file[!12].txt", True, "file3.txt", True),
    ("file[!12].txt", True, "file1.txt", False),
    (r"what\?.txt", True, "what?.txt", True),      # an escaped '?' is a literal one...
    (r"what\?.txt", True, "whatX.txt", False),     # ...not any character
    ("a/**", True, "a/b/c", True),                 # .dockerignore: '**' crosses directories
    ("a/**", False, "a/b/c", False),               # COPY sources (Go's filepath.Match): it does not
    ("a/**", False, "a/b", True),
])
def test_glob_regex(pattern, globstar, path, matches):
    assert bool(glob_regex(pattern, globstar=globstar).match(path)) is matches


def test_copy_source_glob_uses_the_shared_matcher():
    # predict's own matcher escaped '[' and found nothing for a class: the source was "not in the context".
    from course_helpers.cache.predict import select_files
    from course_helpers.dockerfile.context import ContextSnapshot, FileEntry
    from course_helpers.dockerfile.parse import parse_dockerfile_text

    names = ["file1.txt", "file2.txt", "file3.txt", "sub/file1.txt"]
    snapshot = ContextSnapshot("/ctx", {name: FileEntry(name, 0o644) for name in names})
    copy = parse_dockerfile_text("FROM scratch\nCOPY file[12].txt /app/\n").instructions[1]
    assert set(select_files(snapshot, copy.sources[0], copy, "Dockerfile")) == {"file1.txt", "file2.txt"}
