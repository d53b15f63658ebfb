"""The notebooks on an engine that is not only theirs: other kernels, a learner's own builds, another base.

Each test runs real notebooks under nbval in subprocesses, as JupyterLab kernels
or a second ``./course test`` would, against the real engine:

* two cache notebooks at the same moment, three rounds (they take turns through
  the lesson claim instead of corrupting each other's facts);
* every notebook once more: the quick tier's nbval run later in the same session is the second
  run in a row, and meets all this one left (images, cache, registry, runner);
* after a learner built the sample app by hand, with both builders;
* on a private engine whose base image has several layers and says it was pulled.
"""
from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from course_helpers.config import BASE_IMAGE

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
SEED = [NOTEBOOKS / n for n in ("020-first-dockerfile.ipynb", "030-layers.ipynb", "040-the-cache.ipynb",
                                "050-cache-busting.ipynb", "060-caching-dependencies.ipynb")]
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("engine", "base")]


def _nbval(paths: list[Path], tmp: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """pytest --nbval over notebooks in a process of its own (its own session, workspace and state).

    ``env``: the whole environment (a private engine's ``process_env()``); default: this one's.
    """
    work = tmp / uuid.uuid4().hex[:8]
    work.mkdir()
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "--rootdir", str(ROOT), *map(str, paths)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**(env or os.environ), "COURSE_WORKSPACE": str(work / "ws")})


def _passed(proc: subprocess.Popen, timeout: float = 1200) -> str:
    out = proc.communicate(timeout=timeout)[0]
    assert proc.returncode == 0, out[-4000:]
    return out


def test_two_cache_notebooks_at_once_take_turns(tmp_path):
    for _ in range(3):
        a = _nbval([NOTEBOOKS / "050-cache-busting.ipynb"], tmp_path)
        b = _nbval([NOTEBOOKS / "060-caching-dependencies.ipynb"], tmp_path)
        _passed(a)
        _passed(b)


def test_every_notebook_once_before_the_quick_tier_runs_them_again(tmp_path):
    # One run here, and nbval's own run of notebooks/ at the end of the session is the second in a row
    # on the same engine: together they hold what two runs in a row showed, in half the time CI had left.
    _passed(_nbval(sorted(NOTEBOOKS.glob("*.ipynb")), tmp_path))


def test_a_learners_own_build_of_the_sample_app_changes_no_lesson(engine, tmp_path):
    """The learner builds sample_app as the article says, with both builders, before the lessons."""
    from course_helpers.engine.cli import buildkit_client

    tags = [f"flask-demo:mine-{uuid.uuid4().hex[:6]}", f"flask-demo:mine-classic-{uuid.uuid4().hex[:6]}"]
    app = ROOT / "sample_app"
    client = buildkit_client()
    if client is None:
        pytest.skip("no docker CLI here can run a BuildKit build (run ./course setup)")
    env = client.environment()
    try:
        # The client the course found, as the learner's terminal has it: BuildKit, then the legacy builder.
        subprocess.run([*client.build_command(), "-q", "-t", tags[0], str(app)], check=True, capture_output=True,
                       env=env)
        subprocess.run([client.path, "build", "-q", "-t", tags[1], str(app)], check=True, capture_output=True,
                       env={**env, "DOCKER_BUILDKIT": "0"})
        mine = {t: engine.images.get(t).id for t in tags}
        _passed(_nbval(SEED, tmp_path))
        # And the lessons left the learner's images alone (same names, same ids).
        assert {t: engine.images.get(t).id for t in tags} == mine
    finally:
        for t in tags:
            subprocess.run(["docker", "rmi", "-f", t], capture_output=True)


def test_every_notebook_on_an_engine_whose_base_has_several_layers(tmp_path):
    """A private engine with a stand-in for Docker Hub's base: more layers, an ENV, reported as pulled."""
    from course_helpers.engine.base_image import LABEL_ORIGIN, ensure_base_image
    from course_helpers.engine.daemon import start_private_engine

    import shutil

    if os.geteuid() != 0 or not shutil.which("iptables"):
        pytest.skip("a private engine needs root and iptables (./course setup installs it), and this machine lacks them")
    engine = start_private_engine("standin")
    with engine:
        cli = engine.client()
        ensure_base_image(cli=cli, pull=False, progress=None)
        standin = (f"FROM {BASE_IMAGE}\n"
                   "RUN echo one > /etc/standin-one\n"
                   "RUN echo two > /etc/standin-two\n"
                   "ENV PYTHON_STANDIN=1\n"
                   f'LABEL "{LABEL_ORIGIN}"="pulled from a registry (docker.io/library/python), test stand-in"\n')
        image, _ = cli.images.build(fileobj=io.BytesIO(standin.encode()), tag=BASE_IMAGE, rm=True, forcerm=True)
        assert len(image.attrs["RootFS"]["Layers"]) >= 3
        _passed(_nbval(sorted(NOTEBOOKS.glob("*.ipynb")), tmp_path, engine.process_env()))
        # The lessons' images are on the private engine; the main engine never saw them.
        built = {img.id for img in cli.images.list(name="flask-demo")}
        assert built
        import docker

        main = docker.from_env()
        assert not built & {img.id for img in main.images.list(name="flask-demo")}
    engine.stop(wipe=True)


