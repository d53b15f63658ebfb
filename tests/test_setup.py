"""Engine provisioning and the base image, on the real engine."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from course_helpers.engine import base_image
from course_helpers.config import BASE_IMAGE, session_labels
from course_helpers.errors import EngineUnavailable, SetupError


def test_dead_docker_host_gives_one_clear_sentence():
    env = dict(os.environ, DOCKER_HOST="tcp://127.0.0.1:9")  # nothing listens on the discard port
    proc = subprocess.run([sys.executable, "-m", "course_helpers", "setup"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "The engine named by DOCKER_HOST (tcp://127.0.0.1:9) does not answer" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_client_raises_engine_unavailable(monkeypatch):
    from course_helpers.engine import client as engine
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:9")
    engine.reset()
    try:
        with pytest.raises(EngineUnavailable, match="No Docker engine answers at tcp://127.0.0.1:9"):
            engine.client()
    finally:
        monkeypatch.delenv("DOCKER_HOST")
        engine.reset()


def test_ensure_base_image_is_idempotent(engine):
    lines: list[str] = []
    first = base_image.ensure_base_image(progress=lines.append)
    second = base_image.ensure_base_image(progress=lines.append)
    assert first.image_id == second.image_id
    assert lines[-1].startswith("base image present")
    assert not engine.images.list(name="python-course-staging")


def test_base_image_says_where_it_came_from(engine):
    info = base_image.describe_base()
    assert info is not None and info.origin
    img = engine.images.get(BASE_IMAGE)
    if img.labels.get(base_image.LABEL_ORIGIN):
        assert img.labels[base_image.LABEL_RECIPE] == base_image.RECIPE
        assert "io.docker-layers-course.managed" not in img.labels  # children inherit labels
        assert "Debian" in img.labels["org.opencontainers.image.description"]
        assert img.attrs["Config"]["Cmd"] == ["python3"]


def test_recreating_from_the_kept_rootfs(engine):
    """After an engine reset the base comes back from the kept tar, without debootstrap."""
    if not base_image.rootfs_tar().is_file():
        pytest.skip(f"no kept root filesystem at {base_image.rootfs_tar()} (the base image was pulled)")
    name = "course-test-base:recreate"
    lines: list[str] = []
    try:
        info = base_image.ensure_base_image(name, progress=lines.append, pull=False)
        assert any("re-using the root filesystem" in line for line in lines)
        assert "built locally" in info.origin
        out = engine.containers.run(name, ["python3", "-c", "print(6 * 7)"], remove=True, labels=session_labels())
        assert out.strip() == b"42"
    finally:
        try:
            engine.images.remove(name)
        except Exception:
            pass


def test_container_from_base_runs_python3(engine):
    out = engine.containers.run(BASE_IMAGE, ["python3", "-c", "import sys; print(sys.version_info[:2])"],
                                remove=True, labels=session_labels())
    assert out.strip() == b"(3, 11)"


def test_pip_in_a_container_fetches_a_small_package(engine):
    out = engine.containers.run(
        BASE_IMAGE, ["sh", "-c", "pip3 download --no-deps -q -d /tmp/w six==1.16.0 && ls /tmp/w"],
        remove=True, labels=session_labels())
    assert b"six-1.16.0" in out


def test_low_disk_fails_with_a_sentence_and_tags_nothing(engine, monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_STATE_DIR", str(tmp_path))
    monkeypatch.setattr(base_image, "MIN_FREE_BYTES", 10**18)
    with pytest.raises(SetupError, match=r"GB free under .*free some disk space"):
        base_image.ensure_base_image("course-test-base:nodisk", progress=None, pull=False)
    assert not engine.images.list(name="course-test-base")


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("debootstrap"), reason="needs root and debootstrap")
def test_failed_debootstrap_fails_with_a_sentence_and_tags_nothing(engine, monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_STATE_DIR", str(tmp_path))
    monkeypatch.setattr(base_image, "debian_mirror", lambda: "http://127.0.0.1:9/debian")
    with pytest.raises(SetupError, match="debootstrap failed"):
        base_image.ensure_base_image("course-test-base:broken", progress=None, pull=False)
    assert not engine.images.list(name="course-test-base")
    assert not base_image.rootfs_tar().exists()
