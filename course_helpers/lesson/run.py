"""Run an image's web app for the length of a ``with`` block, and always clean up after it.

The container is published on 127.0.0.1 only (never on the learner's network)
when the engine runs on this machine; a remote engine's loopback is not this
machine's, so there it is published on the one address of the engine's host
that this machine already reaches the engine at, and the app says so.  It
runs unprivileged with no Docker socket inside, carries the course's creation
mark and its owner (this process), and is force-removed when the block ends,
whatever happened inside it.  If the process exits with a block open, an
atexit hook removes it; if the process is killed, the reaper does
(:mod:`course_helpers.engine.reaper`).
"""
from __future__ import annotations

import atexit
import os
import contextlib
import re
import shlex
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Iterator

import docker
from docker.errors import APIError, NotFound
from requests.exceptions import ConnectionError as RequestsConnectionError, ReadTimeout

from ..config import LABEL_CONTAINER, LABEL_OWNER_PID, owner_labels
from ..engine import api, reaper
from ..engine.client import resolve
from ..engine.endpoint import app_address
from ..engine.session import course_call
from ..errors import ContainerExited, CourseError, check_port
from ..formatting import command_text, shell_line
from ..layers.images import get_image, image_ref, shown_name

_started: set[str] = set()  # ids of containers run_app made and has not removed yet
_reaper_client: list[docker.DockerClient] = []


def _reap() -> None:
    """At exit: remove this session's containers that a run_app block left behind."""
    if not _reaper_client:
        return
    cli = _reaper_client[0]
    try:
        leftovers = {c["Id"] for c in api.container_rows(cli, {"label": [
            f"{LABEL_CONTAINER}=run_app", f"{LABEL_OWNER_PID}={os.getpid()}"]})}
    except Exception:  # engine gone at exit: nothing we can do
        leftovers = set()
    for cid in _started | leftovers:
        try:
            api.force_remove_container(cli, cid)
        except Exception:
            pass
    _started.clear()


atexit.register(_reap)


@dataclass
class RunningApp:
    """A running container of a web app, as ``run_app`` yields it.

    Attributes:
        url: ``http://127.0.0.1:PORT``, or ``http://ENGINE-HOST:PORT`` for a remote engine (str() of the object is the url).
        container: the docker-py Container.
        host_port: the published port.
        command: the ``docker run`` that starts the same app on a terminal.
        where: one sentence on where it is published and why.
    """

    url: str
    container: Any
    host_port: int
    command: str = ""
    where: str = "published on 127.0.0.1 (the engine runs on this machine)"

    def __str__(self) -> str:
        return self.url

    def get(self, path: str = "/", timeout: float = 5.0) -> str:
        """GET a path of the app and return the body as text (the body of an HTTP error too)."""
        try:
            with urllib.request.urlopen(self.url + "/" + path.lstrip("/"), timeout=timeout) as resp:
                return resp.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            return exc.read().decode("utf-8", "replace")

    def logs(self) -> str:
        """What the app printed so far."""
        return self.container.logs().decode("utf-8", "replace")


def _exited_message(image: str, code: int | None, logs: str, port: int) -> str:
    match = re.search(r"^/bin/sh: \d+: (.+): not found$", logs, re.M)
    if code == 127 and match:
        return (f"The container of {image} exited with code 127 because the shell found no program named "
                f"`{match.group(1)}`: that is a shell-form CMD with the whole command in quotes, so write "
                f"it without the quotes or in exec form, e.g. CMD [\"python3\", \"-m\", \"flask\", \"run\", "
                f"\"--host=0.0.0.0\"], then rebuild.")
    return (f"The container of {image} exited with code {code} before it answered on port {port}: "
            "read its output below, fix the Dockerfile or the app, and rebuild.")


def _host_port(container: Any, port: int) -> int | None:
    ports = (container.attrs.get("NetworkSettings") or {}).get("Ports") or {}
    bindings = ports.get(f"{port}/tcp") or []
    for binding in bindings:
        if binding.get("HostPort"):
            return int(binding["HostPort"])
    return None


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=0.5):
            return True
    except urllib.error.HTTPError:
        return True  # any HTTP answer (even 404 or 500) means the server is up
    except (OSError, ValueError):
        return False


