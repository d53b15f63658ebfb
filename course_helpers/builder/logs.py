"""Turn what a builder prints into :class:`~course_helpers.report.Step` lists.  Pure: no engine.

Five inputs, one model:

* BuildKit ``--progress=plain`` (``#5 [2/4] WORKDIR /usr/src/app``, ``#5 CACHED``, ``#5 DONE 0.1s``);
* BuildKit ``--progress=rawjson`` (one SolveStatus JSON object per line: vertexes, statuses, logs);
* the classic builder's API stream (``{"stream": "Step 3/5 : COPY . ."}``, ``" ---> Using cache"``);
* Podman's builder (Buildah) through the same API (``{"stream": "[1/2] STEP 3/5: COPY . ."}``,
  ``"--> Using cache <id>"``), which numbers steps within each stage;
* the tty transcript an article shows (``=> CACHED [2/4] WORKDIR /usr/src/app  0.0s``), for fixtures only.

BuildKit numbers only FROM and the instructions that touch the filesystem
(RUN, COPY, ADD, WORKDIR): ``[i/n]`` skips CMD, ENV and other metadata, so a
BuildKit step list has no CMD step while a classic one does.  BuildKit also
prints FROM as ``docker.io/library/python:...``; pass the Dockerfile's
instructions (:func:`read_instructions`) and every step carries the line as
written, or leave them out and FROM is restored as well as it can be.
"""
from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from typing import Any, Iterable

from ..config import LABEL_PREFIX
from ..dockerfile.parse import Dockerfile, parse_dockerfile_text
from ..formatting import format_size, parse_time
from .report import Step



# --- the Dockerfile ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction.

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


def read_instructions(text: str, build_args: dict[str, str] | None = None) -> list[Instruction]:
    """The Dockerfile's instructions with the stage and numbering each builder uses.

    A view of :mod:`course_helpers.dockerfile.parse` (the course's one reader), keyed
    the way build output names steps.

    Args:
        text: the Dockerfile's contents.
        build_args: build arguments, which ``FROM`` and ``ARG`` may use.
    """
    return instructions_of(parse_dockerfile_text(text, build_args=build_args))


def instructions_of(df: Dockerfile) -> list[Instruction]:
    """:class:`Instruction` views of a parsed Dockerfile (global ARGs excluded)."""
    out = []
    for inst in df.instructions:
        if inst.stage is None:
            continue
        stage = df.stages[inst.stage]
        out.append(Instruction(inst.number, stage.label, stage.index, inst.step, inst.original, inst.line))
    return out


def _lookup(instructions: list[Instruction] | None) -> dict[tuple[str, int], Instruction]:
    return {(i.stage, i.buildkit_index): i for i in instructions or [] if i.buildkit_index is not None}


# --- failures ---------------------------------------------------------------------------------

@dataclass
class Failure:
    """Why a build stopped.

    Attributes:
        message: the builder's own error text.
        step: the step that failed, or None (e.g. the Dockerfile could not be parsed).
        total: how many steps the failing step's count runs to (``[4/4]`` -> 4), or None.
        exit_code: the failing RUN's exit code, or None.
        logs: what the failing step printed.
        phase: the builder's own work that failed, as BuildKit names it (``"exporting to image"``),
            when no step did; None otherwise.
    """

    message: str
    step: Step | None = None
    total: int | None = None
    exit_code: int | None = None
    logs: list[str] = field(default_factory=list)
    phase: str | None = None


def _exit_code(text: str) -> int | None:
    match = re.search(r"(?:exit code:|non-zero code:)\s*(\d+)", text)
    return int(match.group(1)) if match else None


# --- BuildKit: a vertex model shared by plain, rawjson and tty ---------------------------------

_HEADER = re.compile(r"^\[(?:(?P<stage>[^\s\]]+) )?\s*(?P<i>\d+)/(?P<n>\d+)\] (?P<text>.*)$")
_PULL = re.compile(r"^(?:sha256:[0-9a-f]+ \S+ / \S+|extracting sha256:)")


@dataclass
class _Vertex:
    stage: str | None
    index: int
    total: int
    text: str
    order: int
    cached: bool = False
    seconds: float | None = None
    error: str | None = None
    pulled: bool = False
    canceled: bool = False
    logs: list[str] = field(default_factory=list)


def _stage_label(token: str | None) -> str | None:
    if token is None:
        return None
    match = re.fullmatch(r"stage-(\d+)", token)  # BuildKit's name for an unnamed stage
    return match.group(1) if match else token


