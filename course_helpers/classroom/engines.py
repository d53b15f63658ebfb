"""A learner's own Docker engine: rootless, or (weaker) a root dockerd of its own.

Both are the course's default Docker release (Docker 28 from Debian's
packages, with the containerd image store, as learners have it), unpacked into
the classroom's folder (:func:`engine_release`) so that learners can run it.

**Rootless** (the default): that release's ``dockerd-rootless.sh`` runs as the
learner, inside a user namespace made by ``rootlesskit``, with ``slirp4netns``
for its network.  Root inside it is the learner outside it: a container the
learner starts cannot do more on the machine than the learner could.  Its
socket is ``/run/user/<uid>/docker.sock`` in a folder only the learner can
enter, so no other learner can talk to it.

**Root per learner** (the fallback, weaker isolation): a second root
``dockerd`` (see :mod:`course_helpers.engine.daemon`) with its own data root
(the learner's disk), exec root, socket and bridge, the socket's group being
the learner's own.  Learners cannot reach each other's engines, but access to
a root engine is root on the machine (``docker run -v /:/host``), so this
only separates learners who are trusted not to try.
"""
from __future__ import annotations

import os
import shutil
import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from docker.errors import DockerException

from ..config import BASE_IMAGE
from ..engine.client import from_env
from ..engine.packages import DEFAULT_RELEASE, Release, daemon_config, release
from ..engine.process import ManagedProcess, NotReady, wait_ready
from ..errors import SetupError
from ..statefiles import write_atomic
from .learners import Learner, ensure_disk, mount_point
from .registry import engine_config, share_base
from .state import Paths, Settings, load_settings

ROOTLESS = "rootless"
ROOT = "root"
#: The Debian packages a rootless engine needs, by the program each provides.
ROOTLESS_PACKAGES = {"rootlesskit": "rootlesskit", "slirp4netns": "slirp4netns", "newuidmap": "uidmap",
                     "fuse-overlayfs": "fuse-overlayfs"}
TUN = Path("/dev/net/tun")


@dataclass
class EngineState:
    """A learner's engine as it is now.

    Attributes:
        learner: whose.
        kind: ``rootless`` or ``root``.
        host: their ``DOCKER_HOST``.
        running: it answers.
        version: Docker's version, when it answers.
        images: ``repository:tag`` of every tagged image on it.
        problem: why it does not answer, when the reason is known.
    """

    learner: str
    kind: str
    host: str
    running: bool = False
    version: str = ""
    images: list[str] = field(default_factory=list)
    problem: str = ""


def engine_release(where: Paths) -> Release:
    """The Docker release of the classroom's engines and of the learners' client, in the classroom's folder.

    ``./course classroom up`` places it there (:func:`course_helpers.engine.packages.place_release`).
    """
    return replace(release(DEFAULT_RELEASE), home=where.docker / DEFAULT_RELEASE)


def private_name(learner: Learner) -> str:
    """The root-per-learner engine's short name (``daemon.py`` allows 8 characters): from the uid, unique here."""
    return f"cl{learner.uid}"[:8]


def docker_host(learner: Learner, kind: str) -> str:
    """The learner's ``DOCKER_HOST``, known before the engine starts."""
    if kind == ROOTLESS:
        return f"unix://{learner.runtime_dir}/docker.sock"
    return f"unix:///run/dlc-{private_name(learner)}/docker.sock"


def missing_packages() -> list[str]:
    """Debian packages a rootless engine needs that are not installed."""
    return sorted({pkg for prog, pkg in ROOTLESS_PACKAGES.items() if not shutil.which(prog)})


def rootless_problem(where: Paths) -> str | None:
    """Why rootless Docker cannot run on this machine, in one sentence; None when nothing is known to stop it."""
    script = engine_release(where).contrib / "dockerd-rootless.sh"
    if not script.is_file():
        return f"{script} is missing: run ./course classroom up again to unpack Docker there."
    missing = missing_packages()
    if missing:
        return f"the packages {', '.join(missing)} are not installed."
    try:
        if int(Path("/proc/sys/user/max_user_namespaces").read_text()) == 0:
            return "the kernel allows no user namespaces (user.max_user_namespaces is 0)."
    except (OSError, ValueError):
        pass
    clone = Path("/proc/sys/kernel/unprivileged_userns_clone")
    if clone.exists() and clone.read_text().strip() != "1":
        return "the kernel refuses user namespaces to ordinary users (kernel.unprivileged_userns_clone is 0)."
    if not TUN.exists():
        return f"{TUN} is missing, and slirp4netns needs it for the engine's network."
    return None


