"""Predict, without building, which steps of a build will come from the cache, and why.

The model follows the builder it is asked about; the rules and the experiments
that established them are in docs/cache-rules.md.  In short, each step gets a
cache key made of what that builder really compares:

- classic: the parent image (so every instruction, ENV and LABEL included,
  chains into the next), the instruction's parsed words (whitespace between
  words does not count, but RUN's command text does), for RUN the values of the
  build arguments declared so far, for COPY/ADD the selected files' content and
  mode (never mtime);
- BuildKit: only filesystem steps (FROM, RUN, COPY, ADD, WORKDIR) are steps;
  ENV, ARG, LABEL, CMD ... change no filesystem, so a COPY after a changed ENV
  or LABEL is still cached; a RUN's key holds its environment (ENV and the
  build arguments in scope); stages the target does not need are not built.

A step is predicted cached when its key is among the keys the earlier
build(s) produced.  Known limit: ``COPY --from`` of a rebuilt stage is cached
by both builders when the copied files come out byte-identical, which only a
build can tell; the prediction says "rebuilt" and explains that.
"""
from __future__ import annotations

import hashlib
import html
import os
import posixpath
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, NamedTuple

from .dockerfile import Dockerfile, Instruction, expand, parse_dockerfile, parse_dockerfile_text, parse_kv
from .errors import CourseError, DockerfileError
from .snapshot import BuildRecord, ContextSnapshot, build_records, find_record, take_snapshot

if TYPE_CHECKING:
    from .report import BuildReport

BUILDERS = ("buildkit", "classic")
FS_STEPS = {"FROM", "RUN", "COPY", "ADD", "WORKDIR"}  # what BuildKit shows as steps


def short(digest: str) -> str:
    """A digest cut to 12 hex characters, as the course prints them."""
    return digest.split(":")[-1][:12]


def norm(text: str) -> str:
    """An instruction with runs of whitespace folded, for matching report lines with Dockerfile lines."""
    return " ".join(text.split())


def _h(*parts: Any) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()


# --- the model ---------------------------------------------------------------------------------

@dataclass
class SimStep:
    """One step as the model sees it: its key and the inputs the key is made of."""

    index: int
    stage: str
    instruction: str
    keyword: str
    line: int
    key: str
    parent: int | None  # position in the step list of the step whose result this one builds on
    inputs: dict[str, Any] = field(default_factory=dict)
    source_stage: str | None = None  # COPY --from=<stage>
    source_step: int | None = None
    shared: bool = False  # BuildKit: the same vertex as an earlier stage's step, so reported once


def _glob_to_re(pattern: str) -> re.Pattern:
    # Go's filepath.Match: '*' and '?' never cross '/'.
    out = ""
    for ch in pattern:
        out += "[^/]*" if ch == "*" else "[^/]" if ch == "?" else re.escape(ch)
    return re.compile(out + "$")


def select_files(snapshot: ContextSnapshot, source: str, inst: Instruction, path: str) -> dict[str, tuple]:
    """The context entries a COPY/ADD source selects: ``{relpath: (digest, mode)}``.

    Raises:
        DockerfileError: the source selects nothing (names the Dockerfile line).
    """
    src = posixpath.normpath("/" + source).lstrip("/")
    files = snapshot.files
    if src in ("", "."):
        return {k: (v.digest, v.mode) for k, v in files.items()}
    if any(c in src for c in "*?["):
        rx = _glob_to_re(src)
        roots = [k for k in files if rx.match(k)]
    else:
        roots = [src] if src in files else []
    if not roots:
        raise DockerfileError(
            f"{path}, line {inst.line}: {inst.keyword} source {source!r} is not in the build context "
            f"{snapshot.root} (missing, or left out by .dockerignore): `{inst.text}`")
    out: dict[str, tuple] = {}
    for root in roots:
        prefix = root + "/"
        for k, v in files.items():
            if k == root or k.startswith(prefix):
                out[k] = (v.digest, v.mode)
    return out