def _restore_from(text: str, stage: str) -> str:
    """``FROM docker.io/library/python:3.11@sha256:...`` -> ``FROM python:3.11`` (+ ``AS name``)."""
    ref = text.split(None, 1)[1] if " " in text else ""
    ref = re.sub(r"@sha256:[0-9a-f]+$", "", ref)
    ref = re.sub(r"^docker\.io/(library/)?", "", ref)
    suffix = "" if stage.isdigit() else f" AS {stage}"
    return f"FROM {ref}{suffix}"


class _VertexSteps:
    """Collects BuildKit vertices and turns them into steps."""

    def __init__(self, instructions: list[Instruction] | None):
        self.instructions = instructions
        self.by_key: dict[str, _Vertex] = {}
        self.skipped: dict[str, str] = {}  # key -> name of [internal], exporting, ...: not Dockerfile steps
        self.phase_errors: list[tuple[str, str]] = []  # (name, error) of those that failed
        self.top_errors: list[str] = []

    def header(self, key: str, name: str) -> _Vertex | None:
        if key in self.by_key:
            return self.by_key[key]
        match = _HEADER.match(name.strip())
        if not match:
            self.skipped[key] = name.strip()
            return None
        vertex = _Vertex(_stage_label(match.group("stage")), int(match.group("i")),
                         int(match.group("n")), match.group("text").strip(), len(self.by_key))
        self.by_key[key] = vertex
        return vertex

    def _stage_of(self, vertex: _Vertex) -> str:
        if vertex.stage is not None:
            return vertex.stage
        # BuildKit omits the stage of a single-stage build; the Dockerfile may still name it.
        stages = {i.stage for i in self.instructions or []}
        return stages.pop() if len(stages) == 1 else "0"

    def _stage_rank(self) -> dict[str, int]:
        return {i.stage: i.stage_number for i in self.instructions or []}

    def _step(self, vertex: _Vertex, lookup: dict[tuple[str, int], Instruction]) -> Step:
        stage = self._stage_of(vertex)
        known = lookup.get((stage, vertex.index))
        is_from = vertex.text.upper().startswith("FROM ")
        if known is not None:
            text = known.text
        else:
            text = _restore_from(vertex.text, stage) if is_from else vertex.text
        if is_from:
            # The base counts as cached when nothing was pulled for it.
            cached = vertex.cached or (not vertex.pulled and vertex.error is None)
        else:
            cached = vertex.cached
        seconds = 0.0 if cached or vertex.seconds is None else vertex.seconds
        return Step(index=vertex.index, stage=stage, instruction=text, cached=cached, seconds=seconds,
                    output=list(vertex.logs))

    def _rebind_foreign_names(self, lookup: dict[tuple[str, int], Instruction]) -> None:
        """Give a vertex named by another build its place in this Dockerfile.

        BuildKit runs an identical step once for every build that has it at the same time,
        and may print it under the other build's name (``[2/4] WORKDIR /usr/src/app`` in a
        five-step stage).  Such a vertex whose number fits no instruction of ours, but whose
        text fits exactly one step we have not seen, is that step.
        """
        vertices = list(self.by_key.values())
        taken = {(self._stage_of(v), v.index) for v in vertices if (self._stage_of(v), v.index) in lookup}
        for v in vertices:
            if (self._stage_of(v), v.index) in lookup or v.text.upper().startswith("FROM "):
                continue
            text = " ".join(v.text.split())
            fits = [i for i in self.instructions or [] if i.buildkit_index is not None
                    and (i.stage, i.buildkit_index) not in taken and " ".join(i.text.split()) == text]
            if len(fits) == 1:
                v.stage, v.index = fits[0].stage, fits[0].buildkit_index
                taken.add((fits[0].stage, fits[0].buildkit_index))

    def steps(self) -> list[Step]:
        lookup = _lookup(self.instructions)
        self._rebind_foreign_names(lookup)
        rank = self._stage_rank()
        vertices = list(self.by_key.values())
        # Without a Dockerfile, stages go in the order their first non-FROM step started
        # (BuildKit runs a stage's dependencies first); FROM vertices may be shared, see below.
        seen_stage_order: dict[str, int] = {}
        for v in sorted(vertices, key=lambda v: (v.index == 1, v.order)):
            seen_stage_order.setdefault(self._stage_of(v), len(seen_stage_order))
        # A vertex canceled because another step failed neither ran nor came from the cache.
        steps = [self._step(v, lookup) for v in vertices if not v.canceled]
        if self.instructions:
            # A FROM vertex shared with another build running at the same time may print under
            # that build's label ("[1/7] FROM ..."), which is none of our steps: our stages' FROMs
            # are added back below, so keeping it would add a stage this Dockerfile does not have.
            steps = [s for s in steps if not (s.instruction.upper().startswith("FROM ") and (s.stage, s.index)
                                              not in lookup and s.stage not in {i.stage for i in self.instructions})]
        # BuildKit prints one vertex for identical FROMs (two stages on one base) and names it
        # after one stage only; the other stage's FROM is the same cached base, so add it back.
        have = {(s.stage, s.index) for s in steps}
        started = {s.stage for s in steps}
        if self.instructions:
            for ins in self.instructions:
                if (ins.keyword == "FROM" and ins.buildkit_index == 1 and ins.stage in started
                        and (ins.stage, 1) not in have):
                    steps.append(Step(index=1, stage=ins.stage, instruction=ins.text, cached=True))
        else:
            bases = [s for s in steps if s.index == 1 and s.instruction.upper().startswith("FROM ")]
            for stage in sorted(started - {s.stage for s in bases}):
                if len({b.instruction.split(" AS ")[0] for b in bases}) == 1:
                    text = _restore_from(bases[0].instruction.split(" AS ")[0], stage)
                    steps.append(Step(index=1, stage=stage, instruction=text, cached=True))

        def order(step: Step) -> tuple[int, int]:
            stage_pos = rank.get(step.stage, 1000 + seen_stage_order.get(step.stage, 0))
            return (stage_pos, step.index)

        return sorted(steps, key=order)

    def failure(self) -> Failure | None:
        failed = [v for v in self.by_key.values() if v.error is not None]
        if failed:
            vertex = failed[0]
            return Failure(message=vertex.error or "", step=self._step(vertex, _lookup(self.instructions)),
                           total=vertex.total, exit_code=_exit_code(vertex.error or ""), logs=vertex.logs)
        if self.phase_errors:
            name, error = self.phase_errors[0]
            return Failure(message=error, phase=name)
        if self.top_errors:
            return Failure(message=self.top_errors[-1], exit_code=_exit_code(self.top_errors[-1]))
        return None


