"""Engine-wide claims: one lesson at a time on a repository such as ``flask-demo``.

Two notebooks that build, tag and prune ``flask-demo`` at the same moment
corrupt each other's facts.  So a lesson claims its repository first, and the
claim lives on the engine itself, where every kernel (on this machine or in a
classroom's other containers) can see it: a container named
``docker-layers-course-claim-<repository>``.

The claim container runs ``cat`` with its stdin attached to the claiming
process.  While that process lives and keeps the socket open, ``cat`` runs and
the claim is held.  When the process dies (even by SIGKILL) the operating
system closes the socket, ``cat`` sees end-of-file and exits: the claim is then
free for the next notebook to take over, with no watcher needed.  A claim the
holder has not used for :data:`LEASE` seconds is released the same way (the
holder closes the socket), so a notebook left open over lunch does not block
the class; if another notebook took the repository meanwhile, the holder's
next course call says so (:class:`~course_helpers.errors.LessonInterrupted`).
"""
from __future__ import annotations

import atexit
import os
import re
import socket
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from docker.errors import APIError, NotFound

from ..config import BASE_IMAGE, LABEL_CLAIM, LABEL_PREFIX, owner_alive, owner_labels
from ..errors import LessonBusy, LessonInterrupted, SetupError
from . import api
from .client import client, where

#: Seconds without a course call after which a claim is released for others.
LEASE = float(os.environ.get("COURSE_LESSON_LEASE", "30"))
LABEL_WHO = f"{LABEL_PREFIX}.claim.who"
LABEL_SINCE = f"{LABEL_PREFIX}.claim.since"
PREFIX = "docker-layers-course-claim-"
#: Seconds a live owner's claim may stay created but not yet started: another notebook waits
#: that long instead of taking it over (removing it between its owner's create and start).
START_GRACE = 10.0
#: Printed while waiting; notebooks/sanitize.cfg drops these lines, as they appear only when others run.
WAIT_MARK = "[waiting]"


class _Lost(Exception):
    """Another notebook removed our claim container before it started: try again."""


@dataclass
class _Held:
    repository: str
    container_id: str
    sock: Any
    since: float
    engine: str = ""


# Keyed by engine and repository: a notebook may switch engines (070's Buildah cell runs on
# Podman), and a claim lives on the engine it was taken on.
_held: dict[tuple[str, str], _Held] = {}


def _key(repository: str) -> tuple[str, str]:
    return (where(), repository)
_lock = threading.RLock()
_last_used = time.monotonic()
_depth = 0
_watchdog: threading.Thread | None = None


def claim_name(repository: str) -> str:
    """The claim container's name for a repository (Docker names allow ``[a-zA-Z0-9_.-]``)."""
    return PREFIX + re.sub(r"[^a-zA-Z0-9_.-]", "_", repository)


def who_am_i() -> str:
    """How other notebooks see this process: its notebook (JupyterLab sets JPY_SESSION_NAME) or command."""
    name = os.environ.get("JPY_SESSION_NAME")
    if name:
        return os.path.basename(name)
    argv = sys.argv[:1] + [a for a in sys.argv[1:2] if not a.startswith("-")]
    return " ".join(os.path.basename(a) for a in argv) or "python"


def _describe(attrs: dict) -> str:
    labels = attrs.get("Config", {}).get("Labels") or {}
    since = time.strftime("%H:%M:%S", time.localtime(_since(labels))) if _since(labels) else labels.get(LABEL_SINCE, "")
    return f"{labels.get(LABEL_WHO, 'another notebook')} (pid {labels.get(f'{LABEL_PREFIX}.owner.pid', '?')}), since {since}"


def _create(repository: str) -> _Held:
    """Create and start the claim container, attached.

    Raises:
        APIError: 409 when the name is taken (only the create says so).
        _Lost: another notebook removed it before it started.
        SetupError: the engine made the container but could not start it.
    """
    cli = client()
    now = time.time()
    labels = {**owner_labels("claim"), LABEL_CLAIM: repository, LABEL_WHO: who_am_i(), LABEL_SINCE: f"{now:.0f}"}
    cid = api.create_container_raw(cli, BASE_IMAGE, command=["cat"], name=claim_name(repository), labels=labels,
                                   stdin_open=True, auto_remove=False)
    try:
        sock = api.attach_stdin(cli, cid)
        api.start_container(cli, cid)
    except APIError as exc:
        try:
            api.force_remove_container(cli, cid)
        except APIError as gone:  # removed (or being removed) by a notebook that took it over
            if gone.status_code in (404, 409):
                raise _Lost() from None
            raise
        if exc.status_code == 404:
            raise _Lost() from None
        # Still there, and it would not start: the engine's fault.  (Podman's attach starts the container
        # and answers a failed start with 409, the code of a taken name: acquire() waited for ever.)
        raise SetupError(f"The engine at {where()} cannot start a container ({exc.explanation or exc}): "
                         "no lesson can run until it can; ./course preflight checks it.") from None
    except BaseException:
        api.force_remove_container(cli, cid)
        raise
    return _Held(repository, cid, sock, now, where())


def _close(held: _Held) -> None:
    """End the claim's stdin: shut the socket down (closing the wrapper alone leaves it open)."""
    sock, held.sock = held.sock, None
    if sock is None:
        return  # closed already (the lease ran out)
    raw = getattr(sock, "_sock", None) or sock
    for close in (lambda: raw.shutdown(socket.SHUT_RDWR), raw.close, sock.close):
        try:
            close()
        except Exception:
            pass


