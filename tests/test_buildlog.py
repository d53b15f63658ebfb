"""The build-log parsers on streams recorded from this project's engines (tests/fixtures/).

Recorded with ``python tests/fixtures/record_streams.py FORMAT...``, for a cold (--no-cache), a
cached, an edit (app.py changed), a failed (package index unreachable), a multi-stage, a
missing-COPY-source and a syntax-error build: BuildKit plain output of the 20.10 client and the
classic builder's SDK stream (Docker 20.10), and buildx 0.29.1's rawjson and plain output
(Docker 28.5.2, containerd store; also a build whose failure cancels another stage, and a
COPY --link onto a new parent); plus the tty transcript of the seed article; and Podman's
(Buildah's) stream, recorded with ``tests/fixtures/record_podman_streams.py``.  No engine needed.
"""
from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Iterable

import pytest

from course_helpers.errors import DockerfileError
from course_helpers.builder.log_buildkit import (PlainParser, RawjsonParser, parse_buildkit_plain,
                                                 parse_buildkit_rawjson, parse_buildkit_tty)
from course_helpers.builder.log_classic import ClassicParser, parse_classic
from course_helpers.builder.log_common import context_transfer, read_instructions
from course_helpers.config import REPO_ROOT
from course_helpers.builder.report import BuildReport, Step
from course_helpers.formatting import parse_time

FIXTURES = Path(__file__).parent / "fixtures"
# The seed article's five build transcripts (tty), kept in the repository.
ARTICLE = FIXTURES / "article_tty_builds.txt"
SIMPLE = ["FROM python:3.11-slim-bookworm", "WORKDIR /usr/src/app", "COPY . .",
          "RUN pip3 install -r requirements.txt"]
CMD = 'CMD ["python3", "-m", "flask", "run", "--host=0.0.0.0"]'


def instructions(name: str):
    try:
        return read_instructions((FIXTURES / f"{name}.Dockerfile").read_text())
    except DockerfileError:
        return []  # a broken fixture Dockerfile: the build's own error is what the parser sees


def plain(name: str, dockerfile: str | None = "simple") -> PlainParser:
    parser = PlainParser(instructions(dockerfile) if dockerfile else None)
    for line in (FIXTURES / f"plain_{name}.txt").read_text().splitlines():
        parser.feed(line)
    return parser


def classic(name: str, dockerfile: str | None = "simple") -> ClassicParser:
    parser = ClassicParser(instructions(dockerfile) if dockerfile else None)
    for line in (FIXTURES / f"classic_{name}.jsonl").read_text().splitlines():
        parser.feed(line)
    return parser


def states(steps: list[Step]) -> list[tuple[str, bool]]:
    return [(s.instruction, s.cached) for s in steps]


# --- the Dockerfile reader -----------------------------------------------------------------------

def test_read_instructions_numbers_like_buildkit_and_classic():
    ins = read_instructions("# comment\nFROM python:3.11-slim-bookworm AS build\nRUN a \\\n    && b\n"
                            "ENV X=1\nFROM build\nCOPY --from=build /a /b\nCMD [\"x\"]\n")
    # Docker joins a continuation keeping the next line's leading spaces (checked on the engine).
    assert [i.text for i in ins] == ["FROM python:3.11-slim-bookworm AS build", "RUN a     && b", "ENV X=1",
                                     "FROM build", "COPY --from=build /a /b", 'CMD ["x"]']
    assert [i.number for i in ins] == [1, 2, 3, 4, 5, 6]
    assert [i.stage for i in ins] == ["build", "build", "build", "1", "1", "1"]
    # A stage FROM another stage has no FROM step in BuildKit: its numbering starts at its first step.
    assert [i.buildkit_index for i in ins] == [1, 2, None, None, 1, None]
    assert [i.line for i in ins] == [2, 3, 5, 6, 7, 8]


# --- BuildKit plain ----------------------------------------------------------------------------

