"""build() against the real engine, with both builders.

Each test builds a copy of sample_app in tmp_path that also holds a file with a unique
marker.  Why: BuildKit keeps its cache apart from images (ENGINE.md), so a test that edits
app.py to 'Hello universe!' would, on its second run, meet the first run's cache and see
everything CACHED.  A unique file in the context makes every run's ``COPY . .`` new, so the
cache can only come from builds made earlier in the same test.  (A build arg would not do:
BuildKit does not key COPY on args; ``no_cache=True`` would also work, but then every test
pays for pip twice.)  Images are tagged ``course-test-<random>:...``, carry the session
labels, and are removed when the test ends.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from course_helpers.builder.build import build
from course_helpers.engine.cli import buildkit_client, candidate_paths, describe_probes, probe_all
from course_helpers.engine.packages import course_release
from course_helpers.config import BASE_IMAGE, LABEL_SESSION, REPO_ROOT, SESSION_ID
from course_helpers.dockerfile.parse import LAYER_INSTRUCTIONS
from course_helpers.errors import BuildError, CourseError, DockerfileError

pytestmark = pytest.mark.builds  # full tier: the notebooks show these facts in the quick one

SIMPLE_FROM = "FROM python:3.11-slim-bookworm"
REQUIREMENTS_FIRST = """FROM python:3.11-slim-bookworm

WORKDIR /usr/src/app

COPY requirements.txt .

RUN pip3 install -r requirements.txt

COPY . .

