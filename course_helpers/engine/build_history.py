"""The engine's own record of each build: ``docker buildx history``.

BuildKit keeps a record of every build it runs (a "build record": its status,
its time, and how many of its steps it solved and took from its cache), and
newer buildx clients can read it: ``docker buildx history ls``, ``inspect``,
``rm``.  Seen here: buildx 0.29.1 (Docker 28) has the command; buildx 0.13.1
(Docker 26) and the 20.10 client have not.

A build's record is found by its ref, which buildx writes to the file named by
``--metadata-file`` (``buildx.build.ref``, ``builder/node/ref``) when the build
succeeds; a failed build writes no metadata, so its record stays unnamed.

The engine keeps a bounded number of records (dockerd's default: the last 50,
for 48 hours), so course builds push a learner's older records out.  The course
removes records only by the refs its own builds were given (see
:mod:`~course_helpers.engine.ownership`), never by name or age.
"""
from __future__ import annotations

import functools
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..errors import CourseError
from ..formatting import parse_time
from .cli import BuildkitClient, buildkit_client

_TIMEOUT = 60


@dataclass(frozen=True)
class BuildRecord:
    """One build as the engine recorded it (``docker buildx history inspect --format json REF``).

    Attributes:
        ref: the record's id (the last part of ``buildx.build.ref``).
        name: what buildx called the build (the context folder's name, by default).
        status: ``completed``, ``failed`` or ``canceled``, as the engine says it.
        total_steps: the steps the engine solved: the Dockerfile's, and its own ``[internal]``
            loads and the export to the image store.
        completed_steps: how many of those completed.
        cached_steps: how many it took from its cache.
        seconds: how long the build took, by the engine's clock.
        error: the engine's message for a failed build, else None.
    """

    ref: str
    name: str
    status: str
    total_steps: int
    completed_steps: int
    cached_steps: int
    seconds: float
    error: str | None = None

    @property
    def command(self) -> str:
        """What shows the same record on a terminal."""
        return f"docker buildx history inspect {self.ref}"


@dataclass(frozen=True)
class BuildMetadata:
    """What buildx's ``--metadata-file`` says of a finished build.

    Attributes:
        ref: the build record's id (``default/default/mvffww41...`` -> ``mvffww41...``).
        image_digest: the digest the engine names the image by: the index's with an attestation,
            the manifest's without one on the containerd store, the config's on the classic store.
            ``--iidfile`` gives the config's digest when there is no attestation, which the
            containerd store does not know as an image ID (seen with buildx 0.29 on Docker 28).
        config_digest: the digest of the image's config.
    """

    ref: str | None = None
    image_digest: str | None = None
    config_digest: str | None = None


def read_metadata(metadata_file: str | Path) -> BuildMetadata:
    """The :class:`BuildMetadata` of a ``--metadata-file``; empty when the file is missing (a failed build
    writes none) or unreadable."""
    try:
        data = json.loads(Path(metadata_file).read_text())
    except (OSError, ValueError):
        return BuildMetadata()
    if not isinstance(data, dict):
        return BuildMetadata()
    text = lambda key: data[key] if isinstance(data.get(key), str) and data[key] else None  # noqa: E731
    ref = text("buildx.build.ref")
    return BuildMetadata(ref.rsplit("/", 1)[-1] if ref else None, text("containerimage.digest"),
                         text("containerimage.config.digest"))


def build_ref(metadata_file: str | Path) -> str | None:
    """The build record's id from a ``--metadata-file``, or None (see :class:`BuildMetadata`)."""
    return read_metadata(metadata_file).ref


def _run(cli: BuildkitClient, args: list[str]) -> subprocess.CompletedProcess[str] | None:
    try:
        return subprocess.run([cli.path, "buildx", "history", *args], capture_output=True, text=True,
                              timeout=_TIMEOUT, stdin=subprocess.DEVNULL, env=cli.environment())
    except (OSError, subprocess.TimeoutExpired):
        return None


@functools.lru_cache(maxsize=8)
def has_history(cli: BuildkitClient) -> bool:
    """True when this client's buildx has ``buildx history`` (probed once per client and process)."""
    if cli.via != "buildx":
        return False
    out = _run(cli, ["inspect", "--help"])
    return out is not None and out.returncode == 0 and "build record" in out.stdout.lower()


def no_history_reason(cli: BuildkitClient | None) -> str | None:
    """Why build records cannot be read with this client, in one sentence; None when they can."""
    if cli is None:
        return ("No docker client here runs BuildKit builds, so there is no build record to read: install "
                "the buildx plugin.")
    if not has_history(cli):
        what = f"docker {cli.version} with buildx" if cli.via == "buildx" else f"docker {cli.version}, no buildx"
        return (f"The docker client here ({what}) has no `docker buildx history`, so the engine's own build "
                "records cannot be read: a newer buildx (Docker 28's 0.29 has it) can.")
    return None


def read_record(ref: str, cli: BuildkitClient | None = None) -> BuildRecord:
    """The engine's record of one build.

    Args:
        ref: the record's id (:func:`build_ref`, ``BuildReport.build_ref``).
        cli: the client to ask; default: the course's BuildKit client.

    Raises:
        CourseError: the client has no ``buildx history``, or the engine has no record of that id.
    """
    cli = cli or buildkit_client()
    reason = no_history_reason(cli)
    if reason:
        raise CourseError(reason)
    assert cli is not None
    out = _run(cli, ["inspect", "--format", "json", ref])
    if out is None or out.returncode != 0:
        said = (out.stderr.strip().splitlines() or ["no answer"])[-1] if out is not None else "no answer"
        raise CourseError(f"The engine has no build record {ref} ({said}): it keeps only its latest records "
                          "(see `docker buildx history ls`), so build again to make a new one.")
    data = json.loads(out.stdout)
    error = data.get("Error") or {}
    started, completed = parse_time(data.get("StartedAt")), parse_time(data.get("CompletedAt"))
    seconds = (completed - started) if started is not None and completed is not None else 0.0
    return BuildRecord(ref=str(data.get("Ref") or ref), name=str(data.get("Name") or ""),
                       status=str(data.get("Status") or ""), total_steps=int(data.get("NumTotalSteps") or 0),
                       completed_steps=int(data.get("NumCompletedSteps") or 0),
                       cached_steps=int(data.get("NumCachedSteps") or 0), seconds=seconds,
                       error=error.get("Message") if isinstance(error, dict) else None)


def remove_records(cli: BuildkitClient | None, refs: list[str]) -> list[str]:
    """Remove these build records; only ever called with ids of the course's own builds.

    One call for all: buildx removes every id it knows and names the ones it does not
    (``lease "ref_...": not found``), which are gone already.

    Returns:
        The ids that are gone now; empty when the client has no ``buildx history`` or the
        engine refused for another reason (the caller keeps them, to try again later).
    """
    if cli is None or not refs or not has_history(cli):
        return []
    refs = list(dict.fromkeys(refs))
    out = _run(cli, ["rm", *refs])
    if out is None:
        return []
    errors = [line for line in out.stderr.splitlines() if line.strip()]
    if out.returncode == 0 or all("not found" in line for line in errors):
        return refs
    return []
