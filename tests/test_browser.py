"""The course in a real browser: JupyterLab in headless Chromium, driven as a learner would drive it.

Every notebook goes through JupyterLab's own "Run All Cells" without stopping
(a cell meant to raise carries Jupyter's ``raises-exception`` tag, so JupyterLab
goes on past it); in 120 a click on a layer of the explorer changes the file
tree, and in 050 a click on a quiz answer reaches the kernel.

What it needs, it sets up: Debian's ``chromium`` (apt-installed here when it
is missing, as root), Playwright for Python (a test dependency, driving that
chromium, never a browser of its own) and a JupyterLab of its own on
127.0.0.1 with a token, serving copies of the notebooks with their outputs
cleared, so neither a stored output nor an autosave can touch the repository.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))
RUN_TIMEOUT = 420  # seconds for one notebook's Run All; they take 5 to 30 s on the course machine

pytestmark = pytest.mark.slow


def _say(request: pytest.FixtureRequest, line: str) -> None:
    reporter = request.config.pluginmanager.getplugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"[browser] {line}")


@pytest.fixture(scope="session")
def chromium(request) -> str:
    """Debian's chromium; installed with apt-get when missing (the only reason to skip: it cannot be)."""
    found = shutil.which("chromium")
    if found:
        return found
    if not shutil.which("apt-get") or os.geteuid() != 0:
        pytest.skip("Debian's chromium is not installed and cannot be installed here "
                    "(needs apt-get as root): install the chromium package")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "chromium"]
    _say(request, "installing Debian's chromium with apt-get (a minute or two, once per machine) ...")
    proc = subprocess.run(install, env=env, capture_output=True, text=True)
    if proc.returncode != 0:  # an old or empty package list: refresh it once
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, text=True)
        proc = subprocess.run(install, env=env, capture_output=True, text=True)
    found = shutil.which("chromium")
    if proc.returncode != 0 or not found:
        last = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        pytest.skip(f"Debian's chromium could not be installed with apt-get: {last[0]}")
    return found


@dataclass
class Lab:
    port: int
    token: str
    root: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def api(self, path: str, method: str = "GET") -> object:
        request = urllib.request.Request(f"{self.url}{path}", method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            body = response.read()
        return json.loads(body) if body else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cleared_copy(source: Path, target: Path) -> None:
    """The notebook without outputs, counts or widget state: what it shows afterwards comes from this run."""
    nb = json.loads(source.read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
    nb["metadata"].pop("widgets", None)
    target.write_text(json.dumps(nb, indent=1))


def _write_settings(folder: Path) -> None:
    settings = {
        # Render every cell, not only those in view, so the page shows the whole notebook.
        "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
        # No question about news or updates popping up over the notebook.
        "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                          "checkForUpdates": False},
    }
    for name, value in settings.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))


@pytest.fixture(scope="module")
def lab(tmp_path_factory, request) -> Lab:
    """A JupyterLab of this test's own on 127.0.0.1, a free port and a fresh token, serving cleared copies."""
    root = tmp_path_factory.mktemp("lab")
    (root / "notebooks").mkdir()
    for name in NOTEBOOKS:
        _cleared_copy(ROOT / "notebooks" / name, root / "notebooks" / name)
    _write_settings(root / "settings")
    port, token = _free_port(), secrets.token_hex(16)
    env = {**os.environ, "JUPYTERLAB_SETTINGS_DIR": str(root / "settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(root / "workspaces"), "JUPYTER_CONFIG_DIR": str(root / "config"),
           "JUPYTER_RUNTIME_DIR": str(root / "runtime")}
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
           f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
           f"--ServerApp.root_dir={root}"]
    if os.geteuid() == 0:
        cmd.append("--allow-root")
    log = open(root / "lab.log", "w")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=root)
    server = Lab(port, token, root)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                server.api("/api/status")
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not start: {(root / 'lab.log').read_text()[-2000:]}")
                time.sleep(0.5)
        _say(request, f"JupyterLab serving cleared copies of {len(NOTEBOOKS)} notebooks on {server.url}")
        yield server
    finally:
        proc.terminate()  # the server shuts its kernels down on SIGTERM
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


class _Bridge:
    """unix socket -> JupyterLab's 127.0.0.1 port, served by this process for the browser's namespace."""

    def __init__(self, path: Path, port: int):
        import asyncio

        from browser_netns import bridge

        self.loop = asyncio.new_event_loop()

        async def start() -> None:
            await asyncio.start_unix_server(
                lambda r, w: bridge(r, w, lambda: asyncio.open_connection("127.0.0.1", port)), path=str(path))

        self.loop.run_until_complete(start())
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


