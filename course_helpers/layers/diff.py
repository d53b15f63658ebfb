"""Compare two images layer by layer and, if asked, file by file.

Layers are compared by diff id (the digest of the layer's uncompressed tar):
the same diff id is the same content.  File changes come from the engine's own
export (``GET /images/get``, what ``docker save`` uses), read by
:mod:`.export` as it streams, both images in one request so that the layers
they share travel once, each layer read once per machine and kept by diff id.
The layers are stacked with the engine's whiteout rules (:mod:`.overlay`), and
only the paths the differing layers touch are compared.

Cost, measured on the course machine with both image stores (bench/bench_diff.py):
about the time of the engine's own export of the two images, which no client can skip.
"""
from __future__ import annotations

import html
import posixpath
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import docker

from ..engine.client import resolve
from ..engine.session import course_call
from ..formatting import (command_html, command_text, folded_html, format_size, shell_line, short_id, table_html,
                          table_text)
from .export import ImageLayers, Member, image_layers, kept
from .history import layer_history
from .images import get_image
from .overlay import Overlay


# ------------------------------------------------------------------ results


@dataclass(frozen=True)
class LayerInfo:
    """One layer as the diff reports it.

    Attributes:
        diff_id: ``sha256:...`` of the layer's uncompressed tar (content identity).
        created_by: the instruction that made it (from the history row), cleaned.
        size: bytes, as ``docker history`` shows them.
        position_a / position_b: 0-based position among the image's layers (None if absent).
    """

    diff_id: str
    created_by: str
    size: int
    position_a: int | None
    position_b: int | None

    def cells(self) -> list[str]:
        pos = lambda p: "-" if p is None else str(p)  # noqa: E731
        return [short_id(self.diff_id), pos(self.position_a), pos(self.position_b), format_size(self.size),
                self.created_by or "(imported root filesystem)"]


@dataclass(frozen=True)
class FileChange:
    """One path whose state differs between a and b.

    Attributes:
        path: absolute path in the image.
        change: ``"added"`` (only in b), ``"deleted"`` (only in a), ``"modified"``
            (in both, different content, type, mode or link target).
        kind: ``file``, ``dir``, ``symlink``, ... (b's, or a's when deleted).
        size_a / size_b: bytes in a and b (None when absent).
        layer: the instruction of the layer that made the difference (b's, or a's).
    """

    path: str
    change: str
    kind: str
    size_a: int | None
    size_b: int | None
    layer: str

    def cells(self) -> list[str]:
        size = lambda s: "-" if s is None else format_size(s)  # noqa: E731
        return [self.change, self.kind, self.path, size(self.size_a), size(self.size_b), self.layer]


# A notebook stores what a cell shows: these keep a diff's output under 20 kB however many files differ.
GROUPS_SHOWN = 12  # folded rows in the HTML table (a reinstall of Flask touches about ten folders)
GROUPS_IN_TEXT = 8  # and in the plain text
LISTING_CHARS = 6000  # of file names behind "every file"; the rest stay in .files


def _size(size: int | None) -> str:
    return "-" if size is None else format_size(size)


@dataclass(frozen=True)
class FileGroup:
    """Changed files of one folder with the same change, kind, suffix and layer: one row of the folded table.

    Attributes:
        folder, change, kind, suffix, layer: what the files share (``suffix`` is ``""`` for no suffix).
        rows: the files themselves.
    """

    folder: str
    change: str
    kind: str
    suffix: str
    layer: str
    rows: list[FileChange]

    headers = ["CHANGE", "KIND", "PATH", "FILES", "SIZE A", "SIZE B", "LAYER"]

    def cells(self) -> list[str]:
        def total(sizes: list[int | None]) -> str:
            known = [s for s in sizes if s is not None]
            return format_size(sum(known)) if known else "-"

        if len(self.rows) == 1:
            path = self.rows[0].path
        else:
            path = posixpath.join(self.folder, "*" + self.suffix if self.suffix else "*")
        return [self.change, self.kind, path, str(len(self.rows)), total([r.size_a for r in self.rows]),
                total([r.size_b for r in self.rows]), self.layer]


