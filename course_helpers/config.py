"""Names and places the whole course agrees on, kept in one module."""
from __future__ import annotations

import os
import uuid
from pathlib import Path

#: The base image every Dockerfile of the course starts FROM.  Learners with
#: Docker Hub pull it; machines without a registry build it locally.
BASE_IMAGE = "python:3.11-slim-bookworm"

#: Label namespace: everything the helpers make carries LABEL_MANAGED, and
#: images and containers also carry the session that made them.
LABEL_PREFIX = "io.docker-layers-course"
LABEL_MANAGED = f"{LABEL_PREFIX}.managed"
LABEL_SESSION = f"{LABEL_PREFIX}.session"
LABEL_ROLE = f"{LABEL_PREFIX}.role"
#: Set on containers the course creates itself, and never on an image: a container that
#: ``docker run`` makes from a course image inherits the image's labels, but not this one.
LABEL_CONTAINER = f"{LABEL_PREFIX}.container"
#: Who created a container: the process that must be alive for it to stay (see engine.reaper).
LABEL_OWNER_HOST = f"{LABEL_PREFIX}.owner.host"
LABEL_OWNER_PID = f"{LABEL_PREFIX}.owner.pid"
LABEL_OWNER_START = f"{LABEL_PREFIX}.owner.start"
#: Set on the containers that hold a lesson's claim on a repository (engine.claims).
LABEL_CLAIM = f"{LABEL_PREFIX}.claim"

#: One id per Python process (a notebook kernel, a pytest run).
SESSION_ID = os.environ.get("COURSE_SESSION_ID") or uuid.uuid4().hex[:12]

#: The notebooks that need no engine (a Binder session runs them fully); notebook 000 names them.
ENGINE_FREE_NOTEBOOKS = ("005-words", "010-the-sample-app", "015-predict-without-an-engine")

#: The repository root (course_helpers/..), used to find sample_app/.
REPO_ROOT = Path(__file__).resolve().parent.parent


def state_dir() -> Path:
    """Where the course keeps machine-level state (rootfs, dockerd log, scratch).

    It lives outside the checkout so that a fresh clone on the same machine
    (a second classroom copy, CI) reuses the exported rootfs instead of
    running debootstrap again.
    """
    root = os.environ.get("COURSE_STATE_DIR")
    if root:
        path = Path(root)
    else:
        cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        path = Path(cache) / "docker-layers-course"
    path.mkdir(parents=True, exist_ok=True)
    return path


def session_labels() -> dict[str, str]:
    """Labels for every image the helpers build (inherited by whatever is built FROM it)."""
    return {LABEL_MANAGED: "true", LABEL_SESSION: SESSION_ID}


def process_start(pid: int) -> str:
    """When a process started (clock ticks since boot, from /proc), to tell it from a later one with its pid.

    Returns ``""`` where /proc is not available (macOS, Windows): the pid alone must do there.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return fields[19].decode()  # field 22 of stat(5), counted after the command name
    except (OSError, IndexError):
        return ""


def owner_labels(kind: str) -> dict[str, str]:
    """Labels for a container the course creates: the session labels, the creation mark, and its owner."""
    import socket

    pid = os.getpid()
    return {**session_labels(), LABEL_CONTAINER: kind, LABEL_OWNER_HOST: socket.gethostname(),
            LABEL_OWNER_PID: str(pid), LABEL_OWNER_START: process_start(pid)}


def owner_alive(labels: dict[str, str]) -> bool | None:
    """Whether the process named by owner labels still runs: None when it is on another host (unknowable here)."""
    import socket

    if labels.get(LABEL_OWNER_HOST) != socket.gethostname():
        return None
    try:
        pid = int(labels.get(LABEL_OWNER_PID, ""))
    except ValueError:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, another user's
    start = labels.get(LABEL_OWNER_START, "")
    return not start or process_start(pid) in ("", start)
