"""The managed-process helper (course_helpers/engine/process.py) with real processes, no engine.

Small Python daemons stand in for dockerd, Podman's service and the hub: one
opens a unix socket after a delay, one serves HTTP, one exits at start with a
message in its log, one ignores SIGTERM, one leaves a helper process in its
session.  Each test takes a second or two at most.
"""
from __future__ import annotations

import os
import pwd
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest

from course_helpers.config import process_start
from course_helpers.engine.process import KILL_WAIT, ManagedProcess, NotReady, log_tail, wait_ready


def _script(tmp_path: Path, name: str, body: str) -> list[str]:
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(body))
    return [sys.executable, str(path)]


def _gone(pid: int) -> bool:
    """No such process, or a zombie nobody reaped (then the test reaps it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"


def _socket_answers(path: Path) -> bool:
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(1)
            sock.connect(str(path))
            return sock.recv(16) == b"pong"
    except OSError:
        return False


SOCKET_DAEMON = """
    import os, socket, sys, time
    print("starting", flush=True)
    time.sleep(float(sys.argv[2]))
    server = socket.socket(socket.AF_UNIX)
    server.bind(sys.argv[1])
    server.listen()
    print("listening on", sys.argv[1], "in", os.getcwd(), "as", os.environ.get("WHO"), flush=True)
    while True:
        conn, _ = server.accept()
        conn.sendall(b"pong")
        conn.close()
"""


def test_a_daemon_is_waited_for_until_its_socket_answers_then_stopped(tmp_path):
    sock, log = tmp_path / "d.sock", tmp_path / "d.log"
    log.write_text("an earlier run\n")
    proc = ManagedProcess.launch([*_script(tmp_path, "d", SOCKET_DAEMON), str(sock), "0.6"], log=log,
                                 env={**os.environ, "WHO": "the-test"}, cwd=tmp_path)
    assert os.getsid(proc.pid) == proc.pid  # its own session: a Ctrl-C or the kernel's end does not reach it
    assert proc.start and proc.start == process_start(proc.pid)
    started = time.monotonic()
    assert wait_ready(lambda: _socket_answers(sock), 10, process=proc, interval=0.1) is True
    assert 0.5 < time.monotonic() - started < 5
    # Appended to the log, not over it; the environment and working directory it was given.
    assert log.read_text().splitlines() == ["an earlier run", "starting",
                                            f"listening on {sock} in {tmp_path} as the-test"]
    assert proc.running()
    assert proc.stop(grace=5) is True
    assert _gone(proc.pid) and proc.returncode == -signal.SIGTERM  # reaped: no zombie left behind
    assert proc.stop(grace=5) is False  # already stopped
    assert not proc.running()


def test_an_http_server_is_ready_when_it_answers(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/"

    def status() -> int | None:
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                return reply.status
        except OSError:
            return None

    proc = ManagedProcess.launch([sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)],
                                 log=tmp_path / "http.log", cwd=tmp_path)
    try:
        assert wait_ready(status, 10, process=proc, interval=0.1) == 200  # the check's own value comes back
    finally:
        proc.stop(grace=5)
    assert status() is None


def test_a_daemon_that_exits_at_start_is_reported_at_once_with_its_log(tmp_path):
    log = tmp_path / "early.log"
    argv = _script(tmp_path, "early", """
        import sys
        print("loading config", flush=True)
        print("failed to start daemon: pid file found, ensure docker is not running", file=sys.stderr)
        sys.exit(3)
    """)
    proc = ManagedProcess.launch(argv, log=log)
    started = time.monotonic()
    with pytest.raises(NotReady) as caught:
        wait_ready(lambda: None, 30, process=proc)
    assert time.monotonic() - started < 5  # not the 30 s: the exit settles it
    assert caught.value.exited and caught.value.code == 3
    assert str(caught.value) == "exited at start (code 3)"
    assert log_tail(log, 1) == ["failed to start daemon: pid file found, ensure docker is not running"]
    assert log_tail(log, 5) == ["loading config",
                                "failed to start daemon: pid file found, ensure docker is not running"]
    assert log_tail(tmp_path / "missing.log", 3) == [] and log_tail(None, 3) == []
    assert _gone(proc.pid) and proc.stop(grace=1) is False


def test_a_daemon_that_never_answers_times_out_with_progress_notes(tmp_path):
    proc = ManagedProcess.launch(_script(tmp_path, "mute", "import time; time.sleep(60)"), log=tmp_path / "m.log")
    notes = []
    try:
        with pytest.raises(NotReady) as caught:
            wait_ready(lambda: False, 1.2, process=proc, interval=0.2, waiting=lambda: notes.append(time.monotonic()))
    finally:
        proc.stop(grace=5)
    assert not caught.value.exited and caught.value.code is None
    assert str(caught.value) == "did not answer within 1 s"
    assert len(notes) == 1  # at once, then at most every NOTE_EVERY (3) seconds


def test_without_a_process_only_the_check_and_the_time_count():
    answers = iter([None, None, "ready"])
    assert wait_ready(lambda: next(answers), 5, interval=0.01) == "ready"
    with pytest.raises(NotReady, match=r"^did not answer within 0 s$"):
        wait_ready(lambda: None, 0.2, interval=0.05)


def test_one_that_ignores_sigterm_is_killed_after_the_grace(tmp_path):
    log = tmp_path / "stubborn.log"
    argv = _script(tmp_path, "stubborn", """
        import signal, time
        signal.signal(signal.SIGTERM, lambda *a: print("ignoring SIGTERM", flush=True))
        print("up", flush=True)
        while True:
            time.sleep(0.1)
    """)
    proc = ManagedProcess.launch(argv, log=log)
    wait_ready(lambda: "up" in log.read_text(), 10, process=proc, interval=0.05)
    started = time.monotonic()
    assert proc.stop(grace=1) is True
    assert 1 <= time.monotonic() - started < 1 + KILL_WAIT
    assert proc.returncode == -signal.SIGKILL and _gone(proc.pid)
    assert "ignoring SIGTERM" in log.read_text()


HELPER_LEADER = """
    import signal, subprocess, sys, time
    if sys.argv[1] == "ignore":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the helper inherits that
    # A helper in the same session, as rootlesskit's slirp4netns or Podman's are.
    helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    print(helper.pid, flush=True)
    time.sleep(60)
