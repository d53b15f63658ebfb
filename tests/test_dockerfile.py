"""The Dockerfile parser: lines, continuations, directives, stages, substitution, and clear errors."""
from __future__ import annotations

import pytest

from course_helpers.dockerfile.parse import BuildState, parse_dockerfile, parse_dockerfile_text
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


def test_each_keyword_reads_as_the_builders_do():
    """What each keyword does to the model: its BuildKit step, its values, and the state it leaves
    to the instructions after it (``state`` is what an instruction runs in)."""
    df = parse_dockerfile_text(
        "ARG BASE=python:3.11\nARG FROMCLI\nARG GLOBAL=g\n"
        "FROM $BASE AS Build\nARG GLOBAL\nARG FROMCLI\nARG LOCAL=l\nARG NONE\n"
        "ENV A=1 B=\"x y\"\nENV LEG  two  words\nLABEL who=$A\n"
        "WORKDIR src/$A\nWORKDIR ../up\nUSER app:$A\nSHELL [\"/bin/bash\", \"-c\"]\n"
        "RUN echo '$A' $UNSET \"$B\"\nCOPY --chown=$A a.txt \"b c\" sub/\nADD https://x/y.tgz /opt/\n"
        "CMD [\"python3\", \"app.py\"]\nEXPOSE $A\n"
        "FROM build AS next\nRUN echo $A\n"
        "FROM scratch\nCOPY --from=next / /\n",
        build_args={"FROMCLI": "cli"}, base_env=lambda base: {"PATH": "/bin", "BASE": base})
    inst = df.instructions
    assert [(i.line, i.keyword, i.stage, i.step, i.buildkit_text, i.values) for i in inst] == [
        (1, "ARG", None, None, None, {"BASE": "python:3.11"}),
        (2, "ARG", None, None, None, {}),
        (3, "ARG", None, None, None, {"GLOBAL": "g"}),
        (4, "FROM", 0, 1, "FROM docker.io/library/python:3.11", {}),
        (5, "ARG", 0, None, None, {}),
        (6, "ARG", 0, None, None, {}),
        (7, "ARG", 0, None, None, {"LOCAL": "l"}),
        (8, "ARG", 0, None, None, {}),
        (9, "ENV", 0, None, None, {"A": "1", "B": "x y"}),
        (10, "ENV", 0, None, None, {"LEG": "two  words"}),
        (11, "LABEL", 0, None, None, {"who": "1"}),
        (12, "WORKDIR", 0, 2, "WORKDIR src/1", {}),
        (13, "WORKDIR", 0, 3, "WORKDIR ../up", {}),
        (14, "USER", 0, None, None, {}),
        (15, "SHELL", 0, None, None, {}),
        (16, "RUN", 0, 4, "RUN echo '$A' $UNSET \"x y\"", {}),  # quotes kept, unset left alone
        (17, "COPY", 0, 5, "COPY --chown=1 a.txt b c sub/", {}),
        (18, "ADD", 0, 6, "ADD https://x/y.tgz /opt/", {}),
        (19, "CMD", 0, None, None, {}),
        (20, "EXPOSE", 0, None, None, {}),
        (21, "FROM", 1, None, None, {}),  # FROM a stage: BuildKit shows no step for it
        (22, "RUN", 1, 1, "RUN echo 1", {}),
        (23, "FROM", 2, None, None, {}),  # FROM scratch: no step either
        (24, "COPY", 2, 1, "COPY --from=next / /", {})]
    base = {"PATH": "/bin", "BASE": "python:3.11"}
    env = {**base, "A": "1", "B": "x y", "LEG": "two  words"}
    # Global ARGs: a build argument overrides the default, and FROM sees them.
    assert inst[3].state.args == {} and inst[2].state.args == {"BASE": "python:3.11", "FROMCLI": "cli", "GLOBAL": "g"}
    # A stage's ARG takes the build argument, else its default, else the global value; NONE has none.
    assert inst[8].state.args == {"GLOBAL": "g", "FROMCLI": "cli", "LOCAL": "l"}
    assert inst[4].state.env == inst[8].state.env == base  # the base image's own environment
    assert inst[9].state.env == {**base, "A": "1", "B": "x y"} and inst[10].state.env == env
    assert [i.state.workdir for i in inst[11:14]] == ["/", "/src/1", "/src/up"]
    assert (inst[13].state.user, inst[14].state.user) == ("", "app:1")
    assert (inst[14].state.shell, inst[15].state.shell) == (("/bin/sh", "-c"), ("/bin/bash", "-c"))
    assert inst[16].sources == ("a.txt", "b c") and inst[16].dest == "/src/up/sub/"
    assert inst[16].flags == {"chown": "$A"} and inst[17].dest == "/opt/"
    assert inst[18].command == ("python3", "app.py") and inst[19].words == ("1",)
    # FROM a stage starts from the state that stage left (no build arguments); FROM scratch from nothing.
    assert inst[21].state == BuildState(env, {}, "/src/up", "app:1", ("/bin/bash", "-c"))
    assert inst[23].state.env == {} and inst[23].state.workdir == "/"
    assert [(s.name, s.base, s.base_stage, len(s.instructions)) for s in df.stages] == [
        ("build", "python:3.11", None, 17), ("next", "build", 0, 2), (None, "scratch", None, 2)]
    assert [df.buildkit_label(i) for i in df.stages[0].steps] == [f"[build {n}/6]" for n in range(1, 7)]
    assert df.needed_stages() == [0, 1, 2]


@pytest.mark.parametrize("text, line, words", [
    ("FROM x\nFROBNICATE y\n", 2, "unknown instruction 'FROBNICATE'"),
    ("RUN echo\n", 1, "before the first FROM"),
    ("FROM x\nCOPY onlyone\n", 2, "at least one source"),
    ("FROM a b c d\n", 1, "does not parse"),
    ("FROM x\n\nCOPY --bogus=1 a b\n", 3, "--bogus"),
    ("FROM x\nWORKDIR\n", 2, "needs arguments"),  # an empty RUN parses (and fails when it runs)
    ("# just a comment\n", 1, "no FROM"),
    ("ARG A\nENV B=1\n", 2, "ENV comes before the first FROM; only ARG may"),
    ("FROM x AS a\nFROM y AS A\n", 2, "a stage named 'a' already exists"),
    ("FROM x as\n", 1, "FROM takes an image and optionally 'AS name'"),
    ("FROM x\nSHELL sh -c\n", 2, "SHELL must be a JSON array of strings"),
    ("FROM x\nLABEL nokey\n", 2, "LABEL needs name=value pairs, got 'nokey'"),
    ("FROM x\nADD --from=a b c\n", 2, "ADD has no flag --from"),
    ("ARG X=${B:?unset}\n", 1, "ARG does not parse (B: unset)"),
    ("FROM ${B:?unset}\n", 1, "FROM does not parse (B: unset)"),
    ("FROM x\nENV A=${B:?unset}\n", 2, "ENV does not parse (B: unset)"),
    ("FROM x\nRUN echo ${B:?unset}\n", 2, "RUN does not parse (B: unset)"),
    ("RUN echo ${B:?unset}\n", 1, "RUN comes before the first FROM"),  # the order matters before the text
    ("FROM x\nCOPY ${B:?unset}\n", 2, "COPY does not parse (B: unset)"),  # its step's text, before its sources
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
