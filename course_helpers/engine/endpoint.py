"""Which engine the course talks to, chosen as the docker CLI chooses it.

The docker CLI looks, in this order, at:

1. ``DOCKER_HOST`` (with ``DOCKER_TLS_VERIFY`` and ``DOCKER_CERT_PATH``);
2. the current Docker context: ``DOCKER_CONTEXT``, else ``currentContext`` in
   ``config.json`` (in ``DOCKER_CONFIG``, default ``~/.docker``).  A context
   named ``x`` keeps its endpoint in ``contexts/meta/<sha256("x")>/meta.json``
   and its TLS files (``ca.pem``, ``cert.pem``, ``key.pem``) in
   ``contexts/tls/<sha256("x")>/docker/``;
3. the default socket (``/var/run/docker.sock``), which is also the context named ``default``.

:func:`resolve` does the same and returns an :class:`Endpoint` whose ``env`` is
the ``DOCKER_*`` environment that names that engine.  The SDK client is made
from it and every docker CLI the course runs gets it, so BuildKit builds and API
calls always reach the same engine, even when the engine came from a context.
"""
from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from ..errors import EngineUnavailable

DEFAULT_SOCKET = "unix:///var/run/docker.sock"
#: The variables that name an engine; the course replaces all of them at once in a CLI's environment.
ENGINE_VARIABLES = ("DOCKER_HOST", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKER_TLS", "DOCKER_CONTEXT")


@dataclass(frozen=True)
class Endpoint:
    """An engine's address and how it was found.

    Attributes:
        host: the ``DOCKER_HOST`` value, e.g. ``tcp://10.0.0.5:2376``; ``unix:///var/run/docker.sock`` by default.
        source: how it was found, for messages: ``"DOCKER_HOST"``, ``"context 'remote'"`` or ``"default socket"``.
        env: the ``DOCKER_*`` variables that name it (empty for the default socket).
    """

    host: str
    source: str
    env: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def named(self) -> bool:
        """True when the environment or a context named this engine (set-up must not start one)."""
        return self.source != "default socket"

    @property
    def tls(self) -> bool:
        """True when the course talks to it over TLS."""
        return bool(self.env.get("DOCKER_TLS_VERIFY") or self.env.get("DOCKER_TLS")
                    or (self.host.startswith("tcp://") and self.env.get("DOCKER_CERT_PATH")))

    def describe(self) -> str:
        """``tcp://127.0.0.1:2376 (DOCKER_HOST, TLS)``: the address and how it was found."""
        return f"{self.host} ({self.source}{', TLS' if self.tls else ''})"

    def cli_environment(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """``base`` (default: this process's environment) with the engine variables replaced by this engine's."""
        env = {k: v for k, v in (os.environ if base is None else base).items() if k not in ENGINE_VARIABLES}
        env.update(self.env)
        return env


def context_dir(name: str, environ: dict[str, str] | None = None) -> tuple[Path, Path]:
    """Where the CLI keeps context ``name``: its meta.json and its TLS folder for the docker endpoint."""
    digest = hashlib.sha256(name.encode()).hexdigest()
    config = config_dir(environ)
    return config / "contexts" / "meta" / digest / "meta.json", config / "contexts" / "tls" / digest / "docker"


def config_dir(environ: dict[str, str] | None = None) -> Path:
    """``DOCKER_CONFIG`` or ``~/.docker`` (``HOME`` read from ``environ`` when given)."""
    env = os.environ if environ is None else environ
    if env.get("DOCKER_CONFIG"):
        return Path(env["DOCKER_CONFIG"])
    home = env.get("HOME") or os.path.expanduser("~")
    return Path(home) / ".docker"


def current_context(environ: dict[str, str] | None = None) -> str | None:
    """The context name the CLI would use: ``DOCKER_CONTEXT``, else ``currentContext`` of config.json."""
    env = os.environ if environ is None else environ
    if env.get("DOCKER_CONTEXT"):
        return env["DOCKER_CONTEXT"]
    try:
        config = json.loads((config_dir(env) / "config.json").read_text())
    except (OSError, ValueError):
        return None
    name = config.get("currentContext") if isinstance(config, dict) else None
    return name or None


def resolve(environ: dict[str, str] | None = None) -> Endpoint:
    """The engine the docker CLI would use with this environment.

    Args:
        environ: the environment to read (default: this process's).

    Returns:
        An :class:`Endpoint`.

    Raises:
        EngineUnavailable: the current context names no context the CLI knows, or one without
            a docker endpoint (the CLI refuses such a context too).
    """
    env = os.environ if environ is None else environ
    if env.get("DOCKER_HOST"):
        keep = {k: env[k] for k in ("DOCKER_HOST", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKER_TLS") if env.get(k)}
        return Endpoint(env["DOCKER_HOST"], "DOCKER_HOST", keep)
    name = current_context(env)
    if not name or name == "default":
        return Endpoint(DEFAULT_SOCKET, "default socket", {})
    meta_file, tls_dir = context_dir(name, env)
    how = "DOCKER_CONTEXT" if env.get("DOCKER_CONTEXT") else "currentContext in config.json"
    try:
        meta = json.loads(meta_file.read_text())
        docker_endpoint = meta["Endpoints"]["docker"]
        host = docker_endpoint["Host"]
    except (OSError, ValueError, KeyError, TypeError):
        raise EngineUnavailable(
            f"The Docker context '{name}' ({how}) has no docker endpoint in {meta_file}: create it with "
            f"`docker context create {name} --docker host=...`, or choose another with `docker context use`.") from None
    out = {"DOCKER_HOST": host}
    if (tls_dir / "ca.pem").exists() or (tls_dir / "cert.pem").exists():
        out["DOCKER_CERT_PATH"] = str(tls_dir)
        if docker_endpoint.get("SkipTLSVerify"):
            out["DOCKER_TLS"] = "1"
        else:
            out["DOCKER_TLS_VERIFY"] = "1"
    return Endpoint(host, f"context '{name}'", out)


_LOCAL_NAMES = {"localhost", "127.0.0.1", "::1", ""}


def engine_hostname(base_url: str) -> str | None:
    """The host of a TCP engine's API address (``https://10.0.0.5:2376`` -> ``10.0.0.5``); None for a socket."""
    parts = urlsplit(base_url.replace("tcp://", "http://", 1))
    if parts.scheme not in ("http", "https") or base_url.startswith("http+"):
        return None  # unix sockets (http+unix), named pipes (npipe), ssh: the engine's own machine, as far as we know
    return parts.hostname or ""


def is_local(base_url: str) -> bool:
    """True for a socket, or TCP to this machine's loopback."""
    host = engine_hostname(base_url)
    if host is None or host in _LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(socket.gethostbyname(host)).is_loopback
    except (OSError, ValueError):
        return False


@dataclass(frozen=True)
class AppAddress:
    """Where a container's port is published, and where the notebook reaches it.

    Attributes:
        bind: the address the engine publishes on (127.0.0.1 for a local engine).
        host: the host name the notebook uses in the URL.
        note: one sentence that says which, and why.
    """

    bind: str
    host: str
    note: str


def app_address(base_url: str) -> AppAddress:
    """Where ``run_app`` publishes, for the engine at ``base_url`` (the SDK client's ``api.base_url``).

    A local engine publishes on 127.0.0.1 only.  A remote engine's loopback is not this
    machine's, so the app is published on the address of the engine's host that this
    machine already reaches the engine at (that interface only, not every interface).
    """
    if is_local(base_url):
        return AppAddress("127.0.0.1", "127.0.0.1", "published on 127.0.0.1 (the engine runs on this machine)")
    host = engine_hostname(base_url) or ""
    try:
        ip = socket.gethostbyname(host)
    except OSError:
        raise EngineUnavailable(f"The engine's host {host} does not resolve from this machine: check DOCKER_HOST "
                                "or the Docker context.") from None
    return AppAddress(ip, host, f"published on {ip} of the remote engine's host {host}, the address this "
                                "machine reaches the engine at (its 127.0.0.1 is not this machine's)")
