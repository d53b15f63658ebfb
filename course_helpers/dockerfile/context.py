"""Snapshots of a build context, and what a build sends from it.

A snapshot lists every file and directory Docker would send (``.dockerignore``
applied) with a content hash and its mode: the two things both builders put
in a COPY's cache key (they ignore mtime; see docs/cache-rules.md).

Hashing is the slow part, so file hashes are cached by
``(path, size, mtime_ns, inode)`` in memory and in ``state_dir()/hash-cache.json``:
an unchanged file is never read twice.

Each build's record (:mod:`course_helpers.builder.records`) keeps a snapshot of its context,
which ``predict()`` and ``explain()`` compare a new state with.
"""
from __future__ import annotations

import hashlib
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, NamedTuple

from ..config import state_dir
from ..errors import CourseError
from ..formatting import format_size, table_html, table_text
from ..statefiles import write_atomic
from .ignore import read_dockerignore

_CHUNK = 1 << 20


class FileEntry(NamedTuple):
    """One context entry: ``digest`` (blake2b hex of the content; ``"dir"`` or ``"link:<target>"``) and ``mode``.

    A tuple, equal to ``(digest, mode)`` and printed as one, so that cache keys made from a fresh
    snapshot and from a recorded one (plain pairs, read back from JSON) are the same text.
    """

    digest: str
    mode: int

    __repr__ = tuple.__repr__


@dataclass
class ContextSnapshot:
    """What the context held: ``files`` maps ``/``-separated relative paths to :class:`FileEntry`."""

    root: str
    files: dict[str, FileEntry]


class _HashCache:
    """(path, size, mtime_ns, inode) -> digest, kept in memory and on disk between sessions."""

    def __init__(self) -> None:
        self.entries: dict[str, list] = {}
        self.loaded = False
        self.dirty = False

    def file(self) -> Path:
        return state_dir() / "hash-cache.json"

    def load(self) -> None:
        if self.loaded:
            return
        self.loaded = True
        try:
            self.entries = json.loads(self.file().read_text())
        except (OSError, ValueError):
            self.entries = {}

    def digest(self, path: str, st: os.stat_result) -> str:
        hit = self.entries.get(path)
        if hit is not None and hit[0] == st.st_size and hit[1] == st.st_mtime_ns and hit[2] == st.st_ino:
            return hit[3]
        key = (st.st_size, st.st_mtime_ns, st.st_ino)
        h = hashlib.blake2b(digest_size=16)
        fd = os.open(path, os.O_RDONLY)  # no buffered file object: most context files are small
        try:
            while chunk := os.read(fd, _CHUNK):
                h.update(chunk)
        finally:
            os.close(fd)
        digest = h.hexdigest()
        self.entries[path] = [*key, digest]
        self.dirty = True
        return digest

    def save(self) -> None:
        if not self.dirty:
            return
        # Each process writes its own temporary file: two kernels saving at once never collide.
        write_atomic(self.file(), json.dumps(self.entries, separators=(",", ":")))
        self.dirty = False


_CACHE = _HashCache()


def forget_hashes(on_disk: bool = True) -> None:
    """Forget the context files' remembered hashes: in this process, and with ``on_disk`` also the file.

    For benchmarks: the next snapshot then reads (``on_disk``) or re-reads the cache file as a new process would.
    """
    _CACHE.loaded, _CACHE.entries, _CACHE.dirty = False, {}, False
    if on_disk:
        _CACHE.file().unlink(missing_ok=True)


def walk_context(context: str | Path) -> Iterator[tuple[str, os.DirEntry, os.stat_result]]:
    """Every entry Docker would send from ``context``, ``.dockerignore`` applied: ``(relpath, entry, stat)``.

    Directories come before what they hold; an excluded directory is still walked when a
    ``!`` rule may bring back something inside it, but is not itself yielded.
    """
    root = os.path.abspath(context)
    ignore = read_dockerignore(root)
    stack = [("", root)]
    while stack:
        rel_dir, abs_dir = stack.pop()
        with os.scandir(abs_dir) as it:
            for entry in it:
                rel = f"{rel_dir}{entry.name}"
                st = entry.stat(follow_symlinks=False)
                is_excluded = ignore.rules and ignore.excluded(rel)
                if stat.S_ISDIR(st.st_mode):
                    if is_excluded and not ignore.may_reinclude_under(rel):
                        continue
                    if not is_excluded:
                        yield rel, entry, st
                    stack.append((rel + "/", entry.path))
                elif not is_excluded:
                    yield rel, entry, st


