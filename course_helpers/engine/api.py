"""The raw Docker Engine API calls the course makes, each in one place.

docker-py has two layers: ``docker.APIClient``, one method per endpoint that answers with
the engine's own JSON, and the models (``client.images.get(...)``) built on top of it.  The
course uses the models where they serve; where it needs what they hide (the rows as the
engine sends them, a container made without the models' defaults, an endpoint or a
parameter docker-py has no method for), it goes through the functions below, never
through ``client.api`` directly.

Every function takes the high-level ``docker.DockerClient`` and raises what docker-py
raises (``docker.errors.NotFound``, ``docker.errors.APIError``): each caller keeps its
own handling.
"""
from __future__ import annotations

from typing import IO, Any, Iterator

import docker

# ---------------------------------------------------------------- the connection


def base_url(cli: docker.DockerClient) -> str:
    """The address the client talks to (``http+docker://localhost`` for every unix socket)."""
    return cli.api.base_url


# ---------------------------------------------------------------- listing


def container_rows(cli: docker.DockerClient, filters: dict | None = None) -> list[dict[str, Any]]:
    """``GET /containers/json?all=1``: every container, stopped ones too, as the engine lists them.

    Args:
        filters: e.g. ``{"label": ["a=b"]}``.

    Returns:
        The engine's rows (``Id``, ``Names``, ``ImageID``, ``Labels``...): no inspect per container,
        so a container removed meanwhile cannot fail the call.
    """
    return cli.api.containers(all=True, filters=filters)


def image_rows(cli: docker.DockerClient, *, name: str | None = None, all: bool = False,
               filters: dict | None = None) -> list[dict[str, Any]]:
    """``GET /images/json``: the images as ``docker image ls`` lists them.

    Args:
        name: only this repository (or reference).
        all: intermediate images too.
        filters: e.g. ``{"dangling": True}``.

    Returns:
        The engine's rows (``Id``, ``RepoTags``, ``Size``...).
    """
    return cli.api.images(name=name, all=all, filters=filters)


def system_df(cli: docker.DockerClient, kind: str | None = None) -> dict[str, Any]:
    """``GET /system/df`` (``docker system df -v``), docker-py's ``df()`` with the ``type`` it lacks.

    Args:
        kind: only this part, e.g. ``"build-cache"`` (API 1.42+; older engines answer everything).

    Returns:
        The engine's answer (``BuildCache``, ``Images``...).
    """
    api = cli.api
    return api._result(api._get(api._url("/system/df"), params={"type": kind} if kind else None), True)


# ---------------------------------------------------------------- inspecting


def inspect_image_raw(cli: docker.DockerClient, ref: str, *, manifests: bool = False) -> dict[str, Any]:
    """``docker image inspect``: the engine's JSON, without a model around it.

    Args:
        ref: an image name or id.
        manifests: also ask for the manifests the image store keeps for the image (API 1.48+): on
            the containerd store an image id names an index, and ``Manifests`` lists what it
            holds, each with ``Kind`` ``image`` or ``attestation``.  Older engines and the classic
            store ignore the parameter: the answer then has no ``Manifests``.

    Raises:
        docker.errors.ImageNotFound: no such image.
    """
    if not manifests:
        return cli.api.inspect_image(ref)
    api = cli.api
    return api._result(api._get(api._url("/images/{0}/json", ref), params={"manifests": "1"}), True)


def inspect_container_raw(cli: docker.DockerClient, ref: str) -> dict[str, Any]:
    """``docker container inspect``: the engine's JSON.

    Raises:
        docker.errors.NotFound: no such container.
    """
    return cli.api.inspect_container(ref)


def image_history(cli: docker.DockerClient, ref: str) -> list[dict[str, Any]]:
    """``docker image history``: one row per history entry, newest first, as the engine sends them."""
    return cli.api.history(ref)


# ---------------------------------------------------------------- images


def build_events(cli: docker.DockerClient, **kwargs: Any) -> Iterator[Any]:
    """``POST /build``: the legacy builder (Buildah on Podman), its stream decoded event by event.

    ``kwargs`` are ``docker.APIClient.build``'s (``fileobj``, ``custom_context``, ``tag``, ``labels``, ...).
    """
    return cli.api.build(**kwargs)


def close(cli: docker.DockerClient) -> None:
    """Drop the client's connections: the engine cancels a build whose stream is closed."""
    cli.api.close()


def pull_events(cli: docker.DockerClient, repository: str, tag: str) -> Iterator[dict[str, Any]]:
    """``docker pull repository:tag``, its progress as decoded events (an ``error`` event ends a failed pull)."""
    return cli.api.pull(repository, tag=tag, stream=True, decode=True)


def export_stream(cli: docker.DockerClient, refs: list[str]) -> Any:
    """``docker save REF...``: the open response of one export of every named image (read ``.raw``; close it).

    docker-py's public ``get_image()`` exports one image; several in one request need the raw endpoint.
    """
    low = cli.api
    res = low._get(low._url("/images/get"), params={"names": refs}, stream=True)
    low._raise_for_status(res)
    return res


