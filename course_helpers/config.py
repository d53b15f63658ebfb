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

#: One id per Python process (a notebook kernel, a pytest run).
SESSION_ID = os.environ.get("COURSE_SESSION_ID") or uuid.uuid4().hex[:12]

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
    """Labels for every image and container the helpers create."""
    return {LABEL_MANAGED: "true", LABEL_SESSION: SESSION_ID}
