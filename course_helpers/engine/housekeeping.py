"""Remove what the course made, and only that.

"Made by the course" is decided by records, never by inherited labels:

* an image is the course's when its id is one a course build produced
  (:mod:`~course_helpers.engine.ownership`); an image a learner builds FROM a
  course image carries the same labels but another id, and stays;
* a container is the course's when it carries
  :data:`~course_helpers.config.LABEL_CONTAINER`, which only the course sets
  at creation; ``docker run`` of a course image does not copy it;
* BuildKit's cache has no labels.  Lessons do not depend on it (their first
  build uses no cache, and each run's workspace is unique), so
  :func:`fresh_start` only tidies: it prunes unused records created during
  this repository's recorded builds, and none created during another's;
* the engine's build records (``docker buildx history``) go by the ids that
  buildx gave the course's own builds, never by name or age: the engine keeps
  only its latest records, and the course's should not push the learner's out.
"""
from __future__ import annotations

import html
import time
from dataclasses import dataclass, field
from typing import Any

import docker
from docker.errors import APIError, ImageNotFound, NotFound

from ..config import BASE_IMAGE, LABEL_CLAIM, LABEL_CONTAINER, LABEL_SESSION, SESSION_ID, owner_alive
from ..formatting import command_text, format_size, parse_time, shell_line
from . import api, claims, ownership
from .build_history import remove_records
from .cli import buildkit_client
from .client import image_store, list_containers, list_images, resolve
from .session import course_call
from .snapshots import settle

MARGIN = 2.0  # seconds around a recorded build window: engine and client clocks, rounding


def _protected_ids(cli: docker.DockerClient) -> set[str]:
    """Ids that must never be removed: the course's base image."""
    try:
        return {cli.images.get(BASE_IMAGE).id}
    except ImageNotFound:
        return set()


def _get_image(cli: docker.DockerClient, image_id: str) -> Any:
    """The image, or None when it went meanwhile (another kernel's cleanup)."""
    try:
        return cli.images.get(image_id)
    except ImageNotFound:
        return None


def _name_of(img: Any) -> str:
    return ", ".join(sorted(img.tags)) if img.tags else f"<none> ({img.id[7:19]})"


def _remove_containers(containers: list[Any], problems: list[str]) -> list[str]:
    """Force-remove containers; returns the names removed, notes the ones the engine refused."""
    removed = []
    for c in containers:
        try:
            c.remove(force=True)
            removed.append(c.name)
        except NotFound:
            pass  # gone already (its --rm, or another cleanup)
        except APIError as exc:
            problems.append(f"container {c.name}: {exc.explanation}")
    return removed


def _users(cli: docker.DockerClient) -> dict[str, list[str]]:
    """Image id -> names of the containers that use it."""
    out: dict[str, list[str]] = {}
    for c in api.container_rows(cli):
        out.setdefault(c.get("ImageID", ""), []).append((c.get("Names") or ["?"])[0].lstrip("/"))
    return out


def _remove_images(cli: docker.DockerClient, images: list[Any], problems: list[str]) -> list[str]:
    """Remove images newest first (a classic build's image is a parent of later ones), no force.

    Without force the engine refuses an image that a container (the learner's) still
    uses, or that has children (an image the learner built FROM it): those stay.
    """
    removed: list[str] = []
    pending = sorted(images, key=lambda i: i.attrs.get("Created", ""), reverse=True)
    left: list[tuple[Any, APIError]] = []
    for _ in range(2):
        left = []
        for img in pending:
            try:
                for name in img.tags or [img.id]:
                    api.remove_image(cli, name)
                removed.append(_name_of(img))
            except NotFound:
                pass
            except APIError as exc:
                left.append((img, exc))
        pending = [img for img, _ in left]
        if not pending:
            break
    users = _users(cli) if left else {}
    for img, exc in left:
        who = users.get(img.id)
        why = (f"a container uses it ({', '.join(who)})" if who else
               "an image built FROM it needs it" if "dependent child" in str(exc.explanation) else
               str(exc.explanation))
        problems.append(f"{_name_of(img)}: {why}")
    return removed


