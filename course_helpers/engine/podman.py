"""Podman as the course's engine: recognising it, and running its Docker-compatible service.

Podman's ``podman system service`` answers the Docker API on a socket of its own, so every
helper works with it once ``DOCKER_HOST`` names that socket; its builds go through Buildah
(:mod:`course_helpers.builder.build` picks ``builder="buildah"`` when the engine is Podman).

Three things this machine taught (docs/readme-podman.md):

* containers fail to start ("error setting rlimit type 7: operation not permitted") while
  Podman's default ``nofile``/``nproc`` limits exceed the VM's hard limits: the service the
  course starts reads a ``containers.conf`` of its own (``CONTAINERS_CONF``) whose
  ``default_ulimits`` stay within them;
* no registry answers: the base image is copied from the Docker engine (``docker save`` into
  ``podman load``), and Podman names it ``localhost/python:3.11-slim-bookworm``, which
  ``FROM python:3.11-slim-bookworm`` finds;
* the course's service has its own storage root and run root, so it never touches a Podman
  store the machine already has;
* on a machine whose cgroups are mixed ("hybrid": v1 hierarchies beside a v2 one that holds a
  controller), Debian 12's crun refuses every container ("cgroups in hybrid mode not supported,
  drop all controllers from cgroupv2"), where runc runs them: the service then runs containers
  with runc (:func:`oci_runtime`).

Example:
    >>> with PodmanService(tmp_path) as service:             # doctest: +SKIP
    ...     service.load_image("python:3.11-slim-bookworm")
    ...     os.environ["DOCKER_HOST"] = service.address
"""
from __future__ import annotations

import os
import resource
import shutil
import subprocess
from pathlib import Path
from typing import Callable

from ..config import state_dir
from ..errors import SetupError
from .process import ManagedProcess, NotReady, log_tail, wait_ready

Progress = Callable[[str], None]
#: How long the service may take to answer after it starts.
START_SECONDS = 30.0


def is_podman(version: dict) -> bool:
    """Whether an engine's ``version()`` answer is Podman's (its Components or Platform name say so)."""
    names = [str((c or {}).get("Name", "")) for c in version.get("Components") or []]
    names.append(str((version.get("Platform") or {}).get("Name", "")))
    return any("podman" in name.lower() for name in names)


def podman_path() -> str | None:
    """The ``podman`` executable, or None."""
    return shutil.which("podman")


def _debian_command(command: str, missing: str, progress: Progress | None) -> str:
    """``command`` on PATH, installing Debian's package of that name when missing (root on Debian/Ubuntu only).

    Raises:
        SetupError: ``missing`` (a sentence) when it cannot be installed here, or apt put nothing on PATH.
    """
    found = shutil.which(command)
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise SetupError(missing)
    from .streaming import run_streamed

    run_streamed(["apt-get", "update", "-q"], progress, "apt-get update")
    run_streamed(["apt-get", "install", "-y", "-q", command], progress, f"Installing {command} with apt-get")
    found = shutil.which(command)
    if not found:
        raise SetupError(f"apt-get installed {command} but no {command} command is on PATH: check the apt output above.")
    return found


def ensure_podman(progress: Progress | None = print) -> str:
    """``podman`` on this machine, installing Debian's package when missing (root on Debian/Ubuntu only).

    Raises:
        SetupError: podman is missing and cannot be installed here.
    """
    return _debian_command("podman", "Podman is not installed: install it (on Debian or Ubuntu: apt-get install "
                                     "podman) and run this again.", progress)


#: Podman lowers its own ``nproc`` limit to this when it cannot raise it (seen in the service's
#: /proc/PID/limits on the course's VM, whose hard limit is 96365): a container asking for more fails.
PODMAN_NPROC_CEILING = 32768


def ulimits_within_hard_limits(want: int = 1048576) -> list[str]:
    """``nofile`` and ``nproc`` limits for containers that this machine's hard limits allow.

    Podman's defaults (``nofile=1048576``, ``nproc=4194304``) are above the hard limits of
    this VM, and a container whose limits cannot be set does not start ("error setting rlimit
    type 7", nofile; "type 6", nproc).
    """
    out = []
    for name, which, ceiling in (("nofile", resource.RLIMIT_NOFILE, want),
                                 ("nproc", resource.RLIMIT_NPROC, PODMAN_NPROC_CEILING)):
        hard = resource.getrlimit(which)[1]
        value = min(want, ceiling) if hard == resource.RLIM_INFINITY else min(want, ceiling, hard)
        out.append(f"{name}={value}:{value}")
    return out


