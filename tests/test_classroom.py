"""The classroom on this machine, for real: a hub, three learners, three rootless engines.

One module-wide classroom (``./course classroom up --learners 3 --registry``)
that the tests below use in order, as an instructor's morning would go: servers
started through the hub's REST API, one base for every engine from the
classroom's registry, notebook 060 under nbval as each learner at the same
time, one learner's cache export serving another's engine, isolation between
them, ``status``, ``down``, ``up`` again, idle culling.  Then the root-per-learner fallback on its own.  The finalizer runs
``down --purge`` and then removes, by name, anything of the test learners
still there (processes, mounts, accounts), so a failed test leaves nothing.

Its folder is /var/lib/dlc-classroom-test; the course copy, Python environment,
proxy and Docker release there are kept between runs (they are software, not learners' data).
"""
from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CLASSROOM_DIR = Path("/var/lib/dlc-classroom-test")
PREFIX = "dlct"
NAMES = [f"{PREFIX}{i}" for i in (1, 2, 3)]
FALLBACK = f"{PREFIX}9"  # the root-per-learner test's own learner

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(sys.platform != "linux" or os.geteuid() != 0,
                       reason="a classroom needs root on Linux (system users, loop disks, engines)"),
    pytest.mark.skipif(not shutil.which("apt-get") or not shutil.which("dpkg-deb"),
                       reason="the classroom fetches Docker from Debian's archive, and apt-get or dpkg-deb is missing"),
]


def _docker() -> str:
    """The classroom's docker client, the one on the learners' PATH (no other is on this machine)."""
    from course_helpers.classroom.engines import engine_release
    from course_helpers.classroom.state import Paths

    return str(engine_release(Paths(CLASSROOM_DIR)).bin / "docker")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    env["COURSE_CLASSROOM_DIR"] = str(CLASSROOM_DIR)
    return env


def _course(*args: str, timeout: float = 900, check: bool = True) -> str:
    proc = subprocess.run([str(ROOT / "course"), "classroom", *args], cwd=ROOT, env=_env(), capture_output=True,
                          text=True, timeout=timeout)
    if check:
        assert proc.returncode == 0, f"classroom {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout + proc.stderr


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Seat:
    """A learner as ``up`` printed them."""

    name: str
    password: str
    host: str


@dataclass
class Room:
    port: int
    seats: dict[str, Seat]
    up_output: str

    def api(self):
        from course_helpers.classroom.hub import HubAPI
        from course_helpers.classroom.state import Paths, load_secrets, load_settings

        where = Paths(CLASSROOM_DIR)
        return HubAPI(load_settings(where), load_secrets(where)["service_token"])


def _parse_seats(output: str) -> dict[str, Seat]:
    seats = {}
    for match in re.finditer(r"^(\S+)\s+login (\S+)\s+password (\S+)\s+DOCKER_HOST=(\S+)$", output, re.M):
        assert match.group(1) == match.group(2)
        seats[match.group(1)] = Seat(match.group(1), match.group(3), match.group(4))
    return seats


def _leftovers(names: list[str]) -> None:
    """Remove whatever of the test learners is still there, by name (the finalizer's second pass)."""
    from course_helpers.classroom import learners
    from course_helpers.classroom.engines import private_name
    from course_helpers.classroom.state import Paths
    from course_helpers.engine.daemon import stop_private_engine

    where = Paths(CLASSROOM_DIR)
    for name in names:
        learner = learners.lookup(name)
        if learner is None:
            continue
        stop_private_engine(private_name(learner), timeout=10)
        learners.remove_learner(where, learner)


@pytest.fixture(scope="module")
def room():
    port = _free_port()
    try:
        out = _course("up", "--learners", "3", "--prefix", PREFIX, "--port", str(port), "--disk-gb", "3",
                      "--engine", "rootless", "--registry")
        yield Room(port, _parse_seats(out), out)
    finally:
        if (CLASSROOM_DIR / "hub" / "settings.json").exists():
            _course("down", "--purge", check=False, timeout=300)
        _leftovers(NAMES + [FALLBACK])
        for sub in ("hub", "disks", "engines"):
            shutil.rmtree(CLASSROOM_DIR / sub, ignore_errors=True)