# --- a second engine, over TCP with TLS, named by DOCKER_HOST and by a Docker context -------------

def _network_of_the_first_engine() -> dict[str, list[str]]:
    """docker0's address and route, and the iptables rules the first engine keeps for it.

    Rules for published ports (``--dport``) come and go with other test runs' containers, and
    the route says ``linkdown`` while docker0 has no container: neither is compared.
    """
    def lines(cmd: list[str]) -> list[str]:
        return subprocess.run(cmd, capture_output=True, text=True).stdout.splitlines()

    rules = [r for table in ("filter", "nat") for r in lines(["iptables", "-t", table, "-S"])
             if "docker0" in r and "--dport" not in r]
    return {"address": lines(["ip", "-o", "-4", "addr", "show", "dev", "docker0"]),
            "route": [r.replace(" linkdown", "") for r in lines(["ip", "route"]) if "docker0" in r],
            "iptables": sorted(rules)}


@pytest.fixture(scope="module")
def tls_engine(engine, base):
    """A second dockerd on 127.0.0.1 with TLS, its own data root, exec root, pidfile and bridge; the base loaded.

    Yields ``(engine, network before it started)``; stopped (and its data wiped) however the tests end.
    """
    import shutil

    from course_helpers.engine.daemon import start_private_engine

    if os.geteuid() != 0 or not shutil.which("iptables"):
        pytest.skip("a second engine needs root and iptables (./course setup installs it), and this machine lacks them")
    before = _network_of_the_first_engine()
    assert before["address"], "the first engine has no docker0 to compare with"
    private = start_private_engine("tls", tls=True)
    try:
        private.load_image(BASE_IMAGE)
        yield private, before
    finally:
        private.stop(wipe=True)


def test_the_seed_notebooks_on_a_tls_engine_named_by_docker_host(tls_engine, engine, tmp_path):
    private, _ = tls_engine
    assert private.host.startswith("tcp://127.0.0.1:") and private.env["DOCKER_TLS_VERIFY"] == "1"
    seed = [p for p in sorted(NOTEBOOKS.glob("*.ipynb")) if p.name[:3] <= "070"]
    assert len(seed) >= 9
    mine = {img.id for img in engine.images.list(name="flask-demo")}
    _passed(_nbval(seed, tmp_path, private.process_env()))
    built = {img.id for img in private.client().images.list(name="flask-demo")}
    assert built, "the lessons built nothing on the TLS engine"
    assert not built & {img.id for img in engine.images.list(name="flask-demo")} - mine