def test_plain_cold_build():
    steps = plain("cold").steps()
    # BuildKit 20.10 reports WORKDIR as CACHED even under --no-cache (the mkdir is deduplicated).
    assert states(steps) == [(SIMPLE[0], True), (SIMPLE[1], True), (SIMPLE[2], False), (SIMPLE[3], False)]
    assert [s.index for s in steps] == [1, 2, 3, 4]
    assert {s.stage for s in steps} == {"0"}
    assert steps[0].seconds == 0.0  # the base was present: nothing pulled
    assert steps[3].seconds > 0.5  # pip ran


def test_plain_cached_build_is_all_cached():
    assert all(s.cached and s.seconds == 0.0 for s in plain("cached").steps())


def test_plain_edit_build_reruns_copy_and_after():
    assert states(plain("edit").steps()) == [(SIMPLE[0], True), (SIMPLE[1], True), (SIMPLE[2], False),
                                            (SIMPLE[3], False)]


def test_plain_without_dockerfile_restores_from():
    steps = parse_buildkit_plain((FIXTURES / "plain_cached.txt").read_text())
    assert [s.instruction for s in steps] == SIMPLE  # not "FROM docker.io/library/python:..."


def test_plain_failed_run():
    parser = plain("failed", "failed")
    failure = parser.failure()
    assert failure is not None and failure.step is not None
    assert (failure.step.index, failure.total, failure.exit_code) == (4, 4, 1)
    assert failure.step.instruction.startswith("RUN pip3 install --index-url http://127.0.0.1:9/simple")
    assert any("Could not find a version" in line for line in failure.logs)


def test_plain_multistage():
    steps = plain("multistage", "multistage").steps()
    assert [(s.stage, s.index, s.instruction) for s in steps] == [
        ("build", 1, "FROM python:3.11-slim-bookworm AS build"), ("build", 2, "WORKDIR /src"),
        ("build", 3, "RUN echo built > /src/out.txt"),
        ("1", 1, "FROM python:3.11-slim-bookworm"),  # printed once by BuildKit, under stage-1
        ("1", 2, "COPY --from=build /src/out.txt /out.txt")]
    bare = parse_buildkit_plain((FIXTURES / "plain_multistage.txt").read_text())
    assert [(s.stage, s.instruction) for s in bare] == [(s.stage, s.instruction) for s in steps]


def test_plain_missing_copy_source():
    failure = plain("missing_copy", "missing_copy").failure()
    assert failure is not None and failure.step is not None
    assert (failure.step.index, failure.step.instruction, failure.exit_code) == (3, "COPY nothere.txt .", None)
    assert "not found" in failure.message


def test_plain_syntax_error_has_no_step():
    parser = plain("syntax", "syntax")
    failure = parser.failure()
    assert parser.steps() == []
    assert failure is not None and failure.step is None
    assert "line 3: unknown instruction: RUNN" in failure.message


# --- classic ----------------------------------------------------------------------------------

def test_classic_cold_and_cached_and_edit():
    assert states(classic("cold").steps()) == [(SIMPLE[0], True), (SIMPLE[1], False), (SIMPLE[2], False),
                                              (SIMPLE[3], False), (CMD, False)]
    assert all(s.cached for s in classic("cached").steps())
    assert states(classic("edit").steps()) == [(SIMPLE[0], True), (SIMPLE[1], True), (SIMPLE[2], False),
                                              (SIMPLE[3], False), (CMD, False)]


@pytest.mark.parametrize("dockerfile", ["simple", None])
def test_classic_drops_the_label_steps_it_appends(dockerfile):
    raw = (FIXTURES / "classic_cached.jsonl").read_text()
    assert "Step 6/7 : LABEL io.docker-layers-course.managed=true" in raw
    steps = classic("cached", dockerfile).steps()
    assert [s.instruction for s in steps] == SIMPLE + [CMD]
    assert [s.index for s in steps] == [1, 2, 3, 4, 5]


def test_classic_image_id_and_parse_function():
    assert classic("cached").image_id.startswith("sha256:")
    lines = (FIXTURES / "classic_edit.jsonl").read_text().splitlines()
    assert states(parse_classic([json.loads(x) for x in lines])) == states(classic("edit").steps())


def test_classic_failed_run():
    failure = classic("failed", "failed").failure()
    assert failure is not None and failure.step is not None
    assert (failure.step.index, failure.exit_code) == (4, 1)
    assert any("Could not find a version" in line for line in failure.logs)


