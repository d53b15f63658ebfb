"""The reader against the engine itself: each tricky Dockerfile in fixtures/dockerfiles is built.

For every step BuildKit prints (``#5 [two 2/3] RUN echo same > /same.txt``), the
reader must give the same label and text; the classic builder's ``Step N/M : <text>``
lines must equal the reader's ``original`` and numbering.  The corpus covers
continuations across blank and comment lines, the escape directive, ARG before
FROM, substitution in FROM, lowercased stage names, JSON forms, ``--flags``,
unneeded and shared stages, a file that is not UTF-8, and here-documents (Docker 23+).
"""
from __future__ import annotations

import os
import re
import subprocess
import uuid
from pathlib import Path

import pytest

from course_helpers.dockerfile.parse import parse_dockerfile
from course_helpers.engine.cli import candidate_paths

pytestmark = pytest.mark.builds  # full tier: the notebooks show these facts in the quick one

CORPUS = sorted(p for p in (Path(__file__).parent / "fixtures" / "dockerfiles").iterdir() if p.is_dir())
_HEADER = re.compile(r"^#\d+ (\[(?:\S+ )?\d+/\d+\]) (.*)$")
_CLASSIC = re.compile(r"^Step (\d+)/(\d+) : (.*)$")


def _run(cmd: list[str], env: dict | None = None) -> str:
    proc = subprocess.run(cmd, capture_output=True, env=env, timeout=600)
    out = (proc.stdout + proc.stderr).decode("utf-8", "replace")
    assert proc.returncode == 0, out[-3000:]
    return out


@pytest.mark.parametrize("ctx", CORPUS, ids=lambda p: p.name)
def test_buildkit_prints_each_step_as_the_reader_reads_it(engine, base, ctx):
    from course_helpers.engine.cli import buildkit_client

    cli = buildkit_client()
    if cli is None:
        pytest.skip("no docker client here can run BuildKit builds (needs buildx or a client with DOCKER_BUILDKIT)")
    major = int(engine.version()["Version"].split(".")[0])
    if ctx.name == "heredocs" and major < 23:
        pytest.skip(f"Docker {engine.version()['Version']} reads no here-documents (Docker 23 and later do)")
    df = parse_dockerfile(ctx / "Dockerfile")
    tag = f"ct-corpus-{uuid.uuid4().hex[:8]}"
    if ctx.name.endswith("latin1") and major >= 28:
        # Docker 28's BuildKit refuses a Dockerfile that is not UTF-8; build() says so in one sentence.
        from course_helpers import BuildError, build
        with pytest.raises(BuildError, match=r"is not UTF-8 text \(line \d+ is not\), and this engine's BuildKit "
                                             r"refuses it: save it as UTF-8"):
            build(ctx, tag, builder="buildkit", progress=False)
        return
    try:
        out = _run(cli.build_command() + ["--progress=plain", "--no-cache", "-t", tag, str(ctx)], cli.environment())
    finally:
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True)
    printed = {m.group(1) + " " + m.group(2) for m in map(_HEADER.match, out.splitlines()) if m}
    needed = set(df.needed_stages())
    expected = {df.buildkit_label(i) + " " + i.buildkit_text
                for s in df.stages if s.index in needed for i in s.steps}
    # Identical vertices (one base FROM for two stages, the same step on the same parent) print once.
    # A FROM vertex is shared with any other build running on the engine at that moment, and
    # then prints under that build's label ("[1/7] FROM ..."): for FROM, compare the text alone.
    def text_of(header: str) -> str:
        return header.split("] ", 1)[1]

    # Docker 28's BuildKit adds the base's digest (FROM docker.io/library/python:3.11@sha256:...).
    printed_from = {re.sub(r"@sha256:[0-9a-f]{64}$", "", text_of(h)) for h in printed
                    if text_of(h).startswith("FROM ")}
    expected_from = {text_of(h) for h in expected if text_of(h).startswith("FROM ")}
    assert printed_from <= expected_from, f"FROM printed but not read so: {sorted(printed_from - expected_from)}"
    printed = {h for h in printed if not text_of(h).startswith("FROM ")}
    assert printed <= expected, f"printed but not read so:\n{sorted(printed - expected)}\nread:\n{sorted(expected)}"
    missing = {e for e in expected - printed if not e.split("] ", 1)[1].startswith(("FROM ", "RUN echo same",
                                                                                   "WORKDIR /w"))}
    assert not missing, f"read but not printed:\n{sorted(missing)}\nprinted:\n{sorted(printed)}"
    unneeded = {df.buildkit_label(i) for s in df.stages if s.index not in needed for i in s.steps}
    assert not {p.split("]")[0] + "]" for p in printed} & unneeded


@pytest.mark.parametrize("ctx", CORPUS, ids=lambda p: p.name)
def test_classic_prints_each_instruction_as_written(engine, base, ctx):
    if ctx.name == "heredocs":
        pytest.skip("the classic builder reads no here-documents: Docker 28's fails COPY <<EOF, "
                    "20.10's every body line (docs/cache-rules.md, 27)")
    df = parse_dockerfile(ctx / "Dockerfile")
    tag = f"ct-corpus-{uuid.uuid4().hex[:8]}"
    try:
        # Any docker client runs the classic builder when DOCKER_BUILDKIT=0 (Docker 28's warns it is deprecated).
        out = _run([candidate_paths()[0], "build", "--no-cache", "--rm", "--force-rm", "-t", tag, str(ctx)],
                   {**os.environ, "DOCKER_BUILDKIT": "0"})
    finally:
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True)
    # The context upload line ends in a carriage return; the builder colours some lines.
    lines = re.split(r"[\r\n]+", re.sub(r"\x1b\[[0-9;]*m", "", out))
    steps = [(int(m.group(1)), int(m.group(2)), m.group(3)) for m in map(_CLASSIC.match, lines) if m]
    assert steps == [(i.number, len(df.instructions), i.original) for i in df.instructions]
