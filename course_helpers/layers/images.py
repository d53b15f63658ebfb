"""Images as the course shows them: tags, ``docker image ls``, identity and history.

Everything here reads the engine; only :func:`tag` changes it.  Text forms are
stable once ids and dates are sanitised: ids print as ``sha256:`` + 12 hex (or
12 hex in tables, as ``docker image ls`` does), sizes as Docker prints them
(``191MB``, ``4.95MB``, ``331B``) and times as ISO dates in UTC.
"""
from __future__ import annotations

import hashlib
import html
import json
import re
from dataclasses import dataclass, field
from typing import Any, Iterable

import docker
from docker.errors import APIError, ImageNotFound
from docker.models.images import Image

from ..config import BASE_IMAGE, LABEL_MANAGED
from ..engine import api
from ..engine.client import list_images, resolve
from ..engine.session import course_call
from ..errors import CourseError, check_image_name
from ..formatting import (command_html, command_text, format_size, iso_time, shell_line, short_hex, short_id,
                          table_html, table_text)
from .export import image_layers
from .history import MISSING, HistoryRow, layer_history


MISSING_NOTE = (
    "<missing>: that row's layer has no image of its own. BuildKit exports only the final "
    "image, so only the top row has an id; the classic builder keeps an intermediate image "
    "per step, so its rows have ids. The layers themselves are all there.")


# ---------------------------------------------------------------- resolving

def image_ref(image: Any) -> str:
    """The name or id to ask the engine for, from a tag, an id, a BuildReport or an Image."""
    if isinstance(getattr(image, "image_id", None), str):  # a BuildReport (builder/ comes after layers/)
        return image.image_id
    if isinstance(image, Image):
        return image.id
    if isinstance(image, str) and image:
        return image
    raise CourseError(f"Expected an image name, id or BuildReport, got {image!r}: pass e.g. 'flask-demo:first'.")


def get_image(image: Any, client: docker.DockerClient | None = None) -> Image:
    """The engine's image for a tag, id, BuildReport or Image.

    Raises:
        CourseError: the engine has no such image; the message names it.
    """
    ref = image_ref(image)
    try:
        return resolve(client).images.get(ref)
    except ImageNotFound:
        raise CourseError(f"The engine has no image {ref!r}: build it first (or check the name with images()).") \
            from None


# ---------------------------------------------------------------- tag, same_image

@course_call("tagging an image")
def tag(image: Any, new_tag: str, *, client: docker.DockerClient | None = None) -> Image:
    """Give an image one more name, as ``docker tag`` does: no copy, one image, two tags.

    Args:
        image: tag, id or BuildReport of an existing image.
        new_tag: ``repository`` or ``repository:tag`` (``latest`` when no tag is given).
        client: Docker client (default: the course's).

    Returns:
        The image, reloaded, so ``.tags`` shows the new name beside the old ones.

    Raises:
        CourseError: the image does not exist, or the engine refuses the name.

    Example:
        >>> tag("flask-demo:first", "flask-demo:latest").tags
        ['flask-demo:first', 'flask-demo:latest']
    """
    check_image_name(new_tag)
    img = get_image(image, client)
    repository, tag_part = new_tag, "latest"
    head, sep, tail = new_tag.rpartition(":")
    if sep and "/" not in tail:  # "localhost:5000/app" has a port, not a tag
        repository, tag_part = head, tail
    try:
        img.tag(repository, tag_part)
    except APIError as exc:
        raise CourseError(f"The engine refused the name {new_tag!r}: {exc.explanation}") from None
    img.reload()
    return img


