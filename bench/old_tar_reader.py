"""The hand-written streaming tar reader that course_helpers/layers/diff.py used before issue 9.

Kept here only so bench/bench_diff.py can time it beside the standard library's
``tarfile`` in stream mode, which diff.py uses now.  Not part of the package;
nothing imports it but the benchmark.
"""
from __future__ import annotations

import hashlib
import json
import posixpath
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import docker

from course_helpers.layers.diff import _Entry as Entry, _LayerScan as LayerScan, _norm

BLOCK = 512
CHUNK = 1 << 20


class _Source:
    """Exact reads and skips over an iterator of byte chunks (the HTTP body), no copies of big data."""

    def __init__(self, chunks: Iterator[bytes]):
        self._chunks = chunks
        self._buf = b""
        self._pos = 0
        self.consumed = 0

    def _fill(self) -> bool:
        for chunk in self._chunks:
            if chunk:
                self._buf, self._pos = chunk, 0
                return True
        return False

    def read(self, n: int) -> bytes:
        """Exactly n bytes (fewer only at the end of the stream)."""
        avail = len(self._buf) - self._pos
        if avail >= n:
            out = self._buf[self._pos:self._pos + n]
            self._pos += n
            self.consumed += n
            return out
        parts = [self._buf[self._pos:]]
        need = n - avail
        self._buf, self._pos = b"", 0
        while need > 0 and self._fill():
            take = min(need, len(self._buf))
            parts.append(self._buf[:take])
            self._pos = take
            need -= take
        out = b"".join(parts)
        self.consumed += len(out)
        return out

    def pass_through(self, n: int, sink: Callable[[memoryview], Any] | None = None) -> None:
        """Consume n bytes, handing them to sink (e.g. a hash's update) without copying."""
        while n > 0:
            avail = len(self._buf) - self._pos
            if avail == 0:
                if not self._fill():
                    raise EOFError("the export ended early")
                continue
            take = min(n, avail)
            if sink is not None:
                sink(memoryview(self._buf)[self._pos:self._pos + take])
            self._pos += take
            self.consumed += take
            n -= take


class _Sub:
    """The bytes of one member of an outer tar, read as a stream of its own (a layer.tar)."""

    def __init__(self, src: _Source, size: int):
        self.src = src
        self.left = size

    def read(self, n: int) -> bytes:
        n = min(n, self.left)
        out = self.src.read(n)
        self.left -= len(out)
        return out

    def pass_through(self, n: int, sink: Callable[[memoryview], Any] | None = None) -> None:
        n = min(n, self.left)
        self.src.pass_through(n, sink)
        self.left -= n

    def drain(self) -> None:
        self.src.pass_through(self.left)
        self.left = 0


@dataclass
class _Member:
    name: str
    size: int
    type: bytes
    mode: int
    linkname: str
    mtime: int


def _octal(field_: bytes) -> int:
    if field_ and field_[0] & 0x80:  # GNU base-256 for big numbers
        value = field_[0] & 0x7F
        for byte in field_[1:]:
            value = (value << 8) | byte
        return value
    text = field_.split(b"\0", 1)[0].strip()
    return int(text, 8) if text else 0