@dataclass
class CleanupReport:
    """What :func:`cleanup` removed, and what it left and why."""

    containers: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)
    scope: str = "this session"
    build_records: int = 0

    def __str__(self) -> str:
        records = f", and {self.build_records} build record(s) of its builds" if self.build_records else ""
        text = (f"removed {len(self.containers)} container(s) and {len(self.images)} image(s) made by "
                f"{self.scope}{records}; the base image and everything else were left alone")
        if self.images:
            text += "\nimages: " + "; ".join(sorted(self.images))
        if self.containers:
            text += "\ncontainers: " + "; ".join(sorted(self.containers))
        if self.problems:
            text += "\nnot removed: " + "; ".join(self.problems)
        if self.left:
            text += "\nleft alone: " + "; ".join(self.left)
        return text

    __repr__ = __str__

    def _repr_html_(self) -> str:
        return "<pre>" + html.escape(str(self)) + "</pre>"


def _course_containers(cli: docker.DockerClient, session: str | None) -> list[Any]:
    """Containers the course created (of one session when given), claims of live notebooks excepted."""
    out = []
    for c in list_containers(cli, all=True, filters={"label": LABEL_CONTAINER}):
        labels = c.labels or {}
        if session and labels.get(LABEL_SESSION) != session:
            continue
        if LABEL_CLAIM in labels and c.status == "running" and owner_alive(labels) is not False:
            continue  # a notebook elsewhere is running a lesson: its claim is not ours to break
        out.append(c)
    return out


def _left_alone(cli: docker.DockerClient, course_ids: set[str]) -> list[str]:
    """What looks like the course's (its labels) but is the learner's, with why it stays."""
    out = []
    for img in list_images(cli, filters={"label": LABEL_SESSION}):
        if img.id not in course_ids and img.tags:
            out.append(f"image {_name_of(img)} (built by you, FROM a course image)")
    for c in list_containers(cli, all=True, filters={"label": LABEL_SESSION}):
        if LABEL_CONTAINER not in (c.labels or {}):
            out.append(f"container {c.name} (started by you)")
    return sorted(out)


@course_call("cleaning up")
def cleanup(all_sessions: bool = False, *, client: docker.DockerClient | None = None) -> CleanupReport:
    """Remove the containers and images the course made in this session (or in any session).

    Args:
        all_sessions: also remove what earlier sessions (kernels, test runs) left.
        client: Docker client (default: the course's).

    Returns:
        A :class:`CleanupReport` naming what went and what stayed.  Never
        removes the base image, an image a learner built, or a container a
        learner started, even FROM or from a course image.
    """
    settle()
    cli = resolve(client)
    report = CleanupReport(scope="any course session" if all_sessions else "this session")
    session = None if all_sessions else SESSION_ID
    report.containers += _remove_containers(_course_containers(cli, session), report.problems)
    protected = _protected_ids(cli)
    course_ids = ownership.course_image_ids(session)
    # One listing (an engine with hundreds of images takes seconds to answer it); what goes now is
    # forgotten by the next cleanup.
    present = {row["Id"] for row in api.image_rows(cli, all=True)}
    targets = [img for img in (_get_image(cli, i) for i in sorted((course_ids & present) - protected)) if img]
    report.images = _remove_images(cli, targets, report.problems)
    report.containers.sort()
    ownership.forget_images(course_ids - present)
    report.build_records = _remove_build_records(ownership.build_refs(session=session))
    if all_sessions:
        report.left = _left_alone(cli, ownership.course_image_ids())
    return report


def _remove_build_records(refs: list[str]) -> int:
    """Remove the engine's records of these course builds (``docker buildx history rm``); how many went.

    Never ``docker buildx history ls``: on Docker 28.5 it can crash the engine (moby/buildkit#6598).
    """
    if not refs:
        return 0
    gone = remove_records(buildkit_client(), refs)
    ownership.forget_refs(gone)
    return len(gone)


# ---------------------------------------------------------------- fresh_start


