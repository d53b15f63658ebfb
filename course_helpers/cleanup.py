"""Remove what the course made, and only that.

Images and containers are found by the course's labels.  Two traps shape the
rules below:

* Docker copies an image's labels into every image built FROM it and into
  every container run from it.  So the base image carries no course label
  that marks it as removable (an older base carried ``managed=true`` and
  ``role=base``, which a learner's own images inherited).  Only the *session* label
  (``io.docker-layers-course.session``) is set by the course's helpers alone,
  so removal always requires it, and the base image itself is never removed.
* BuildKit's cache is not labelled at all.  Course builds record when they ran
  (:mod:`course_helpers.cachelog`); :func:`fresh_start` prunes the cache
  records created inside those windows, one id per call, and no other.
"""
from __future__ import annotations

import datetime as _dt
import html
import json
import time
from dataclasses import dataclass, field
from typing import Any

import docker
from docker.errors import APIError, ImageNotFound, NotFound

from . import cachelog
from .config import BASE_IMAGE, LABEL_ROLE, LABEL_SESSION, SESSION_ID
from .images import _client, human_size

MARGIN = 2.0  # seconds around a recorded build window: engine and client clocks, rounding


def _protected_ids(cli: docker.DockerClient) -> set[str]:
    """Ids that must never be removed: the course's base image."""
    ids = set()
    try:
        ids.add(cli.images.get(BASE_IMAGE).id)
    except ImageNotFound:
        pass
    # Bases made by older course versions had role=base; keep protecting them.
    for img in cli.images.list(filters={"label": f"{LABEL_ROLE}=base"}):
        if LABEL_SESSION not in (img.labels or {}):
            ids.add(img.id)
    return ids


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


def _remove_images(cli: docker.DockerClient, images: list[Any], problems: list[str]) -> list[str]:
    """Remove images newest first (a classic build's image depends on older ones); retry once."""
    removed: list[str] = []
    pending = sorted(images, key=lambda i: i.attrs.get("Created", ""), reverse=True)
    for _ in range(2):
        left = []
        for img in pending:
            try:
                cli.api.remove_image(img.id, force=True)
                removed.append(_name_of(img))
            except NotFound:
                pass
            except APIError as exc:
                left.append((img, exc))
        pending = [img for img, _ in left]
        if not pending:
            break
    problems += [f"{_name_of(img)}: {exc.explanation}" for img, exc in left] if pending else []
    return removed


@dataclass
class CleanupReport:
    """What :func:`cleanup` removed."""

    containers: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    scope: str = "this session"

    def __str__(self) -> str:
        text = (f"removed {len(self.containers)} container(s) and {len(self.images)} image(s) made by "
                f"{self.scope}; the base image and everything else were left alone")
        if self.images:
            text += "\nimages: " + "; ".join(sorted(self.images))
        if self.problems:
            text += "\nnot removed: " + "; ".join(self.problems)
        return text

    __repr__ = __str__

    def _repr_html_(self) -> str:
        return "<pre>" + html.escape(str(self)) + "</pre>"


def cleanup(all_sessions: bool = False, *, client: docker.DockerClient | None = None) -> CleanupReport:
    """Remove the containers and images that carry this session's label (or any course session's).

    Args:
        all_sessions: also remove what earlier sessions (kernels, test runs) left.
        client: Docker client (default: the course's).

    Returns:
        A :class:`CleanupReport` naming what went.  Never removes the base
        image, nor anything without the course's session label.
    """
    cli = _client(client)
    label = LABEL_SESSION if all_sessions else f"{LABEL_SESSION}={SESSION_ID}"
    report = CleanupReport(scope="any course session" if all_sessions else "this session")
    report.containers += _remove_containers(cli.containers.list(all=True, filters={"label": label}),
                                            report.problems)
    protected = _protected_ids(cli)
    targets = [img for img in cli.images.list(all=True, filters={"label": label}) if img.id not in protected]
    report.images = _remove_images(cli, targets, report.problems)
    report.containers.sort()
    return report


# ---------------------------------------------------------------- fresh_start


def _timestamp(text: str) -> float:
    """RFC 3339 with nanoseconds (``2026-11-28T00:24:27.304233327Z``) as unix seconds."""
    main, _, frac = text.rstrip("Z").partition(".")
    tz = _dt.timezone.utc
    if "+" in frac or "-" in frac:  # an offset after the fraction: rare, let fromisoformat handle it
        return _dt.datetime.fromisoformat(text).timestamp()
    return _dt.datetime.fromisoformat(main).replace(tzinfo=tz).timestamp() + float("0." + (frac or "0"))


def _prune_one(cli: docker.DockerClient, record_id: str) -> int:
    """Prune one build-cache record by id; returns the bytes reclaimed (0 if BuildKit kept it)."""
    api = cli.api
    # The engine takes one id filter per call; without "all", BuildKit still removes an unused record.
    res = api._post(api._url("/build/prune"), params={"filters": json.dumps({"id": [record_id]})})
    api._raise_for_status(res)
    body = res.json() or {}
    return int(body.get("SpaceReclaimed") or 0) if body.get("CachesDeleted") else -1