# --- BuildKit plain ---------------------------------------------------------------------------

_PLAIN = re.compile(r"^#(\d+) (.*)$")
_TIMESTAMPED = re.compile(r"^\d+\.\d+ (.*)$")  # "#8 0.767 Collecting flask" (a RUN's output)


class PlainParser:
    """Incremental parser of ``--progress=plain`` output; feed lines as they arrive.

    Args:
        instructions: the Dockerfile's instructions, so steps carry the lines as written.
    """

    def __init__(self, instructions: list[Instruction] | None = None):
        self._v = _VertexSteps(instructions)

    def feed(self, line: str) -> None:
        """Take one line of output (with or without its newline)."""
        line = line.rstrip("\r\n")
        match = _PLAIN.match(line)
        if not match:
            text = line.strip()
            # Errors outside any vertex: a Dockerfile that does not parse, a failed solve.
            if re.match(r"^(failed to solve|error:|ERROR:|failed to)", text, re.IGNORECASE):
                self._v.top_errors.append(text)
            return
        key, rest = match.groups()
        if key in self._v.skipped:
            if rest.startswith("ERROR"):
                self._v.phase_errors.append((self._v.skipped[key], rest.split(":", 1)[-1].strip()))
            return
        vertex = self._v.by_key.get(key)
        if vertex is None:
            self._v.header(key, rest)
            return
        if rest == "CACHED":
            vertex.cached = True
        elif rest.startswith("DONE "):
            vertex.seconds = float(rest[5:].rstrip("s") or 0)
        elif rest.startswith("ERROR"):
            vertex.error = rest.split(":", 1)[1].strip() if ":" in rest else rest
        elif rest.startswith("CANCELED"):
            vertex.canceled = True
        else:
            logged = _TIMESTAMPED.match(rest)
            if logged:
                vertex.logs.append(logged.group(1))
            elif _PULL.match(rest):
                vertex.pulled = True

    def steps(self) -> list[Step]:
        """The steps seen so far, in Dockerfile order."""
        return self._v.steps()

    def failure(self) -> Failure | None:
        """Why the build failed, or None if no error was printed."""
        return self._v.failure()


