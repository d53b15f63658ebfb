"""predict() and explain() against real engines, with both builders.

Each scenario is a Dockerfile, a context and an edit.  The context carries a
unique marker (a LABEL for classic, a file read by the first RUN for BuildKit,
whose cache outlives images), so every scenario starts cold and never meets a
cache an earlier run left.  FROM rows are not compared: the builders report
FROM's cache state inconsistently (see docs/cache-rules.md).

Every scenario runs on the engine in use (the main one: Docker 28, containerd
store, buildx) and on a private Docker 20.10 engine (overlay2, BuildKit built
into its client): the rules differ between the two (docs/cache-rules.md).  The
quick tier runs a few scenarios on the main engine; the rest, and Docker 20.10,
are in the full tier (``./course test --full``).
"""
from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

from course_helpers.builder.records import record_context_snapshot

pytestmark = pytest.mark.builds  # full tier: the notebooks show these facts in the quick one

BASE = "FROM python:3.11-slim-bookworm"


def _write(ctx: Path, name: str, text: str) -> None:
    (ctx / name).parent.mkdir(parents=True, exist_ok=True)
    (ctx / name).write_text(text)


def _dockerfile(body: str, marker: str) -> str:
    # The marker goes into the first RUN (BuildKit) and a LABEL (classic), so nothing is cached from before.
    return body.replace("@M@", marker)


SIMPLE = f"""{BASE}
LABEL marker=@M@
RUN echo @M@ > /marker
ENV GREETING=hello
WORKDIR /app
COPY requirements.txt .
RUN cat requirements.txt > /reqs
ARG VERSION=1
COPY . .
RUN echo version $VERSION && ls -la
CMD ["python3", "app.py"]
"""
IGNORE = "*.log\ndocs/**\n!docs/keep.md\n"


@dataclass
class Scenario:
    name: str
    edit: Callable[[Path, str], None]
    expect_file: str | dict | None = None  # what explain() must name for the first missed step (per builder)
    args_before: dict | None = None
    args_after: dict | None = None
    dockerfile: str = SIMPLE
    target: str | None = None  # --target, for both builds
    expect_after: str | None = None  # what explain() must say of every missed step after the first
    quick: tuple[str, ...] = ()  # the builders it also runs with in the quick tier (main engine)
    builders: tuple[str, ...] = ("buildkit", "classic", "buildah")  # the builders it was tried with
    rejected_by: dict | None = None  # Docker's major version, or version/builder -> its words as it refuses the file
    expect_step: dict | None = None  # builder -> (instruction, what explain() must say of that step)


def _edit_dockerfile(old: str, new: str) -> Callable[[Path, str], None]:
    def edit(ctx: Path, marker: str) -> None:
        text = (ctx / "Dockerfile").read_text()
        assert old in text
        _write(ctx, "Dockerfile", text.replace(old, new))
    return edit


MULTI = f"""{BASE} AS build
LABEL marker=@M@
RUN echo @M@ > /marker
COPY lib.txt /src/lib.txt
RUN cp /src/lib.txt /artifact
{BASE}
LABEL marker=@M@
# Not the same RUN as in stage build: BuildKit would run identical steps once and
# report them under either stage, as it pleases (docs/cache-rules.md, finding 19).
RUN echo @M@ final > /marker
COPY app.py /app.py
COPY --from=build /artifact /artifact
RUN cat /artifact
"""

# A build stage whose output does not change when its input does: the copy stays cached (finding 12).
SAME_BYTES = f"""{BASE} AS build
LABEL marker=@M@
RUN echo @M@ > /marker
COPY lib.txt /src/lib.txt
RUN cut -c1-3 /src/lib.txt > /artifact
{BASE}
LABEL marker=@M@
RUN echo @M@ final > /marker
COPY --from=build /artifact /artifact
RUN cat /artifact
"""

# --target a middle stage: BuildKit builds only what `middle` needs (not `unrelated`, not `final`);
# the classic builder builds every stage up to `middle`, `unrelated` included.
TARGET = f"""{BASE} AS base
LABEL marker=@M@
RUN echo @M@ > /marker
COPY lib.txt /lib.txt
{BASE} AS unrelated
LABEL marker=@M@
RUN echo @M@ unrelated > /marker
COPY app.py /app.py
FROM base AS middle
COPY app.py /app.py
RUN cat /lib.txt /app.py > /both
{BASE} AS final
COPY --from=middle /both /both
RUN cat /both
"""

# Two stages with the very same step on the same base: BuildKit runs it once (finding 19).
SHARED = f"""{BASE} AS one
RUN echo @M@ > /marker
COPY lib.txt /lib.txt
{BASE} AS two
RUN echo @M@ > /marker
COPY app.py /app.py
COPY --from=one /lib.txt /lib.txt
"""