@dataclass(frozen=True)
class ImageParts:
    """What an image ID names, and what it holds, as the engine's image store keeps it.

    On the classic store (Docker 20.10, overlay2) the ID is the digest of the image's
    config, which lists the layers' diff ids.  On the containerd store (Docker Desktop,
    Docker 28) it is the digest of an index: the index names the platform's image manifest
    (which names the config and the layers) and, when buildx added one, a provenance
    attestation manifest that records how this build ran.

    Attributes:
        name: the name asked for.
        id: the image ID the engine reports.
        kind: what that ID is the digest of: ``index``, ``manifest`` or ``config``.
        manifest: the digest of the platform's image manifest (None on the classic store,
            which makes manifests only when it pushes).
        attestations: digests of the attestation manifests the index holds.
        diff_ids: the layers, bottom first, as digests of their uncompressed content.
        listed_size: the SIZE ``docker image ls`` shows.
        content_size: bytes of the blobs the containerd store keeps (layers compressed), or None.
        unpacked_size: bytes of the unpacked layers (the snapshots containers start from), or None.
    """

    name: str
    id: str
    kind: str
    manifest: str | None
    attestations: tuple[str, ...]
    diff_ids: tuple[str, ...]
    listed_size: int = 0
    content_size: int | None = None
    unpacked_size: int | None = None
    config_digest: str | None = None
    settings: str = field(default="", repr=False, compare=False)

    @property
    def content(self) -> str:
        """What names the image's config and layers and nothing else: the config's digest where known,
        else a digest of the config's fields as the engine shows them (the same config gives the same)."""
        return self.config_digest or self.settings or self.manifest or self.id

    def cells(self) -> list[str]:
        names = {"index": "an index", "manifest": "an image manifest", "config": "the image config"}
        split = (f" = {format_size(self.content_size)} blobs + {format_size(self.unpacked_size)} unpacked"
                 if self.content_size is not None and self.unpacked_size is not None else "")
        return [self.name, short_id(self.id), names.get(self.kind, self.kind),
                short_id(self.manifest) if self.manifest else "-",
                ", ".join(short_id(a) for a in self.attestations) or "none",
                f"{len(self.diff_ids)}: " + " ".join(short_hex(d) for d in self.diff_ids),
                format_size(self.listed_size) + split]


class PartsTable(list):
    """:class:`ImageParts` of several images, shown as one table with the commands that show the same."""

    headers = ["NAME", "IMAGE ID", "THE ID IS THE DIGEST OF", "IMAGE MANIFEST", "ATTESTATION", "LAYERS",
               "SIZE (docker image ls)"]

    @property
    def commands(self) -> list[str]:
        names = [p.name for p in self]
        out = [shell_line(["docker", "image", "inspect", "--format", "{{.Id}} {{json .RootFS.Layers}}", *names])]
        if any(p.kind == "index" for p in self):
            out.append("docker image ls --tree")  # Docker 28: each index and the manifests it holds
        return out

    def __repr__(self) -> str:
        return table_text(self.headers, [p.cells() for p in self]) + "\n" + command_text(self.commands)

    __str__ = __repr__

    def _repr_html_(self) -> str:
        return table_html(self.headers, [p.cells() for p in self], code=True) + command_html(self.commands)


def _parts(image: Any, client: docker.DockerClient | None) -> ImageParts:
    cli = resolve(client)
    img = get_image(image, cli)
    try:
        attrs = api.inspect_image_raw(cli, img.id, manifests=True)
    except ImageNotFound:
        raise CourseError(f"The engine has no image {image_ref(image)!r} any more: build it again.") from None
    media = (attrs.get("Descriptor") or {}).get("mediaType", "")
    kind = "index" if "index" in media or "manifest.list" in media else "manifest" if media else "config"
    manifests = attrs.get("Manifests") or []
    platform = [m for m in manifests if m.get("Kind") == "image"]
    manifest = platform[0]["ID"] if platform else (img.id if kind == "manifest" else None)
    attestations = tuple(m["ID"] for m in manifests if m.get("Kind") == "attestation")
    listed = _listed_size(cli, img)
    content = sum(int((m.get("Size") or {}).get("Content") or 0) for m in manifests) if manifests else None
    unpacked = sum(int(((m.get("ImageData") or {}).get("Size") or {}).get("Unpacked") or 0)
                   for m in platform) if platform else None
    # The image config's own fields, as inspect shows them: equal for two builds of one config, whatever
    # wraps it (an index with an attestation, a manifest in Docker's or OCI's media type).
    fields = {k: attrs.get(k) for k in ("Architecture", "Os", "Variant", "Created", "Author", "Config", "RootFS")}
    settings = "sha256:" + hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()
    return ImageParts(shown_name(image, img.id), img.id, kind, manifest, attestations,
                      tuple(attrs.get("RootFS", {}).get("Layers") or ()), listed, content, unpacked,
                      img.id if kind == "config" else None, settings)


