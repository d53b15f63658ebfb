"""Run a read-only ``docker`` command as a learner would type it, and show what it printed.

The cheat sheet (notebook 140) runs the commands the helpers wrap, so a learner sees
the engine's own output once.  They run through the docker client the course's builds
use (:func:`course_helpers.engine.cli.buildkit_client`, the one with buildx when there
is one) on the engine the helpers talk to.  Only commands that change nothing go
through here: what builds or removes goes through the helpers, which label and own
what they make.
"""
from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass

from ..engine.cli import buildkit_client
from ..engine.endpoint import resolve as resolve_endpoint
from ..errors import CourseError

#: First words of the commands this helper runs: each only reads the engine's state.  Not
#: ``buildx history ls``: on Docker 28.5 it can crash the daemon while builds finish (moby/buildkit#6598).
READ_ONLY = {
    ("history",), ("image", "inspect"), ("images",), ("image", "ls"), ("buildx", "du"),
    ("buildx", "version"), ("system", "df"), ("version",), ("info",), ("builder", "prune", "--help"),
    ("buildx", "ls"),
}


@dataclass(frozen=True)
class TerminalRun:
    """What one command printed.

    Attributes:
        command: the command as a learner types it, starting with ``docker``.
        returncode: its exit status (0 when it worked).
        output: everything it printed, standard output then standard error.
        shown: how many lines :meth:`__repr__` shows (the rest is counted).
    """

    command: tuple[str, ...]
    returncode: int
    output: str
    shown: int = 12

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def lines(self) -> list[str]:
        return self.output.rstrip("\n").splitlines()

    def __repr__(self) -> str:
        lines = self.lines
        head = [f"$ {' '.join(self.command)}"] + lines[:self.shown]
        if len(lines) > self.shown:
            more = len(lines) - self.shown
            head.append(f"... {more} more line{'' if more == 1 else 's'}")
        if not self.ok:
            head.append(f"(exit status {self.returncode}: the engine or the client refused; the line above says why)")
        return "\n".join(head)


def client_and_env() -> tuple[str, dict[str, str]]:
    """The docker client a learner's terminal would use here, and its environment (buildx found, engine named)."""
    cli = buildkit_client()
    if cli is not None:
        return cli.path, cli.environment()
    path = shutil.which("docker")
    if path is None:
        raise CourseError("There is no docker command on this machine: install Docker (or run ./course setup), "
                          "then run this cell again.")
    return path, resolve_endpoint().cli_environment()


def docker(*args: str, lines: int = 12, timeout: float = 120) -> TerminalRun:
    """Run ``docker <args>`` on the course's engine and return what it printed.

    Args:
        *args: the words after ``docker``, e.g. ``"history", "--no-trunc", "flask-demo:first"``.
        lines: how many lines of output to show (all are kept in ``output``).
        timeout: seconds before the command is given up.

    Returns:
        A :class:`TerminalRun`; a refusal (an old engine without ``buildx history``) is returned, not raised,
        so a notebook shows the engine's own words.

    Raises:
        CourseError: the command is not one of the read-only ones this helper runs, there is no docker
            client, or it did not finish within ``timeout``.
    """
    if not any(tuple(args[:len(prefix)]) == prefix for prefix in READ_ONLY):
        raise CourseError(f"docker {' '.join(args[:2])} is not a read-only command this helper runs: build, tag "
                          "and remove through the course's helpers (build(), tag(), cleanup()), which own what they make.")
    path, env = client_and_env()
    try:
        done = subprocess.run([path, *args], capture_output=True, text=True, env=env, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        raise CourseError(f"docker {' '.join(args)} did not finish within {timeout:.0f} s: the engine may be busy; "
                          "run the cell again.") from exc
    return TerminalRun(("docker", *args), done.returncode, done.stdout + done.stderr, lines)
