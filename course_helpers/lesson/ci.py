"""A CI runner of the course's own, and moving an image between engines through the course's registry.

A CI job starts on a machine whose engine has never built the project: its
build cache is empty, so every step runs, ``pip install`` included.  Here that
machine is a private engine (Docker 28, containerd store, as CI images use) that
:func:`ci_runner` starts with an empty data folder each time, beside the
learner's engine.  The two share nothing but the course's registry on
127.0.0.1 (:mod:`course_helpers.engine.registry`): cache goes there with
``build(cache_to=...)`` and comes back with ``build(cache_from=...)``; images go
there with :func:`push` and come back with :func:`pull`.

Where the learner's engine cannot export cache (Docker 20.10's builder, the
docker driver on the overlay2 store), :func:`build_exporting_cache` shows the
engine's own refusal in one sentence and falls back to inline cache
(``BUILDKIT_INLINE_CACHE=1``: the cache rides in the pushed image).
"""
from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from docker.errors import ImageNotFound

from ..builder.build import build
from ..builder.report import BuildReport
from ..config import BASE_IMAGE
from ..engine import api
from ..engine.client import client as engine_client
from ..engine.daemon import PrivateEngine, start_private_engine, stop_private_engine
from ..engine.ownership import repository_of
from ..engine.registry import shared_registry
from ..errors import BuildError, SetupError
from ..formatting import format_size
from .terminal import client_and_env

RUNNER = "runner"
RUNNER_RELEASE = "docker28"

#: What an engine says when it cannot export cache, and what fixes it.
_REFUSALS = {
    "Cache export is not supported for the docker driver":
        "the docker driver exports cache only with the containerd image store",
    "unknown flag: --cache-to": "this Docker's own BuildKit (20.10) has no --cache-to",
    "unknown flag: --cache-from": "this Docker's client has no --cache-from",
    "takes no --cache-to": "Podman builds with Buildah, whose cache lives in image repositories instead",
}


_runner: PrivateEngine | None = None


def ci_runner(progress: Callable[[str], None] | None = print) -> PrivateEngine:
    """The course's CI runner, as a new CI job finds it: a Docker 28 engine with an empty build cache.

    The first call starts a private engine (containerd store, as CI images run) and gives it the
    base image from your engine, as a runner would pull it.  Each later call in the same kernel
    empties that engine's build cache and removes its images but the base: a new job on a clean
    machine, without the seconds a new engine takes.  Use it with ``with runner.in_use():
    build(...)``; :func:`stop_ci_runner` (and ``./course clean``) stop it and remove its data.

    Raises:
        SetupError: not root on Linux (a private engine needs both); the sentence says so.
    """
    global _runner
    if _runner is not None and _runner.process.running():
        cli = _runner.client()
        if not cli.images.list(name=BASE_IMAGE):
            _runner.load_image(BASE_IMAGE)
        base = cli.images.get(BASE_IMAGE).id
        gone = [img for img in cli.images.list() if img.id != base]
        for img in gone:
            cli.images.remove(img.id, force=True)
        freed = api.prune_all_builds(cli).get("SpaceReclaimed", 0)
        if progress:
            progress(f"a new job on the runner: its build cache emptied ({format_size(freed)}) and "
                     f"{len(gone)} image(s) removed; the base image stays, as on a runner that pulled it")
        return _runner
    if os.name == "posix" and os.geteuid() != 0 and shared_registry() is not None:
        # A classroom learner: their engine is the hub's to start, and so would a runner be.
        raise SetupError("The CI runner is a second Docker engine, which only root can start, and in a classroom "
                         "your session is not root: read this chapter's stored outputs, or run it on a machine "
                         "of your own.")
    stop_ci_runner()
    if progress:
        progress("starting the runner: a Docker engine of its own beside yours, with an empty build cache "
                 "and no images, as a CI job starts")
    engine = start_private_engine(RUNNER, release=RUNNER_RELEASE, store="containerd", progress=None)
    engine.load_image(BASE_IMAGE)
    _runner = engine
    if progress:
        cli = engine.client()
        progress(f"the runner answers: Docker {cli.version()['Version']}; it has the base image "
                 f"{BASE_IMAGE} (copied from your engine) and nothing else")
    return engine


def stop_ci_runner() -> bool:
    """Stop the runner, if one runs, and remove its data. Returns whether one was running."""
    global _runner
    _runner = None
    return stop_private_engine(RUNNER, wipe=True)


def _refusal(error: BuildError) -> str | None:
    text = f"{error} {getattr(error, 'log_tail', '')}"
    for words, why in _REFUSALS.items():
        if words in text:
            return f"{words} ({why})"
    return None


@dataclass
class CacheExport:
    """How a build's cache went to the registry: exported (``--cache-to``) or inline in the image."""

    report: BuildReport
    kind: str  # "registry" or "inline"
    ref: str
    refusal: str | None = None
    pushed: list[str] = field(default_factory=list)

    @property
    def cache_from(self) -> str:
        """What the runner's build passes as ``cache_from``."""
        return f"type=registry,ref={self.ref}"

    def __str__(self) -> str:
        if self.kind == "registry":
            return f"cache exported to {self.ref} (--cache-to type=registry)"
        return (f"your engine refused to export cache: {self.refusal}. So the cache went inline instead "
                f"(--build-arg BUILDKIT_INLINE_CACHE=1), inside the image pushed as {self.ref}")

    def _repr_pretty_(self, p, cycle) -> None:  # IPython prints the sentence
        p.text(str(self))