def test_classic_multistage_counts_one_sequence():
    steps = classic("multistage", "multistage").steps()
    assert [(s.index, s.stage, s.instruction.split()[0]) for s in steps] == [
        (1, "build", "FROM"), (2, "build", "WORKDIR"), (3, "build", "RUN"),
        (4, "1", "FROM"), (5, "1", "COPY"), (6, "1", "CMD")]


def test_classic_missing_copy_source():
    failure = classic("missing_copy", "missing_copy").failure()
    assert failure is not None and failure.step is not None
    assert failure.step.instruction == "COPY nothere.txt ."
    assert "file not found in build context" in failure.message


# --- the article's tty transcript -------------------------------------------------------------------

def article_builds() -> list[str]:
    return ARTICLE.read_text().split("[+] Building")[1:]


def test_article_transcript_same_model():
    builds = [parse_buildkit_tty(text) for text in article_builds()]
    assert len(builds) == 5
    first, second, third, fourth, fifth = builds
    assert first[0].instruction == "FROM python:3.10-slim-buster"
    assert (first[0].cached, first[0].seconds) == (False, 5.3)  # pulled: downloads under it
    assert [s.cached for s in first[1:]] == [False, False, False] and first[3].seconds == 4.3
    assert all(s.cached for s in second)
    assert [s.cached for s in third] == [True, True, False, False]
    assert [s.instruction for s in fourth] == ["FROM python:3.10-slim-buster", "WORKDIR /usr/src/app",
                                              "COPY requirements.txt .", "RUN pip3 install -r requirements.txt",
                                              "COPY . ."]
    assert [s.cached for s in fifth] == [True, True, True, True, False]


# --- BuildKit rawjson: buildx 0.29.1 on Docker 28.5.2 (containerd store) ----------------------------
# Each scenario was also built in --progress=plain by the same client (buildx_plain_*.txt), in a context
# of its own that met the same cache: the two modes describe one build each, the same build.

RAWJSON_SCENARIOS = {"cold": "simple", "cached": "simple", "edit": "simple", "failed": "failed",
                     "multistage": "multistage", "missing_copy": "missing_copy", "syntax": "syntax",
                     "canceled": "canceled", "link": "link"}


def raw_lines(name: str) -> list[str]:
    return (FIXTURES / f"rawjson_{name}.jsonl").read_text().splitlines()


def rawjson(name: str, dockerfile: str | None = "simple") -> tuple[RawjsonParser, list[str]]:
    """The parser fed with a recording, and the plain lines it printed for it."""
    parser = RawjsonParser(instructions(dockerfile) if dockerfile else None)
    printed = [line for raw in raw_lines(name) for line in parser.feed(raw)] + parser.finish()
    return parser, printed


def buildx_plain(name: str, dockerfile: str | None = "simple") -> tuple[PlainParser, list[str]]:
    parser = PlainParser(instructions(dockerfile) if dockerfile else None)
    lines = (FIXTURES / f"buildx_plain_{name}.txt").read_text().splitlines()
    for line in lines:
        parser.feed(line)
    return parser, lines


def test_rawjson_cold_cached_and_edit_builds():
    cold, cached, edit = (rawjson(name)[0].steps() for name in ("cold", "cached", "edit"))
    # Docker 28 too takes WORKDIR from the cache under --no-cache.
    assert states(cold) == [(SIMPLE[0], True), (SIMPLE[1], True), (SIMPLE[2], False), (SIMPLE[3], False)]
    assert [s.index for s in cold] == [1, 2, 3, 4] and {s.stage for s in cold} == {"0"}
    assert cold[0].seconds == 0.0 and cold[3].seconds > 0.5  # the base was present; pip ran
    assert all(s.cached and s.seconds == 0.0 for s in cached)
    assert states(edit) == [(SIMPLE[0], True), (SIMPLE[1], True), (SIMPLE[2], False), (SIMPLE[3], False)]


def test_rawjson_step_time_is_the_vertex_time_of_its_last_run():
    started = completed = None
    for raw in raw_lines("cold"):
        for vx in json.loads(raw).get("vertexes") or [] if raw.startswith("{") else []:
            if vx["name"] == "[4/4] RUN pip3 install -r requirements.txt" and vx.get("completed"):
                started, completed = parse_time(vx["started"]), parse_time(vx["completed"])
    assert completed is not None
    assert rawjson("cold")[0].steps()[3].seconds == round(completed - started, 1)