def _listed_size(cli: docker.DockerClient, img: Image) -> int:
    """The size ``docker image ls`` shows for the image (the list's, not the inspected one)."""
    for tag in img.tags[:1]:
        for found in list_images(cli, name=tag):
            if found.id == img.id:
                return found.listed_size
    return int(img.attrs.get("Size") or 0)


def image_parts(*images: Any, client: docker.DockerClient | None = None) -> PartsTable:
    """What each image's ID names and what it holds: see :class:`ImageParts`.

    Returns:
        A :class:`PartsTable` (one :class:`ImageParts` per image, in order).

    Raises:
        CourseError: the engine has no such image.

    Example:
        >>> image_parts("flask-demo:first", "flask-demo:second")   # doctest: +SKIP
    """
    return PartsTable(_parts(image, client) for image in images)


class SameImage:
    """The answer of :func:`same_image`: true or false like a bool, shown with both ids and the command.

    True means one image ID.  Where the IDs differ but both indexes hold the same image
    manifest (two all-cached builds on the containerd store, each index with its own
    build's provenance attestation), :attr:`same_content` is True and the answer says so.

    Attributes:
        a, b: the names compared; a_id, b_id: the image ids they point at.
        parts_a, parts_b: what each ID names and holds (:class:`ImageParts`).
    """

    def __init__(self, a: str, b: str, parts_a: ImageParts, parts_b: ImageParts):
        self.a, self.b, self.parts_a, self.parts_b = a, b, parts_a, parts_b
        self.a_id, self.b_id = parts_a.id, parts_b.id

    def __bool__(self) -> bool:
        return self.a_id == self.b_id

    def __eq__(self, other: object) -> bool:
        return bool(self) == other if isinstance(other, bool) else NotImplemented

    __hash__ = None  # type: ignore[assignment]

    @property
    def same_content(self) -> bool:
        """The same config and the same layers, whatever the IDs say."""
        return self.parts_a.content == self.parts_b.content

    @property
    def command(self) -> str:
        return shell_line(["docker", "image", "inspect", "--format", "{{.Id}}", self.a, self.b])

    def _sentence(self) -> str:
        if self:
            return f"True: {self.a} and {self.b} are one image ({short_id(self.a_id)})"
        text = f"False: {self.a} is {short_id(self.a_id)}, {self.b} is {short_id(self.b_id)}"
        if self.same_content:
            a, b = self.parts_a, self.parts_b
            if a.kind == b.kind == "index" and a.manifest == b.manifest:
                text += f". Both IDs are indexes that name one image manifest ({short_id(a.manifest)})"
            else:
                text += ". They wrap the same image in different ways"
            text += ": the same config and layers"
            if a.attestations or b.attestations:
                text += "; an index also holds an attestation of the build that made it"
        return text

    def __repr__(self) -> str:
        return f"{self._sentence()}\n{command_text(self.command)}"

    __str__ = __repr__

    def _repr_html_(self) -> str:
        return f"<p>{html.escape(self._sentence())}</p>{command_html(self.command)}"


@course_call("comparing two images")
def same_image(a: Any, b: Any, *, client: docker.DockerClient | None = None) -> SameImage:
    """Whether two names (or ids, or BuildReports) point at the very same image id.

    Returns:
        A :class:`SameImage`: true when they do (``if same_image(a, b):`` works as with a bool),
        shown with both ids and the ``docker image inspect`` that prints them.
    """
    parts_a, parts_b = image_parts(a, b, client=client)
    return SameImage(shown_name(a, parts_a.id), shown_name(b, parts_b.id), parts_a, parts_b)