def _client(host: str):
    from course_helpers.engine.client import from_env

    return from_env(environment={"DOCKER_HOST": host}, timeout=120)


def _server_env(name: str) -> dict[str, str]:
    from course_helpers.classroom.learners import lookup, server_environment

    env = server_environment(lookup(name))
    assert env is not None, f"no Jupyter server runs as {name}"
    return env


def _as_learner(name: str, cmd: list[str], env: dict[str, str] | None = None, **kwargs) -> subprocess.Popen:
    from course_helpers.classroom.learners import lookup

    learner = lookup(name)
    return subprocess.Popen(cmd, user=learner.uid, group=learner.gid, extra_groups=[], cwd=learner.course_dir,
                            env=env or _server_env(name), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, **kwargs)


def _run_as(name: str, cmd: list[str], timeout: float = 300) -> tuple[int, str]:
    proc = _as_learner(name, cmd)
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out


def _processes_of(names: list[str]) -> dict[str, list[int]]:
    from course_helpers.classroom.learners import lookup, processes_of

    return {n: processes_of(lookup(n)) for n in names if lookup(n)}


def test_up_prints_login_password_and_docker_host_for_each_learner(room):
    assert sorted(room.seats) == NAMES, room.up_output
    for seat in room.seats.values():
        uid = int(re.fullmatch(r"unix:///run/user/(\d+)/docker\.sock", seat.host).group(1))
        assert uid == __import__("pwd").getpwnam(seat.name).pw_uid
    assert room.api().answers()
    listening = subprocess.run(["ss", "-ltn"], capture_output=True, text=True).stdout
    assert f"127.0.0.1:{room.port} " in listening and f"0.0.0.0:{room.port} " not in listening
    # Engines start with servers, not before.
    assert all(not any("dockerd" in Path(f"/proc/{p}/cmdline").read_text(errors="replace")
                       for p in pids if Path(f"/proc/{p}").exists())
               for pids in _processes_of(NAMES).values())


def test_servers_start_through_the_rest_api_each_with_their_own_engine(room):
    api = room.api()
    for name in NAMES:
        api.start_server(name)
    for name in NAMES:
        api.wait_ready(name)
        reply = api.through_proxy(name, "api/status")  # their server, through the hub's proxy
        assert reply.status_code == 200, reply.text[:300]
        env = _server_env(name)
        assert env["DOCKER_HOST"] == room.seats[name].host
        assert env["COURSE_WORKSPACE"].startswith(f"/home/{name}/")
        cli = _client(env["DOCKER_HOST"])
        info = cli.info()
        assert any("rootless" in opt for opt in info.get("SecurityOptions", [])), info.get("SecurityOptions")
        assert "io.containerd.snapshotter" in str(info.get("DriverStatus")), info.get("DriverStatus")
        assert cli.images.get("python:3.11-slim-bookworm")
        cli.close()
        # Their kernels and terminals have the classroom's client, with buildx from their ~/.docker.
        code, out = _run_as(name, ["docker", "buildx", "version"], timeout=60)
        assert code == 0 and "buildx" in out, out
    # Their dockerd runs as them, not as root.
    from course_helpers.classroom.learners import lookup

    for name, pids in _processes_of(NAMES).items():
        dockerd = [p for p in pids if Path(f"/proc/{p}/comm").read_text().strip() == "dockerd"]
        assert len(dockerd) == 1 and Path(f"/proc/{dockerd[0]}").stat().st_uid == lookup(name).uid


def _class_registry():
    from course_helpers.classroom.state import Paths, load_settings
    from course_helpers.engine.registry import CourseRegistry

    address = load_settings(Paths(CLASSROOM_DIR)).registry
    assert address, "up --registry recorded no registry"
    host, _, port = address.rpartition(":")
    return CourseRegistry(int(port), None, host)