def test_rawjson_without_dockerfile_restores_from():
    assert "[1/4] FROM docker.io/library/python:3.11-slim-bookworm@sha256:" in "\n".join(raw_lines("cached"))
    assert [s.instruction for s in parse_buildkit_rawjson(raw_lines("cached"))] == SIMPLE
    assert [s.instruction for s in parse_buildkit_rawjson("\n".join(raw_lines("cached")))] == SIMPLE


def test_rawjson_output_comes_in_chunks_and_is_read_as_lines():
    chunks = [base64.b64decode(log["data"]).decode() for raw in raw_lines("cold") if raw.startswith("{")
              for log in json.loads(raw).get("logs") or []]
    # Seen: a progress bar arrives without its newline, which comes alone in the next chunk.
    assert any(not c.endswith("\n") for c in chunks) and "\n" in chunks
    pip = rawjson("cold")[0].steps()[3].output
    assert pip[0] == "Collecting flask==2.3.1" and "" not in pip
    assert any(line.startswith("Successfully installed ") for line in pip)

    def shape(lines: list[str]) -> list[str]:  # speeds and bar lengths differ between two runs
        return sorted(re.sub(r"━+", "━", re.sub(r"[\d.]+ [kM]B/s", "S", line)) for line in lines)

    assert shape(pip) == shape(buildx_plain("cold")[0].steps()[3].output)


def test_rawjson_failed_run():
    parser, printed = rawjson("failed", "failed")
    failure = parser.failure()
    assert failure is not None and failure.step is not None
    assert (failure.step.index, failure.total, failure.exit_code) == (4, 4, 1)
    assert failure.step.instruction.startswith("RUN pip3 install --index-url http://127.0.0.1:9/simple")
    assert any("Could not find a version" in line for line in failure.logs)
    # buildx's last words come after the JSON as text, and reach the learner as they are.
    assert printed[-1].startswith("ERROR: failed to build: failed to solve: process ")


def test_rawjson_multistage():
    steps = rawjson("multistage", "multistage")[0].steps()
    assert [(s.stage, s.index, s.instruction) for s in steps] == [
        ("build", 1, "FROM python:3.11-slim-bookworm AS build"), ("build", 2, "WORKDIR /src"),
        ("build", 3, "RUN echo built > /src/out.txt"),
        ("1", 1, "FROM python:3.11-slim-bookworm"), ("1", 2, "COPY --from=build /src/out.txt /out.txt")]
    bare = parse_buildkit_rawjson(raw_lines("multistage"))
    assert [(s.stage, s.instruction) for s in bare] == [(s.stage, s.instruction) for s in steps]


def test_rawjson_missing_copy_source():
    failure = rawjson("missing_copy", "missing_copy")[0].failure()
    assert failure is not None and failure.step is not None
    assert (failure.step.index, failure.step.instruction, failure.exit_code) == (3, "COPY nothere.txt .", None)
    assert '"/nothere.txt": not found' in failure.message


def test_rawjson_syntax_error_has_no_step():
    parser, _ = rawjson("syntax", "syntax")
    failure = parser.failure()
    assert parser.steps() == [] and failure is not None and failure.step is None
    assert "line 3: unknown instruction: RUNN" in failure.message


def test_rawjson_a_stage_canceled_by_another_failure_is_not_the_failure():
    errors = {vx["name"]: vx["error"] for raw in raw_lines("canceled") if raw.startswith("{")
              for vx in json.loads(raw).get("vertexes") or [] if vx.get("error")}
    assert "context canceled" in errors["[slow 2/2] RUN sleep 5 && echo slept > /slept"]
    parser, printed = rawjson("canceled", "canceled")
    failure = parser.failure()
    assert failure is not None and failure.step is not None
    assert (failure.step.stage, failure.step.instruction) == ("1", "COPY nothere.txt .")
    assert any(line.endswith(" CANCELED") for line in printed)  # as buildx prints it in plain mode
    # COPY --from=slow never started: it is no step of this build.
    assert "COPY --from=slow /slept /slept" not in [s.instruction for s in parser.steps()]