class FileChanges(list):
    """The file-level changes (a list of :class:`FileChange`, sorted by path) with counts."""

    headers = ["CHANGE", "KIND", "PATH", "SIZE A", "SIZE B", "LAYER"]

    def __init__(self, rows: list[FileChange] = (), same_content: int = 0, layers_read: int = 0):
        super().__init__(rows)
        #: paths rewritten by a differing layer with the very same content and mode
        self.same_content = same_content
        self.layers_read = layers_read

    def count(self, change: str) -> int:  # type: ignore[override]
        return sum(1 for c in self if c.change == change)

    def summary(self) -> str:
        return (f"files added: {self.count('added')}, modified: {self.count('modified')}, "
                f"deleted: {self.count('deleted')}; rewritten with identical content: {self.same_content}")

    def by_directory(self, depth: int = 5) -> list[tuple[str, str, int]]:
        """(directory cut to ``depth`` parts, change, count): where the changes are, in a few lines."""
        counts: dict[tuple[str, str], int] = {}
        for c in self:
            parts = posixpath.dirname(c.path).split("/")[1:depth + 1]
            key = ("/" + "/".join(parts), c.change)
            counts[key] = counts.get(key, 0) + 1
        return [(d, ch, n) for (d, ch), n in sorted(counts.items())]

    def by_suffix(self) -> list[tuple[str, str, int]]:
        """(file name suffix, change, count), most first: what kind of files changed (``.pyc``, ``.py``)."""
        counts: dict[tuple[str, str], int] = {}
        for c in self:
            suffix = posixpath.splitext(c.path)[1] if c.kind == "file" else f"({c.kind})"
            key = (suffix or "(no suffix)", c.change)
            counts[key] = counts.get(key, 0) + 1
        return [(sx, ch, n) for (sx, ch), n in sorted(counts.items(), key=lambda item: (-item[1], item[0]))]

    def groups(self) -> list["FileGroup"]:
        """The changes folded: one row per folder, kind of change, suffix and layer, in path order.

        Reinstalled packages rewrite their ``.pyc`` files by the hundred, one folder at a time;
        a row per folder and suffix says that in a few lines.
        """
        found: dict[tuple[str, str, str, str, str], list[FileChange]] = {}
        for c in self:
            folder, name = posixpath.split(c.path)
            suffix = posixpath.splitext(name)[1] if c.kind == "file" else ""
            found.setdefault((folder, c.change, c.kind, suffix, c.layer), []).append(c)
        return [FileGroup(*key, rows) for key, rows in found.items()]

    def text(self, limit: int = GROUPS_IN_TEXT) -> str:
        """Counts, the folder and suffix roll-ups, and up to ``limit`` folded rows (the full list is :attr:`files`)."""
        out = [self.summary()]
        rollup = self.by_directory()
        if rollup:
            out.append(table_text(["DIRECTORY", "CHANGE", "FILES"], [[d, ch, str(n)] for d, ch, n in rollup]))
            out.append(table_text(["SUFFIX", "CHANGE", "FILES"], [[x, ch, str(n)] for x, ch, n in self.by_suffix()]))
        groups = self.groups()
        if groups:
            out.append(table_text(FileGroup.headers, [g.cells() for g in groups[:limit]]))
        if len(groups) > limit:
            out.append(f"... and {len(groups) - limit} more rows")
        if len(groups) < len(self):
            out.append(f"(rows of several files are folded; every file: .files, {len(self)} rows)")
        return "\n".join(out)

    def html(self) -> str:
        """The same for a notebook, and the full list of files behind a ``<details>`` that opens it."""
        out = f"<p>{html.escape(self.summary())}</p>"
        if not self:
            return out
        out += table_html(["DIRECTORY", "CHANGE", "FILES"],
                          [[d, ch, str(n)] for d, ch, n in self.by_directory()], code=True)
        out += table_html(["SUFFIX", "CHANGE", "FILES"], [[x, ch, str(n)] for x, ch, n in self.by_suffix()],
                          code=True)
        groups = self.groups()
        more = f"{len(groups) - GROUPS_SHOWN} more rows: every file is in .files" if len(groups) > GROUPS_SHOWN else ""
        out += table_html(FileGroup.headers, [g.cells() for g in groups[:GROUPS_SHOWN]], code=["PATH"], note=more)
        if len(groups) < len(self):
            out += folded_html(f"every file ({len(self)})", self.listing())
        return out

    def listing(self, budget: int = LISTING_CHARS) -> str:
        """Every changed file under its folder, the names side by side, up to ``budget`` characters.

        A folder is written once; a file's sizes only when they differ (``app.py (160B -> 163B)``),
        so a reinstall's hundreds of files take a few lines each.
        """
        lines: list[str] = []
        used = listed = 0
        for group in self.groups():
            head = f"{group.folder.rstrip('/')}/  ({len(group.rows)} {group.change}, {group.layer or 'no layer'})"
            names = [posixpath.basename(c.path) + ("" if c.size_a == c.size_b else
                                                    f" ({_size(c.size_a)} -> {_size(c.size_b)})")
                     for c in group.rows]
            if used + len(head) > budget:
                break
            lines.append(head)
            used += len(head)
            row = "   "
            cut = False
            for name in names:
                if used + len(name) > budget:
                    cut = True
                    break
                if len(row) + len(name) > 100 and row.strip():
                    lines.append(row)
                    row = "   "
                row += " " + name
                used += len(name) + 1
                listed += 1
            if row.strip():
                lines.append(row)
            if cut:
                break
        if listed < len(self):
            lines.append(f"... and {len(self) - listed} more in .files")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.text()

    __repr__ = __str__