# COPY --link (Docker 23+): a RUN before it re-runs (its ENV changed), the copied file does not.
LINK = f"""{BASE}
LABEL marker=@M@
RUN echo @M@ > /marker
ENV MODE=a
RUN echo $MODE > /mode
COPY --link app.py /app.py
RUN cat /app.py
"""
# What Docker 20.10 says of --link, with either builder: its Dockerfile reader is older than the flag.
NO_LINK = {"20": "Unknown flag: link"}
# A here-document (Docker 23+): BuildKit runs it as the RUN's script; Docker 28's classic builder
# runs, and keys, only the line `RUN <<EOF` (docs/cache-rules.md, 27).
HEREDOC = f"""{BASE}
LABEL marker=@M@
RUN echo @M@ > /marker
RUN <<EOF
echo one > /one
EOF
COPY app.py /app.py
"""
# A file written by a here-document; Docker 28's classic builder refuses it in its own words.
HEREDOC_COPY = f"""{BASE}
LABEL marker=@M@
RUN echo @M@ > /marker
COPY <<EOF /greeting.txt
hello
EOF
COPY app.py /app.py
"""
NO_HEREDOC = "does not know here-documents"

SCENARIOS = [
    Scenario("content edit", lambda c, m: _write(c, "app.py", "print('hello universe')\n"), "app.py",
             quick=("buildkit",)),
    Scenario("touch only", lambda c, m: os.utime(c / "app.py", (1e9, 1e9))),
    Scenario("chmod", lambda c, m: os.chmod(c / "app.py", 0o755), "app.py"),
    Scenario("edit an ignored file", lambda c, m: _write(c, "debug.log", "more noise\n")),
    Scenario("new file picked up by COPY . .", lambda c, m: _write(c, "extra.py", "x = 1\n"), "extra.py"),
    Scenario("build argument changed", lambda c, m: None, "VERSION", {"VERSION": "1"}, {"VERSION": "2"}),
    Scenario("ENV value changed", _edit_dockerfile("GREETING=hello", "GREETING=hi"), "GREETING"),
    Scenario("comment and whitespace in the Dockerfile",
             _edit_dockerfile("ENV GREETING=hello\n", "# say hello\nENV GREETING=hello   \n\n"),
             # Buildah compares ENV as written: the trailing spaces count (docs/cache-rules.md, 6b).
             {"buildkit": None, "classic": None, "buildah": "the line as written changed"}),
    Scenario("reordered instructions",
             _edit_dockerfile("ARG VERSION=1\nCOPY . .\n", "COPY . .\nARG VERSION=1\n"),
             # BuildKit: ARG is no step and COPY does not see build args, so nothing misses.
             {"classic": "COPY . .", "buildah": "COPY . .", "buildkit": None}),
    Scenario("multi-stage, first stage rebuilt", lambda c, m: _write(c, "lib.txt", "lib v2\n"), "lib.txt",
             dockerfile=MULTI),
    Scenario("multi-stage, rebuilt stage writes the same bytes", lambda c, m: _write(c, "lib.txt", "lib v2\n"),
             "lib.txt", dockerfile=SAME_BYTES, quick=("buildkit",)),
    Scenario("multi-stage, a step shared by two stages", lambda c, m: _write(c, "app.py", "print('v2')\n"),
             "app.py", dockerfile=SHARED),
    Scenario("--target a middle stage", lambda c, m: _write(c, "app.py", "print('v2')\n"), "app.py",
             dockerfile=TARGET, target="middle"),
    Scenario("an inserted instruction",
             _edit_dockerfile("WORKDIR /app\n", "WORKDIR /app\nRUN echo inserted > /inserted\n"),
             "a new instruction", expect_after="a new instruction before this step: `RUN echo inserted"),
    Scenario("an inserted LABEL",
             _edit_dockerfile("WORKDIR /app\n", "WORKDIR /app\nLABEL course.stage=070\n"),
             # BuildKit: LABEL is no step and changes no filesystem, so nothing misses.
             {"classic": "a new instruction", "buildah": "a new instruction", "buildkit": None},
             expect_after="a new instruction before this step: `LABEL course.stage=070`"),
    Scenario("a removed instruction", _edit_dockerfile("RUN cat requirements.txt > /reqs\n", ""),
             "an instruction removed before this step: `RUN cat requirements.txt > /reqs`",
             expect_after="an instruction removed before this step: `RUN cat requirements.txt > /reqs`"),
    Scenario("a moved instruction",
             _edit_dockerfile("RUN cat requirements.txt > /reqs\nARG VERSION=1\nCOPY . .\n",
                              "ARG VERSION=1\nCOPY . .\nRUN cat requirements.txt > /reqs\n"),
             "moved", expect_after="moved"),
    # BuildKit: the linked COPY runs (its link onto the new parent) with its copy from the cache;
    # the classic builder of Docker 28 ignores --link and chains as ever.
    Scenario("COPY --link after a step that re-runs", _edit_dockerfile("MODE=a", "MODE=b"),
             {"buildkit": "environment value MODE changed", "classic": "`ENV MODE=a` -> `ENV MODE=b`"},
             dockerfile=LINK, quick=("buildkit",), builders=("buildkit", "classic"), rejected_by=NO_LINK,
             expect_step={"buildkit": ("COPY --link app.py /app.py",
                                       "the copied layer itself comes from the cache")}),
    Scenario("a here-document's text edited", _edit_dockerfile("echo one > /one", "echo two > /one"),
             {"buildkit": "the text of its here-document changed (<<EOF)", "classic": None}, dockerfile=HEREDOC,
             quick=("buildkit",), builders=("buildkit", "classic"), rejected_by={"20": NO_HEREDOC}),
    Scenario("a COPY here-document's text edited", _edit_dockerfile("hello\n", "hello universe\n"),
             {"buildkit": "<<EOF content changed"}, dockerfile=HEREDOC_COPY, builders=("buildkit", "classic"),
             rejected_by={"20": NO_HEREDOC, "28/classic": "no source files were specified"}),
    Scenario("COPY gains --link", _edit_dockerfile("COPY requirements.txt .", "COPY --link requirements.txt ."),
             {"buildkit": "the instruction changed", "classic": None},
             builders=("buildkit", "classic"), rejected_by=NO_LINK),
]


