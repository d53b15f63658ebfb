"""Docker engines from Debian's archive, unpacked into a folder of the course's own.

Debian's archive serves three generations of Docker, and their binaries run on
Debian 12 without being installed:

==========  ===========  ==========================  ======================
release     suite        docker.io / buildx          containerd
==========  ===========  ==========================  ======================
docker28    sid          28.5 / 0.29 (rawjson)       2.1
docker26    trixie       26.1 / 0.13                 1.7
docker20    bookworm     20.10 (BuildKit built in)   1.6
==========  ===========  ==========================  ======================

:func:`ensure_release` fetches a release's packages with an apt configuration
of its own (its own sources list, lists and cache, under the course's state
folder), so the machine's apt state and package database stay as they were.
``apt-get download`` checks every package against the signed index, with the
machine's Debian keyring.  The packages are unpacked with ``dpkg-deb -x`` and a
folder of links (``bin/``) is what a dockerd of that release gets first on its
PATH: it finds containerd, the shim, runc and docker-init (tini) there.

Two things learnt on this machine:

* a newer suite's runc may need a newer glibc than the machine has (sid's
  needs 2.38, Debian 12 has 2.36), so runc is tried, and when it cannot run,
  the machine's own suite's runc is fetched the same way and used instead;
* the docker CLI finds buildx in ``$DOCKER_CONFIG/cli-plugins``: the release's
  ``docker-config/`` holds a link to it, and ``DOCKER_CONFIG`` is set only for
  the commands that use the course's client, so no other client changes.

Everything fetched is kept (``debs/``), so setting up again offline works.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path

from ..config import state_dir
from ..errors import SetupError
from ..statefiles import locked, write_atomic
from .streaming import Progress, run_streamed, say

KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")


@dataclass(frozen=True)
class Release:
    """One Docker engine from one Debian suite.

    Attributes:
        name: the course's name for it (``docker28``), also its folder's name.
        suite: the Debian suite it comes from.
        packages: what to fetch; their binaries end up in ``bin/``.
        store: the image store its engine uses by default: ``containerd`` or ``overlay2``.
        home: where it is unpacked, when not in the course's state folder (see :func:`place_release`).
    """

    name: str
    suite: str
    packages: tuple[str, ...]
    store: str
    home: Path | None = None

    @property
    def folder(self) -> Path:
        return self.home or state_dir() / "docker" / self.name

    @property
    def contrib(self) -> Path:
        """Debian's extras for the engine: ``dockerd-rootless.sh`` and its set-up tool."""
        return self.folder / "root" / "usr/share/docker.io/contrib"

    @property
    def bin(self) -> Path:
        """Links to dockerd, docker, containerd, the shim, runc and docker-init."""
        return self.folder / "bin"

    @property
    def docker_config(self) -> Path:
        """A ``DOCKER_CONFIG`` whose ``cli-plugins`` holds this release's buildx (if it has one)."""
        return self.folder / "docker-config"

    @property
    def has_buildx(self) -> bool:
        return "docker-buildx" in self.packages

    def client_environment(self) -> dict[str, str]:
        """What a shell needs to use this release's docker client: its bin first on PATH, and its buildx.

        Another release's bin on PATH (the course's default client, put there by ``./course env``)
        is dropped, so the client that answers is this release's, as on a machine that has only it.
        """
        others = state_dir() / "docker"
        kept = [d for d in os.environ.get("PATH", "").split(os.pathsep)
                if not (Path(d).parent.parent == others and Path(d).name == "bin")]
        env = {"PATH": os.pathsep.join([str(self.bin), *kept])}
        if self.has_buildx:
            env["DOCKER_CONFIG"] = str(self.docker_config)
        return env

    def export_line(self) -> str:
        """The one line a learner pastes into a terminal to use this release's client."""
        line = f'export PATH="{self.bin}:$PATH"'
        if self.has_buildx:
            line += f' DOCKER_CONFIG="{self.docker_config}"'
        return line

    def versions(self) -> dict[str, str]:
        """The package versions fetched (``{}`` before :func:`ensure_release`)."""
        try:
            return json.loads((self.folder / "versions.json").read_text())
        except (OSError, ValueError):
            return {}

    def ready(self) -> bool:
        return all((self.bin / name).exists() for name in ("dockerd", "docker", "containerd", "runc"))


