""".dockerignore matching, checked against what Docker does (cases seen on the engine in docs/cache-rules.md)."""
from __future__ import annotations

import pytest

from course_helpers.dockerfile.ignore import DockerIgnore, clean, read_dockerignore


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
