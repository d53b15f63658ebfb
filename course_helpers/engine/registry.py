"""The course's own image registry: Debian's ``docker-registry`` (the CNCF distribution registry) on 127.0.0.1.

Chapters about CI runners and moving base images push to a registry and pull from it,
and export BuildKit's cache to it (``--cache-to type=registry``).  Machines without
Docker Hub have none, so the course runs one of its own:

* the program is Debian's ``docker-registry`` package (distribution 2.8), one binary:
  the machine's own when it is on PATH, else the package for the machine's Debian suite,
  fetched with the course's apt configuration (:class:`~.packages.Apt`, the signed index
  checked) and unpacked under ``state_dir()/registry-server/``; the ``.deb`` is kept, so a
  second set-up works offline;
* it serves ``127.0.0.1:PORT`` only.  The port is picked once and kept in
  ``state_dir()/registry/registry.json``, so image names (``127.0.0.1:PORT/NAME``) and what
  was pushed stay valid across restarts; the images are in ``state_dir()/registry/data/``;
* an engine on the same machine pushes to a registry on 127.0.0.1 without an
  ``insecure-registries`` entry (loopback is trusted for plain HTTP);
* ``./course clean`` and :func:`stop_registry` with ``remove_data=True`` stop it and remove
  ``state_dir()/registry/``, and nothing else;
* in a classroom the instructor runs one registry for the class (``classroom/registry.py``) and
  each learner's server gets ``COURSE_REGISTRY=ADDRESS/LOGIN``: there :func:`start_registry`
  starts nothing and hands out that registry, with every name under the learner's own
  ``LOGIN/`` (:func:`shared_registry`), and :func:`stop_registry` leaves it alone.

Example:
    >>> reg = start_registry()                                          # doctest: +SKIP
    >>> subprocess.run(["docker", "push", reg.ref("course/base:1")])    # doctest: +SKIP
    >>> reg.tags("course/base")                                         # doctest: +SKIP
    ['1']
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ..config import state_dir
from ..errors import RegistryUnavailable, SetupError
from ..formatting import home_shown
from ..statefiles import locked, write_atomic
from .daemon import free_port
from .packages import Apt, machine_suite, unpack_debs
from .process import ManagedProcess, NotReady, log_tail, wait_ready
from .streaming import Progress, say

#: Debian's package, and the program it ships.
PACKAGE = "docker-registry"
#: The only address the registry listens on.
HOST = "127.0.0.1"
#: A registry someone else runs for this learner, ``HOST:PORT/NAMESPACE`` (a classroom's).
SHARED_ENV = "COURSE_REGISTRY"
#: Seconds the registry may take to answer after it starts (it answers at once: seen here).
START_SECONDS = 30.0
#: Seconds it may take to stop after SIGTERM.
STOP_GRACE = 10.0
#: How long one question to the registry may take.
ASK_SECONDS = 3.0

# Never through the machine's HTTP proxy: the registry is on loopback.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def registry_folder() -> Path:
    """The course's registry: ``config.yml``, ``registry.json`` (its port), ``data/``, its log and pid file."""
    return state_dir() / "registry"


def server_folder() -> Path:
    """Where Debian's docker-registry package is kept (``debs/``) and unpacked (``root/``)."""
    return state_dir() / "registry-server"


def _state_lock(folder: Path) -> Path:
    # Beside the registry's folder, not in it: removing the folder must not remove the lock.
    return folder.parent / f"{folder.name}.json"


