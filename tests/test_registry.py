"""The course's registry (course_helpers/engine/registry.py): a real docker-registry, a real engine, no fakes.

Each test runs the registry in a state folder of its own (``COURSE_STATE_DIR`` set to a
temporary folder), so a registry the course or another test run keeps on this machine is
never touched; the program itself is fetched once into the real state folder (Debian's
package, kept) and found on PATH by the tests.  The only image tags made are the test's
own ``127.0.0.1:PORT/course-test/...`` tags, removed at its end.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

import pytest

from course_helpers.engine import registry as registry_module
from course_helpers.engine.registry import (course_registry, ensure_registry_binary, registry_problem,
                                            start_registry, stop_registry)
from course_helpers.errors import SetupError

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def program() -> Path:
    """``docker-registry``: the machine's, or Debian's package fetched into the course's real state folder."""
    lines: list[str] = []
    try:
        return ensure_registry_binary(progress=lines.append)
    except Exception as exc:  # SetupError: not Debian, or no network the first time
        pytest.skip(f"no docker-registry here and it cannot be fetched: {exc}")


@pytest.fixture(scope="module")
def docker_env(engine, base) -> dict[str, str]:
    """The environment of the course's own docker client (what ``./course env`` exports), read before any
    test moves the state folder."""
    from course_helpers.engine.packages import course_release

    env = dict(os.environ)
    rel = course_release()
    if rel is not None:
        env.update(rel.client_environment())
    if not shutil.which("docker", path=env["PATH"]):
        pytest.skip("no docker client on PATH")
    return env


@pytest.fixture
def state(tmp_path: Path, monkeypatch, program: Path) -> Path:
    """A state folder of the test's own, with only ``docker-registry`` added to PATH; its registry stops at the end."""
    folder = tmp_path / "state"
    folder.mkdir()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker-registry").symlink_to(program)
    monkeypatch.setenv("COURSE_STATE_DIR", str(folder))
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    yield folder
    stop_registry(remove_data=True)


def _get(url: str):
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    return opener.open(url, timeout=5)


def _listening_addresses(port: int) -> list[str]:
    """The local addresses (hex, as /proc/net/tcp* writes them) of sockets listening on ``port``."""
    out = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, st = fields[1], fields[3]
            addr, _, hex_port = local.rpartition(":")
            if st == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                out.append(addr)
    return out


def _docker(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], env=env, capture_output=True, text=True, timeout=300)


def test_it_starts_answers_v2_on_loopback_only_and_a_second_start_reuses_it(state: Path):
    said: list[str] = []
    reg = start_registry(progress=said.append)
    assert re.fullmatch(r"127\.0\.0\.1:\d+", reg.address)
    assert reg.folder == state / "registry" and reg.data == state / "registry" / "data" and reg.data.is_dir()
    assert reg.ref("course-test/base:1") == f"{reg.address}/course-test/base:1"
    with _get(f"http://{reg.address}/v2/") as reply:
        assert reply.status == 200
        assert reply.headers["Docker-Distribution-Api-Version"] == "registry/2.0"
    assert any(reg.address in line for line in said), said
    config = (reg.folder / "config.yml").read_text()
    assert f"addr: {reg.address}" in config and str(reg.data) in config and "enabled: true" in config
    # Bound to 127.0.0.1 only: one listener, 0100007F (not 00000000, every address).
    assert _listening_addresses(reg.port) == ["0100007F"]
    assert reg.running() and course_registry() == reg
    assert reg.repositories() == [] and reg.tags("course-test/nothing") == []
    pid = reg.process().pid
    again = start_registry(progress=None)
    assert again == reg and again.process().pid == pid


def test_the_address_stays_and_a_pushed_tag_survives_a_restart(docker_env: dict[str, str], state: Path):
    from course_helpers.config import BASE_IMAGE

    reg = start_registry(progress=None)
    name = f"course-test/base-{uuid.uuid4().hex[:8]}"
    ref = reg.ref(f"{name}:1")
    try:
        assert _docker(docker_env, "tag", BASE_IMAGE, ref).returncode == 0
        pushed = _docker(docker_env, "push", ref)
        assert pushed.returncode == 0, pushed.stdout + pushed.stderr
        assert reg.tags(name) == ["1"] and name in reg.repositories()
        assert _docker(docker_env, "rmi", ref).returncode == 0  # the engine forgets the tag; the registry keeps it

        assert stop_registry() is True
        assert course_registry() is None and not reg.running()
        assert stop_registry() is False  # nothing left to stop

        again = start_registry(progress=None)
        assert again.address == reg.address
        assert again.tags(name) == ["1"]
        pulled = _docker(docker_env, "pull", ref)
        assert pulled.returncode == 0, pulled.stdout + pulled.stderr
    finally:
        _docker(docker_env, "rmi", ref)  # only the tag this test made; the base image keeps its own


def test_remove_data_removes_its_folder_and_nothing_else(state: Path):
    neighbours = [state / "registry-notes.txt", state / "engines" / "keep.json", state / "registry-server" / "x"]
    for path in neighbours:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("keep me")
    reg = start_registry(progress=None)
    pid = reg.process().pid
    (reg.data / "marker").write_text("pushed")
    assert stop_registry(remove_data=True) is True
    assert not reg.folder.exists()
    assert all(path.read_text() == "keep me" for path in neighbours)
    assert not Path(f"/proc/{pid}").exists() or "docker-registry" not in Path(f"/proc/{pid}/cmdline").read_text()
    # Started again, it is a new registry: empty, on a port of its own choice.
    fresh = start_registry(progress=None)
    assert fresh.repositories() == [] and not (fresh.data / "marker").exists()