"""


def _helper_pid(log: Path, proc: ManagedProcess) -> int:
    wait_ready(lambda: log.read_text().strip(), 10, process=proc, interval=0.05)
    return int(log.read_text().split()[0])


@pytest.mark.parametrize("kill_group", [True, False], ids=["kill-group", "kill-leader-only"])
def test_kill_group_takes_the_helpers_of_its_session_too(tmp_path, kill_group):
    log = tmp_path / "leader.log"
    proc = ManagedProcess.launch([*_script(tmp_path, "leader", HELPER_LEADER), "ignore"], log=log)
    helper = _helper_pid(log, proc)
    try:
        assert os.getpgid(helper) == proc.pid
        assert proc.stop(grace=0.5, kill_group=kill_group) is True
        time.sleep(0.2)
        assert _gone(proc.pid)
        assert _gone(helper) is kill_group
    finally:
        if not _gone(helper):
            os.kill(helper, signal.SIGKILL)


def test_term_group_stops_the_session_without_a_kill(tmp_path):
    log = tmp_path / "podman.log"
    proc = ManagedProcess.launch([*_script(tmp_path, "leader", HELPER_LEADER), "obey"], log=log)
    helper = _helper_pid(log, proc)
    try:
        started = time.monotonic()
        assert proc.stop(grace=10, term_group=True) is True
        assert time.monotonic() - started < 5  # SIGTERM reached both: no wait for the grace
        assert proc.returncode == -signal.SIGTERM
        time.sleep(0.2)
        assert _gone(helper)
    finally:
        if not _gone(helper):
            os.kill(helper, signal.SIGKILL)


def test_a_pidfile_names_the_process_until_its_pid_goes_to_another(tmp_path):
    pidfile = tmp_path / "svc.pid"
    proc = ManagedProcess.launch(_script(tmp_path, "svc", "import time; time.sleep(60)"), log=tmp_path / "svc.log")
    try:
        proc.write_pidfile(pidfile)
        assert pidfile.read_text() == f"{proc.pid} {proc.start}\n"
        found = ManagedProcess.from_pidfile(pidfile)
        assert found is not None and found.pid == proc.pid and found.running()
        # A start time that is not the process's: the pid was reused by a later process.
        pidfile.write_text(f"{proc.pid} 1\n")
        assert ManagedProcess.from_pidfile(pidfile) is None
        # Another program's pid file (the pid alone): trusted while it runs, or by its command line.
        pidfile.write_text(f"{proc.pid}\n")
        assert ManagedProcess.from_pidfile(pidfile).pid == proc.pid
        assert ManagedProcess.from_pidfile(pidfile, command="svc.py").pid == proc.pid
        assert ManagedProcess.from_pidfile(pidfile, command="jupyterhub") is None
        # Found by its pid file in the process that launched it, stopping it reaps it (no zombie waits out the grace).
        started = time.monotonic()
        assert ManagedProcess.from_pidfile(pidfile).stop(grace=30) is True
        assert time.monotonic() - started < 5 and not Path(f"/proc/{proc.pid}").exists()
        assert not proc.running() and proc.returncode == -signal.SIGTERM
        assert ManagedProcess.from_pidfile(pidfile) is None
    finally:
        proc.stop(grace=1)
    for text in ("", "not a pid\n"):
        pidfile.write_text(text)
        assert ManagedProcess.from_pidfile(pidfile) is None
    assert ManagedProcess.from_pidfile(tmp_path / "none.pid") is None


def test_a_process_another_one_started_is_stopped_by_its_pid(tmp_path):
    # Started by a shell that exits at once: the daemon is not this process's child.
    out = subprocess.run(["sh", "-c", f"setsid {sys.executable} -c 'import time; time.sleep(60)' "
                                      ">/dev/null 2>&1 & echo $!"], capture_output=True, text=True, check=True)
    pid = int(out.stdout)
    found = ManagedProcess.from_pid(pid, process_start(pid))
    assert found is not None and found.running()
    assert ManagedProcess.from_pid(pid, "1") is None  # recorded for an earlier process with this pid
    assert found.stop(grace=5) is True
    assert _gone(pid) and not found.running()
    assert ManagedProcess.from_pid(pid) is None


def test_an_exited_child_that_nobody_reaped_is_not_running(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    while not _gone(child.pid):
        time.sleep(0.05)
    try:
        assert Path(f"/proc/{child.pid}").exists()  # a zombie: its /proc entry stays
        assert ManagedProcess.from_pid(child.pid) is None
    finally:
        child.wait()


@pytest.mark.skipif(os.geteuid() != 0, reason="running a daemon as another user needs root")
def test_a_daemon_runs_as_the_user_it_is_given_with_none_of_roots_groups():
    nobody = pwd.getpwnam("nobody")
    python = Path("/usr/bin/python3")  # one that nobody may run (a virtual environment may be in root's home)
    if subprocess.run(["su", "nobody", "-s", "/bin/sh", "-c", f"{python} -c pass"]).returncode != 0:
        pytest.skip(f"nobody cannot run {python} here")
    with tempfile.TemporaryDirectory(prefix="course-process-") as folder:  # pytest's tmp_path is root's alone
        where = Path(folder)
        where.chmod(0o777)  # nobody reads the script and makes its socket there
        script, log, sock = _script(where, "u", SOCKET_DAEMON), where / "u.log", where / "u.sock"
        groups = os.getgroups()
        os.setgroups([*groups, 4])  # a supplementary group of root's that the daemon must not keep
        try:
            proc = ManagedProcess.launch([str(python), script[1], str(sock), "0"], log=log, cwd=where,
                                         env={"PATH": "/usr/bin:/bin", "WHO": "nobody"},
                                         user=nobody.pw_uid, group=nobody.pw_gid)
        finally:
            os.setgroups(groups)
        try:
            wait_ready(lambda: _socket_answers(sock), 10, process=proc, interval=0.1)
            status = dict(line.split(":", 1) for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines())
            assert status["Uid"].split()[0] == str(nobody.pw_uid) and status["Gid"].split()[0] == str(nobody.pw_gid)
            assert status["Groups"].split() == []
            assert sock.stat().st_uid == nobody.pw_uid
        finally:
            proc.stop(grace=5)
        assert log.read_text().splitlines() == ["starting", f"listening on {sock} in {where} as nobody"]
