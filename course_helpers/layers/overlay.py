"""Layers stacked as the engine stacks them: what each layer's entries and whiteouts do to the files below.

The one place the course applies Docker's whiteouts (the OCI image spec's
too), for the diff and the explorer alike:

* ``.wh.NAME`` deletes NAME, and everything under it, from the layers below;
* ``.wh..wh..opq`` in a folder hides everything the layers below put in that
  folder, except what this layer brings again;
* any other entry adds its path or replaces it; a file written where a folder
  was hides the folder's contents.

A layer's deletions happen before its own entries are written, as the engine
applies a layer, so the order of entries in the layer's tar does not matter.
(The explorer scores waste by dive's rules instead, which read whiteouts
differently on purpose; see :func:`.explorer.dive_efficiency`.)
"""
from __future__ import annotations

import posixpath
from typing import Iterable, NamedTuple

from .export import Member

WHITEOUT = ".wh."  # ".wh.NAME" deletes NAME in the same folder
OPAQUE = ".wh..wh..opq"  # in a folder: hide everything the lower layers put there


def is_whiteout(path: str) -> bool:
    """Whether a layer entry is a whiteout or an opaque marker rather than a file of the image."""
    return posixpath.basename(path).startswith(WHITEOUT)


class Step(NamedTuple):
    """One change a layer made to the filesystem below it.

    Attributes:
        path: the path changed.
        member: what the layer wrote there, or None when the step deletes it.
        lower: what the layers below had there, or None.
        removed: the entries the step took away: for a deletion, the path and everything
            under it; for a write, the contents of a folder that a file replaced.
    """

    path: str
    member: Member | None
    lower: Member | None
    removed: list[Member]


class Overlay:
    """The filesystem the layers build up, path by path, with each folder's children for quick subtrees.

    Attributes:
        entries: the entry each path holds now.
        origin: the index of the layer that wrote each entry (as passed to :meth:`apply`).
        follow_hardlinks: keep a hard link as the content it shares (kind ``file``, its
            target's size and digest), as the diff compares files; the explorer keeps links as links.
    """

    def __init__(self, follow_hardlinks: bool = False) -> None:
        self.entries: dict[str, Member] = {}
        self.origin: dict[str, int] = {}
        self.children: dict[str, set[str]] = {}
        self.follow_hardlinks = follow_hardlinks

    def copy(self) -> "Overlay":
        twin = Overlay(self.follow_hardlinks)
        twin.entries = dict(self.entries)
        twin.origin = dict(self.origin)
        twin.children = {path: set(kids) for path, kids in self.children.items()}
        return twin

    def subtree(self, path: str) -> list[str]:
        """``path`` and every path below it that was ever put, parents before their children."""
        out, todo = [], [path]
        while todo:
            p = todo.pop()
            out.append(p)
            todo.extend(self.children.get(p, ()))
        return out

    def remove(self, path: str) -> list[Member]:
        """Delete a path and everything under it; returns the entries removed."""
        removed = []
        for p in self.subtree(path):
            entry = self.entries.pop(p, None)
            self.origin.pop(p, None)
            self.children.pop(p, None)
            if entry is not None:
                removed.append(entry)
        self.children.get(_parent(path), set()).discard(path)
        return removed

    def apply(self, members: Iterable[Member], layer: int = -1) -> list[Step]:
        """Stack one layer on top: its whiteouts delete, then its entries are written.

        Args:
            members: the layer's entries as its tar holds them, whiteouts included.
            layer: the layer's index, kept in :attr:`origin` for what it writes.

        Returns:
            One :class:`Step` per path deleted or written, in that order.  A whiteout of a
            path the layers below never had is a step too (with nothing removed).
        """
        members = list(members)
        marks = [m for m in members if WHITEOUT in m.path and is_whiteout(m.path)]  # the substring test is quick
        steps: list[Step] = []
        if marks:
            present = {m.path for m in members}.difference(m.path for m in marks)
            for m in marks:
                folder, base = posixpath.split(m.path)
                if base == OPAQUE:
                    for path in self.subtree(folder)[1:]:  # parents first: a removed folder takes its children
                        if path not in present and path in self.entries:
                            steps.append(Step(path, None, self.entries[path], self.remove(path)))
                else:
                    path = posixpath.join(folder, base[len(WHITEOUT):])
                    steps.append(Step(path, None, self.entries.get(path), self.remove(path)))
            marked = set(map(id, marks))
            members = [m for m in members if id(m) not in marked]
        entries, origin, children = self.entries, self.origin, self.children
        for m in members:
            path = m.path
            lower = entries.get(path)
            removed: list[Member] = []
            if lower is not None and lower.kind == "dir" and m.kind != "dir":
                removed = self.remove(path)  # a file in place of a folder hides the folder's contents
            if path not in entries:
                children.setdefault(_parent(path), set()).add(path)
            if self.follow_hardlinks and m.kind == "hardlink":
                target = entries.get(m.link)
                if target is not None:
                    m = Member(path, "file", target.size, m.mode, "", target.digest)
            entries[path] = m
            origin[path] = layer
            steps.append(Step(path, m, lower, removed))
        return steps


def _parent(path: str) -> str:
    return path.rpartition("/")[0] or "/"