def test_rawjson_copy_link_is_one_step_of_two_vertices():
    """BuildKit makes ``COPY --link`` of two vertices in one progress group: the copy, and its LINK onto
    the parent.  After a step before it re-ran, the copy is CACHED and the link runs: one step, not
    cached, as buildx prints it in plain mode too (docs/cache-rules.md, 24)."""
    vertices: dict[str, dict] = {}
    for raw in raw_lines("link"):
        for vx in json.loads(raw).get("vertexes") or [] if raw.startswith("{") else []:
            vertices.setdefault(vx["digest"], {}).update(vx)
    parts = [v for v in vertices.values() if "COPY --link" in v["name"]]
    assert sorted((v["name"], bool(v.get("cached"))) for v in parts) == [
        ("[4/5] COPY --link app.py /app.py", True), ("[4/5] LINK COPY --link app.py /app.py", False)]
    assert {v["progressGroup"]["name"] for v in parts} == {"[4/5] COPY --link app.py /app.py"}
    parser, printed = rawjson("link", "link")
    assert [(s.index, s.instruction, s.badge) for s in parser.steps()] == [
        (1, "FROM python:3.11-slim-bookworm", "BASE"), (2, "WORKDIR /x", "CACHED"), (3, "COPY marker.txt /m.txt", "RAN"),
        (4, "COPY --link app.py /app.py", "RAN"), (5, "RUN cat /app.py > /dev/null", "RAN")]
    assert {line.split(" ", 1)[1] for line in printed if "COPY --link" in line} == {"[4/5] COPY --link app.py /app.py"}


def test_rawjson_internal_vertices_are_printed_not_counted():
    _, printed = rawjson("cold")
    names = {line.split(" ", 1)[1] for line in printed if re.match(r"^#\d+ \[internal\]", line)}
    assert names == {"[internal] load build definition from Dockerfile", "[internal] load .dockerignore",
                     "[internal] load metadata for docker.io/library/python:3.11-slim-bookworm",
                     "[internal] load build context"}
    assert any(re.match(r"^#\d+ exporting to image$", line) for line in printed)
    assert len(rawjson("cold")[0].steps()) == 4


def test_rawjson_context_transfer_is_what_the_plain_lines_say():
    sent = context_transfer("\n".join(raw_lines("cold")))
    assert sent is not None and sent > 100  # the build context's, not the .dockerignore's 2B
    assert sent == context_transfer("\n".join(rawjson("cold")[1]))
    assert context_transfer((FIXTURES / "buildx_plain_cold.txt").read_text()) > 100


def _vertex_ends(lines: list[str]) -> dict[str, str | None]:
    """Vertex name -> how its last run ended (DONE, CACHED, ERROR, CANCELED), from plain lines."""
    names: dict[str, str] = {}
    ends: dict[str, str | None] = {}
    for line in lines:
        match = re.match(r"^#(\d+) (.*)$", line)
        if not match or match.group(1) == "0":  # #0: buildx's "building with ... instance"
            continue
        key, rest = match.groups()
        if key not in names:
            names[key] = rest
            ends[rest] = None
        elif rest in ("CACHED", "CANCELED") or rest.startswith(("DONE ", "ERROR:")):
            ends[names[key]] = rest.split()[0].rstrip(":")
    return ends


