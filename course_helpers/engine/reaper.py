"""Remove the containers of kernels that died, as testcontainers' Ryuk does, with no image to pull.

Every container the course creates names its owner in labels (host, pid and
the pid's start time, :func:`~course_helpers.config.owner_labels`).  Two
things remove a dead owner's containers, whichever comes first:

* :func:`sweep`, which every course call in any kernel runs (a list call of a
  few milliseconds, at most once a second);
* a watcher process that :func:`watch_me` starts beside a kernel that runs a
  container: it checks every second whether the kernel still lives, and
  removes that kernel's containers when it does not.  It runs in its own
  session, so the signal that killed the kernel's group does not reach it.

Run as ``python -m course_helpers.engine.reaper PID START`` (what watch_me does).
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

from docker.errors import APIError, NotFound

from ..config import LABEL_CONTAINER, LABEL_OWNER_HOST, LABEL_OWNER_PID, owner_alive, process_start
from ..errors import EngineUnavailable
from . import api

_last_sweep = 0.0
_watcher: subprocess.Popen | None = None


def sweep(cli=None, *, every: float = 1.0) -> list[str]:
    """Remove course containers whose owning process on this host is gone; returns their names."""
    global _last_sweep
    now = time.monotonic()
    if now - _last_sweep < every:
        return []
    _last_sweep = now
    if cli is None:
        from .client import client
        try:
            cli = client()
        except EngineUnavailable:
            return []  # no engine, no containers to sweep: helpers that need none (predict, explain) go on
    removed = []
    for attrs in api.container_rows(cli, {"label": [LABEL_CONTAINER, f"{LABEL_OWNER_HOST}={socket.gethostname()}"]}):
        if owner_alive(attrs.get("Labels") or {}) is False:
            try:
                api.force_remove_container(cli, attrs["Id"])
                removed.append((attrs.get("Names") or ["?"])[0].lstrip("/"))
            except (NotFound, APIError):
                pass  # another kernel's sweep got there first
    return removed


def watch_me() -> None:
    """Start (once per process) the watcher that removes this process's containers when it dies."""
    global _watcher
    if _watcher is not None and _watcher.poll() is None:
        return
    pid = os.getpid()
    _watcher = subprocess.Popen(
        [sys.executable, "-m", "course_helpers.engine.reaper", str(pid), process_start(pid)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True, close_fds=True)


def _alive(pid: int, start: str) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not start or process_start(pid) in ("", start)


def _main(argv: list[str]) -> int:
    pid, start = int(argv[0]), (argv[1] if len(argv) > 1 else "")
    while _alive(pid, start):
        time.sleep(1.0)
    from .client import from_env

    cli = from_env(timeout=30)
    for attrs in api.container_rows(cli, {"label": [
            LABEL_CONTAINER, f"{LABEL_OWNER_HOST}={socket.gethostname()}", f"{LABEL_OWNER_PID}={pid}"]}):
        try:
            api.force_remove_container(cli, attrs["Id"])
        except (NotFound, APIError):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