# docker-init is tini's static build: its own package in sid, part of ``tini`` before.
RELEASES = {
    "docker28": Release("docker28", "sid", ("docker.io", "docker-cli", "docker-buildx", "containerd", "runc",
                                            "tini-static"), "containerd"),
    "docker26": Release("docker26", "trixie", ("docker.io", "docker-cli", "docker-buildx", "containerd", "runc",
                                               "tini"), "overlay2"),
    # bookworm's docker.io ships its own client, with BuildKit built in.
    "docker20": Release("docker20", "bookworm", ("docker.io", "containerd", "runc", "tini"), "overlay2"),
}
#: The engine ./course setup provides on a machine that has none: the one learners have.
DEFAULT_RELEASE = "docker28"

# Executables a dockerd looks for on its PATH, and where each package puts them.
_LINKS = {
    "dockerd": "usr/sbin/dockerd", "docker-proxy": ("usr/sbin/docker-proxy", "usr/bin/docker-proxy"),
    "docker": "usr/bin/docker", "containerd": "usr/bin/containerd",
    "containerd-shim-runc-v2": "usr/bin/containerd-shim-runc-v2", "ctr": "usr/bin/ctr",
    "runc": "usr/sbin/runc", "docker-init": ("usr/bin/tini-static", "usr/bin/tini"),
}


def release(name: str) -> Release:
    """The release called ``name``.

    Raises:
        SetupError: no such release (the message lists them).
    """
    try:
        return RELEASES[name]
    except KeyError:
        raise SetupError(f"No engine release named {name!r}: choose one of {', '.join(RELEASES)}.") from None


def debian_mirror() -> str:
    """The Debian mirror the machine's own apt uses (a classroom mirror or proxy is honoured)."""
    candidates = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for path in candidates:
        try:
            text = path.read_text()
        except OSError:
            continue
        for match in re.finditer(r"^(?:deb\s+(?:\[[^\]]*\]\s+)?|URIs:\s*)(\S+/debian)/?\s", text, re.M):
            return match.group(1)
    return "http://deb.debian.org/debian"


def machine_suite() -> str | None:
    """This machine's Debian suite (``bookworm``), from /etc/os-release; None elsewhere."""
    try:
        text = Path("/etc/os-release").read_text()
    except OSError:
        return None
    match = re.search(r"^VERSION_CODENAME=\"?(\w+)", text, re.M)
    return match.group(1) if match else None


