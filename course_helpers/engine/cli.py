"""Find a ``docker`` CLI on this machine that can run BuildKit builds.

Which ``docker`` comes first on PATH says nothing about BuildKit: on the
course's machines it is a 28.x client without the buildx plugin (it refuses
BuildKit builds), while Debian's 20.10 client at /usr/bin/docker runs them
with ``DOCKER_BUILDKIT=1``.  So every candidate is asked what it can do:

* a client whose ``docker buildx version`` works builds through buildx, with
  ``--progress=rawjson`` when its ``buildx build --help`` offers it;
* a client older than 23.0 has BuildKit built in (``DOCKER_BUILDKIT=1``,
  ``--progress=plain``; 20.10 has no rawjson);
* a 23+ client without buildx cannot run BuildKit builds at all.

Where the course itself started the engine (:mod:`.provision`), the client of
the same Docker release is a candidate too, with its buildx (``DOCKER_CONFIG``
naming the release's ``docker-config``), unless ``DOCKER_HOST`` names another engine.

Probing runs only ``--version``/``--help`` style commands (no daemon
round-trip) and its result is cached for the life of the process.
"""
from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Literal

from .endpoint import resolve as resolve_endpoint
from .packages import course_release

#: Debian's docker.io puts its client here; it may be hidden behind another on PATH.
DEBIAN_CLIENT = "/usr/bin/docker"
_PROBE_TIMEOUT = 15  # seconds; a client that hangs on --version is not one we can use


@dataclass(frozen=True)
class BuildkitClient:
    """A docker CLI that runs BuildKit builds, and how to drive it.

    Attributes:
        path: absolute path of the ``docker`` executable.
        version: its client version, e.g. ``"20.10.24+dfsg1"``.
        via: ``"buildx"`` (the buildx plugin) or ``"builtin"`` (``DOCKER_BUILDKIT=1``, clients < 23).
        progress: the machine-readable progress mode to ask for: ``"rawjson"`` or ``"plain"``.
        extra_env: variables this client needs besides the engine's (``DOCKER_CONFIG`` for the
            course's own client, whose buildx lives there).
        options: the options its ``buildx build --help`` lists (``--check``, ``--metadata-file``, ...);
            empty for a built-in client, which has none of buildx's.
    """

    path: str
    version: str
    via: Literal["buildx", "builtin"]
    progress: Literal["rawjson", "plain"]
    extra_env: dict[str, str] = field(default_factory=dict, compare=False)
    options: frozenset[str] = field(default_factory=frozenset, compare=False)

    def offers(self, option: str) -> bool:
        """True when its build command takes ``option`` (e.g. ``"--check"``)."""
        return option in self.options

    def build_command(self) -> list[str]:
        """The argv prefix of a build, up to (not including) its options."""
        if self.via == "buildx":
            # --load: with a docker-container builder the result would otherwise stay in its cache.
            return [self.path, "buildx", "build", "--load"]
        return [self.path, "build"]

    def environment(self) -> dict[str, str]:
        """The environment for a build: the caller's, naming the course's engine, BuildKit on for built-in clients.

        The engine variables are the resolved ones (:func:`endpoint.resolve`), so a build goes to the
        engine the SDK client talks to, also when a Docker context chose it.
        """
        env = resolve_endpoint().cli_environment()
        env.update(self.extra_env)
        if self.via == "builtin":
            env["DOCKER_BUILDKIT"] = "1"  # also overrides a learner's DOCKER_BUILDKIT=0
        return env


@dataclass(frozen=True)
class ClientProbe:
    """What probing one candidate found.

    Attributes:
        path: the candidate executable.
        version: its client version, or None when ``--version`` failed.
        verdict: a few words on why it can or cannot run BuildKit builds.
        client: the usable client, or None.
    """

    path: str
    version: str | None
    verdict: str
    client: BuildkitClient | None


def _course_client_dirs() -> list[str]:
    """The bin folder of the Docker release the course started, unless DOCKER_HOST names another engine.

    A learner (or a test) pointing DOCKER_HOST elsewhere gets the clients on PATH, as
    on a machine where that engine is the one installed.
    """
    rel = course_release()
    if rel is None or os.environ.get("DOCKER_HOST"):
        return []
    return [str(rel.bin)]


def _client_env(path: str) -> dict[str, str]:
    """What a candidate needs besides the engine's variables: the course's client its own buildx."""
    rel = course_release()
    if rel is not None and rel.has_buildx and os.path.dirname(path) == str(rel.bin):
        return {"DOCKER_CONFIG": str(rel.docker_config)}
    return {}


