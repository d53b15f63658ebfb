"""The Docker client every helper uses, for the engine the environment names.

One client per process, checked with a ping before use and rebuilt when the
engine went away and came back.  Which engine: ``DOCKER_HOST`` (with
``DOCKER_TLS_VERIFY`` and ``DOCKER_CERT_PATH``) when set, else the current
Docker context, else the default socket, as the docker CLI chooses
(:mod:`course_helpers.engine.endpoint`).
"""
from __future__ import annotations

import functools
import os
from typing import Any

import docker
from docker.errors import DockerException, NotFound

from ..errors import EngineUnavailable
from . import api
from .endpoint import resolve as resolve_endpoint


def where() -> str:
    """The engine's address and how it was found, for messages: ``tcp://... (context 'remote', TLS)``."""
    try:
        return resolve_endpoint().describe()
    except EngineUnavailable:
        return f"the Docker context '{os.environ.get('DOCKER_CONTEXT') or 'named in config.json'}'"


class _EngineAPI(docker.APIClient):
    """docker-py's low-level client, talking to the engine as the docker CLI does: DOCKER_* settings only.

    requests (docker-py's transport) would otherwise let ``REQUESTS_CA_BUNDLE`` or
    ``CURL_CA_BUNDLE``, which machines behind a TLS proxy set, replace the engine's
    own CA (``DOCKER_CERT_PATH/ca.pem``), so every TLS engine failed its certificate
    check (seen here); and ``HTTPS_PROXY`` would send the engine's API through the proxy.
    It must hold from the first request, the version check in the constructor.
    """

    trust_env = property(lambda self: False, lambda self, value: None)


def from_env(environment: dict[str, str] | None = None, timeout: int = 60) -> docker.DockerClient:
    """``docker.from_env()`` for the engine the environment names, deaf to requests' own settings.

    Args:
        environment: the DOCKER_* variables to use (default: the engine this process's environment
            names, ``DOCKER_HOST`` or the current Docker context, see :func:`endpoint.resolve`).
        timeout: seconds per API call.

    Raises:
        EngineUnavailable: the current Docker context does not exist.
    """
    if environment is None:
        environment = resolve_endpoint().env
    cli = docker.DockerClient.__new__(docker.DockerClient)
    cli.api = _EngineAPI(timeout=timeout, **docker.utils.kwargs_from_env(environment=environment))
    return cli


def try_client(timeout: int = 10) -> docker.DockerClient | None:
    """A connected client for the environment's engine, or None if nothing answers."""
    try:
        cli = from_env(timeout=timeout)
        cli.ping()
        return cli
    except DockerException:
        return None
    except Exception:  # requests/urllib3 errors on odd DOCKER_HOST values
        return None


@functools.lru_cache(maxsize=1)
def _cached_client() -> docker.DockerClient:
    resolve_endpoint()  # a Docker context that does not exist: its own sentence
    cli = try_client(timeout=120)
    if cli is None:
        raise EngineUnavailable(
            f"No Docker engine answers at {where()}: run ./course setup (or start Docker Desktop) "
            "and run this cell again.")
    return cli


def reset() -> None:
    """Forget the cached client (after starting an engine, or when the old connection broke)."""
    _cached_client.cache_clear()


def client() -> docker.DockerClient:
    """The Docker client every helper uses.

    Returns:
        A connected ``docker.DockerClient``.

    Raises:
        EngineUnavailable: nothing answers; the message says what to do.
    """
    try:
        cli = _cached_client()
        cli.ping()
        return cli
    except EngineUnavailable:
        raise
    except Exception:
        reset()
        return _cached_client()


def resolve(cli: docker.DockerClient | None) -> docker.DockerClient:
    """The client passed in, or the course's."""
    return cli if cli is not None else client()


@functools.lru_cache(maxsize=4)
def _engine_id(base_url: str, address: str = "") -> str:
    # ``address`` keys the cache only: every unix socket has the same base_url (http+docker://localhost).
    try:
        return str(client().info().get("ID") or base_url).replace(":", "")
    except Exception:
        return base_url


def engine_id() -> str:
    """A stable id of the engine in use (dockerd's own ID), so per-engine state never mixes engines."""
    return _engine_id(api.base_url(client()), where())


def list_images(cli: docker.DockerClient, *, name: str | None = None, all: bool = False,
                filters: dict | None = None, only: set[str] | None = None) -> list[Any]:
    """``cli.images.list(...)`` that skips an image removed while it is listed.

    docker-py lists, then inspects each image; another kernel's cleanup between the
    two made the whole call raise NotFound.  An image gone by then is simply not listed.
    Each image keeps its row's size as ``listed_size``: what ``docker image ls`` shows,
    which on the containerd store also counts the unpacked snapshot (the inspected
    ``Size`` there is the compressed content only).

    ``only``: list just these image ids.  docker-py inspects every image it lists, one call
    each; an engine with hundreds of untagged images (a learner's, or the classic builder's
    on the containerd store) made a cleanup that wanted a few of them take minutes.
    """
    out = []
    for row in api.image_rows(cli, name=name, all=all, filters=filters):
        if only is not None and row["Id"] not in only:
            continue
        try:
            image = cli.images.get(row["Id"])
        except NotFound:
            continue
        image.listed_size = int(row.get("Size") or 0)
        out.append(image)
    return out


def list_containers(cli: docker.DockerClient, **kwargs: Any) -> list[Any]:
    """``cli.containers.list(**kwargs)``, skipping containers removed while they are listed."""
    return cli.containers.list(ignore_removed=True, **kwargs)


def image_store(cli: docker.DockerClient) -> str:
    """Which image store the engine keeps images in: ``containerd`` or ``classic``.

    The containerd store (Docker Desktop since 4.34, Docker Engine 29 on fresh installs,
    the course's own Docker 28) reports its snapshotter as the storage driver's
    ``driver-type``; the classic store is overlay2 (or another graph driver) alone.
    """
    status = dict((pair[0], pair[1]) for pair in cli.info().get("DriverStatus") or [] if len(pair) == 2)
    return "containerd" if status.get("driver-type", "").startswith("io.containerd.snapshotter") else "classic"
