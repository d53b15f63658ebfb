"""What the builders' log readers share: the Dockerfile as builders number it, and small line helpers.

Each builder's log has a reader of its own: :mod:`.log_buildkit` (``--progress=plain`` and
``rawjson``, and the tty transcript an article shows), :mod:`.log_classic` (the classic builder's
API stream) and :mod:`.log_buildah` (Podman's builder).  They all turn a log into
:class:`~course_helpers.builder.report.Step` lists and a
:class:`~course_helpers.builder.report.Failure`.

The figure of build context BuildKit received (:func:`context_transfer`) is read here too, not by
the BuildKit reader: :class:`~course_helpers.builder.report.BuildReport` asks for it, and a
report needs no parser (the parsers make reports' steps, so they import the report).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Iterable

from ..dockerfile.parse import Dockerfile, parse_dockerfile_text


# --- the Dockerfile, numbered as the builders number it ----------------------------------------

@dataclass(frozen=True)
class NumberedInstruction:
    """One Dockerfile instruction with the numbers the builders' logs give it.

    A view of :class:`course_helpers.dockerfile.parse.Instruction` keyed the way build output
    names steps: by stage label and position, not by the parser's indexes.

    Attributes:
        number: 1-based position in the whole file (what classic ``Step N/M`` counts).
        stage: the stage's ``AS`` name, or its 0-based number as a string.
        stage_number: the stage's 0-based number.
        buildkit_index: BuildKit's ``[i/n]`` index within the stage, or None for metadata
            instructions (CMD, ENV, ...) that BuildKit does not number.
        text: the instruction as written (continuation lines joined).
        line: the 1-based line where it starts.
    """

    number: int
    stage: str
    stage_number: int
    buildkit_index: int | None
    text: str
    line: int

    @property
    def keyword(self) -> str:
        return self.text.split(None, 1)[0].upper()


def read_instructions(text: str, build_args: dict[str, str] | None = None) -> list[NumberedInstruction]:
    """The Dockerfile's instructions with the stage and numbering each builder uses.

    A view of :mod:`course_helpers.dockerfile.parse` (the course's one reader), keyed
    the way build output names steps.

    Args:
        text: the Dockerfile's contents.
        build_args: build arguments, which ``FROM`` and ``ARG`` may use.

    Raises:
        DockerfileError: the text does not parse.
    """
    return instructions_of(parse_dockerfile_text(text, build_args=build_args))


def instructions_of(df: Dockerfile) -> list[NumberedInstruction]:
    """:class:`NumberedInstruction` views of a parsed Dockerfile (global ARGs excluded)."""
    out = []
    for inst in df.instructions:
        if inst.stage is None:
            continue
        stage = df.stages[inst.stage]
        out.append(NumberedInstruction(inst.number, stage.label, stage.index, inst.step, inst.original, inst.line))
    return out


# --- lines -------------------------------------------------------------------------------------

_ANSI_COLOUR = re.compile(r"\x1b\[[0-9;]*m")


def strip_colour(line: str) -> str:
    """The line without the terminal colour codes a builder puts around stderr."""
    return _ANSI_COLOUR.sub("", line)


def exit_code_in(text: str) -> int | None:
    """The exit code an error message names (``exit code: 1``, ``non-zero code: 1``), or None."""
    match = re.search(r"(?:exit code:|non-zero code:)\s*(\d+)", text)
    return int(match.group(1)) if match else None


def lines_of(text_or_lines: str | Iterable[Any]) -> Iterable[Any]:
    """A whole log's lines, or the lines (or decoded events) as given."""
    return text_or_lines.splitlines() if isinstance(text_or_lines, str) else text_or_lines


# --- BuildKit's two machine forms, as far as the context figure needs them -----------------------

#: A ``--progress=plain`` line of one vertex: ``#5 [2/4] WORKDIR /usr/src/app``, ``#5 CACHED``.
PLAIN_LINE = re.compile(r"^#(\d+) (.*)$")


def solve_status(line: str | dict[str, Any]) -> dict[str, Any] | None:
    """One line of ``--progress=rawjson`` output as a SolveStatus dict, or None when it is not one.

    buildx prints the build's last words (the Dockerfile excerpt around a failing line, and
    ``ERROR: failed to build: ...``) as plain text after the JSON lines.
    """
    if isinstance(line, dict):
        return line
    text = line.strip()
    if not text.startswith("{"):
        return None
    try:
        status = json.loads(text)
    except ValueError:
        return None
    return status if isinstance(status, dict) else None


_CONTEXT_VERTEX = "[internal] load build context"
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kMGT]?B)$")
_UNITS = {"B": 1, "kB": 1000, "MB": 1000 ** 2, "GB": 1000 ** 3, "TB": 1000 ** 4}


def parse_size(text: str) -> int | None:
    """``"52.43MB"`` (how BuildKit prints sizes: decimal units) -> bytes, or None when it is not a size."""
    match = _SIZE.match(text.strip())
    return round(float(match.group(1)) * _UNITS[match.group(2)]) if match else None


def context_transfer(log: str) -> int | None:
    """How many bytes of build context the builder received, from a BuildKit log (plain or rawjson).

    BuildKit reports it on its ``[internal] load build context`` step as ``transferring context: 479B``.
    It sends only what changed since its last build from the same folder, so a rebuild usually
    reports a few bytes; the classic builder sends the whole context every time and does not report it.

    Args:
        log: the builder's whole output (``BuildReport.log``).  After a retry (see
            :func:`~course_helpers.builder.build.build`) it holds two builds: the first one sent the
            context, the second only what changed since, so the larger figure is the build's.

    Returns:
        Bytes (rounded as BuildKit prints them, e.g. 52.43MB), or None when the log does not say.
    """
    sent: int | None = None
    vertex_key: str | None = None
    for line in log.splitlines():
        line = line.strip()
        status = solve_status(line)
        if status is not None:
            for vx in status.get("vertexes") or []:
                if vx.get("name") == _CONTEXT_VERTEX:
                    vertex_key = vx.get("digest")
            for st in status.get("statuses") or []:
                if st.get("vertex") == vertex_key and st.get("id") == "transferring context:":
                    sent = max(sent or 0, int(st.get("current") or 0))
            continue
        match = PLAIN_LINE.match(line)
        if not match:
            continue
        key, rest = match.groups()
        if rest == _CONTEXT_VERTEX:
            vertex_key = key
        elif key == vertex_key and rest.startswith("transferring context:"):
            words = rest[len("transferring context:"):].split()
            size = parse_size(words[0]) if words else None
            sent = max(sent or 0, size) if size is not None else sent
    return sent
