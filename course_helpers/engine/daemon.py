"""A private Docker engine beside the main one: its own data root, exec root, socket and bridge.

Tests use it to run the course against an engine that is not the machine's
main one (a multi-layer stand-in base, a TLS engine, a learner's engine in a
classroom) without touching the main engine's images, cache, socket or
bridge.  Rules learnt on this machine:

* never the default bridge: a second daemon started with ``--bridge=none``
  deleted ``docker0`` when it stopped.  Each private engine gets a bridge of
  its own, made here, with a /24 of its own, and iptables left on so its
  containers (pip in builds) reach the network through the host;
* its own ``--exec-root`` (so its managed containerd is its own too), its own
  ``--pidfile`` and a ``--config-file`` of its own that says only which image
  store it uses, so nothing is shared with the main daemon;
* its binaries come from one Docker release of :mod:`.packages` (Docker 28,
  26 or 20.10, unpacked from Debian's archive), first on its PATH, so engines
  of several releases and both image stores run side by side;
* stopping removes the bridge and the iptables rules that name it, and
  nothing else;
* the chains dockerd keeps (``DOCKER``, ``DOCKER-ISOLATION-STAGE-1/2``, and
  since Docker 28 ``DOCKER-FORWARD``, ``DOCKER-CT``, ``DOCKER-BRIDGE``) are
  shared by every engine on the machine, and a dockerd that starts removes and
  re-creates them: seen here, starting a second engine took the first engine's
  rules for docker0 out of them (its isolation ``DROP`` and its hairpin
  ``RETURN``), and a Docker 28 start took another Docker 28 engine's forwarding
  rules, after which pip in that engine's builds could not resolve a name.  So
  the rules of the other engines are read before an engine starts (a private
  one, or the main one :mod:`.provision` starts) and before a private one stops,
  and the ones that went missing are put back where they were in their chain
  (an ``ACCEPT`` moved above the isolation jumps would let traffic past them).
  One machine-wide lock covers each read-start-restore, so two engines
  starting at once cannot each put back a list that misses the other's rules.

Example:
    >>> with start_private_engine("standin") as eng:          # doctest: +SKIP
    ...     eng.client().images.list()
"""
from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import docker

from ..config import state_dir
from ..errors import SetupError
from .cli import probe_all
from .client import from_env, reset as reset_client
from .endpoint import ENGINE_VARIABLES
from .packages import DEFAULT_RELEASE, Release, course_release, daemon_config, ensure_release
from .process import ManagedProcess, NotReady, wait_ready
from .streaming import Progress, say

# What points a docker client at an engine; a private engine's children get only its own.
_ENGINE_VARIABLES = (*ENGINE_VARIABLES, "DOCKER_CONFIG")
#: Seconds a dockerd may take to stop its containers before it is killed.
STOP_SECONDS = 30


@dataclass
class TLSFiles:
    """Certificates for a TLS engine, in the layout ``DOCKER_CERT_PATH`` expects (ca, cert, key .pem)."""

    folder: Path

    @property
    def env(self) -> dict[str, str]:
        return {"DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": str(self.folder)}