def test_the_classroom_registry_gives_every_engine_one_base_and_each_learner_names_of_their_own(room):
    from course_helpers.classroom.registry import BASE_REPO, HOST

    reg = _class_registry()
    assert reg.host == HOST and f"the classroom's registry: {reg.address} " in room.up_output, room.up_output
    listening = subprocess.run(["ss", "-ltn"], capture_output=True, text=True).stdout
    assert f"{reg.address} " in listening and f"0.0.0.0:{reg.port} " not in listening, listening
    # One base for the class: pushed by the first engine, pulled by the others, the same image on each.
    assert reg.tags(BASE_REPO.split(":")[0]) == [BASE_REPO.split(":")[1]]
    bases = set()
    for name in NAMES:
        env = _server_env(name)
        assert env["COURSE_REGISTRY"] == f"{reg.address}/{name}"
        cli = _client(env["DOCKER_HOST"])
        bases.add(cli.images.get("python:3.11-slim-bookworm").id)
        assert not [t for img in cli.images.list() for t in img.tags if t.startswith(reg.address)]
        cli.close()
    assert len(bases) == 1, bases
    # A learner's kernel takes the classroom's registry, under their login, and starts none of its own.
    code, out = _run_as(NAMES[0], [f"{CLASSROOM_DIR}/venv/bin/python", "-c",
                                   "from course_helpers import start_registry\n"
                                   "from course_helpers.engine.registry import stop_registry\n"
                                   "reg = start_registry(progress=None)\n"
                                   "print('ref:', reg.ref('ci-demo/cache'), reg.shared, stop_registry())"])
    assert code == 0 and f"ref: {reg.address}/{NAMES[0]}/ci-demo/cache True False" in out, out
    assert reg.tags(BASE_REPO.split(":")[0]), "a learner's stop_registry() touched the classroom's registry"
    # Chapter 150's runner is a second engine, which a learner's session cannot start: one sentence says so.
    code, out = _run_as(NAMES[0], [f"{CLASSROOM_DIR}/venv/bin/python", "-c",
                                   "from course_helpers.lesson.ci import ci_runner\n"
                                   "try:\n    ci_runner(progress=None)\n"
                                   "except Exception as exc:\n    print(type(exc).__name__, exc)"])
    assert "SetupError The CI runner is a second Docker engine, which only root can start, and in a classroom" in out, out
    # Nothing off the machine, and no container of a root engine, reaches it: only loopback may.
    rule = subprocess.run(["iptables", "-S", "INPUT"], capture_output=True, text=True).stdout
    assert f"-A INPUT -d {HOST}/32 ! -i lo -j DROP" in rule, rule


def test_the_printed_password_logs_a_learner_in_and_a_wrong_one_does_not(room):
    import requests

    seat = room.seats[NAMES[0]]
    base = f"http://127.0.0.1:{room.port}"
    for password, expected in ((seat.password + "x", 403), (seat.password, 302)):
        session = requests.Session()
        session.trust_env = False
        session.get(f"{base}/hub/login", timeout=30)
        reply = session.post(f"{base}/hub/login", data={"username": seat.name, "password": password,
                                                        "_xsrf": session.cookies.get("_xsrf")},
                             allow_redirects=False, timeout=30)
        assert reply.status_code == expected, (password == seat.password, reply.status_code, reply.text[:300])


def test_notebook_060_passes_for_three_learners_at_once(room):
    notebook = "notebooks/060-caching-dependencies.ipynb"
    procs = {name: _as_learner(name, [f"{CLASSROOM_DIR}/venv/bin/python", "-m", "pytest", "-q", "-p",
                                      "no:cacheprovider", "--nbval", "--nbval-current-env", "--nbval-sanitize-with",
                                      str(CLASSROOM_DIR / "course" / "notebooks" / "sanitize.cfg"), notebook])
             for name in NAMES}
    outputs = {name: proc.communicate(timeout=900)[0] for name, proc in procs.items()}
    for name, proc in procs.items():
        assert proc.returncode == 0, f"{name}:\n{outputs[name][-3000:]}"
        assert re.search(r"\b\d+ passed\b", outputs[name]), outputs[name][-500:]