def _lines(text_or_lines: str | Iterable[str]) -> Iterable[str]:
    return text_or_lines.splitlines() if isinstance(text_or_lines, str) else text_or_lines


def parse_buildkit_plain(text_or_lines: str | Iterable[str],
                         instructions: list[Instruction] | None = None) -> list[Step]:
    """Steps of a BuildKit ``--progress=plain`` log.

    Args:
        text_or_lines: the whole output, or its lines.
        instructions: the Dockerfile's instructions (:func:`read_instructions`), so FROM and
            every other step carry the line as written; without them FROM is restored from
            BuildKit's ``docker.io/library/...`` form.

    Returns:
        One step per numbered BuildKit vertex (FROM and RUN/COPY/ADD/WORKDIR), in Dockerfile order.
    """
    parser = PlainParser(instructions)
    for line in _lines(text_or_lines):
        parser.feed(line)
    return parser.steps()


# --- BuildKit rawjson ----------------------------------------------------------------------------

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


def _elapsed(start: Any, end: Any) -> float:
    a, b = parse_time(start), parse_time(end)
    return max(0.0, b - a) if a is not None and b is not None else 0.0


class SolveStatusPrinter:
    """Turns SolveStatus objects into the lines ``--progress=plain`` prints for them.

    buildx draws its plain progress from the same objects, so a learner reads the same
    ``#5 [2/4] WORKDIR /usr/src/app`` / ``#5 CACHED`` / ``#8 DONE 2.2s`` lines in either
    mode.  What the real streams showed, and this follows:

    * a vertex comes many times: named, then started, then completed (``cached`` only on
      a later update), and may start again after it completed (the FROM of a build on the
      containerd store runs once, then again as CACHED): a run prints its end when it ends
      otherwise than the run before, under a header printed when the vertex first has
      something to show, as buildx does;
    * a RUN's output comes in chunks that do not follow lines (a progress bar, then its
      newline alone), so lines are put together per vertex and stream;
    * when one step fails, BuildKit cancels the others with ``context canceled`` errors:
      those print as ``CANCELED``, as buildx prints them, and are not the build's failure;
    * a step BuildKit makes of several vertices (``COPY --link``: the copy, then ``LINK`` onto
      the parent) names them in one progress group, which buildx prints as one vertex, ended
      when all of them are, and CACHED only when all of them are.
    """

    def __init__(self) -> None:
        # Keys are what buildx prints as one vertex: a vertex's digest, or "group:<id>" for a group.
        self._number: dict[str, int] = {}
        self._names: dict[str, str] = {}
        self._key: dict[str, str] = {}  # digest -> key
        self._runs: dict[str, dict[str, dict[str, Any]]] = {}  # key -> digest -> its current run
        self._ended: dict[str, tuple[tuple, str]] = {}  # key -> the runs that ended, and how
        self._statuses: set[tuple[str, str, str]] = set()  # (vertex, id, started) printed as done
        self._partial: dict[tuple[str, int], tuple[str, Any]] = {}  # (key, stream) -> unfinished line, its time
        self._current: str | None = None

    def _header(self, digest: str, out: list[str]) -> int:
        """The vertex's number; its header goes first when the lines before were another vertex's."""
        number = self._number.setdefault(digest, len(self._number) + 1)
        if self._current != digest:
            out += ["", f"#{number} {self._names.get(digest, '')}"]
            self._current = digest
        return number

    def _log_lines(self, key: str, text: str, stamp: Any, out: list[str]) -> None:
        number = self._header(key, out)
        at = _elapsed(self._started(key), stamp)
        for line in text.split("\n"):
            line = line.rstrip("\r").rsplit("\r", 1)[-1]  # what a terminal leaves of a redrawn line
            out.append(f"#{number} {at:.3f} {line}")

    def _started(self, key: str) -> str | None:
        """When the current run of the vertex (the first of its group's) started."""
        stamps = [r["started"] for r in self._runs.get(key, {}).values() if r["started"]]
        return min(stamps, key=lambda t: parse_time(t) or 0) if stamps else None

    def _flush(self, key: str | None, out: list[str]) -> None:
        for part in [k for k in self._partial if key is None or k[0] == key]:
            text, stamp = self._partial.pop(part)
            self._log_lines(part[0], text, stamp, out)

    def feed(self, status: dict[str, Any]) -> list[str]:
        """The plain lines one SolveStatus adds."""
        out: list[str] = []
        for vx in status.get("vertexes") or []:
            digest = vx.get("digest", "")
            group = vx.get("progressGroup") or {}
            key = self._key.setdefault(digest, f"group:{group['id']}" if group.get("id") else digest)
            self._names[key] = (group.get("name") if key != digest else None) or vx.get("name", "")
            runs = self._runs.setdefault(key, {})
            run = runs.setdefault(digest, {"started": None})
            if vx.get("started") and vx["started"] != run["started"]:  # its first run, or a new one
                runs[digest] = run = {"started": vx["started"]}
            run.update({k: vx[k] for k in ("completed", "cached", "error") if vx.get(k)})
            if all(r.get("completed") for r in runs.values()):
                self._end(key, out)
        for st in status.get("statuses") or []:
            key, ident = self._key.get(st.get("vertex", ""), ""), st.get("id", "")
            done = (key, ident, str(st.get("started")))
            if not st.get("completed") or done in self._statuses or key not in self._names:
                continue
            self._statuses.add(done)
            number = self._header(key, out)
            current, total = int(st.get("current") or 0), int(st.get("total") or 0)
            amount = (f" {format_size(current)} / {format_size(total)}" if total else
                      f" {format_size(current)}" if current else "")
            out.append(f"#{number} {ident}{amount} {_elapsed(st.get('started'), st['completed']):.1f}s done")
        for log in status.get("logs") or []:
            key, stream = self._key.get(log.get("vertex", ""), ""), int(log.get("stream") or 1)
            try:
                data = base64.b64decode(log.get("data") or "").decode("utf-8", "replace")
            except ValueError:
                continue
            before, stamp = self._partial.pop((key, stream), ("", log.get("timestamp")))
            *lines, rest = (before + data).split("\n")
            if rest:
                self._partial[(key, stream)] = (rest, stamp if before else log.get("timestamp"))
            if lines:
                self._log_lines(key, "\n".join(lines), stamp, out)
        return out

    def _end(self, key: str, out: list[str]) -> None:
        """Print how the current runs of the vertex (or of every vertex in its group) ended.

        A run that ends as the one before did (DONE again) prints nothing more, as in buildx; one
        that ends otherwise does (the base's FROM: DONE, then CACHED).
        """
        runs = self._runs[key]
        signature = tuple(sorted((d, r["started"]) for d, r in runs.items()))
        before = self._ended.get(key)
        if before is not None and before[0] == signature:
            return
        errors = [r["error"] for r in runs.values() if r.get("error")]
        real = [e for e in errors if "context canceled" not in e]
        if real:
            word = f"ERROR: {real[0]}"
        elif errors:
            word = "CANCELED"
        elif all(r.get("cached") for r in runs.values()):
            word = "CACHED"
        else:
            end = max(runs.values(), key=lambda r: parse_time(r["completed"]) or 0)["completed"]
            word = f"DONE {_elapsed(self._started(key), end):.1f}s"
        self._ended[key] = (signature, word.split()[0])
        self._flush(key, out)
        if before is not None and before[1] == word.split()[0]:
            return
        out.append(f"#{self._header(key, out)} {word}")
        self._current = None  # whatever it prints next comes under a new header, as in buildx

    def finish(self) -> list[str]:
        """Lines still unfinished when the stream ends."""
        out: list[str] = []
        self._flush(None, out)
        return out