@pytest.mark.parametrize("name", RAWJSON_SCENARIOS)
def test_rawjson_and_plain_give_the_learner_the_same_build(name):
    dockerfile = RAWJSON_SCENARIOS[name]
    raw, printed = rawjson(name, dockerfile)
    plain_parser, plain_lines = buildx_plain(name, dockerfile)

    def table(steps: Iterable[Step]) -> list[tuple]:
        return [(s.stage, s.index, s.instruction, s.badge) for s in steps]

    ends, plain_ends = _vertex_ends(printed), _vertex_ends(plain_lines)
    a, b = raw.failure(), plain_parser.failure()
    assert (a is None) == (b is None)
    if a is None:
        assert table(raw.steps()) == table(plain_parser.steps())
    else:
        assert (a.step and a.step.instruction, a.total, a.exit_code) == (b.step and b.step.instruction, b.total,
                                                                          b.exit_code)
        same = re.compile(r"ref \S+::\S+:")  # the context's session ids differ from build to build
        assert same.sub("ref:", a.message) == same.sub("ref:", b.message)
        # Which other steps a failure cancels before they end is a race: such a step is no step of
        # its build (it neither ran nor came from the cache), and the rest agree.
        canceled = {k for k, v in [*ends.items(), *plain_ends.items()] if v == "CANCELED"}
        assert table(s for s in raw.steps() if not _named(s, canceled)) == \
            table(s for s in plain_parser.steps() if not _named(s, canceled))
        ends = {k: v for k, v in ends.items() if k not in canceled}
        plain_ends = {k: v for k, v in plain_ends.items() if k not in canceled}
    # The live lines: the same vertices, ending the same way.  A FROM may end DONE or CACHED from one
    # run to the next (the base is resolved once or twice); the course shows it as BASE either way.
    assert set(ends) == set(plain_ends)
    assert {k: v for k, v in ends.items() if "] FROM " not in k} == \
        {k: v for k, v in plain_ends.items() if "] FROM " not in k}


def _named(step: Step, names: set[str]) -> bool:
    """Whether a vertex of these names (``[stage-1 2/4] WORKDIR /x``) is this step."""
    return any(re.match(rf"^\[(\S+ )?{step.index}/\d+\] ", n) and n.endswith(step.instruction) for n in names)


# --- the report's presentation ---------------------------------------------------------------------------

def _report() -> BuildReport:
    steps = [Step(1, "0", SIMPLE[0], True), Step(2, "0", SIMPLE[1], True),
             Step(3, "0", SIMPLE[2], False, 0.04, "sha256:" + "1" * 64, 315),
             Step(4, "0", SIMPLE[3], False, 4.31, "sha256:" + "2" * 64, 11_700_000)]
    return BuildReport("sha256:aa133f3be3e32746f498fd5f885855f69abbddd3691a4cd1a35c426fd744dc6e",
                       ["flask-demo:first"], "buildkit", 5.24, "", steps)


def test_report_text_is_stable():
    assert str(_report()) == _report().text() == "\n".join([
        "flask-demo:first  sha256:aa133f3be3e3  builder=buildkit  5.2s",
        "   1 BASE     0.0s      0B  FROM python:3.11-slim-bookworm",
        "   2 CACHED   0.0s      0B  WORKDIR /usr/src/app",
        "   3 RAN      0.0s    315B  COPY . .",
        "   4 RAN      4.3s  11.7MB  RUN pip3 install -r requirements.txt"])


def test_report_conveniences_and_html():
    report = _report()
    assert report.cached_steps == ["WORKDIR /usr/src/app"]
    assert report.ran_steps == ["COPY . .", "RUN pip3 install -r requirements.txt"]
    assert not report.all_cached
    html = report._repr_html_()
    assert "BASE" in html and "CACHED" in html and "RAN" in html and "sha256:aa133f3be3e3" in html
    assert "<table>" in html and "11.7MB" in html


def renamed(name: str, ours: str, theirs: str) -> PlainParser:
    """The recorded plain stream ``name`` (built from ``name.Dockerfile``) with one vertex given another build's name."""
    text = (FIXTURES / f"plain_{name}.txt").read_text()
    assert ours in text
    parser = PlainParser(instructions(name))
    for line in text.replace(ours, theirs).splitlines():
        parser.feed(line)
    return parser


def test_a_from_printed_under_another_builds_label_adds_no_stage():
    """Seen under load: the base's FROM vertex, shared with a concurrent 7-step build, printed as ``[1/7]``.

    The fixture is the recorded multi-stage stream with its one FROM line given that label.
    """
    steps = renamed("multistage", "[stage-1 1/2] FROM", "[1/7] FROM").steps()
    assert [(s.stage, s.index) for s in steps] == [("build", 1), ("build", 2), ("build", 3), ("1", 1), ("1", 2)]


