"""Say, for each step a build ran instead of taking from the cache, why.

The builder says only CACHED or not; this module compares the build with an
earlier one (by default the previous recorded build of the same tag or
Dockerfile) using the same per-builder cache model as ``predict()``, and names
the file, instruction, environment value or build argument that changed.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from .dockerfile import parse_dockerfile, parse_dockerfile_text
from .errors import CourseError
from .predict import SimStep, _table_html, norm, reason_for, simulate, step_position
from .snapshot import BuildRecord, find_record, take_snapshot

if TYPE_CHECKING:
    from .report import BuildReport


class ExplainedStep(NamedTuple):
    """A reported step and, when it was not cached, why: ``(index, stage, instruction, cached, reason)``."""

    index: int
    stage: str
    instruction: str
    cached: bool
    reason: str | None


@dataclass
class Explanation:
    """Why each step of a build missed the cache; ``steps`` lines up with ``report.steps``."""

    builder: str
    steps: list[ExplainedStep]
    compared_with: str

    def text(self) -> str:
        """A stable text form (no timings, hashes cut to 12 hex) for notebook regression tests."""
        lines = [f"why steps ran ({self.builder}), compared with {self.compared_with}"]
        where = step_position(self.steps)
        for s in self.steps:
            tail = "cached" if s.reason is None else f"ran: {s.reason}"
            lines.append(f"  {where(s)} {s.instruction}  -- {tail}")
        return "\n".join(lines)

    __str__ = text

    def __repr__(self) -> str:  # what nbval compares: the stable text form
        return self.text()

    def _repr_html_(self) -> str:
        rows = [[s.stage, s.index, s.instruction, "cached" if s.cached else "ran", s.reason or ""]
                for s in self.steps]
        return _table_html(["stage", "step", "instruction", "", "why"], rows,
                           f"Why steps ran ({self.builder}), compared with {self.compared_with}")


def _line_up(report_steps: list, sim: list[SimStep]) -> list[int | None]:
    """For each reported step, the position of the model step with the same stage and instruction."""
    used: set[int] = set()
    out: list[int | None] = []
    for rs in report_steps:
        found = None
        for j, s in enumerate(sim):
            if j not in used and norm(s.instruction) == norm(rs.instruction) and s.stage == rs.stage:
                found = j
                break
        if found is None:  # BuildKit prints RUN lines with build args filled in; fall back to the keyword
            for j, s in enumerate(sim):
                if j not in used and s.stage == rs.stage and rs.instruction.split()[:1] == [s.keyword] \
                        and (not out or out[-1] is None or j > out[-1]):
                    found = j
                    break
        if found is not None:
            used.add(found)
        out.append(found)
    return out


def explain(report: "BuildReport", against: "BuildReport | BuildRecord | None" = None) -> Explanation:
    """Explain why each step of ``report`` that missed the cache ran.

    Args:
        report: a finished build (its ``context`` must be set).
        against: the earlier build to compare with; default: the build recorded
            before ``report`` for the same tag, or else the same Dockerfile.

    Returns:
        An :class:`Explanation` whose ``steps`` line up with ``report.steps``.

    Raises:
        CourseError: the report has no context, or ``against`` was never recorded.
        DockerfileError: the Dockerfile no longer parses.
    """
    if not report.context:
        raise CourseError("explain(): this report has no build context; build with course_helpers.build.build()")
    current, previous = find_record(report)
    if against is not None:
        previous = against if isinstance(against, BuildRecord) else find_record(against)[0]
        if previous is None:
            raise CourseError("explain(): the report given as against= was never recorded; build it with "
                              "course_helpers.build.build() and try again.")
    builder = report.builder
    if current is not None:
        df = parse_dockerfile_text(current.dockerfile_text, current.dockerfile)
        new = simulate(df, current.snapshot(), builder, current.build_args)
    else:  # not recorded: the context as it is now is the best evidence left
        context = os.path.abspath(report.context)
        new = simulate(parse_dockerfile(Path(context) / report.dockerfile), take_snapshot(context), builder,
                       report.build_args)
    old: list[SimStep] = []
    if previous is not None:
        old = simulate(parse_dockerfile_text(previous.dockerfile_text, previous.dockerfile), previous.snapshot(),
                       builder, previous.build_args)
    old_keys = {s.key for s in old}
    multi = len({s.stage for s in new}) > 1
    matches = _line_up(report.steps, new)
    out = []
    for rs, j in zip(report.steps, matches):
        reason: str | None = None
        if not rs.cached:
            if j is None:
                reason = "not an instruction of the Dockerfile (added by the build helper)"
            elif new[j].keyword == "FROM":
                reason = "FROM is not a cache step: the base image is used as it is"
            elif report.no_cache:
                reason = "the build ran with no_cache=True"
            elif previous is None:
                reason = "no earlier build recorded to compare with"
            elif new[j].key in old_keys:
                reason = ("the builder did not reuse its cache although nothing it compares changed "
                          "(the cache was pruned or the earlier image removed)")
            else:
                reason = reason_for(new, j, old, multi)
        out.append(ExplainedStep(rs.index, rs.stage, rs.instruction, rs.cached, reason))
    compared = "the previous recorded build" if against is None else "the given build"
    if previous is None:
        compared = "nothing (no earlier build recorded)"
    return Explanation(builder, out, compared)
