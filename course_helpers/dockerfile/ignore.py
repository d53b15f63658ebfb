"""``.dockerignore`` matching as Docker does it (moby's patternmatcher).

Rules, each one Docker's:
- one pattern a line; blank lines and lines starting with ``#`` are skipped;
- a pattern is trimmed, cleaned like Go's ``filepath.Clean`` (``./a//b/`` is
  ``a/b``) and a leading ``/`` is dropped: patterns are relative to the context;
- ``*`` matches within one path segment, ``?`` one character, ``**`` any number
  of segments (``**/x`` matches ``x`` at any depth);
- ``!pattern`` re-includes what an earlier pattern excluded;
- every pattern is tried and the last one that matches wins;
- a pattern that matches a directory excludes everything under it (unless a
  later ``!`` pattern matches the file);
- ``*.log`` matches ``app.log`` only at the top: it does not match ``sub/app.log``.

Example:
    >>> ig = DockerIgnore(["*.log", "docs/**", "!docs/keep.md"])
    >>> ig.excluded("a.log"), ig.excluded("sub/a.log"), ig.excluded("docs/keep.md")
    (True, False, False)
"""
from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from pathlib import Path


def clean(pattern: str) -> str:
    """Clean a pattern like Go's ``filepath.Clean`` and drop a leading ``/``."""
    cleaned = posixpath.normpath(pattern.replace("\\", "/")) if pattern else "."
    # posixpath keeps a leading '//' (POSIX allows it); Go folds it to '/'.
    cleaned = re.sub(r"^/+", "/", cleaned)
    if len(cleaned) > 1 and cleaned.startswith("/"):
        cleaned = cleaned[1:]
    return cleaned


def glob_regex(pattern: str, *, globstar: bool = True) -> re.Pattern:
    """Translate a glob to an anchored regex, following moby's patternmatcher.

    The one glob matcher of the course: ``.dockerignore`` lines and COPY/ADD sources both use it.
    ``*`` and ``?`` stay within one path segment, ``[...]`` is a class (``[!...]`` or ``[^...]``
    negated) and ``\\`` makes the next character literal.

    Args:
        pattern: a cleaned, ``/``-separated glob (e.g. ``"src/*.py"``).
        globstar: ``**`` matches any number of segments, as in ``.dockerignore``. False for
            COPY/ADD sources, which Docker matches with Go's ``filepath.Match``: there ``**``
            is two ``*`` and stays within one segment.

    Returns:
        A compiled regex that matches a whole relative path.

    Example:
        >>> bool(glob_regex("file[12].txt").match("file2.txt")), bool(glob_regex("a/**").match("a/b/c"))
        (True, True)
    """
    out = "^"
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "*":
            if globstar and i + 1 < n and pattern[i + 1] == "*":
                i += 1
                while i + 1 < n and pattern[i + 1] == "*":
                    i += 1
                if i + 1 < n and pattern[i + 1] == "/":
                    i += 1
                # '**' at the end matches everything; elsewhere zero or more whole segments.
                out += ".*" if i + 1 >= n else "(.*/)?"
            else:
                out += "[^/]*"
        elif ch == "?":
            out += "[^/]"
        elif ch == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out += re.escape(ch)
            else:
                body = pattern[i + 1:end]
                if body.startswith("!") or body.startswith("^"):
                    body = "^" + body[1:]
                out += "[" + body.replace("\\", "\\\\") + "]"
                i = end
        elif ch == "\\" and i + 1 < n:
            i += 1
            out += re.escape(pattern[i])
        else:
            out += re.escape(ch)
        i += 1
    return re.compile(out + "$")


@dataclass(frozen=True)
class _Rule:
    pattern: str
    exclusion: bool  # True for '!' lines
    regex: re.Pattern
    dirs: int  # number of '/'-separated parts, for parent-directory matching


class DockerIgnore:
    """A compiled ``.dockerignore``.

    Args:
        patterns: the lines of a ``.dockerignore`` (comments and blanks are skipped).
    """

    def __init__(self, patterns: list[str]):
        self.rules: list[_Rule] = []
        for raw in patterns:
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            exclusion = line.startswith("!")
            if exclusion:
                line = line[1:].strip()
            pattern = clean(line)
            self.rules.append(_Rule(pattern, exclusion, glob_regex(pattern), pattern.count("/") + 1))
        self.has_exceptions = any(r.exclusion for r in self.rules)

    @property
    def patterns(self) -> list[str]:
        """The cleaned patterns, ``!`` kept, in order."""
        return [("!" if r.exclusion else "") + r.pattern for r in self.rules]

    def excluded(self, path: str, *, walking: bool = False) -> bool:
        """True when ``path`` (relative to the context, ``/``-separated) is left out of the context.

        Args:
            path: e.g. ``"src/app.py"``.
            walking: the path comes from a top-down walk of the context that skips the
                directories this returns True for (and that :meth:`may_reinclude_under` does not
                reopen): it is clean already and, without ``!`` patterns, no rule matches a parent,
                so only the path itself is matched.  The answer is the same; the walk is faster.

        Returns:
            Whether Docker leaves it out.
        """
        if not walking:
            path = clean(path)
        parents = not walking or self.has_exceptions
        parts = path.split("/") if parents else []
        matched = False
        for rule in self.rules:
            if rule.regex.match(path):
                hit = True
            else:
                # A pattern that matches a parent directory covers everything below it.
                hit = any(rule.regex.match("/".join(parts[:k])) for k in range(1, len(parts)))
            if hit:
                matched = not rule.exclusion
        return matched

    def may_reinclude_under(self, directory: str) -> bool:
        """True when some ``!`` pattern could match a path inside ``directory``.

        Used to decide whether an excluded directory must still be walked.
        """
        if not self.has_exceptions:
            return False
        prefix = directory.rstrip("/") + "/"
        for rule in self.rules:
            if rule.exclusion:
                literal = re.split(r"[*?\[\\]", rule.pattern, maxsplit=1)[0]
                if literal.startswith(prefix) or prefix.startswith(literal) or not literal:
                    return True
        return False


def read_dockerignore(context: str | Path) -> DockerIgnore:
    """The ``.dockerignore`` of a context (an empty one when the file is absent).

    Args:
        context: the build context directory.

    Returns:
        A :class:`DockerIgnore`.
    """
    try:
        text = (Path(context) / ".dockerignore").read_text(encoding="utf-8")
    except FileNotFoundError:
        return DockerIgnore([])
    return DockerIgnore(text.splitlines())
