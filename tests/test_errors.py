"""Each class of learner error ends in one sentence naming the real cause, on the real engine."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path

import pytest

from course_helpers.config import BASE_IMAGE

pytestmark = pytest.mark.builds  # full tier: the notebooks show these facts in the quick one

ROOT = Path(__file__).resolve().parent.parent
BUILDERS = ["buildkit", "classic"]


def _context(tmp_path: Path, dockerfile: bytes | str) -> Path:
    ctx = tmp_path / uuid.uuid4().hex[:8]
    ctx.mkdir()
    data = dockerfile.encode() if isinstance(dockerfile, str) else dockerfile
    (ctx / "Dockerfile").write_bytes(data)
    return ctx


@pytest.mark.parametrize("builder", BUILDERS)
def test_a_capitalised_tag_says_lowercase_and_how(engine, base, tmp_path, builder):
    from course_helpers import InvalidName, build

    ctx = _context(tmp_path, f"FROM {BASE_IMAGE}\n")
    with pytest.raises(InvalidName) as info:
        build(ctx, "Flask-Demo:First", builder=builder, progress=False)
    assert "'flask-demo:First'" in str(info.value) and "capital" in str(info.value)
    assert "\n" not in str(info.value)


def test_tag_refuses_a_bad_name_in_one_sentence(engine, base):
    from course_helpers import InvalidName, tag

    with pytest.raises(InvalidName, match="not a valid image name"):
        tag(BASE_IMAGE, "no spaces:allowed")


@pytest.mark.parametrize("builder", BUILDERS)
def test_a_dockerfile_that_is_not_utf8_builds_as_docker_builds_it(engine, base, tmp_path, builder):
    from course_helpers import BuildError, build

    mark = uuid.uuid4().hex[:8]
    ctx = _context(tmp_path, f"FROM {BASE_IMAGE}\n# caf\xe9\nRUN echo caf\xe9 {mark} > /x\n".encode("latin-1"))
    tag = f"ct-latin1-{uuid.uuid4().hex[:6]}:{builder}"
    try:
        if builder == "buildkit" and int(engine.version()["Version"].split(".")[0]) >= 28:
            # Docker 28's BuildKit refuses such a file (older ones read bad bytes as U+FFFD): one sentence.
            with pytest.raises(BuildError) as info:
                build(ctx, tag, builder=builder, progress=False)
            assert str(info.value).startswith(f"The Dockerfile {ctx / 'Dockerfile'} is not UTF-8 text (line 2 is "
                                              "not), and this engine's BuildKit refuses it: save it as UTF-8")
            return
        report = build(ctx, tag, builder=builder, progress=False)
        assert report.ran_steps and report.ran_steps[-1].startswith("RUN echo caf")
    finally:
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True)


def test_a_port_out_of_range_is_one_sentence(engine, base):
    from course_helpers import CourseError, run_app

    with pytest.raises(CourseError, match=r"port=99999 is not a TCP port: use a whole number from 1 to 65535"):
        with run_app(BASE_IMAGE, port=99999):
            pass


def test_a_classic_failure_counts_steps_as_the_dockerfile_does(engine, base, tmp_path):
    from course_helpers import BuildError, build

    ctx = _context(tmp_path, f"FROM {BASE_IMAGE}\nRUN exit 3\n")
    with pytest.raises(BuildError) as info:
        build(ctx, f"ct-fail-{uuid.uuid4().hex[:6]}:x", builder="classic", progress=False)
    # The builder itself says "Step 2/4": it counts the LABEL steps the session labels add.
    assert str(info.value).startswith("Step 2/2 `RUN exit 3` failed with exit code 3")


def _python(code: str, **env: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, **env})


def test_no_engine_before_a_build_says_so(tmp_path):
    ctx = _context(tmp_path, f"FROM {BASE_IMAGE}\n")
    proc = _python(f"""
        from course_helpers import build, EngineUnavailable
        try:
            build({str(ctx)!r}, "x:y", builder="classic", progress=False)
        except EngineUnavailable as exc:
            print("SAID", exc)
        """, DOCKER_HOST=f"unix://{tmp_path}/nothing.sock")
    out = proc.communicate(timeout=120)[0]
    assert "SAID No Docker engine answers at unix://" in out, out
    assert "Traceback" not in out


class _Proxy:
    """A unix socket in front of the real engine's, which the test can pull out mid-build."""

    def __init__(self, path: Path, target: str = "/var/run/docker.sock"):
        self.path, self.target, self.pairs = path, target, []
        self.server = socket.socket(socket.AF_UNIX)
        self.server.bind(str(path))
        self.server.listen(16)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX)
            upstream.connect(self.target)
            self.pairs.append((conn, upstream))
            for a, b in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a, b):
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def pull_out(self):
        self.server.close()
        self.path.unlink(missing_ok=True)
        for a, b in self.pairs:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                    s.close()
                except OSError:
                    pass


def test_an_engine_that_stops_mid_build_is_not_blamed_on_the_dockerfile(engine, base, tmp_path):
    ctx = _context(tmp_path, f"FROM {BASE_IMAGE}\nRUN echo start {uuid.uuid4().hex} && sleep 6\n")
    proxy = _Proxy(tmp_path / "engine.sock")
    proc = _python(f"""
        from course_helpers import build, CourseError
        try:
            build({str(ctx)!r}, "ct-stopped:x", builder="classic")
        except CourseError as exc:
            print("SAID", type(exc).__name__, exc)
        """, DOCKER_HOST=f"unix://{tmp_path}/engine.sock")
    assert proc.stdout is not None
    for line in proc.stdout:
        if "sleep 6" in line:
            break
    time.sleep(1)
    proxy.pull_out()
    out = proc.communicate(timeout=120)[0]
    assert "SAID EngineUnavailable The Docker engine stopped answering while building ct-stopped:x" in out, out
    assert "fix the instruction" not in out and "Traceback" not in out


def test_an_interrupt_stops_the_whole_build(engine, base, tmp_path):
    """SIGINT to the kernel process alone: the docker CLI under it must not build on and tag later."""
    from course_helpers.engine.cli import buildkit_client

    if buildkit_client() is None:
        pytest.skip("no docker client here can run BuildKit builds (the CLI path is what this pins)")
    tag = f"ct-interrupted-{uuid.uuid4().hex[:6]}:x"
    ctx = _context(tmp_path, f"FROM {BASE_IMAGE}\nRUN echo {uuid.uuid4().hex} && sleep 8\n")
    proc = _python(f"""
        from course_helpers import build
        try:
            build({str(ctx)!r}, {tag!r}, builder="buildkit")
        except KeyboardInterrupt:
            print("INTERRUPTED", flush=True)
        """)
    assert proc.stdout is not None
    for line in proc.stdout:
        if "sleep 8" in line:
            break
    proc.send_signal(signal.SIGINT)  # the process only, as a kernel interrupt does
    out = proc.communicate(timeout=60)[0]
    assert "INTERRUPTED" in out, out
    time.sleep(12)  # past the moment the orphan would have finished and tagged
    assert subprocess.run(["docker", "image", "inspect", tag], capture_output=True).returncode != 0
    left = subprocess.run(["pgrep", "-f", f"-t {tag}"], capture_output=True, text=True).stdout
    assert not left.strip(), f"a docker build process outlived the interrupt: {left}"
