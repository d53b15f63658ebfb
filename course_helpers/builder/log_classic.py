"""The classic builder's API stream (``client.api.build(decode=True)``) as steps.

The builder prints ``Step 3/5 : COPY . .`` as each instruction starts (one count over the whole
file, every instruction, FROM included), then `` ---> Using cache`` when it reused a cached
result, and `` ---> <id>`` for the image the step committed.  :func:`classic_step` is the one
reader of the ``Step N/M`` line, for the parser here and for the build's bookkeeping of the
images a failed build leaves.
"""
from __future__ import annotations

import json
import re
from typing import Any, Iterable, NamedTuple

from ..config import LABEL_PREFIX
from .log_common import NumberedInstruction, exit_code_in, strip_colour
from .report import Failure, Step

_CLASSIC_STEP = re.compile(r"^Step (\d+)/(\d+) : (.*)$")


class StepLine(NamedTuple):
    """A classic ``Step N/M : INSTRUCTION`` line: ``number`` of ``total``, and the instruction as printed."""

    number: int
    total: int
    instruction: str

    @property
    def keyword(self) -> str:
        """The instruction's keyword, upper case (``COPY``)."""
        return self.instruction.split(None, 1)[0].upper() if self.instruction else ""


def classic_step(line: str) -> StepLine | None:
    """The ``Step N/M : ...`` line the classic builder prints as a step starts, or None for any other line."""
    match = _CLASSIC_STEP.match(line)
    if not match:
        return None
    return StepLine(int(match.group(1)), int(match.group(2)), match.group(3).strip())


class ClassicParser:
    """Incremental parser of the classic builder's API stream (``client.api.build(decode=True)``).

    Args:
        instructions: the Dockerfile's instructions; steps numbered beyond them are the LABEL
            steps the classic builder appends for ``labels=`` and are dropped.
        clock: a function returning seconds (e.g. ``time.monotonic``) to time live steps;
            None for recorded streams, whose steps then take 0 s.
    """

    def __init__(self, instructions: list[NumberedInstruction] | None = None, clock: Any = None):
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

    def _start(self, number: int, total: int, stage: str, instruction: str) -> None:
        """A step begins: the one before it ends."""
        self._close_timing()
        self._steps.append(Step(index=number, stage=stage, instruction=instruction, cached=False))
        self._totals.append(total)
        self._logs.append([])
        self._started = self.clock() if self.clock is not None else None

    def _fail(self, message: str, exit_code: int | None) -> None:
        self._close_timing()
        self._failure = Failure(message=message, step=self._steps[-1] if self._steps else None,
                                total=self._totals[-1] if self._totals else None,
                                exit_code=exit_code if exit_code is not None else exit_code_in(message),
                                logs=list(self._logs[-1]) if self._logs else [])

    def feed(self, event: dict[str, Any] | str) -> None:
        """Take one decoded stream event, or one JSON line of a recorded stream."""
        event = self._event(event)
        if event is None:
            return
        if "status" in event and self._steps:
            self._pulled.add(len(self._steps) - 1)  # pull progress belongs to the FROM above it
        if "errorDetail" in event or "error" in event:
            detail = event.get("errorDetail") or {}
            self._fail(detail.get("message") or event.get("error") or "build failed", detail.get("code"))
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
        step = classic_step(line)
        if step:
            if step.keyword == "FROM":
                self._stage_number += 1
                named = re.search(r"\s+AS\s+(\S+)\s*$", step.instruction, re.IGNORECASE)
                self._stage = named.group(1).lower() if named else str(self._stage_number)
            self._start(step.number, step.total, self._stage, step.instruction)
            return
        if not self._steps:
            return
        if line.strip() == "---> Using cache":
            self._steps[-1].cached = True
        elif not line.startswith(" --->") and not line.startswith("Removing intermediate"):
            clean = strip_colour(line)  # the builder colours stderr red
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
                  instructions: list[NumberedInstruction] | None = None) -> list[Step]:
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