def take_snapshot(context: str | Path) -> ContextSnapshot:
    """Hash every file the builder would see in ``context`` (``.dockerignore`` applied).

    Args:
        context: the build context directory.

    Returns:
        A :class:`ContextSnapshot`.
    """
    root = os.path.abspath(context)
    ignore = read_dockerignore(root)
    _CACHE.load()
    files: dict[str, FileEntry] = {}
    excluded = ignore.excluded if ignore.rules else None
    digest, mode_of = _CACHE.digest, stat.S_IMODE
    stack = [("", root)]
    while stack:
        rel_dir, abs_dir = stack.pop()
        with os.scandir(abs_dir) as it:
            for entry in it:
                rel = rel_dir + entry.name
                is_excluded = excluded is not None and excluded(rel, walking=True)
                if entry.is_dir(follow_symlinks=False):
                    # An excluded directory is still walked when a '!' rule may bring back something inside.
                    if is_excluded and not ignore.may_reinclude_under(rel):
                        continue
                    if not is_excluded:
                        files[rel] = FileEntry("dir", mode_of(entry.stat(follow_symlinks=False).st_mode))
                    stack.append((rel + "/", entry.path))
                elif is_excluded:
                    continue  # never read, never even stat'ed
                elif entry.is_symlink():
                    files[rel] = FileEntry("link:" + os.readlink(entry.path), 0o777)
                elif entry.is_file(follow_symlinks=False):
                    st = entry.stat(follow_symlinks=False)
                    files[rel] = FileEntry(digest(entry.path, st), mode_of(st.st_mode))
    _CACHE.save()
    return ContextSnapshot(root, files)


# --- what a build sends ------------------------------------------------------------------------

@dataclass(frozen=True)
class ContextSize:
    """What ``docker build <context>`` sends, counted the way Docker selects it (``.dockerignore`` applied).

    Attributes:
        root: the context directory.
        files: relative path -> size in bytes, for every file and symlink sent.
        ignore_rules: the ``.dockerignore`` patterns in force (empty: none).
    """

    root: str
    files: dict[str, int]
    ignore_rules: tuple[str, ...] = ()

    @property
    def count(self) -> int:
        """How many files (and symlinks) are sent."""
        return len(self.files)

    @property
    def bytes(self) -> int:
        """Their total size."""
        return sum(self.files.values())

    def by_top_level(self) -> list[tuple[str, int, int]]:
        """``(top-level entry, files, bytes)``, biggest first: where the bytes are."""
        totals: dict[str, list[int]] = {}
        for path, size in self.files.items():
            top = path.split("/", 1)[0] + ("/" if "/" in path else "")
            entry = totals.setdefault(top, [0, 0])
            entry[0] += 1
            entry[1] += size
        return sorted(((k, n, b) for k, (n, b) in totals.items()), key=lambda r: (-r[2], r[0]))

    def _rows(self) -> list[list[str]]:
        return [[top, str(n), format_size(b)] for top, n, b in self.by_top_level()]

    def _caption(self) -> str:
        rules = f".dockerignore: {len(self.ignore_rules)} pattern(s)" if self.ignore_rules else "no .dockerignore"
        return f"build context {Path(self.root).name}/: {self.count} files, {format_size(self.bytes)} ({rules})"

    #: Docker has no dry run for the context: the nearest is what a build prints as it sends it.
    NO_COMMAND = ("No docker command counts this before a build: docker build --progress=plain prints "
                  "\"transferring context: SIZE\" as it sends it.")

    def __str__(self) -> str:
        return (self._caption() + "\n" + table_text(["ENTRY", "FILES", "SIZE"], self._rows()) + "\n"
                + self.NO_COMMAND)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        return table_html(["entry", "files", "size"], self._rows(), title=self._caption(), note=self.NO_COMMAND)


def context_size(context: str | Path) -> ContextSize:
    """Count what ``docker build`` would send from ``context``: files and bytes, per top-level entry.

    Docker sends every file of the folder except what ``.dockerignore`` excludes (the course applies
    Docker's own matching rules, :mod:`course_helpers.dockerfile.ignore`).

    Args:
        context: the build context directory.

    Returns:
        A :class:`ContextSize`; it shows as a table, biggest entries first.

    Raises:
        CourseError: the folder does not exist.

    Example:
        >>> context_size("workspace/080-build-context").bytes   # doctest: +SKIP
        31457997
    """
    root = os.path.abspath(context)
    if not os.path.isdir(root):
        raise CourseError(f"The build context {root} is not a folder: pass the folder that holds the Dockerfile.")
    files = {rel: st.st_size if stat.S_ISREG(st.st_mode) else 0  # a symlink travels as a name only
             for rel, entry, st in walk_context(root) if not stat.S_ISDIR(st.st_mode)}
    return ContextSize(root, files, tuple(read_dockerignore(root).patterns))