def shown_name(image: Any, image_id: str) -> str:
    """A name for ``image`` that a terminal command can use.

    Returns:
        The string given, else a report's first tag, else the image id.
    """
    if isinstance(image, str):
        return image
    tags = getattr(image, "tags", None) or []
    return tags[0] if tags else image_id


# ---------------------------------------------------------------- images()

@dataclass(frozen=True)
class ImageRow:
    """One row of :func:`images`: one tag of one image (an image with two tags has two rows)."""

    repository: str
    tag: str
    id: str  # sha256:<64 hex>
    created: str  # ISO, UTC
    size: int

    @property
    def short_id(self) -> str:
        return short_hex(self.id)

    def cells(self) -> list[str]:
        return [self.repository, self.tag, self.short_id, self.created, format_size(self.size)]


class ImageList(list):
    """A list of :class:`ImageRow` that prints like ``docker image ls``.

    Attributes:
        repository: the repository listed (None: all the course's images).
    """

    headers = ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]

    def __init__(self, rows: Iterable[ImageRow] = (), repository: str | None = None):
        super().__init__(rows)
        self.repository = repository

    @property
    def command(self) -> str:
        # The course lists only its own images; the same filter on the terminal.
        return shell_line(["docker", "image", "ls"] + ([self.repository] if self.repository else
                                                       ["--filter", f"label={LABEL_MANAGED}"]))

    def __str__(self) -> str:
        if not self:
            return f"(no course images)\n{command_text(self.command)}"
        return f"{table_text(self.headers, [r.cells() for r in self])}\n{command_text(self.command)}"

    __repr__ = __str__

    def _repr_html_(self) -> str:
        note = ""
        ids = [r.id for r in self]
        if len(set(ids)) < len(ids):
            note = "Rows with the same IMAGE ID are one image with several tags: a tag is only a name."
        return table_html(self.headers, [r.cells() for r in self], note=note, code=True, command=self.command)


@course_call("listing images")
def images(repository: str | None = None, *, client: docker.DockerClient | None = None) -> ImageList:
    """The course's images, like ``docker image ls`` (one row per tag).

    Only images carrying the course label ``io.docker-layers-course.managed``
    are listed: the learner's other images are none of the course's business.

    Args:
        repository: only this repository (``"flask-demo"``), all its tags.
        client: Docker client (default: the course's).

    Returns:
        An :class:`ImageList`, sorted by repository then tag; two tags of one
        image show the same IMAGE ID on two rows.
    """
    cli = resolve(client)
    found = list_images(cli, name=repository, filters={"label": LABEL_MANAGED}) if repository else \
        list_images(cli, filters={"label": LABEL_MANAGED})
    rows: list[ImageRow] = []
    for img in found:
        created = iso_time(img.attrs.get("Created"))
        size = img.listed_size
        tags = img.tags or ["<none>:<none>"]
        for name in tags:
            repo, _, tg = name.rpartition(":")
            if "/" in tg:
                repo, tg = name, "<none>"
            if repository and repo != repository:
                continue
            rows.append(ImageRow(repo, tg, img.id, created, size))
    rows.sort(key=lambda r: (r.repository, r.tag, r.id))
    return ImageList(rows, repository)


# ---------------------------------------------------------------- history()

@dataclass(frozen=True)
class LayerContent:
    """One layer's files, as its tar in the image's export holds them, beside ``docker history``'s SIZE."""

    created_by: str
    files: int
    file_bytes: int
    history_size: int

    def cells(self) -> list[str]:
        return [self.created_by, str(self.files), f"{self.file_bytes} B", format_size(self.history_size)]


