"""An image's history rows, and which of them made which layer: the course's one mapping.

``docker history`` (the engine's ``GET /images/{id}/history``) lists one row
per instruction, with a size but without the ``empty_layer`` flag the image
config keeps; the image's ``RootFS.Layers`` lists its diff ids, bottom first.
:func:`layer_history` lines the two up, so ``history()``, ``diff_images()`` and
``build()`` all name the same instruction for the same layer.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..dockerfile.parse import KNOWN, LAYER_INSTRUCTIONS
from ..engine import api

if TYPE_CHECKING:
    import docker

MISSING = "<missing>"

_NOP = "/bin/sh -c #(nop) "
_METADATA = KNOWN - LAYER_INSTRUCTIONS - {"FROM"}  # CMD, ENV, LABEL ...: config only


@dataclass(frozen=True)
class HistoryRow:
    """One history row, oldest first, and the layer it made.

    Attributes:
        id: the row's image id (``sha256:...``) or ``"<missing>"``.
        created: the engine's timestamp, as it gave it.
        created_by: what the engine recorded (``/bin/sh -c #(nop)  CMD [...]``).
        text: the same, readable (:func:`clean_created_by`).
        size: bytes the step added.
        comment: the builder's comment (``buildkit.dockerfile.v0``, ``Imported from -``).
        diff_id: the layer the row made (``sha256:...``), None when it made none.
    """

    id: str
    created: Any
    created_by: str
    text: str
    size: int
    comment: str
    diff_id: str | None

    @property
    def keyword(self) -> str:
        """The instruction keyword of :attr:`text` (``""`` for an imported root filesystem)."""
        return self.text.split(" ", 1)[0] if self.text else ""


def clean_created_by(text: str) -> str:
    """``docker history``'s CREATED BY made readable, nothing cut.

    The classic builder writes metadata steps as ``/bin/sh -c #(nop)  CMD [...]``
    and RUN steps as the bare shell command; BuildKit writes ``RUN /bin/sh -c
    ... # buildkit``.  Both become ``CMD [...]`` and ``RUN /bin/sh -c ...``.
    """
    text = (text or "").strip()
    if text.startswith(_NOP):
        return text[len(_NOP):].strip()
    if text.endswith(" # buildkit"):
        text = text[: -len(" # buildkit")]
    if text and text.split(" ", 1)[0] not in KNOWN:
        text = "RUN " + text  # classic builder: a RUN step is recorded as the bare command
    return text


def _guess(size: int, text: str) -> bool:
    """Whether a row made a layer, from what it says: a size, an import, or a layer-making instruction."""
    return size > 0 or not text or text.split(" ", 1)[0] in LAYER_INSTRUCTIONS


def layer_history(attrs: dict[str, Any], cli: "docker.DockerClient") -> list[HistoryRow]:
    """An image's history rows, oldest first, each with the diff id it made.

    Rows that carry an image id (the image itself; every step of a classic build) are
    exact: that image's layer count says whether the row added one.  The others are
    judged by what they say (a size, or RUN/COPY/ADD/WORKDIR), and the judgement is
    then fitted to the image's real number of layers: zero-size guesses are dropped
    (WORKDIR first, as BuildKit makes no layer for a directory that exists), or rows
    that are not metadata are counted in.

    Args:
        attrs: the image's inspect data (``Image.attrs`` or ``APIClient.inspect_image()``).
        cli: Docker client, for the history and the intermediate images' layer counts.

    Returns:
        One :class:`HistoryRow` per history row, oldest first.
    """
    diff_ids = list((attrs.get("RootFS") or {}).get("Layers") or [])
    rows = list(reversed(api.image_history(cli, attrs["Id"])))
    texts = [clean_created_by(r.get("CreatedBy", "")) for r in rows]
    sizes = [int(r.get("Size") or 0) for r in rows]
    flags: list[bool] = []
    exact: list[bool] = []
    count = 0
    for row, text, size in zip(rows, texts, sizes):
        ident = row.get("Id") or MISSING
        layers: int | None = None
        if ident == attrs["Id"]:
            layers = len(diff_ids)
        elif ident != MISSING:
            layers = _layer_count(cli, ident)
        made = layers > count if layers is not None else _guess(size, text)
        exact.append(layers is not None)
        flags.append(made)
        count += made
    for i in sorted(range(len(rows)), key=lambda i: (not texts[i].startswith("WORKDIR"), -i)):
        if sum(flags) <= len(diff_ids):
            break
        if flags[i] and not exact[i] and sizes[i] == 0:
            flags[i] = False
    for i in reversed(range(len(rows))):
        if sum(flags) >= len(diff_ids):
            break
        if not flags[i] and not exact[i] and texts[i].split(" ", 1)[0] not in _METADATA:
            flags[i] = True
    out: list[HistoryRow] = []
    k = 0
    for row, text, size, made in zip(rows, texts, sizes, flags):
        diff_id = diff_ids[k] if made and k < len(diff_ids) else None
        k += made
        out.append(HistoryRow(row.get("Id") or MISSING, row.get("Created"), row.get("CreatedBy") or "", text,
                              size, row.get("Comment") or "", diff_id))
    return out


def _layer_count(cli: "docker.DockerClient", image_id: str) -> int | None:
    from docker.errors import APIError

    try:
        return len(api.inspect_image_raw(cli, image_id)["RootFS"]["Layers"])
    except (APIError, KeyError):
        return None