class RawjsonParser:
    """Incremental parser of ``--progress=rawjson`` output (BuildKit SolveStatus, one JSON per line).

    Each status is turned into the lines ``--progress=plain`` prints (:class:`SolveStatusPrinter`),
    which a :class:`PlainParser` reads: the two modes give one step list by one path.

    Args:
        instructions: the Dockerfile's instructions, as for :class:`PlainParser`.
    """

    def __init__(self, instructions: list[Instruction] | None = None):
        self._printer = SolveStatusPrinter()
        self._plain = PlainParser(instructions)

    def feed(self, line: str | dict[str, Any]) -> list[str]:
        """Take one line of output (a JSON line, an already decoded dict, or buildx's closing text).

        Returns:
            The lines ``--progress=plain`` shows for it, for a live view.
        """
        status = solve_status(line)
        out = [str(line).rstrip("\r\n")] if status is None else self._printer.feed(status)
        for text in out:
            self._plain.feed(text)
        return out

    def finish(self) -> list[str]:
        """At the end of the stream: the output lines still unfinished (a last line without newline)."""
        out = self._printer.finish()
        for text in out:
            self._plain.feed(text)
        return out

    def steps(self) -> list[Step]:
        """The steps seen so far, in Dockerfile order."""
        self.finish()
        return self._plain.steps()

    def failure(self) -> Failure | None:
        """Why the build failed, or None."""
        self.finish()
        return self._plain.failure()