def ensure_registry_binary(progress: Progress | None = print) -> Path:
    """The ``docker-registry`` program: the machine's own, or Debian's package unpacked for the course.

    Args:
        progress: one line per thing done (apt's own lines are passed on as they come).

    Returns:
        The executable.

    Raises:
        SetupError: it is not on PATH and cannot be fetched here (no Debian, no apt-get, no network).
    """
    found = shutil.which(PACKAGE)
    if found:
        return Path(found)
    home = server_folder()
    exe = home / "root" / "usr" / "bin" / PACKAGE
    with locked(home / "versions.json"):
        if exe.is_file() and os.access(exe, os.X_OK):
            return exe
        kept = sorted((home / "debs").glob(f"{PACKAGE}_*.deb"))
        if kept:
            say(progress, f"unpacking the kept {kept[-1].name} into {home / 'root'}")
            debs = {PACKAGE: kept[-1]}
        else:
            suite = machine_suite()
            if suite is None or not shutil.which("apt-get") or not shutil.which("dpkg-deb"):
                raise SetupError("The course's registry needs Debian's docker-registry package, and this machine "
                                 "has no docker-registry command and no apt-get to fetch it: install the "
                                 "distribution registry (docker-registry, or 'registry' from Docker) and run "
                                 "this again.")
            say(progress, f"fetching Debian {suite}'s {PACKAGE} package into {home} (nothing is installed)")
            apt = Apt(suite)
            apt.update(progress)
            debs = apt.download((PACKAGE,), home / "debs", progress)
        unpack_debs(debs, home / "root")
        if not exe.is_file():
            raise SetupError(f"Debian's {PACKAGE} package has no usr/bin/{PACKAGE}: remove {home} and run this "
                             "again.")
        version = subprocess.run(["dpkg-deb", "-f", str(debs[PACKAGE]), "Version"], capture_output=True,
                                 text=True).stdout.strip()
        write_atomic(home / "versions.json", json.dumps({PACKAGE: version}, indent=1))
        say(progress, f"{PACKAGE} {version} ready: {exe}")
    return exe


def _answers(address: str, timeout: float = ASK_SECONDS) -> bool:
    """Whether a registry (API v2) answers at ``address`` (``host:port``)."""
    try:
        with _DIRECT.open(f"http://{address}/v2/", timeout=timeout) as reply:
            headers = reply.headers
    except urllib.error.HTTPError as exc:  # 401: a registry that wants a login still answers
        headers = exc.headers
    except (OSError, ValueError):
        return False
    return (headers.get("Docker-Distribution-Api-Version") or "").startswith("registry/2")


@dataclass(frozen=True)
class CourseRegistry:
    """The course's registry on ``127.0.0.1:PORT`` (or a classroom's, shared).

    Attributes:
        port: the port it listens on, kept across restarts.
        folder: its folder (``state_dir()/registry``); None for a registry this process did not
            start and cannot see the files of (a classroom's, from :data:`SHARED_ENV`).
        host: the address it listens on.
        namespace: every name goes under it (a classroom learner's login), so that learners
            sharing one registry never overwrite each other's images and cache.
    """

    port: int
    folder: Path | None
    host: str = HOST
    namespace: str = ""

    @property
    def address(self) -> str:
        """``HOST:PORT``: the registry part of an image name."""
        return f"{self.host}:{self.port}"

    @property
    def shared(self) -> bool:
        """Whether someone else runs it for this learner (a classroom's registry)."""
        return self.folder is None

    def repo(self, name: str) -> str:
        """``name`` under this learner's namespace, if any: ``LOGIN/ci-demo/cache``."""
        return f"{self.namespace}/{name}" if self.namespace else name

    @property
    def data(self) -> Path:
        """The pushed images (blobs and manifests)."""
        return self.folder / "data"

    @property
    def config(self) -> Path:
        return self.folder / "config.yml"

    @property
    def log(self) -> Path:
        return self.folder / "registry.log"

    @property
    def pidfile(self) -> Path:
        return self.folder / "registry.pid"

    def ref(self, name: str) -> str:
        """The image name ``name`` (``course/base:1``) in this registry: ``127.0.0.1:PORT/course/base:1``.

        In a classroom's registry the learner's login comes first: ``HOST:PORT/LOGIN/course/base:1``.
        """
        return f"{self.address}/{self.repo(name)}"

    def process(self) -> ManagedProcess | None:
        """The registry process the course started, while it runs."""
        return None if self.folder is None else ManagedProcess.from_pidfile(self.pidfile, command=PACKAGE)

    def running(self) -> bool:
        """Whether it answers ``/v2/`` (and, for the course's own, whether its process runs)."""
        return (self.shared or self.process() is not None) and _answers(self.address)

    def _get(self, path: str) -> dict | None:
        """The JSON the registry answers to ``GET path``; None for 404 (no such repository)."""
        try:
            with _DIRECT.open(f"http://{self.address}{path}", timeout=ASK_SECONDS) as reply:
                return json.loads(reply.read().decode())
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            where = "ask your instructor" if self.shared else f"read its log, {self.log}"
            raise RegistryUnavailable(f"The course's registry at {self.address} answered {exc.code} to {path}: "
                                      f"{where}.") from None
        except (OSError, ValueError):
            raise RegistryUnavailable(registry_problem(self.address) or
                                      f"The course's registry at {self.address} gave no answer to {path}.") from None

    def tags(self, repo: str) -> list[str]:
        """The tags of ``repo`` (``course/base``), sorted; [] when nothing was pushed to it.

        Raises:
            RegistryUnavailable: the registry does not answer.
        """
        body = self._get(f"/v2/{self.repo(repo)}/tags/list") or {}
        return sorted(body.get("tags") or [])

    def repositories(self) -> list[str]:
        """Every repository pushed to it (``/v2/_catalog``), sorted; under a namespace, only its own, without it.

        Raises:
            RegistryUnavailable: the registry does not answer.
        """
        body = self._get("/v2/_catalog?n=1000") or {}
        names = body.get("repositories") or []
        if self.namespace:
            names = [n[len(self.namespace) + 1:] for n in names if n.startswith(self.namespace + "/")]
        return sorted(names)

    def write_config(self) -> None:
        """``config.yml``: files under ``data/``, deletes allowed, HTTP on HOST:PORT only."""
        write_atomic(self.config, (
            "# Written by the course (course_helpers/engine/registry.py); ./course clean removes it.\n"
            "version: 0.1\n"
            "log:\n  level: info\n"
            "storage:\n"
            f"  filesystem:\n    rootdirectory: {json.dumps(str(self.data))}\n"
            "  delete:\n    enabled: true\n"
            "http:\n"
            f"  addr: {self.address}\n"
            "  headers:\n    X-Content-Type-Options: [nosniff]\n"))


