"""Which failed builds are the engine's fault, and what a learner can do about each.

A build can fail in a step (a RUN exits non-zero, a COPY names a missing file):
the Dockerfile or the network is then the cause, and :mod:`.build` says so.  It
can also fail in the engine's own work around the steps: exporting the image,
unpacking it into the snapshotter, keeping its snapshots and leases, its disk,
its daemon.  No edit of the Dockerfile changes those, so the course must not ask
for one.  :func:`engine_fault` tells the two apart, from the phase that failed
(BuildKit names its exporter ``exporting to image``) or the engine's own words.

One engine fault has a name of its own, :data:`UNPACK_RACE`: on the containerd image
store, BuildKit up to 0.28 (Docker Engine up to 29.3) may fail to unpack the image
it has just built with ``failed to prepare extraction snapshot ... parent snapshot
... does not exist: not found`` (moby/buildkit#6521, fixed by moby/buildkit#6558
in BuildKit 0.29, Docker Engine 29.4).  Its unpack finds a parent snapshot that
nothing references any more, then containerd's garbage collector removes it
before the next layer is laid on top.  A second build does not meet the same
snapshot, so :func:`~course_helpers.builder.build.build` tries once more.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import EngineFault, disk_full
from .report import Failure

#: The upstream issue of the unpack race, for messages and docs.
UPSTREAM_ISSUE = "moby/buildkit#6521"

UNPACK_RACE = "unpack race"
DISK_FULL = "disk full"
DROPPED = "dropped"
ENGINE = "engine"

# BuildKit's own vertices around the steps whose failure is the engine's: its exporters.
_ENGINE_PHASES = re.compile(r"^(exporting|naming to|unpacking to|writing image|importing to|sending tarball)",
                            re.IGNORECASE)
_UNPACK_RACE = re.compile(r"failed to prepare extraction snapshot")
# The client's connection to the daemon (not a registry's: those are the network's).
_DROPPED = re.compile(r"error reading from server: EOF|transport is closing|rpc error: code = Unavailable|"
                      r"Cannot connect to the Docker daemon", re.IGNORECASE)
_DISK_FULL = re.compile(r"no space left on device", re.IGNORECASE)
# The snapshotter, the content store, leases and unpacking: the engine's storage, whatever step was running.
_STORAGE = re.compile(r"snapshot \S+ does not exist|failed to (?:prepare|commit|create|remove|mount|stat) (?:\S+ )?"
                      r"snapshot|failed to (?:unpack|extract|apply) (?:image|layer)|failed to export image|"
                      r"content digest \S+: not found|failed to (?:create|get|delete) lease|"
                      r"mismatched image rootfs|failed to write image|failed to get layer", re.IGNORECASE)


@dataclass(frozen=True)
class Fault:
    """An engine fault seen in a build's output.

    Attributes:
        kind: :data:`UNPACK_RACE`, :data:`DISK_FULL`, :data:`DROPPED` or :data:`ENGINE`.
        words: the engine's error, as it printed it.
        phase: the builder's work that failed (``"exporting to image"``), or None when a step was running.
    """

    kind: str
    words: str
    phase: str | None = None

    @property
    def retry(self) -> bool:
        """Whether one more build is likely to pass: only for the unpack race, which a rebuild does not meet."""
        return self.kind == UNPACK_RACE


def engine_fault(failure: Failure | None, lines: list[str]) -> Fault | None:
    """The engine fault a failed build met, or None when the failure is the Dockerfile's (or the network's).

    Args:
        failure: what the log parser found (:meth:`~course_helpers.builder.log_buildkit.PlainParser.failure`).
        lines: the build's output, for errors printed outside any step.

    Example:
        >>> from course_helpers.builder.report import Failure
        >>> engine_fault(Failure('failed to prepare extraction snapshot "extract-1 sha256:ab": parent '
        ...                      'snapshot sha256:cd does not exist: not found', phase="exporting to image"), []).kind
        'unpack race'
    """
    words = failure.message if failure else ""
    text = "\n".join([words] + (failure.logs if failure else []) + lines[-15:])
    phase = failure.phase if failure else None
    if _DISK_FULL.search(text):
        return Fault(DISK_FULL, _line_of(text, _DISK_FULL), phase)
    if failure is not None and failure.exit_code is not None:
        return None  # a process of the Dockerfile's ran and failed: what it printed is its own business
    if _UNPACK_RACE.search(text):
        return Fault(UNPACK_RACE, _line_of(text, _UNPACK_RACE), phase)
    if _DROPPED.search(text):
        return Fault(DROPPED, _line_of(text, _DROPPED), phase)
    if (phase and _ENGINE_PHASES.match(phase)) or _STORAGE.search(text):
        return Fault(ENGINE, words or _line_of(text, _STORAGE), phase)
    return None


def _line_of(text: str, pattern: re.Pattern[str]) -> str:
    """The engine's words: the line that matched, without BuildKit's ``#12 ERROR:`` or buildx's prefixes."""
    line = next((ln for ln in text.splitlines() if pattern.search(ln)), "")
    return re.sub(r"^(?:#\d+ )?(?:ERROR:\s*)?(?:failed to build:\s*)?(?:failed to solve:\s*)?", "", line.strip())


def _short(words: str) -> str:
    """The engine's words with digests cut to 12 hex digits, as ``docker images`` shows ids."""
    return re.sub(r"(sha256:[0-9a-f]{12})[0-9a-f]{52}", r"\1", words).rstrip(".")


def retry_note(fault: Fault) -> str:
    """The line the live output shows before the second build."""
    return (f"[course] the engine failed to unpack the image it had just built ({_short(fault.words)}): a known "
            f"engine bug ({UPSTREAM_ISSUE}), not a problem in the Dockerfile; building once more")


def fault_error(fault: Fault, doing: str, *, retried: bool, log_tail: str = "",
                command: str | None = None) -> EngineFault:
    """The one sentence for an engine fault met while ``doing`` (``"building flask-demo:first"``)."""
    said = f"its words: \"{_short(fault.words)}\""
    if fault.kind == UNPACK_RACE:
        again = "again when the course built it once more, " if retried else ""
        message = (f"The engine failed to unpack the image it had just built while {doing} ({said}), {again}a known "
                   f"bug of Docker's BuildKit ({UPSTREAM_ISSUE}), not a problem in your Dockerfile: run the cell "
                   "again, and if it keeps failing restart Docker, or update it (Docker Engine 29.4 and later "
                   "have the fix).")
    elif fault.kind == DISK_FULL:
        message = disk_full(doing)
    elif fault.kind == DROPPED:
        message = (f"The engine dropped the build midway while {doing} ({said}), which no change to your "
                   "Dockerfile causes: run the cell again, and restart Docker if it happens again.")
    else:
        where = f"in {fault.phase}" if fault.phase else "in its own storage"
        message = (f"The engine failed {where} while {doing} ({said}), which no change to your Dockerfile "
                   "fixes: run the cell again, and restart Docker if it fails the same way.")
    return EngineFault(message, kind=fault.kind, engine_error=fault.words, retried=retried, log_tail=log_tail,
                       command=command)