class Apt:
    """apt-get with a configuration of its own for one suite: nothing of the machine's apt state is touched."""

    def __init__(self, suite: str):
        self.root = state_dir() / "apt" / suite
        signed = f"[signed-by={KEYRING}] " if KEYRING.is_file() else ""
        self.sources = self.root / "sources.list"
        self.options = [
            "-o", f"Dir::Etc::SourceList={self.sources}", "-o", "Dir::Etc::SourceParts=/dev/null",
            "-o", f"Dir::State::Lists={self.root / 'lists'}", "-o", f"Dir::Cache={self.root / 'cache'}",
            # Files here are root's: apt's _apt user could not write them (and says so on every fetch).
            "-o", "APT::Sandbox::User=root", "-q",
        ]
        self.line = f"deb {signed}{debian_mirror()} {suite} main\n"
        self.suite = suite

    def update(self, progress: Progress | None) -> None:
        for sub in ("lists/partial", "cache/archives/partial"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self.sources.write_text(self.line)
        run_streamed(["apt-get", *self.options, "update"], progress,
                     f"Reading Debian {self.suite}'s package index")

    def download(self, packages: tuple[str, ...], into: Path, progress: Progress | None) -> dict[str, Path]:
        """Fetch the newest version of each package into ``into``; returns ``{package: .deb}``."""
        into.mkdir(parents=True, exist_ok=True)
        for old in into.glob("*.deb"):
            old.unlink()
        proc = subprocess.Popen(["apt-get", *self.options, "download", *packages], cwd=into,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert proc.stdout is not None
        tail = []
        for line in proc.stdout:
            tail = (tail + [line.rstrip()])[-10:]
            say(progress, "  " + line.rstrip())
        if proc.wait() != 0:
            raise SetupError(f"Fetching {', '.join(packages)} from Debian {self.suite} failed: "
                             f"{tail[-1] if tail else 'no output'}. Check the network or the apt proxy "
                             "and run the set-up again.")
        found = {}
        for deb in into.glob("*.deb"):
            found[deb.name.split("_", 1)[0]] = deb
        missing = [p for p in packages if p not in found]
        if missing:
            raise SetupError(f"Debian {self.suite} did not give {', '.join(missing)}; run the set-up again.")
        return found


def _deb_version(deb: Path) -> str:
    return subprocess.run(["dpkg-deb", "-f", str(deb), "Version"], capture_output=True, text=True,
                          check=True).stdout.strip()


def _runs(executable: Path) -> bool:
    try:
        return subprocess.run([str(executable), "--version"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def unpack_debs(debs: dict[str, Path], root: Path) -> None:
    """Unpack each ``.deb`` into ``root`` (emptied first) with ``dpkg-deb -x``: nothing is installed."""
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    for deb in debs.values():
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)


def _link(rel: Release, roots: dict[str, Path]) -> None:
    """(Re)make ``bin/`` and ``docker-config/cli-plugins``; ``roots`` maps an executable to the tree holding it."""
    shutil.rmtree(rel.bin, ignore_errors=True)
    rel.bin.mkdir(parents=True)
    for name, where in _LINKS.items():
        root = roots.get(name, roots["*"])
        for relative in (where,) if isinstance(where, str) else where:
            if (root / relative).exists():
                (rel.bin / name).symlink_to(root / relative)
                break
    if rel.has_buildx:
        plugins = rel.docker_config / "cli-plugins"
        plugins.mkdir(parents=True, exist_ok=True)
        link = plugins / "docker-buildx"
        link.unlink(missing_ok=True)
        link.symlink_to(roots["*"] / "usr/libexec/docker/cli-plugins/docker-buildx")


def ensure_release(name: str = DEFAULT_RELEASE, progress: Progress | None = print) -> Release:
    """Fetch and unpack a release once; later calls only check it.

    Args:
        name: a key of :data:`RELEASES`.
        progress: one line per thing done.

    Returns:
        The release, with ``bin/`` ready and its versions recorded in ``versions.json``.

    Raises:
        SetupError: not root or no apt, the archive cannot be reached, or neither
            the release's runc nor the machine's own can run here.
    """
    rel = release(name)
    with locked(rel.folder / "versions.json"):
        if rel.ready() and rel.versions():
            return rel
        if os.geteuid() != 0 or not shutil.which("apt-get") or not shutil.which("dpkg-deb"):
            raise SetupError(f"Fetching Docker {name[6:]} from Debian's archive needs root, apt-get and "
                             "dpkg-deb: run ./course setup as root on Debian, or start an engine of your own.")
        say(progress, f"fetching Docker from Debian {rel.suite} into {rel.folder} (nothing is installed)")
        apt = Apt(rel.suite)
        apt.update(progress)
        debs = apt.download(rel.packages, rel.folder / "debs", progress)
        versions = {pkg: _deb_version(deb) for pkg, deb in sorted(debs.items())}
        unpack_debs(debs, rel.folder / "root")
        roots = {"*": rel.folder / "root"}
        runc = rel.folder / "root" / "usr/sbin/runc"
        if not _runs(runc):
            own = machine_suite()
            if own is None or own == rel.suite:
                raise SetupError(f"runc from Debian {rel.suite} cannot run on this machine, and the machine's "
                                 "own Debian suite is unknown: this engine needs a Debian machine.")
            say(progress, f"runc from {rel.suite} cannot run here (it needs a newer glibc); "
                          f"using runc from this machine's {own} instead")
            own_apt = Apt(own)
            own_apt.update(progress)
            runc_deb = own_apt.download(("runc",), rel.folder / "runc-debs", progress)
            unpack_debs(runc_deb, rel.folder / "runc-root")
            if not _runs(rel.folder / "runc-root" / "usr/sbin/runc"):
                raise SetupError(f"Neither {rel.suite}'s nor {own}'s runc runs on this machine: "
                                 "install Debian's runc package and run the set-up again.")
            roots["runc"] = rel.folder / "runc-root"
            versions["runc"] = f"{_deb_version(runc_deb['runc'])} ({own})"
        _link(rel, roots)
        write_atomic(rel.folder / "versions.json", json.dumps(versions, indent=1, sort_keys=True))
        say(progress, "fetched: " + ", ".join(f"{pkg} {ver}" for pkg, ver in versions.items()))
    return rel


def place_release(name: str, folder: Path, progress: Progress | None = print) -> Release:
    """A copy of a release in ``folder``, for users who cannot read the course's state folder (under /root).

    The packages :func:`ensure_release` fetched (and its choice of runc) are unpacked
    again there, so every file keeps the mode its package gives it; an up-to-date copy is
    only checked.

    Returns:
        The release as placed in ``folder``.

    Raises:
        SetupError: as :func:`ensure_release`.
    """
    source = ensure_release(name, progress)
    rel = replace(source, home=Path(folder))
    with locked(rel.folder / "versions.json"):
        if rel.ready() and rel.versions() == source.versions():
            return rel
        say(progress, f"unpacking Docker from {source.folder} into {rel.folder}")
        unpack_debs({deb.name: deb for deb in (source.folder / "debs").glob("*.deb")}, rel.folder / "root")
        roots = {"*": rel.folder / "root"}
        if (source.folder / "runc-root").is_dir():  # the machine's own runc, as the source has
            unpack_debs({deb.name: deb for deb in (source.folder / "runc-debs").glob("*.deb")}, rel.folder / "runc-root")
            roots["runc"] = rel.folder / "runc-root"
        _link(rel, roots)
        write_atomic(rel.folder / "versions.json", json.dumps(source.versions(), indent=1, sort_keys=True))
        (rel.folder / "versions.json").chmod(0o644)
    return rel


def daemon_config(rel: Release, store: str | None = None) -> dict:
    """The dockerd configuration for a release: its image store, and nothing else of the machine's."""
    store = store or rel.store
    if store not in ("containerd", "overlay2"):
        raise SetupError(f"An image store is 'containerd' or 'overlay2', not {store!r}.")
    if store == "containerd" and rel.name == "docker20":
        raise SetupError("Docker 20.10 has no containerd image store: use overlay2 with it.")
    return {"features": {"containerd-snapshotter": store == "containerd"}} if rel.name != "docker20" else {}


def _record_file() -> Path:
    return state_dir() / "engine.json"


def record_engine(rel: Release, version: str) -> None:
    """Note that the course started ``rel`` on the default socket (what ``./course lab`` and the client probe read)."""
    write_atomic(_record_file(), json.dumps({"release": rel.name, "engine": version, "store": rel.store,
                                             "packages": rel.versions()}, indent=1))


def course_release() -> Release | None:
    """The release the course started on the default socket, if it did and its files are still there."""
    try:
        rel = RELEASES[json.loads(_record_file().read_text())["release"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return rel if rel.ready() else None
