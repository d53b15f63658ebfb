"""The course's record of each finished build, which ``predict()`` and ``explain()`` compare a new state with.

:func:`~course_helpers.builder.build.build` calls :func:`record_context_snapshot` after every
build: the record holds the context's snapshot (:mod:`course_helpers.dockerfile.context`), the
Dockerfile's text, the build arguments, the steps with their cached flags, and the image ID each
base named in FROM had (:func:`base_image_ids`).  Records are kept
in ``state_dir()/build-records``, per (context, Dockerfile, tag) and per (context, Dockerfile),
the last :data:`HISTORY` of each.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import state_dir
from ..dockerfile.context import ContextSnapshot, FileEntry, take_snapshot
from ..dockerfile.parse import Dockerfile, read_text
from ..engine import api as engine_api
from ..errors import DockerfileError
from ..statefiles import write_atomic
from .report import BuildReport

if TYPE_CHECKING:
    import docker

HISTORY = 5  # records kept per (context, dockerfile, tag)



@dataclass
class BuildRecord:
    """What predict/explain need to know about one finished build."""

    context: str
    dockerfile: str
    dockerfile_text: str
    tag: str | None
    builder: str
    image_id: str
    build_args: dict[str, str]
    no_cache: bool
    steps: list[tuple[int, str, str, bool]]  # (index, stage, instruction, cached) as reported
    files: dict[str, tuple[str, int]] = field(default_factory=dict)
    target: str | None = None  # the stage built (--target), None for the last
    bases: dict[str, str] = field(default_factory=dict)  # FROM's image -> its image ID then ({} in older records)

    def snapshot(self) -> ContextSnapshot:
        return ContextSnapshot(self.context, {k: FileEntry._make(v) for k, v in self.files.items()})


def _key(context: str | Path, dockerfile: str, tag: str | None) -> str:
    text = f"{os.path.abspath(context)}\0{dockerfile}\0{tag or ''}"
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _records_file(context: str | Path, dockerfile: str, tag: str | None) -> Path:
    folder = state_dir() / "build-records"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{_key(context, dockerfile, tag)}.json"


def _load(path: Path) -> list[BuildRecord]:
    try:
        items = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    out = []
    for item in items:
        try:
            out.append(record_from_dict(item))
        except (TypeError, KeyError):
            continue  # a record from an older format
    return out


def record_context_snapshot(report: BuildReport) -> BuildRecord | None:
    """Record what a build saw, so that later predict()/explain() calls can compare with it.

    The build module calls this after every successful build. Records are kept
    per (context, dockerfile, tag) and per (context, dockerfile), the last
    ``HISTORY`` of each.

    Args:
        report: the finished build (its ``context`` must be set).

    Returns:
        The stored :class:`BuildRecord`, or None when the report has no context.
    """
    if not report.context:
        return None
    context = os.path.abspath(report.context)
    dockerfile_path = Path(context) / report.dockerfile
    try:
        text = read_text(dockerfile_path)[0]  # as Docker reads it, even when it is not UTF-8
    except DockerfileError:
        text = ""
    snap = take_snapshot(context)
    record = BuildRecord(context, report.dockerfile, text, report.tags[0] if report.tags else None,
                         report.builder, report.image_id, dict(report.build_args or {}), report.no_cache,
                         [(s.index, s.stage, s.instruction, s.cached) for s in report.steps],
                         {k: tuple(v) for k, v in snap.files.items()}, report.target, dict(report.base_ids))
    return store_record(record)


def _by_digest(ref: str) -> str:
    """``repo:tag@sha256:...`` as ``repo@sha256:...``: the engine looks a pinned base up by its digest
    (with the tag left in, it may look the tag up instead, and the tag may have moved)."""
    name, at, digest = ref.partition("@")
    if not at:
        return ref
    head, _, last = name.rpartition("/")
    return f"{head + '/' if head else ''}{last.split(':', 1)[0]}@{digest}"


def base_image_ids(df: Dockerfile | None, cli: "docker.DockerClient | None") -> dict[str, str]:
    """The image ID each base image ``df`` names in FROM has on the engine now.

    A stage FROM another stage, ``scratch``, and a base the engine does not have (or an engine
    that does not answer: ``cli`` None) are left out.

    Returns:
        ``{"python:3.11-slim-bookworm": "sha256:..."}``.
    """
    out: dict[str, str] = {}
    if df is None or cli is None:
        return out
    for stage in df.stages:
        if stage.base_stage is not None or stage.base.lower() == "scratch" or stage.base in out:
            continue
        # A pinned base whose name has moved on is found by its digest alone (on the containerd
        # store that digest is the image ID).
        for ref in dict.fromkeys([_by_digest(stage.base), stage.base.partition("@")[2] or stage.base]):
            try:
                out[stage.base] = engine_api.inspect_image_raw(cli, ref)["Id"]
                break
            except Exception:  # not there, or the engine went away (docker's or requests' errors): not known
                continue
    return out


def store_record(record: BuildRecord) -> BuildRecord:
    """Add a build record to the history of its context (per tag and for any tag), as the last build.

    Args:
        record: a record made here, or one the course ships from a real run (its ``context``
            set to the folder it now describes).

    Returns:
        The record.
    """
    for tag in {record.tag, None}:
        path = _records_file(record.context, record.dockerfile, tag)
        history = _load(path)
        if history and history[-1] == record:
            continue  # recorded already (the hook may run twice for one build)
        history = (history + [record])[-HISTORY:]
        write_atomic(path, json.dumps([asdict(r) for r in history]))
    return record


def record_from_dict(item: dict) -> BuildRecord:
    """A :class:`BuildRecord` from its JSON form (``dataclasses.asdict`` of one, read back)."""
    item = dict(item)
    item["steps"] = [tuple(s) for s in item["steps"]]
    item["files"] = {k: tuple(v) for k, v in item.get("files", {}).items()}
    return BuildRecord(**item)


def build_records(context: str | Path, dockerfile: str = "Dockerfile", tag: str | None = None) -> list[BuildRecord]:
    """Recorded builds of a context and Dockerfile (of one tag when given), oldest first."""
    records = _load(_records_file(context, dockerfile, tag))
    if not records and tag is not None:
        records = _load(_records_file(context, dockerfile, None))
    return records


def forget_context(context: str | Path) -> None:
    """Drop every record of builds of ``context``: a fresh workspace starts with no history."""
    context = os.path.abspath(context)
    folder = state_dir() / "build-records"
    for path in folder.glob("*.json") if folder.is_dir() else []:
        try:
            items = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        kept = [item for item in items if item.get("context") != context]
        if len(kept) == len(items):
            continue
        if kept:
            write_atomic(path, json.dumps(kept))
        else:
            path.unlink(missing_ok=True)


def find_record(report: BuildReport) -> tuple[BuildRecord | None, BuildRecord | None]:
    """The record of ``report`` and the one before it (either may be None)."""
    if not report.context:
        return None, None
    # The build before this one in the same workspace, whatever its tag: that is
    # what a learner compares with ("I edited app.py and rebuilt").
    # Each builder has its own cache, so only builds by the same builder compare; and only builds
    # of the same target, since a --target build says nothing about the stages after it.
    records = [r for r in _load(_records_file(report.context, report.dockerfile, None))
               if r.builder == report.builder and r.target == report.target]
    steps = [(s.index, s.stage, s.instruction, s.cached) for s in report.steps]
    for i in range(len(records) - 1, -1, -1):
        if records[i].image_id == report.image_id and records[i].steps == steps:
            return records[i], records[i - 1] if i > 0 else None
    return None, records[-1] if records else None