@contextlib.contextmanager
def run_app(image: Any, port: int = 5000, *, timeout: float = 30, command: str | list[str] | None = None,
            environment: dict[str, str] | None = None,
            client: docker.DockerClient | None = None) -> Iterator[RunningApp]:
    """Run an image detached, wait until its web app answers, yield it, then remove the container.

    Args:
        image: tag, id or BuildReport.
        port: the port the app listens on inside the container (5000 for Flask).
        timeout: seconds to wait for the first HTTP answer.
        command: override the image's CMD (default: the image's own).
        environment: extra environment variables.
        client: Docker client (default: the course's).

    Yields:
        A :class:`RunningApp`; ``app.get("/")`` returns the body text.

    Raises:
        ContainerExited: the container stopped before answering (exit code and output attached).
        CourseError: no such image, or no answer within ``timeout`` seconds.

    Example:
        >>> with run_app("flask-demo:first") as app:
        ...     print(app.get("/"))
        Hello world!
    """
    app = _start(image, port, timeout, command, environment, client)
    try:
        yield app
    finally:
        _remove(app.container)


def _remove(container: Any) -> None:
    try:
        container.remove(force=True)
    except NotFound:
        pass
    except APIError as exc:  # e.g. removal already in progress
        if exc.status_code != 409:
            raise
    _started.discard(container.id)


@course_call("running a container")
def _start(image: Any, port: int, timeout: float, command: str | list[str] | None,
           environment: dict[str, str] | None, client: docker.DockerClient | None) -> RunningApp:
    """Create, start and wait for the app; on any failure (or interrupt) remove what was made."""
    port = check_port(port, "port")
    cli = resolve(client)
    if not _reaper_client:
        _reaper_client.append(cli)
    name = image_ref(image)
    img = get_image(image, cli)
    address = app_address(api.base_url(cli))
    container = None
    try:
        # create, then start: if start fails, we still hold the container and remove it below.
        container = cli.containers.create(
            img.id, command=command, environment=environment, detach=True,
            labels=owner_labels("run_app"), privileged=False,
            ports={f"{port}/tcp": (address.bind, None)},  # loopback for a local engine; a free port the engine picks
        )
        _started.add(container.id)
        reaper.watch_me()  # removes it if this process is killed before the block ends
        try:
            container.start()
        except APIError as exc:
            detail = exc.explanation or str(exc)
            missing = re.search(r'exec: "([^"]+)": executable file not found', detail)
            if missing:  # exec-form CMD naming a program the image lacks: the engine's exit 127
                raise ContainerExited(
                    f"The container of {name} could not start because the image has no program named "
                    f"`{missing.group(1)}`: check the CMD (in exec form, each word is its own string).",
                    exit_status=127, logs=detail) from None
            raise CourseError(f"The engine could not start a container of {name}: {detail}") from None
        deadline = time.monotonic() + timeout
        url = None
        while True:
            container.reload()
            if container.status in ("exited", "dead"):
                code = container.attrs.get("State", {}).get("ExitCode")
                logs = container.logs().decode("utf-8", "replace")
                raise ContainerExited(_exited_message(name, code, logs, port), exit_status=code, logs=logs)
            host_port = _host_port(container, port)
            if host_port is not None:
                url = f"http://{address.host}:{host_port}"
                if _answers(url + "/"):
                    break
            if time.monotonic() > deadline:
                logs = container.logs().decode("utf-8", "replace")
                raise CourseError(
                    f"The container of {name} is running but nothing answered on its port {port} within "
                    f"{timeout:.0f} s: check that the app listens on 0.0.0.0:{port} (not 127.0.0.1) "
                    f"and read its output:\n{logs.rstrip()}")
            time.sleep(0.1)
        shown_image = shown_name(image, img.id)
        words = shlex.split(command) if isinstance(command, str) else list(command or [])
        shown = shell_line(["docker", "run", "--rm", "-p", f"{address.bind}:{host_port}:{port}"]
                           + [f"--env={key}={value}" for key, value in (environment or {}).items()]
                           + [shown_image] + words)
        # run_app's result lives inside a with block, where no repr shows: say it once, here.
        print(f"{shown_image} answers on {url}\n{command_text(shown)}", flush=True)
        return RunningApp(url, container, host_port, shown, address.note)
    except BaseException:
        if container is not None:
            _remove(container)
        raise