def test_one_learners_cache_export_serves_another_learners_engine(room):
    """Learner 1 builds and exports the cache under their name; learner 2's engine, which never
    built it, builds from that cache with no step run, then exports under their own name."""
    reg = _class_registry()
    marker = f"{time.time_ns()}"  # a Dockerfile no engine has built before
    script = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from course_helpers import build, start_registry\n"
        "reg = start_registry(progress=None)\n"
        "ctx = Path(os.environ['COURSE_WORKSPACE']) / 'classroom-registry'\n"
        "ctx.mkdir(parents=True, exist_ok=True)\n"
        "(ctx / 'Dockerfile').write_text('FROM python:3.11-slim-bookworm\\n'\n"
        f"    'RUN echo {marker} > /marker\\nRUN sha256sum /marker > /sum\\n')\n"
        "mine = reg.ref('ci-demo/cache')\n"
        "source = sys.argv[1] if len(sys.argv) > 1 else None\n"
        "r = build(ctx, tag='classroom-registry:1', progress=False, cache_to=f'type=registry,ref={mine},mode=max',\n"
        "          cache_from=f'type=registry,ref={source}' if source else None)\n"
        "print('ran:', len(r.ran_steps), 'notes:', r.notes)\n")
    python = f"{CLASSROOM_DIR}/venv/bin/python"
    code, out = _run_as(NAMES[0], [python, "-c", script])
    assert code == 0 and "ran: 2 notes: []" in out, out[-2000:]
    code, out = _run_as(NAMES[1], [python, "-c", script, f"{reg.address}/{NAMES[0]}/ci-demo/cache"])
    assert code == 0 and "ran: 0 notes: []" in out, out[-2000:]
    assert {f"{NAMES[0]}/ci-demo/cache", f"{NAMES[1]}/ci-demo/cache"} <= set(reg.repositories())


def test_each_learners_images_exist_only_on_their_own_engine(room, engine):
    from course_helpers.engine.client import from_env

    # The main engine is shared with other runs: listing every image of it can take more than 10 s.
    main = from_env(timeout=300)
    on_main = {img.id for img in main.images.list(all=True)}
    main.close()
    ids = {}
    for name in NAMES:
        cli = _client(room.seats[name].host)
        tags = {tag for img in cli.images.list("flask-demo") for tag in img.tags}
        assert {f"flask-demo:{t}" for t in ("first", "second", "third", "fourth", "fifth")} <= tags
        ids[name] = {img.id for img in cli.images.list("flask-demo")}
        cli.close()
    for name in NAMES:
        for other in NAMES:
            cli = _client(room.seats[other].host)
            everything = {img.id for img in cli.images.list(all=True)}
            cli.close()
            if other != name:
                assert not ids[name] & everything, f"{name}'s images show on {other}'s engine"
        assert not ids[name] & on_main, f"{name}'s images show on the machine's main engine"


def test_a_learner_cannot_reach_another_learners_engine(room):
    me, other = NAMES[0], NAMES[1]
    code, out = _run_as(me, [_docker(), "-H", room.seats[other].host, "version"], timeout=60)
    assert code != 0 and "permission denied" in out.lower(), out
    code, out = _run_as(me, [_docker(), "-H", room.seats[me].host, "version", "--format",
                             "{{.Server.Version}}"], timeout=60)
    assert code == 0, out


def _snapshot(host: str) -> tuple[set[str], set[str], set[str]]:
    """Image ids, build cache record ids and container ids on an engine."""
    cli = _client(host)
    try:
        images = {img.id for img in cli.images.list(all=True)}
        cache = {rec["ID"] for rec in cli.df().get("BuildCache") or []}
        containers = {c.id for c in cli.containers.list(all=True)}
        return images, cache, containers
    finally:
        cli.close()