@pytest.fixture
def make_context(tmp_path: Path):
    def make(dockerfile: str) -> tuple[Path, str]:
        marker = uuid.uuid4().hex[:12]
        ctx = tmp_path / "ctx"
        _write(ctx, "Dockerfile", _dockerfile(dockerfile, marker))
        _write(ctx, ".dockerignore", IGNORE + "Dockerfile\n")
        _write(ctx, "app.py", "print('hello world')\n")
        _write(ctx, "requirements.txt", "flask==2.3.1\n")
        _write(ctx, "lib.txt", "lib v1\n")
        _write(ctx, "debug.log", "noise\n")
        _write(ctx, "docs/keep.md", "kept\n")
        _write(ctx, "docs/skip.md", "skipped\n")
        os.chmod(ctx / "app.py", 0o644)
        return ctx, marker
    return make


# --- the engines -------------------------------------------------------------------------------

ENGINES = ["main", pytest.param("docker20", marks=pytest.mark.full)]


@pytest.fixture(scope="session")
def docker20_engine():
    """A private Docker 20.10 engine (overlay2) with the base image, for the session; stopped and wiped after."""
    from course_helpers.engine.base_image import ensure_base_image
    from course_helpers.engine.daemon import start_private_engine
    from course_helpers.errors import CourseError

    if os.geteuid() != 0 or not shutil.which("iptables"):
        pytest.skip("a private Docker 20.10 engine needs root and iptables, and this machine lacks them")
    try:
        private = start_private_engine("ct20pred", release="docker20", progress=None)
    except CourseError as exc:
        pytest.skip(f"no private Docker 20.10 engine here: {exc}")
    try:
        ensure_base_image(cli=private.client(), pull=False, progress=None)
        yield private
    finally:
        private.stop(wipe=True)


@pytest.fixture(params=ENGINES)
def scenario_engine(request, monkeypatch):
    """The engine a scenario runs on: the one in use, or Docker 20.10 with its own client first on PATH.

    Yields the engine's major version ("28"), which decides what its Dockerfile reader accepts.
    """
    from course_helpers.engine import cli, client

    if request.param == "main":
        request.getfixturevalue("base")  # skips, naming what is missing, when the engine or its base is
        yield request.getfixturevalue("engine").version()["Version"].split(".")[0]
        return
    private = request.getfixturevalue("docker20_engine")
    for key, value in private.client_env.items():
        monkeypatch.setenv(key, value)
    if not private.release.has_buildx:
        monkeypatch.delenv("DOCKER_CONFIG", raising=False)  # no newer buildx: BuildKit as 20.10's client runs it
    client.reset()
    cli.probe_all.cache_clear()
    yield client.client().version()["Version"].split(".")[0]
    monkeypatch.undo()
    client.reset()
    cli.probe_all.cache_clear()