def push_events(cli: docker.DockerClient, repository: str, tag: str) -> Iterator[dict[str, Any]]:
    """``docker push repository:tag``, its progress as decoded events (an ``error`` event ends a failed push)."""
    return cli.api.push(repository, tag=tag, stream=True, decode=True)


def import_image(cli: docker.DockerClient, data: IO[bytes], *, repository: str, tag: str,
                 changes: list[str]) -> Any:
    """``docker image import``: a root filesystem tarball becomes an image.

    Args:
        data: the tarball, open for reading.
        repository, tag: the new image's name.
        changes: Dockerfile instructions applied to its config (``ENV``, ``CMD``, ``LABEL``).
    """
    return cli.api.import_image_from_data(data, repository=repository, tag=tag, changes=changes)


def tag_image(cli: docker.DockerClient, image: str, repository: str, tag: str | None = None) -> bool:
    """``docker image tag image repository:tag``."""
    return cli.api.tag(image, repository, tag)


def commit_container(cli: docker.DockerClient, container_id: str, *, repository: str, tag: str,
                     message: str, changes: list[str]) -> str:
    """``docker container commit``: the container's filesystem becomes an image.

    Args:
        repository, tag: the new image's name.
        message: the commit message (the new history row's comment).
        changes: Dockerfile instructions applied to its config (``LABEL``, ``ENV``, ``CMD``).

    Returns:
        The new image's id (``sha256:...``).
    """
    return cli.api.commit(container_id, repository=repository, tag=tag, message=message, changes=changes)["Id"]


def remove_image(cli: docker.DockerClient, ref: str, *, noprune: bool = False) -> Any:
    """``docker image rm ref``, never forced: the engine refuses an image a container uses.

    By name, an image with other names only loses this one.

    Args:
        noprune: keep the untagged parents.

    Raises:
        docker.errors.ImageNotFound: no such image.
        docker.errors.APIError: the engine refused (in use, or has children).
    """
    return cli.api.remove_image(ref, noprune=noprune)


def prune_builds(cli: docker.DockerClient, filters: dict) -> dict[str, Any]:
    """``docker builder prune`` with filters, e.g. ``{"id": [record_id]}``.

    Returns:
        The engine's answer (``CachesDeleted``, ``SpaceReclaimed``), ``{}`` when it sends none.
    """
    return cli.api.prune_builds(filters=filters) or {}


def prune_all_builds(cli: docker.DockerClient) -> dict[str, Any]:
    """``docker builder prune --all --force``: the whole build cache.  Only for an engine the course
    made for itself (chapter 150's runner), never a learner's."""
    return cli.api.prune_builds(all=True) or {}


# ---------------------------------------------------------------- containers


def create_container_raw(cli: docker.DockerClient, image: str, *, command: list[str], name: str,
                         labels: dict[str, str], stdin_open: bool = False,
                         auto_remove: bool | None = None) -> str:
    """``docker container create`` without the models' defaults, networking off.

    Args:
        image: what it runs.
        command: its command.
        name: the container's name (the engine refuses a taken one: APIError 409).
        labels: its labels.
        stdin_open: keep stdin open, to hold the container running while it is attached.
        auto_remove: when given, sent in a host config (``--rm``).

    Returns:
        The new container's id.

    Raises:
        docker.errors.APIError: e.g. 409 when the name is taken.
    """
    host_config = cli.api.create_host_config(auto_remove=auto_remove) if auto_remove is not None else None
    return cli.api.create_container(image, command=command, name=name, labels=labels, stdin_open=stdin_open,
                                    network_disabled=True, host_config=host_config)["Id"]


def attach_stdin(cli: docker.DockerClient, container_id: str) -> Any:
    """A socket to the container's stdin (``docker attach``): closing it ends what reads stdin."""
    return cli.api.attach_socket(container_id, params={"stdin": 1, "stream": 1})


def put_archive(cli: docker.DockerClient, container_id: str, path: str, data: bytes) -> bool:
    """``docker cp`` of a tar archive into a container (created or running), unpacked at ``path``."""
    return cli.api.put_archive(container_id, path, data)


def start_container(cli: docker.DockerClient, container_id: str) -> None:
    """``docker container start``."""
    cli.api.start(container_id)


def remove_stopped_container(cli: docker.DockerClient, container_id: str) -> None:
    """``docker container rm`` without ``--force``: the engine refuses (APIError 409) if it runs.

    Raises:
        docker.errors.NotFound: gone already.
        docker.errors.APIError: it runs (409).
    """
    cli.api.remove_container(container_id)


def force_remove_container(cli: docker.DockerClient, container_id: str) -> None:
    """``docker container rm --force``: stopped first if it runs.

    Raises:
        docker.errors.NotFound: gone already.
    """
    cli.api.remove_container(container_id, force=True)
