"""Compare two images layer by layer and, if asked, file by file.

Layers are compared by diff id (the digest of the layer's uncompressed tar):
the same diff id is the same content.  File changes are read from the
engine's own export (``GET /images/get``, what ``docker save`` uses), read
as it streams with the standard library's ``tarfile`` (the export is a tar of
layer tars): no outside tool, no export written to disk.  Both images are
exported in one request so that the layers they share travel once.  The one
thing the course adds is Docker's whiteout rule: a ``.wh.name`` file deletes
``name`` from the layers below, and ``.wh..wh..opq`` hides a directory's
lower contents, as overlay2 stacks them.

Cost, measured on the course machine (Docker 20.10, bench/bench_diff.py): the
engine spends about two seconds preparing the export before the first byte
arrives.  Reading the base layer's 11,000 files with ``tarfile`` takes over a
second more, so the file list of every big layer is kept (``state_dir()/layer-scans``,
by the layer's content address) and read once per machine.
"""
from __future__ import annotations

import hashlib
import html
import io
import json
import os
import posixpath
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import docker

from ..config import state_dir
from ..engine.client import resolve
from ..engine.session import course_call
from ..errors import CourseError
from ..formatting import command_html, command_text, format_size, shell_line, short_id, table_html, table_text
from ..statefiles import write_atomic
from .history import layer_history
from .images import get_image

CHUNK = 1 << 20
# tarfile's stream mode copies what is left of its buffer on every read, and reads a header at a time:
# a small record buffer over a large io.BufferedReader is fastest (bench/bench_diff.py).
_RECORD = 1024

# Docker's whiteouts (the OCI image spec's too): how a layer deletes what the layers below it hold.
WHITEOUT_PREFIX = ".wh."  # ".wh.name" deletes "name" in the same directory
WHITEOUT_OPAQUE = ".wh..wh..opq"  # in a directory: hide everything the lower layers put there

KIND_NAMES = {tarfile.REGTYPE: "file", tarfile.AREGTYPE: "file", tarfile.CONTTYPE: "file",
              tarfile.LNKTYPE: "hardlink", tarfile.SYMTYPE: "symlink", tarfile.DIRTYPE: "dir",
              tarfile.CHRTYPE: "char", tarfile.BLKTYPE: "block", tarfile.FIFOTYPE: "fifo"}


@dataclass(slots=True)
class _Entry:
    """One path as a layer left it."""

    kind: str
    size: int
    mode: int
    link: str
    digest: str
    layer: int  # index of the layer (in its image) that wrote it


@dataclass
class _LayerScan:
    """What one layer tar holds, in order: (path, entry) for files, (path, None) for whiteouts, opaque dirs."""

    items: list[tuple[str, _Entry | None, bool]] = field(default_factory=list)  # (path, entry, opaque)
    bytes: int = 0


def _norm(name: str) -> str:
    while name.startswith("./"):
        name = name[2:]
    return "/" + name.strip("/")


def _sha256(data: IO[bytes]) -> str:
    return hashlib.file_digest(data, "sha256").hexdigest()  # type: ignore[arg-type]


def _scan_layer(layer: IO[bytes]) -> _LayerScan:
    """Read one layer tar as a stream: every member's header, a sha256 of each regular file, the whiteouts.

    Args:
        layer: the layer's tar (gzip-compressed too, as some engines export it), read front to back once.

    Returns:
        What the layer writes and deletes, in its order.

    Raises:
        tarfile.ReadError: the bytes are not a tar archive.
    """
    scan = _LayerScan()
    with tarfile.open(fileobj=io.BufferedReader(layer, CHUNK), mode="r|*", bufsize=_RECORD) as tar:
        for m in tar:
            path = _norm(m.name)
            base = posixpath.basename(path)
            if base == WHITEOUT_OPAQUE:
                scan.items.append((posixpath.dirname(path), None, True))
                continue
            if base.startswith(WHITEOUT_PREFIX):
                scan.items.append((posixpath.join(posixpath.dirname(path), base[len(WHITEOUT_PREFIX):]), None, False))
                continue
            kind = KIND_NAMES.get(m.type, "other")
            digest = _sha256(tar.extractfile(m)) if kind == "file" else ""  # type: ignore[arg-type]
            link = _norm(m.linkname) if kind == "hardlink" else m.linkname
            scan.items.append((path, _Entry(kind, m.size, m.mode & 0o7777, link, digest, -1), False))
            scan.bytes += m.size
    return scan


