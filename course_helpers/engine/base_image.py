"""Make sure the course's base image exists: present, pulled, or built from Debian packages.

On a machine with Docker Hub the base is the official image.  Where no
registry answers (this project's CI, an offline classroom) it is built from
Debian bookworm packages with debootstrap, made to behave like the official
image where the course relies on it (pip installs system-wide, python3 is the
CMD), and labelled so that nobody mistakes it for the Hub image.

:func:`release_base` makes a stand-in for a new upstream release of the base under a name of
the lesson's own, so that a lesson can move a base's tag as a registry does.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import os
import io
import shutil
import tarfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import docker
from docker.errors import APIError, ImageNotFound

from ..config import BASE_IMAGE, LABEL_PREFIX, state_dir
from ..errors import CourseError, SetupError, check_image_name
from ..statefiles import locked
from . import api, ownership
from .client import resolve
from .packages import debian_mirror
from .streaming import Progress, run_streamed, say

SUITE = "bookworm"
PACKAGES = "python3,python3-pip,python3-venv,ca-certificates"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
LABEL_ORIGIN = f"{LABEL_PREFIX}.base.origin"
LABEL_RECIPE = f"{LABEL_PREFIX}.base.recipe"
LABEL_RELEASE = f"{LABEL_PREFIX}.base.release"  # release_base(): which release of the base this is
LABEL_RELEASED_FROM = f"{LABEL_PREFIX}.base.released-from"  # ... and the id of the image it was made from
RELEASE_FILE = "/etc/course-base-release"
RECIPE = "2"  # bump when _customise() or the import's changes change; older local bases are re-imported
MIN_FREE_BYTES = 1_500_000_000  # debootstrap tree + tar + image, with room to spare


@dataclass(frozen=True)
class BaseImageInfo:
    """Which base image the course uses and where it came from."""

    name: str
    image_id: str
    origin: str  # "present", "pulled from a registry", "built locally from Debian packages", ...
    size: int

    def __str__(self) -> str:
        return f"{self.name} ({self.image_id[7:19]}, {self.size / 1e6:.0f} MB): {self.origin}"


def rootfs_tar() -> Path:
    """The exported root filesystem kept so that re-creating the image takes seconds."""
    return state_dir() / "base" / f"debian-{SUITE}-python3.tar"


def describe_base(name: str = BASE_IMAGE, cli: "docker.DockerClient | None" = None) -> BaseImageInfo | None:
    """The base image as the engine has it now, or None if absent."""
    try:
        img = resolve(cli).images.get(name)
    except ImageNotFound:
        return None
    labels = img.labels or {}
    if labels.get(LABEL_ORIGIN):
        origin = labels[LABEL_ORIGIN]
    elif img.attrs.get("RepoDigests"):
        origin = "pulled from a registry (" + img.attrs["RepoDigests"][0].split("@")[0] + ")"
    else:
        origin = "present on the engine (origin unknown)"
    return BaseImageInfo(name, img.id, origin, img.attrs.get("Size", 0))


def _outdated_local_build(name: str, cli: "docker.DockerClient") -> bool:
    labels = cli.images.get(name).labels or {}
    return LABEL_ORIGIN in labels and labels.get(LABEL_RECIPE) != RECIPE


def _try_pull(name: str, progress: Progress | None, cli: "docker.DockerClient") -> bool:
    say(progress, f"pulling {name} ...")
    repo, _, tag = name.rpartition(":")
    try:
        last = ""
        for event in api.pull_events(cli, repo, tag):
            status = event.get("status", "")
            if event.get("error"):
                raise APIError(event["error"])
            if status and status != last and "Downloading" not in status and "Extracting" not in status:
                say(progress, f"  {status} {event.get('id', '')}".rstrip())
                last = status
        return True
    except Exception as exc:  # no route, no registry, auth: all mean "build it here"
        reason = (getattr(exc, "explanation", None) or str(exc)).splitlines()[0]
        reason = reason.split(": ")[-1][:120]  # the innermost cause, e.g. "no route to host"
        say(progress, f"  no registry answered ({reason}); the base image will be built locally")
        return False


def _ensure_debootstrap(progress: Progress | None) -> None:
    if shutil.which("debootstrap"):
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise SetupError(
            f"{BASE_IMAGE} cannot be pulled and this machine cannot build it (needs root and apt-get "
            f"for debootstrap): connect to Docker Hub once and run `docker pull {BASE_IMAGE}`.")
    # A new machine's package lists may be empty or stale.
    run_streamed(["apt-get", "update", "-q"], progress, "apt-get update")
    run_streamed(["apt-get", "install", "-y", "-q", "debootstrap"], progress, "Installing debootstrap")


def _customise(root: Path) -> None:
    """Make the Debian tree behave like the official image where the course needs it."""
    # PEP 668: Debian refuses system-wide pip installs; the official image has no such marker.
    for marker in root.glob("usr/lib/python3*/EXTERNALLY-MANAGED"):
        marker.unlink()
    # Trust what the host trusts, so pip works behind a TLS-inspecting proxy.
    if HOST_CA_BUNDLE.is_file():
        shutil.copyfile(HOST_CA_BUNDLE, root / "etc/ssl/certs/ca-certificates.crt")
    for name, target in (("python", "/usr/bin/python3"), ("pip", "/usr/bin/pip3")):
        link = root / "usr/local/bin" / name
        if not link.exists():
            link.symlink_to(target)
    # Package lists and downloaded .debs are not part of a slim image.
    for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for item in (root / junk).glob("*"):
            if item.is_file():
                item.unlink()


def _build_rootfs(progress: Progress | None) -> Path:
    target = rootfs_tar()
    target.parent.mkdir(parents=True, exist_ok=True)
    # Two set-ups at once (a classroom, a second clone) must not debootstrap into one folder.
    with locked(target):
        if target.is_file():
            say(progress, f"another set-up made {target} meanwhile; re-using it")
            return target
        return _debootstrap(target, progress)


def _debootstrap(target: Path, progress: Progress | None) -> Path:
    free = shutil.disk_usage(target.parent).free
    if free < MIN_FREE_BYTES:
        raise SetupError(f"Only {free / 1e9:.1f} GB free under {target.parent}; building the base image "
                         f"needs {MIN_FREE_BYTES / 1e9:.1f} GB: free some disk space and run the set-up again.")
    _ensure_debootstrap(progress)
    tree = target.parent / "rootfs.partial"
    if tree.exists():
        shutil.rmtree(tree)
    mirror = debian_mirror()
    say(progress, f"building a Debian {SUITE} root filesystem with python3 from {mirror} (about a minute)")
    try:
        run_streamed(["debootstrap", "--variant=minbase", f"--include={PACKAGES}", SUITE, str(tree), mirror],
                      progress, "debootstrap")
        _customise(tree)
        say(progress, f"packing the tree into {target}")
        partial = target.with_suffix(".tar.partial")
        with tarfile.open(partial, "w") as tar:
            for item in sorted(tree.iterdir()):
                tar.add(item, arcname=item.name)
        partial.replace(target)
    finally:
        shutil.rmtree(tree, ignore_errors=True)
    return target


def _ca_fingerprint() -> str:
    if not HOST_CA_BUNDLE.is_file():
        return "none"
    return hashlib.sha256(HOST_CA_BUNDLE.read_bytes()).hexdigest()[:12]


def _import(tar: Path, name: str, progress: Progress | None, cli: "docker.DockerClient") -> None:
    origin = f"built locally from Debian {SUITE} packages (debootstrap), not the Docker Hub image"
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    labels = {
        "org.opencontainers.image.title": name,
        "org.opencontainers.image.description":
            f"Stand-in for {name}: Debian {SUITE} python3, pip and venv, built by the course because "
            "no registry was reachable",
        "org.opencontainers.image.base.name": f"debian:{SUITE}",
        "org.opencontainers.image.created": now,
        "org.opencontainers.image.vendor": "docker-layers-course (local build)",
        LABEL_ORIGIN: origin,
        f"{LABEL_PREFIX}.base.ca-bundle": _ca_fingerprint(),
        LABEL_RECIPE: RECIPE,
    }
    # No LABEL_MANAGED here: labels are inherited, and every image built FROM the
    # base (the learner's own included) would look like the course's to cleanup().
    changes = [
        "ENV LANG=C.UTF-8",
        "ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin",
        'CMD ["python3"]',
        "LABEL " + " ".join(f'"{k}"="{v}"' for k, v in labels.items()),
    ]
    staging = f"{name.split(':')[0]}-course-staging"
    say(progress, f"importing {tar.stat().st_size / 1e6:.0f} MB into the engine as {name}")
    try:
        with open(tar, "rb") as data:
            api.import_image(cli, data, repository=staging, tag="import", changes=changes)
        # Tag only a finished import, so a failure never leaves a half-made base under the real name.
        api.tag_image(cli, f"{staging}:import", *name.split(":"))
    finally:
        try:
            api.remove_image(cli, f"{staging}:import", noprune=True)
        except APIError:
            pass


def ensure_base_image(name: str = BASE_IMAGE, progress: Progress | None = print,
                      pull: bool = True, cli: "docker.DockerClient | None" = None) -> BaseImageInfo:
    """Make sure ``name`` exists on the engine, doing the least work that gets it there.

    In order: already present; pulled from a registry; imported from the
    kept root filesystem (seconds); built from Debian packages (about a minute).

    Args:
        name: the image the course's Dockerfiles name in FROM.
        progress: called with one line per thing done (default print).
        pull: try a registry first (the set-up turns it off when asked to stay offline).
        cli: the engine to put it on (default: the course's engine).

    Returns:
        What the engine now has under ``name`` and where it came from.

    Raises:
        EngineUnavailable: no engine answers.
        SetupError: the image could not be pulled nor built; the message says why.
    """
    cli = resolve(cli)
    info = describe_base(name, cli)
    if info is not None and _outdated_local_build(name, cli):
        say(progress, f"{name} was built locally by an older version of the course; re-creating it")
        api.remove_image(cli, name, noprune=False)
        info = None
    if info is not None:
        say(progress, f"base image present: {info}")
        return info
    if pull and _try_pull(name, progress, cli):
        info = describe_base(name, cli)
        assert info is not None
        say(progress, f"base image pulled: {info}")
        return info
    tar = rootfs_tar()
    if tar.is_file():
        say(progress, f"re-using the root filesystem kept at {tar}")
    else:
        tar = _build_rootfs(progress)
    try:
        _import(tar, name, progress, cli)
    except APIError as exc:
        raise SetupError(f"The engine refused to import the base image ({exc.explanation}); "
                         "check free disk space with `docker system df` and run the set-up again.") from exc
    info = describe_base(name, cli)
    if info is None:
        raise SetupError(f"Importing {name} reported success but the engine does not list it; "
                         "run the set-up again.")
    say(progress, f"base image ready: {info}")
    return info


def release_base(name: str, version: int, base: str = BASE_IMAGE, progress: Progress | None = print, *,
                 cli: "docker.DockerClient | None" = None, fresh: bool = False) -> str:
    """Tag as ``name`` a new "upstream release" of ``base``: the base with one small file more.

    What a registry does when it publishes ``python:3.11-slim-bookworm`` anew, in a second and
    under a name of the lesson's own: the image is ``base`` plus :data:`RELEASE_FILE` (the
    version, and when and as what it was made, so that no two releases have the same content),
    committed from a container that never runs, labelled as the course's stand-in
    (:data:`LABEL_ORIGIN`, :data:`LABEL_RELEASE`, :data:`LABEL_RELEASED_FROM`) and recorded as
    an image the course made, so that ``cleanup()`` removes it.  Calling it again with another
    version moves the tag; calling it with a version made before (of the same base, still on the
    engine) moves the tag back to that very image, same ID.

    Args:
        name: the tag to give it, e.g. ``movedbase-demo/python:3.11-slim-bookworm``; never ``base``.
        version: the release number, 1 or more.
        base: the image it is a release of.
        progress: called with one line saying what was done (default print; None: quiet).
        cli: the engine (default: the course's).
        fresh: always make a new image, never one made before: a release no build on this engine
            has used, so a lesson run a second time meets no cache of the first run's.

    Returns:
        The image ID (``sha256:...``) that ``name`` now names.

    Raises:
        CourseError: ``name`` is ``base`` itself, or not an image name, or ``version`` is below 1.
        SetupError: ``base`` is not on the engine.
    """
    check_image_name(name)
    if name == base or (":" not in name.rsplit("/", 1)[-1] and f"{name}:latest" == base):
        raise CourseError(f"release_base(): {name!r} is the base itself; give the release a name of the lesson's "
                          "own, so that the course's base stays where every other lesson expects it.")
    if not isinstance(version, int) or version < 1:
        raise CourseError(f"release_base(): version must be a whole number from 1, not {version!r}")
    cli = resolve(cli)
    try:
        base_id = cli.images.get(base).id
    except ImageNotFound:
        raise SetupError(f"{base} is not on the engine: run ./course setup, then run this cell again.") from None
    repository = ownership.repository_of(name) or name
    tag = name[len(repository) + 1:] or "latest"
    for item in [] if fresh else reversed(ownership.image_records()):
        if (item.get("release"), item.get("released_from"), item.get("tag")) == (version, base_id, name):
            try:
                image_id = cli.images.get(item["id"]).id
            except ImageNotFound:
                continue  # removed since: make it anew
            api.tag_image(cli, image_id, repository, tag)
            say(progress, f"{name} names release {version} of {base} again ({image_id[7:19]})")
            return image_id
    made = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    text = f"release {version} of {base} ({base_id})\nmade {made} as {name} ({uuid.uuid4().hex})\n".encode()
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        info = tarfile.TarInfo(RELEASE_FILE.rsplit("/", 1)[1])
        info.size, info.mode, info.mtime = len(text), 0o644, int(time.time())
        tar.addfile(info, io.BytesIO(text))
    labels = {
        LABEL_ORIGIN: f"release {version} of {base}, made by the course to stand for a new upstream release "
                      "(not a registry's image)",
        LABEL_RELEASE: str(version),
        LABEL_RELEASED_FROM: base_id,
        LABEL_RECIPE: RECIPE,
        "org.opencontainers.image.title": name,
        "org.opencontainers.image.version": str(version),
    }
    # No labels on the container: a commit keeps them in the image, and LABEL_CONTAINER must never be on one.
    container = api.create_container_raw(cli, base, command=["true"], name=f"course-release-{uuid.uuid4().hex[:12]}",
                                         labels={})
    try:
        api.put_archive(cli, container, RELEASE_FILE.rsplit("/", 1)[0], archive.getvalue())
        image_id = api.commit_container(
            cli, container, repository=repository, tag=tag, message=f"release {version} of {base} (the course's)",
            changes=["LABEL " + " ".join(f'"{k}"="{v}"' for k, v in labels.items())])
    finally:
        try:
            api.force_remove_container(cli, container)
        except APIError:
            pass
    ownership.record_image(image_id, name, release=version, released_from=base_id)
    say(progress, f"{name} now names release {version} of {base} ({image_id[7:19]}, {RELEASE_FILE} added)")
    return image_id