@dataclass
class FreshStartReport:
    """What :func:`fresh_start` removed."""

    repository: str
    images: list[str] = field(default_factory=list)
    untagged: list[str] = field(default_factory=list)
    containers: list[str] = field(default_factory=list)
    cache_records: int = 0
    cache_bytes: int = 0
    cache_kept: int = 0
    seconds: float = 0.0
    printed: bool = False

    def __str__(self) -> str:
        text = (f"Fresh start for {self.repository}: removed {len(self.images)} course image(s) of "
                f"{self.repository}")
        if self.containers:
            text += f" and {len(self.containers)} of their container(s)"
        if self.untagged:
            text += f", {len(self.untagged)} untagged image(s) that earlier course builds left behind"
        text += (f", and {self.cache_records} build-cache record(s) ({human_size(self.cache_bytes)}) that earlier "
                 "course builds made, so the next build starts cold as in the lesson.")
        if self.cache_kept:
            text += (f" {self.cache_kept} record(s) from course builds were kept because other images "
                     "or builds still use them.")
        text += " Your own images and your own build cache are untouched."
        return text

    __repr__ = __str__

    def _repr_html_(self) -> str:
        return "<p>" + html.escape(str(self)) + "</p>"

    def _ipython_display_(self) -> None:
        # fresh_start() already printed the paragraph; showing it again as the cell's value is noise.
        if not self.printed:
            print(self)


def _prune_course_cache(cli: docker.DockerClient, report: FreshStartReport) -> None:
    windows = cachelog.build_windows()
    if not windows:
        return
    try:
        records = cli.api.df().get("BuildCache") or []
    except APIError:
        return
    by_id = {r["ID"]: r for r in records}

    def in_window(r: dict) -> bool:
        try:
            t = _timestamp(r.get("CreatedAt", ""))
        except ValueError:
            return False
        return any(start - MARGIN <= t <= end + MARGIN for start, end in windows)

    selected = {rid for rid, r in by_id.items() if in_window(r) and not r.get("InUse")}
    remaining = set(by_id)
    # Leaves first: BuildKit keeps a record that still has a child.
    progress = True
    while selected and progress:
        progress = False
        parents = {by_id[rid].get("Parent") for rid in remaining}
        for rid in sorted(selected - parents):
            reclaimed = _prune_one(cli, rid)
            selected.discard(rid)
            if reclaimed >= 0:
                remaining.discard(rid)
                report.cache_records += 1
                report.cache_bytes += reclaimed
                progress = True
    kept = [by_id[rid] for rid in by_id if rid in remaining and in_window(by_id[rid])]
    report.cache_kept = len(kept)
    cachelog.forget_windows()
    # Keep knowing the records we could not remove, so a later fresh_start can try again.
    for r in kept:
        t = _timestamp(r["CreatedAt"])
        cachelog.record_build_window(t, t)


def _remove_untagged_course_images(cli: docker.DockerClient, protected: set[str], report) -> None:
    """Drop course-built images that lost their tag to a rebuild.

    Such an image still holds its layers as cache (classic builder) and keeps
    BuildKit records in use, so a lesson would be served results of an earlier
    run.  Nobody can name it any more, so it is nobody's image but the course's.
    """
    for img in cli.images.list(filters={"dangling": True, "label": LABEL_SESSION}):
        if img.id in protected or img.tags:
            continue
        try:
            cli.api.remove_image(img.id)  # no force: an image with children stays
            report.untagged.append(img.id[7:19])
        except (NotFound, APIError):
            pass


def fresh_start(repository: str, *, quiet: bool = False,
                client: docker.DockerClient | None = None) -> FreshStartReport:
    """What each notebook calls first, so that it runs the same every time.

    Removes the course's images of ``repository`` (all tags, e.g. every
    ``flask-demo:*``) and their containers, then the BuildKit cache records
    that earlier course builds created (found by the build times the course
    recorded), leaves first.  With the classic builder the cache is the chain
    of intermediate images, which goes with the images.

    Args:
        repository: e.g. ``"flask-demo"``.
        quiet: do not print the summary paragraph.
        client: Docker client (default: the course's).

    Returns:
        A :class:`FreshStartReport` (printed unless ``quiet``).
    """
    started = time.perf_counter()
    cli = _client(client)
    report = FreshStartReport(repository)
    protected = _protected_ids(cli)
    # Course images carry the session label (of whichever session built them): the learner's don't.
    doomed = [img for img in cli.images.list(name=repository, filters={"label": LABEL_SESSION})
              if img.id not in protected]
    doomed_ids = {img.id for img in doomed}
    if doomed_ids:
        report.containers += _remove_containers(
            [c for c in cli.containers.list(all=True) if c.attrs.get("Image") in doomed_ids], [])
    for img in doomed:
        names = [t for t in img.tags if t.rpartition(":")[0] == repository]
        for name in names:
            try:
                # By name: an image that also has a tag elsewhere only loses this name.
                cli.api.remove_image(name)
                report.images.append(name)
            except (NotFound, APIError):
                pass
    report.images.sort()
    _remove_untagged_course_images(cli, protected, report)
    _prune_course_cache(cli, report)
    report.seconds = time.perf_counter() - started
    if not quiet:
        print(report)
        report.printed = True
    return report