def _buildah_copy(created_by: str, instruction: str) -> bool:
    """Buildah writes ``COPY . .`` as ``COPY dir:<digest> in .``: the same COPY when the destination is."""
    made = re.match(r"(COPY|ADD) (?:dir|file|multi):\S+ in (\S+)\s*$", created_by)
    asked = instruction.split()
    return bool(made) and len(asked) >= 3 and asked[0].upper() == made.group(1) and asked[-1] == made.group(2)


class LayerContents(list):
    """:meth:`History.contents`: one :class:`LayerContent` per layer, bottom first."""

    headers = ["LAYER MADE BY", "FILES", "BYTES OF FILES", "SIZE (docker history)"]

    def __init__(self, rows: Iterable[LayerContent], image: str):
        super().__init__(rows)
        self.image = image

    def of(self, instruction: str) -> LayerContent:
        """The layer whose instruction starts with ``instruction`` (``"COPY . ."``)."""
        for row in self:
            if row.created_by.startswith(instruction) or row.created_by.split("/bin/sh -c ")[-1].startswith(
                    instruction.removeprefix("RUN ")) or _buildah_copy(row.created_by, instruction):
                return row
        keyword = instruction.split(" ", 1)[0].upper()
        if keyword in ("WORKDIR",):  # Buildah keeps WORKDIR in the config alone: nothing in a layer
            return LayerContent(f"{instruction} (no layer of its own on this engine)", 0, 0, 0)
        raise CourseError(f"No layer of {self.image} was made by {instruction!r}: "
                          f"the layers are {', '.join(repr(r.created_by) for r in self)}.")

    @property
    def commands(self) -> list[str]:
        # The export holds each layer as a tar; `tar -tvf` on one lists its files and sizes.
        return [shell_line(["docker", "save", "-o", "image.tar", self.image]), "tar -xf image.tar"]

    def __repr__(self) -> str:
        return table_text(self.headers, [r.cells() for r in self]) + "\n" + command_text(self.commands)

    __str__ = __repr__

    def _repr_html_(self) -> str:
        return table_html(self.headers, [r.cells() for r in self], code=True) + command_html(self.commands)


@dataclass(frozen=True)
class Layer:
    """One row of ``docker history``, oldest last as Docker lists them.

    Attributes:
        id: the image id of the row (``sha256:...``) or ``"<missing>"``.
        created: ISO time of the step (UTC).
        created_by: the instruction, untruncated and cleaned (``RUN /bin/sh -c pip3 install ...``).
        size: bytes the step added (0 for metadata-only steps).
        empty_layer: True when the step made no layer (CMD, ENV, LABEL, ...).
        comment: the builder's comment (``buildkit.dockerfile.v0``, ``Imported from -``).
        origin: ``"base"`` for rows that come from the base image, ``"dockerfile"`` for the rest.
        diff_id: the layer this row made (``sha256:...``), None when empty_layer.
    """

    id: str
    created: str
    created_by: str
    size: int
    empty_layer: bool
    comment: str
    origin: str
    diff_id: str | None = None

    def cells(self) -> list[str]:
        ident = self.id if self.id == MISSING else short_hex(self.id)
        return [ident, self.created, self.created_by, format_size(self.size), self.comment, self.origin]