# ---------------------------------------------------------------- one command, its output


@dataclass(frozen=True)
class CommandResult:
    """What :func:`run_command` saw: the command, its exit code and everything it printed.

    Attributes:
        image: the image it ran in, as given.
        command: the command, as given.
        exit_code: the process's exit code (0: success).
        output: stdout and stderr, interleaved as printed.
    """

    image: str
    command: str
    exit_code: int
    output: str
    docker: str = ""  # the ``docker run`` that does the same on a terminal

    @property
    def ok(self) -> bool:
        """True when the command exited with 0."""
        return self.exit_code == 0

    def __str__(self) -> str:
        return self.output.rstrip("\n")

    def __repr__(self) -> str:
        status = "" if self.ok else f"  (exit code {self.exit_code})"
        tail = f"\n{command_text(self.docker)}" if self.docker else ""
        return f"$ {self.command}{status}\n{self}{tail}"


@course_call("running a command in a container")
def run_command(image: Any, command: str | list[str], *, timeout: float = 120, network: bool = True,
                client: docker.DockerClient | None = None) -> CommandResult:
    """Run one command in a new container of ``image``, wait for it, return its output, remove the container.

    The shell form ``run_command(img, "pip3 show flask | head -2")`` is ``docker run --rm IMG sh -c '...'``;
    a list runs without a shell.  The container publishes nothing, runs unprivileged, carries the
    course's creation mark and is always removed.

    Args:
        image: tag, id or BuildReport.
        command: a shell command line (run by ``/bin/sh -c``) or an argv list.
        timeout: seconds to wait before the container is stopped and an error raised.
        network: False runs it with no network at all (``--network none``).
        client: Docker client (default: the course's).

    Returns:
        A :class:`CommandResult`; a non-zero exit code is reported there, not raised.

    Raises:
        CourseError: no such image, or the command ran longer than ``timeout``.

    Example:
        >>> run_command("flask-demo:first", "python3 -c 'import flask; print(flask.__version__)'").output
        '2.3.1\\n'
    """
    cli = resolve(client)
    if not _reaper_client:
        _reaper_client.append(cli)
    name = image_ref(image)
    img = get_image(image, cli)
    shell = isinstance(command, str)
    text = command if shell else shlex.join(command)
    container = None
    try:
        container = cli.containers.create(
            img.id, command=[command] if shell else list(command), entrypoint=["/bin/sh", "-c"] if shell else None,
            detach=True, labels=owner_labels("run_command"), privileged=False,
            network_mode=None if network else "none")
        _started.add(container.id)
        reaper.watch_me()
        container.start()
        try:
            code = int(container.wait(timeout=timeout).get("StatusCode", -1))
        except (ReadTimeout, RequestsConnectionError) as exc:
            if not isinstance(exc, ReadTimeout) and "timed out" not in str(exc).lower():
                raise  # the engine went away: course_call says so in one sentence
            raise CourseError(f"`{text}` in {name} ran longer than {timeout:.0f} s and was stopped: "
                              "check that it does not wait for input, or pass a longer timeout=.") from None
        output = container.logs(stdout=True, stderr=True).decode("utf-8", "replace")
        typed = ["docker", "run", "--rm", *([] if network else ["--network", "none"]), name,
                 *(["sh", "-c", command] if shell else list(command))]
        return CommandResult(name, text, code, output, shell_line(typed))
    finally:
        if container is not None:
            _remove(container)