def parse_buildkit_rawjson(lines: str | Iterable[str | dict[str, Any]],
                           instructions: list[Instruction] | None = None) -> list[Step]:
    """Steps of a BuildKit ``--progress=rawjson`` log (one SolveStatus JSON object per line).

    Args:
        lines: the whole output, or its lines (or decoded dicts).
        instructions: as for :func:`parse_buildkit_plain`.

    Returns:
        The steps, as :func:`parse_buildkit_plain` gives them.
    """
    parser = RawjsonParser(instructions)
    for line in _lines(lines):
        parser.feed(line)
    return parser.steps()


# --- the build context as the engine received it ------------------------------------------------

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
        match = _PLAIN.match(line)
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


# --- BuildKit tty transcript (articles) ------------------------------------------------------------

_TTY = re.compile(r"^\s*=> (?P<cached>CACHED )?(?P<name>.*?)(?:\s+(?P<secs>\d+\.\d+)s)?\s*$")


def parse_buildkit_tty(text: str, instructions: list[Instruction] | None = None) -> list[Step]:
    """Steps of one build's tty transcript (``=> CACHED [2/4] WORKDIR /usr/src/app  0.0s``).

    Meant for transcripts in articles and fixtures only: a live build is never scraped in tty form.

    Args:
        text: the transcript of one build.
        instructions: as for :func:`parse_buildkit_plain`.

    Returns:
        The steps, as :func:`parse_buildkit_plain` gives them.
    """
    collected = _VertexSteps(instructions)
    current: _Vertex | None = None
    for n, line in enumerate(text.splitlines()):
        stripped = line.strip()
        if stripped.startswith("=> =>"):
            # A sub-line of the vertex above: downloads and extraction mean the base was pulled.
            if current is not None and _PULL.match(stripped[5:].strip()):
                current.pulled = True
            continue
        match = _TTY.match(line)
        if not match:
            continue
        current = collected.header(f"tty{n}", match.group("name"))
        if current is None:
            continue
        current.cached = bool(match.group("cached"))
        if match.group("secs"):
            current.seconds = float(match.group("secs"))
    return collected.steps()


# --- classic builder ---------------------------------------------------------------------------------

_CLASSIC_STEP = re.compile(r"^Step (\d+)/(\d+) : (.*)$")