def crun_refuses_cgroups(cgroup_root: Path = Path("/sys/fs/cgroup")) -> bool:
    """Whether this machine's cgroups are the hybrid kind crun refuses: v1 hierarchies, and a v2
    one (``unified``) that holds a controller (seen here: ``hugetlb``, bound to no v1 hierarchy)."""
    try:
        return bool((cgroup_root / "unified" / "cgroup.controllers").read_text().split())
    except OSError:
        return False  # pure v2, or pure v1: crun runs there


def oci_runtime(progress: Progress | None = print) -> str | None:
    """The runtime the course's service should run containers with: None for Podman's own choice,
    else the path of a ``runc`` (Debian's package, installed when missing, as podman itself is).

    Raises:
        SetupError: crun cannot run containers here and no runc can be installed.
    """
    if not crun_refuses_cgroups():
        return None
    return _debian_command("runc", "This machine's cgroups are hybrid, which Podman's crun refuses, and runc is "
                                   "not installed: install it (on Debian or Ubuntu: apt-get install runc) and run "
                                   "this again.", progress)


def write_containers_conf(path: Path, runtime: str | None = None) -> Path:
    """A ``containers.conf`` for the course's own service: container limits within the hard limits,
    and the OCI runtime :func:`oci_runtime` chose, if any."""
    limits = ", ".join(f'"{limit}"' for limit in ulimits_within_hard_limits())
    engine = f'\n[engine]\nruntime = "runc"\n\n[engine.runtimes]\nrunc = ["{runtime}"]\n' if runtime else ""
    path.write_text("# Written by the course for its own Podman service (see course_helpers/engine/podman.py).\n"
                    f"[containers]\ndefault_ulimits = [{limits}]\n{engine}")
    return path


def write_registries_conf(path: Path) -> Path:
    """A ``registries.conf`` that lets the service reach the course's registry over plain HTTP.

    Docker treats a registry on 127.0.0.1 as insecure by itself; Podman asks for TLS unless the
    registry is listed.  Docker Hub stays the search registry, as in Debian's default.
    """
    from .registry import registry_address

    path.write_text("# Written by the course for its own Podman service (see course_helpers/engine/podman.py).\n"
                    'unqualified-search-registries = ["docker.io"]\n\n'
                    f'[[registry]]\nlocation = "{registry_address()}"\ninsecure = true\n')
    return path


def default_folder() -> Path:
    """Where ``./course setup --podman`` keeps the course's Podman service (socket, storage, log)."""
    return state_dir() / "podman"