def open_tun() -> bool:
    """Give every user /dev/net/tun (mode 0666, as Debian's udev rules do); False if it was so already.

    slirp4netns, running as the learner, opens it to make the engine's network
    device; machines without udev (containers, some VMs) leave it 0600.
    """
    mode = TUN.stat().st_mode & 0o777
    if mode & 0o006 == 0o006:
        return False
    TUN.chmod(0o666)
    return True


def _client(host: str, timeout: int = 30):
    return from_env(environment={"DOCKER_HOST": host}, timeout=timeout)


def answers(host: str) -> bool:
    """Whether an engine answers at ``host``."""
    try:
        cli = _client(host, timeout=5)
        try:
            return bool(cli.ping())
        finally:
            cli.close()
    except (DockerException, OSError, Exception):  # requests' errors on a missing socket
        return False


def engine_pid(where: Paths, learner: Learner) -> int | None:
    """The pid of the learner's engine if the process noted for it still runs (the same one, not a reused pid)."""
    process = ManagedProcess.from_pidfile(where.engine_pid(learner.name))
    return process.pid if process is not None else None


def _last_error(log: Path) -> str:
    """The line of an engine's log that says why it stopped."""
    try:
        lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "no log"
    for line in reversed(lines):
        if any(word in line.lower() for word in ("error", "fail", "denied", "not permitted", "cannot")):
            return line[:300]
    return lines[-1][:300] if lines else "an empty log"


def _start_rootless(where: Paths, learner: Learner, timeout: float, progress) -> str:
    host = docker_host(learner, ROOTLESS)
    runtime = learner.runtime_dir
    runtime.mkdir(parents=True, exist_ok=True)
    os.chown(runtime, learner.uid, learner.gid)
    runtime.chmod(0o700)
    data = mount_point(where, learner)
    rel = engine_release(where)
    # Its dockerd, containerd and runc come first; rootlesskit and slirp4netns are the machine's packages.
    env = {"HOME": str(learner.home), "USER": learner.name, "LOGNAME": learner.name, "XDG_RUNTIME_DIR": str(runtime),
           "PATH": f"{rel.contrib}:{rel.bin}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"}
    config = rootless_config(where)
    log = where.engine_log(learner.name)
    # As the learner, with none of root's groups: root inside its user namespace is the learner outside.
    process = ManagedProcess.launch(
        ["dockerd-rootless.sh", f"--config-file={config}", f"--data-root={data}", "--log-level=warn"],
        log=log, env=env, cwd=learner.home, user=learner.uid, group=learner.gid)
    process.write_pidfile(where.engine_pid(learner.name))
    try:
        wait_ready(lambda: answers(host), timeout, process=process, interval=0.3)
    except NotReady as exc:
        if exc.exited:
            _forget(where, learner)
            raise SetupError(f"{learner.name}'s rootless engine stopped at start: {_last_error(log)}") from None
        stop_engine(where, learner, ROOTLESS)
        raise SetupError(f"{learner.name}'s rootless engine did not answer within {timeout:.0f} s: "
                         f"{_last_error(log)}") from None
    return host


def _settings(where: Paths) -> Settings:
    try:
        return load_settings(where)
    except SetupError:  # the first up probes rootless before it saves any settings
        return Settings()


def rootless_config(where: Paths) -> Path:
    """The rootless engines' dockerd configuration (their image store), where learners can read it.

    Without it a rootless dockerd reads the learner's own ``~/.config/docker/daemon.json``.
    """
    path = where.docker / "daemon-rootless.json"
    text = json.dumps({**daemon_config(engine_release(where)), **engine_config(_settings(where))})
    if not path.is_file() or path.read_text() != text:
        write_atomic(path, text)
        path.chmod(0o644)
    return path


