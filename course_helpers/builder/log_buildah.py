"""Podman's builder (Buildah) through the Docker-compatible API, as steps.

Buildah's stream looks like the classic builder's (:mod:`.log_classic`) with its own words:
``[1/2] STEP 3/5: COPY . .``, numbered within each stage, and ``--> Using cache <id>``.
"""
from __future__ import annotations

import re
from typing import Any, Iterable

from ..config import LABEL_PREFIX
from .log_classic import ClassicParser
from .log_common import NumberedInstruction, strip_colour
from .report import Failure, Step

_BUILDAH_STEP = re.compile(r"^(?:\[(\d+)/(\d+)\] )?STEP (\d+)/(\d+): (.*)$")


def buildah_positions(instructions: list[NumberedInstruction]) -> dict[tuple[str, int], NumberedInstruction]:
    """Instructions by (stage, Buildah's step number): Buildah counts every instruction of a stage, FROM = 1."""
    out: dict[tuple[str, int], NumberedInstruction] = {}
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

    def __init__(self, instructions: list[NumberedInstruction] | None = None, clock: Any = None):
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
            code = re.search(r"exit status (\d+)", message)
            self._fail(message, int(code.group(1)) if code else None)
            return
        for line in str(event.get("stream", "")).splitlines():
            self._line(line)

    def _line(self, line: str) -> None:
        match = _BUILDAH_STEP.match(line)
        if match:
            number, total, text = int(match.group(3)), int(match.group(4)), match.group(5).strip()
            if number == 1:
                self._stage_number = int(match.group(1)) - 1 if match.group(1) else self._stage_number + 1
                named = re.search(r"\s+AS\s+(\S+)\s*$", text, re.IGNORECASE)
                self._stage = self.labels.get(self._stage_number) or (
                    named.group(1).lower() if named else str(self._stage_number))
            known = self.positions.get((self._stage, number))
            self._start(number, total, self._stage, known.text if known else text)
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
            self._logs[-1].append(strip_colour(line))

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
                  instructions: list[NumberedInstruction] | None = None) -> list[Step]:
    """Steps of a Podman (Buildah) build stream; see :class:`BuildahParser`."""
    parser = BuildahParser(instructions)
    for event in stream_events_or_lines:
        parser.feed(event)
    return parser.steps()