def simulate(df: Dockerfile, snapshot: ContextSnapshot | None, builder: str,
             build_args: dict[str, str] | None = None) -> list[SimStep]:
    """Compute each reported step's cache key for one builder.

    Args:
        df: the parsed Dockerfile.
        snapshot: the context (None: COPY/ADD sources are not checked).
        builder: ``"buildkit"`` or ``"classic"``.
        build_args: ``--build-arg`` values.

    Returns:
        The steps in the order the builder reports them (per stage, in Dockerfile order).
    """
    build_args = dict(build_args or {})
    steps: list[SimStep] = []
    global_env: dict[str, str] = {}
    for inst in df.global_args:
        for k, v in parse_kv(inst, global_env).items():
            value = build_args.get(k, v)
            if value is not None:
                global_env[k] = value
    stage_end: dict[int, dict[str, Any]] = {}  # stage index -> final state
    needed = _needed_stages(df) if builder == "buildkit" else set(range(len(df.stages)))
    counter = 0
    for stage in df.stages:
        base = expand(stage.base, global_env)
        ref = df.stage_by_ref(base)
        if ref is not None and ref.index < stage.index and ref.index in stage_end:
            st = dict(stage_end[ref.index])
            st["env"] = dict(st["env"])
        else:
            st = {"key": _h("from", base), "env": {}, "args": {}, "workdir": "/", "user": "",
                  "shell": ["/bin/sh", "-c"], "pos": None}
        st["args"] = {}  # ARGs must be declared again in each stage
        local = 0
        for inst in stage.instructions:
            kw = inst.keyword
            scope = {**st["args"], **st["env"]}
            reported = builder == "classic" or kw in FS_STEPS
            counter += 1 if reported else 0
            local += 1 if reported else 0
            index = counter if builder == "classic" else local
            parent_key, parent_pos = st["key"], st["pos"]
            inputs: dict[str, Any] = {"instruction": norm(inst.text)}
            source_stage = source_step = None
            if kw == "FROM":
                key = st["key"]
                inputs = {"base": base}
                parent_pos = None
            elif kw == "RUN":
                command = inst.json_form if inst.json_form is not None else inst.args
                args = {k: v for k, v in st["args"].items() if k not in st["env"]}
                inputs.update(command=command, args=args, workdir=st["workdir"], user=st["user"])
                if builder == "buildkit":
                    inputs.update(env=dict(st["env"]), shell=st["shell"], flags=inst.flags)
                key = _h(parent_key, "RUN", sorted((k, repr(v)) for k, v in inputs.items() if k != "instruction"))
            elif kw in ("COPY", "ADD"):
                words = [expand(w, scope) for w in inst.words()]
                sources, dest = words[:-1], words[-1]
                dest = posixpath.join(st["workdir"], dest) if not dest.startswith("/") else dest
                inputs.update(sources=sources, dest=dest, chown=inst.flags.get("chown"),
                              chmod=inst.flags.get("chmod"))
                if "from" in inst.flags:
                    ref_name = expand(inst.flags["from"], scope)
                    src_stage = df.stage_by_ref(ref_name)
                    if src_stage is not None and src_stage.index in stage_end:
                        end = stage_end[src_stage.index]
                        source_stage, source_step = src_stage.label, end["pos"]
                        inputs["from"] = end["key"]
                    else:
                        inputs["from"] = _h("image", ref_name)
                elif snapshot is not None:
                    files: dict[str, tuple] = {}
                    for s in sources:
                        if kw == "ADD" and re.match(r"^[a-z]+://", s):
                            files[s] = ("url", 0)  # a URL is fetched and checked at build time
                        else:
                            files.update(select_files(snapshot, s, inst, df.path))
                    inputs["files"] = files
                key = _h(parent_key, kw, sorted((k, repr(v)) for k, v in inputs.items() if k != "instruction"))
            elif kw == "WORKDIR":
                path = expand(inst.args, scope)
                st["workdir"] = posixpath.normpath(posixpath.join(st["workdir"], path))
                inputs["workdir"] = st["workdir"]
                key = _h(parent_key, "WORKDIR", st["workdir"])
            else:
                if kw == "ENV":
                    st["env"].update(parse_kv(inst, scope))
                elif kw == "ARG":
                    for k, v in parse_kv(inst, scope).items():
                        value = build_args.get(k, v if v is not None else global_env.get(k))
                        if value is not None:
                            st["args"][k] = value
                elif kw == "USER":
                    st["user"] = expand(inst.args, scope)
                elif kw == "SHELL":
                    st["shell"] = inst.json_form
                # Classic commits an image for every instruction; the words count, not the spacing.
                key = _h(parent_key, kw, inst.words()) if builder == "classic" else parent_key
            if reported:
                steps.append(SimStep(index, stage.label, inst.text, kw, inst.line, key, parent_pos, inputs,
                                     source_stage, source_step))
                if builder == "classic" or kw in FS_STEPS:
                    st["key"], st["pos"] = key, len(steps) - 1
        stage_end[stage.index] = st
    if builder == "buildkit":
        # Identical steps on an identical parent are one LLB vertex: BuildKit runs and prints it once.
        seen: set[str] = set()
        for s in steps:
            if s.keyword != "FROM":
                s.shared = s.key in seen
                seen.add(s.key)
        kept = [s for s in steps if _stage_index(df, s.stage) in needed]
        if len(kept) != len(steps):  # positions must stay valid for parent links: re-simulate is costly, remap
            remap = {id(s): i for i, s in enumerate(kept)}
            old = steps
            for s in kept:
                s.parent = remap.get(id(old[s.parent])) if s.parent is not None else None
                s.source_step = remap.get(id(old[s.source_step])) if s.source_step is not None else None
            steps = kept
    return steps