class _KeptScans:
    """Scans of big layers, kept in ``state_dir()/layer-scans`` by the layer's name and size in the export.

    Those names are content addresses: Docker up to 24 names a layer by a v1 id derived from
    its chain of layers (and, for an image's top layer, its config), Docker 25+ by the blob's
    digest.  So a name and size seen before are the same bytes, and a big layer is read once
    per machine.  The one that counts is the base layer under every course image: 11,000
    files, which take ``tarfile`` over a second to read (bench/bench_diff.py).
    """

    KEEP = 8
    MIN_BYTES = 10_000_000  # a smaller layer is read faster than a kept scan is loaded

    def _file(self, name: str, size: int) -> Path:
        key = hashlib.sha256(f"{name}\0{size}".encode()).hexdigest()[:32]
        return state_dir() / "layer-scans" / f"{key}.json"

    def get(self, name: str, size: int) -> _LayerScan | None:
        if size < self.MIN_BYTES:
            return None
        path = self._file(name, size)
        try:
            data = json.loads(path.read_text())
            items = [(item, _Entry(*entry, -1) if entry else None, opaque) for item, entry, opaque in data["items"]]
            os.utime(path)  # recently used: kept longest
            return _LayerScan(items, data["bytes"])
        except (OSError, ValueError, KeyError, TypeError):
            return None  # none kept, or unreadable: read the layer

    def put(self, name: str, size: int, scan: _LayerScan) -> None:
        if size < self.MIN_BYTES:
            return
        items = [(path, [e.kind, e.size, e.mode, e.link, e.digest] if e else None, opaque)
                 for path, e, opaque in scan.items]
        path = self._file(name, size)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, json.dumps({"layer": name, "items": items, "bytes": scan.bytes}))
            for old in sorted(path.parent.glob("*.json"), key=lambda p: p.stat().st_mtime)[:-self.KEEP]:
                old.unlink(missing_ok=True)
        except OSError:
            pass  # a read-only state folder: the next diff reads the layer again


_KEPT = _KeptScans()


def _layer_scan(export: tarfile.TarFile, member: tarfile.TarInfo, name: str) -> _LayerScan:
    """The scan of one layer in the export: kept from an earlier export, or read now (and kept if big)."""
    scan = _KEPT.get(name, member.size)
    if scan is None:
        scan = _scan_layer(export.extractfile(member))  # type: ignore[arg-type]
        _KEPT.put(name, member.size, scan)
    return scan


def _export_scans(cli: docker.DockerClient, names: list[str]) -> tuple[dict[str, _LayerScan], dict[str, list[str]]]:
    """Stream one export of the named images; return scans keyed by layer path and each image's layer paths.

    Handles both export layouts: Docker up to 24 (``<v1 id>/layer.tar``, the
    order known only from manifest.json at the end, so every layer is read)
    and Docker 25+ (OCI ``blobs/sha256/<diff id>``: the name is the diff id).
    """
    api = cli.api
    # docker-py's public get_image() exports one image; several in one request need the raw endpoint,
    # and one request is what lets the layers both images share travel once.
    res = api._get(api._url("/images/get"), params={"names": names}, stream=True)
    api._raise_for_status(res)
    scans: dict[str, _LayerScan] = {}
    links: dict[str, str] = {}
    manifest: list[dict] = []
    try:
        with tarfile.open(fileobj=io.BufferedReader(res.raw, CHUNK), mode="r|", bufsize=64 * _RECORD) as export:
            for m in export:
                name = m.name[2:] if m.name.startswith("./") else m.name
                if m.issym() and name.endswith("layer.tar"):  # a repeated layer is saved as a symlink
                    links[name] = posixpath.normpath(posixpath.join(posixpath.dirname(name), m.linkname))
                elif m.isreg() and name.endswith("/layer.tar"):
                    scans[name] = _layer_scan(export, m, name)
                elif m.isreg() and name.startswith("blobs/"):
                    try:
                        scans[name] = _layer_scan(export, m, name)
                    except tarfile.ReadError:
                        pass  # an OCI config or manifest blob, not a layer
                elif name == "manifest.json":
                    manifest = json.load(export.extractfile(m))  # type: ignore[arg-type]
    except (tarfile.TarError, OSError, ValueError) as exc:
        raise CourseError(f"The engine's image export could not be read ({exc}): run the cell again.") from None
    finally:
        res.close()
    for alias, target in links.items():
        if target in scans:
            scans[alias] = scans[target]
    # Config is "<hex>.json" (Docker <= 24) or "blobs/sha256/<hex>" (25+): key by the image id.
    layer_paths: dict[str, list[str]] = {}
    for item in manifest:
        hexid = posixpath.basename(item["Config"]).split(".")[0]
        layer_paths["sha256:" + hexid] = item["Layers"]
    return scans, layer_paths