class History(list):
    """The rows of :func:`history` (newest first), with a table view."""

    headers = ["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT", "ORIGIN"]

    def __init__(self, rows: Iterable[Layer], image: str = "", base: str | None = None, part: str = ""):
        super().__init__(rows)
        self.image = image
        self.base = base
        self.part = part  # which rows of the image's history these are, when not all of them

    @property
    def layers(self) -> list[Layer]:
        """Rows that made a layer, bottom first (the order of the image's diff ids)."""
        return [row for row in reversed(self) if not row.empty_layer]

    def from_dockerfile(self) -> "History":
        """Only the rows the Dockerfile made (``origin == "dockerfile"``), as a table of their own."""
        return History([r for r in self if r.origin == "dockerfile"], image=self.image,
                       part="the rows its Dockerfile made")

    @course_call("reading the layers' files")
    def contents(self, *, client: docker.DockerClient | None = None) -> "LayerContents":
        """What each layer of these rows holds, read from the image's export: its files and their bytes.

        The bytes of a layer's files are the same on every engine; the SIZE ``docker history``
        shows is not (the containerd store counts the unpacked snapshot's disk blocks).
        """
        cli = resolve(client)
        img = get_image(self.image, cli)
        (found,) = image_layers([img], client=cli)
        members = dict(zip(found.diff_ids, found.layers))
        rows = []
        for row in self.layers:
            files = [m for m in members.get(row.diff_id, []) if m.kind == "file"]
            rows.append(LayerContent(row.created_by, len(files), sum(m.size for m in files), row.size))
        return LayerContents(rows, self.image)

    def _caption(self) -> str:
        made = sum(1 for r in self if not r.empty_layer)
        base_rows = sum(1 for r in self if r.origin == "base")
        text = f"history of {self.image}" + (f", {self.part}" if self.part else "") + \
            f": {len(self)} rows, {made} layers"
        if self.base:
            text += f"; {base_rows} rows from the base image {self.base}"
        return text

    def _note(self) -> str:
        return MISSING_NOTE if any(r.id == MISSING for r in self) else ""

    @property
    def command(self) -> str:
        # --no-trunc: the course shows every row in full, as this does.
        return shell_line(["docker", "history", "--no-trunc", self.image]) if self.image else ""

    def __str__(self) -> str:
        parts = [self._caption(), table_text(self.headers, [r.cells() for r in self])]
        if self._note():
            parts.append(self._note())
        if self.command:
            parts.append(command_text(self.command))
        return "\n".join(parts)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        return table_html(self.headers, [r.cells() for r in self], title=self._caption(), note=self._note(),
                          code=True, command=self.command)


def _base_row_count(img: Image, rows: list[HistoryRow], base: Image | None, cli: docker.DockerClient) -> int:
    """How many of the oldest rows come from the base image (0 if the image is not built on it)."""
    if base is None:
        return 0
    if base.id == img.id:
        return len(rows)
    base_layers = base.attrs.get("RootFS", {}).get("Layers") or []
    layers = img.attrs.get("RootFS", {}).get("Layers") or []
    if layers[: len(base_layers)] != base_layers:
        return 0
    base_rows = list(reversed(api.image_history(cli, base.id)))
    if len(base_rows) > len(rows):
        return 0
    # The base's rows are copied into the child's history: same times, same commands.
    for mine, theirs in zip(rows, base_rows):
        if (mine.created, mine.created_by) != (theirs.get("Created"), theirs.get("CreatedBy") or ""):
            return 0
    return len(base_rows)


@course_call("reading an image's history")
def history(image: Any, *, base: str | None = BASE_IMAGE, client: docker.DockerClient | None = None) -> History:
    """``docker history`` of an image, untruncated, with each row's origin.

    Args:
        image: tag, id or BuildReport.
        base: the base image whose rows are marked ``origin="base"`` (default
            the course's base); rows above it are ``"dockerfile"``.  None marks
            none as base.
        client: Docker client (default: the course's).

    Returns:
        A :class:`History` (newest row first, as Docker lists them) of :class:`Layer`.

    Raises:
        CourseError: no such image.
    """
    cli = resolve(client)
    img = get_image(image, cli)
    rows = layer_history(img.attrs, cli)
    base_img = None
    if base:
        try:
            base_img = cli.images.get(base)
        except ImageNotFound:
            base_img = None
    n_base = _base_row_count(img, rows, base_img, cli)
    layers = [Layer(id=row.id, created=iso_time(row.created), created_by=row.text, size=row.size,
                    empty_layer=row.diff_id is None, comment=row.comment,
                    origin="base" if i < n_base else "dockerfile", diff_id=row.diff_id)
              for i, row in enumerate(rows)]
    name = image_ref(image) if isinstance(image, str) else (img.tags[0] if img.tags else img.id)
    return History(reversed(layers), image=name, base=base if n_base else None)
