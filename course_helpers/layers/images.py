"""Images as the course shows them: tags, ``docker image ls``, identity and history.

Everything here reads the engine; only :func:`tag` changes it.  Text forms are
stable once ids and dates are sanitised: ids print as ``sha256:`` + 12 hex (or
12 hex in tables, as ``docker image ls`` does), sizes as Docker prints them
(``191MB``, ``4.95MB``, ``331B``) and times as ISO dates in UTC.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

import docker
from docker.errors import APIError, ImageNotFound
from docker.models.images import Image

from ..config import BASE_IMAGE, LABEL_MANAGED
from ..engine.client import list_images, resolve
from ..engine.session import course_call
from ..errors import CourseError, check_image_name
from ..formatting import format_size, iso_time, short_hex, short_id, table_html, table_text
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


@course_call("comparing two images")
def same_image(a: Any, b: Any, *, client: docker.DockerClient | None = None) -> bool:
    """True when two names (or ids, or BuildReports) point at the very same image id."""
    return get_image(a, client).id == get_image(b, client).id


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
    """A list of :class:`ImageRow` that prints like ``docker image ls``."""

    headers = ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]

    def __str__(self) -> str:
        if not self:
            return "(no course images)"
        return table_text(self.headers, [r.cells() for r in self])

    __repr__ = __str__

    def _repr_html_(self) -> str:
        note = ""
        ids = [r.id for r in self]
        if len(set(ids)) < len(ids):
            note = "Rows with the same IMAGE ID are one image with several tags: a tag is only a name."
        return table_html(self.headers, [r.cells() for r in self], note=note, code=True)


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
        size = int(img.attrs.get("Size") or 0)
        tags = img.tags or ["<none>:<none>"]
        for name in tags:
            repo, _, tg = name.rpartition(":")
            if "/" in tg:
                repo, tg = name, "<none>"
            if repository and repo != repository:
                continue
            rows.append(ImageRow(repo, tg, img.id, created, size))
    rows.sort(key=lambda r: (r.repository, r.tag, r.id))
    return ImageList(rows)


# ---------------------------------------------------------------- history()

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

    def __init__(self, rows: Iterable[Layer], image: str = "", base: str | None = None):
        super().__init__(rows)
        self.image = image
        self.base = base

    @property
    def layers(self) -> list[Layer]:
        """Rows that made a layer, bottom first (the order of the image's diff ids)."""
        return [row for row in reversed(self) if not row.empty_layer]

    def _caption(self) -> str:
        made = sum(1 for r in self if not r.empty_layer)
        base_rows = sum(1 for r in self if r.origin == "base")
        text = f"history of {self.image}: {len(self)} rows, {made} layers"
        if self.base:
            text += f"; {base_rows} rows from the base image {self.base}"
        return text

    def _note(self) -> str:
        return MISSING_NOTE if any(r.id == MISSING for r in self) else ""

    def __str__(self) -> str:
        parts = [self._caption(), table_text(self.headers, [r.cells() for r in self])]
        if self._note():
            parts.append(self._note())
        return "\n".join(parts)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        return table_html(self.headers, [r.cells() for r in self], title=self._caption(), note=self._note(),
                          code=True)


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
    base_rows = list(reversed(cli.api.history(base.id)))
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
    name = image_ref(image) if isinstance(image, str) else (img.tags[0] if img.tags else short_id(img.id))
    return History(reversed(layers), image=name, base=base if n_base else None)
