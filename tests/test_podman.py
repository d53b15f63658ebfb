"""The course with Podman as its engine: a real ``podman system service``, Buildah as the builder.

The module starts Podman's Docker-compatible service on a socket, storage root and run root of
its own (under pytest's temporary folder), copies the base image into it from the Docker
engine, points ``DOCKER_HOST`` at it, and runs the seed's teaching facts and the cache-rule
scenarios of tests/test_predict.py with ``builder="buildah"``.  At the end the service stops and
its storage goes; the Docker engine is only read (``docker save`` of the base image).

Podman is installed from Debian when it is missing (root on Debian/Ubuntu); elsewhere the module
skips, saying so.
"""
from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from test_predict import SCENARIOS, Scenario, _write, check_scenario, make_context

# make_context is a fixture: exporting it keeps pyflakes from calling the tests' argument a redefinition.
__all__ = ["make_context"]

pytestmark = pytest.mark.podman


def test_podman_is_told_from_docker_by_its_version_answer():
    from course_helpers.engine.podman import is_podman

    assert is_podman({"Platform": {"Name": "linux/amd64/debian-12"},
                      "Components": [{"Name": "Podman Engine", "Version": "4.3.1"}], "Version": "4.3.1"})
    assert not is_podman({"Platform": {"Name": "Docker Engine - Community"},
                          "Components": [{"Name": "Engine", "Version": "20.10.24"}]})


def test_container_limits_stay_within_the_hard_limits_and_podmans_own():
    import resource

    from course_helpers.engine.podman import PODMAN_NPROC_CEILING, ulimits_within_hard_limits

    limits = dict(item.split("=") for item in ulimits_within_hard_limits())
    for name, which in (("nofile", resource.RLIMIT_NOFILE), ("nproc", resource.RLIMIT_NPROC)):
        soft, hard = (int(v) for v in limits[name].split(":"))
        assert soft == hard and (resource.getrlimit(which)[1] in (resource.RLIM_INFINITY, -1)
                                 or hard <= resource.getrlimit(which)[1])
    assert int(limits["nproc"].split(":")[0]) <= PODMAN_NPROC_CEILING


def test_crun_is_refused_only_where_cgroups_are_hybrid_with_a_v2_controller(tmp_path):
    from course_helpers.engine.podman import crun_refuses_cgroups

    assert not crun_refuses_cgroups(tmp_path)  # no `unified`: pure v1, or v2 mounted at the root
    (tmp_path / "unified").mkdir()
    (tmp_path / "unified" / "cgroup.controllers").write_text("\n")
    assert not crun_refuses_cgroups(tmp_path)  # hybrid, but v2 holds nothing: crun runs
    (tmp_path / "unified" / "cgroup.controllers").write_text("hugetlb\n")
    assert crun_refuses_cgroups(tmp_path)  # as on this machine's kind, seen on 2026-12-05


def test_on_docker_buildah_is_refused_in_one_sentence(engine, tmp_path):
    # Before the podman fixture below points DOCKER_HOST elsewhere: this is the Docker engine.
    from course_helpers.builder.build import build, builders_available
    from course_helpers.errors import BuildError

    assert "classic" in builders_available()
    _write(tmp_path / "ctx", "Dockerfile", "FROM python:3.11-slim-bookworm\n")
    with pytest.raises(BuildError, match=r"^builder='buildah' needs Podman as the engine, .*use 'auto'\.$"):
        build(tmp_path / "ctx", progress=False, builder="buildah")


def test_course_setup_podman_starts_the_courses_own_service(engine, tmp_path):
    # `./course setup --podman` as a learner runs it, with the state folder (and so the service) in tmp.
    import os
    import re
    import subprocess
    import sys

    from course_helpers.engine.podman import PodmanService, is_podman

    state = Path(f"/tmp/course-podman-state-{uuid.uuid4().hex[:8]}")  # short: a socket path has a limit
    service = PodmanService(state / "podman")
    try:
        out = subprocess.run([sys.executable, "-m", "course_helpers", "setup", "--podman"], capture_output=True,
                             text=True, timeout=600, env={**os.environ, "COURSE_STATE_DIR": str(state)})
        if "Podman is not installed" in out.stderr:
            pytest.skip(out.stderr.strip())
        assert out.returncode == 0, out.stdout + out.stderr
        address = re.search(r"export DOCKER_HOST=(\S+)", out.stdout).group(1)
        assert address == service.address
        cli = service.client()
        assert cli is not None and is_podman(cli.version())
        assert service.has_image("python:3.11-slim-bookworm")
        assert "default_ulimits" in service.conf.read_text()
    finally:
        service.stop(remove_storage=True)
        subprocess.run(["rm", "-rf", str(state)])
    assert not service.folder.exists()