def acquire(repository: str, *, wait: bool = True, progress: Callable[[str], None] | None = print,
            poll: float = 0.5) -> None:
    """Hold the engine-wide claim on ``repository``, waiting for another notebook's to end.

    Args:
        repository: e.g. ``"flask-demo"``.
        wait: False to raise :class:`LessonBusy` at once instead of waiting.
        progress: where the one waiting line goes (default print).

    Raises:
        LessonBusy: ``wait`` is False and another live notebook holds it.
    """
    with _lock:
        mine = _held.get(_key(repository))
        if mine is not None and _running(mine.container_id):
            return
        if mine is not None:
            _close(mine)
            del _held[_key(repository)]
    told = False
    cli = client()
    while True:
        try:
            held = _create(repository)
            with _lock:
                _held[(held.engine, repository)] = held
            _start_watchdog()
            return
        except _Lost:
            continue
        except APIError as exc:
            if exc.status_code != 409:
                raise
        try:
            attrs = api.inspect_container_raw(cli, claim_name(repository))
        except NotFound:
            continue  # released between our create and inspect: try again
        labels = attrs.get("Config", {}).get("Labels") or {}
        state = attrs.get("State", {})
        alive = owner_alive(labels) is not False
        # Created and not started yet by a live owner: it is starting, not abandoned.
        starting = alive and state.get("Status") == "created" and time.time() - _since(labels) < START_GRACE
        if (state.get("Running") and alive) or starting:
            if not wait:
                raise LessonBusy(f"Another notebook, {_describe(attrs)}, is using {repository}: let it "
                                 "finish, or restart its kernel, then run this cell again.")
            if not told and progress:
                progress(f"{WAIT_MARK} {_describe(attrs)} is running a lesson on {repository}; "
                         "this cell goes on as soon as it finishes ...")
                told = True
            time.sleep(poll)
            continue
        # Exited (its owner died or went idle), never started, or owned by a dead process: take it over.
        # Not forced: if its owner started it since the inspect above, the engine refuses, and the
        # next round sees it running.  (Forced, it removed a claim just taken, and its owner's next
        # call said another notebook had used the repository.)
        # A dead owner's claim may still run (its `cat` not yet ended): that one is removed by force.
        remove = api.remove_stopped_container if alive else api.force_remove_container
        try:
            remove(cli, attrs["Id"])
        except (NotFound, APIError):
            pass


def _since(labels: dict) -> float:
    try:
        return float(labels.get(LABEL_SINCE, ""))
    except ValueError:
        return 0.0


def _running(container_id: str) -> bool:
    try:
        return bool(api.inspect_container_raw(client(), container_id)["State"]["Running"])
    except NotFound:
        return False


def renew() -> None:
    """Check this process's claims at the start of a course call; take back the ones that went idle.

    Raises:
        LessonInterrupted: another notebook took one over while this one was idle.
    """
    with _lock:
        engine = where()
        items = [h for h in _held.values() if h.engine == engine]  # other engines' claims are checked there
    if not items:
        return
    cli = client()
    for held in items:
        try:
            attrs = api.inspect_container_raw(cli, claim_name(held.repository))
        except NotFound:
            attrs = None
        if attrs is not None and attrs["Id"] == held.container_id and attrs["State"].get("Running"):
            continue
        with _lock:
            _held.pop((held.engine, held.repository), None)
        _close(held)
        if attrs is not None and attrs["Id"] != held.container_id:
            raise LessonInterrupted(
                f"While this notebook was idle, {_describe(attrs)} used {held.repository}, so the images and "
                "results above may have changed: run this notebook again from the top.")
        # Ours went idle and nobody took it: take it back quietly.
        if attrs is not None:
            try:
                api.force_remove_container(cli, attrs["Id"])
            except (NotFound, APIError):
                pass
        acquire(held.repository, wait=False)


def release(repository: str | None = None) -> None:
    """Give up this process's claim on ``repository`` (all of them by default)."""
    with _lock:
        items = [h for h in _held.values() if repository in (None, h.repository)]
        for h in items:
            _held.pop((h.engine, h.repository), None)
        engine = where()
    for held in items:
        _close(held)
        if held.engine != engine:
            continue  # on another engine: its stdin closed, it shows as exited there, which frees it
        try:
            api.force_remove_container(client(), held.container_id)
        except Exception:
            pass  # at exit the engine may be gone; the claim then shows as exited, which frees it too


def held() -> list[str]:
    """The repositories this process holds."""
    with _lock:
        return sorted({h.repository for h in _held.values()})


# ------------------------------------------------------------------ lease


def enter_call() -> bool:
    """Note that a course call started; True for the outermost one (helpers call helpers)."""
    global _depth, _last_used
    with _lock:
        _depth += 1
        _last_used = time.monotonic()
        return _depth == 1


def exit_call() -> None:
    global _depth, _last_used
    with _lock:
        _depth -= 1
        _last_used = time.monotonic()


def _watch() -> None:
    while True:
        time.sleep(1.0)
        with _lock:
            idle = _depth == 0 and time.monotonic() - _last_used > LEASE
            items = list(_held.values()) if idle else []
        for held in items:
            # Closing stdin ends `cat`: the claim shows as exited, free for a waiting notebook.
            _close(held)


def _start_watchdog() -> None:
    global _watchdog
    with _lock:
        if _watchdog is None or not _watchdog.is_alive():
            _watchdog = threading.Thread(target=_watch, name="course-claim-lease", daemon=True)
            _watchdog.start()


atexit.register(release)
