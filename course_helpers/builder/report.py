"""Result objects of a build, shared by the builders, the parsers and explain/predict."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import CourseError
from ..formatting import (Html, command_text, format_seconds, format_size, short_id as short_image_id, table_html,
                          table_text)
from .log_common import context_transfer

if TYPE_CHECKING:  # the engine's side is imported when a record is asked for: the parsers need none of it
    from ..engine.build_history import BuildRecord

# The step table's colours for what a step did; the pictures use the same ones.
BADGE_COLOURS = {"CACHED": "#2e7d32", "RAN": "#ef6c00", "BASE": "#757575"}


@dataclass
class Step:
    """One Dockerfile instruction as a build reported it.

    Attributes:
        index: 1-based position among the instructions of its stage, as Docker
            prints ``[2/4]`` (BuildKit) or ``Step 2/5`` (classic, which counts FROM
            and all stages in one sequence).
        stage: the stage name (``AS build``), or its number as a string when unnamed.
        instruction: the Dockerfile line as written, e.g. ``"COPY . ."``.
        cached: True when the builder reused a cached result.
        seconds: time the step took, as the builder reported it (0.0 when cached).
        layer: the diff id (``sha256:...``) of the layer this step produced, or
            None for metadata-only steps and when unknown.
        size: bytes the step added to the image (0 for metadata-only steps).
        output: the lines the step printed while it ran (a RUN's output; empty when cached).
    """

    index: int
    stage: str
    instruction: str
    cached: bool
    seconds: float = 0.0
    layer: str | None = None
    size: int = 0
    output: list[str] = field(default_factory=list, compare=False, repr=False)

    @property
    def is_from(self) -> bool:
        """True for the FROM that starts a stage."""
        return self.instruction.upper().startswith("FROM ")

    @property
    def badge(self) -> str:
        """``BASE`` for FROM, else ``CACHED`` or ``RAN``."""
        if self.is_from:
            return "BASE"
        return "CACHED" if self.cached else "RAN"


@dataclass
class Failure:
    """Why a build stopped, as a builder's log says it.

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


@dataclass
class BuildReport:
    """What one build did.

    Shows itself as a table in a notebook (``_repr_html_``) and as stable plain text
    (``str(report)``, ``report.text()``): ids as ``sha256:`` + 12 hex, seconds as ``1.8s``,
    sizes as ``11.7MB``, so a sanitize file only has to replace those.

    Attributes:
        image_id: ``sha256:...`` of the built image.
        tags: the tags given to it.
        builder: ``"buildkit"`` or ``"classic"``.
        seconds: wall-clock time of the whole build.
        log: the builder's full output.
        steps: one :class:`Step` per step the builder reported, FROM included (BuildKit
            reports only FROM, RUN, COPY, ADD and WORKDIR; classic reports every instruction).
        context: the build context directory (for explain/predict).
        dockerfile: path of the Dockerfile used, relative to the context.
        build_args: the ``--build-arg`` values it had.
        no_cache: whether it ran with ``no_cache=True``.
        target: the stage it built (``--target``), None for the last.
        command: the ``docker build`` that does the same on a terminal, with the client and
            builder the course used (shown under the step table).
        build_ref: the id of the engine's own record of this build (``docker buildx history
            inspect REF``), when the client is buildx; None otherwise.
        sent_bytes: the bytes of context the course sent to the classic builder or Buildah
            (None for BuildKit, which fetches what it needs itself).
        config_digest: the digest of the image's config, where the builder says it (buildx's
            metadata) or the image ID is it (the classic builder); None otherwise.
        notes: sentences about what the builder only warned of, e.g. a ``--cache-from`` source
            it could not read (BuildKit builds on without it).
        base_ids: the image ID each base the Dockerfile names in FROM had on the engine right
            after the build (``{"python:3.11-slim-bookworm": "sha256:..."}``), so that a later
            predict() sees when a base's tag has moved to another image; empty when unknown.
    """

    image_id: str
    tags: list[str]
    builder: str
    seconds: float
    log: str
    steps: list[Step] = field(default_factory=list)
    context: str | None = None
    dockerfile: str = "Dockerfile"
    build_args: dict[str, str] = field(default_factory=dict)
    no_cache: bool = False
    target: str | None = None
    command: str = ""
    build_ref: str | None = None
    sent_bytes: int | None = None
    config_digest: str | None = None
    notes: list[str] = field(default_factory=list)
    base_ids: dict[str, str] = field(default_factory=dict)

    @property
    def short_id(self) -> str:
        """``sha256:`` + 12 hex digits of the image id."""
        return short_image_id(self.image_id)

    @property
    def cached_steps(self) -> list[str]:
        """Instructions the builder took from its cache (FROM left out)."""
        return [s.instruction for s in self.steps if s.cached and not s.is_from]

    @property
    def ran_steps(self) -> list[str]:
        """Instructions the builder ran (FROM left out)."""
        return [s.instruction for s in self.steps if not s.cached and not s.is_from]

    def step(self, text: str) -> Step:
        """The first step whose instruction contains ``text``, e.g. ``report.step("pip3 install")``.

        Raises:
            CourseError: no step's instruction contains it (the message lists the steps).
        """
        for step in self.steps:
            if text in step.instruction:
                return step
        listed = "; ".join(s.instruction for s in self.steps) or "none"
        raise CourseError(f"No step of this build contains {text!r} (its steps: {listed}): check the text.")

    @property
    def context_bytes(self) -> int | None:
        """Bytes of build context the builder received, or None when that is not known.

        BuildKit reports it (``transferring context: ...``) and asks only for what changed since
        its last build from the same folder; the classic builder and Buildah get all of it, every
        build, and the figure is what the course sent them (:attr:`sent_bytes`).
        """
        return context_transfer(self.log) if self.builder == "buildkit" else self.sent_bytes

    def engine_record(self) -> "CachedCounts":
        """This build as the engine recorded it (``docker buildx history``), beside the course's own count.

        Raises:
            CourseError: the build has no record to read: it did not run through buildx, or this
                client has no ``buildx history``.
        """
        from ..engine.build_history import no_history_reason, read_record
        from ..engine.cli import buildkit_client

        if self.builder != "buildkit" or self.build_ref is None:
            cli = buildkit_client()
            reason = no_history_reason(cli) if self.builder == "buildkit" else None
            raise CourseError(reason or f"The engine keeps a build record only of builds run through buildx, and "
                              f"this one ran with builder={self.builder!r} and gave no record id: build with "
                              "builder='buildkit' on a client with buildx.")
        return CachedCounts(self, read_record(self.build_ref))

    @property
    def all_cached(self) -> bool:
        """True when every step but FROM came from the cache."""
        return bool(self.steps) and not self.ran_steps

    def header(self) -> str:
        """``flask-demo:first  sha256:97effe9e43ff  builder=buildkit  1.8s``."""
        tags = ", ".join(self.tags) if self.tags else "(untagged)"
        return f"{tags}  {self.short_id}  builder={self.builder}  {format_seconds(self.seconds)}"

    def text(self) -> str:
        """The report as plain text: the header, then one line per step."""
        lines = [self.header()]
        multi = len({s.stage for s in self.steps}) > 1
        for step in self.steps:
            stage = f"{stage_name(step.stage):<8} " if multi else ""
            lines.append(f"  {step.index:>2} {stage}{step.badge:<6} {format_seconds(step.seconds):>6} "
                         f"{format_size(step.size):>7}  {step.instruction}")
        if self.command:
            lines.append(command_text(self.command))
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.text()

    # The notebook's text/plain form (what nbval compares) is the same stable text.
    __repr__ = __str__

    def _repr_html_(self) -> str:
        multi = len({s.stage for s in self.steps}) > 1
        headers = ["step"] + (["stage"] if multi else []) + ["instruction", "cache", "seconds", "size"]
        rows = [[step.index] + ([stage_name(step.stage)] if multi else []) +
                [step.instruction, _badge(step.badge), format_seconds(step.seconds), format_size(step.size)]
                for step in self.steps]
        return table_html(headers, rows, title=self.header(), code=["instruction"],
                          align={"step": "right", "seconds": "right", "size": "right"}, command=self.command,
                          note=" ".join(self.notes))


def stage_name(stage: str) -> str:
    """A stage as BuildKit's log names it: its ``AS`` name, or ``stage-N`` for an unnamed one (N from 0)."""
    return f"stage-{stage}" if stage.isdigit() else stage


def _badge(text: str) -> Html:
    return Html(f"<span style='background:{BADGE_COLOURS[text]};color:white;padding:1px 6px;"
                f"border-radius:3px;font-size:85%'>{text}</span>")


@dataclass
class CachedCounts:
    """How many steps of one build came from the cache: the course's count beside the engine's.

    The engine's build record counts every step BuildKit solved, which is more than the
    Dockerfile's steps: its ``[internal]`` loads (the Dockerfile, the base image's metadata,
    ``.dockerignore``, the build context), the FROM and the export to the image store.
    """

    report: BuildReport
    record: "BuildRecord"

    def rows(self) -> list[list[str]]:
        steps = [s for s in self.report.steps if not s.is_from]
        return [["the course's step table", str(len(self.report.cached_steps)), str(len(steps)),
                 "the Dockerfile's steps, FROM (BASE) left out"],
                ["the engine's build record", str(self.record.cached_steps), str(self.record.total_steps),
                 "every step BuildKit solved: its [internal] loads, FROM, the Dockerfile's steps, the export"]]

    def title(self) -> str:
        tags = ", ".join(self.report.tags) or self.report.short_id
        return f"cached steps of {tags}, as the course and the engine count them"

    def text(self) -> str:
        table = table_text(["COUNTED BY", "CACHED", "OF", "WHAT IS COUNTED"], self.rows())
        return "\n".join([self.title(), table, command_text(self.record.command)])

    def __str__(self) -> str:
        return self.text()

    __repr__ = __str__

    def _repr_html_(self) -> str:
        return table_html(["counted by", "cached", "of", "what is counted"], self.rows(), title=self.title(),
                          align={"cached": "right", "of": "right"}, command=self.record.command)
