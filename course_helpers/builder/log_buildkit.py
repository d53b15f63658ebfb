"""BuildKit's logs as steps: ``--progress=plain``, ``--progress=rawjson``, and the tty transcript of an article.

Three inputs, one vertex model:

* ``--progress=plain`` (``#5 [2/4] WORKDIR /usr/src/app``, ``#5 CACHED``, ``#5 DONE 0.1s``);
* ``--progress=rawjson`` (one SolveStatus JSON object per line: vertexes, statuses, logs), turned
  into the lines plain progress prints for it and read as plain;
* the tty transcript an article shows (``=> CACHED [2/4] WORKDIR /usr/src/app  0.0s``), for fixtures only.

BuildKit numbers only FROM and the instructions that touch the filesystem
(RUN, COPY, ADD, WORKDIR): ``[i/n]`` skips CMD, ENV and other metadata, so a
BuildKit step list has no CMD step while a classic one does.  BuildKit also
prints FROM as ``docker.io/library/python:...``; pass the Dockerfile's
instructions (:func:`~course_helpers.builder.log_common.read_instructions`) and every step
carries the line as written, or leave them out and FROM is restored as well as it can be.
"""
from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from typing import Any, Iterable

from ..formatting import format_size, parse_time
from .log_common import PLAIN_LINE, NumberedInstruction, exit_code_in, lines_of, solve_status
from .report import Failure, Step


def _lookup(instructions: list[NumberedInstruction] | None) -> dict[tuple[str, int], NumberedInstruction]:
    return {(i.stage, i.buildkit_index): i for i in instructions or [] if i.buildkit_index is not None}


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
    foreign: bool = False  # its [stage i/n] is another build's name for it (see _VertexSteps.header)

    @property
    def is_from(self) -> bool:
        return self.text.upper().startswith("FROM ")


def _stage_label(token: str | None) -> str | None:
    if token is None:
        return None
    match = re.fullmatch(r"stage-(\d+)", token)  # BuildKit's name for an unnamed stage
    return match.group(1) if match else token


def _base_of(text: str) -> str:
    """The image a FROM names, as written or as BuildKit prints it: ``python:3.11`` either way."""
    return _restore_from(re.sub(r"\s+AS\s+\S+\s*$", "", text.strip(), flags=re.IGNORECASE), "0")


def _restore_from(text: str, stage: str) -> str:
    """``FROM docker.io/library/python:3.11@sha256:...`` -> ``FROM python:3.11`` (+ ``AS name``)."""
    ref = text.split(None, 1)[1] if " " in text else ""
    ref = re.sub(r"@sha256:[0-9a-f]+$", "", ref)
    ref = re.sub(r"^docker\.io/(library/)?", "", ref)
    suffix = "" if stage.isdigit() else f" AS {stage}"
    return f"FROM {ref}{suffix}"


