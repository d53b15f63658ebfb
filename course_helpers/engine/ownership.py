"""What the course made on an engine, so that it removes that and nothing else.

Labels alone cannot say it: Docker copies an image's labels into every image
built FROM it and every container run from it.  So the course keeps its own
record, per engine, in the state folder:

* every image id its builds produced (``images.jsonl``); an image a learner
  builds FROM a course image has another id, and is never the course's;
* every build it ran, with its repository and time window (``builds.jsonl``),
  which is how the build cache of one lesson's builds is told apart, and the id
  of the engine's record of that build (``docker buildx history``) when buildx
  gave one, which is how the course removes its own records and no one else's.

Containers need no record: the course marks those it creates with a label
that no image carries (:data:`~course_helpers.config.LABEL_CONTAINER`).
"""
from __future__ import annotations

from pathlib import Path

from ..config import LABEL_CONTAINER, SESSION_ID, state_dir
from ..statefiles import append_record, read_records, rewrite_records
from .client import engine_id


def engine_dir() -> Path:
    """The state folder of the engine in use."""
    return state_dir() / "engines" / engine_id()


def repository_of(tag: str | None) -> str | None:
    """``flask-demo:first`` -> ``flask-demo``; ``localhost:5000/app`` -> ``localhost:5000/app``."""
    if not tag:
        return None
    head, sep, tail = tag.rpartition(":")
    return head if sep and "/" not in tail else tag


def record_build(image_id: str, tag: str | None, builder: str, start: float, end: float,
                 folder: Path | None = None, ref: str | None = None) -> None:
    """Note an image the course built, and when its build ran (a failed build has no image).

    Args:
        folder: the engine's state folder, found before the build (the engine may be gone after it).
        ref: the id of the engine's build record (``docker buildx history``), when buildx said it.
    """
    folder = folder or engine_dir()
    if image_id:
        record_image(image_id, tag, folder=folder)
    build = {"repository": repository_of(tag), "builder": builder, "start": start, "end": end, "session": SESSION_ID}
    append_record(folder / "builds.jsonl", build | ({"ref": ref} if ref else {}))


def record_image(image_id: str, tag: str | None, folder: Path | None = None, **facts: object) -> None:
    """Note an image the course made (a build's, or one it made otherwise), so that cleanup removes it.

    Args:
        facts: more to keep about it, read back by :func:`image_records` (e.g. ``release=2``).
    """
    append_record((folder or engine_dir()) / "images.jsonl",
                  {**facts, "id": image_id, "tag": tag, "session": SESSION_ID})


def image_records() -> list[dict]:
    """The course's records of the images it made on this engine, oldest first (they may be gone since)."""
    return [item for item in read_records(engine_dir() / "images.jsonl") if isinstance(item.get("id"), str)]


def record_intermediates(image_ids: list[str], folder: Path | None = None) -> None:
    """Note the intermediate images a classic build committed (full ids), as the course's.

    On the classic image store the engine removes them with the image built on them; on the
    containerd store each stays behind as an untagged image, so cleanup must know them.
    """
    folder = folder or engine_dir()
    for image_id in image_ids:
        append_record(folder / "images.jsonl", {"id": image_id, "tag": None, "session": SESSION_ID,
                                                 "intermediate": True})


def course_image_ids(session: str | None = None, *, intermediates: bool = True) -> set[str]:
    """Every image id a course build produced on this engine (in one session, when given).

    Args:
        intermediates: include a classic build's intermediate images (its cache, on that builder).
    """
    return {item["id"] for item in read_records(engine_dir() / "images.jsonl")
            if isinstance(item.get("id"), str) and session in (None, item.get("session"))
            and (intermediates or not item.get("intermediate"))}


def build_windows(repository: str | None = None) -> list[tuple[float, float, str | None]]:
    """``(start, end, repository)`` of the course's builds, of one repository when given."""
    out = []
    for item in read_records(engine_dir() / "builds.jsonl"):
        try:
            window = (float(item["start"]), float(item["end"]), item.get("repository"))
        except (KeyError, TypeError, ValueError):
            continue
        if repository is None or window[2] == repository:
            out.append(window)
    return out


def build_refs(repository: str | None = None, session: str | None = None) -> list[str]:
    """Ids of the engine's build records that course builds made (of one repository, one session, when given)."""
    return [item["ref"] for item in read_records(engine_dir() / "builds.jsonl")
            if isinstance(item.get("ref"), str) and repository in (None, item.get("repository"))
            and session in (None, item.get("session"))]


def forget_refs(gone: list[str]) -> None:
    """Drop these build-record ids (the records were removed); the build windows stay."""
    if gone:
        rewrite_records(engine_dir() / "builds.jsonl", lambda item: True,
                        lambda item: {k: v for k, v in item.items() if not (k == "ref" and v in gone)})


def forget_images(gone: set[str]) -> None:
    """Drop ids of images that no longer exist, so the record does not grow forever."""
    if gone:
        rewrite_records(engine_dir() / "images.jsonl", lambda item: item.get("id") not in gone)


def forget_windows(repository: str, spans: list[tuple[float, float]]) -> None:
    """Drop these build windows of a repository (no cache record is left in them)."""
    gone = {(round(a, 3), round(b, 3)) for a, b in spans}
    if gone:
        rewrite_records(engine_dir() / "builds.jsonl", lambda item: item.get("repository") != repository or (
            round(float(item.get("start") or 0), 3), round(float(item.get("end") or 0), 3)) not in gone)


def is_course_container(attrs_labels: dict[str, str] | None) -> bool:
    """True for a container the course created itself (not one a learner ran from a course image)."""
    return bool(attrs_labels) and LABEL_CONTAINER in attrs_labels  # type: ignore[operator]
