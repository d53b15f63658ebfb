"""The hub: its configuration, its process, and the REST API the instructor's commands use.

JupyterHub runs as root on 127.0.0.1 (the instructor puts their own TLS proxy
in front), logs learners in with PAM (their system accounts), and starts each
learner's server as that learner with JupyterHub's own LocalProcessSpawner.
The spawner's hooks start and stop the learner's engine (``hooks.py``).
jupyterhub-idle-culler, a service of the hub, stops servers left idle, and so
their engines.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import requests

from ..engine.process import ManagedProcess, NotReady, log_tail, wait_ready
from ..errors import SetupError
from .engines import engine_release
from .learners import COURSE_FOLDER
from .state import Paths, Settings, load_secrets, load_settings

SERVICE = "course-classroom"  # the instructor's commands talk to the hub as this service


def proxy_command(where: Paths) -> Path:
    return where.proxy / "node_modules" / ".bin" / "configurable-http-proxy"


def configure(c: Any, where: Paths) -> None:
    """Fill a JupyterHub config object ``c`` for the classroom in ``where`` (see classroom/jupyterhub_config.py)."""
    from . import hooks

    settings = load_settings(where)
    keys = load_secrets(where)
    venv_bin = where.venv / "bin"
    c.JupyterHub.bind_url = f"http://127.0.0.1:{settings.port}"
    c.JupyterHub.hub_bind_url = f"http://127.0.0.1:{settings.hub_port}"
    c.JupyterHub.db_url = f"sqlite:///{where.hub / 'jupyterhub.sqlite'}"
    c.JupyterHub.cookie_secret = bytes.fromhex(keys["cookie_secret"])
    c.JupyterHub.pid_file = str(where.hub_pid)
    c.ConfigurableHTTPProxy.command = [str(proxy_command(where))]
    c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{settings.proxy_api_port}"
    c.ConfigurableHTTPProxy.auth_token = keys["proxy_token"]
    c.ConfigurableHTTPProxy.pid_file = str(where.hub / "proxy.pid")

    c.JupyterHub.authenticator_class = "pam"
    c.Authenticator.allowed_users = set(settings.learners)
    c.PAMAuthenticator.open_sessions = False  # no logind on a course VM; the hooks do what a session would

    c.JupyterHub.spawner_class = "localprocess"
    c.Spawner.cmd = [str(venv_bin / "jupyterhub-singleuser")]
    c.Spawner.notebook_dir = f"~/{COURSE_FOLDER}"
    c.Spawner.default_url = "/lab/tree/notebooks/000-check-your-setup.ipynb"
    # The classroom's docker client (buildx linked into each learner's ~/.docker) for kernels and terminals.
    c.Spawner.environment = {"PATH": f"{venv_bin}:{engine_release(where).bin}:/usr/local/bin:/usr/bin:/bin"}
    c.LocalProcessSpawner.ip = "127.0.0.1"
    # A server waits for its engine and the base image import: seconds, more when the whole room arrives.
    c.Spawner.start_timeout = 300
    c.Spawner.http_timeout = 120
    # Answer "202, starting" at once instead of after 10 s, so a whole room can be started in one go.
    c.JupyterHub.tornado_settings = {"slow_spawn_timeout": 0}
    c.Spawner.pre_spawn_hook = hooks.pre_spawn
    c.Spawner.post_stop_hook = hooks.post_stop

    c.JupyterHub.services = [
        {"name": SERVICE, "api_token": keys["service_token"]},
        {"name": "idle-culler",
         "command": [str(venv_bin / "python"), "-m", "jupyterhub_idle_culler",
                     f"--timeout={settings.idle_timeout}", f"--cull-every={settings.cull_every}"]},
    ]
    c.JupyterHub.load_roles = [
        {"name": "course-instructor", "services": [SERVICE],
         "scopes": ["admin:users", "admin:servers", "access:servers"]},
        # The scopes jupyterhub-idle-culler's documentation asks for when it culls servers only.
        {"name": "idle-culler", "services": ["idle-culler"],
         "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"]},
    ]


def _hub_process(where: Paths) -> ManagedProcess | None:
    # JupyterHub's pid file has no start time: its command line tells the hub from a later process.
    return ManagedProcess.from_pidfile(where.hub_pid, command="jupyterhub")


def hub_pid(where: Paths) -> int | None:
    """The running hub's pid, from the pid file JupyterHub writes, or None."""
    process = _hub_process(where)
    return process.pid if process is not None else None