def _stage_index(df: Dockerfile, label: str) -> int:
    for stage in df.stages:
        if stage.label == label:
            return stage.index
    return -1


def _needed_stages(df: Dockerfile) -> set[int]:
    """Stages the last stage depends on (BuildKit builds only those)."""
    needed: set[int] = set()
    todo = [len(df.stages) - 1]
    while todo:
        i = todo.pop()
        if i in needed:
            continue
        needed.add(i)
        stage = df.stages[i]
        refs = [stage.base] + [inst.flags["from"] for inst in stage.instructions if "from" in inst.flags]
        for ref in refs:
            found = df.stage_by_ref(ref)
            if found is not None and found.index < i:
                todo.append(found.index)
    return needed


# --- reasons -----------------------------------------------------------------------------------

def _diff_files(old: dict[str, tuple], new: dict[str, tuple]) -> list[str]:
    out = []
    for name in sorted(set(old) | set(new)):
        a, b = old.get(name), new.get(name)
        if a == b:
            continue
        if a is None:
            out.append(f"{name} added ({short(b[0]) if b[0] != 'dir' else 'directory'})")
        elif b is None:
            out.append(f"{name} removed")
        elif a[0] != b[0]:
            out.append(f"{name} content changed ({short(a[0])} -> {short(b[0])})")
        else:
            out.append(f"{name} mode changed ({a[1]:o} -> {b[1]:o})")
    return out


def _diff_values(kind: str, old: dict, new: dict) -> list[str]:
    out = []
    for k in sorted(set(old) | set(new)):
        if old.get(k) != new.get(k):
            out.append(f"{kind} {k} changed ({old.get(k, '(unset)')!r} -> {new.get(k, '(unset)')!r})")
    return out


def _step_name(step: SimStep, multi: bool) -> str:
    where = f" of stage {step.stage}" if multi else ""
    return f"step {step.index}{where} (`{step.instruction}`)"


def reason_for(new: list[SimStep], i: int, old: list[SimStep], multi: bool) -> str:
    """Why step ``i`` of ``new`` has no match among ``old``'s keys, in plain words."""
    step = new[i]
    old_keys = {s.key for s in old}
    if step.keyword == "FROM":
        return f"the base image changed: now {step.inputs['base']}"
    if step.parent is not None and new[step.parent].key not in old_keys:
        return f"parent changed at {_step_name(new[step.parent], multi)}"
    if step.source_step is not None and step.inputs.get("from") not in {
            s.key for s in old if s.stage == step.source_stage} | old_keys:
        return (f"stage {step.source_stage} is rebuilt ({_step_name(new[step.source_step], multi)}); "
                "the copy is reused only if the copied files come out byte-identical")
    parent_key = new[step.parent].key if step.parent is not None else None
    siblings = [s for s in old if (old[s.parent].key if s.parent is not None else None) == parent_key
                and s.keyword != "FROM"]
    same_kind = [s for s in siblings if s.keyword == step.keyword]
    if not siblings:
        return "no earlier build ran a step on this parent"
    before = next((s for s in same_kind if s.inputs.get("instruction") == step.inputs.get("instruction")),
                  same_kind[0] if same_kind else siblings[0])
    notes: list[str] = []
    if before.inputs.get("instruction") != step.inputs.get("instruction"):
        notes.append(f"the instruction changed: `{before.instruction}` -> `{step.instruction}`")
    if "files" in step.inputs and "files" in before.inputs:
        notes += _diff_files(before.inputs["files"], step.inputs["files"])
    if "env" in step.inputs and "env" in before.inputs:
        notes += _diff_values("environment value", before.inputs["env"], step.inputs["env"])
    if "args" in step.inputs and "args" in before.inputs:
        notes += _diff_values("build argument", before.inputs["args"], step.inputs["args"])
    for k in ("workdir", "user", "dest", "chown", "chmod"):
        if k in step.inputs and before.inputs.get(k) != step.inputs.get(k) and not notes:
            notes.append(f"{k} changed ({before.inputs.get(k)!r} -> {step.inputs.get(k)!r})")
    return "; ".join(notes) if notes else "an input changed that this model does not track"


