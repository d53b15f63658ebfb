"""``./course classroom up|status|down``: the instructor's three commands."""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import time
from pathlib import Path

from ..config import REPO_ROOT
from ..engine.registry import CourseRegistry
from ..errors import RegistryUnavailable, SetupError
from ..formatting import format_size, table_text
from . import engines, learners, setup
from . import registry as class_registry
from .hub import HubAPI, hub_pid, start_hub, stop_hub
from .state import Paths, Settings, load_secrets, load_settings, paths, save_secrets


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _port_taken(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _password() -> str:
    # Three groups of four, easy to read aloud and to type.
    alphabet = "abcdefghjkmnpqrstuvwxyz23456789"
    return "-".join("".join(secrets.choice(alphabet) for _ in range(4)) for _ in range(3))


def _need_root(what: str) -> None:
    if os.geteuid() != 0:
        raise SetupError(f"`classroom {what}` needs root (it manages system users and their engines): "
                         "run it with sudo.")


def _choose_engine(where: Paths, wanted: str, first: learners.Learner, disk_gb: int, progress) -> tuple[str, str]:
    """``rootless`` if it runs here (tried for real), else the root fallback with the reason in one sentence."""
    if wanted == engines.ROOT:
        return engines.ROOT, "asked for with --engine root"
    setup.ensure_packages(rootless=True, progress=progress)
    reason = engines.rootless_problem(where)
    if reason is None:
        if engines.open_tun():
            progress(f"made {engines.TUN} usable by every user (mode 0666, Debian's default), "
                     "which rootless engines need for their network")
        try:
            engines.probe_rootless(where, first, disk_gb)
            progress("a rootless engine starts on this machine")
            return engines.ROOTLESS, ""
        except SetupError as exc:
            reason = str(exc)
    if wanted == engines.ROOTLESS:
        raise SetupError(f"Rootless Docker cannot run here: {reason}")
    return engines.ROOT, reason


def _learner_lines(settings: Settings, keys: dict) -> list[str]:
    rows = []
    for name in settings.learners:
        learner = learners.lookup(name)
        host = engines.docker_host(learner, settings.engine) if learner else "?"
        rows.append((name, f"login {name}", f"password {keys['passwords'].get(name, '?')}", f"DOCKER_HOST={host}"))
    return table_text(["learner", "login", "password", "engine"], rows).splitlines()[1:]


def up(count: int, *, prefix: str = "learner", port: int = 8000, engine: str = "auto", idle_timeout: int = 3600,
       cull_every: int = 300, disk_gb: int = 20, start_servers: bool = False, registry: bool | None = None,
       progress=print) -> Settings:
    """Bring the classroom up: learners, their disks, the hub; print a line per learner.

    Args:
        count: how many learners (``<prefix>1`` ... ``<prefix>N``); learners of an earlier ``up`` are kept.
        prefix: the learners' login names start with it.
        port: the hub's port on 127.0.0.1.
        engine: ``auto`` (rootless if it runs here, else root per learner), ``rootless`` or ``root``.
        idle_timeout: seconds of inactivity after which a server and its engine are culled.
        cull_every: how often the culler looks.
        disk_gb: each learner's engine disk (sparse).
        start_servers: also start every learner's server (and engine) now, before the class arrives.
        registry: start one registry for the class (True), not (False), or as the last ``up`` did (None).
        progress: one line per thing done.

    Returns:
        The classroom's settings.

    Raises:
        SetupError: with one sentence saying what to do.
    """
    _need_root("up")
    if count < 1:
        raise SetupError("--learners must be at least 1.")
    if engine not in ("auto", engines.ROOTLESS, engines.ROOT):
        raise SetupError(f"--engine is auto, rootless or root, not {engine!r}.")
    where = paths()
    where.make()
    if hub_pid(where) is not None:
        settings = load_settings(where)
        progress(f"the classroom is already up at {settings.url} (./course classroom down first to change it)")
        for line in _learner_lines(settings, load_secrets(where)):
            progress(line)
        return settings
    try:
        settings = load_settings(where)
    except SetupError:
        settings = Settings()
    names = list(dict.fromkeys(settings.learners + [learners.check_name(f"{prefix}{i}") for i in range(1, count + 1)]))
    if _port_taken(port):
        raise SetupError(f"Port {port} on 127.0.0.1 is in use: choose another with --port.")
    settings.learners, settings.port, settings.idle_timeout = names, port, idle_timeout
    settings.cull_every, settings.disk_gb, settings.repo = cull_every, disk_gb, str(REPO_ROOT)
    settings.hub_port, settings.proxy_api_port = _free_port(), _free_port()

    start = time.monotonic()
    setup.ensure_packages(rootless=False, progress=progress)
    setup.ensure_venv(where, progress)
    setup.ensure_proxy(where, progress)
    rel = setup.ensure_docker(where, progress)
    if registry is None:
        registry = bool(settings.registry)
    if registry:
        settings.registry = class_registry.start_class_registry(where, progress).address
    else:
        class_registry.stop_class_registry(where)
        settings.registry = ""
    settings.save(where)  # the engines' configuration reads it (the registry they may reach)
    keys = load_secrets(where)
    for name in names:
        keys["passwords"].setdefault(name, _password())
    save_secrets(where, keys)
    accounts = [learners.ensure_learner(name, keys["passwords"][name], where.course, progress) for name in names]
    for learner in accounts:
        learners.link_buildx(learner, rel.docker_config / "cli-plugins" / "docker-buildx")
    settings.engine, settings.fallback_reason = _choose_engine(where, engine, accounts[0], disk_gb, progress)
    if settings.engine == engines.ROOT:
        progress(f"rootless Docker cannot run here ({settings.fallback_reason}); each learner gets a root dockerd "
                 "of their own instead: WEAKER ISOLATION, a learner with a root engine can become root on "
                 "this machine")
    for learner in accounts:
        learners.ensure_disk(where, learner, disk_gb, owner_is_learner=settings.engine == engines.ROOTLESS)
    settings.save(where)
    start_hub(where, settings, progress)
    progress(f"hub ready in {time.monotonic() - start:.0f} s at {settings.url} (127.0.0.1 only: put your TLS "
             f"proxy in front); {settings.engine} engines, each started with its learner's server")
    if settings.registry:
        progress(f"the classroom's registry: {settings.registry} (this machine only); each learner's images and "
                 f"cache go under {settings.registry}/LOGIN/, the shared base is {settings.registry}/"
                 f"{class_registry.BASE_REPO}")
    for line in _learner_lines(settings, keys):
        progress(line)
    if start_servers:
        start_all(where, settings, progress)
    return settings


def start_all(where: Paths, settings: Settings, progress=print) -> float:
    """Start every learner's server through the hub's REST API and wait for all; returns the seconds it took."""
    api = HubAPI.for_classroom(where)
    start = time.monotonic()
    for name in settings.learners:
        api.start_server(name)
    for name in settings.learners:
        api.wait_ready(name)
        progress(f"{name}: server ready ({time.monotonic() - start:.0f} s)")
    return time.monotonic() - start


def status(progress=print) -> list[dict]:
    """Print and return, per learner: their server, engine, disk used and images."""
    where = paths()
    settings = load_settings(where)
    running = hub_pid(where) is not None
    api = HubAPI.for_classroom(where) if running else None
    progress(f"hub: {'running at ' + settings.url if running else 'stopped'}; engines: {settings.engine}"
             + (f" (fallback: {settings.fallback_reason})" if settings.fallback_reason else ""))
    if settings.registry:
        reg = _registry_state(settings.registry)
        progress(f"registry: {settings.registry}, {reg}")
    rows, report = [], []
    for name in settings.learners:
        learner = learners.lookup(name)
        if learner is None:
            rows.append((name, "no account", "", "", "", ""))
            continue
        server = "stopped"
        if api is not None:
            info = api.server(name)
            if info:
                server = "ready" if info.get("ready") else (info.get("pending") or "starting")
        state = engines.engine_state(where, learner, settings.engine)
        usage = learners.disk_usage(where, learner)
        disk = f"{format_size(usage[0])} of {format_size(usage[1])}" if usage else "not mounted"
        images = ", ".join(state.images) if state.images else ("none" if state.running else "-")
        rows.append((name, server, f"Docker {state.version}" if state.running else "stopped", state.host, disk,
                     images))
        report.append({"learner": name, "server": server, "engine": state.running, "host": state.host,
                       "disk_used": usage[0] if usage else None, "images": state.images})
    for line in table_text(["learner", "server", "engine", "DOCKER_HOST", "disk used", "images"], rows).splitlines():
        progress(line)
    return report


def _registry_state(address: str) -> str:
    host, _, port = address.rpartition(":")
    try:
        return f"answering, {len(CourseRegistry(int(port), None, host).repositories())} repositories"
    except RegistryUnavailable:
        return "not answering"


def _stop_proxy(where: Paths) -> None:
    try:
        pid = int((where.hub / "proxy.pid").read_text().strip())
        if b"configurable-http-proxy" in Path(f"/proc/{pid}/cmdline").read_bytes():
            os.kill(pid, signal.SIGTERM)
    except (OSError, ValueError):
        pass


def down(purge: bool = False, progress=print) -> None:
    """Stop the hub, every server and every engine; with ``purge`` also remove the learners and their data.

    Without ``purge`` nothing of the learners' goes: accounts, homes, engine disks
    (images, build cache) stay for the next ``up``.
    """
    _need_root("down")
    where = paths()
    settings = load_settings(where)
    if stop_hub(where):
        progress("hub stopped (it stopped the servers, their engines, the culler and the proxy)")
    _stop_proxy(where)
    for name in settings.learners:
        learner = learners.lookup(name)
        if learner is None:
            continue
        if engines.stop_engine(where, learner, settings.engine):
            progress(f"{name}: engine stopped")
        stray = learners.end_processes(learner)
        if stray:
            progress(f"{name}: ended {stray} leftover process(es)")
        learners.release_disk(where, learner)
        if purge:
            learners.remove_learner(where, learner)
            progress(f"{name}: account, home and engine disk removed")
    if class_registry.stop_class_registry(where, purge=purge):
        progress("the classroom's registry stopped" + (" and its data deleted" if purge else "; its data is kept"))
    if purge:
        shutil.rmtree(where.hub, ignore_errors=True)
        shutil.rmtree(where.disks, ignore_errors=True)
        shutil.rmtree(where.engines, ignore_errors=True)
        progress(f"classroom removed; its software stays in {where.venv}, {where.proxy} and {where.docker}")
    else:
        progress(f"classroom down; the {len(settings.learners)} learners' accounts, work and engine disks are kept "
                 "(./course classroom down --purge removes them)")