def _apply(fs: dict[str, _Entry], scan: _LayerScan, layer_index: int, touched: dict[str, int]) -> None:
    """Apply one layer on top of fs the way overlay2 does: whiteouts delete, opaque dirs hide what is below."""
    written: set[str] = set()
    for path, entry, opaque in scan.items:
        if entry is None:
            prefix = path.rstrip("/") + "/"
            doomed = [p for p in fs if p.startswith(prefix) and p not in written]
            if not opaque:
                doomed.append(path)
            for p in doomed:
                fs.pop(p, None)
                touched[p] = layer_index
            continue
        if entry.kind != "dir":
            old = fs.get(path)
            if old is not None and old.kind == "dir":  # a file replacing a directory hides its contents
                prefix = path + "/"
                for p in [p for p in fs if p.startswith(prefix)]:
                    fs.pop(p)
                    touched[p] = layer_index
        if entry.kind == "hardlink":
            target = fs.get(entry.link)
            if target is not None:  # compare a hard link by the content it shares
                entry = _Entry("file", target.size, entry.mode, "", target.digest, layer_index)
        else:
            entry = _Entry(entry.kind, entry.size, entry.mode, entry.link, entry.digest, layer_index)
        fs[path] = entry
        written.add(path)
        touched[path] = layer_index


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

    def text(self, limit: int = 40) -> str:
        shown = [c.cells() for c in self[:limit]]
        out = [self.summary()]
        rollup = self.by_directory()
        if rollup:
            out.append(table_text(["DIRECTORY", "CHANGE", "FILES"], [[d, ch, str(n)] for d, ch, n in rollup]))
            out.append(table_text(["SUFFIX", "CHANGE", "FILES"], [[x, ch, str(n)] for x, ch, n in self.by_suffix()]))
        if shown:
            out.append(table_text(self.headers, shown))
        if len(self) > limit:
            out.append(f"... and {len(self) - limit} more (see .files)")
        return "\n".join(out)

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
            out += f"<p>{html.escape(self.files.summary())}</p>"
            out += table_html(["DIRECTORY", "CHANGE", "FILES"],
                              [[d, ch, str(n)] for d, ch, n in self.files.by_directory()], code=True)
            if self.files:
                out += table_html(["SUFFIX", "CHANGE", "FILES"],
                                  [[x, ch, str(n)] for x, ch, n in self.files.by_suffix()], code=True)
            out += table_html(FileChanges.headers, [c.cells() for c in self.files[:200]], code=True,
                              note=f"{len(self.files) - 200} more rows in .files" if len(self.files) > 200 else "")
        return out + command_html(self.commands)


# ------------------------------------------------------------------ diff_images


def _layer_table(img: Any, cli: docker.DockerClient) -> list[tuple[str, str, int]]:
    """(diff id, created_by, size) per layer of the image, bottom first."""
    return [(row.diff_id, row.text, row.size) for row in layer_history(img.attrs, cli) if row.diff_id]