def _prune_one(cli: docker.DockerClient, record_id: str) -> int:
    """Prune one build-cache record by id (the 20.10 engine takes one id per call); bytes reclaimed, -1 if kept."""
    body = api.prune_builds(cli, {"id": [record_id]})
    return int(body.get("SpaceReclaimed") or 0) if body.get("CachesDeleted") else -1


def _prune_ids(cli: docker.DockerClient, chosen: set[str], records: list[dict]) -> tuple[int, int]:
    """Prune the chosen records, leaves first (BuildKit keeps a record that still has a child)."""
    parent_of = {r["ID"]: r.get("Parent") for r in records}
    remaining = set(parent_of)
    count = size = 0
    progress = True
    while chosen and progress:
        progress = False
        parents = {parent_of[rid] for rid in remaining}
        for rid in sorted(chosen - parents):
            chosen.discard(rid)
            reclaimed = _prune_one(cli, rid)
            if reclaimed >= 0:
                remaining.discard(rid)
                count, size, progress = count + 1, size + reclaimed, True
    return count, size


@dataclass
class FreshStartReport:
    """What :func:`fresh_start` removed."""

    repository: str
    images: list[str] = field(default_factory=list)
    untagged: list[str] = field(default_factory=list)
    containers: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)
    cache_records: int = 0
    cache_bytes: int = 0
    build_records: int = 0
    cache_kept: bool = False
    seconds: float = 0.0
    printed: bool = False

    def __str__(self) -> str:
        text = (f"Fresh start for {self.repository}: removed {len(self.images)} course image(s) of "
                f"{self.repository}")
        if self.containers:
            text += f" and {len(self.containers)} of their container(s)"
        if self.untagged:
            text += f", {len(self.untagged)} untagged image(s) that earlier course builds left behind"
        if self.cache_kept:
            text += (" (the build cache stays: on the containerd image store, pruning one lesson's records makes "
                     "other builds miss their cache)")
        else:
            text += (f", and {self.cache_records} unused build-cache record(s) ({format_size(self.cache_bytes)}) "
                     f"of earlier {self.repository} lessons")
        if self.build_records:
            text += f"; the engine's record of {self.build_records} of their builds went too (docker buildx history)"
        text += "."
        if self.left:
            text += " Left alone, being yours: " + "; ".join(self.left) + "."
        text += " Your own images, containers and build cache are untouched."
        if self.images:
            text += "\n" + command_text(shell_line(["docker", "image", "rm", *self.images]))
        return text

    __repr__ = __str__

    def _repr_html_(self) -> str:
        return "<p>" + html.escape(str(self)) + "</p>"

    def _ipython_display_(self) -> None:
        # fresh_start() already printed the paragraph; showing it again as the cell's value is noise.
        if not self.printed:
            print(self)


def _cache_records(cli: docker.DockerClient, tries: int = 5) -> list[dict] | None:
    """The engine's build-cache records (``docker system df -v``), or None if it will not say.

    Only the build cache is asked for (API 1.42+; older engines send everything): on the
    containerd store, sizing the images races with a build's temporary snapshots and fails
    now and then with "snapshot ...-view does not exist", so that answer is asked again.
    """
    for attempt in range(tries):
        try:
            body = api.system_df(cli, "build-cache")
            return body.get("BuildCache") or []
        except APIError as exc:
            if "does not exist" not in str(exc) or attempt == tries - 1:
                return None
            time.sleep(0.2 * (attempt + 1))
    return None


