"""The engine's image export (``docker save``, the API's ``GET /images/get``), read as it streams.

The course's one reader of exports: the diff and the explorer both get an
image's layers, and what each one holds, from here.  It follows the layouts
the engines write:

* the Docker archive (Docker up to 24): ``<v1 id>/layer.tar`` per layer, the
  config as ``<hex>.json``, and ``manifest.json`` (config and layers per image) last;
  Podman's Docker archive names each layer ``<diff id>.tar`` at the top instead;
* the OCI layout (Docker 25 and later): ``blobs/sha256/<digest>``, ``index.json``
  and ``manifest.json`` beside it.  With the classic store the layers are
  stored uncompressed, so a layer's blob digest is its diff id and the image id
  is the config's digest.  With the containerd image store (Docker Desktop,
  Docker 29's default) ``index.json`` names the image's index, which holds the
  image manifest and, from buildx, a provenance attestation manifest; the image
  id the engine reports is the digest of that index; the layers are
  gzip-compressed, so a blob's digest is not the layer's diff id.

The export is one tar stream whose files come in the engine's order (the
layers before or after the files that say which is which), so nothing is
decided until the end: small JSON files are kept in memory, every layer is
scanned as it passes (each entry's header, a sha256 of each file), and the
scans are put in place, by diff id, once the layout has been read.  Nothing is
written to disk, and what is held in memory is the JSON files, the files of
up to :data:`SMALL` bytes while they are read, and the scans.

Scans are kept by diff id (the digest of the layer's uncompressed tar: its
content), in memory and in ``state_dir()/layer-scans``, for every image and
every engine alike.  A layer is read once per machine: in a later export its
bytes pass unread, and an image whose layers are all kept is not exported at
all.  One request names every image asked for, so the layers they share
travel once.  Cost (bench/bench_diff.py): a diff of two sample-app images whose
base layer was read before takes 1.05 to 1.09 times the engine's own export of
them, on Docker 20.10 and on the containerd store; the first read of the 191 MB
base layer costs about 1.7 s of CPU, once per machine.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import posixpath
import sys
import tarfile
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable, Iterable, NamedTuple

import docker

from ..config import state_dir
from ..engine import api as engine_api
from ..engine.client import resolve
from ..errors import CourseError
from ..formatting import short_id
from ..statefiles import write_atomic

CHUNK = 1 << 20
# tarfile's stream mode copies what is left of its buffer on every read and reads a header at a time:
# a small record buffer over a large io.BufferedReader is fastest (bench/bench_diff.py).
_RECORD = 1024
#: A file of the export up to this size is read whole: layout files, configs, manifests, small layers.
SMALL = 4 << 20

_ZSTD = b"\x28\xb5\x2f\xfd"
ZSTD_LAYER = "application/vnd.oci.image.layer.v1.tar+zstd"
_ATTESTATION = "attestation-manifest"

KINDS = {tarfile.REGTYPE: "file", tarfile.AREGTYPE: "file", tarfile.CONTTYPE: "file", tarfile.DIRTYPE: "dir",
         tarfile.SYMTYPE: "symlink", tarfile.LNKTYPE: "hardlink", tarfile.CHRTYPE: "char",
         tarfile.BLKTYPE: "block", tarfile.FIFOTYPE: "fifo"}


class Member(NamedTuple):
    """One entry of a layer's tar, as the layer holds it (whiteout names kept as they are).

    Attributes:
        path: absolute path, e.g. ``/usr/src/app/app.py`` or ``/tmp/.wh.big.bin``.
        kind: ``file``, ``dir``, ``symlink``, ``hardlink``, ``char``, ``block``, ``fifo`` or ``other``.
        size: the size the tar header gives (regular files; 0 for the rest).
        mode: permission bits.
        link: a link's target (absolute for hard links, as written for symlinks), else ``""``.
        digest: a regular file's sha256 (hex), else ``""``.
    """

    path: str
    kind: str
    size: int
    mode: int
    link: str
    digest: str


def _abs(name: str) -> str:
    return "/" + posixpath.normpath(name).lstrip("/") if name not in ("", ".", "./") else "/"


class UnreadableLayer(Exception):
    """A layer this Python cannot decompress; says which compression (internal: becomes a CourseError)."""


def scan_layer(data: IO[bytes]) -> list[Member]:
    """Read one layer tar front to back, once: every entry's header and a sha256 of each regular file.

    Args:
        data: the layer, uncompressed or gzip-compressed (as the containerd store exports it).

    Returns:
        The layer's entries in the order its tar holds them (the root folder left out).

    Raises:
        UnreadableLayer: the layer is compressed with zstd, which the standard library of this
            Python cannot read.
        tarfile.ReadError: the bytes are not a (compressed) tar archive.
    """
    reader = io.BufferedReader(data, CHUNK)  # type: ignore[arg-type]
    if reader.peek(4)[:4] == _ZSTD:
        raise UnreadableLayer(f"it is compressed with zstd ({ZSTD_LAYER}), which Python "
                              f"{sys.version_info.major}.{sys.version_info.minor}'s standard library cannot read")
    members = []
    with tarfile.open(fileobj=reader, mode="r|*", bufsize=_RECORD) as tar:
        for entry in tar:
            path = _abs(entry.name)
            if path == "/":
                continue
            digest = ""
            if entry.isreg():
                digest = hashlib.file_digest(tar.extractfile(entry), "sha256").hexdigest()  # type: ignore[arg-type]
            link = _abs(entry.linkname) if entry.islnk() else entry.linkname
            members.append(Member(path, KINDS.get(entry.type, "other"), entry.size if entry.isreg() else 0,
                                  entry.mode & 0o7777, link, digest))
    return members


# ------------------------------------------------------------------ the kept scans


class _Kept:
    """Layer scans by diff id, in memory (the latest :attr:`MEMORY`) and in ``state_dir()/layer-scans``.

    Beside the scans, ``names.json`` remembers which diff id an export's file
    holds (a blob digest, or a Docker archive's ``<v1 id>/layer.tar`` and its
    size: both name content), so a kept layer passes unread in the next export,
    and each image id's config digest.  Damaged files are ignored, never trusted.
    """

    MEMORY = 64  # scans held in memory
    DISK = 256  # scan files kept, the most recently used
    DISK_BYTES = 256 << 20  # and at most this much of them
    NAMES = 4096  # remembered names, the latest
    VERSION = 1

    def __init__(self) -> None:
        self.memory: OrderedDict[str, list[Member]] = OrderedDict()

    @staticmethod
    def folder() -> Path:
        return state_dir() / "layer-scans"

    def _file(self, diff_id: str) -> Path:
        return self.folder() / f"{diff_id.removeprefix('sha256:')}.json"

    def get(self, diff_id: str) -> list[Member] | None:
        if diff_id in self.memory:
            self.memory.move_to_end(diff_id)
            return self.memory[diff_id]
        path = self._file(diff_id)
        try:
            data = json.loads(path.read_text())
            if data["version"] != self.VERSION or data["diff_id"] != diff_id:
                return None
            members = [Member(*m) for m in data["members"]]
            os.utime(path)  # recently used: pruned last
        except (OSError, ValueError, KeyError, TypeError):
            return None  # none kept, or unreadable: the layer is read again
        self._hold(diff_id, members)
        return members

    def _hold(self, diff_id: str, members: list[Member]) -> None:
        self.memory[diff_id] = members
        self.memory.move_to_end(diff_id)
        while len(self.memory) > self.MEMORY:
            self.memory.popitem(last=False)

    def put(self, diff_id: str, members: list[Member]) -> None:
        self._hold(diff_id, members)
        path = self._file(diff_id)
        try:
            write_atomic(path, json.dumps({"version": self.VERSION, "diff_id": diff_id, "members": members},
                                          separators=(",", ":")))
        except OSError:
            pass  # a read-only or full state folder only costs the next export a read

    def prune(self) -> None:
        try:
            files = sorted(self.folder().glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
            files = [p for p in files if p.name != "names.json"]
            total = 0
            for i, path in enumerate(files):
                total += path.stat().st_size
                if i >= self.DISK or total > self.DISK_BYTES:
                    path.unlink(missing_ok=True)
        except OSError:
            pass

    def names(self) -> dict[str, dict[str, str]]:
        try:
            data = json.loads((self.folder() / "names.json").read_text())
            if isinstance(data, dict) and data.get("version") == self.VERSION and \
                    all(isinstance(data.get(k), dict) for k in ("layers", "configs")):
                return data
        except (OSError, ValueError):
            pass
        return {"version": self.VERSION, "layers": {}, "configs": {}}  # type: ignore[dict-item]

    def remember(self, layers: dict[str, str], configs: dict[str, str], drop: str | None = None) -> None:
        data = self.names()
        data["layers"].pop(drop or "", None)
        for part, new in (("layers", layers), ("configs", configs)):
            merged = {k: v for k, v in data[part].items() if k not in new}
            merged.update(new)
            data[part] = dict(list(merged.items())[-self.NAMES:])
        try:
            write_atomic(self.folder() / "names.json", json.dumps(data))
        except OSError:
            pass


_KEPT = _Kept()


def forget(diff_ids: Iterable[str] | None = None, *, disk: bool = True) -> None:
    """Drop kept layer scans (all of them by default): from memory, and with ``disk`` from the state folder."""
    chosen = list(_KEPT.memory) if diff_ids is None else list(diff_ids)
    for diff_id in chosen:
        _KEPT.memory.pop(diff_id, None)
    if disk:
        if diff_ids is None:
            for path in _KEPT.folder().glob("*.json"):
                path.unlink(missing_ok=True)
        for diff_id in chosen:
            _KEPT._file(diff_id).unlink(missing_ok=True)


def kept(diff_id: str) -> list[Member] | None:
    """The kept scan of a layer, or None when it has not been read on this machine (or was pruned)."""
    return _KEPT.get(diff_id)


# ------------------------------------------------------------------ one export, as it streams


@dataclass
class ExportRead:
    """What one pass over an export found, before the layout has said which file is which layer."""

    files: dict[str, Any] = field(default_factory=dict)  # JSON files by name: layout, configs, manifests
    scans: dict[str, list[Member]] = field(default_factory=dict)  # layers read, by file name
    unreadable: dict[str, str] = field(default_factory=dict)  # file name -> why it could not be read
    links: dict[str, str] = field(default_factory=dict)  # a layer stored once and linked: link -> target
    passed: dict[str, str] = field(default_factory=dict)  # file name -> diff id of a kept scan it holds
    sizes: dict[str, int] = field(default_factory=dict)  # file name -> bytes, for content names


def _key(name: str, size: int) -> str:
    """A name for a layer file's content: a blob's digest, or a Docker archive's v1 id path with its size.

    v1 ids are derived from the layer's chain (and, for an image's top layer, its config), so a
    name and size seen before are the same bytes.
    """
    if name.startswith("blobs/"):
        algorithm, _, digest = name[len("blobs/"):].partition("/")
        return f"{algorithm}:{digest}"
    return f"{name}@{size}"


def read_stream(stream: IO[bytes], held: dict[str, list[Member]] | None = None,
                names: dict[str, str] | None = None) -> ExportRead:
    """One pass over an export's tar stream, in whatever order its files come.

    Args:
        stream: the export (the HTTP body, or a file ``docker save`` wrote).
        held: scans already at hand, by diff id: a file that holds one of them passes unread.
        names: content names (see :func:`_key`) -> diff id, remembered from earlier exports.

    Returns:
        The JSON files, the layers read and the ones passed, for :func:`resolve_images`.

    Raises:
        tarfile.TarError, OSError, EOFError: the stream is not a tar archive, or broke off.
    """
    held = held or {}
    names = names or {}
    found = ExportRead()
    with tarfile.open(fileobj=stream, mode="r|", bufsize=64 * _RECORD) as export:
        for item in export:
            name = item.name.removeprefix("./")
            if item.issym() or item.islnk():  # a layer the export holds twice is stored once and linked
                base = posixpath.dirname(name) if item.issym() else ""
                found.links[name] = posixpath.normpath(posixpath.join(base, item.linkname.removeprefix("./")))
                continue
            if not item.isreg():
                continue
            # OCI blobs, Docker's <id>/layer.tar, Podman's <diff id>.tar at the top
            layer_file = name.startswith("blobs/") or name.endswith(".tar")
            if not layer_file and not name.endswith(".json"):
                continue  # oci-layout, VERSION, repositories: nothing the course needs
            key = _key(name, item.size)
            found.sizes[name] = item.size
            diff_id = key if key in held else names.get(key)
            if layer_file and diff_id in held:
                found.passed[name] = diff_id  # type: ignore[assignment]
                continue
            data = export.extractfile(item)
            assert data is not None
            if item.size <= SMALL:
                raw = data.read()
                if raw[:1] in (b"{", b"["):
                    try:
                        found.files[name] = json.loads(raw)
                        continue
                    except ValueError:
                        pass  # not JSON after all: a layer, if anything
                if not layer_file:
                    continue
                data = io.BytesIO(raw)
            try:
                found.scans[name] = scan_layer(data)
            except UnreadableLayer as exc:
                found.unreadable[name] = str(exc)
            except tarfile.ReadError as exc:
                found.unreadable[name] = f"it is not a tar archive ({exc})"
    return found


@dataclass(frozen=True)
class ImageLayers:
    """One image as its export describes it.

    Attributes:
        ref: the name or id it was asked for by.
        config_digest: the digest of its config (the image id on the classic store; on the
            containerd store the id names the index, and this the config inside it).  None when
            the image was never exported on this machine and its layers all came from the cache.
        diff_ids: its layers' diff ids, bottom first (the config's ``rootfs.diff_ids``).
        layers: each layer's entries, in the same order.
    """

    ref: str
    config_digest: str | None
    diff_ids: list[str]
    layers: list[list[Member]]


def _familiar(tag: str) -> str:
    """``docker.io/library/app:1`` and ``app`` as ``app:1`` and ``app:latest``: one spelling to compare tags."""
    for prefix in ("docker.io/library/", "docker.io/"):
        if tag.startswith(prefix):
            tag = tag[len(prefix):]
            break
    return tag if ":" in tag.rsplit("/", 1)[-1] else tag + ":latest"


def _shown(ref: str) -> str:
    return short_id(ref) if ref.startswith("sha256:") else ref


def _blob_name(digest: str) -> str:
    algorithm, _, hexdigest = digest.partition(":")
    return f"blobs/{algorithm}/{hexdigest}"


def _is_attestation(descriptor: dict[str, Any]) -> bool:
    annotations = descriptor.get("annotations") or {}
    platform = descriptor.get("platform") or {}
    return (annotations.get("vnd.docker.reference.type") == _ATTESTATION
            or (platform.get("os"), platform.get("architecture")) == ("unknown", "unknown"))


@dataclass
class _Candidate:
    """An image the layout describes: every name and digest it answers to, its config and layer files."""

    names: set[str]
    config: str  # the config's file name in the export
    layers: list[str]


def _walk(found: ExportRead, digest: str, seen: set[str]) -> tuple[str, list[str]] | None:
    """Follow an OCI descriptor down to an image manifest: (config file, layer files), or None.

    An index (or manifest list) leads to its first image manifest the export holds; attestation
    manifests (buildx's provenance, platform ``unknown/unknown``) are not images and are skipped.
    """
    doc = found.files.get(_blob_name(digest))
    if not isinstance(doc, dict):
        return None
    seen.add(digest)
    if isinstance(doc.get("manifests"), list):
        for descriptor in doc["manifests"]:
            if isinstance(descriptor, dict) and not _is_attestation(descriptor) and "digest" in descriptor:
                image = _walk(found, descriptor["digest"], seen)
                if image is not None:
                    return image
        return None
    if isinstance(doc.get("config"), dict) and isinstance(doc.get("layers"), list):
        digests = [doc["config"].get("digest")] + [layer.get("digest") if isinstance(layer, dict) else None
                                                   for layer in doc["layers"]]
        if all(isinstance(d, str) for d in digests):
            return _blob_name(digests[0]), [_blob_name(d) for d in digests[1:]]
    return None


def _candidates(found: ExportRead) -> list[_Candidate]:
    """Every image the export's layout names: from ``index.json`` (OCI), then ``manifest.json`` (both layouts)."""
    out = []
    index = found.files.get("index.json")
    for descriptor in (index.get("manifests") or []) if isinstance(index, dict) else []:
        if not isinstance(descriptor, dict) or "digest" not in descriptor:
            continue
        seen: set[str] = set()
        image = _walk(found, descriptor["digest"], seen)
        if image is None:
            continue
        annotations = descriptor.get("annotations") or {}
        names = seen | {"sha256:" + posixpath.basename(image[0])}
        names |= {_familiar(annotations[k]) for k in ("io.containerd.image.name",) if k in annotations}
        out.append(_Candidate(names, image[0], image[1]))
    manifest = found.files.get("manifest.json")
    for entry in manifest if isinstance(manifest, list) else []:
        if not isinstance(entry, dict) or "Config" not in entry:
            continue
        config_id = "sha256:" + posixpath.basename(entry["Config"]).removesuffix(".json")
        out.append(_Candidate({config_id} | {_familiar(t) for t in entry.get("RepoTags") or []},
                              entry["Config"], list(entry.get("Layers") or [])))
    return out


class _StaleName(Exception):
    """A layer file passed unread under a remembered name that the layout contradicts."""


def resolve_images(found: ExportRead, refs: list[str], held: dict[str, list[Member]] | None = None
                   ) -> tuple[list[ImageLayers], dict[str, str]]:
    """Each asked-for image's config and layers, from what one pass over its export found.

    Args:
        found: what :func:`read_stream` read.
        refs: the images, each by the id the engine reports or by a tag.
        held: the scans :func:`read_stream` was given: the layers it passed come from here.

    Returns:
        One :class:`ImageLayers` per ref, and the content names learnt (file key -> diff id)
        for the layers read.

    Raises:
        CourseError: the export has no such image, or lacks a layer its layout names.
    """
    held = held or {}
    candidates = _candidates(found)
    out, learnt = [], {}
    for ref in refs:
        wanted = ref if ref.startswith("sha256:") else _familiar(ref)
        image = next((c for c in candidates if wanted in c.names), None)
        config = found.files.get(image.config) if image else None
        if image is None or not isinstance(config, dict):
            raise CourseError(f"The engine's export has no manifest for {_shown(ref)}: check that the image "
                              "still exists and run the cell again.")
        diff_ids = list((config.get("rootfs") or {}).get("diff_ids") or [])
        if len(diff_ids) != len(image.layers):
            raise CourseError(f"The engine's export of {_shown(ref)} names {len(image.layers)} layers where its "
                              f"config lists {len(diff_ids)}: run the cell again.")
        layers = []
        for listed, diff_id in zip(image.layers, diff_ids):
            name = found.links.get(listed, listed)
            if name in found.scans:
                # Both names: which of a layer's two places holds it and which links can change between exports.
                learnt[_key(name, found.sizes[name])] = learnt[_key(listed, found.sizes[name])] = diff_id
            if diff_id in held:
                layers.append(held[diff_id])
            elif name in found.scans:
                layers.append(found.scans[name])
            elif name in found.passed:
                raise _StaleName(_key(name, found.sizes[name]))
            elif name in found.unreadable:
                raise CourseError(f"The layer {short_id(diff_id)} of {_shown(ref)} cannot be read: "
                                  f"{found.unreadable[name]}; rebuild the image with gzip layers (the default).")
            else:
                raise CourseError(f"The engine's export lacks the layer {short_id(diff_id)} that its manifest names: "
                                  "run the cell again.")
        out.append(ImageLayers(ref, "sha256:" + posixpath.basename(image.config).removesuffix(".json"),
                               diff_ids, layers))
    return out, learnt


def _stream_export(cli: docker.DockerClient, refs: list[str], held: dict[str, list[Member]],
                   names: dict[str, str]) -> ExportRead:
    res = engine_api.export_stream(cli, refs)
    res.raw.auto_close = False  # at the end a read says b"", as io.BufferedReader expects, not "closed file"
    try:
        return read_stream(io.BufferedReader(res.raw, CHUNK), held, names)
    except (tarfile.TarError, OSError, EOFError, ValueError) as exc:
        raise CourseError(f"The engine's image export could not be read ({exc}): run the cell again.") from None
    finally:
        res.close()  # also when reading stopped early: the engine stops writing


def read_export(refs: list[str], *, client: docker.DockerClient | None = None,
                held: dict[str, list[Member]] | None = None) -> list[ImageLayers]:
    """Stream one export of the named images and read every layer in it that is not held already.

    Args:
        refs: image ids (as the engine reports them) or tags, all exported in one request.
        client: Docker client (default: the course's).
        held: scans already at hand, by diff id: those layers pass unread and are filled in from here.

    Returns:
        One :class:`ImageLayers` per ref, in order, every layer filled in.  The layers read are
        kept (see :func:`kept`).

    Raises:
        CourseError: the export broke off, or lacks an image or a layer; the message says what to do.
    """
    held = dict(held or {})
    cli = resolve(client)
    names = _KEPT.names()["layers"]
    try:
        found = _stream_export(cli, refs, held, names)
        images, learnt = resolve_images(found, refs, held)
    except _StaleName as stale:
        # A remembered name let a layer pass that the layout calls another: forget it, read them all.
        _KEPT.remember({}, {}, drop=str(stale))
        found = _stream_export(cli, refs, held, {})
        images, learnt = resolve_images(found, refs, held)
    for image in images:
        for diff_id, members in zip(image.diff_ids, image.layers):
            if diff_id not in held:
                _KEPT.put(diff_id, members)
                held[diff_id] = members
    _KEPT.remember(learnt, {image.ref: image.config_digest for image in images if image.ref.startswith("sha256:")})
    _KEPT.prune()
    return images


def image_layers(images: list[Any], *, client: docker.DockerClient | None = None,
                 announce: Callable[[], None] | None = None) -> list[ImageLayers]:
    """Every layer's entries for each image: kept scans where there are some, one export for the rest.

    Args:
        images: docker-py ``Image`` objects (their id and ``RootFS.Layers`` say what to look for).
        client: Docker client (default: the course's).
        announce: called once before an export is read (not when every layer is kept).

    Returns:
        One :class:`ImageLayers` per image, in order, ref'd by the image's id.

    Raises:
        CourseError: the export broke off, lacks a layer, or does not match the image.
    """
    held: dict[str, list[Member]] = {}
    for img in images:
        for diff_id in img.attrs.get("RootFS", {}).get("Layers") or []:
            scan = _KEPT.get(diff_id)
            if scan is not None:
                held[diff_id] = scan
    ids = list(dict.fromkeys(img.id for img in images))
    expected = {img.id: list(img.attrs.get("RootFS", {}).get("Layers") or []) for img in images}
    if all(d in held for layers in expected.values() for d in layers):
        configs = _KEPT.names()["configs"]
        got = {i: ImageLayers(i, configs.get(i), expected[i], [held[d] for d in expected[i]]) for i in ids}
    else:
        if announce is not None:
            announce()
        got = {image.ref: image for image in read_export(ids, client=client, held=held)}
        for image_id, image in got.items():
            if image.diff_ids != expected[image_id]:
                raise CourseError(f"The engine's export of {short_id(image_id)} holds other layers than the image "
                                  "lists: run the cell again.")
    return [got[img.id] for img in images]