@pytest.fixture
def built_tags(scenario_engine):
    from docker.errors import NotFound

    from course_helpers.engine.client import client, list_images

    engine = client()
    tags: list[str] = []
    before = {img.id for img in list_images(engine, filters={"dangling": True})}
    yield tags
    for name in tags:  # tags and image ids this test made; nothing else
        try:
            engine.images.remove(name, force=True)
        except NotFound:
            pass  # already gone with its tag, or never built
    # The classic builder leaves an untagged image for each stage the final one copies from;
    # remove those this test made (new since it started, and carrying its marker in their history).
    markers = [t.split(":", 1)[1] for t in tags if t.startswith("course-test-predict:")]
    for img in list_images(engine, filters={"dangling": True}):  # skips one another run removed meanwhile
        if img.id in before:
            continue
        try:  # ... or removes after it was listed
            steps = " ".join(row.get("CreatedBy", "") for row in img.history())
            if any(m in steps for m in markers):
                engine.images.remove(img.id, force=True)
        except NotFound:
            continue


def _build(ctx: Path, tag: str, builder: str, args: dict | None, target: str | None = None):
    from course_helpers.builder.build import build
    report = build(ctx, tag, builder=builder, build_args=args, target=target, progress=False)
    record_context_snapshot(report)  # idempotent if build() already records it
    return report


def _rows(steps) -> list[tuple[str, str, bool]]:
    return [(s.stage, " ".join(s.instruction.split()), s.cached) for s in steps
            if not s.instruction.upper().startswith("FROM")]


# The classic builder commits an image per instruction, slow on the containerd store (20-60 s a
# scenario here): the quick tier takes a few BuildKit scenarios that no notebook shows (notebook 070
# compares both builders on an ENV change and an added LABEL); the full tier takes all, on both engines.
@pytest.mark.parametrize("scenario, builder", [
    pytest.param(s, b, id=f"{s.name}-{b}", marks=() if b in s.quick else pytest.mark.full)
    for s in SCENARIOS for b in ("buildkit", "classic")])
def test_prediction_matches_real_build(scenario_engine, make_context, built_tags, builder: str, scenario: Scenario):
    check_scenario(make_context, built_tags, builder, scenario, scenario_engine)


def check_scenario(make_context, built_tags: list[str], builder: str, scenario: Scenario,
                   engine: str = "") -> None:
    """Build, edit, predict, build again on the engine in use; the prediction and explain() must match the build.

    tests/test_podman.py runs the same scenarios with Buildah.
    """
    from course_helpers.cache.explain import explain
    from course_helpers.cache.predict import predict
    from course_helpers.errors import BuildError, DockerfileError

    if builder not in scenario.builders:
        pytest.skip(f"{scenario.name!r} has not been tried with {builder} (docs/cache-rules.md)")
    ctx, marker = make_context(scenario.dockerfile)
    tag = f"course-test-predict:{marker}"
    built_tags.append(tag)
    refusals = scenario.rejected_by or {}
    refusal = refusals.get(f"{engine}/{builder}", refusals.get(engine))
    if refusal is not None:
        # This engine's builders refuse the Dockerfile (before or after the edit): the course says so in one line.
        with pytest.raises((BuildError, DockerfileError)) as refused:
            _build(ctx, tag, builder, scenario.args_before, scenario.target)
            scenario.edit(ctx, marker)
            _build(ctx, tag, builder, scenario.args_after, scenario.target)
        assert refusal in str(refused.value) and "Traceback" not in str(refused.value), str(refused.value)
        return
    first = _build(ctx, tag, builder, scenario.args_before, scenario.target)
    scenario.edit(ctx, marker)
    prediction = predict(ctx, against=first, builder=builder, build_args=scenario.args_after,
                         target=scenario.target)
    second = _build(ctx, tag, builder, scenario.args_after, scenario.target)
    built_tags += [first.image_id, second.image_id]  # the first image is untagged once the second takes the tag

    actual = _rows(second.steps)
    # A step BuildKit shares between stages is printed once, under whichever stage's label the
    # solver met first (it varies from run to run): compare shared steps without their stage.
    shared = {" ".join(p.instruction.split()) for p in prediction.steps if p.reason.startswith("the same step as")}
    predicted = _rows(prediction.steps)
    if shared:
        def unlabelled(rows):
            return sorted({("*" if i in shared else s, i, c) for s, i, c in rows}, key=str)
        actual, predicted = unlabelled(actual), unlabelled(predicted)
    # "depends" (None) is the honest answer for a step that hangs on what a re-run stage writes:
    # it matches either outcome, and explain() must then say which way it went.
    outcome = {(s, i): c for s, i, c in actual}
    resolved = [(s, i, outcome.get((s, i)) if c is None else c) for s, i, c in predicted]
    assert sorted(resolved) == sorted(actual), f"\n{prediction.text()}\n--- real build:\n" + "\n".join(
        f"{'CACHED' if c else 'ran   '} [{s}] {i}" for s, i, c in actual)
    depends = {(s, i) for s, i, c in predicted if c is None}

    explanation = explain(second, against=first)
    assert len(explanation.steps) == len(second.steps)
    missed = [s for s in explanation.steps if not s.cached and not s.instruction.upper().startswith("FROM")]
    for s in explanation.steps:
        if (s.stage, " ".join(s.instruction.split())) in depends:
            assert s.reason and "the re-run stage wrote" in s.reason, explanation.text()
        else:
            assert (s.reason is None) == s.cached
    expect = scenario.expect_file
    if isinstance(expect, dict):
        expect = expect[builder]
    if expect is None:
        assert not missed, explanation.text()
    else:
        assert expect in missed[0].reason, explanation.text()
        assert all(s.reason for s in missed)
        if scenario.expect_after:
            assert all(scenario.expect_after in s.reason for s in missed[1:]), explanation.text()
    instruction, words = (scenario.expect_step or {}).get(builder, (None, None))
    if instruction is not None:
        step = next(s for s in explanation.steps if s.instruction == instruction)
        assert words in (step.reason or ""), explanation.text()
        assert words in next(p.reason for p in prediction.steps if p.instruction == instruction), prediction.text()