@dataclass
class ImageDiff:
    """What two images share and where they differ.

    Attributes:
        a, b: the names compared; a_id, b_id: their image ids.
        shared: layers present in both (same diff id), bottom first.
        shared_prefix: how many bottom layers are the same in the same order;
            only those are the very same stored layers (a layer is stored on top of its parent).
        only_a, only_b: layers in one image only, bottom first.
        files: file-level changes (``files=True``), else None.
        seconds: time the comparison took.
    """

    a: str
    b: str
    a_id: str
    b_id: str
    shared: list[LayerInfo]
    shared_prefix: int
    only_a: list[LayerInfo]
    only_b: list[LayerInfo]
    files: FileChanges | None = None
    seconds: float = 0.0

    @property
    def same_image(self) -> bool:
        return self.a_id == self.b_id

    def _head(self) -> list[str]:
        lines = [f"a = {self.a} ({short_id(self.a_id)})", f"b = {self.b} ({short_id(self.b_id)})"]
        if self.same_image:
            lines.append("a and b are the same image (one id)")
        lines += [f"shared layers: {len(self.shared)}",
                  f"shared at the bottom, in the same order: {self.shared_prefix}",
                  f"only in a: {len(self.only_a)}",
                  f"only in b: {len(self.only_b)}"]
        moved = len(self.shared) - self.shared_prefix
        if moved:
            lines.append(f"({moved} shared layer(s) sit above a difference: same content, stored again "
                         "because a layer is stacked on its parent)")
        return lines

    def _rows(self) -> list[list[str]]:
        rows = []
        for label, items in (("shared", self.shared), ("only a", self.only_a), ("only b", self.only_b)):
            rows += [[label] + item.cells() for item in items]
        return rows

    headers = ["WHERE", "DIFF ID", "POS A", "POS B", "SIZE", "CREATED BY"]

    @property
    def commands(self) -> list[str]:
        """The docker commands that show the same: each image's layer list, and (files=True) the export it reads."""
        out = [shell_line(["docker", "image", "inspect", "--format", "{{json .RootFS.Layers}}", self.a, self.b])]
        if self.files is not None:
            out.append(shell_line(["docker", "save", "-o", "images.tar", self.a, self.b]))
        return out

    def __str__(self) -> str:
        parts = ["\n".join(self._head()), table_text(self.headers, self._rows())]
        if self.files is not None:
            parts.append(self.files.text())
        parts.append(command_text(self.commands))
        return "\n".join(parts)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        head = "<br>".join(html.escape(line) for line in self._head())
        out = f"<p>{head}</p>" + table_html(self.headers, self._rows(), code=True)
        if self.files is not None:
            out += self.files.html()
        return out + command_html(self.commands)


# ------------------------------------------------------------------ diff_images


def _layer_table(img: Any, cli: docker.DockerClient) -> list[tuple[str, str, int]]:
    """(diff id, created_by, size) per layer of the image, bottom first."""
    return [(row.diff_id, row.text, row.size) for row in layer_history(img.attrs, cli) if row.diff_id]


def _stack(fs: Overlay, layers: list[list[Member]], start: int) -> dict[str, int]:
    """Apply layers ``start`` and up on fs; returns every path they wrote or deleted, with the last layer that did."""
    touched: dict[str, int] = {}
    for i in range(start, len(layers)):
        for step in fs.apply(layers[i], i):
            for entry in step.removed:
                touched[entry.path] = i
            touched[step.path] = i
    return touched


def _stacked(layers: list[list[Member]]) -> Overlay:
    """The filesystem the shared bottom layers make; a hard link compares by the content it shares."""
    fs = Overlay(follow_hardlinks=True)
    for i, members in enumerate(layers):
        fs.apply(members, i)
    return fs


