"""The README's course command: JupyterLab on 127.0.0.1, token required, landing on the notebooks."""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, b""


def test_course_lab_serves_the_notebooks_on_loopback_with_a_token(engine, tmp_path):
    port = _free_port()
    log = tmp_path / "lab.log"
    env = dict(os.environ, COURSE_PORT=str(port))
    with open(log, "w") as out:
        proc = subprocess.Popen([str(ROOT / "course"), "lab", "--no-browser"], cwd=ROOT, env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        token = None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and token is None:
            assert proc.poll() is None, log.read_text()[-2000:]
            match = re.search(r"http://127\.0\.0\.1:%d/lab/tree/notebooks/000-check-your-setup\.ipynb\?token=(\w+)" % port,
                              log.read_text())
            token = match.group(1) if match else None
            time.sleep(0.5)
        assert token, "JupyterLab never printed its URL:\n" + log.read_text()[-2000:]
        listening = subprocess.run(["ss", "-ltn"], capture_output=True, text=True).stdout
        assert f"127.0.0.1:{port} " in listening and f"0.0.0.0:{port} " not in listening
        assert _get(f"http://127.0.0.1:{port}/api/contents/notebooks")[0] == 403  # no token, no entry
        status, body = _get(f"http://127.0.0.1:{port}/api/contents/notebooks?token={token}")
        assert status == 200
        names = {item["name"] for item in json.loads(body)["content"]}
        assert {p.name for p in (ROOT / "notebooks").glob("*.ipynb")} <= names
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
