"""Find, or on a bare Debian/Ubuntu machine start, the Docker engine.

Rules: an engine that answers is used as it is and never touched; only when
none answers, and only as root on Debian or Ubuntu, do we install Debian's
``docker.io`` and start ``dockerd`` in the background.  A ``dockerd`` that is
already running is waited for, never doubled.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import docker

from ..config import state_dir
from ..errors import EngineUnavailable, SetupError
from .client import reset, try_client, where
from .endpoint import resolve as resolve_endpoint

Progress = Callable[[str], None]

INSTALL_HINT = ("Install Docker Desktop (macOS, Windows) or Docker Engine (Linux) and start it, "
                "or point DOCKER_HOST at an engine you can use")


def say(progress: Progress | None, text: str) -> None:
    """Pass one line of progress on, when someone listens."""
    if progress:
        progress(text)


def _dockerd_pids() -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if (proc / "comm").read_text().strip() == "dockerd":
                    pids.append(int(proc.name))
            except OSError:
                pass
    return pids


def _is_debian_like() -> bool:
    try:
        text = Path("/etc/os-release").read_text()
    except OSError:
        return False
    fields = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    ids = (fields.get("ID", "") + " " + fields.get("ID_LIKE", "")).replace('"', "").split()
    return "debian" in ids or "ubuntu" in ids


def run_streamed(cmd: list[str], progress: Progress | None, what: str) -> None:
    """Run a command, passing its output lines to progress; raise SetupError on failure."""
    say(progress, "$ " + " ".join(cmd))
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    tail: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        line = line.rstrip()
        tail = (tail + [line])[-15:]
        say(progress, "  " + line)
    if proc.wait() != 0:
        raise SetupError(f"{what} failed (exit {proc.returncode}); read the lines above, fix the cause "
                         f"(network, disk space, apt lock) and run the set-up again.\n" + "\n".join(tail))


def _wait_for_engine(progress: Progress | None, seconds: float, log: Path | None) -> docker.DockerClient:
    deadline = time.monotonic() + seconds
    last_note = 0.0
    while time.monotonic() < deadline:
        cli = try_client(timeout=5)
        if cli is not None:
            return cli
        if time.monotonic() - last_note > 3:
            say(progress, "  waiting for the engine to answer ...")
            last_note = time.monotonic()
        time.sleep(0.5)
    hint = f" Its log is {log}." if log else ""
    raise EngineUnavailable(f"dockerd started but did not answer within {seconds:.0f} s.{hint}")


def ensure_engine(progress: Progress | None = print) -> docker.DockerClient:
    """Make sure an engine answers, starting one only where that is safe.

    Args:
        progress: called with one line of text per thing done (default print).

    Returns:
        A connected client.

    Raises:
        EngineUnavailable: no engine, and this machine is not one where the
            course may install one (not root, not Debian/Ubuntu), or DOCKER_HOST or a Docker
            context names an engine that does not answer.
        SetupError: installing docker.io failed.
    """
    endpoint = resolve_endpoint()  # a context that does not exist raises here, in one sentence
    cli = try_client()
    if cli is not None:
        say(progress, f"engine answers at {where()}: Docker {cli.version().get('Version', '?')}")
        return cli
    if endpoint.named:  # the learner chose an engine: never start another one instead
        undo = ("unset DOCKER_HOST" if endpoint.source == "DOCKER_HOST"
                else "`docker context use default`")
        raise EngineUnavailable(
            f"The engine named by {endpoint.source} ({endpoint.host}) does not answer: start that engine, "
            f"or {undo} to use the local one.")
    if _dockerd_pids():
        say(progress, "a dockerd is already running; waiting for it instead of starting another")
        return _wait_for_engine(progress, 60, None)
    if sys.platform != "linux" or not _is_debian_like():
        raise EngineUnavailable(f"No Docker engine is running on this machine. {INSTALL_HINT}.")
    if os.geteuid() != 0:
        raise EngineUnavailable(
            "No Docker engine is running and the course can only install one as root: "
            f"ask for sudo rights, or {INSTALL_HINT[0].lower() + INSTALL_HINT[1:]}.")
    if not shutil.which("dockerd"):
        say(progress, "no engine found: installing Debian's docker.io (a minute or two)")
        run_streamed(["apt-get", "update", "-q"], progress, "apt-get update")
        run_streamed(["apt-get", "install", "-y", "-q", "docker.io"], progress,
                      "Installing docker.io with apt-get")
    log = state_dir() / "dockerd.log"
    say(progress, f"starting dockerd in the background (log: {log})")
    with open(log, "ab") as out:
        # A new session, so the daemon outlives this process and the terminal.
        subprocess.Popen(["dockerd"], stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                         start_new_session=True)
    cli = _wait_for_engine(progress, 60, log)
    reset()
    say(progress, f"engine ready: Docker {cli.version().get('Version', '?')}")
    return cli