def _compare_files(cli: docker.DockerClient, a_img: Any, b_img: Any, a_layers: list, b_layers: list,
                   prefix: int) -> FileChanges:
    """Export both images once and compare the paths their differing layers touch."""
    names = [a_img.id] if a_img.id == b_img.id else [a_img.id, b_img.id]
    scans, layer_paths = _export_scans(cli, names)
    try:
        paths_a, paths_b = layer_paths[a_img.id], layer_paths[b_img.id]
    except KeyError:
        raise CourseError("The engine's export has no manifest for these images: "
                          "check that both still exist and run the cell again.") from None
    if any(path not in scans for path in paths_a + paths_b):
        raise CourseError("The engine's image export lacks a layer its manifest names: run the cell again.")
    base: dict[str, _Entry] = {}
    for i in range(prefix):
        _apply(base, scans[paths_a[i]], i, {})
    fs_a, fs_b = dict(base), dict(base)
    touched_a: dict[str, int] = {}
    touched_b: dict[str, int] = {}
    for i in range(prefix, len(paths_a)):
        _apply(fs_a, scans[paths_a[i]], i, touched_a)
    for i in range(prefix, len(paths_b)):
        _apply(fs_b, scans[paths_b[i]], i, touched_b)
    changes: list[FileChange] = []
    same = 0
    for path in sorted(touched_a.keys() | touched_b.keys()):
        ea, eb = fs_a.get(path), fs_b.get(path)
        if ea is eb:
            continue  # untouched on both sides in the end (e.g. deleted in both)
        if ea is None and eb is not None:
            changes.append(FileChange(path, "added", eb.kind, None, eb.size, b_layers[eb.layer][1]))
        elif eb is None and ea is not None:
            # Deleted by b's whiteout, or added by a and never present in b.
            layer = b_layers[touched_b[path]][1] if path in touched_b else a_layers[ea.layer][1]
            changes.append(FileChange(path, "deleted", ea.kind, ea.size, None, layer))
        elif ea is not None and eb is not None:
            differs = (ea.kind, ea.mode, ea.link) != (eb.kind, eb.mode, eb.link) or \
                (ea.kind == "file" and (ea.size, ea.digest) != (eb.size, eb.digest))
            layer_of = b_layers[eb.layer][1] if eb.layer >= prefix else a_layers[ea.layer][1]
            if differs:
                changes.append(FileChange(path, "modified", eb.kind, ea.size, eb.size, layer_of))
            elif ea.kind != "dir":
                same += 1
    read = len({paths_a[i] for i in range(prefix, len(paths_a))} | {paths_b[i] for i in range(prefix, len(paths_b))})
    return FileChanges(changes, same_content=same, layers_read=read)


@course_call("comparing two images")
def diff_images(a: Any, b: Any, files: bool = False, *, client: docker.DockerClient | None = None) -> ImageDiff:
    """Compare two images: which layers they share, which are only in one, and (files=True) which files differ.

    Args:
        a, b: tags, ids or BuildReports.
        files: also compare the files the differing layers touch (reads the
            engine's image export; about 2 s for two 200 MB images on Docker 20.10).
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
    a_img, b_img = get_image(a, cli), get_image(b, cli)
    a_layers, b_layers = _layer_table(a_img, cli), _layer_table(b_img, cli)
    a_ids, b_ids = [d for d, _, _ in a_layers], [d for d, _, _ in b_layers]
    prefix = 0
    while prefix < min(len(a_ids), len(b_ids)) and a_ids[prefix] == b_ids[prefix]:
        prefix += 1

    def info(diff_id: str, text: str, size: int) -> LayerInfo:
        return LayerInfo(diff_id, text, size,
                         a_ids.index(diff_id) if diff_id in a_ids else None,
                         b_ids.index(diff_id) if diff_id in b_ids else None)

    shared = [info(*row) for row in a_layers if row[0] in b_ids]
    only_a = [info(*row) for row in a_layers if row[0] not in b_ids]
    only_b = [info(*row) for row in b_layers if row[0] not in a_ids]
    changes = None
    if files:
        if prefix == len(a_ids) == len(b_ids):
            changes = FileChanges()
        else:
            changes = _compare_files(cli, a_img, b_img, a_layers, b_layers, prefix)

    def name(x: Any, img: Any) -> str:
        return x if isinstance(x, str) else (img.tags[0] if img.tags else img.id)  # a name commands accept

    return ImageDiff(name(a, a_img), name(b, b_img), a_img.id, b_img.id, shared, prefix, only_a, only_b,
                     changes, time.perf_counter() - started)
