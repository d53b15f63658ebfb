"""Say, for each step a build ran instead of taking from the cache, why.

The builder says only CACHED or not; this module compares the build with an
earlier one (by default the previous recorded build of the same tag or
Dockerfile) using the same per-builder cache model as ``predict()``, and names
the file, instruction, environment value or build argument that changed, or the
base image whose tag names another image than the earlier build used.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from ..builder.records import BuildRecord, find_record
from ..dockerfile.context import take_snapshot
from ..dockerfile.parse import parse_dockerfile
from ..engine.session import course_call
from ..errors import CourseError
from ..formatting import table_html
from .predict import SimStep, compared_bases, judge, model_steps, simulate, step_position

if TYPE_CHECKING:
    from ..builder.report import BuildReport


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
            tail = ("cached" if s.cached else "ran") if s.reason is None else (
                s.reason if s.cached or s.reason.startswith("ran:") else f"ran: {s.reason}")
            lines.append(f"  {where(s)} {s.instruction}  -- {tail}")
        return "\n".join(lines)

    __str__ = text

    def __repr__(self) -> str:  # what nbval compares: the stable text form
        return self.text()

    def _repr_html_(self) -> str:
        rows = [[s.stage, s.index, s.instruction, "cached" if s.cached else "ran", s.reason or ""]
                for s in self.steps]
        return table_html(["stage", "step", "instruction", "", "why"], rows,
                          title=f"Why steps ran ({self.builder}), compared with {self.compared_with}",
                          drop_single_stage=True)


def _model(report: "BuildReport", record: BuildRecord | None, builder: str,
           same_sources: bool = False, base_ids: dict[str, str] | None = None) -> list[SimStep]:
    if record is not None:
        return model_steps(record, builder, same_sources, base_ids)
    # Not recorded: the context as it is now is the best evidence left.
    context = os.path.abspath(report.context or ".")
    df = parse_dockerfile(Path(context) / report.dockerfile, report.build_args)
    return simulate(df, take_snapshot(context), builder, same_sources, report.target, base_ids)


@course_call("explaining a build")
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
        raise CourseError("explain(): this report has no build context; build with course_helpers.build()")
    current, previous = find_record(report)
    if against is not None:
        previous = against if isinstance(against, BuildRecord) else find_record(against)[0]
        if previous is None:
            raise CourseError("explain(): the report given as against= was never recorded; build it with "
                              "course_helpers.build() and try again.")
    builder = report.builder
    # The image each base named at each build, as the records kept it: a tag that moved between
    # them makes every step run (predict.compared_bases).
    ids, old_ids = compared_bases(current.bases if current is not None else report.base_ids,
                                  [previous] if previous is not None else [])
    new, found = judge(lambda same: _model(report, current, builder, same, ids),
                       lambda same: model_steps(previous, builder, same, old_ids(previous))
                       if previous is not None else [],
                       False, previous is not None)
    at = {(s.stage, s.index): j for j, s in enumerate(new)}
    out = []
    for rs in report.steps:
        j = at.get((rs.stage, rs.index))
        reason: str | None = None
        if j is not None and found[j][0] is None:
            # The model could only say "depends" before the build: the build decided it.
            copied = "the same bytes" if rs.cached else "different bytes"
            reason = f"{'cached' if rs.cached else 'ran'}: the re-run stage wrote {copied} ({found[j][1]})"
        elif not rs.cached:
            if j is None:
                reason = "not an instruction of the Dockerfile (added by the build helper)"
            elif new[j].keyword == "FROM":
                moved = None if found[j][0] else found[j][1]  # its tag named another image last time
                reason = moved or "FROM is not a cache step: the base image is used as it is"
            elif report.no_cache:
                reason = "the build ran with no_cache=True"
            elif previous is None:
                reason = "no earlier build recorded to compare with"
            elif found[j][0]:
                reason = ("the builder did not reuse its cache although nothing it compares changed "
                          "(the cache was pruned or the earlier image removed)")
            else:
                reason = found[j][1]
        out.append(ExplainedStep(rs.index, rs.stage, rs.instruction, rs.cached, reason))
    compared = "the previous recorded build" if against is None else "the given build"
    if previous is None:
        compared = "nothing (no earlier build recorded)"
    return Explanation(builder, out, compared)