def build_exporting_cache(context: str | Path, tag: str, ref: str, mode: str = "max",
                          **kwargs) -> CacheExport:
    """Build ``tag`` on the engine in use and put its cache in the registry at ``ref``.

    With ``--cache-to type=registry,ref=REF,mode=MODE`` where the engine can export cache; where
    it refuses, with inline cache in the image itself, pushed as ``ref`` (inline cache is always
    ``mode=min``: only the layers of the image it rides in).
    """
    try:
        report = build(context, tag, cache_to=f"type=registry,ref={ref},mode={mode}", **kwargs)
        return CacheExport(report, "registry", ref)
    except BuildError as exc:
        refusal = _refusal(exc)
        if refusal is None:
            raise
    args = {**kwargs.pop("build_args", {}), "BUILDKIT_INLINE_CACHE": "1"}
    report = build(context, tag, build_args=args, **kwargs)
    return CacheExport(report, "inline", ref, refusal, push(tag, ref, progress=None))


def _docker(*args: str, progress: Callable[[str], None] | None) -> list[str]:
    """Run the course's docker client against the engine in use; its lines, streamed."""
    docker, env = client_and_env()
    proc = subprocess.Popen([docker, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env, stdin=subprocess.DEVNULL)
    lines = []
    assert proc.stdout is not None
    for raw in proc.stdout:
        lines.append(raw.rstrip())
        if progress:
            progress(raw.rstrip())
    if proc.wait() != 0:
        raise BuildError(f"docker {' '.join(args)} failed: {lines[-1] if lines else 'no output'}")
    return lines


def push(image: str, ref: str, progress: Callable[[str], None] | None = print) -> list[str]:
    """``docker tag IMAGE REF`` and ``docker push REF``; returns the push's lines."""
    _docker("tag", image, ref, progress=None)
    return _docker("push", ref, progress=progress)


def publish(image: str, ref: str, progress: Callable[[str], None] | None = print) -> str:
    """Play the upstream project: put ``image`` in the registry as ``ref``, as a new release.

    Your engine's own ``ref`` tag stays where it was (or absent), as when Docker Hub publishes
    a release you have not pulled yet.

    Returns:
        The digest the registry now names ``ref`` by (what ``FROM ref@sha256:...`` pins).
    """
    cli = engine_client()
    try:
        before: str | None = cli.images.get(ref).id
    except ImageNotFound:
        before = None
    lines = push(image, ref, progress=None)
    repository = repository_of(ref) or ref
    if before is None:
        api.remove_image(cli, ref, noprune=True)  # only the name: the release keeps its own
    else:
        api.tag_image(cli, before, repository, ref[len(repository) + 1:] or "latest")
    digest = next((m.group(1) for m in map(_DIGEST.search, lines) if m), "")
    if progress:
        progress(f"published {image} as {ref} ({digest[:19]}…); your engine's {ref} is "
                 + (f"still {before[:19]}…" if before else "not on it"))
    return digest


_DIGEST = re.compile(r"digest: (sha256:[0-9a-f]{64})")


@dataclass
class Pull:
    """What ``docker pull`` fetched and what it skipped because the engine had it already."""

    ref: str
    layers: list[str]
    had: list[str]
    lines: list[str]
    compared: bool = True  # False: pulled with compare=False, ``had`` not looked for

    @property
    def fetched(self) -> list[str]:
        return [layer for layer in self.layers if layer not in self.had]

    def __str__(self) -> str:
        if not self.compared:
            return f"{self.ref}: pulled, {len(self.layers)} layers (not compared with what the engine had)"
        return (f"{self.ref}: {len(self.layers)} layers; {len(self.had)} already on this engine "
                f"(not downloaded), {len(self.fetched)} downloaded")

    def _repr_pretty_(self, p, cycle) -> None:
        p.text(str(self))


def pull(ref: str, progress: Callable[[str], None] | None = print, *, compare: bool = True) -> Pull:
    """``docker pull REF`` on the engine in use, and which of its layers that engine had already.

    The layers are compared by diff id (the digest of a layer's uncompressed content), so the
    answer is the engine's, not a reading of the pull's progress text.  That means inspecting
    every image first (a second or more on an engine with a hundred images): ``compare=False``
    only pulls, when what matters is that the tag moved.
    """
    cli = engine_client()
    had = ({layer for img in cli.images.list() for layer in api.inspect_image_raw(cli, img.id)["RootFS"].get("Layers", [])}
           if compare else set())
    lines = _docker("pull", ref, progress=progress)
    layers = (api.inspect_image_raw(cli, ref).get("RootFS") or {}).get("Layers") or []
    if not layers:
        # The containerd store leaves an image "not available" (no layer list) when a layer's
        # compressed blob is missing though its unpacked snapshot is there (a base loaded from a
        # classic-store save): then the pull's own words say which layers it skipped.
        status = {m.group(1): m.group(2) for m in map(_LAYER_STATUS.match, lines) if m}
        layers = list(status)
        had = {layer for layer, word in status.items() if word == "Already exists"}
    return Pull(ref, layers, [layer for layer in layers if layer in had], lines, compare)


_LAYER_STATUS = re.compile(r"^([0-9a-f]{12}): (Already exists|Pull complete)$")


__all__ = ["CacheExport", "Pull", "build_exporting_cache", "ci_runner", "publish", "pull", "push",
           "stop_ci_runner"]