class PodmanService:
    """``podman system service`` on a socket, storage root and run root of its own, under ``folder``.

    A context manager: ``with PodmanService(folder) as service`` starts it (if it does not answer
    already) and stops it, and removes its storage, at the end; ``start()`` alone leaves it running
    (``./course setup --podman``).

    Attributes:
        folder: the service's folder (``podman.sock``, ``root/``, ``run/``, ``containers.conf``, ``service.log``).
        address: the ``DOCKER_HOST`` value that names it (``unix://.../podman.sock``).
    """

    def __init__(self, folder: str | Path | None = None, podman: str | None = None):
        self.folder = Path(folder) if folder is not None else default_folder()
        self.podman = podman
        self.socket = self.folder / "podman.sock"
        self.address = f"unix://{self.socket}"
        self.conf = self.folder / "containers.conf"
        self.registries = self.folder / "registries.conf"
        self.log = self.folder / "service.log"
        self.pidfile = self.folder / "service.pid"
        self.process: ManagedProcess | None = None

    def command(self, *args: str) -> list[str]:
        """A ``podman`` command on this service's storage (for ``load``, ``images`` ...)."""
        return [self.podman or podman_path() or "podman", "--root", str(self.folder / "root"),
                "--runroot", str(self.folder / "run"), *args]

    def environment(self) -> dict[str, str]:
        return {**os.environ, "CONTAINERS_CONF": str(self.conf), "CONTAINERS_REGISTRIES_CONF": str(self.registries)}

    def client(self, timeout: int = 120):
        """A Docker SDK client for this service, or None if it does not answer."""
        from .client import from_env

        try:
            cli = from_env({"DOCKER_HOST": self.address}, timeout=timeout)
            cli.ping()
            return cli
        except Exception:  # DockerException, or requests' errors while nothing listens yet
            return None

    def start(self, progress: Progress | None = print) -> "PodmanService":
        """Start the service unless it answers already; wait until it does.

        Raises:
            SetupError: podman is missing and cannot be installed, or the service did not answer.
        """
        if self.client(timeout=5) is not None:
            return self
        self.podman = self.podman or ensure_podman(progress)
        self.folder.mkdir(parents=True, exist_ok=True)
        write_containers_conf(self.conf, oci_runtime(progress))
        write_registries_conf(self.registries)
        if self.socket.exists():
            self.socket.unlink()  # left by a service that died: nothing answers on it
        # --time 0: no idle timeout; a session of its own, so a notebook's interrupt does not stop it.
        self.process = ManagedProcess.launch(self.command("system", "service", "--time", "0", self.address),
                                             log=self.log, env=self.environment())
        self.process.write_pidfile(self.pidfile)
        try:
            wait_ready(lambda: self.client(timeout=5), START_SECONDS, process=self.process, interval=0.2)
        except NotReady:  # it exited, or did not answer in time: the same sentence, with the end of its log
            tail = log_tail(self.log, 3)
            raise SetupError(f"Podman's service did not answer at {self.address} within {START_SECONDS:.0f} s "
                             f"(its log, {self.log}, ends: {' / '.join(tail) or 'nothing'}).") from None
        if progress:
            progress(f"[course] Podman service answers at {self.address} (log: {self.log})")
        return self

    def has_image(self, name: str) -> bool:
        cli = self.client(timeout=30)
        return cli is not None and any(name in t or f"localhost/{name}" in t
                                       for img in cli.images.list() for t in img.tags)

    def load_image(self, name: str, progress: Progress | None = print) -> None:
        """Copy an image from the Docker engine into this service's storage (``docker save | podman load``).

        Raises:
            SetupError: the Docker engine does not have it, or the copy failed.
        """
        if self.has_image(name):
            return
        from .client import try_client

        docker_cli = try_client()
        if docker_cli is None:
            raise SetupError(f"No Docker engine answers to copy {name} from: run ./course setup first, then "
                             "./course setup --podman.")
        if progress:
            progress(f"[course] copying {name} from the Docker engine into Podman (docker save | podman load)")
        load = subprocess.Popen(self.command("load"), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, env=self.environment())
        assert load.stdin is not None
        try:
            for chunk in docker_cli.images.get(name).save(chunk_size=1 << 20, named=True):
                load.stdin.write(chunk)
        except Exception as exc:
            load.kill()
            load.wait()
            raise SetupError(f"Copying {name} into Podman failed ({exc}): check that the Docker engine has it "
                             "(./course setup).") from None
        load.stdin.close()
        out = load.stdout.read().decode(errors="replace") if load.stdout else ""
        if load.wait() != 0:
            raise SetupError(f"podman load of {name} failed: {out.strip().splitlines()[-1:] or ['no output']}")

    def stop(self, remove_storage: bool = False) -> None:
        """Stop the service this object (or an earlier ``start()``, by its pid file) started.

        Args:
            remove_storage: also delete the folder's storage (images, containers, cache).
        """
        process = self.process or ManagedProcess.from_pidfile(self.pidfile)
        if process is not None:
            process.stop(20, term_group=True, kill_group=True)  # the service and its helpers, all in its session
        self.process = None
        self.pidfile.unlink(missing_ok=True)
        if remove_storage:
            # Mounts the store left (overlay, shm) go first, deepest first; then the folder.
            # Not `podman system reset`: it also removes networks, which are the machine's, not ours.
            for mount in sorted(_mounts_under(self.folder), key=len, reverse=True):
                subprocess.run(["umount", "-l", mount], capture_output=True)
            shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> "PodmanService":
        return self.start(progress=None)

    def __exit__(self, *exc: object) -> None:
        self.stop(remove_storage=True)


def _mounts_under(folder: Path) -> list[str]:
    prefix = str(folder.resolve()) + "/"
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return []
    return [m for m in (line.split()[1] for line in lines if len(line.split()) > 1) if m.startswith(prefix)]


def course_service() -> PodmanService | None:
    """The course's own Podman service (``./course setup --podman``) if it answers, else None."""
    service = PodmanService(default_folder())
    return service if service.socket.exists() and service.client(timeout=5) is not None else None


def engine_is_podman(cli) -> bool:
    """Whether the engine a Docker SDK client talks to is Podman (asked once per engine address)."""
    from .api import base_url
    from .client import where

    # Every unix socket has the same base_url (http+docker://localhost): DOCKER_HOST tells them apart.
    # A client passed in may name another engine than DOCKER_HOST does: its own object counts too.
    return _podman_at(f"{base_url(cli)} {where()} {id(cli.api)}", cli)


_seen: dict[str, bool] = {}  # engine address and client -> Podman or not


def _podman_at(base_url: str, cli) -> bool:
    if base_url not in _seen:
        try:
            _seen[base_url] = is_podman(cli.version())
        except Exception:
            return False  # not answering: not cached, asked again next time
    return _seen[base_url]
