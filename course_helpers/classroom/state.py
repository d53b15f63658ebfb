"""Where a classroom keeps its files, and what it remembers between ``up`` and ``down``.

Layout under the classroom folder (``/var/lib/docker-layers-course`` unless
``COURSE_CLASSROOM_DIR`` names another)::

    hub/        root only: settings, secrets (passwords, tokens), the hub's database, logs, pid files
    disks/      root only: one sparse disk image per learner, holding their engine's data
    engines/    one mount point per learner: their disk, owned by them (rootless) or by root
    course/     a copy of the course (package, notebooks, sample app) that every user can read
    venv/       the Python environment the hub and the learners' servers run from
    proxy/      configurable-http-proxy, installed with npm
    docker/     the course's Docker release (dockerd, dockerd-rootless.sh, the client, buildx),
                unpacked again here because the course's own copy is under /root

The folder lives outside any home: learners' servers run its ``venv`` and
``course``, and a rootless engine writes under ``engines/<learner>``, so every
learner must be able to reach those, wherever the instructor's checkout is
(``/root`` is closed to them).
"""
from __future__ import annotations

import json
import os
import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import SetupError
from ..statefiles import write_atomic

DEFAULT_DIR = Path("/var/lib/docker-layers-course")


@dataclass(frozen=True)
class Paths:
    """The classroom's folders and files."""

    root: Path

    @property
    def hub(self) -> Path:
        return self.root / "hub"

    @property
    def disks(self) -> Path:
        return self.root / "disks"

    @property
    def engines(self) -> Path:
        return self.root / "engines"

    @property
    def course(self) -> Path:
        return self.root / "course"

    @property
    def venv(self) -> Path:
        return self.root / "venv"

    @property
    def proxy(self) -> Path:
        return self.root / "proxy"

    @property
    def docker(self) -> Path:
        return self.root / "docker"

    @property
    def settings(self) -> Path:
        return self.hub / "settings.json"

    @property
    def secrets(self) -> Path:
        return self.hub / "secrets.json"

    @property
    def hub_pid(self) -> Path:
        return self.hub / "jupyterhub.pid"

    @property
    def hub_log(self) -> Path:
        return self.hub / "jupyterhub.log"

    def engine_pid(self, learner: str) -> Path:
        """Where the hub notes the pid of a learner's engine (root only, so a learner cannot point it elsewhere)."""
        return self.hub / "engines" / f"{learner}.pid"

    def engine_log(self, learner: str) -> Path:
        return self.hub / "engines" / f"{learner}.log"

    def make(self) -> None:
        """Create the folders with the modes the layout above needs."""
        for folder, mode in ((self.root, 0o755), (self.hub, 0o700), (self.hub / "engines", 0o700),
                             (self.disks, 0o700), (self.engines, 0o755)):
            folder.mkdir(parents=True, exist_ok=True)
            folder.chmod(mode)


def paths() -> Paths:
    """The classroom folder this process works on."""
    return Paths(Path(os.environ.get("COURSE_CLASSROOM_DIR") or DEFAULT_DIR))


@dataclass
class Settings:
    """What ``up`` decided; the hub's configuration and ``status``/``down`` read it back.

    Attributes:
        learners: the learners' login names, in order.
        engine: ``"rootless"`` or ``"root"`` (the weaker fallback).
        port: where the hub answers, on 127.0.0.1.
        hub_port: the hub's own API, behind the proxy.
        proxy_api_port: the proxy's REST API.
        idle_timeout: seconds without activity before a server and its engine are culled.
        cull_every: how often the culler looks, in seconds.
        disk_gb: each learner's engine disk, in GB (sparse: only what is written takes room).
        repo: the checkout the classroom's copy of the course was taken from.
        fallback_reason: why the engines are not rootless, when they are not.
        registry: ``HOST:PORT`` of the classroom's registry (``up --registry``), or "" for none.
    """

    learners: list[str] = field(default_factory=list)
    engine: str = "rootless"
    port: int = 8000
    hub_port: int = 8081
    proxy_api_port: int = 8001
    idle_timeout: int = 3600
    cull_every: int = 300
    disk_gb: int = 20
    repo: str = ""
    fallback_reason: str = ""
    registry: str = ""

    def save(self, where: Paths) -> None:
        write_atomic(where.settings, json.dumps(asdict(self), indent=2))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"


def load_settings(where: Paths) -> Settings:
    """The settings ``up`` wrote.

    Raises:
        SetupError: no classroom was ever brought up in this folder.
    """
    try:
        data = json.loads(where.settings.read_text())
    except FileNotFoundError:
        raise SetupError(f"No classroom in {where.root}: start one with ./course classroom up --learners N.") from None
    known = Settings.__dataclass_fields__
    return Settings(**{k: v for k, v in data.items() if k in known})


def load_secrets(where: Paths) -> dict:
    """Passwords and tokens, made once and kept (root only): ``passwords``, ``service_token``, ``proxy_token``, ``cookie_secret``."""
    try:
        data = json.loads(where.secrets.read_text())
    except FileNotFoundError:
        data = {}
    changed = False
    for key in ("service_token", "proxy_token", "cookie_secret"):
        if key not in data:
            data[key] = secrets.token_hex(32)
            changed = True
    data.setdefault("passwords", {})
    if changed:
        write_atomic(where.secrets, json.dumps(data, indent=2))
    return data


def save_secrets(where: Paths, data: dict) -> None:
    write_atomic(where.secrets, json.dumps(data, indent=2))  # mkstemp makes it 0600
