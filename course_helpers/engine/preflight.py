"""A checklist an instructor (or a learner) can read aloud: PASS/FAIL lines, one per fact."""
from __future__ import annotations

import shutil
import socket
from dataclasses import dataclass

from ..config import BASE_IMAGE, state_dir
from ..formatting import home_shown


@dataclass
class Check:
    name: str
    ok: bool | None  # None: informational, never a failure
    detail: str

    def line(self) -> str:
        mark = {True: "PASS", False: "FAIL", None: "INFO"}[self.ok]
        return f"{mark}  {self.name}: {self.detail}"


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def _pip_in_container(cli) -> Check:
    """Can a container from the base image reach the package index, as builds will need?"""
    from docker.errors import APIError

    from ..config import session_labels
    name = "pip inside a container reaches the package index"
    # Not containers.run(remove=True): a container that fails to start would be left behind.
    container = cli.containers.create(BASE_IMAGE, ["pip3", "download", "--no-deps", "-q", "-d", "/tmp/x", "six"],
                                      labels=session_labels())
    try:
        try:
            container.start()
        except APIError as exc:
            return Check(name, False, f"the engine cannot start a container ({exc.explanation or exc}), "
                                      "so no build can run a step")
        status = container.wait(timeout=300).get("StatusCode")
        out = container.logs(stdout=True, stderr=True).decode(errors="replace").strip()
    except Exception as exc:  # the engine went away, or pip hung past the wait
        return Check(name, False, f"the check did not finish ({exc})")
    finally:
        container.remove(force=True)
    if status == 0:
        return Check(name, True, "downloaded a small package" + (f" ({out[:60]})" if out else ""))
    hint = ("the image does not trust the proxy's certificate" if "CERTIFICATE_VERIFY_FAILED" in out
            else "no route to the index: builds that run pip will fail (offline room? set up a local mirror)")
    return Check(name, False, hint)


def _store_line(cli) -> str:
    from .client import image_store

    driver = cli.info().get("Driver", "?")
    if image_store(cli) == "containerd":
        return (f"containerd ({driver} snapshotter): an image ID names an index, which holds the image "
                "and, from buildx, an attestation of the build")
    return f"classic ({driver}): an image ID is the digest of the image's config"


def engine_signature(cli) -> str:
    """What decides a notebook's stored outputs: ``Docker 28, containerd store`` or ``Podman 4, classic store``.

    tools/run_notebooks.py stores it beside the notebooks; on another engine the tests
    compare only the cells whose facts hold on every engine (conftest.py).  It lives here, above
    both client.py and podman.py, so that the client never imports podman.py (which imports it).
    """
    from .client import image_store
    from .podman import engine_is_podman

    name = "Podman" if engine_is_podman(cli) else "Docker"
    return f"{name} {str(cli.version().get('Version', '?')).split('.')[0]}, {image_store(cli)} store"


def run_checks(port: int | None = 8888, pip_check: bool = True) -> list[Check]:
    """Collect the checks; each is independent, so one failure doesn't hide the rest."""
    from .base_image import describe_base
    from .client import try_client

    from ..errors import EngineUnavailable
    from .endpoint import resolve

    checks: list[Check] = []
    try:
        endpoint = resolve()
    except EngineUnavailable as exc:
        endpoint = None
        checks.append(Check("engine reachable", False, str(exc)))
    cli = try_client() if endpoint is not None else None
    if endpoint is None:
        pass
    elif cli is None:
        checks.append(Check("engine reachable", False, f"no Docker engine answers at {endpoint.describe()}: "
                            + ("start that engine, or point DOCKER_HOST elsewhere" if endpoint.named
                               else "run ./course setup, or start Docker Desktop")))
    else:
        ver = cli.version()
        checks.append(Check("engine reachable", True, f"Docker {ver.get('Version')} (API {ver.get('ApiVersion')}) on {ver.get('Os')}/{ver.get('Arch')}"))
        checks.append(Check("engine found through", None, f"{endpoint.source}: {endpoint.host}"
                            + (" with TLS" if endpoint.tls else "")))
        checks.append(Check("image store", None, _store_line(cli)))
    try:
        from .cli import buildkit_client
        bk = buildkit_client()
        where = home_shown(bk.path) if bk else ""
        checks.append(Check("BuildKit", None, f"available via {where} ({bk.version}, {bk.via})" if bk
                            else "no client can run BuildKit here; builds use the classic builder"))
    except Exception as exc:  # detection must never break the checklist
        checks.append(Check("BuildKit", None, f"could not be detected ({exc})"))
    if cli is not None:
        info = describe_base()
        if info is None:
            checks.append(Check("base image", False, f"{BASE_IMAGE} is missing: run ./course setup"))
        else:
            checks.append(Check("base image", True, str(info)))
            if pip_check:
                checks.append(_pip_in_container(cli))
    where = state_dir()
    free = shutil.disk_usage(where).free
    checks.append(Check("free disk", free > 3e9, f"{free / 1e9:.1f} GB free under {home_shown(where)} (3 GB wanted)"))
    if cli is not None:
        root = cli.info().get("DockerRootDir", "")
        try:
            dfree = shutil.disk_usage(root).free
            checks.append(Check("free disk for the engine", dfree > 3e9, f"{dfree / 1e9:.1f} GB free under {root}"))
        except OSError:
            pass  # a remote engine or Docker Desktop's VM: not visible from here
    if port is not None:  # inside JupyterLab the port is ours already
        free_port = _port_free(port)
        checks.append(Check(f"JupyterLab port {port}", free_port,
                            "free on 127.0.0.1" if free_port else "in use: set COURSE_PORT to another port"))
    return checks


def main(port: int = 8888) -> int:
    checks = run_checks(port)
    for check in checks:
        print(check.line(), flush=True)
    failed = [c for c in checks if c.ok is False]
    print(f"\n{len(failed)} of {len(checks)} checks failed" if failed else f"\nall {len(checks)} checks passed")
    return 1 if failed else 0


class Checklist(list):
    """The checks as a notebook shows them: one PASS/FAIL/INFO line each."""

    def __repr__(self) -> str:
        return "\n".join(check.line() for check in self)

    @property
    def ok(self) -> bool:
        return all(check.ok is not False for check in self)

    @property
    def verdict(self) -> str:
        """One sentence on what the learner can do next: everything, or only the notebooks that need no engine."""
        from ..config import ENGINE_FREE_NOTEBOOKS

        if any(check.name == "engine reachable" and check.ok is False for check in self):
            numbers = [name[:3] for name in ENGINE_FREE_NOTEBOOKS]
            free = ", ".join(numbers[:-1]) + " and " + numbers[-1] if len(numbers) > 1 else numbers[0]
            return (f"No Docker engine answers here, so only notebooks {free} run (they need none); the others "
                    "need an engine: run ./course setup, start Docker Desktop, or point DOCKER_HOST at one.")
        if self.failed:
            return (f"The engine answers but {', '.join(self.failed)} failed: fix the FAIL lines above before "
                    "notebook 020.")
        return "Everything the course needs is here: open the notebooks in order."

    @property
    def failed(self) -> list[str]:
        """The names of the checks that failed (details vary by machine; names do not)."""
        return [check.name for check in self if check.ok is False]


def check_setup(port: int | None = None) -> Checklist:
    """The preflight checks, for the first notebook.

    Returns:
        A :class:`Checklist`; ``.ok`` is False when any check failed.
    """
    return Checklist(run_checks(port))
