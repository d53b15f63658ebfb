"""A daemon the course starts in the background: launch it, wait until it answers, stop it.

The default dockerd (:mod:`.provision`), private engines (:mod:`.daemon`), Podman's
service (:mod:`.podman`), a learner's rootless engine and the classroom's hub
(:mod:`course_helpers.classroom`) all go through here.  What they share:

* the daemon runs in a session of its own, so it outlives the notebook kernel or
  ``./course`` command that started it, and a Ctrl-C in a terminal does not reach it;
  its stdout and stderr are appended to one log file, and its stdin is /dev/null;
* waiting polls a readiness check (a socket that answers ``/_ping``, an HTTP API)
  until it passes, and gives up when the daemon exits or the time is up;
* stopping sends SIGTERM, waits, then SIGKILL, and waits for the exit;
* a pid read back from a file is trusted only while that process runs and, where
  the file says when it started (:func:`~course_helpers.config.process_start`), is
  the same process and not a later one that got its pid.

Each caller keeps its own sentences for the learner: this module raises
:class:`NotReady` and the caller words it.

Example:
    >>> proc = ManagedProcess.launch(["python3", "-m", "http.server", "8765"], log=Path("/tmp/http.log"))  # doctest: +SKIP
    >>> wait_ready(lambda: answers("http://127.0.0.1:8765/"), 10, process=proc)  # doctest: +SKIP
    >>> proc.stop(grace=5)  # doctest: +SKIP
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, TypeVar

from ..config import process_start
from ..statefiles import write_atomic

T = TypeVar("T")

#: A waiting note goes out at most this often (seconds).
NOTE_EVERY = 3.0
#: How long to wait for a process to go after SIGKILL (one in uninterruptible sleep may take longer).
KILL_WAIT = 10.0

#: Processes this Python process launched and has not reaped, by pid.  A child that exits stays a zombie
#: (its /proc entry remains) until waited for, so a stop by pid asks its Popen instead, and reaps it.
_launched: dict[int, subprocess.Popen] = {}


class NotReady(Exception):
    """:func:`wait_ready` gave up: the process exited, or the check did not pass in time.

    Attributes:
        exited: the process exited before it answered.
        code: its exit code, when it was this process's child (else None).
        timeout: the seconds that were allowed.
    """

    def __init__(self, exited: bool, code: int | None, timeout: float) -> None:
        self.exited, self.code, self.timeout = exited, code, timeout
        if exited:
            text = "exited at start" + (f" (code {code})" if code is not None else "")
        else:
            text = f"did not answer within {timeout:.0f} s"
        super().__init__(text)


def _state(pid: int) -> str:
    """The process's state letter from /proc (``Z`` for a zombie), ``""`` where /proc does not say."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0].decode()
    except (OSError, IndexError):
        return ""