@pytest.fixture(scope="module")
def podman(tmp_path_factory):
    """The address of a Podman service of this module's own, with the base image; DOCKER_HOST names it."""
    from course_helpers.config import BASE_IMAGE
    from course_helpers.engine.client import reset, try_client
    from course_helpers.engine.podman import PodmanService, ensure_podman
    from course_helpers.errors import SetupError

    if try_client() is None:
        pytest.skip("no Docker engine answers to copy the base image from (run ./course setup first)")
    try:
        ensure_podman(progress=None)
    except SetupError as exc:
        pytest.skip(f"podman is missing and cannot be installed here: {exc}")
    # A short path: a unix socket's path may not exceed 107 bytes.
    service = PodmanService(Path(f"/tmp/course-podman-{uuid.uuid4().hex[:8]}"))
    with pytest.MonkeyPatch.context() as mp:
        try:
            service.start(progress=None)
            service.load_image(BASE_IMAGE, progress=None)
            mp.setenv("DOCKER_HOST", service.address)
            reset()
            yield service
        finally:
            mp.undo()
            reset()
            service.stop(remove_storage=True)
    assert not service.folder.exists()


def test_the_courses_service_starts_containers_on_this_machines_cgroups(podman):
    # crun refuses hybrid cgroups with a v2 controller; the service then runs containers with runc.
    from course_helpers.config import BASE_IMAGE
    from course_helpers.engine.client import client
    from course_helpers.engine.podman import crun_refuses_cgroups, ulimits_within_hard_limits

    assert ('runtime = "runc"' in podman.conf.read_text()) == crun_refuses_cgroups()
    out = client().containers.run(BASE_IMAGE, ["sh", "-c", "echo started; ulimit -n"], remove=True)
    limits = dict(item.split("=") for item in ulimits_within_hard_limits())
    assert out.decode().split() == ["started", limits["nofile"].split(":")[0]]


def _cached_rows(report) -> list[tuple[str, bool]]:
    return [(s.instruction, s.cached) for s in report.steps if not s.is_from]


def test_the_engine_is_podman_and_auto_builds_with_buildah(podman, tmp_path):
    from course_helpers.builder.build import build, builders_available
    from course_helpers.engine.client import client
    from course_helpers.engine.podman import engine_is_podman
    from course_helpers.errors import BuildError

    assert engine_is_podman(client())
    assert builders_available() == ["buildah"]
    ctx = tmp_path / "ctx"
    _write(ctx, "Dockerfile", f"FROM python:3.11-slim-bookworm\nRUN echo {uuid.uuid4().hex} > /m\n")
    with pytest.raises(BuildError, match="is Podman, whose only builder is Buildah"):
        build(ctx, progress=False, builder="buildkit")
    report = build(ctx, f"course-test-podman:{uuid.uuid4().hex[:8]}", progress=False)
    assert report.builder == "buildah"
    assert [(s.index, s.instruction.split()[0], s.cached) for s in report.steps] == [
        (1, "FROM", True), (2, "RUN", False)]
    assert report.steps[1].layer and report.steps[1].layer.startswith("sha256:")


def test_a_failed_buildah_step_is_one_sentence(podman, tmp_path):
    from course_helpers.builder.build import build
    from course_helpers.errors import BuildError

    ctx = tmp_path / "ctx"
    _write(ctx, "Dockerfile", f"FROM python:3.11-slim-bookworm\nRUN echo {uuid.uuid4().hex}\nRUN exit 3\n")
    with pytest.raises(BuildError) as err:
        build(ctx, progress=False)
    assert str(err.value).startswith("Step 3/3 `RUN exit 3` failed with exit code 3:"), str(err.value)
    assert err.value.exit_code == 3
    _write(ctx, "Dockerfile", "FROM python:3.11-slim-bookworm\nCOPY nothere.txt /x\n")
    with pytest.raises(BuildError, match=r"^Step 2/2 `COPY nothere.txt /x` failed: a file that COPY names is not"):
        build(ctx, progress=False)