def test_one_learners_full_disk_cleanup_and_prune_leave_the_others_alone(room):
    from course_helpers.classroom.learners import disk_usage, lookup
    from course_helpers.classroom.state import Paths

    me, others = NAMES[0], NAMES[1:]
    python = f"{CLASSROOM_DIR}/venv/bin/python"
    # Fill the learner's engine disk from a container, as a runaway build would.
    code, out = _run_as(me, [_docker(), "run", "--name", "fill-the-disk", "python:3.11-slim-bookworm", "sh",
                             "-c", "fallocate -l $(( ($(df -k --output=avail / | tail -1) - 65536) * 1024 )) /fill && "
                                   "head -c 128M /dev/zero > /more"])
    try:
        used, size = disk_usage(Paths(CLASSROOM_DIR), lookup(me))
        assert used / size > 0.99 and "No space left" in out, (used, size, out[-500:])
        for name in others:
            # Their cache still serves them: the course's build() of their last Dockerfile runs no step.
            code, out = _run_as(name, [python, "-c", "import os; from course_helpers import build\n"
                                       "r = build(os.environ['COURSE_WORKSPACE'] + '/060-caching-dependencies', "
                                       "tag='flask-demo:again', progress=False)\nprint('ran:', r.ran_steps)"])
            assert code == 0 and "ran: []" in out, out[-1500:]
    finally:
        _run_as(me, [_docker(), "rm", "-f", "fill-the-disk"])
    # Then the learner cleans up as hard as Docker lets them.
    before = {name: _snapshot(room.seats[name].host) for name in others}
    assert all(snap[1] for snap in before.values()), "the others should have build cache to lose"
    code, out = _run_as(me, [python, "-c", "from course_helpers import cleanup, fresh_start\n"
                                           "print(cleanup(all_sessions=True)); fresh_start('flask-demo')"])
    assert code == 0, out
    for cmd in (["builder", "prune", "-af"], ["system", "prune", "-af"]):
        code, out = _run_as(me, [_docker(), *cmd])
        assert code == 0, out
    images, cache, containers = _snapshot(room.seats[me].host)
    assert not images and not cache and not containers, "the learner's own prune should have emptied their engine"
    for name in others:
        assert _snapshot(room.seats[name].host) == before[name], f"{me}'s clean-up touched {name}'s engine"


def test_status_shows_each_learners_server_engine_disk_and_images(room):
    out = _course("status")
    assert re.search(rf"^registry: {re.escape(_class_registry().address)}, answering, [1-9]\d* repositories$", out,
                     re.M), out
    for name in NAMES:
        line = next(l for l in out.splitlines() if l.startswith(name + " "))
        assert " ready " in line and "Docker " in line and room.seats[name].host in line, line
        assert re.search(r"\d+(\.\d+)?[kMG]?B of \d", line), line
    # The learner who pruned everything has no image left; the others keep theirs.
    assert "flask-demo:fifth" in next(l for l in out.splitlines() if l.startswith(NAMES[1] + " "))
    assert "flask-demo" not in next(l for l in out.splitlines() if l.startswith(NAMES[0] + " "))


def test_chapter_160_runs_for_a_learner_on_the_classroom_registry(room):
    """The moving-base chapter publishes, pulls and pins through the classroom's registry, under the login."""
    from course_helpers.classroom.registry import BASE_REPO

    name = NAMES[2]
    proc = _as_learner(name, [f"{CLASSROOM_DIR}/venv/bin/python", "-m", "pytest", "-q", "-p", "no:cacheprovider",
                              "--nbval-lax", "--nbval-current-env", "notebooks/160-base-moves.ipynb"])
    out = proc.communicate(timeout=900)[0]
    assert proc.returncode == 0 and re.search(r"\b\d+ passed\b", out), out[-3000:]
    repos = _class_registry().repositories()
    assert any(repo.startswith(f"{name}/") and repo.endswith("/python") for repo in repos), repos
    # Every name is a learner's or the shared base: no learner's release moved the class's base.
    assert all(repo.split("/")[0] in NAMES or repo == BASE_REPO.split(":")[0] for repo in repos), repos