class ClassicParser:
    """Incremental parser of the classic builder's API stream (``client.api.build(decode=True)``).

    Args:
        instructions: the Dockerfile's instructions; steps numbered beyond them are the LABEL
            steps the classic builder appends for ``labels=`` and are dropped.
        clock: a function returning seconds (e.g. ``time.monotonic``) to time live steps;
            None for recorded streams, whose steps then take 0 s.
    """

    def __init__(self, instructions: list[Instruction] | None = None, clock: Any = None):
        self.instructions = instructions
        self.clock = clock
        self.image_id: str | None = None
        self._steps: list[Step] = []
        self._totals: list[int] = []
        self._pulled: set[int] = set()
        self._logs: list[list[str]] = []
        self._started: float | None = None
        self._stage, self._stage_number = "0", -1
        self._failure: Failure | None = None
        self._partial = ""

    def _close_timing(self) -> None:
        if self.clock is not None and self._steps and self._started is not None:
            last = self._steps[-1]
            last.seconds = 0.0 if last.cached else round(self.clock() - self._started, 1)
            self._started = None

    def _event(self, event: dict[str, Any] | str) -> dict[str, Any] | None:
        """The event decoded (a recorded stream gives JSON lines), with the image id noted."""
        if isinstance(event, str):
            try:
                event = json.loads(event)
            except ValueError:
                return None
        if isinstance(event.get("aux"), dict) and "ID" in event["aux"]:
            self.image_id = event["aux"]["ID"]  # the last one is the final stage's image
        return event

    def feed(self, event: dict[str, Any] | str) -> None:
        """Take one decoded stream event, or one JSON line of a recorded stream."""
        event = self._event(event)
        if event is None:
            return
        if "status" in event and self._steps:
            self._pulled.add(len(self._steps) - 1)  # pull progress belongs to the FROM above it
        if "errorDetail" in event or "error" in event:
            detail = event.get("errorDetail") or {}
            message = detail.get("message") or event.get("error") or "build failed"
            self._close_timing()
            code = detail.get("code")
            step = self._steps[-1] if self._steps else None
            self._failure = Failure(message=message, step=step,
                                    total=self._totals[-1] if self._totals else None,
                                    exit_code=code if code is not None else _exit_code(message),
                                    logs=list(self._logs[-1]) if self._logs else [])
            return
        text = self._partial + str(event.get("stream", ""))
        # The builder sends "Step 3/5 : COPY . ." and its "\n" as separate events.
        if not text.endswith("\n") and text.startswith("Step "):
            self._partial = text
            return
        self._partial = ""
        for line in text.splitlines():
            self._line(line)

    def _line(self, line: str) -> None:
        match = _CLASSIC_STEP.match(line)
        if match:
            self._close_timing()
            number, total, instr = int(match.group(1)), int(match.group(2)), match.group(3).strip()
            if instr.split(None, 1)[0].upper() == "FROM":
                self._stage_number += 1
                named = re.search(r"\s+AS\s+(\S+)\s*$", instr, re.IGNORECASE)
                self._stage = named.group(1).lower() if named else str(self._stage_number)
            self._steps.append(Step(index=number, stage=self._stage, instruction=instr, cached=False))
            self._totals.append(total)
            self._logs.append([])
            self._started = self.clock() if self.clock is not None else None
            return
        if not self._steps:
            return
        if line.strip() == "---> Using cache":
            self._steps[-1].cached = True
        elif not line.startswith(" --->") and not line.startswith("Removing intermediate"):
            clean = re.sub(r"\x1b\[[0-9;]*m", "", line)  # the builder colours stderr red
            if clean.strip():
                self._logs[-1].append(clean)

    def _is_added_label(self, step: Step) -> bool:
        if self.instructions:
            return step.index > max(i.number for i in self.instructions)
        # No Dockerfile to compare with: a trailing LABEL of only the course's keys is ours.
        keys = re.findall(r"(\S+?)=", step.instruction[len("LABEL"):])
        return step.instruction.upper().startswith("LABEL ") and bool(keys) and all(
            k.startswith(LABEL_PREFIX) for k in keys)

    def steps(self) -> list[Step]:
        """The steps seen so far, minus the LABEL steps the builder appended for ``labels=``."""
        if self._steps and self._failure is None:
            self._close_timing()
            self._started = None
        steps = list(self._steps)
        while steps and self._is_added_label(steps[-1]):
            steps.pop()
        for step, printed in zip(steps, self._logs):
            step.output = list(printed)
        for i, step in enumerate(steps):
            if step.instruction.upper().startswith("FROM "):
                # Classic prints no "Using cache" for FROM: the base is cached unless it was pulled.
                step.cached = i not in self._pulled
                step.seconds = 0.0 if step.cached else step.seconds
        return steps

    def failure(self) -> Failure | None:
        """Why the build failed, or None."""
        return self._failure


def parse_classic(stream_events_or_lines: Iterable[dict[str, Any] | str],
                  instructions: list[Instruction] | None = None) -> list[Step]:
    """Steps of a classic-builder stream.

    Args:
        stream_events_or_lines: decoded events (dicts) or their JSON lines.
        instructions: the Dockerfile's instructions, to tell the builder's added LABEL steps apart.

    Returns:
        One step per Dockerfile instruction that ran, numbered as ``Step N/M`` counts them
        (one sequence over all stages), without the LABEL steps added for ``labels=``.
    """
    parser = ClassicParser(instructions)
    for event in stream_events_or_lines:
        parser.feed(event)
    return parser.steps()


# --- Buildah (Podman's builder, through the Docker-compatible API) -------------------------------

_BUILDAH_STEP = re.compile(r"^(?:\[(\d+)/(\d+)\] )?STEP (\d+)/(\d+): (.*)$")


def buildah_positions(instructions: list[Instruction]) -> dict[tuple[str, int], Instruction]:
    """Instructions by (stage, Buildah's step number): Buildah counts every instruction of a stage, FROM = 1."""
    out: dict[tuple[str, int], Instruction] = {}
    count: dict[str, int] = {}
    for inst in instructions:
        count[inst.stage] = count.get(inst.stage, 0) + 1
        out[(inst.stage, count[inst.stage])] = inst
    return out