def test_the_seed_teaches_the_same_facts_under_podman(podman):
    """020-060 under Podman: a second build all cached, two tags one id, the edit busts COPY and pip,
    and the requirements-first order keeps pip cached after an app.py edit."""
    from course_helpers.builder.build import build
    from course_helpers.cache.explain import explain
    from course_helpers.cache.predict import predict
    from course_helpers.layers.images import same_image
    from course_helpers.lesson.run import run_app
    from course_helpers.lesson.workspace import REQUIREMENTS_FIRST, edit, workspace

    app = workspace(f"podman-{uuid.uuid4().hex[:8]}")
    repo = f"course-test-podman-seed-{uuid.uuid4().hex[:8]}"
    first = build(app, f"{repo}:first", no_cache=True, progress=False)
    assert first.builder == "buildah"
    assert all(not cached for _, cached in _cached_rows(first))

    second = build(app, f"{repo}:second", progress=False)
    assert all(cached for _, cached in _cached_rows(second)), second.text()
    # Podman may write the course's two LABEL rows in either order (seen once in CI, 2026-12-04, and
    # once before): then two ids, with the same layers and the same labels.
    if not same_image(f"{repo}:first", f"{repo}:second"):
        one, two = (podman.client().api.inspect_image(f"{repo}:{t}") for t in ("first", "second"))
        assert one["RootFS"]["Layers"] == two["RootFS"]["Layers"] and \
            one["Config"]["Labels"] == two["Config"]["Labels"], "\n".join(
        f"{t}: " + " | ".join(f"{r.get('Id', '')[7:19]} {r.get('CreatedBy', '')[:50]}"
                              for r in podman.client().api.history(f"{repo}:{t}")) for t in ("first", "second"))
    with run_app(f"{repo}:second") as server:  # Podman's containers start: limits within the hard ones
        assert server.get("/") == "Hello world!"

    edit(app / "app.py", "Hello world!", "Hello universe!")
    prediction = predict(app, builder="buildah", against=second)
    third = build(app, f"{repo}:third", progress=False)
    assert _cached_rows(third) == [
        ("WORKDIR /usr/src/app", True), ("COPY . .", False), ("RUN pip3 install -r requirements.txt", False),
        ('CMD ["python3", "-m", "flask", "run", "--host=0.0.0.0"]', False)]
    assert [(p.instruction, p.cached) for p in prediction.steps if not p.instruction.startswith("FROM")] == \
        _cached_rows(third)
    why = {s.instruction: s.reason for s in explain(third, against=second).steps}
    assert "app.py content changed" in why["COPY . ."]
    assert "parent changed" in why["RUN pip3 install -r requirements.txt"]

    (app / "Dockerfile").write_text(REQUIREMENTS_FIRST)
    build(app, f"{repo}:fourth", progress=False)
    edit(app / "app.py", "Hello universe!", "Hello world!")
    fifth = build(app, f"{repo}:fifth", progress=False)
    assert _cached_rows(fifth) == [
        ("WORKDIR /usr/src/app", True), ("COPY requirements.txt .", True),
        ("RUN pip3 install -r requirements.txt", True), ("COPY . .", False),
        ('CMD ["python3", "-m", "flask", "run", "--host=0.0.0.0"]', False)]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_buildah_prediction_matches_real_build(podman, make_context, scenario: Scenario):
    # The service's storage goes at the end of the module: tags need no removal one by one.
    check_scenario(make_context, [], "buildah", scenario)


def test_a_lesson_claim_lives_on_its_own_engine(podman, monkeypatch):
    """070's Buildah cell: a kernel holding a claim on Docker takes one on Podman and comes back.

    Seen before claims were kept per engine: back on Docker, the kernel judged its Podman claim
    against Docker's and told itself "another notebook used builder-demo while you were idle".
    """
    from course_helpers.engine import claims
    from course_helpers.engine.client import reset

    repo = f"ct-claim-{uuid.uuid4().hex[:8]}"

    def on(address: str | None) -> None:
        if address is None:
            monkeypatch.delenv("DOCKER_HOST", raising=False)
        else:
            monkeypatch.setenv("DOCKER_HOST", address)
        reset()

    try:
        on(None)
        claims.acquire(repo, wait=False)
        on(podman.address)
        claims.renew()  # nothing of this engine held yet: nothing to judge
        claims.acquire(repo, wait=False)
        on(None)
        claims.renew()  # the Docker claim is still ours: no LessonInterrupted
        assert claims.held() == [repo] and len([k for k in claims._held if k[1] == repo]) == 2
    finally:
        on(None)
        claims.release(repo)
        on(podman.address)
        claims.release(repo)
    assert repo not in claims.held()


def test_the_export_reader_and_build_checks_on_podman(podman, tmp_path):
    """Podman's export names each layer <diff id>.tar at the top; Buildah has no build checks."""
    from course_helpers import build, build_checks, explore, history

    ctx = tmp_path / "app"
    _write(ctx, "Dockerfile", "FROM python:3.11-slim-bookworm\nWORKDIR /usr/src/app\nCOPY a.txt b.txt /srv/\n"
                              "RUN echo hi > /srv/c.txt\n")
    _write(ctx, "a.txt", "alpha\n")
    _write(ctx, "b.txt", "beta\n")
    tag = f"ct-podexp-{uuid.uuid4().hex[:6]}:one"
    build(ctx, tag, progress=False)
    contents = history(tag).contents()
    copy, run = contents.of("COPY"), contents.of("RUN")
    assert (copy.files, copy.file_bytes) == (2, 11) and run.files >= 1
    # Buildah keeps WORKDIR in the config: no layer, and both readers say so instead of failing.
    assert contents.of("WORKDIR").files == 0 and "no layer of its own" in contents.of("WORKDIR").created_by
    found = explore(tag, progress=False).find("WORKDIR")
    assert not found and repr(found).startswith(f"No layer of {tag} was made by WORKDIR")
    said = str(build_checks(ctx))
    assert said.startswith("BuildKit's build checks run in a Docker engine's BuildKit, and this engine is Podman")