def test_a_vertex_named_by_a_concurrent_build_is_the_step_of_ours_it_is():
    """Issue 18: notebook 120 showed a stage ``build`` with a ``FROM ... AS build`` row for a one-stage Dockerfile.

    BuildKit runs a vertex that two builds on one builder share once, and prints it in both
    logs under the name the first build gave it.  ``plain_shared_from.txt`` is notebook 120's
    build as it was recorded while notebook 100 built on the same engine: its FROM came as
    ``[build 1/4]``, notebook 100's name for the same base.
    """
    log = (FIXTURES / "plain_shared_from.txt").read_text()
    assert "#4 [build 1/4] FROM docker.io/library/python:3.11-slim-bookworm" in log
    steps = parse_buildkit_plain(log, instructions("wasteful"))
    assert [(s.stage, s.index, s.instruction, s.cached) for s in steps][:2] == [
        ("0", 1, "FROM python:3.11-slim-bookworm", True), ("0", 2, "WORKDIR /usr/src/app", True)]
    assert [s.stage for s in steps] == ["0"] * 7 and [s.index for s in steps] == list(range(1, 8))


def test_a_failed_step_named_by_a_concurrent_build_fails_as_ours():
    """The same sharing when the shared step fails: the failure names our stage, step and count.

    The fixture is the recorded failed build with its failing RUN given the name a concurrent
    six-step ``build`` stage would give the same vertex.
    """
    parser = renamed("failed", "#8 [4/4] RUN", "#8 [build 4/6] RUN")
    failure = parser.failure()
    assert failure is not None and failure.step is not None
    assert (failure.step.stage, failure.step.index, failure.total, failure.exit_code) == ("0", 4, 4, 1)
    assert failure.step.instruction.startswith("RUN pip3 install --index-url http://127.0.0.1:9/simple")
    assert [(s.stage, s.index) for s in parser.steps()] == [("0", 1), ("0", 2), ("0", 3), ("0", 4)]


# --- Podman's builder (Buildah), recorded with tests/fixtures/record_podman_streams.py -----------

def buildah(name: str, dockerfile_text: str):
    from course_helpers.builder.log_buildah import BuildahParser

    parser = BuildahParser(read_instructions(dockerfile_text))
    for line in (FIXTURES / f"podman_{name}.jsonl").read_text().splitlines():
        parser.feed(line)
    return parser


def test_buildah_cold_and_cached_seed_builds():
    seed = (REPO_ROOT / "sample_app" / "Dockerfile").read_text()
    cold, cached = buildah("cold", seed), buildah("cached", seed)
    # Buildah numbers every instruction (CMD too) and appends a LABEL step per label=: dropped.
    assert states(cold.steps()) == [(SIMPLE[0], True)] + [(i, False) for i in SIMPLE[1:]] + [(CMD, False)]
    assert states(cached.steps()) == [(i, True) for i in SIMPLE] + [(CMD, True)]
    assert [s.index for s in cold.steps()] == [1, 2, 3, 4, 5]
    pip = cold.steps()[3]
    assert pip.output[0] == "Collecting flask==2.3.1" and not cached.steps()[3].output
    assert cold.image_id and cold.image_id.startswith("sha256:") and cold.failure() is None


def test_buildah_target_skips_unneeded_stages_and_names_stages_from_the_dockerfile():
    parser = buildah("target", (FIXTURES / "podman_target.Dockerfile").read_text())
    # `[3/3] STEP 1/2: FROM <image id> AS middle`: the stage's place in the file, its FROM as written.
    assert [(s.stage, s.index, s.instruction) for s in parser.steps()] == [
        ("one", 1, "FROM python:3.11-slim-bookworm AS one"), ("one", 2, "LABEL marker=@M@"),
        ("one", 3, "COPY app.py /app.py"), ("middle", 1, "FROM one AS middle"),
        ("middle", 2, "COPY requirements.txt /requirements.txt")]


def test_buildah_failed_run():
    parser = buildah("failed", (FIXTURES / "failed.Dockerfile").read_text())
    failure = parser.failure()
    assert failure is not None and failure.exit_code == 1
    assert failure.step is not None and failure.step.index == 4 and failure.step.instruction.startswith("RUN pip3")
    assert any("No matching distribution" in line for line in failure.logs)
    assert parser.image_id is None
