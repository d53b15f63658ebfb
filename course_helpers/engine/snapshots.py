"""Keep an image's snapshots while a BuildKit build moves its tag to a new image (containerd image store).

On the containerd image store, a BuildKit build names its image first and unpacks
it into the snapshotter after.  Naming moves the tag: the image the tag named
until then is dropped at once (no ``<none>`` image is kept, unlike overlay2), and
the snapshots only it referenced wait for containerd's garbage collector.  The
unpack then walks the new image's layers; for each layer whose snapshot already
exists it moves on without taking a reference.  When the collector runs between
that check and the next layer's snapshot, the unpack fails with ``failed to
prepare extraction snapshot ... parent snapshot ... does not exist: not found``
(moby/buildkit#6521, fixed in BuildKit 0.29, Docker Engine 29.4).  Seen on this
machine: 6 of 400 plain ``docker buildx build --load`` rebuilds under one tag,
each changing only the last layer, failed so.

A rebuild under the same tag is what the lessons do on purpose (a changed
``requirements.txt``, an edited ``ENV``), so :func:`hold_previous` keeps the old
image's snapshots referenced until the build is over: it creates a container of
that image (never started, marked as the course's like every container it makes)
and removes it afterwards.  The old image then goes as it would have gone, and
nothing of the learner's is touched: a container removes no image.
"""
from __future__ import annotations

import contextlib
import threading
import uuid
from typing import Iterator

import docker
from docker.errors import APIError, NotFound

from ..config import LABEL_SESSION, owner_labels
from . import api
from .reaper import watch_me

CONTAINERD_SNAPSHOTTER = "io.containerd.snapshotter.v1"


def uses_containerd_store(cli: docker.DockerClient) -> bool:
    """True when the engine keeps images in containerd's image store (``docker info``: driver-type snapshotter)."""
    known = getattr(cli, "_course_containerd_store", None)
    if known is None:
        try:
            status = dict(tuple(row) for row in cli.info().get("DriverStatus") or [] if len(row) == 2)
        except (APIError, ValueError):
            return False
        known = status.get("driver-type") == CONTAINERD_SNAPSHOTTER
        cli._course_containerd_store = known  # type: ignore[attr-defined]  # one engine per client object
    return known


@contextlib.contextmanager
def hold_previous(cli: docker.DockerClient, tag: str | None) -> Iterator[str | None]:
    """Within the block, the image ``tag`` names now keeps its snapshots, whatever the block does to the tag.

    Does nothing unless the engine uses the containerd image store and ``tag`` names an image
    that has no other name (another name keeps it referenced anyway).

    Yields:
        On the containerd store, the id of the image ``tag`` named before the block (held or
        not), or None when it named none; elsewhere None.
    """
    if tag is None or not uses_containerd_store(cli):
        yield None
        return
    try:
        attrs = api.inspect_image_raw(cli, tag)
    except (NotFound, APIError):
        attrs = {}
    if not attrs or len(attrs.get("RepoTags") or []) > 1:
        yield attrs.get("Id")
        return
    try:
        holder = api.create_container_raw(cli, attrs["Id"], command=["true"],
                                          name=f"docker-layers-course-hold-{uuid.uuid4().hex[:12]}",
                                          labels=owner_labels("hold"))
    except APIError:
        yield None  # e.g. an image with no runnable config: the build goes on unprotected, as a plain one would
        return
    watch_me()  # a kernel killed during the build leaves no holder behind
    try:
        yield attrs["Id"]
    finally:
        _remove_later(cli, holder)


# Removing a container takes the containerd store about 0.35 s, as long as a whole cached
# rebuild: it happens beside the learner's next step instead of before build() returns.
_pending: list[threading.Thread] = []


def _remove_later(cli: docker.DockerClient, holder: str) -> None:
    def remove() -> None:
        try:
            api.force_remove_container(cli, holder)
        except (NotFound, APIError):
            pass  # gone already: another kernel's sweep or cleanup() took it
        except Exception:  # noqa: BLE001  # the engine went away: the reaper's sweep removes it later
            pass

    thread = threading.Thread(target=remove, name="course-hold-release")  # not a daemon: exit waits for it
    thread.start()
    _pending.append(thread)


def settle(timeout: float = 30.0) -> None:
    """Wait until the holders of finished builds are removed (cleanup and the tests look for leftovers)."""
    while _pending:
        _pending.pop().join(timeout)


def drop_half_made(cli: docker.DockerClient, tag: str | None, previous: str | None, session: str) -> str | None:
    """After a build that failed past naming its image: remove the image ``tag`` now names, if that build made it.

    A BuildKit build on the containerd store names its image before it unpacks it, so a
    failed unpack leaves the tag on an image that was never unpacked.  It is this build's
    when the tag names another image than before and carries this session's label.

    Returns:
        The id removed, or None.
    """
    if tag is None or not uses_containerd_store(cli):
        return None
    try:
        attrs = api.inspect_image_raw(cli, tag)
    except (NotFound, APIError):
        return None
    labels = (attrs.get("Config") or {}).get("Labels") or {}
    if attrs.get("Id") == previous or labels.get(LABEL_SESSION) != session:
        return None
    try:
        api.remove_image(cli, tag)  # by name, no force: an image with another name only loses this one
    except (NotFound, APIError):
        return None
    return attrs.get("Id")