class _VertexSteps:
    """Collects BuildKit vertices and turns them into steps.

    A vertex's name is not always this build's.  BuildKit runs a vertex that builds on one builder
    share (the same base, the same steps on it) once, and prints it in each build's log under the
    name the build that loaded it first gave it: notebook 120's one-stage build once showed its FROM
    as ``[build 1/4] FROM ...``, notebook 100's name for the same base.  So, given the Dockerfile, a
    vertex whose ``[stage i/n]`` is no name this Dockerfile gives a step is read as the step of ours
    it does (:meth:`_placed`), in the step list and in the failure alike.
    """

    def __init__(self, instructions: list[NumberedInstruction] | None):
        self.instructions = instructions
        self.lookup = _lookup(instructions)
        self.stages = {i.stage for i in instructions or []}
        self.totals: dict[str, int] = {}  # stage -> the n of its [i/n]
        for ins in instructions or []:
            if ins.buildkit_index is not None:
                self.totals[ins.stage] = self.totals.get(ins.stage, 0) + 1
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
        vertex.foreign = not self._named_here(vertex)
        self.by_key[key] = vertex
        return vertex

    def _named_here(self, vertex: _Vertex) -> bool:
        """Whether the vertex's ``[stage i/n]`` is a name this Dockerfile gives a step (True without one)."""
        if not self.instructions:
            return True  # nothing to tell another build's names by
        if vertex.stage is None and len(self.stages) > 1:
            return False  # BuildKit names every step of a multi-stage build with its stage
        return self.totals.get(self._stage_of(vertex)) == vertex.total and 1 <= vertex.index <= vertex.total

    def _stage_of(self, vertex: _Vertex) -> str:
        if vertex.stage is not None:
            return vertex.stage
        # BuildKit omits the stage of a single-stage build; the Dockerfile may still name it.
        stages = {i.stage for i in self.instructions or []}
        return stages.pop() if len(stages) == 1 else "0"

    def _stage_rank(self) -> dict[str, int]:
        return {i.stage: i.stage_number for i in self.instructions or []}

    def _step(self, vertex: _Vertex, lookup: dict[tuple[str, int], NumberedInstruction]) -> Step:
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

    def _fits(self, ins: NumberedInstruction, vertex: _Vertex) -> bool:
        if vertex.is_from:
            return ins.keyword == "FROM" and _base_of(ins.text) == _base_of(vertex.text)
        return " ".join(ins.text.split()) == " ".join(vertex.text.split())

    def _placed(self) -> list[_Vertex]:
        """The vertices, each named by another build moved to the step of this Dockerfile it is.

        Such a vertex is the step of ours it does: the one step not seen under its own name whose
        text it has (a FROM: whose base), or, when several have, the one at its index (a shared
        vertex has the same steps before it in both builds).  One that fits none keeps its name,
        as it printed.
        """
        vertices = list(self.by_key.values())
        taken = {(self._stage_of(v), v.index) for v in vertices if not v.foreign}
        for v in vertices:
            if not v.foreign:
                continue
            fits = [i for i in self.instructions or [] if i.buildkit_index is not None
                    and (i.stage, i.buildkit_index) not in taken and self._fits(i, v)]
            if len(fits) > 1:
                fits = [i for i in fits if i.buildkit_index == v.index]
            if len(fits) == 1:
                v.stage, v.index, v.total, v.foreign = fits[0].stage, fits[0].buildkit_index, \
                    self.totals[fits[0].stage], False
                taken.add((v.stage, v.index))
        return vertices

    def _other_stages_from(self, vertex: _Vertex) -> bool:
        """A FROM named by another build that fits no stage of ours (two of our stages on its base, say).

        Our stages' FROMs are added back in :meth:`steps`; keeping it would add a stage this
        Dockerfile does not have.
        """
        stage = self._stage_of(vertex)
        return vertex.foreign and vertex.is_from and (stage, vertex.index) not in self.lookup and stage not in self.stages

    def steps(self) -> list[Step]:
        lookup = self.lookup
        rank = self._stage_rank()
        vertices = [v for v in self._placed() if not self._other_stages_from(v)]
        # Without a Dockerfile, stages go in the order their first non-FROM step started
        # (BuildKit runs a stage's dependencies first); FROM vertices may be shared, see below.
        seen_stage_order: dict[str, int] = {}
        for v in sorted(vertices, key=lambda v: (v.index == 1, v.order)):
            seen_stage_order.setdefault(self._stage_of(v), len(seen_stage_order))
        # A vertex canceled because another step failed neither ran nor came from the cache.
        steps = [self._step(v, lookup) for v in vertices if not v.canceled]
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
        failed = [v for v in self._placed() if v.error is not None]
        if failed:
            vertex = failed[0]
            return Failure(message=vertex.error or "", step=self._step(vertex, self.lookup),
                           total=vertex.total, exit_code=exit_code_in(vertex.error or ""), logs=vertex.logs)
        if self.phase_errors:
            name, error = self.phase_errors[0]
            return Failure(message=error, phase=name)
        if self.top_errors:
            return Failure(message=self.top_errors[-1], exit_code=exit_code_in(self.top_errors[-1]))
        return None


# --- BuildKit plain ---------------------------------------------------------------------------

_TIMESTAMPED = re.compile(r"^\d+\.\d+ (.*)$")  # "#8 0.767 Collecting flask" (a RUN's output)


class PlainParser:
    """Incremental parser of ``--progress=plain`` output; feed lines as they arrive.

    Args:
        instructions: the Dockerfile's instructions, so steps carry the lines as written.
    """

    def __init__(self, instructions: list[NumberedInstruction] | None = None):
        self._v = _VertexSteps(instructions)

    def feed(self, line: str) -> None:
        """Take one line of output (with or without its newline)."""
        line = line.rstrip("\r\n")
        match = PLAIN_LINE.match(line)
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