def test_a_build_and_its_history_through_a_docker_context_naming_the_tls_engine(tls_engine, engine, monkeypatch,
                                                                              tmp_path):
    """No DOCKER_* variable: the current context names the TLS engine, and both the CLI build and the API go there."""
    from pathlib import Path as P

    from course_helpers import build, history
    from course_helpers.engine import client as client_module
    from test_endpoint import use_context, write_context

    private, _ = tls_engine
    write_context(tmp_path, "course-tls", private.host, tls_from=P(private.env["DOCKER_CERT_PATH"]))
    use_context(tmp_path, "course-tls")
    for name in ("DOCKER_HOST", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKER_CONTEXT", "DOCKER_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    # A learner's home holds both ~/.docker and the course's state; this test swaps only the first,
    # so the course still finds the engine it set up (and that release's client with buildx).
    from course_helpers.config import state_dir
    monkeypatch.setenv("COURSE_STATE_DIR", str(state_dir()))
    monkeypatch.setenv("HOME", str(tmp_path))
    client_module.reset()
    app = tmp_path / "app"
    app.mkdir()
    (app / "Dockerfile").write_text(f"FROM {BASE_IMAGE}\nRUN echo through-a-context > /etc/course-context\n")
    tag = f"ct-context-{uuid.uuid4().hex[:8]}:1"
    try:
        report = build(app, tag=tag, builder="buildkit", progress=False)
        assert report.builder == "buildkit" and report.ran_steps == ["RUN echo through-a-context > /etc/course-context"]
        rows = history(tag)
        assert any("through-a-context" in str(row) for row in rows)
        assert private.client().images.get(tag).id == report.image_id
        assert not engine.images.list(name=tag.split(":")[0])
    finally:
        client_module.reset()
        try:
            private.client().images.remove(tag, force=True)
        except Exception:
            pass


def test_stopping_the_tls_engine_leaves_the_first_engines_network_as_it_was(tls_engine, engine):
    private, before = tls_engine
    private.stop(wipe=True)
    assert _network_of_the_first_engine() == before
    assert subprocess.run(["ip", "link", "show", private.bridge], capture_output=True).returncode != 0
    from course_helpers.config import session_labels

    out = engine.containers.run(BASE_IMAGE, ["python3", "-c", "print('first engine still runs containers')"],
                                remove=True, labels=session_labels())
    assert b"still runs" in out


# --- engines of several releases at once: each start empties the iptables chains they share -------------

def _rules_naming(bridge: str) -> list[str]:
    """The rules that name ``bridge``, in order, each once (published ports left out: other runs' containers come and go).

    A rule twice in a chain does what it does once: seen on the shared machine, when another checkout's older
    code put back the same rules as this one at the same moment, without the lock.
    """
    out = []
    for table in ("filter", "nat"):
        listing = subprocess.run(["iptables", "-t", table, "-S"], capture_output=True, text=True).stdout
        out += [f"{table}: {r}" for r in listing.splitlines()
                if f" {bridge} " in f" {r} " and "--dport" not in r]
    return list(dict.fromkeys(out))


def _accepted_before_isolation(bridges: list[str]) -> list[str]:
    """ACCEPT rules for traffic from these bridges that come before the isolation jump of their chain.

    Such a rule lets a container past the rules that keep engines' networks apart; a rule put back
    first in its chain (as this module once did) is one.
    """
    listing = subprocess.run(["iptables", "-S"], capture_output=True, text=True).stdout.splitlines()
    early = []
    for chain in ("FORWARD", "DOCKER-FORWARD"):
        isolated = False
        for rule in (r for r in listing if r.startswith(f"-A {chain} ")):
            if re.search(r"-j (DOCKER-ISOLATION-STAGE-1|DOCKER-FORWARD)$", rule):
                isolated = True
            elif (not isolated and rule.endswith("-j ACCEPT")
                  and any(re.search(rf"(^| )-i {b}( |$)", rule) for b in bridges)):
                early.append(rule)
    return early


def _reaches_the_index(cli) -> str:
    """'' when pip in a container of this engine downloads a package from the index, else what it said."""
    from course_helpers.config import session_labels

    try:
        out = cli.containers.run(BASE_IMAGE, ["sh", "-c", "timeout 60 pip3 download -q --no-deps -d /tmp six "
                                              "&& echo REACHED"], remove=True, stderr=True, labels=session_labels())
    except Exception as exc:  # the container's exit status: pip could not reach the index
        return str(exc)[-300:]
    return "" if b"REACHED" in out else out.decode(errors="replace")[-300:]


def test_engines_of_three_releases_keep_each_others_network(engine):
    """Docker 28, 20.10 and 26 beside the main Docker 28, started and stopped in turn: pip works on each.

    Seen before this was fixed: a Docker 28 engine lost its forwarding rules when another engine started,
    and pip inside its builds failed on name lookups.
    """
    import shutil

    from course_helpers.engine.base_image import ensure_base_image
    from course_helpers.engine.daemon import start_private_engine

    if os.geteuid() != 0 or not shutil.which("iptables"):
        pytest.skip("private engines need root and iptables (./course setup installs it), and this machine lacks them")
    steps = [("start", "net28", "docker28"), ("start", "net20", "docker20"), ("start", "net26", "docker26"),
             ("start", "net28b", "docker28"), ("stop", "net20", ""), ("stop", "net28", ""),
             ("start", "net20b", "docker20"), ("stop", "net28b", ""), ("stop", "net26", "")]
    running: dict = {}
    own: dict[str, list[str]] = {"docker0": _rules_naming("docker0")}
    try:
        for action, name, release in steps:
            if action == "start":
                running[name] = start_private_engine(name, release=release, progress=None)
                ensure_base_image(progress=None, pull=False, cli=running[name].client())
                own[running[name].bridge] = _rules_naming(running[name].bridge)
            else:
                running.pop(name).stop(wipe=True)
            where = f"after {action} {name}"
            # Every engine still running keeps its own rules, in their order, and its containers the network.
            for bridge in ["docker0"] + [e.bridge for e in running.values()]:
                assert _rules_naming(bridge) == own[bridge], f"{where}: the rules for {bridge} changed"
            early = _accepted_before_isolation([e.bridge for e in running.values()])
            assert not early, f"{where}: rules put back above the isolation jump: {early}"
            for label, cli in [("the main engine", engine)] + [(n, e.client()) for n, e in running.items()]:
                problem = _reaches_the_index(cli)
                assert problem == "", f"{where}: pip in a container of {label} did not reach the index: {problem}"
    finally:
        for eng in running.values():
            eng.stop(wipe=True)