def _namespaced(chromium: str, lab: Lab) -> Path:
    """A wrapper Playwright starts as the browser: Chromium in a network namespace of its own."""
    unshare = shutil.which("unshare")
    flags = ["--net"] if os.geteuid() == 0 else ["--net", "--map-root-user"]
    if not unshare or subprocess.run([unshare, *flags, "true"], capture_output=True).returncode != 0:
        pytest.skip("cannot give the browser a network namespace of its own (util-linux's unshare, as root "
                    "or with user namespaces): Docker's interface changes would abort its requests")
    wrapper = lab.root / "chromium-netns"
    wrapper.write_text("#!/bin/sh\n" + " ".join(shlex.quote(a) for a in [
        unshare, *flags, "--", sys.executable, str(Path(__file__).with_name("browser_netns.py")),
        str(lab.root / "browser.sock"), str(lab.port), chromium]) + ' "$@"\n')
    wrapper.chmod(0o755)
    return wrapper


@pytest.fixture(scope="module")
def page(chromium, lab):
    """One headless Chromium page, driven by Playwright, on Debian's chromium (in its own network namespace)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("Playwright for Python is not installed: ./course setup installs it (the test extra)")
    wrapper = _namespaced(chromium, lab)
    bridge = _Bridge(lab.root / "browser.sock", lab.port)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(wrapper), headless=True, args=["--no-sandbox"])
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            context.set_default_timeout(30_000)
            yield context.new_page()
            browser.close()
    finally:
        bridge.close()


def _session(lab: Lab, name: str) -> dict | None:
    for session in lab.api("/api/sessions"):  # type: ignore[union-attr]
        if session.get("path", "").endswith(f"notebooks/{name}"):
            return session
    return None


def _run_all(page, lab: Lab, name: str) -> None:
    """Open a notebook in a workspace of its own, choose Run > Run All Cells, wait until every cell ran."""
    stem = re.sub(r"[^a-z0-9]+", "-", name.lower())
    page.goto(f"{lab.url}/lab/workspaces/{stem}/tree/notebooks/{name}?reset&token={lab.token}")
    panel = page.locator(".jp-NotebookPanel:visible")
    panel.locator(".jp-Cell").first.wait_for()
    deadline = time.monotonic() + 60
    while (session := _session(lab, name)) is None or session["kernel"]["execution_state"] != "idle":
        assert time.monotonic() < deadline, f"{name}: the kernel did not start"
        time.sleep(0.5)
    page.locator(".lm-MenuBar-item", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-item[data-command='runmenu:run-all']:visible").click()
    prompts = panel.locator(".jp-CodeCell .jp-InputPrompt")
    deadline = time.monotonic() + RUN_TIMEOUT
    quiet = 0
    while quiet < 3:  # three idle looks in a row, a second apart: the queue is empty
        assert time.monotonic() < deadline, f"{name}: Run All did not finish in {RUN_TIMEOUT} s"
        time.sleep(1)
        busy = any("*" in text for text in prompts.all_inner_texts())
        state = lab.api(f"/api/kernels/{session['kernel']['id']}")["execution_state"]  # type: ignore[index]
        quiet = quiet + 1 if not busy and state == "idle" else 0


def _check_every_cell_ran(page, lab: Lab, name: str) -> None:
    """Save, then read the notebook back from the server: every code cell ran, errors only where tagged."""
    page.keyboard.press("Escape")
    page.locator(".lm-MenuBar-item", has_text=re.compile(r"^File$")).click()
    page.locator(".lm-Menu-item[data-command='docmanager:save']:visible").click()
    # The tab loses its "unsaved" mark when the server has the file.
    page.wait_for_function("""() => {
        const tab = document.querySelector('.lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current');
        return tab && !tab.classList.contains('jp-mod-dirty'); }""")
    deadline = time.monotonic() + 30
    while True:
        try:
            nb = lab.api(f"/api/contents/notebooks/{name}?content=1")["content"]  # type: ignore[index]
        except urllib.error.HTTPError as exc:
            # Jupyter writes a notebook in place: a read in the middle of a write is "unreadable" (400).
            assert exc.code == 400 and time.monotonic() < deadline, f"{name}: the saved notebook: {exc}"
            time.sleep(0.5)
            continue
        cells = [c for c in nb["cells"] if c["cell_type"] == "code" and "".join(c["source"]).strip()]
        if all(c["execution_count"] for c in cells) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    not_run = ["".join(c["source"])[:60] for c in cells if not c["execution_count"]]
    assert not not_run, f"{name}: Run All stopped; these cells never ran: {not_run}"
    for cell in cells:
        errors = [o for o in cell["outputs"] if o["output_type"] == "error"]
        tags = cell.get("metadata", {}).get("tags", [])
        assert not errors or "raises-exception" in tags, \
            f"{name}: an untagged cell raised: {''.join(cell['source'])[:80]} -> {errors[0]['evalue'][:200]}"


def _click_a_layer_in_the_explorer(page) -> None:
    """120: the first explorer shows its top layer (pip's); a click on the COPY layer shows that layer's files."""
    explorer = page.locator(".course-explorer-layers").first
    options = explorer.locator("option")
    tree = page.locator(".course-explorer-tree").first
    assert tree.get_attribute("data-layer") == str(options.count() - 1)
    assert "requirements.txt" not in tree.text_content()  # (text_content: closed folders count too)
    labels = [" ".join(t.split()) for t in options.all_inner_texts()]  # the widget shows spaces as &nbsp;
    index = next(i for i, label in enumerate(labels) if label.endswith("COPY . ."))
    options.nth(index).click()
    page.wait_for_function(
        "i => document.querySelector('.course-explorer-tree').getAttribute('data-layer') === String(i)", arg=index)
    text = page.locator(".course-explorer-tree").first.text_content()
    assert "requirements.txt" in text and "app.py" in text and "dist-packages" not in text, text[:500]


def _tick_a_quiz_answer(page) -> None:
    """050: an untouched quiz is not answered yet; choose 'cached' for WORKDIR and run the check again:
    the kernel saw the click, and that row now agrees."""
    cell = page.locator(".jp-CodeCell", has=page.locator(".jp-InputArea-editor",
                                                        has_text="check_prediction(quiz, third)"))
    workdir = cell.locator(".jp-OutputArea tr", has_text="WORKDIR")

    def cells() -> list[str]:
        return [t.strip() for t in workdir.locator("td").all_inner_texts()]

    said = cell.locator(".jp-OutputArea").inner_text()
    assert "not answered yet" in said and "DISAGREE" not in said, said[:300]  # untouched: no score at all
    row = page.locator(".widget-toggle-buttons").first  # the quiz's first row: WORKDIR
    cached = row.locator("button", has_text="cached")
    cached.click()
    page.wait_for_function("b => b.classList.contains('mod-active')", arg=cached.element_handle())
    cell.locator(".jp-InputPrompt").click()  # select the check cell (command mode), then run it
    page.keyboard.press("Shift+Enter")
    deadline = time.monotonic() + 60  # the output is replaced when the cell runs again: look until it says so
    while cells()[1:] != ["cached", "cached", "agree"]:
        assert time.monotonic() < deadline, f"the check still shows {cells()} for WORKDIR"
        page.wait_for_timeout(250)


def _background(cell) -> str:
    return cell.evaluate("e => getComputedStyle(e).backgroundColor")


def _see_a_step_grid(page, builds: int) -> None:
    """A builds x steps grid as JupyterLab renders it: one column per build, RAN and CACHED in two colours."""
    grid = page.locator("table.course-step-grid").last
    grid.wait_for()
    assert len(grid.locator("thead th").all_inner_texts()) == 1 + builds
    ran = grid.locator("td", has_text=re.compile(r"^\s*RAN\s*$")).first
    cached = grid.locator("td", has_text=re.compile(r"^\s*CACHED\s*$")).first
    colours = {_background(ran), _background(cached)}
    assert len(colours) == 2 and not colours & {"rgba(0, 0, 0, 0)", "transparent"}, colours


def _see_the_pictures_of_060(page) -> None:
    """060: the grid of the five article builds, and the step-time chart drawn as a real image."""
    _see_a_step_grid(page, 5)
    cell = page.locator(".jp-CodeCell", has=page.locator(".jp-InputArea-editor", has_text="plot_step_times(["))
    chart = cell.locator(".jp-OutputArea img").first
    chart.wait_for()
    width = chart.evaluate("img => img.complete ? img.naturalWidth : 0")
    assert width > 300, f"the step-time chart did not render (natural width {width})"


def _see_the_layer_stack_of_030(page) -> None:
    """030: filled boxes for the rows that made layers, a dashed one for a row that changed only the config."""
    stack = page.locator(".course-layer-stack").last
    stack.wait_for()
    layers, config = stack.locator(".course-layer"), stack.locator(".course-config-only")
    assert layers.count() >= 3 and config.count() >= 1, (layers.count(), config.count())
    assert config.first.evaluate("e => getComputedStyle(e).borderTopStyle") == "dashed"
    assert _background(layers.first) not in ("rgba(0, 0, 0, 0)", "transparent")


INTERACTIONS = {"120-layer-explorer.ipynb": _click_a_layer_in_the_explorer,
                "050-cache-busting.ipynb": _tick_a_quiz_answer,
                "030-layers.ipynb": _see_the_layer_stack_of_030,
                "060-caching-dependencies.ipynb": _see_the_pictures_of_060,
                "140-cheat-sheet.ipynb": lambda page: _see_a_step_grid(page, 5)}


def test_the_interactions_name_real_notebooks():
    assert set(INTERACTIONS) <= set(NOTEBOOKS)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_run_all_goes_through(page, lab, name):
    try:
        _run_all(page, lab, name)
        _check_every_cell_ran(page, lab, name)
        if name in INTERACTIONS:
            INTERACTIONS[name](page)
    except Exception as exc:
        shot = lab.root / f"{Path(name).stem}-failed.png"
        page.screenshot(path=str(shot))
        log = (lab.root / "lab.log").read_text(errors="replace").splitlines()[-15:]
        exc.add_note(f"screenshot of the page: {shot}; the end of JupyterLab's log:\n" + "\n".join(log))
        raise
    session = _session(lab, name)
    if session is not None:  # the next notebook may claim the same repository
        lab.api(f"/api/sessions/{session['id']}", method="DELETE")