def test_down_leaves_no_process_behind_and_keeps_the_learners_work(room):
    from course_helpers.classroom.learners import is_mounted

    out = _course("down")
    assert "kept" in out and "the classroom's registry stopped; its data is kept" in out, out
    assert not _class_registry().running()
    assert not any(_processes_of(NAMES).values()), _processes_of(NAMES)
    hub_or_proxy = subprocess.run(["pgrep", "-f", f"{CLASSROOM_DIR}/(venv|proxy)/"], capture_output=True, text=True)
    assert hub_or_proxy.stdout == "", hub_or_proxy.stdout
    for name in NAMES:
        assert (CLASSROOM_DIR / "disks" / f"{name}.img").exists()
        assert not is_mounted(CLASSROOM_DIR / "engines" / name)
        assert Path(f"/home/{name}/docker-layers-course/workspace/060-caching-dependencies").is_dir()


def test_up_again_finds_the_learners_work_and_idle_servers_are_culled(room):
    out = _course("up", "--learners", "3", "--prefix", PREFIX, "--port", str(room.port), "--disk-gb", "3",
                  "--engine", "rootless", "--idle-timeout", "20", "--cull-every", "5")
    assert {n: s.password for n, s in _parse_seats(out).items()} == {n: s.password for n, s in room.seats.items()}
    # The registry came back with up (as the last up had it), on the same address, with what was pushed.
    reg = _class_registry()
    assert f"{NAMES[0]}/ci-demo/cache" in reg.repositories(), reg.repositories()
    api = room.api()
    name = NAMES[1]
    api.start_server(name)
    api.wait_ready(name)
    cli = _client(room.seats[name].host)
    assert "flask-demo:fifth" in {t for img in cli.images.list("flask-demo") for t in img.tags}
    cli.close()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (api.server(name) or _processes_of([name])[name]):
        time.sleep(2)
    assert api.server(name) is None, "the idle server was not culled"
    assert not _processes_of([name])[name], "the culled server's engine still runs"


def test_root_fallback_gives_a_learner_a_root_engine_only_they_can_use(room):
    """The weaker fallback: a root dockerd per learner on their own disk, socket and bridge."""
    from course_helpers.classroom import engines, learners
    from course_helpers.classroom.state import Paths

    where = Paths(CLASSROOM_DIR)
    learner = learners.ensure_learner(FALLBACK, "not-used-here", where.course, progress=lambda line: None)
    bridge = f"crs-br-{engines.private_name(learner)}"
    try:
        said: list[str] = []
        host = engines.start_engine(where, learner, engines.ROOT, disk_gb=3, progress=said.append)
        assert host == engines.docker_host(learner, engines.ROOT)
        # A root engine is on the machine's network: it reaches the classroom's registry too.
        assert any("base image pulled from the classroom's registry" in line for line in said), said
        cli = _client(host)
        assert _class_registry().address in cli.info()["RegistryConfig"]["IndexConfigs"]
        cli.close()
        assert subprocess.run(["ip", "link", "show", bridge], capture_output=True).returncode == 0
        env = {"HOME": str(learner.home), "PATH": "/usr/bin:/bin", "DOCKER_HOST": host}
        ok = _as_learner(FALLBACK, [_docker(), "image", "ls", "--format", "{{.Repository}}"], env=env)
        out = ok.communicate(timeout=60)[0]
        assert ok.returncode == 0 and "python" in out, out
        stranger = _as_learner(NAMES[0], [_docker(), "-H", host, "version"],
                               env={"HOME": f"/home/{NAMES[0]}", "PATH": "/usr/bin:/bin"})
        out = stranger.communicate(timeout=60)[0]
        assert stranger.returncode != 0 and "permission denied" in out.lower(), out
        assert learners.disk_usage(where, learner)[0] > 100e6  # the base image went to their own disk
    finally:
        assert engines.stop_engine(where, learner, engines.ROOT)
    assert subprocess.run(["ip", "link", "show", bridge], capture_output=True).returncode != 0
    assert not Path(f"/run/dlc-{engines.private_name(learner)}").exists()