def _load(folder: Path | None = None) -> CourseRegistry | None:
    """The registry its state file records (running or not); None before the first start."""
    folder = folder or registry_folder()
    try:
        data = json.loads((folder / "registry.json").read_text())
        return CourseRegistry(int(data["port"]), folder, str(data.get("host", HOST)))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def shared_registry() -> CourseRegistry | None:
    """The registry :data:`SHARED_ENV` names (a classroom gives each learner's server one), else None."""
    value = os.environ.get(SHARED_ENV, "").strip().strip("/")
    if not value:
        return None
    address, _, namespace = value.partition("/")
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise SetupError(f"{SHARED_ENV}={value!r} is not HOST:PORT or HOST:PORT/NAMESPACE: ask your instructor.")
    return CourseRegistry(int(port), None, host, namespace)


def _port_free(port: int, host: str = HOST) -> bool:
    """Whether nothing listens on ``port`` (connections of the last run, in TIME_WAIT, do not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the registry's own listener does
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _shared_or_none(progress: Progress | None) -> CourseRegistry | None:
    shared = shared_registry()
    if shared is None:
        return None
    if not _answers(shared.address):
        raise SetupError(f"The classroom's registry at {shared.address} does not answer: ask your instructor "
                         "to start it (sudo ./course classroom up --registry).")
    say(progress, f"[course] the classroom's registry answers at {shared.address}; your images and cache go "
                  f"under {shared.ref('')}")
    return shared


def start_registry(progress: Progress | None = print, *, folder: Path | None = None,
                   host: str = HOST) -> CourseRegistry:
    """Start the course's registry unless it runs already; wait until it answers.

    The first start picks a free port on ``host`` and keeps it: later starts use the same
    address, and find what was pushed before.  In a classroom (:data:`SHARED_ENV` set) it starts
    nothing and returns the classroom's registry, with names under the learner's login.

    Args:
        progress: one line per thing done.
        folder: its folder (default ``state_dir()/registry``); a classroom's is its own.
        host: the one address it listens on (default 127.0.0.1).

    Returns:
        The running registry.

    Raises:
        SetupError: the program cannot be had, its port is taken by another program, or it did not
            answer; in a classroom, the classroom's registry does not answer.
    """
    if folder is None:
        shared = _shared_or_none(progress)
        if shared is not None:
            return shared
    folder = folder or registry_folder()
    with locked(_state_lock(folder)):
        reg = _load(folder)
        if reg is not None and reg.host != host:
            reg = CourseRegistry(reg.port, folder, host)
        if reg is not None and reg.running():
            say(progress, f"[course] the course's registry answers at {reg.address} (data: {home_shown(reg.data)})")
            return reg
        exe = ensure_registry_binary(progress)
        if reg is None:
            reg = CourseRegistry(free_port(), folder, host)
        reg.data.mkdir(parents=True, exist_ok=True)
        stale = reg.process()
        if stale is not None:  # ours, but not answering: start it afresh
            say(progress, f"the course's registry (pid {stale.pid}) does not answer: restarting it")
            stale.stop(STOP_GRACE)
        if not _port_free(reg.port, reg.host):
            raise SetupError(f"Port {reg.port} on {reg.host}, the course's registry's address, is taken by another "
                             "program: stop that program and run this again, or start afresh on a new port "
                             "with stop_registry(remove_data=True) (the pushed images go with it).")
        write_atomic(reg.folder / "registry.json", json.dumps({"port": reg.port, "host": reg.host}) + "\n")
        reg.write_config()
        # REGISTRY_* variables would override the config file (the registry reads them): none pass.
        env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
        say(progress, f"starting the course's registry on {reg.address} (log: {home_shown(reg.log)})")
        proc = ManagedProcess.launch([str(exe), "serve", str(reg.config)], log=reg.log, env=env, cwd=reg.folder)
        proc.write_pidfile(reg.pidfile)
        try:
            wait_ready(lambda: _answers(reg.address, timeout=1), START_SECONDS, process=proc, interval=0.2,
                       waiting=lambda: say(progress, f"waiting for the registry to answer on {reg.address}"))
        except NotReady as exc:
            proc.stop(STOP_GRACE)
            tail = log_tail(reg.log, 3)
            raise SetupError(f"The course's registry {exc} on {reg.address} (its log, {reg.log}, ends: "
                             f"{' / '.join(tail) or 'nothing'}).") from None
        say(progress, f"[course] the course's registry answers at {reg.address} (data: {home_shown(reg.data)})")
        return reg


def registry_address() -> str:
    """The course registry's ``127.0.0.1:PORT``, running or not: the first call picks and keeps the port.

    For what must name the registry before it starts (a Podman service's list of registries it
    may reach over plain HTTP).
    """
    with locked(_state_lock(registry_folder())):
        reg = _load()
        if reg is None:
            reg = CourseRegistry(free_port(), registry_folder())
            reg.folder.mkdir(parents=True, exist_ok=True)
            write_atomic(reg.folder / "registry.json", json.dumps({"port": reg.port}) + "\n")
        return reg.address


def course_registry() -> CourseRegistry | None:
    """The course's registry (in a classroom, the classroom's) if it runs and answers, else None."""
    reg = shared_registry() or _load()
    return reg if reg is not None and reg.running() else None


def stop_registry(remove_data: bool = False, *, folder: Path | None = None) -> bool:
    """Stop the course's registry.  A classroom's registry, which the instructor runs, is never touched.

    Args:
        remove_data: also remove its folder, ``state_dir()/registry`` (pushed images, config, port):
            the next start picks a new port.  Nothing outside that folder is touched.
        folder: the registry's folder (default ``state_dir()/registry``).

    Returns:
        Whether it was running.
    """
    folder = folder or registry_folder()
    with locked(_state_lock(folder)):
        proc = CourseRegistry(0, folder).process()
        was = proc.stop(STOP_GRACE) if proc is not None else False
        (folder / "registry.pid").unlink(missing_ok=True)
        if remove_data:
            shutil.rmtree(folder, ignore_errors=True)
        return was


def registry_problem(address: str) -> str | None:
    """One sentence a learner can act on when no registry answers at ``address``; None when one does.

    Args:
        address: ``host:port``, an image name in that registry (``127.0.0.1:5000/course/base:1``),
            or a cache option (``type=registry,ref=127.0.0.1:5000/cache``), as BuildKit's warning
            on a failed cache import quotes it.
    """
    if "ref=" in address:
        address = address.split("ref=", 1)[1].split(",", 1)[0]
    host = address.split("://", 1)[-1].split("/", 1)[0]
    if _answers(host):
        return None
    shared = shared_registry()
    if shared is not None and shared.address == host:
        return (f"The classroom's registry at {host} does not answer: ask your instructor to start it "
                "(sudo ./course classroom up --registry).")
    reg = _load()
    if (reg is not None and reg.address == host) or (reg is None and host.startswith(f"{HOST}:")):
        return (f"The course's registry at {host} does not answer: start it with start_registry() "
                "(or ./course setup --registry).")
    return f"The registry at {host} does not answer: check that it runs and that {host} is its address."