def _log_tail(log: Path, lines: int = 8) -> str:
    return "\n".join(log_tail(log, lines)) or "(no log)"


def start_hub(where: Paths, settings: Settings, progress=print, timeout: float = 90) -> int:
    """Start JupyterHub in the background and wait until its API answers.

    Returns:
        The hub's pid.

    Raises:
        SetupError: it exited or did not answer (the message has the end of its log).
    """
    env = {**os.environ, "COURSE_CLASSROOM_DIR": str(where.root),
           "PATH": f"{where.venv / 'bin'}:{os.environ.get('PATH', '/usr/bin:/bin')}"}
    for name in ("DOCKER_HOST", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "COURSE_WORKSPACE"):
        env.pop(name, None)  # the hub itself uses no engine; each learner gets their own
    config = where.course / "classroom" / "jupyterhub_config.py"
    process = ManagedProcess.launch([str(where.venv / "bin" / "jupyterhub"), "-f", str(config)],
                                    log=where.hub_log, env=env, cwd=where.hub)
    progress(f"starting JupyterHub on {settings.url} (log: {where.hub_log})")
    api = HubAPI(settings, load_secrets(where)["service_token"])
    try:
        wait_ready(api.answers, timeout, process=process)
    except NotReady as exc:
        if exc.exited:
            raise SetupError(f"JupyterHub exited at start (code {exc.code}); the end of "
                             f"{where.hub_log}:\n{_log_tail(where.hub_log)}") from None
        raise SetupError(f"JupyterHub did not answer within {timeout:.0f} s; the end of {where.hub_log}:\n"
                         f"{_log_tail(where.hub_log)}") from None
    return process.pid


def stop_hub(where: Paths, timeout: float = 120) -> bool:
    """Stop the hub: it stops the servers (whose hooks stop the engines), the culler and the proxy.

    Returns:
        Whether a hub was running.
    """
    process = _hub_process(where)
    return process is not None and process.stop(timeout)


class HubAPI:
    """JupyterHub's REST API, as the classroom's instructor service.

    Args:
        settings: where the hub answers.
        token: the service's API token (in the classroom's secrets).
    """

    def __init__(self, settings: Settings, token: str) -> None:
        self.base = settings.url.rstrip("/")
        self.session = requests.Session()
        self.session.trust_env = False  # 127.0.0.1 never goes through the machine's proxy settings
        self.session.headers["Authorization"] = f"token {token}"

    @classmethod
    def for_classroom(cls, where: Paths) -> "HubAPI":
        return cls(load_settings(where), load_secrets(where)["service_token"])

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.session.request(method, self.base + path, timeout=kwargs.pop("timeout", 30), **kwargs)

    def answers(self) -> bool:
        try:
            return self.request("GET", "/hub/api/", timeout=5).status_code == 200
        except requests.RequestException:
            return False

    def user(self, name: str) -> dict:
        reply = self.request("GET", f"/hub/api/users/{name}")
        reply.raise_for_status()
        return reply.json()

    def server(self, name: str) -> dict | None:
        """The learner's default server as the hub sees it (``ready``, ``pending``, ``url``...), or None."""
        return self.user(name).get("servers", {}).get("")

    def start_server(self, name: str) -> None:
        """Ask the hub to start the learner's server (their engine starts first)."""
        reply = self.request("POST", f"/hub/api/users/{name}/server")
        if reply.status_code not in (201, 202, 400):  # 400: already running
            raise SetupError(f"The hub refused to start {name}'s server: {reply.status_code} {reply.text[:200]}")

    def stop_server(self, name: str) -> None:
        self.request("DELETE", f"/hub/api/users/{name}/server")

    def wait_ready(self, name: str, timeout: float = 300) -> dict:
        """Wait until the learner's server is ready.

        Raises:
            SetupError: it failed or did not get ready in time.
        """
        start = time.monotonic()
        while time.monotonic() < start + timeout:
            server = self.server(name)
            if server and server.get("ready"):
                return server
            if server is None and time.monotonic() > start + 5:
                raise SetupError(f"{name}'s server stopped while starting: read the hub's log.")
            time.sleep(0.5)
        raise SetupError(f"{name}'s server was not ready within {timeout:.0f} s: read the hub's log.")

    def through_proxy(self, name: str, path: str = "api/status") -> requests.Response:
        """A request to the learner's own server, through the hub's proxy (what their browser does)."""
        return self.request("GET", f"/user/{name}/{path}")