# --- a base whose tag moves -----------------------------------------------------------------------

def _from_row(step) -> bool:
    return step.instruction.upper().startswith("FROM")


def test_a_moved_base_tag_makes_every_step_run(engine, base, tmp_path):
    """The sample app FROM a tag of its own; the tag moves to a new release: predicted and built, every step runs.

    Moved back to the very image the first build used, the steps are predicted cached, and are.
    """
    from docker.errors import NotFound

    from course_helpers.cache.explain import explain
    from course_helpers.cache.predict import predict
    from course_helpers.config import REPO_ROOT
    from course_helpers.engine.base_image import release_base
    from course_helpers.formatting import short_id

    marker = uuid.uuid4().hex[:12]  # a tag of this run's own: no earlier run's release, nor its cache
    name = f"movedbase-demo/python:3.11-slim-bookworm-{marker}"
    app = f"movedbase-demo/app:{marker}"
    ctx = tmp_path / "app"
    shutil.copytree(REPO_ROOT / "sample_app", ctx)
    text = (ctx / "Dockerfile").read_text()
    assert text.startswith(BASE + "\n")
    (ctx / "Dockerfile").write_text(text.replace(BASE, f"FROM {name}", 1))
    made: list[str] = []
    try:
        v1 = release_base(name, 1, progress=None)
        made.append(v1)
        first = _build(ctx, app, "buildkit", None)
        made.append(first.image_id)
        assert first.base_ids == {name: v1}
        v2 = release_base(name, 2, progress=None)
        made.append(v2)
        assert v2 != v1 and engine.images.get(name).id == v2

        prediction = predict(ctx, against=first)
        words = f"the base {name} now names {short_id(v2)} (the last build used {short_id(v1)}): every step runs again"
        assert [s.verdict for s in prediction.steps if not _from_row(s)] == ["runs"] * 3, prediction.text()
        assert all(s.reason == words for s in prediction.steps), prediction.text()
        assert [s.cached for s in predict(ctx).steps] == [s.cached for s in prediction.steps]  # the recorded build

        second = _build(ctx, app, "buildkit", None)
        made.append(second.image_id)
        assert second.steps and not second.cached_steps, second.text()  # the real build agrees: all ran
        why = explain(second, against=first)
        assert all(s.reason == words for s in why.steps if not s.cached), why.text()
        assert all(s.reason == words for s in why.steps if not _from_row(s)), why.text()

        # The tag moves back to the very image of the first build: the engine still has that cache.
        assert release_base(name, 1, progress=None) == v1 == engine.images.get(name).id
        back = predict(ctx)  # against the recorded builds, the first among them
        assert all(s.cached for s in back.steps), back.text()
        assert not any("now names" in s.reason for s in back.steps), back.text()
        third = _build(ctx, app, "buildkit", None)
        made.append(third.image_id)
        assert third.all_cached, third.text()
    finally:
        for ref in [app, name] + made[::-1]:  # what this test made, and nothing else
            try:
                engine.images.remove(ref, force=True)
            except NotFound:
                pass