def _prune_lesson_cache(cli: docker.DockerClient, repository: str, report: FreshStartReport) -> None:
    """Prune unused cache records made during this repository's course builds and no one else's."""
    if image_store(cli) == "containerd":
        # Docker 28: after `builder prune --filter id=` of one repository's records, a rebuild of
        # another repository (same instructions, other files) misses every step (docs/readme-engine-faults.md).
        report.cache_kept = True
        return
    windows = ownership.build_windows()
    mine = [(a, b) for a, b, repo in windows if repo == repository]
    others = [(a, b) for a, b, repo in windows if repo != repository]
    if not mine:
        return
    records = _cache_records(cli)
    if records is None:
        return

    def inside(t: float | None, spans: list[tuple[float, float]]) -> bool:
        return t is not None and any(a - MARGIN <= t <= b + MARGIN for a, b in spans)

    chosen = set()
    for r in records:
        created, used = parse_time(r.get("CreatedAt")), parse_time(r.get("LastUsedAt")) or parse_time(r.get("CreatedAt"))
        if r.get("Type") == "source.local" or str(r.get("Description", "")).startswith("local source for "):
            # The context as last sent: a few kB, shared by every build from this client (its shared key).
            # Pruning it makes Docker 28 miss the cache of other repositories' COPY steps: kept.
            continue
        if r.get("InUse") or not inside(created, mine) or not inside(used, mine):
            continue  # used since by something else: the learner's build, or another lesson
        if inside(created, others) or inside(used, others):
            continue
        chosen.add(r["ID"])
    report.cache_records, report.cache_bytes = _prune_ids(cli, chosen, records)
    # Forget the windows no record is left in; keep the rest for the next fresh_start.
    after = _cache_records(cli)
    if after is None:
        return
    left = [parse_time(r.get("CreatedAt")) for r in after]
    empty = [(a, b) for a, b in mine if not any(inside(t, [(a, b)]) for t in left)]
    ownership.forget_windows(repository, empty)


def _remove_untagged_course_images(cli: docker.DockerClient, course_ids: set[str], report) -> None:
    """Drop course-built images that lost their tag to a rebuild (nobody can name them any more)."""
    for img in list_images(cli, filters={"dangling": True}, only=course_ids):
        if img.id in course_ids:
            try:
                api.remove_image(cli, img.id)  # no force: an image with children or a container stays
                report.untagged.append(img.id[7:19])
            except (NotFound, APIError):
                pass


@course_call("starting the lesson afresh")
def fresh_start(repository: str, *, wait: bool = True, quiet: bool = False,
                client: docker.DockerClient | None = None) -> FreshStartReport:
    """What each lesson calls first: claim the repository, then remove what earlier runs left.

    Claims ``repository`` on the engine for this notebook (waiting, with a
    message, while another notebook holds it), then removes the images of
    ``repository`` that course builds made, the course's containers of them,
    untagged course images, the unused build-cache records made by
    earlier builds of this repository's lessons, and the engine's build
    records of those builds (by the ids buildx gave them).  What the learner
    made, even FROM a course image, stays.

    Args:
        repository: e.g. ``"flask-demo"``.
        wait: False to raise :class:`~course_helpers.errors.LessonBusy` at once when another notebook holds it.
        quiet: do not print the summary paragraph.
        client: Docker client (default: the course's).

    Returns:
        A :class:`FreshStartReport` (printed unless ``quiet``).
    """
    claims.acquire(repository, wait=wait)
    settle()  # the last build's snapshot holder is this session's, not a leftover
    started = time.perf_counter()
    cli = resolve(client)
    report = FreshStartReport(repository)
    protected = _protected_ids(cli)
    course_ids = ownership.course_image_ids(intermediates=False) - protected  # a classic build's cache stays
    doomed = list_images(cli, name=repository, only=course_ids)
    doomed_ids = {img.id for img in doomed}
    if doomed_ids:
        report.containers += _remove_containers(
            [c for c in _course_containers(cli, None) if c.attrs.get("Image") in doomed_ids], [])
    users = _users(cli)
    for img in doomed:
        for name in (t for t in img.tags if ownership.repository_of(t) == repository):
            try:
                # By name: an image that also has a tag elsewhere only loses this name.
                api.remove_image(cli, name)
                report.images.append(name)
            except NotFound:
                pass
            except APIError:
                who = ", ".join(users.get(img.id, [])) or "an image built FROM it"
                report.left.append(f"{name} (used by {who})")
    report.images.sort()
    _remove_untagged_course_images(cli, course_ids, report)
    _prune_lesson_cache(cli, repository, report)
    report.build_records = _remove_build_records(ownership.build_refs(repository))
    report.seconds = time.perf_counter() - started
    if not quiet:
        print(report)
        report.printed = True
    return report