def test_course_clean_stops_the_registry_and_removes_its_folder(state: Path, tmp_path: Path):
    reg = start_registry(progress=None)
    (state / "keep.txt").write_text("keep me")
    # No engine answers at this DOCKER_HOST: the engine's part of the clean fails with its sentence,
    # and cannot touch the shared engine; the registry's part needs no engine and comes first.
    env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"}
    done = subprocess.run([sys.executable, "-m", "course_helpers", "clean"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert "the course's registry stopped and removed" in done.stdout, done.stdout + done.stderr
    assert not reg.folder.exists()
    assert reg.process() is None and course_registry() is None
    assert (state / "keep.txt").read_text() == "keep me"
    assert "No Docker engine answers" in done.stderr  # the engine part ran after it, and said why it could not


def test_registry_problem_is_one_sentence_while_it_is_down(state: Path):
    reg = start_registry(progress=None)
    assert registry_problem(reg.address) is None
    assert registry_problem(reg.ref("course-test/cache")) is None
    assert registry_problem(f"type=registry,ref={reg.ref('course-test/cache')},mode=max") is None
    stop_registry()
    for form in (reg.address, reg.ref("course-test/cache"), f"type=registry,ref={reg.ref('course-test/cache')}"):
        problem = registry_problem(form)
        assert problem == (f"The course's registry at {reg.address} does not answer: start it with "
                           "start_registry() (or ./course setup --registry).")
    # Another address than the course's: a sentence that does not call it the course's.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        other = f"127.0.0.1:{s.getsockname()[1]}"  # bound, not listening: nothing answers
        problem = registry_problem(other)
    assert problem is not None and problem.startswith(f"The registry at {other} does not answer")
    assert problem.count(". ") == 0 and problem.endswith(".")


def test_a_kept_package_is_unpacked_again_without_the_network(tmp_path: Path, monkeypatch, program: Path):
    kept = sorted((registry_module.server_folder() / "debs").glob("docker-registry_*.deb"))
    if not kept:
        pytest.skip(f"docker-registry came from {program}, not from a package the course fetched")
    state = tmp_path / "state"
    (state / "registry-server" / "debs").mkdir(parents=True)
    shutil.copy(kept[-1], state / "registry-server" / "debs")
    monkeypatch.setenv("COURSE_STATE_DIR", str(state))
    # No docker-registry on PATH, and no apt-get either: only the kept package can give it.
    bare = tmp_path / "bin"
    bare.mkdir()
    for tool in ("dpkg-deb", "dpkg", "tar"):
        if shutil.which(tool):
            (bare / tool).symlink_to(shutil.which(tool))
    monkeypatch.setenv("PATH", str(bare))
    said: list[str] = []
    exe = ensure_registry_binary(progress=said.append)
    assert exe == state / "registry-server" / "root" / "usr" / "bin" / "docker-registry"
    assert not (state / "apt").exists()
    assert any("kept" in line for line in said), said
    assert json.loads((state / "registry-server" / "versions.json").read_text())["docker-registry"].startswith("2.8")
    version = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=30)
    assert version.returncode == 0 and "2.8" in version.stdout


def test_a_classroom_registry_in_course_registry_is_used_under_the_learners_name_and_never_stopped(
        docker_env: dict[str, str], state: Path, monkeypatch):
    """What a classroom learner's kernel does with ``COURSE_REGISTRY=HOST:PORT/LOGIN``: the course's own
    registry plays the classroom's here (a real one, a real push)."""
    from course_helpers.config import BASE_IMAGE

    classroom = start_registry(progress=None)
    learner_state = state.parent / "learner-state"
    monkeypatch.setenv("COURSE_STATE_DIR", str(learner_state))
    monkeypatch.setenv("COURSE_REGISTRY", f"{classroom.address}/dlct1")
    said: list[str] = []
    reg = start_registry(progress=said.append)
    assert reg.shared and reg.address == classroom.address and reg.namespace == "dlct1"
    assert said == [f"[course] the classroom's registry answers at {classroom.address}; your images and cache go "
                    f"under {classroom.address}/dlct1/"]
    assert not (learner_state / "registry").exists()  # it started no registry of its own
    assert course_registry() == reg
    name = f"course-test/base-{uuid.uuid4().hex[:8]}"
    ref = reg.ref(f"{name}:1")
    assert ref == f"{classroom.address}/dlct1/{name}:1"
    try:
        assert _docker(docker_env, "tag", BASE_IMAGE, ref).returncode == 0
        pushed = _docker(docker_env, "push", ref)
        assert pushed.returncode == 0, pushed.stdout + pushed.stderr
        assert reg.tags(name) == ["1"] and reg.repositories() == [name]  # its own names, without the login
        assert classroom.tags(f"dlct1/{name}") == ["1"]
        assert stop_registry(remove_data=True) is False and classroom.running()  # the instructor's, untouched
    finally:
        _docker(docker_env, "rmi", ref)
    monkeypatch.setenv("COURSE_STATE_DIR", str(state))
    stop_registry()
    monkeypatch.setenv("COURSE_STATE_DIR", str(learner_state))
    assert registry_problem(reg.ref("ci-demo/cache")) == (
        f"The classroom's registry at {classroom.address} does not answer: ask your instructor to start it "
        "(sudo ./course classroom up --registry).")
    with pytest.raises(SetupError, match=r"^The classroom's registry at .* does not answer: ask your instructor"):
        start_registry(progress=None)
    monkeypatch.setenv("COURSE_REGISTRY", "no-port-here/dlct1")
    with pytest.raises(SetupError, match="is not HOST:PORT or HOST:PORT/NAMESPACE"):
        start_registry(progress=None)