def _start_root(where: Paths, learner: Learner, timeout: float, progress) -> str:
    from ..engine.daemon import start_private_engine

    engine = start_private_engine(private_name(learner), data_root=mount_point(where, learner),
                                  socket_group=str(learner.gid), progress=progress, timeout=timeout,
                                  release=engine_release(where).name,
                                  extra_config=engine_config(_settings(where)))
    engine.process.write_pidfile(where.engine_pid(learner.name))
    return engine.host


def probe_rootless(where: Paths, learner: Learner, disk_gb: int, timeout: float = 60) -> None:
    """Start and stop the learner's rootless engine once, to learn whether rootless Docker runs here.

    Raises:
        SetupError: it did not start; the message has the line of its log that says why.
    """
    ensure_disk(where, learner, disk_gb, owner_is_learner=True)
    try:
        _start_rootless(where, learner, timeout, print)
    finally:
        stop_engine(where, learner, ROOTLESS)


def start_engine(where: Paths, learner: Learner, kind: str, *, disk_gb: int, progress=print,
                 timeout: float = 90) -> str:
    """Start the learner's engine (or find it running), with the course's base image in it.

    Args:
        where: the classroom's folders.
        learner: whose engine.
        kind: ``rootless`` or ``root``.
        disk_gb: the size of their engine disk, made if it does not exist yet.
        progress: one line per thing done.
        timeout: seconds to wait for it to answer.

    Returns:
        Its ``DOCKER_HOST``.

    Raises:
        SetupError: it did not start (the message has the line of its log that says why),
            or the base image could not be put in it.
    """
    from ..engine.base_image import ensure_base_image, rootfs_tar

    host = docker_host(learner, kind)
    if engine_pid(where, learner) is None or not answers(host):
        stop_engine(where, learner, kind)  # a half-started or dead one leaves nothing behind
        ensure_disk(where, learner, disk_gb, owner_is_learner=(kind == ROOTLESS))
        start = time.monotonic()
        host = (_start_rootless if kind == ROOTLESS else _start_root)(where, learner, timeout, progress)
        progress(f"{learner.name}: {kind} engine answers at {host} ({time.monotonic() - start:.1f} s)")
    cli = _client(host, timeout=300)
    settings = _settings(where)
    try:
        if settings.registry:  # the class's one base, so that cache exports hit on every engine
            share_base(cli, settings, where, progress=lambda line: progress(f"{learner.name}: {line}"))
        # The kept root filesystem imports in seconds and needs no registry; without one, pull.
        ensure_base_image(BASE_IMAGE, progress=lambda line: progress(f"{learner.name}: {line}"),
                          pull=not rootfs_tar().is_file() and os.environ.get("COURSE_OFFLINE") != "1", cli=cli)
    finally:
        cli.close()
    return host


def _forget(where: Paths, learner: Learner) -> None:
    where.engine_pid(learner.name).unlink(missing_ok=True)


def stop_engine(where: Paths, learner: Learner, kind: str, grace: float = 30) -> bool:
    """Stop the learner's engine, whoever started it; its data stays on their disk.

    Rootless: SIGTERM to rootlesskit, which passes it to dockerd; dockerd stops
    its containers and containerd.  Root: :func:`~course_helpers.engine.daemon.stop_private_engine`,
    which also removes the engine's bridge and its iptables rules.

    Returns:
        Whether an engine was running.
    """
    if kind == ROOT:
        from ..engine.daemon import stop_private_engine

        was = stop_private_engine(private_name(learner), timeout=grace)
        _forget(where, learner)
        return was
    process = ManagedProcess.from_pidfile(where.engine_pid(learner.name))
    # SIGTERM to rootlesskit alone (it stops dockerd in order); SIGKILL to its session, which is the engine.
    was = process is not None and process.stop(grace, kill_group=True)
    _forget(where, learner)
    return was


def engine_state(where: Paths, learner: Learner, kind: str) -> EngineState:
    """What the learner's engine is doing now: answers or not, version, images."""
    host = docker_host(learner, kind)
    state = EngineState(learner.name, kind, host)
    if not answers(host):
        return state
    cli = _client(host)
    try:
        state.version = cli.version().get("Version", "?")
        state.images = sorted(tag for img in cli.images.list() for tag in img.tags)
        state.running = True
    except DockerException as exc:
        state.problem = str(exc).splitlines()[0][:200]
    finally:
        cli.close()
    return state