# --- predict -----------------------------------------------------------------------------------

class PredictedStep(NamedTuple):
    """One predicted step: ``(index, stage, instruction, cached, reason)``."""

    index: int
    stage: str
    instruction: str
    cached: bool
    reason: str


def step_position(steps) -> Callable[[Any], str]:
    """How text forms label a step: ``[3]``, or ``[stage 3]`` when the build has several stages."""
    multi = len({s.stage for s in steps}) > 1
    return lambda s: f"[{s.stage} {s.index}]" if multi else f"[{s.index}]"


def _table_html(headers: list[str], rows: list[list[str]], title: str) -> str:
    if headers and headers[0] == "stage" and len({str(r[0]) for r in rows}) <= 1:
        # One stage: the column would only repeat its number.
        headers, rows = headers[1:], [r[1:] for r in rows]
    head = "".join(f"<th style='text-align:left'>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td style='text-align:left'>{html.escape(str(c))}</td>" for c in row)
                   + "</tr>" for row in rows)
    return f"<p><b>{html.escape(title)}</b></p><table><tr>{head}</tr>{body}</table>"


@dataclass
class Prediction:
    """What a build will do, step by step, according to the cache rules of one builder.

    Attributes:
        builder: ``"buildkit"`` or ``"classic"``.
        steps: :class:`PredictedStep` tuples in the order the build reports them.
        compared_with: a short description of the earlier build used.
    """

    builder: str
    steps: list[PredictedStep]
    compared_with: str

    def text(self) -> str:
        """A stable text form (no timings, no ids) for notebook regression tests."""
        lines = [f"prediction for the {self.builder} builder, compared with {self.compared_with}"]
        where = step_position(self.steps)
        for s in self.steps:
            mark = "CACHED" if s.cached else "RUNS  "
            lines.append(f"  {mark} {where(s)} {s.instruction}  -- {s.reason}")
        return "\n".join(lines)

    __str__ = text

    def __repr__(self) -> str:  # what nbval compares: the stable text form
        return self.text()

    def _repr_html_(self) -> str:
        rows = [[s.stage, s.index, s.instruction, "cached" if s.cached else "runs", s.reason] for s in self.steps]
        return _table_html(["stage", "step", "instruction", "prediction", "why"], rows,
                           f"Prediction ({self.builder}), compared with {self.compared_with}")


def _record_for(against: Any, context: str, dockerfile: str, builder: str,
                tag: str | None) -> tuple[list[BuildRecord], str]:
    if against is None:
        records = [r for r in build_records(context, dockerfile, tag) if r.builder == builder]
        return records, ("the last recorded build" if records else "nothing (no earlier build recorded)")
    if isinstance(against, BuildRecord):
        return [against], "the given build"
    record, _ = find_record(against)
    if record is None:
        raise CourseError("predict(): the report given as against= has no recorded context snapshot; "
                          "build with course_helpers.build.build() (which records one) and try again.")
    return [record], "the given build"