def _pax(data: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    pos = 0
    while pos < len(data):
        space = data.index(b" ", pos)
        length = int(data[pos:space])
        record = data[space + 1:pos + length - 1]  # drop the trailing newline
        key, _, value = record.partition(b"=")
        out[key.decode()] = value.decode("utf-8", "surrogateescape")
        pos += length
    return out


def _members(stream: _Source | _Sub) -> Iterator[_Member]:
    """Walk a tar stream's members; the caller must consume each member's data (padded) before the next."""
    pending: dict[str, str] = {}
    while True:
        header = stream.read(BLOCK)
        if len(header) < BLOCK or header == b"\0" * BLOCK:
            return
        name = header[0:100].split(b"\0", 1)[0]
        if header[257:262] == b"ustar":
            prefix = header[345:500].split(b"\0", 1)[0]
            if prefix:
                name = prefix + b"/" + name
        size = _octal(header[124:136])
        kind = header[156:157]
        padded = (size + BLOCK - 1) // BLOCK * BLOCK
        if kind in (b"x", b"g", b"L", b"K"):
            data = stream.read(padded)[:size]
            if kind == b"x":
                pending.update(_pax(data))
            elif kind == b"L":
                pending["path"] = data.rstrip(b"\0").decode("utf-8", "surrogateescape")
            elif kind == b"K":
                pending["linkpath"] = data.rstrip(b"\0").decode("utf-8", "surrogateescape")
            continue  # global headers ('g') carry nothing the course needs
        member = _Member(
            name=pending.get("path") or name.decode("utf-8", "surrogateescape"),
            size=int(pending.get("size", size)),
            type=kind,
            mode=_octal(header[100:108]) & 0o7777,
            linkname=pending.get("linkpath") or header[157:257].split(b"\0", 1)[0].decode("utf-8", "surrogateescape"),
            mtime=int(float(pending.get("mtime", _octal(header[136:148])))),
        )
        pending = {}
        yield member


def _padding(size: int) -> int:
    return (BLOCK - size % BLOCK) % BLOCK


KIND_NAMES = {b"0": "file", b"\0": "file", b"7": "file", b"1": "hardlink", b"2": "symlink", b"5": "dir",
              b"3": "char", b"4": "block", b"6": "fifo"}


def _scan_layer(stream: _Sub, layer_index: int = -1) -> LayerScan:
    """Read one layer tar: every member's header, and a sha256 of each regular file's bytes."""
    scan = LayerScan()
    for m in _members(stream):
        path = _norm(m.name)
        base = posixpath.basename(path)
        if base == ".wh..wh..opq":
            scan.items.append((posixpath.dirname(path), None, True))
            stream.pass_through(m.size + _padding(m.size))
            continue
        if base.startswith(".wh."):
            scan.items.append((posixpath.join(posixpath.dirname(path), base[4:]), None, False))
            stream.pass_through(m.size + _padding(m.size))
            continue
        kind = KIND_NAMES.get(m.type, "other")
        digest = ""
        if kind == "file":
            h = hashlib.sha256()
            stream.pass_through(m.size, h.update)
            stream.pass_through(_padding(m.size))
            digest = h.hexdigest()
        else:
            stream.pass_through(m.size + _padding(m.size))
        link = _norm(m.linkname) if kind == "hardlink" else m.linkname
        scan.items.append((path, Entry(kind, m.size, m.mode, link, digest, layer_index), False))
        scan.bytes += m.size
    stream.drain()
    return scan


def export_scans(cli: docker.DockerClient, names: list[str]) -> tuple[dict[str, LayerScan], dict[str, list[str]]]:
    """Stream one export of the named images; return scans keyed by layer path and each image's layer paths.

    Handles both export layouts: Docker up to 24 (``<v1 id>/layer.tar``, the
    order known only from manifest.json at the end, so every layer is read)
    and Docker 25+ (OCI ``blobs/sha256/<diff id>``: the name is the diff id).
    """
    api = cli.api
    res = api._get(api._url("/images/get"), params={"names": names}, stream=True)
    api._raise_for_status(res)
    src = _Source(res.raw.stream(CHUNK, decode_content=False))
    scans: dict[str, LayerScan] = {}
    links: dict[str, str] = {}
    manifest: list[dict] = []
    try:
        for m in _members(src):
            name = m.name[2:] if m.name.startswith("./") else m.name
            if m.type == b"2" and name.endswith("layer.tar"):  # a repeated layer is saved as a symlink
                links[name] = posixpath.normpath(posixpath.join(posixpath.dirname(name), m.linkname))
                src.pass_through(m.size + _padding(m.size))
            elif m.type in (b"0", b"\0") and (name.endswith("/layer.tar") or name.startswith("blobs/")):
                sub = _Sub(src, m.size)
                head = sub.read(BLOCK)
                if name.startswith("blobs/") and (len(head) < 262 or head[257:262] != b"ustar"):
                    sub.drain()  # an OCI config or manifest blob, not a layer
                else:
                    scans[name] = _scan_layer(_Chain(head, sub))
                src.pass_through(_padding(m.size))
            elif name == "manifest.json":
                manifest = json.loads(src.read(m.size))
                src.pass_through(_padding(m.size))
            else:
                src.pass_through(m.size + _padding(m.size))
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


class _Chain:
    """A _Sub whose first block was already read (to sniff the format)."""

    def __init__(self, head: bytes, sub: _Sub):
        self.head = head
        self.sub = sub

    def read(self, n: int) -> bytes:
        if self.head:
            out, self.head = self.head[:n], self.head[n:]
            if len(out) < n:
                out += self.sub.read(n - len(out))
            return out
        return self.sub.read(n)

    def pass_through(self, n: int, sink: Callable[[memoryview], Any] | None = None) -> None:
        if self.head:
            take = self.head[:n]
            self.head = self.head[n:]
            if sink is not None:
                sink(memoryview(take))
            n -= len(take)
        self.sub.pass_through(n, sink)

    def drain(self) -> None:
        self.head = b""
        self.sub.drain()