@dataclass
class PrivateEngine:
    """A running private dockerd.

    Attributes:
        name: short name, used in paths and the bridge name.
        host: its ``DOCKER_HOST`` (``unix://...`` or ``tcp://127.0.0.1:PORT`` with TLS).
        root: its data root (images, build cache), kept under the course's state folder.
        exec_root: its exec root (socket, pidfile, containerd state).
        bridge: the bridge interface made for it.
        process: its dockerd.
        tls: certificates when it listens on TCP with TLS.
    """

    name: str
    host: str
    root: Path
    exec_root: Path
    bridge: str
    process: ManagedProcess
    tls: TLSFiles | None = None
    log: Path | None = None
    release: Release | None = None
    store: str = "overlay2"
    _clients: list[docker.DockerClient] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        """The environment that points a docker CLI, docker-py or the course at this engine."""
        out = {"DOCKER_HOST": self.host}
        if self.tls:
            out.update(self.tls.env)
        return out

    @property
    def client_env(self) -> dict[str, str]:
        """:attr:`env` plus this release's docker client first on PATH (with its buildx), as a learner of it has."""
        return {**self.env, **(self.release.client_environment() if self.release else {})}

    def process_env(self, **extra: str) -> dict[str, str]:
        """A whole environment for a child process that uses this engine as a learner of it would.

        The parent's engine variables (DOCKER_CONFIG with the default client's buildx among them)
        are left out, so they cannot mix with this release's client.
        """
        env = {k: v for k, v in os.environ.items() if k not in _ENGINE_VARIABLES}
        return {**env, **self.client_env, **extra}

    def client(self) -> docker.DockerClient:
        """A docker-py client for this engine."""
        cli = from_env(environment=self.env, timeout=120)
        self._clients.append(cli)
        return cli

    def load_image(self, image: str) -> None:
        """Copy ``image`` from the engine the environment names into this one (``docker save | docker load``).

        Raises:
            SetupError: either side failed (the message has the CLI's words).
        """
        from .endpoint import resolve

        docker = str(self.release.bin / "docker") if self.release else (shutil.which("docker") or "/usr/bin/docker")
        save = subprocess.Popen([docker, "save", image], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=resolve().cli_environment())
        load = subprocess.run([docker, "load", "-q"], stdin=save.stdout, capture_output=True, text=True,
                              env=resolve(self.env).cli_environment())
        assert save.stdout is not None and save.stderr is not None
        save.stdout.close()
        saved_err = save.stderr.read().decode(errors="replace").strip()
        if save.wait() != 0 or load.returncode != 0:
            raise SetupError(f"Copying {image} into the private engine '{self.name}' failed: "
                             f"{saved_err or load.stderr.strip()}")

    def stop(self, wipe: bool = False) -> None:
        """Stop the daemon, remove its bridge and its iptables rules; with ``wipe`` also its data root."""
        for cli in self._clients:
            try:
                cli.close()
            except Exception:
                pass
        with keeping_other_engines_rules(self.bridge):
            self.process.stop(STOP_SECONDS)
        _remove_bridge(self.bridge)
        shutil.rmtree(self.exec_root, ignore_errors=True)
        if wipe:
            shutil.rmtree(self.root, ignore_errors=True)

    @contextlib.contextmanager
    def in_use(self) -> Iterator["PrivateEngine"]:
        """Make it the course's engine for a while, as for a learner of its release.

        ``DOCKER_HOST`` names it and its release's docker client comes first on PATH (with its
        buildx), so builds, the API and the CLI commands all go to it; the environment this
        process had, and its clients, come back at the end.
        """
        names = {*self.client_env, *_ENGINE_VARIABLES}
        saved = {name: os.environ.get(name) for name in names}
        for name in names:
            os.environ.pop(name, None)
        os.environ.update(self.client_env)
        reset_client()
        probe_all.cache_clear()  # which docker client builds depends on PATH
        try:
            yield self
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
            reset_client()
            probe_all.cache_clear()

    def __enter__(self) -> "PrivateEngine":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _run(cmd: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise SetupError(f"`{' '.join(cmd)}` failed (exit {proc.returncode}): {proc.stderr.strip()}")
    return proc


def _free_subnet() -> ipaddress.IPv4Network:
    """A /24 in 10.213.0.0/16 that no interface on this machine uses."""
    used = _run(["ip", "-o", "-4", "addr"]).stdout
    for n in range(1, 255):
        net = ipaddress.IPv4Network(f"10.213.{n}.0/24")
        if f" 10.213.{n}." not in used:
            return net
    raise SetupError("No free 10.213.x.0/24 subnet for a private engine's bridge: remove stale crs-br-* bridges.")


def _make_bridge(name: str) -> ipaddress.IPv4Network:
    _remove_bridge(name)
    net = _free_subnet()
    gateway = next(net.hosts())
    _run(["ip", "link", "add", "name", name, "type", "bridge"])
    _run(["ip", "addr", "add", f"{gateway}/{net.prefixlen}", "dev", name])
    _run(["ip", "link", "set", name, "up"])
    return net


def _remove_bridge(name: str) -> None:
    """Delete the bridge and every iptables rule that names it (rules of the main engine stay)."""
    for table in ("filter", "nat"):
        rules = _run(["iptables", "-t", table, "-S"], check=False).stdout.splitlines()
        for rule in rules:
            if rule.startswith("-A ") and re.search(rf"(^|\s){re.escape(name)}(\s|$)", rule):
                _run(["iptables", "-t", table, "-D", *rule[3:].split()], check=False)
    _run(["ip", "link", "del", name], check=False)


#: Machine-wide, whichever checkout or HOME starts the engine: /run is the machine's.
RULES_LOCK = Path("/run/lock/docker-layers-course-iptables.lock")


def _shared(rule: str) -> bool:
    """A rule of dockerd's shared chains (``DOCKER*``), or FORWARD's jump into one (20.10's isolation jump)."""
    return bool(re.match(r"-A DOCKER\S* ", rule) or re.match(r"-A FORWARD (.* )?-j DOCKER\S*$", rule))


def docker_chain_rules() -> dict[str, list[str]]:
    """The rules of dockerd's shared chains, per table, in order, as ``iptables -S`` prints them."""
    if not shutil.which("iptables"):
        return {}
    return {table: [rule for rule in _run(["iptables", "-t", table, "-S"], check=False).stdout.splitlines()
                    if _shared(rule)]
            for table in ("filter", "nat")}


def _chain(rule: str) -> str:
    return rule.split()[1]


def restore_rules(before: dict[str, list[str]], bridge: str) -> list[str]:
    """Put back the rules of other engines that a dockerd's start or stop removed, each where it was.

    A missing rule goes right after the rule that preceded it in ``before`` and is
    still there (or first in its chain), so the order within each chain is kept.

    Args:
        before: :func:`docker_chain_rules` read before the start (or the stop).
        bridge: the bridge of the engine that started or stopped: rules naming it are its own and
            are not put back.

    Returns:
        The rules put back, as ``table: rule``.
    """
    now = docker_chain_rules()
    restored = []
    for table, rules in before.items():
        current = list(now.get(table, []))
        after: dict[str, int] = {}  # chain -> how many of its current rules the next missing one goes after
        for rule in rules:
            chain = _chain(rule)
            in_chain = [r for r in current if _chain(r) == chain]
            if rule in in_chain:
                after[chain] = in_chain.index(rule) + 1
                continue
            if (re.search(rf"(^|\s){re.escape(bridge)}(\s|$)", rule)
                    or re.fullmatch(r"-A \S+ -j RETURN", rule)):  # a chain's last rule: dockerd makes it
                continue
            position = after.get(chain, 0) + 1
            spec = rule[3:].partition(" ")[2]
            if _run(["iptables", "-t", table, "-I", chain, str(position), *shlex.split(spec)],
                    check=False).returncode != 0:
                continue  # e.g. a chain that no longer exists
            at = current.index(in_chain[position - 2]) + 1 if position > 1 else (
                current.index(in_chain[0]) if in_chain else len(current))
            current.insert(at, rule)
            after[chain] = position
            restored.append(f"{table}: {rule}")
    return restored


@contextlib.contextmanager
def keeping_other_engines_rules(bridge: str):
    """Around an engine's start or stop: read the shared chains, and afterwards put back what went missing.

    Holds :data:`RULES_LOCK`, so another engine's start or stop waits (never nest these).

    Args:
        bridge: that engine's bridge (its own rules are not put back).

    Yields:
        A list that holds, after the block, the rules put back (``table: rule``).
    """
    RULES_LOCK.parent.mkdir(parents=True, exist_ok=True)
    with open(RULES_LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            before = docker_chain_rules()
            restored: list[str] = []
            try:
                yield restored
            finally:
                restored.extend(restore_rules(before, bridge))
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _make_tls(folder: Path) -> TLSFiles:
    """A throw-away CA, a server certificate for 127.0.0.1 and a client certificate (openssl)."""
    folder.mkdir(parents=True, exist_ok=True)
    if not all((folder / f).exists() for f in ("ca.pem", "cert.pem", "key.pem", "server-cert.pem", "server-key.pem")):
        sh = f"""set -e
cd {folder}
openssl genrsa -out ca-key.pem 2048 2>/dev/null
openssl req -new -x509 -days 30 -key ca-key.pem -subj /CN=course-test-ca -out ca.pem
openssl genrsa -out server-key.pem 2048 2>/dev/null
openssl req -new -key server-key.pem -subj /CN=127.0.0.1 -out server.csr
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\nextendedKeyUsage=serverAuth\\n' > server.ext
openssl x509 -req -days 30 -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -out server-cert.pem -extfile server.ext 2>/dev/null
openssl genrsa -out key.pem 2048 2>/dev/null
openssl req -new -key key.pem -subj /CN=client -out client.csr
printf 'extendedKeyUsage=clientAuth\\n' > client.ext
openssl x509 -req -days 30 -in client.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -out cert.pem -extfile client.ext 2>/dev/null
"""
        _run(["sh", "-c", sh])
    return TLSFiles(folder)


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_private_engine(name: str, *, tls: bool = False, progress: Progress | None = print,
                         timeout: float = 60, data_root: Path | None = None,
                         socket_group: str | None = None, release: str | None = None,
                         store: str | None = None, extra_config: dict | None = None) -> PrivateEngine:
    """Start a dockerd of its own beside the main engine (root on Linux only).

    Args:
        name: letters and digits, at most 8 (it names the bridge ``crs-br-<name>``).
        tls: listen on 127.0.0.1 with TLS (client certificates required) instead of a unix socket.
        progress: one line per thing done.
        timeout: seconds to wait for it to answer.
        data_root: where its images and cache live (default: under the course's state folder),
            e.g. a classroom learner's own disk.
        socket_group: the group (name or gid) that may use its unix socket, e.g. a classroom learner's.
        release: which Docker (``docker28``, ``docker26``, ``docker20``; default: the one the course
            started on the default socket, else ``docker28``), fetched from Debian's archive if needed.
        store: ``containerd`` or ``overlay2`` (default: the release's own default).
        extra_config: more dockerd configuration, e.g. a classroom registry's ``insecure-registries``.

    Returns:
        A :class:`PrivateEngine`; stop it with ``.stop()`` or use it as a context manager.

    Raises:
        SetupError: not root, no dockerd, or it did not come up (the message names its log).
    """
    if not re.fullmatch(r"[a-z0-9]{1,8}", name):
        raise SetupError(f"A private engine's name is 1 to 8 lowercase letters or digits, not {name!r}.")
    if os.geteuid() != 0:
        raise SetupError("A private engine needs root: run it as root on the course's Debian machine.")
    if release is None:
        release = (course_release() or ensure_release(DEFAULT_RELEASE, progress)).name
    rel = ensure_release(release, progress)
    store = store or rel.store
    root = state_dir() / "private-engines" / name
    exec_root = Path(f"/run/dlc-{name}")
    bridge = f"crs-br-{name}"  # interface names have at most 15 characters
    root.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(exec_root, ignore_errors=True)
    exec_root.mkdir(parents=True)
    config = root / "daemon.json"
    config.write_text(json.dumps({**daemon_config(rel, store), **(extra_config or {})}))  # not /etc/docker/daemon.json: nothing shared
    net = _make_bridge(bridge)
    files = _make_tls(root / "tls") if tls else None
    if files:
        host = f"tcp://127.0.0.1:{free_port()}"
        listen = [f"--host={host}", "--tlsverify", f"--tlscacert={files.folder / 'ca.pem'}",
                  f"--tlscert={files.folder / 'server-cert.pem'}", f"--tlskey={files.folder / 'server-key.pem'}"]
    else:
        host = f"unix://{exec_root}/docker.sock"
        listen = [f"--host={host}"]
    if socket_group is not None:
        listen.append(f"--group={socket_group}")
    log = root / "dockerd.log"
    cmd = [str(rel.bin / "dockerd"), f"--config-file={config}", f"--data-root={data_root or root / 'data'}", f"--exec-root={exec_root}",
           f"--pidfile={exec_root / 'dockerd.pid'}", f"--bridge={bridge}", "--log-level=warn", *listen]
    say(progress, f"starting a private engine '{name}' (Docker from {rel.suite}, {store} store; {host}, "
                  f"bridge {bridge} {net}, data in {root})")
    env = dict(os.environ, PATH=f"{rel.bin}{os.pathsep}{os.environ.get('PATH', '')}")  # its containerd, runc, tini
    with keeping_other_engines_rules(bridge) as restored:  # its start re-creates the shared chains without them
        process = ManagedProcess.launch(cmd, log=log, env=env)
        engine = PrivateEngine(name, host, root, exec_root, bridge, process, files, log, rel, store)
        try:
            version, problem = wait_ready(lambda: _version(engine), timeout, process=process), None
        except NotReady as exc:  # it exited, or did not answer in time
            version, problem = None, exc
            process.stop(STOP_SECONDS)
    if version is None:
        _remove_bridge(bridge)
        shutil.rmtree(exec_root, ignore_errors=True)
        raise SetupError(f"The private engine '{name}' {problem}; read {log}.")
    if restored:
        say(progress, f"put back {len(restored)} iptables rules of other engines that its start removed")
    say(progress, f"private engine '{name}' answers: Docker {version}")
    return engine


def _version(engine: PrivateEngine) -> str | None:
    """Its Docker version once it answers, else None."""
    try:
        cli = engine.client()
        cli.ping()
        return cli.version().get("Version", "?")
    except Exception:  # DockerException, or requests' errors while its socket does not exist yet
        return None


def stop_private_engine(name: str, timeout: float = STOP_SECONDS, *, wipe: bool = False) -> bool:
    """Stop a private engine by its name, from any process (not only the one that started it).

    Reads its pidfile, stops it as :meth:`PrivateEngine.stop` does, and removes its
    bridge, its iptables rules and its exec root; its data root stays unless ``wipe``
    (the default data root only: a classroom learner's disk is never wiped here).

    Returns:
        Whether it was running.
    """
    exec_root = Path(f"/run/dlc-{name}")
    with keeping_other_engines_rules(f"crs-br-{name}"):
        process = ManagedProcess.from_pidfile(exec_root / "dockerd.pid")  # dockerd writes it (--pidfile)
        was = process is not None and process.stop(timeout)
    _remove_bridge(f"crs-br-{name}")
    shutil.rmtree(exec_root, ignore_errors=True)
    if wipe:
        shutil.rmtree(state_dir() / "private-engines" / name, ignore_errors=True)
    return was