def predict(context: str | Path, dockerfile: str = "Dockerfile", against: "BuildReport | BuildRecord | None" = None,
            builder: str = "buildkit", build_args: dict[str, str] | None = None, no_cache: bool = False,
            tag: str | None = None) -> Prediction:
    """Say, without building, which steps the next build will take from the cache, and why.

    Needs no engine: it compares the context and Dockerfile on disk with what
    an earlier build recorded (see :func:`course_helpers.snapshot.record_context_snapshot`).

    Args:
        context: the build context directory.
        dockerfile: the Dockerfile's path, relative to the context.
        against: the earlier build (a ``BuildReport``); default: the builds recorded
            for this context and Dockerfile (and ``tag``) with the same builder.
        builder: ``"buildkit"`` or ``"classic"``: whose rules to follow.
        build_args: the ``--build-arg`` values the build will get.
        no_cache: the build will run with ``no_cache=True`` (nothing is reused).
        tag: narrow the default comparison to builds of this tag.

    Returns:
        A :class:`Prediction`.

    Raises:
        DockerfileError: the Dockerfile does not parse, or a COPY source is missing.
        CourseError: unknown builder, or ``against`` was never recorded.

    Example:
        >>> predict("sample_app", against=report, builder="classic")  # doctest: +SKIP
    """
    if builder not in BUILDERS:
        raise CourseError(f"predict(): builder must be one of {', '.join(BUILDERS)}, not {builder!r}")
    context = os.path.abspath(context)
    df = parse_dockerfile(Path(context) / dockerfile)
    new = simulate(df, take_snapshot(context), builder, build_args)
    records, compared = _record_for(against, context, dockerfile, builder, tag)
    olds = []
    for rec in records:
        try:
            olds += simulate(parse_dockerfile_text(rec.dockerfile_text, rec.dockerfile), rec.snapshot(),
                             builder, rec.build_args)
        except DockerfileError:
            continue  # an earlier Dockerfile that no longer parses left nothing reusable to model
    old_keys = {s.key for s in olds}
    multi = len({s.stage for s in new}) > 1
    out = []
    for i, s in enumerate(new):
        if s.shared:
            continue
        if s.keyword == "FROM":
            out.append(PredictedStep(s.index, s.stage, s.instruction, True, "the base image is used as it is"))
        elif no_cache:
            out.append(PredictedStep(s.index, s.stage, s.instruction, False, "no_cache=True: every step runs"))
        elif not olds:
            out.append(PredictedStep(s.index, s.stage, s.instruction, False, "no earlier build to reuse"))
        elif s.key in old_keys:
            out.append(PredictedStep(s.index, s.stage, s.instruction, True, "unchanged since the earlier build"))
        else:
            out.append(PredictedStep(s.index, s.stage, s.instruction, False, reason_for(new, i, olds, multi)))
    return Prediction(builder, out, compared)


# --- predict-then-verify ------------------------------------------------------------------------

@dataclass
class PredictionCheck:
    """The learner's expectations next to what the build did.

    Attributes:
        rows: ``(instruction, expected_cached, actual_cached, agree)`` per step (FROM left out).
    """

    rows: list[tuple[str, bool, bool, bool]]

    @property
    def agreed(self) -> int:
        return sum(r[3] for r in self.rows)

    def text(self) -> str:
        lines = [f"{self.agreed} of {len(self.rows)} steps as you expected"]
        for inst, exp, act, ok in self.rows:
            lines.append(f"  {'agree   ' if ok else 'DISAGREE'} expected {'cached' if exp else 'runs  '}, "
                         f"was {'cached' if act else 'run   '}: {inst}")
        return "\n".join(lines)

    __str__ = text

    def __repr__(self) -> str:  # what nbval compares: the stable text form
        return self.text()

    def _repr_html_(self) -> str:
        rows = [[inst, "cached" if e else "runs", "cached" if a else "ran", "agree" if ok else "DISAGREE"]
                for inst, e, a, ok in self.rows]
        return _table_html(["instruction", "you expected", "the build", ""], rows,
                           f"{self.agreed} of {len(self.rows)} steps as you expected")


def check_prediction(expected_cached: list[str], report: "BuildReport") -> PredictionCheck:
    """Compare the instructions a learner expects cached with what a real build reported.

    Args:
        expected_cached: instructions as written (whitespace is not significant),
            e.g. ``["COPY requirements.txt .", "RUN pip3 install -r requirements.txt"]``.
        report: the build to check against.

    Returns:
        A :class:`PredictionCheck` (shows as a table in a notebook).

    Raises:
        CourseError: an expected instruction is not a step of the build.
    """
    wanted = {norm(x) for x in expected_cached}
    known = {norm(s.instruction) for s in report.steps}
    unknown = sorted(wanted - known)
    if unknown:
        raise CourseError(f"check_prediction(): {unknown[0]!r} is not a step of this build; copy the "
                          "instruction as the Dockerfile writes it")
    rows = [(s.instruction, norm(s.instruction) in wanted, s.cached, (norm(s.instruction) in wanted) == s.cached)
            for s in report.steps if not s.instruction.upper().startswith("FROM")]
    return PredictionCheck(rows)
