"""One registry for the whole classroom: the base image every engine shares, and each learner's cache exports.

``./course classroom up --registry`` starts the course's registry
(:mod:`course_helpers.engine.registry`) once for the class, with its data in the
classroom's folder (``registry/``).  Three things make it work for every learner:

* **One address that every engine reaches, and nothing outside the machine.**  A
  rootless engine has a loopback of its own (slirp4netns), so the hub's 127.0.0.1
  is out of its reach.  The registry listens instead on :data:`HOST`, an address
  of a bridge of its own that has no ports and stays down (``dlc-classreg``):
  the hub, root engines and rootless engines (through slirp4netns, which connects
  from the machine) all reach it under the same name, and one iptables rule drops
  what arrives for it on any other interface than loopback, so neither the network
  nor a learner's container reaches it.  Every learner's engine lists it in
  ``insecure-registries`` (it speaks plain HTTP, as the course's own registry does).
* **Names of their own.**  Each learner's server gets ``COURSE_REGISTRY=HOST:PORT/LOGIN``;
  the learner's ``start_registry()`` returns the classroom's registry with every name
  under ``LOGIN/``, so one learner's ``ci-demo/cache`` never overwrites another's.
* **One base for all.**  The first engine that starts imports the base image from the
  kept root filesystem and pushes it as ``HOST:PORT/library/python:3.11-slim-bookworm``;
  every later engine pulls that.  The same base on every engine is what makes one
  learner's exported cache hit on another's engine: BuildKit keys every step on the
  base's digest, and two imports of the same files are two different images.
"""
from __future__ import annotations

import ipaddress
import shutil
import subprocess

from docker.errors import DockerException

from ..config import BASE_IMAGE
from ..engine import api
from ..engine.base_image import ensure_base_image
from ..engine.registry import CourseRegistry, start_registry, stop_registry
from ..errors import SetupError
from ..statefiles import locked
from .state import Paths, Settings

#: The registry's address: on a bridge of its own with no ports, next to the
#: 10.213.N.0/24 (N >= 1) bridges of the course's private engines.
HOST = "10.213.0.1"
#: That bridge (interface names have at most 15 characters).
BRIDGE = "dlc-classreg"
#: The base image, as every learner's engine pulls it from the classroom's registry.
BASE_REPO = "library/" + BASE_IMAGE
#: Only loopback reaches HOST: the machine's own programs (hub, engines, slirp4netns) and nothing else.
_GUARD = ["INPUT", "-d", f"{HOST}/32", "!", "-i", "lo", "-j", "DROP"]


def _run(cmd: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise SetupError(f"`{' '.join(cmd)}` failed (exit {proc.returncode}): {proc.stderr.strip()}; "
                         "the classroom's registry needs `ip` and `iptables` as root.")
    return proc


def _host_only_address(progress=print) -> None:
    """Put :data:`HOST` on its bridge (made if missing, left down) and the iptables rule that guards it."""
    if f" {HOST}/" not in _run(["ip", "-o", "-4", "addr"]).stdout:
        _run(["ip", "link", "del", BRIDGE], check=False)
        _run(["ip", "link", "add", "name", BRIDGE, "type", "bridge"])
        _run(["ip", "addr", "add", f"{HOST}/32", "dev", BRIDGE])
        progress(f"the classroom's registry address {HOST} is on {BRIDGE}, a bridge with no ports: "
                 "this machine's programs reach it, no other machine does")
    if _run(["iptables", "-C", *_GUARD], check=False).returncode != 0:
        _run(["iptables", "-I", *_GUARD])


def _remove_host_only_address() -> None:
    while _run(["iptables", "-C", *_GUARD], check=False).returncode == 0:
        _run(["iptables", "-D", *_GUARD], check=False)
    _run(["ip", "link", "del", BRIDGE], check=False)


def start_class_registry(where: Paths, progress=print) -> CourseRegistry:
    """Start the classroom's registry (or find it running) on :data:`HOST`, its data in ``where.root/registry``.

    Raises:
        SetupError: the address or the registry could not be set up (the sentence says why).
    """
    if not shutil.which("iptables"):
        raise SetupError("The classroom's registry is guarded by an iptables rule, and iptables is missing: "
                         "apt-get install iptables, then run up again.")
    _host_only_address(progress)
    return start_registry(progress, folder=where.root / "registry", host=HOST)


def stop_class_registry(where: Paths, purge: bool = False) -> bool:
    """Stop the classroom's registry; with ``purge`` also delete what was pushed to it, its address and rule.

    Returns:
        Whether it was running.
    """
    was = stop_registry(remove_data=purge, folder=where.root / "registry")
    if purge:
        _remove_host_only_address()
        for lock in ("registry.json.lock", "registry-base.lock"):  # nothing runs that could hold them now
            (where.root / lock).unlink(missing_ok=True)
    return was


def address(settings: Settings) -> str | None:
    """``HOST:PORT`` of the classroom's registry when ``up --registry`` started one, else None."""
    return settings.registry or None


def learner_environment(settings: Settings, login: str) -> dict[str, str]:
    """What a learner's server needs to use the classroom's registry, under their own login."""
    where = address(settings)
    return {"COURSE_REGISTRY": f"{where}/{login}"} if where else {}


def engine_config(settings: Settings) -> dict:
    """The dockerd configuration a learner's engine adds: the registry, over plain HTTP."""
    where = address(settings)
    if where:
        ipaddress.ip_address(where.rpartition(":")[0])  # an address, never a name a learner could point elsewhere
    return {"insecure-registries": [where]} if where else {}


def share_base(cli, settings: Settings, where: Paths, progress=print) -> str:
    """Put the base image on a learner's engine from the classroom's registry, or put it there first.

    The first engine imports it from the kept root filesystem and pushes it; every later one
    pulls it.  Engines that start together take turns, so the second waits for the first push
    instead of importing a base of its own.  The registry's name is removed again, so the
    learner's ``docker images`` shows the base as the notebooks do.

    Returns:
        ``pulled``, ``pushed`` or ``present`` (the engine had it already).
    """
    if api.image_rows(cli, name=BASE_IMAGE):
        return "present"
    with locked(where.root / "registry-base"):
        return _pull_or_push_base(cli, f"{address(settings)}/{BASE_REPO}", progress)


def _pull_or_push_base(cli, ref: str, progress) -> str:
    repo, _, tag = ref.rpartition(":")
    try:
        for event in api.pull_events(cli, repo, tag):
            if event.get("error"):
                raise DockerException(event["error"])
        api.tag_image(cli, ref, *BASE_IMAGE.rsplit(":", 1))
        api.remove_image(cli, ref, noprune=True)
        progress(f"base image pulled from the classroom's registry ({ref})")
        return "pulled"
    except DockerException as exc:  # not pushed yet (the first engine of the class), or the registry is down
        why = (getattr(exc, "explanation", None) or str(exc)).splitlines()[0][:160]
        progress(f"the base is not in the classroom's registry yet ({why}); importing it")
    ensure_base_image(BASE_IMAGE, progress=progress, pull=False, cli=cli)
    api.tag_image(cli, BASE_IMAGE, repo, tag)
    try:
        for event in api.push_events(cli, repo, tag):
            if event.get("error"):
                raise SetupError(f"Pushing the base to the classroom's registry failed: {event['error']}")
    finally:
        api.remove_image(cli, ref, noprune=True)
    progress(f"base image pushed to the classroom's registry as {ref}, for the other engines")
    return "pushed"