def _compare_files(read: list[ImageLayers], a_layers: list, b_layers: list, prefix: int,
                   base: Overlay) -> FileChanges:
    """Compare the paths the two images' differing layers touch, stacked on ``base``, their first ``prefix`` layers."""
    scans_a, scans_b = read[0].layers, read[-1].layers
    fs_a, fs_b = base, base.copy()
    touched_a, touched_b = _stack(fs_a, scans_a, prefix), _stack(fs_b, scans_b, prefix)
    changes: list[FileChange] = []
    same = 0
    for path in sorted(touched_a.keys() | touched_b.keys()):
        ea, eb = fs_a.entries.get(path), fs_b.entries.get(path)
        if ea is None and eb is None:
            continue  # deleted in both, or written and deleted again
        if ea is None and eb is not None:
            changes.append(FileChange(path, "added", eb.kind, None, eb.size, b_layers[fs_b.origin[path]][1]))
        elif eb is None and ea is not None:
            # Deleted by b's whiteout, or added by a and never present in b.
            layer = b_layers[touched_b[path]][1] if path in touched_b else a_layers[fs_a.origin[path]][1]
            changes.append(FileChange(path, "deleted", ea.kind, ea.size, None, layer))
        elif ea is not None and eb is not None:
            differs = (ea.kind, ea.mode, ea.link) != (eb.kind, eb.mode, eb.link) or \
                (ea.kind == "file" and (ea.size, ea.digest) != (eb.size, eb.digest))
            layer_of = b_layers[fs_b.origin[path]][1] if fs_b.origin[path] >= prefix else \
                a_layers[fs_a.origin[path]][1]
            if differs:
                changes.append(FileChange(path, "modified", eb.kind, ea.size, eb.size, layer_of))
            elif ea.kind != "dir":
                same += 1
    compared = set(read[0].diff_ids[prefix:]) | set(read[-1].diff_ids[prefix:])
    return FileChanges(changes, same_content=same, layers_read=len(compared))


@course_call("comparing two images")
def diff_images(a: Any, b: Any, files: bool = False, *, client: docker.DockerClient | None = None) -> ImageDiff:
    """Compare two images: which layers they share, which are only in one, and (files=True) which files differ.

    Args:
        a, b: tags, ids or BuildReports.
        files: also compare the files the differing layers touch (reads the engine's image
            export, as long as the engine's own export takes: a few seconds for two 200 MB images;
            layers read before, by a diff or the explorer, are not read again).
        client: Docker client (default: the course's).

    Returns:
        An :class:`ImageDiff`; ``print()`` it for counts such as ``shared layers: 2``.

    Raises:
        CourseError: an image does not exist, or the export broke off.

    Example:
        >>> d = diff_images("flask-demo:first", "flask-demo:third", files=True)
        >>> len(d.shared), [c.path for c in d.files if c.change == "modified"][:1]
    """
    started = time.perf_counter()
    cli = resolve(client)
    read = base = None
    # The engine answers several requests at once: the second image, the history rows and the
    # shared layers' stacking are had while this thread waits on the first image and the export.
    with ThreadPoolExecutor(2) as pool:
        b_future = pool.submit(get_image, b, cli)
        a_img, b_img = get_image(a, cli), b_future.result()
        tables = pool.submit(lambda: (_layer_table(a_img, cli), _layer_table(b_img, cli)))
        a_ids, b_ids = a_img.attrs["RootFS"].get("Layers") or [], b_img.attrs["RootFS"].get("Layers") or []
        prefix = 0
        while prefix < min(len(a_ids), len(b_ids)) and a_ids[prefix] == b_ids[prefix]:
            prefix += 1
        if files and not prefix == len(a_ids) == len(b_ids):
            bottom = [kept(d) for d in a_ids[:prefix]]  # scans the export would otherwise pass unread
            stacking = pool.submit(_stacked, bottom) if None not in bottom else None
            read = image_layers([a_img] if a_img.id == b_img.id else [a_img, b_img], client=cli)
            base = stacking.result() if stacking else _stacked(read[0].layers[:prefix])
        a_layers, b_layers = tables.result()
    a_ids, b_ids = [d for d, _, _ in a_layers], [d for d, _, _ in b_layers]

    def info(diff_id: str, text: str, size: int) -> LayerInfo:
        return LayerInfo(diff_id, text, size,
                         a_ids.index(diff_id) if diff_id in a_ids else None,
                         b_ids.index(diff_id) if diff_id in b_ids else None)

    shared = [info(*row) for row in a_layers if row[0] in b_ids]
    only_a = [info(*row) for row in a_layers if row[0] not in b_ids]
    only_b = [info(*row) for row in b_layers if row[0] not in a_ids]
    changes = None
    if files:
        changes = FileChanges() if read is None or base is None else \
            _compare_files(read, a_layers, b_layers, prefix, base)

    def name(x: Any, img: Any) -> str:
        return x if isinstance(x, str) else (img.tags[0] if img.tags else img.id)  # a name commands accept

    return ImageDiff(name(a, a_img), name(b, b_img), a_img.id, b_img.id, shared, prefix, only_a, only_b,
                     changes, time.perf_counter() - started)