def candidate_paths() -> list[str]:
    """Every distinct ``docker`` executable on PATH, in PATH order, then /usr/bin/docker, then the course's own.

    Returns:
        Absolute paths; two names for one file (``/bin`` -> ``/usr/bin``) appear once.
    """
    found: list[str] = []
    seen: set[str] = set()
    dirs = (os.environ.get("PATH", "").split(os.pathsep) + [os.path.dirname(DEBIAN_CLIENT)]
            + _course_client_dirs())
    for directory in dirs:
        if not directory:
            continue
        path = shutil.which("docker", path=directory)
        if path is None:
            continue
        real = os.path.realpath(path)
        if real not in seen:
            seen.add(real)
            found.append(os.path.abspath(path))
    return found


def _run(argv: list[str], extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str] | None:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=_PROBE_TIMEOUT,
                              stdin=subprocess.DEVNULL, env={**os.environ, **(extra or {})})
    except (OSError, subprocess.TimeoutExpired):
        return None


def _major(version: str) -> int:
    match = re.match(r"(\d+)", version)
    return int(match.group(1)) if match else 0


def probe(path: str) -> ClientProbe:
    """Ask one docker executable whether, and how, it runs BuildKit builds.

    Args:
        path: the executable to probe.

    Returns:
        A :class:`ClientProbe`; its ``client`` is None when the executable cannot build with BuildKit.
    """
    extra = _client_env(path)
    out = _run([path, "--version"])  # "Docker version 20.10.24+dfsg1, build 297e128"; no daemon needed
    match = re.search(r"version\s+([0-9][^\s,]*)", out.stdout) if out and out.returncode == 0 else None
    if match is None:
        return ClientProbe(path, None, "`docker --version` failed", None)
    version = match.group(1)
    buildx = _run([path, "buildx", "version"], extra)
    if buildx is not None and buildx.returncode == 0:
        helptext = _run([path, "buildx", "build", "--help"], extra)
        text = helptext.stdout if helptext is not None else ""
        progress: Literal["rawjson", "plain"] = "rawjson" if "rawjson" in text else "plain"
        options = frozenset(re.findall(r"^\s+(?:-\w, )?(--[\w-]+)", text, re.MULTILINE))
        return ClientProbe(path, version, f"buildx plugin, progress {progress}",
                           BuildkitClient(path, version, "buildx", progress, extra, options))
    if _major(version) < 23:
        return ClientProbe(path, version, "BuildKit built in (DOCKER_BUILDKIT=1), progress plain",
                           BuildkitClient(path, version, "builtin", "plain"))
    return ClientProbe(path, version, "23+ without the buildx plugin", None)


def probe_all() -> tuple[ClientProbe, ...]:
    """Probe every candidate once per process and environment (cached).

    What a client can do depends on PATH, DOCKER_CONFIG (where buildx is found), DOCKER_HOST and
    HOME: a probe made under other values (a test's, a private engine's) is not reused.

    Returns:
        One :class:`ClientProbe` per path of :func:`candidate_paths`, in that order.
    """
    return _probe_all(*(os.environ.get(name, "") for name in ("PATH", "DOCKER_CONFIG", "DOCKER_HOST", "HOME")))


@functools.lru_cache(maxsize=8)
def _probe_all(*_environment: str) -> tuple[ClientProbe, ...]:
    return tuple(probe(path) for path in candidate_paths())


probe_all.cache_clear = _probe_all.cache_clear  # type: ignore[attr-defined]


def buildkit_client() -> BuildkitClient | None:
    """The best BuildKit-capable client: buildx with rawjson, then buildx, then built-in; PATH order breaks ties.

    Returns:
        The client, or None when no candidate can run BuildKit builds.
    """
    usable = [p.client for p in probe_all() if p.client is not None]
    rank = {("buildx", "rawjson"): 0, ("buildx", "plain"): 1, ("builtin", "plain"): 2}
    usable.sort(key=lambda c: rank.get((c.via, c.progress), 3))  # sort is stable: PATH order kept
    return usable[0] if usable else None


def describe_probes() -> str:
    """One line per candidate, for error messages: ``/usr/local/bin/docker (28.2.2): 23+ without ...``."""
    probes = probe_all()
    if not probes:
        return "no `docker` executable on PATH or at /usr/bin/docker"
    return "; ".join(f"{p.path} ({p.version or 'version unknown'}): {p.verdict}" for p in probes)