class BuildahParser(ClassicParser):
    """Incremental parser of Podman's build stream (Buildah behind ``client.api.build(decode=True)``).

    Buildah prints ``STEP i/n: INSTRUCTION`` per stage (``[s/t] STEP i/n: ...`` when the build has
    several stages), ``--> Using cache <id>`` for a cached step and ``--> <id>`` when a step is
    done; ``[s/t]`` is the stage's place in the Dockerfile.  It skips stages the target does not
    need (their numbers are left out), and prints a stage built FROM another stage
    as ``FROM <image id> AS name``, so steps take their instruction text from the Dockerfile.

    Args:
        instructions: the Dockerfile's instructions; steps beyond a stage's own are the LABEL step
            Buildah appends for ``labels=`` and are dropped.
        clock: seconds function to time live steps; None for recorded streams (steps take 0 s).
    """

    def __init__(self, instructions: list[Instruction] | None = None, clock: Any = None):
        super().__init__(instructions, clock)
        self.positions = buildah_positions(instructions or [])
        self.labels = {i.stage_number: i.stage for i in instructions or []}
        self._open = False  # a step has started and not yet printed its "--> <id>"

    def feed(self, event: dict[str, Any] | str) -> None:
        """Take one decoded stream event, or one JSON line of a recorded stream."""
        event = self._event(event)
        if event is None:
            return
        if "errorDetail" in event or "error" in event:
            detail = event.get("errorDetail") or {}
            message = str(detail.get("message") or event.get("error") or "build failed").strip()
            self._close_timing()
            code = re.search(r"exit status (\d+)", message)
            self._failure = Failure(message=message, step=self._steps[-1] if self._steps else None,
                                    total=self._totals[-1] if self._totals else None,
                                    exit_code=int(code.group(1)) if code else _exit_code(message),
                                    logs=list(self._logs[-1]) if self._logs else [])
            return
        for line in str(event.get("stream", "")).splitlines():
            self._line(line)

    def _line(self, line: str) -> None:
        match = _BUILDAH_STEP.match(line)
        if match:
            self._close_timing()
            number, total, text = int(match.group(3)), int(match.group(4)), match.group(5).strip()
            if number == 1:
                self._stage_number = int(match.group(1)) - 1 if match.group(1) else self._stage_number + 1
                named = re.search(r"\s+AS\s+(\S+)\s*$", text, re.IGNORECASE)
                self._stage = self.labels.get(self._stage_number) or (
                    named.group(1).lower() if named else str(self._stage_number))
            known = self.positions.get((self._stage, number))
            self._steps.append(Step(index=number, stage=self._stage, instruction=known.text if known else text,
                                    cached=False))
            self._totals.append(total)
            self._logs.append([])
            self._started = self.clock() if self.clock is not None else None
            self._open = True
            return
        if not self._steps:
            return
        if line.startswith("--> Using cache"):
            self._steps[-1].cached = True
        elif line.startswith("-->"):
            self._close_timing()
            self._open = False
        elif re.match(r"^(?:\[\d+/\d+\] )?COMMIT\b|^Successfully (?:tagged|built) |^[0-9a-f]{64}$", line):
            return
        elif self._open and line.strip():
            self._logs[-1].append(re.sub(r"\x1b\[[0-9;]*m", "", line))

    def _is_added_label(self, step: Step) -> bool:
        if self.positions:
            return (step.stage, step.index) not in self.positions
        keys = re.findall(r"\"?(\S+?)\"?=", step.instruction[len("LABEL"):])
        return step.instruction.upper().startswith("LABEL ") and bool(keys) and all(
            k.startswith(LABEL_PREFIX) for k in keys)

    def steps(self) -> list[Step]:
        """The steps seen so far, minus the LABEL step Buildah appended for ``labels=``.

        FROM is never "Using cache" in Buildah's words; like the classic builder's, it counts as cached
        (the base is used as it is: no registry is asked when the image is present).
        """
        if self._steps and self._failure is None:
            self._close_timing()
        steps = [s for s in self._steps if not self._is_added_label(s)]
        for step, printed in zip(self._steps, self._logs):
            step.output = list(printed)
        for step in steps:
            if step.is_from:
                step.cached, step.seconds = True, 0.0
        return steps

    def failure(self) -> Failure | None:
        """Why the build failed, or None."""
        return self._failure


def parse_buildah(stream_events_or_lines: Iterable[dict[str, Any] | str],
                  instructions: list[Instruction] | None = None) -> list[Step]:
    """Steps of a Podman (Buildah) build stream; see :class:`BuildahParser`."""
    parser = BuildahParser(instructions)
    for event in stream_events_or_lines:
        parser.feed(event)
    return parser.steps()
