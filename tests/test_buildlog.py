"""The build-log parsers on streams recorded from this project's engine (tests/fixtures/).

Recorded with ``python tests/fixtures/record_streams.py``: BuildKit plain output of the 20.10
client and the classic builder's SDK stream, for a cold (--no-cache), a cached, an edit
(app.py changed), a failed (package index unreachable), a multi-stage, a missing-COPY-source
and a syntax-error build; plus the tty transcript of the seed article; and Podman's (Buildah's)
stream, recorded with ``tests/fixtures/record_podman_streams.py``.  No engine needed.
"""
from __future__ import annotations

import base64
import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest

from course_helpers.errors import DockerfileError
from course_helpers.builder.logs import (ClassicParser, PlainParser, parse_buildkit_plain, parse_buildkit_rawjson,
                                     parse_buildkit_tty, parse_classic, read_instructions)
from course_helpers.config import REPO_ROOT
from course_helpers.builder.report import BuildReport, Step

FIXTURES = Path(__file__).parent / "fixtures"
ARTICLE = Path("/work/shared/seed/learning-docker-layers.txt")
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
    if not ARTICLE.exists():
        pytest.skip(f"the seed article is not at {ARTICLE}")
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


# --- BuildKit rawjson -----------------------------------------------------------------------------

def _rawjson_client():
    from course_helpers.engine.cli import buildkit_client
    cli = buildkit_client()
    return cli if cli is not None and cli.progress == "rawjson" else None


def test_rawjson_live_build(tmp_path):
    cli = _rawjson_client()
    if cli is None:
        pytest.skip("no docker client with --progress=rawjson on this machine")
    ctx = tmp_path / "app"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM python:3.11-slim-bookworm\nWORKDIR /w\nRUN echo {uuid.uuid4().hex}\n")
    cmd = cli.build_command() + ["--progress=rawjson", str(ctx)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=cli.environment())
    steps = parse_buildkit_rawjson((out.stderr + out.stdout).splitlines(),
                                   read_instructions((ctx / "Dockerfile").read_text()))
    assert [s.instruction.split()[0] for s in steps] == ["FROM", "WORKDIR", "RUN"]
    assert steps[2].cached is False


def test_rawjson_copy_link_is_one_step(tmp_path):
    """BuildKit makes ``COPY --link`` of two vertices in one progress group: the copy, and its LINK onto
    the parent.  When a step before it re-runs, the copy is CACHED and the link runs; the parser shows
    one step, not cached, as BuildKit's own printers do (docs/cache-rules.md, 24)."""
    cli = _rawjson_client()
    if cli is None:
        pytest.skip("no docker client with --progress=rawjson on this machine")
    ctx = tmp_path / "app"
    ctx.mkdir()
    marker = uuid.uuid4().hex
    (ctx / "a.txt").write_text(marker)
    outputs = []
    for mode in ("a", "b"):
        text = f"FROM python:3.11-slim-bookworm\nRUN echo {marker} {mode}\nCOPY --link a.txt /a.txt\nRUN cat /a.txt\n"
        (ctx / "Dockerfile").write_text(text)
        cmd = cli.build_command() + ["--progress=rawjson", str(ctx)]
        out = subprocess.run(cmd, capture_output=True, text=True, env=cli.environment())
        assert out.returncode == 0, out.stderr[-2000:]
        outputs.append(((out.stderr + out.stdout).splitlines(), read_instructions(text)))
    lines, instructions = outputs[1]
    vertices = {}
    for line in lines:
        for v in json.loads(line).get("vertexes") or [] if line.startswith("{") else []:
            vertices.setdefault(v["digest"], {}).update(v)
    link = [v for v in vertices.values() if "COPY --link" in v.get("name", "")]
    assert sorted((v["name"], bool(v.get("cached"))) for v in link) == [
        ("[3/4] COPY --link a.txt /a.txt", True), ("[3/4] LINK COPY --link a.txt /a.txt", False)]
    steps = parse_buildkit_rawjson(lines, instructions)
    assert [(s.index, s.instruction, s.cached) for s in steps[1:]] == [
        (2, f"RUN echo {marker} b", False), (3, "COPY --link a.txt /a.txt", False), (4, "RUN cat /a.txt", False)]


def test_rawjson_parser_on_constructed_status():
    """Constructed by hand from BuildKit's SolveStatus schema (not recorded: no rawjson client here)."""
    def vx(digest, name, **kw):
        return {"digest": digest, "name": name, **kw}
    t0, t1 = "2024-05-01T10:00:00.000000001Z", "2024-05-01T10:00:01.800000000Z"
    lines = [
        {"vertexes": [vx("sha256:a", "[internal] load build definition from Dockerfile", started=t0, completed=t0)]},
        {"vertexes": [vx("sha256:b", "[1/3] FROM docker.io/library/python:3.11-slim-bookworm", started=t0,
                         completed=t0)]},
        {"vertexes": [vx("sha256:c", "[2/3] WORKDIR /w", cached=True, started=t0, completed=t0)]},
        {"vertexes": [vx("sha256:d", "[3/3] RUN exit 3", started=t0)]},
        {"logs": [{"vertex": "sha256:d", "stream": 2, "data": base64.b64encode(b"oops\n").decode()}]},
        {"vertexes": [vx("sha256:d", "[3/3] RUN exit 3", started=t0, completed=t1,
                         error='process "/bin/sh -c exit 3" did not complete successfully: exit code: 3')]},
    ]
    from course_helpers.builder.logs import RawjsonParser
    parser = RawjsonParser()
    for item in lines:
        parser.feed(json.dumps(item))
    assert [(s.instruction, s.cached, s.seconds) for s in parser.steps()] == [
        ("FROM python:3.11-slim-bookworm", True, 0.0), ("WORKDIR /w", True, 0.0), ("RUN exit 3", False, 1.8)]
    failure = parser.failure()
    assert failure.exit_code == 3 and failure.step.index == 3 and failure.logs == ["oops"]
    assert parse_buildkit_rawjson([json.dumps(x) for x in lines])[2].instruction == "RUN exit 3"


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


def test_a_from_printed_under_another_builds_label_adds_no_stage():
    """Seen under load: the base's FROM vertex, shared with a concurrent 7-step build, printed as ``[1/7]``.

    The fixture is the recorded multi-stage stream with its one FROM line given that label.
    """
    text = (FIXTURES / "plain_multistage.txt").read_text()
    shared = text.replace("[stage-1 1/2] FROM", "[1/7] FROM")
    assert shared != text
    parser = PlainParser(instructions("multistage"))
    for line in shared.splitlines():
        parser.feed(line)
    steps = parser.steps()
    assert [(s.stage, s.index) for s in steps] == [("build", 1), ("build", 2), ("build", 3), ("1", 1), ("1", 2)]


# --- Podman's builder (Buildah), recorded with tests/fixtures/record_podman_streams.py -----------

def buildah(name: str, dockerfile_text: str):
    from course_helpers.builder.logs import BuildahParser

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
