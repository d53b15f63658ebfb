"""Which engine the course talks to: DOCKER_HOST, then the current Docker context, then the default socket.

Contexts are real files in a temporary HOME, written as the docker CLI writes
them (one test lets the CLI itself write one and read it back); the last tests
talk to the real engine through a context that points at its socket.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from course_helpers.engine.endpoint import DEFAULT_SOCKET, app_address, resolve
from course_helpers.errors import EngineUnavailable

REAL_SOCKET = "/var/run/docker.sock"


def write_context(home: Path, name: str, host: str, tls_from: Path | None = None, skip_verify: bool = False) -> None:
    """A context as ``docker context create NAME --docker host=HOST[,ca=,cert=,key=]`` writes it."""
    digest = hashlib.sha256(name.encode()).hexdigest()
    meta = home / ".docker" / "contexts" / "meta" / digest / "meta.json"
    meta.parent.mkdir(parents=True, exist_ok=True)
    meta.write_text(json.dumps({"Name": name, "Metadata": {},
                                "Endpoints": {"docker": {"Host": host, "SkipTLSVerify": skip_verify}}}))
    if tls_from is not None:
        tls = home / ".docker" / "contexts" / "tls" / digest / "docker"
        tls.mkdir(parents=True, exist_ok=True)
        for name_ in ("ca.pem", "cert.pem", "key.pem"):
            shutil.copy(tls_from / name_, tls / name_)


def use_context(home: Path, name: str) -> None:
    """``docker context use NAME``: currentContext in config.json."""
    config = home / ".docker" / "config.json"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(json.dumps({"currentContext": name}))


def test_docker_host_wins_over_the_current_context(tmp_path):
    write_context(tmp_path, "remote", "tcp://10.9.8.7:2376")
    use_context(tmp_path, "remote")
    end = resolve({"HOME": str(tmp_path), "DOCKER_HOST": "tcp://127.0.0.1:2375", "DOCKER_CONTEXT": "remote"})
    assert (end.host, end.source, end.env) == ("tcp://127.0.0.1:2375", "DOCKER_HOST", {"DOCKER_HOST": "tcp://127.0.0.1:2375"})
    assert end.named


def test_the_current_context_in_config_json(tmp_path):
    write_context(tmp_path, "remote", "tcp://10.9.8.7:2375")
    use_context(tmp_path, "remote")
    end = resolve({"HOME": str(tmp_path)})
    assert (end.host, end.source) == ("tcp://10.9.8.7:2375", "context 'remote'")
    assert end.env == {"DOCKER_HOST": "tcp://10.9.8.7:2375"} and not end.tls


def test_docker_context_variable_wins_over_config_json_and_brings_its_tls_files(tmp_path):
    certs = tmp_path / "certs"
    certs.mkdir()
    for name in ("ca.pem", "cert.pem", "key.pem"):
        (certs / name).write_text(name)
    write_context(tmp_path, "other", "tcp://10.1.1.1:2375")
    write_context(tmp_path, "secure", "tcp://10.9.8.7:2376", tls_from=certs)
    use_context(tmp_path, "other")
    end = resolve({"HOME": str(tmp_path), "DOCKER_CONTEXT": "secure"})
    tls = tmp_path / ".docker" / "contexts" / "tls" / hashlib.sha256(b"secure").hexdigest() / "docker"
    assert end.env == {"DOCKER_HOST": "tcp://10.9.8.7:2376", "DOCKER_CERT_PATH": str(tls), "DOCKER_TLS_VERIFY": "1"}
    assert end.tls and end.describe() == "tcp://10.9.8.7:2376 (context 'secure', TLS)"
    write_context(tmp_path, "lax", "tcp://10.9.8.7:2376", tls_from=certs, skip_verify=True)
    assert resolve({"HOME": str(tmp_path), "DOCKER_CONTEXT": "lax"}).env.get("DOCKER_TLS") == "1"


def test_docker_config_names_the_config_folder(tmp_path):
    config = tmp_path / "elsewhere"
    write_context(tmp_path, "remote", "tcp://10.9.8.7:2375")
    (tmp_path / ".docker").rename(config)
    (config / "config.json").write_text(json.dumps({"currentContext": "remote"}))
    assert resolve({"HOME": "/nonexistent", "DOCKER_CONFIG": str(config)}).source == "context 'remote'"


def test_no_context_or_the_default_context_is_the_default_socket(tmp_path):
    assert resolve({"HOME": str(tmp_path)}) == resolve({"HOME": str(tmp_path), "DOCKER_CONTEXT": "default"})
    end = resolve({"HOME": str(tmp_path)})
    assert (end.host, end.source, end.env, end.named) == (DEFAULT_SOCKET, "default socket", {}, False)


def test_a_missing_context_is_one_sentence(tmp_path):
    use_context(tmp_path, "gone")
    with pytest.raises(EngineUnavailable) as err:
        resolve({"HOME": str(tmp_path)})
    text = str(err.value)
    assert "'gone'" in text and "docker context" in text and "\n" not in text


def test_the_docker_cli_reads_the_same_context_files(tmp_path):
    """The CLI itself writes a context; the course reads it back to the same endpoint and TLS folder."""
    docker = shutil.which("docker") or "/usr/bin/docker"
    if not os.path.exists(docker):
        pytest.skip("no docker CLI on this machine to write a context with")
    env = {"HOME": str(tmp_path), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    certs = tmp_path / "certs"
    certs.mkdir()
    if not shutil.which("openssl"):
        pytest.skip("no openssl to make the certificates the CLI checks")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=course-test",
                    "-keyout", str(certs / "key.pem"), "-out", str(certs / "cert.pem")], capture_output=True, check=True)
    shutil.copy(certs / "cert.pem", certs / "ca.pem")
    proc = subprocess.run([docker, "context", "create", "written", "--docker",
                           f"host=tcp://10.2.3.4:2376,ca={certs / 'ca.pem'},cert={certs / 'cert.pem'},key={certs / 'key.pem'}"],
                          env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    subprocess.run([docker, "context", "use", "written"], env=env, capture_output=True, check=True)
    end = resolve(env)
    assert (end.host, end.source) == ("tcp://10.2.3.4:2376", "context 'written'")
    assert (Path(end.env["DOCKER_CERT_PATH"]) / "ca.pem").read_text() == (certs / "ca.pem").read_text()
    shown = subprocess.run([docker, "context", "inspect", "--format", "{{.Endpoints.docker.Host}}"], env=env,
                           capture_output=True, text=True, check=True).stdout.strip()
    assert shown == end.host


def test_where_a_container_is_published():
    assert app_address("http+docker://localhost").bind == "127.0.0.1"
    assert app_address("https://127.0.0.1:2376").host == "127.0.0.1"
    assert app_address("http://localhost:2375").bind == "127.0.0.1"
    remote = app_address("https://10.20.30.40:2376")
    assert (remote.bind, remote.host) == ("10.20.30.40", "10.20.30.40")
    assert "remote engine" in remote.note


# --- the real engine, through a context --------------------------------------------------------

@pytest.fixture
def context_home(tmp_path, monkeypatch, engine):
    """A HOME whose current context points at the real engine's socket, and no DOCKER_HOST."""
    if not os.path.exists(REAL_SOCKET):
        pytest.skip(f"the engine does not listen on {REAL_SOCKET}, which this test's context names")
    from course_helpers.engine import client as client_module

    write_context(tmp_path, "course-real", f"unix://{REAL_SOCKET}")
    use_context(tmp_path, "course-real")
    for name in ("DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_CONFIG", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH"):
        monkeypatch.delenv(name, raising=False)
    from course_helpers.config import state_dir
    monkeypatch.setenv("COURSE_STATE_DIR", str(state_dir()))  # a new ~/.docker, the same course state
    monkeypatch.setenv("HOME", str(tmp_path))
    client_module.reset()
    yield tmp_path
    client_module.reset()


def test_the_sdk_and_the_build_cli_reach_the_engine_a_context_names(context_home, engine):
    from course_helpers.engine.cli import buildkit_client
    from course_helpers.engine.client import client, where

    assert "context 'course-real'" in where()
    assert client().info()["ID"] == engine.info()["ID"]
    cli = buildkit_client()
    if cli is None:
        pytest.skip("no docker CLI here can run BuildKit builds")
    env = cli.environment()
    assert env["DOCKER_HOST"] == f"unix://{REAL_SOCKET}" and "DOCKER_CONTEXT" not in env
    seen = subprocess.run([cli.path, "info", "--format", "{{.ID}}"], env=env, capture_output=True, text=True,
                          check=True).stdout.strip()
    assert seen == engine.info()["ID"]


def test_preflight_says_how_it_found_the_engine(context_home):
    from course_helpers.engine.preflight import run_checks

    lines = [c.line() for c in run_checks(port=None, pip_check=False)]
    assert f"INFO  engine found through: context 'course-real': unix://{REAL_SOCKET}" in lines


def test_setup_never_starts_a_daemon_for_an_engine_that_is_named(tmp_path, monkeypatch):
    """DOCKER_HOST or a context naming a dead engine: one sentence, and no dockerd started."""
    from course_helpers.engine.provision import _dockerd_pids, ensure_engine  # noqa: PLC2701 (test of the module)

    before = set(_dockerd_pids())
    write_context(tmp_path, "dead", f"unix://{tmp_path}/nothing.sock")
    use_context(tmp_path, "dead")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("DOCKER_CONFIG", raising=False)  # ./course gives tests the course client's own
    for env, named in ((({"DOCKER_HOST": f"unix://{tmp_path}/nothing.sock"}), "DOCKER_HOST"), ({}, "context 'dead'")):
        monkeypatch.delenv("DOCKER_HOST", raising=False)
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        with pytest.raises(EngineUnavailable) as err:
            ensure_engine(progress=None)
        assert named in str(err.value) and "\n" not in str(err.value)
    assert set(_dockerd_pids()) <= before