def _exists(pid: int) -> bool:
    """Whether ``pid`` names a process that has not exited (a zombie has)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's: it exists
    return _state(pid) != "Z"


@dataclass
class ManagedProcess:
    """A background daemon, started here (:meth:`launch`) or found by its pid file (:meth:`from_pidfile`).

    Attributes:
        pid: its process id.
        start: when it started (:func:`~course_helpers.config.process_start`), ``""`` where unknown.
        log: the file its output goes to, when known.
    """

    pid: int
    start: str = ""
    log: Path | None = None
    _popen: subprocess.Popen | None = field(default=None, repr=False)

    @classmethod
    def launch(cls, argv: list[str], *, log: Path, env: Mapping[str, str] | None = None,
               cwd: str | Path | None = None, user: int | None = None, group: int | None = None) -> "ManagedProcess":
        """Start ``argv`` in a session of its own, its output appended to ``log``.

        Args:
            argv: the command and its arguments.
            log: the file stdout and stderr are appended to (created if missing).
            env: its whole environment (default: this process's).
            cwd: its working directory (default: this process's).
            user: run it as this uid (needs root); its supplementary groups are then none.
            group: run it as this gid, with ``user``.

        Returns:
            The running process (it may still exit at once: :func:`wait_ready` notices).

        Raises:
            OSError: the program could not be started (not found, not executable).
        """
        switch = {"user": user, "group": group, "extra_groups": []} if user is not None else {}
        with open(log, "ab") as out:
            popen = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env=env, cwd=cwd, start_new_session=True, **switch)
        _launched[popen.pid] = popen
        return cls(popen.pid, process_start(popen.pid), log, popen)

    @classmethod
    def from_pid(cls, pid: int, start: str = "") -> "ManagedProcess | None":
        """The process ``pid`` if it runs, and (when ``start`` is given and /proc knows) started at ``start``."""
        popen = _launched.get(pid)
        if popen is not None and popen.poll() is not None:
            del _launched[pid]  # reaped: the pid may now be another process's
            popen = None
        if popen is None and not _exists(pid):
            return None
        now = process_start(pid)
        if start and now and now != start:
            return None  # the pid went to a later process
        return cls(pid, now, None, popen)

    @classmethod
    def from_pidfile(cls, path: Path, command: str | None = None) -> "ManagedProcess | None":
        """The running process a pid file names, or None.

        Args:
            path: a file with the pid, optionally followed by its start time (as :meth:`write_pidfile` writes).
            command: a word its command line must contain, for pid files other programs write
                (they hold no start time, so the command tells their daemon from a later process).
        """
        try:
            pid_text, _, start = path.read_text().strip().partition(" ")
            pid = int(pid_text)
        except (OSError, ValueError):
            return None
        found = cls.from_pid(pid, start.strip())
        if found is not None and command is not None:
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                return None
            if command.encode() not in cmdline:
                return None
        return found

    def write_pidfile(self, path: Path) -> None:
        """Note its pid and start time in ``path`` (atomically), for :meth:`from_pidfile` in any process."""
        write_atomic(path, f"{self.pid} {self.start}\n")

    def running(self) -> bool:
        """Whether it has not exited (a child of this process is reaped when it has)."""
        if self._popen is not None:
            if self._popen.poll() is None:
                return True
            _launched.pop(self.pid, None)
            return False
        return _exists(self.pid) and (not self.start or process_start(self.pid) in ("", self.start))

    @property
    def returncode(self) -> int | None:
        """Its exit code once it exited, when it is this process's child; else None."""
        return self._popen.returncode if self._popen is not None else None

    def stop(self, grace: float, *, term_group: bool = False, kill_group: bool = False) -> bool:
        """SIGTERM, up to ``grace`` seconds for it to exit, then SIGKILL; returns once it is gone.

        Args:
            grace: seconds it may take to stop by itself (a dockerd stops its containers first).
            term_group: send SIGTERM to its whole process group (its session), not only to it.
            kill_group: send SIGKILL to its whole process group, so helpers it started go too.

        Returns:
            Whether it was running.
        """
        if not self.running():
            return False
        self._signal(signal.SIGTERM, term_group)
        if not self._gone_within(grace):
            self._signal(signal.SIGKILL, kill_group)
            self._gone_within(KILL_WAIT)
        return True

    def _signal(self, sig: int, group: bool) -> None:
        try:
            if group:
                os.killpg(self.pid, sig)  # it leads its own session, so its group id is its pid
            else:
                os.kill(self.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def _gone_within(self, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while self.running():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)
        return True


def wait_ready(check: Callable[[], T], timeout: float, *, process: ManagedProcess | None = None,
               interval: float = 0.5, waiting: Callable[[], None] | None = None) -> T:
    """Call ``check`` until it returns a true value, and return that value.

    Args:
        check: asks the daemon (e.g. a client's ping); returns something false while it does not answer.
            It must not raise for a daemon that is not up yet.
        timeout: seconds to keep asking.
        process: the daemon, to give up at once when it exits; None to wait for one started elsewhere
            (or one whose exit does not settle it: another dockerd may answer instead).
        interval: seconds between two checks.
        waiting: called while it does not answer, at most every :data:`NOTE_EVERY` seconds (a progress line).

    Raises:
        NotReady: the process exited, or ``check`` did not pass within ``timeout``.
    """
    deadline = time.monotonic() + timeout
    noted = None
    while True:
        if process is not None and not process.running():
            raise NotReady(True, process.returncode, timeout)
        result = check()
        if result:
            return result
        now = time.monotonic()
        if now >= deadline:
            raise NotReady(False, None, timeout)
        if waiting is not None and (noted is None or now - noted >= NOTE_EVERY):
            waiting()
            noted = now
        time.sleep(interval)


def log_tail(log: Path | None, lines: int) -> list[str]:
    """The last ``lines`` lines of a daemon's log (blank ones at its end left out); [] when there is none."""
    if log is None:
        return []
    try:
        return log.read_text(errors="replace").strip().splitlines()[-lines:]
    except OSError:
        return []