CMD ["python3", "-m", "flask", "run", "--host=0.0.0.0"]
"""


@pytest.fixture(scope="session")
def docker_client():
    from course_helpers.engine.client import try_client
    cli = try_client()
    if cli is None:
        pytest.skip("no Docker engine answers (DOCKER_HOST or /var/run/docker.sock)")
    try:
        cli.images.get(BASE_IMAGE)
    except Exception:
        pytest.skip(f"the base image {BASE_IMAGE} is missing: run ./course setup")
    return cli


@pytest.fixture(params=["buildkit", "classic"])
def builder(request, docker_client):
    if request.param == "buildkit" and buildkit_client() is None:
        pytest.skip(f"no docker client here can run BuildKit builds (tried: {describe_probes()})")
    return request.param


@pytest.fixture
def tags(docker_client):
    """Unique tags for one test; the images behind them are removed afterwards."""
    prefix = f"course-test-{uuid.uuid4().hex[:10]}"
    made: list[str] = []

    def make(name: str) -> str:
        made.append(f"{prefix}:{name}")
        return made[-1]

    yield make
    for tag in made:
        try:
            docker_client.images.remove(tag, force=True)
        except Exception:
            pass  # never made (a failed build), or already gone with another tag


@pytest.fixture
def quiet(docker_client):
    """A progress callback that keeps the lines, then removes the classic builder's leftovers.

    A failed classic build keeps the images of the steps before the failure (they are its
    cache).  They carry no labels, so they are found by the ids our own stream printed
    (`` ---> 1a2b3c4d5e6f``), limited to images that did not exist before the test, and removed
    newest first without force (an image someone else built on is left alone).
    """
    # The ids alone, in one call: images.list() inspects each image, and on the shared engine one
    # removed meanwhile by another run, or a slow answer, made the fixture fail before the test.
    before = {row["Id"] for row in docker_client.api.images(all=True)}
    lines: list[str] = []
    yield lines.append
    ids = [m.group(1) for line in lines for m in [re.match(r"^ ---> ([0-9a-f]{12})$", line)] if m]
    for short in reversed(ids):
        try:
            image = docker_client.images.get(short)
        except Exception:
            continue
        if image.id not in before and not image.tags:
            try:
                docker_client.images.remove(image.id, noprune=True)
            except Exception:
                pass


@pytest.fixture
def app(tmp_path) -> Path:
    ctx = tmp_path / "app"
    shutil.copytree(REPO_ROOT / "sample_app", ctx)
    (ctx / "test-run-marker.txt").write_text(uuid.uuid4().hex + "\n")  # see the module docstring
    return ctx


def edit_app(ctx: Path) -> None:
    app_py = ctx / "app.py"
    app_py.write_text(app_py.read_text().replace("Hello world!", "Hello universe!"))


def layer_steps(instructions: list[str]) -> list[str]:
    return [i for i in instructions if i.split()[0] in LAYER_INSTRUCTIONS]


# --- detection --------------------------------------------------------------------------------

def test_client_detection_looks_at_every_candidate():
    paths = candidate_paths()
    assert len(paths) == len({Path(p).resolve() for p in paths})  # /bin/docker and /usr/bin/docker once
    if Path("/usr/bin/docker").exists():
        assert any(Path(p).resolve() == Path("/usr/bin/docker").resolve() for p in paths)
    assert probe_all() is probe_all()  # cached: probed once per process
    cli = buildkit_client()
    if cli is not None:
        assert cli.via in ("buildx", "builtin") and cli.progress in ("rawjson", "plain")
        assert cli.via == "buildx" or int(cli.version.split(".")[0]) < 23


# --- arguments refused up front ------------------------------------------------------------------

def test_refuses_bad_arguments(tmp_path, monkeypatch):
    with pytest.raises(BuildError, match="is not a directory"):
        build(tmp_path / "nope")
    with pytest.raises(DockerfileError, match="There is no Dockerfile at"):
        build(tmp_path)
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    with pytest.raises(ValueError, match="'auto', 'buildkit', 'classic' or 'buildah'"):
        build(tmp_path, builder="buildx")
    (tmp_path / "Dockerfile").write_text("FROM scratch AS Base\nFROM base AS app\n")
    with pytest.raises(DockerfileError, match=r"target='tests': .* no stage of that name \(named stages: base, app\)"):
        build(tmp_path, target="tests")
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    monkeypatch.setattr(sys.modules["course_helpers.builder.build"], "buildkit_client", lambda: None)
    with pytest.raises(BuildError, match=r"No docker client .* can run BuildKit builds \(tried: "):
        build(tmp_path, builder="buildkit")


# --- the lessons --------------------------------------------------------------------------------

def test_second_build_is_all_cached(app, builder, tags, docker_client, quiet):
    first = build(app, tags("one"), builder=builder, progress=quiet)
    assert first.builder == builder and first.image_id.startswith("sha256:")
    assert not first.all_cached  # the marker file makes COPY . . new
    second = build(app, tags("two"), builder=builder, progress=quiet)
    assert second.all_cached, second.text()
    assert_one_image_or_one_content(first, second)
    # layers and sizes come from the image's history
    run = next(s for s in second.steps if s.instruction.startswith("RUN pip3"))
    assert run.layer and run.layer.startswith("sha256:") and run.size > 1_000_000
    image = docker_client.images.get(second.image_id)
    assert run.layer in image.attrs["RootFS"]["Layers"]
    assert image.labels.get(LABEL_SESSION) == SESSION_ID


def test_each_step_gets_its_own_layer(tmp_path, builder, tags, docker_client, quiet):
    # A RUN that changes no file makes no layer with the classic builder (BuildKit keeps an empty
    # one): the steps after it must still get their own layers and sizes, not a neighbour's.
    marker = uuid.uuid4().hex[:12]
    (tmp_path / "Dockerfile").write_text(
        f"FROM {BASE_IMAGE}\nLABEL marker={marker}\nRUN echo {marker} > /marker\nENV G=1\nWORKDIR /app\n"
        "COPY a.txt .\nRUN cat a.txt\nCMD [\"x\"]\n")
    (tmp_path / "a.txt").write_text("hello\n")
    report = build(tmp_path, tags("layers"), builder=builder, progress=quiet)
    layers = docker_client.images.get(report.image_id).attrs["RootFS"]["Layers"]
    step = {s.instruction.split(None, 1)[0] + " " + s.instruction.split()[1]: s for s in report.steps}
    # The bytes of each layer's files, from the image's export: the same on every image store
    # (the SIZE docker history shows counts disk blocks on the containerd store).
    from course_helpers.layers.export import image_layers

    (found,) = image_layers([docker_client.images.get(report.image_id)])
    file_bytes = {d: sum(m.size for m in members if m.kind == "file")
                  for d, members in zip(found.diff_ids, found.layers)}
    assert [file_bytes[step[k].layer] for k in ("RUN echo", "COPY a.txt")] == [len(marker) + 1, 6]
    if step["RUN cat"].layer:
        assert file_bytes[step["RUN cat"].layer] == 0
    made = [s.layer for s in report.steps if s.layer]
    assert made == layers[len(layers) - len(made):], report.text()  # the top layers, in order
    if builder == "classic":
        assert step["RUN cat"].layer is None and len(made) == 3
    assert all(s.layer is None for s in report.steps if s.instruction.split()[0] in ("LABEL", "ENV", "CMD"))


def test_edit_reruns_copy_and_everything_after(app, builder, tags, quiet):
    build(app, tags("before"), builder=builder, progress=quiet)
    edit_app(app)
    report = build(app, tags("after"), builder=builder, progress=quiet)
    assert report.cached_steps[0] == "WORKDIR /usr/src/app"
    assert layer_steps(report.ran_steps) == ["COPY . .", "RUN pip3 install -r requirements.txt"]
    assert report.steps[0].badge == "BASE"


def test_requirements_first_edit_reruns_only_last_copy(app, builder, tags, quiet):
    (app / "Dockerfile").write_text(REQUIREMENTS_FIRST)
    build(app, tags("fourth"), builder=builder, progress=quiet)
    edit_app(app)
    report = build(app, tags("fifth"), builder=builder, progress=quiet)
    assert layer_steps(report.ran_steps) == ["COPY . ."], report.text()
    assert report.cached_steps[:3] == ["WORKDIR /usr/src/app", "COPY requirements.txt .",
                                       "RUN pip3 install -r requirements.txt"]


def assert_one_image_or_one_content(a, b):
    """Two all-cached builds: one image ID, except where each build's index holds its own attestation.

    Then (buildx on the containerd store) the IDs differ and the image manifest, so the
    config and the layers, is the same.
    """
    from course_helpers.layers.images import same_image

    same = same_image(a, b)
    assert same.same_content, str(same)
    attested = bool(same.parts_a.attestations or same.parts_b.attestations)
    assert bool(same) is not attested, str(same)


def test_two_builds_of_one_context_are_one_image_or_one_content(app, builder, tags, docker_client, quiet):
    a = build(app, tags("a"), builder=builder, progress=quiet)
    b = build(app, tags("b"), builder=builder, progress=quiet)
    assert_one_image_or_one_content(a, b)
    assert docker_client.images.get(a.tags[0]).id == a.image_id and docker_client.images.get(b.tags[0]).id == b.image_id


def test_failing_run_raises_and_leaves_nothing(app, builder, tags, docker_client, quiet):
    marker = f"course-fail-{uuid.uuid4().hex[:8]}"
    (app / "Dockerfile").write_text(f"FROM python:3.11-slim-bookworm\nWORKDIR /usr/src/app\n"
                                    f"RUN echo {marker} && exit 3\n")
    tag = tags("broken")
    with pytest.raises(BuildError) as info:
        build(app, tag, builder=builder, progress=quiet)
    error = info.value
    assert (error.step, error.instruction, error.exit_code) == (3, f"RUN echo {marker} && exit 3", 3)
    assert str(error).startswith("Step 3/") and "failed with exit code 3" in str(error)
    assert marker in error.log_tail and error.command
    labelled = docker_client.containers.list(all=True, filters={"label": f"{LABEL_SESSION}={SESSION_ID}"})
    assert labelled == []
    # the classic builder's RUN container carries no labels (they come as LABEL steps at the end),
    # so also look for any container that ran the failing command
    leftovers = [c for c in docker_client.containers.list(all=True) if marker in " ".join(c.attrs["Args"] or [])]
    assert leftovers == []
    with pytest.raises(Exception):
        docker_client.images.get(tag)


def test_broken_dockerfile_is_a_clear_error(app, builder, tags, quiet):
    (app / "Dockerfile").write_text("FROM python:3.11-slim-bookworm\nWORKDIR /x\nRUNN echo hi\n")
    # Docker 28 adds its guess, as one clause: "(unknown instruction: RUNN, did you mean RUN?)".
    with pytest.raises(BuildError, match=r"Dockerfile .* has an error on line 3 \(unknown instruction: RUNN"
                                         r"(, did you mean RUN\?)?\): fix that line"):
        build(app, tags("syntax"), builder=builder, progress=quiet)


def test_missing_copy_source_is_named(app, builder, tags, quiet):
    (app / "Dockerfile").write_text("FROM python:3.11-slim-bookworm\nWORKDIR /x\nCOPY nothere.txt .\n")
    with pytest.raises(BuildError, match=r"Step 3/\d+ `COPY nothere.txt .` failed: a file that COPY names is not "
                                         r"in the build context"):
        build(app, tags("missing"), builder=builder, progress=quiet)


def test_unreachable_package_index_is_said(app, builder, tags, quiet):
    (app / "Dockerfile").write_text(
        "FROM python:3.11-slim-bookworm\nWORKDIR /usr/src/app\nCOPY . .\n"
        "RUN pip3 install --index-url http://127.0.0.1:9/simple --retries 0 --timeout 2 -r requirements.txt\n")
    with pytest.raises(BuildError, match=r"failed with exit code 1: pip could not get the packages .* unreachable"):
        build(app, tags("offline"), builder=builder, progress=quiet)


def test_progress_lines_stream(app, builder, tags, quiet):
    seen: list[str] = []
    build(app, tags("p"), builder=builder, progress=seen.append)
    assert any("COPY . ." in line for line in seen)


# --- what the learner sees ----------------------------------------------------------------------

def _expected_build_command(builder: str, tag: str, context: str, extra: str) -> str:
    """The command a learner types for these builds, from the client the course found here."""
    from course_helpers.config import session_labels

    labels = "".join(f"--label={key}={value} " for key, value in session_labels().items())
    if builder == "classic":
        return f"DOCKER_BUILDKIT=0 docker build -t {tag} {extra}--force-rm {labels}{context}"
    cli = buildkit_client()
    on_path = shutil.which("docker")
    docker = "docker" if on_path and Path(on_path).resolve() == Path(cli.path).resolve() else cli.path
    files = f"--progress={cli.progress} --iidfile iid.txt "
    files += "--metadata-file metadata.json " if cli.offers("--metadata-file") else ""
    if cli.via == "buildx":
        return f"{docker} buildx build --load -t {tag} {extra}{files}{labels}{context}"
    return f"DOCKER_BUILDKIT=1 {docker} build -t {tag} {extra}{files}{labels}{context}"


def test_report_shows_the_docker_build_a_learner_types(app, builder, tags, quiet, monkeypatch):
    import html

    monkeypatch.chdir(app.parent)  # a context beside the working directory is named relatively
    tag = tags("cmd")
    report = build(app, tag, builder=builder, no_cache=True, build_args={"GREETING": "hi there"}, progress=quiet)
    expected = _expected_build_command(builder, tag, "app", "--no-cache '--build-arg=GREETING=hi there' ")
    assert report.command == expected
    if builder == "buildkit" and buildkit_client().path == "/usr/bin/docker" and shutil.which("docker") != \
            "/usr/bin/docker":  # this machine (ENGINE.md): the 20.10 client, not the 28.x first on PATH
        assert expected.startswith("DOCKER_BUILDKIT=1 /usr/bin/docker build -t ")
    assert report.text().endswith(f"on your terminal:\n  $ {expected}")
    assert f"<code>$ {html.escape(expected)}</code>" in report._repr_html_()
    # The course's own bookkeeping is shown as passed: its labels are part of the image's configuration.
    assert "--label=io.docker-layers-course.managed=true" in report.command


def test_a_notebook_build_folds_its_log_under_the_step_table(app, tags):
    """In a kernel the log streams into one display that ends as the table with the log folded."""
    import nbformat
    from nbclient import NotebookClient

    tag = tags("nb")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(f"from course_helpers import build\nreport = build({str(app)!r}, {tag!r})")]
    NotebookClient(nb, timeout=300, kernel_name="python3").execute()
    outputs = nb.cells[0].outputs
    assert [o.output_type for o in outputs] == ["display_data"], outputs  # no stream of 60 lines
    view = outputs[0].data
    assert view["text/html"].index("<table>") < view["text/html"].index("<details>")  # the log under the table
    assert "RUN pip3 install" in view["text/html"] and f"build log of {tag}: " in view["text/plain"]
    assert "on your terminal:" in view["text/plain"]


def test_outside_a_notebook_the_log_is_printed_line_by_line(capsys):
    from course_helpers.builder.progress import LiveLog

    live = LiveLog("demo:1")
    live("#1 [internal] load build definition from Dockerfile")
    live("#1 DONE 0.0s")
    live.finish(None)  # nothing to fold in a terminal: the lines are already there
    assert capsys.readouterr().out == "#1 [internal] load build definition from Dockerfile\n#1 DONE 0.0s\n"


# --- rawjson or plain: one build, one report ------------------------------------------------------

@pytest.fixture
def rawjson_cli(docker_client):
    cli = buildkit_client()
    if cli is None or cli.progress != "rawjson":
        pytest.skip(f"no docker client here offers --progress=rawjson (tried: {describe_probes()})")
    return cli


def _table(report) -> list[tuple]:
    return [(s.stage, s.index, s.instruction, s.badge) for s in report.steps]


def _headers(lines: list[str]) -> list[str]:
    """The step headers a learner reads in the live lines (``#5 [2/4] WORKDIR /usr/src/app``), unnumbered."""
    return sorted({re.sub(r"^#\d+ ", "", line) for line in lines if re.match(r"^#\d+ \[\d+/\d+\] ", line)})


def test_rawjson_and_plain_progress_give_the_same_report(tmp_path, rawjson_cli, tags, monkeypatch):
    """The same three builds (cold, cached, after an edit), once read as rawjson and once as plain."""
    import dataclasses

    import course_helpers.builder.build as build_module

    seen: dict[str, tuple[list[list[tuple]], list[str], list[str]]] = {}
    for mode in ("rawjson", "plain"):
        cli = dataclasses.replace(rawjson_cli, progress=mode)
        monkeypatch.setattr(build_module, "buildkit_client", lambda cli=cli: cli)
        ctx = tmp_path / mode
        shutil.copytree(REPO_ROOT / "sample_app", ctx)
        (ctx / "test-run-marker.txt").write_text(uuid.uuid4().hex + "\n")
        lines: list[str] = []
        cold = build(ctx, tags(f"{mode}-cold"), no_cache=True, progress=lines.append)
        cached = build(ctx, tags(f"{mode}-cached"), progress=False)
        edit_app(ctx)
        edited = build(ctx, tags(f"{mode}-edit"), progress=False)
        assert cold.log.lstrip().startswith("{") == (mode == "rawjson")  # the mode really was asked for
        assert cold.build_ref and edited.build_ref  # buildx names the record in either mode
        seen[mode] = ([_table(r) for r in (cold, cached, edited)], _headers(lines), lines)
    assert seen["rawjson"][0] == seen["plain"][0]
    assert [b for _, _, _, b in seen["rawjson"][0][1]] == ["BASE", "CACHED", "CACHED", "CACHED"]
    assert [b for _, _, _, b in seen["rawjson"][0][2]] == ["BASE", "CACHED", "RAN", "RAN"]
    # What the learner watched: the same steps under the same headers, and pip's own words.
    assert seen["rawjson"][1] == seen["plain"][1]
    assert any(re.match(r"^#\d+ \d+\.\d+ Collecting flask==2\.3\.1$", line) for line in seen["rawjson"][2])
    assert not any(line.lstrip().startswith("{") for line in seen["rawjson"][2])


def test_the_engine_record_counts_what_the_build_printed(app, tags):
    from course_helpers.builder.log_common import solve_status
    from course_helpers.engine.build_history import no_history_reason

    cli = buildkit_client()
    reason = no_history_reason(cli)
    if reason or cli.progress != "rawjson":
        pytest.skip(reason or "the client has buildx history but no rawjson progress to count vertices in")
    for report in (build(app, tags("one"), progress=False), build(app, tags("two"), progress=False)):
        counts = report.engine_record()
        record = counts.record
        assert (record.ref, record.status) == (report.build_ref, "completed")
        # Every vertex the stream showed, cached or not, by digest; buildx's own provenance step
        # (for --metadata-file) runs in the client and is not the engine's.
        vertices: dict[str, tuple[str, bool]] = {}
        for line in report.log.splitlines():
            for vx in (solve_status(line) or {}).get("vertexes") or []:
                name, cached = vertices.get(vx["digest"], (vx["name"], False))
                vertices[vx["digest"]] = (name, cached or bool(vx.get("cached")))
        solved = [c for name, c in vertices.values() if name != "resolving provenance for metadata file"]
        assert (record.total_steps, record.cached_steps) == (len(solved), sum(solved)), report.log
        assert record.cached_steps >= len(report.cached_steps)
        assert record.total_steps > len(report.steps)  # its [internal] loads and the export count too
        assert f"the engine's build record   {record.cached_steps}" in str(counts)
        assert f"docker buildx history inspect {record.ref}" in str(counts)
    assert report.all_cached and len(report.cached_steps) == 3


def test_a_classic_build_has_no_engine_record(app, tags):
    report = build(app, tags("classic"), builder="classic", progress=False)
    assert report.build_ref is None
    with pytest.raises(CourseError, match=r"^The engine keeps a build record only of builds run through buildx"):
        report.engine_record()


# --- older clients, on engines of their own (the full tier) --------------------------------------

_ON_AN_OLDER_ENGINE = """
import json, sys
from course_helpers import CourseError, build, build_checks
from course_helpers.engine.cli import buildkit_client

ctx, repo = sys.argv[1], sys.argv[2]
cli = buildkit_client()
lines = []
cold = build(ctx, repo + ":cold", no_cache=True, progress=lines.append)
cached = build(ctx, repo + ":cached", progress=False)
try:
    record = str(cached.engine_record())
except CourseError as exc:
    record = str(exc)
print(json.dumps({"client": [cli.via, cli.progress, cli.version], "lines": lines,
                  "cold": [[s.instruction, s.badge] for s in cold.steps],
                  "cached": [[s.instruction, s.badge] for s in cached.steps],
                  "record": record, "checks": str(build_checks(ctx))}))
"""


@pytest.mark.full
@pytest.mark.parametrize("release, via", [("docker20", "builtin"), ("docker26", "buildx")])
def test_an_older_client_builds_in_plain_mode_and_says_what_it_lacks(release, via, tmp_path):
    """Docker 20.10's client (BuildKit built in) and Docker 26's buildx 0.13.1: no rawjson, no build records,
    no --check.  (tests/test_engines.py runs every notebook there, 130's build checks cell included.)"""
    from course_helpers.engine.base_image import ensure_base_image
    from course_helpers.engine.daemon import start_private_engine

    if os.geteuid() != 0 or not shutil.which("iptables"):
        pytest.skip("a private engine needs root and iptables (./course setup installs it), and this machine lacks them")
    engine = start_private_engine(f"rj{release[-2:]}", release=release, progress=None)
    try:
        ensure_base_image(cli=engine.client(), pull=False, progress=None)
        # A process of its own probes the clients afresh; PYTHONPATH: this checkout's helpers.
        env = engine.process_env(COURSE_WORKSPACE=str(tmp_path / "ws"), PYTHONPATH=str(REPO_ROOT))
        ctx = tmp_path / "app"
        shutil.copytree(REPO_ROOT / "sample_app", ctx)
        (ctx / "test-run-marker.txt").write_text(uuid.uuid4().hex + "\n")
        repo = f"course-test-{uuid.uuid4().hex[:10]}"
        proc = subprocess.run([sys.executable, "-c", _ON_AN_OLDER_ENGINE, str(ctx), repo], cwd=REPO_ROOT, env=env,
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr
        seen = json.loads(proc.stdout.splitlines()[-1])
        assert seen["client"][:2] == [via, "plain"]
        assert [b for _, b in seen["cold"]][2:] == ["RAN", "RAN"] and seen["cold"][0] == [SIMPLE_FROM, "BASE"]
        assert [b for _, b in seen["cached"]] == ["BASE", "CACHED", "CACHED", "CACHED"]
        assert any(line.endswith("] COPY . .") for line in seen["lines"])  # the plain lines, as printed
        assert seen["record"].startswith("The docker client here (docker ") and "has no `docker buildx history`" \
            in seen["record"] and seen["record"].count(". ") == 0
        assert seen["checks"].startswith("BuildKit's build checks need `docker buildx build --check`, which the "
                                         "docker client here (docker ") and seen["checks"].count(". ") == 0
        # The course's own client (buildx 0.29, --check) against this engine: the engine is what lacks checks.
        rel = course_release()
        if rel is not None and rel.has_buildx:
            newer = {**env, "PATH": f"{rel.bin}{os.pathsep}{env['PATH']}", "DOCKER_CONFIG": str(rel.docker_config)}
            said = subprocess.run([sys.executable, "-c", "from course_helpers import build_checks; import sys; "
                                   "print(build_checks(sys.argv[1]))", str(ctx)], cwd=REPO_ROOT, env=newer,
                                  capture_output=True, text=True, timeout=300)
            assert said.returncode == 0, said.stderr
            assert said.stdout.startswith("BuildKit's build checks run in the engine, and this engine's BuildKit "
                                          "predates them"), said.stdout
    finally:
        engine.stop(wipe=True)
