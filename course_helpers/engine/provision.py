"""Find, or on a bare Debian/Ubuntu machine start, the Docker engine.

Rules: an engine that answers is used as it is and never touched; only when
none answers, and only as root on Debian or Ubuntu, does the course provide
one.  A ``dockerd`` that is already running is waited for, never doubled.

The engine it provides is the one learners have (Docker Desktop since 4.34,
Docker Engine 29 on fresh installs): Docker 28 with buildx and the containerd
image store, from Debian unstable's packages unpacked into the course's own
folder (:mod:`.packages`).  It listens on the default socket, so the ``docker``
a learner types in a terminal reaches it too.  ``COURSE_ENGINE=debian``
installs the machine's own ``docker.io`` instead (with ``docker-buildx`` where
the suite has one, as Debian 13 does), as earlier versions of the course did.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import docker

from ..config import state_dir
from ..errors import EngineUnavailable
from .client import reset, try_client, where
from .daemon import keeping_other_engines_rules
from .endpoint import resolve as resolve_endpoint
from .packages import DEFAULT_RELEASE, daemon_config, ensure_release, record_engine, release
from .process import ManagedProcess, NotReady, wait_ready
from .streaming import Progress, run_streamed, say

INSTALL_HINT = ("Install Docker Desktop (macOS, Windows) or Docker Engine (Linux) and start it, "
                "or point DOCKER_HOST at an engine you can use")


def _dockerd_pids() -> list[int]:
    """dockerd processes that serve the default socket (a private engine names a host of its own)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if (proc / "comm").read_text().strip() != "dockerd":
                    continue
                args = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
            except OSError:
                continue
            if not any(a.startswith(("--host", "-H")) and "/var/run/docker.sock" not in a for a in args):
                pids.append(int(proc.name))
    return pids


def _is_debian_like() -> bool:
    try:
        text = Path("/etc/os-release").read_text()
    except OSError:
        return False
    fields = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    ids = (fields.get("ID", "") + " " + fields.get("ID_LIKE", "")).replace('"', "").split()
    return "debian" in ids or "ubuntu" in ids


def _wait_for_engine(progress: Progress | None, seconds: float, log: Path | None) -> docker.DockerClient:
    # Not given the process: when it exits because another dockerd took the socket first, that one answers.
    try:
        return wait_ready(lambda: try_client(timeout=5), seconds,
                          waiting=lambda: say(progress, "  waiting for the engine to answer ..."))
    except NotReady:
        hint = f" Its log is {log}." if log else ""
        raise EngineUnavailable(f"dockerd started but did not answer within {seconds:.0f} s.{hint}") from None


def ensure_engine(progress: Progress | None = print, engine: str | None = None) -> docker.DockerClient:
    """Make sure an engine answers, starting one only where that is safe.

    Args:
        progress: called with one line of text per thing done (default print).
        engine: what to provide when no engine answers: a release of :mod:`.packages`
            (default ``COURSE_ENGINE``, else ``docker28``), or ``"debian"`` for the machine's own docker.io.

    Returns:
        A connected client.

    Raises:
        EngineUnavailable: no engine, and this machine is not one where the
            course may install one (not root, not Debian/Ubuntu), or DOCKER_HOST or a Docker
            context names an engine that does not answer.
        SetupError: fetching or installing the engine failed.
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
    choice = engine or os.environ.get("COURSE_ENGINE") or DEFAULT_RELEASE
    log = state_dir() / "dockerd.log"
    if choice == "debian":
        cmd, env = _debian_engine(progress), None
    else:
        rel = release(choice)
        _ensure_host_packages(["iptables"], progress)  # dockerd's NAT for containers (pip in builds)
        rel = ensure_release(rel.name, progress)
        config = rel.folder / "daemon.json"
        config.write_text(json.dumps(daemon_config(rel)))  # not /etc/docker: nothing of the machine's is read
        cmd = [str(rel.bin / "dockerd"), f"--config-file={config}"]
        env = dict(os.environ, PATH=f"{rel.bin}{os.pathsep}{os.environ.get('PATH', '')}")
    say(progress, f"starting dockerd in the background (log: {log})")
    # Its start empties the chains it shares with private engines running beside it: put theirs back.
    with keeping_other_engines_rules("docker0") as restored:
        ManagedProcess.launch(cmd, log=log, env=env)  # its own session: it outlives this process and the terminal
        cli = _wait_for_engine(progress, 60, log)
    if restored:
        say(progress, f"put back {len(restored)} iptables rules of other engines that its start removed")
    reset()
    version = cli.version().get("Version", "?")
    if choice != "debian":
        record_engine(rel, version)
        say(progress, f"engine ready: Docker {version} ({rel.store} image store), on the default socket: "
                      "the `docker` in your terminals reaches it")
        say(progress, f"for the course's own docker client, with buildx, in a terminal: {rel.export_line()}")
    else:
        say(progress, f"engine ready: Docker {version}")
    return cli


def _ensure_host_packages(packages: list[str], progress: Progress | None) -> None:
    """Install the machine's own packages a dockerd needs (iptables) when their commands are missing."""
    missing = [p for p in packages if not shutil.which(p)]
    if missing:
        say(progress, f"installing {', '.join(missing)} from this machine's own Debian packages")
        run_streamed(["apt-get", "update", "-q"], progress, "apt-get update")
        run_streamed(["apt-get", "install", "-y", "-q", *missing], progress, f"Installing {', '.join(missing)}")


def _debian_engine(progress: Progress | None) -> list[str]:
    """Install the machine's docker.io (and docker-buildx, which Debian 13's CLI needs for BuildKit)."""
    if not shutil.which("dockerd"):
        say(progress, "installing this machine's own docker.io (a minute or two)")
        run_streamed(["apt-get", "update", "-q"], progress, "apt-get update")
        packages = ["docker.io"]
        # Debian 13's docker.io (26.1) cannot run BuildKit builds without its buildx plugin; 12's has it built in.
        if subprocess.run(["apt-cache", "show", "docker-buildx"], capture_output=True).returncode == 0:
            packages.append("docker-buildx")
        run_streamed(["apt-get", "install", "-y", "-q", *packages], progress,
                     f"Installing {' and '.join(packages)} with apt-get")
    return ["dockerd"]