def parse_buildkit_plain(text_or_lines: str | Iterable[str],
                         instructions: list[NumberedInstruction] | None = None) -> list[Step]:
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
    for line in lines_of(text_or_lines):
        parser.feed(line)
    return parser.steps()


# --- BuildKit rawjson ----------------------------------------------------------------------------

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

    def _loglines_of(self, key: str, text: str, stamp: Any, out: list[str]) -> None:
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
            self._loglines_of(part[0], text, stamp, out)

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
                self._loglines_of(key, "\n".join(lines), stamp, out)
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

    def __init__(self, instructions: list[NumberedInstruction] | None = None):
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
                           instructions: list[NumberedInstruction] | None = None) -> list[Step]:
    """Steps of a BuildKit ``--progress=rawjson`` log (one SolveStatus JSON object per line).

    Args:
        lines: the whole output, or its lines (or decoded dicts).
        instructions: as for :func:`parse_buildkit_plain`.

    Returns:
        The steps, as :func:`parse_buildkit_plain` gives them.
    """
    parser = RawjsonParser(instructions)
    for line in lines_of(lines):
        parser.feed(line)
    return parser.steps()


# --- BuildKit tty transcript (articles) ------------------------------------------------------------

_TTY = re.compile(r"^\s*=> (?P<cached>CACHED )?(?P<name>.*?)(?:\s+(?P<secs>\d+\.\d+)s)?\s*$")


def parse_buildkit_tty(text: str, instructions: list[NumberedInstruction] | None = None) -> list[Step]:
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




_IMPORT = "importing cache manifest from "
_PLAIN_VERTEX = re.compile(r"^#(\d+) (.*)$")
# buildx itself checks a type=local source before the build starts, and warns in plain text.
_LOCAL_MISSING = re.compile(r"^WARNING: local cache import at (\S+) not found due to err: (.*)$")


def cache_import_errors(log: str) -> list[tuple[str, str]]:
    """``(source, error)`` for each ``--cache-from`` source BuildKit could not read.

    BuildKit only warns about these and builds on without the cache, so the build "succeeds"
    and every step simply runs.  Reads rawjson (a vertex named ``importing cache manifest from
    REF`` with an ``error``) and plain output (``#N importing ...`` then ``#N ERROR: ...``).
    """
    found: dict[str, str] = {}
    names: dict[str, str] = {}
    for line in log.splitlines():
        if line.startswith("{"):
            try:
                vertexes = json.loads(line).get("vertexes") or []
            except ValueError:
                continue
            for v in vertexes:
                name = v.get("name") or ""
                if name.startswith(_IMPORT) and v.get("error"):
                    found[name[len(_IMPORT):]] = v["error"]
            continue
        local = _LOCAL_MISSING.match(line)
        if local:
            found[local.group(1)] = local.group(2)
            continue
        m = _PLAIN_VERTEX.match(line)
        if m:
            number, text = m.groups()
            if text.startswith(_IMPORT):
                names[number] = text[len(_IMPORT):].strip()
            elif text.startswith("ERROR: ") and number in names:
                found[names[number]] = text[len("ERROR: "):]
    return list(found.items())


_FROM_PINNED = re.compile(r"FROM ([^\s\"@]+)@(sha256:[0-9a-f]{64})")


def _normalized(name: str) -> str:
    """A reference as BuildKit writes it: Docker Hub's short names in full (``docker.io/library/...``)."""
    first, _, rest = name.partition("/")
    if not rest:
        return f"docker.io/library/{name}"
    if "." in first or ":" in first or first == "localhost":
        return name
    return f"docker.io/{name}"


def resolved_bases(log: str, bases: "Iterable[str]") -> dict[str, str]:
    """The digest BuildKit's FROM step resolved each base to (``[1/4] FROM REF@sha256:...``).

    ``bases`` are the names as FROM wrote them (a pinned one with its digest); BuildKit writes
    Docker Hub's short names in full (``docker.io/library/python:3.11-slim-bookworm``).  A base
    the log does not pin is left out.
    """
    seen = dict(_FROM_PINNED.findall(log))
    out: dict[str, str] = {}
    for base in bases:
        digest = seen.get(_normalized(base.split("@", 1)[0]))
        if digest:
            out[base] = digest
    return out
