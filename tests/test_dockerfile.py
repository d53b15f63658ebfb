"""The Dockerfile parser: lines, continuations, directives, stages, substitution, and clear errors."""
from __future__ import annotations

import pytest

from course_helpers.dockerfile.parse import parse_dockerfile, parse_dockerfile_text
from course_helpers.dockerfile.shell import process_word
from course_helpers.errors import CourseError, DockerfileError


def test_lines_continuations_comments_and_stages():
    df = parse_dockerfile_text(
        "# syntax=docker/dockerfile:1\n"
        "ARG BASE=python:3.11-slim-bookworm\n"
        "FROM $BASE AS Build\n"
        "# a comment\n"
        "RUN echo a \\\n"
        "  # comments inside a continuation are dropped\n"
        "    b\n"
        "\n"
        "FROM python:3.11-slim-bookworm\n"
        "COPY --from=build --chmod=755 /a /b\n")
    assert df.directives == {"syntax": "docker/dockerfile:1"}
    assert [(i.line, i.end_line, i.text) for i in df.instructions] == [
        (2, 2, "ARG BASE=python:3.11-slim-bookworm"), (3, 3, "FROM $BASE AS Build"),
        (5, 7, "RUN echo a     b"), (9, 9, "FROM python:3.11-slim-bookworm"),
        (10, 10, "COPY --from=build --chmod=755 /a /b")]
    assert [s.label for s in df.stages] == ["build", "1"]
    assert df.instructions[-1].flags == {"from": "build", "chmod": "755"}
    assert df.stage("BUILD") is df.stages[0]


def test_here_documents():
    """Docker 23+'s reader: the lines up to the delimiter are the document, not instructions.  The
    BuildKit names are those Docker 28 printed (tests/fixtures/dockerfiles/heredocs checks them live)."""
    df = parse_dockerfile_text(
        "FROM x\n"
        "RUN <<EOF\necho one\necho two\nEOF\n"
        "RUN <<-'EOT' cat > /x\n\tkeep $HOME\n\tEOT\n"
        "COPY <<EOF /greeting.txt\nhello\nEOF\n"
        "RUN cat <<A <<B\na\nA\nb\nB\n"
        "RUN echo 'a <<< b'\n")
    assert [(i.line, i.end_line, i.text, i.heredocs) for i in df.instructions[1:]] == [
        (2, 5, "RUN <<EOF", (("EOF", "echo one\necho two\n"),)),
        (6, 8, "RUN <<-'EOT' cat > /x", (("EOT", "keep $HOME\n"),)),
        (9, 11, "COPY <<EOF /greeting.txt", (("EOF", "hello\n"),)),
        (12, 16, "RUN cat <<A <<B", (("A", "a\n"), ("B", "b\n"))),
        (17, 17, "RUN echo 'a <<< b'", ())]
    assert df.instructions[1].buildkit_text == "RUN <<EOF (echo one...)"
    assert df.instructions[2].buildkit_text == "RUN <<-'EOT' cat > /x"
    assert [i.step for i in df.instructions] == [1, 2, 3, 4, 5, 6]


def test_escape_directive_and_json_form():
    df = parse_dockerfile_text("# escape=`\nFROM x\nRUN echo a `\n b\nCMD [\"python3\", \"app.py\"]\n")
    assert df.instructions[1].args == "echo a  b"
    assert df.instructions[2].json_args == ("python3", "app.py")


def test_expand():
    env = {"A": "1", "EMPTY": ""}
    assert process_word("$A-${A}-${B:-d}-${A:+alt}-${EMPTY:-e}-$B", env) == "1-1-d-alt-e-"


@pytest.mark.parametrize("text, line, words", [
    ("FROM x\nFROBNICATE y\n", 2, "unknown instruction 'FROBNICATE'"),
    ("RUN echo\n", 1, "before the first FROM"),
    ("FROM x\nCOPY onlyone\n", 2, "at least one source"),
    ("FROM a b c d\n", 1, "does not parse"),
    ("FROM x\n\nCOPY --bogus=1 a b\n", 3, "--bogus"),
    ("FROM x\nWORKDIR\n", 2, "needs arguments"),  # an empty RUN parses (and fails when it runs)
    ("# just a comment\n", 1, "no FROM"),
])
def test_bad_dockerfiles_name_file_and_line(text, line, words):
    with pytest.raises(DockerfileError) as info:
        parse_dockerfile_text(text, "ctx/Dockerfile")
    assert str(info.value).startswith(f"ctx/Dockerfile, line {line}:")
    assert words in str(info.value)
    assert isinstance(info.value, CourseError)


def test_missing_file(tmp_path):
    with pytest.raises(DockerfileError, match="There is no Dockerfile"):
        parse_dockerfile(tmp_path / "Dockerfile")
