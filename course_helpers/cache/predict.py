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
  build arguments in scope); identical steps on an identical parent are one
  step, run once for every stage that has them.  A ``COPY --link`` (Docker 23+;
  20.10 rejects it) makes its layer without its parent: when only the parent
  changed, the copy comes from the cache and only its linking onto the new
  parent runs, which BuildKit prints as the step running.  The classic builder
  of Docker 28 accepts ``--link`` and ignores it: no change of key.  A RUN's
  here-document (``RUN <<EOF``, Docker 23+) is part of its BuildKit key; the
  classic builder of Docker 28 keys and runs only the line ``RUN <<EOF``.
- Buildah (Podman's builder): keys as classic's (every instruction a step
  chained to the one before, build arguments in a RUN's key, COPY/ADD by
  content and mode), except that every instruction but COPY/ADD is compared
  as written (an extra space or a lower-case keyword is a miss); it builds
  only the stages the target needs, as BuildKit does, and a step identical to
  one earlier in the same build (same parent, same instruction) is taken from
  it: printed again, as cached.

Which stages run: BuildKit and Buildah build only those the target (``--target``,
default the last stage) needs; the classic builder builds every stage up to the target.

The base image is used as it is: FROM is no cache step.  But a stage's keys start from the
image its base names, so when that tag now names another image than the earlier build used
(upstream released ``python:3.11-slim-bookworm`` anew), every step after it runs again: the
build records the image ID of each base (``BuildRecord.bases``), and predict() asks the engine
which image each base names now (explain() reads both from the records).

A step is predicted cached when its key is among the keys the earlier
build(s) produced.  A ``COPY --from`` of a stage that re-runs is cached by both
builders exactly when the copied files come out byte-identical, which only the
build can tell: such a step, and those after it, are predicted "depends", and
explain() says afterwards which way it went.
"""
from __future__ import annotations

import hashlib
import html
import os
import posixpath
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, NamedTuple

from ..builder.records import BuildRecord, base_image_ids, build_records, find_record
from ..dockerfile.context import ContextSnapshot, take_snapshot
from ..dockerfile.ignore import glob_regex
from ..dockerfile.parse import Dockerfile, Instruction, copy_source_stage, parse_dockerfile, parse_dockerfile_text
from ..engine.client import try_client
from ..engine.session import course_call
from ..errors import CourseError, DockerfileError
from ..formatting import short_hex as short, short_id, table_html

if TYPE_CHECKING:
    from ..builder.report import BuildReport

BUILDERS = ("buildkit", "classic", "buildah")


def norm(text: str) -> str:
    """An instruction with runs of whitespace folded, for matching report lines with Dockerfile lines."""
    return " ".join(text.split())


def _h(*parts: Any) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def _input_keys(inputs: dict[str, Any]) -> list[tuple[str, str]]:
    # Each input hashed on its own: a COPY's file list (10,000 entries, say) is turned into text once.
    return sorted((k, _h(v)) for k, v in inputs.items() if k != "instruction")


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
    shared_with: int | None = None  # BuildKit: position of an earlier stage's identical step (one vertex)
    reuses: int | None = None  # Buildah: position of an identical step earlier in the same build
    layer_key: str | None = None  # BuildKit, COPY --link: the copied layer's key, which no parent enters


def select_files(snapshot: ContextSnapshot, source: str, inst: Instruction, path: str) -> dict[str, tuple]:
    """The context entries a COPY/ADD source selects: ``{relpath: FileEntry(digest, mode)}``.

    Raises:
        DockerfileError: the source selects nothing (names the Dockerfile line).
    """
    src = posixpath.normpath("/" + source).lstrip("/")
    files = snapshot.files
    if src in ("", "."):
        return dict(files)
    if any(c in src for c in "*?["):
        rx = glob_regex(src, globstar=False)  # Go's filepath.Match: '**' is '*'
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
                out[k] = v
    return out


def built_stages(df: Dockerfile, builder: str, target: str | None = None) -> list[int]:
    """The stages a build of ``target`` (default: the last stage) runs, in file order.

    BuildKit and Buildah run only the stages the target needs (its base and what it copies from,
    and theirs); the classic builder runs every stage from the first up to the target, needed or not.

    Args:
        df: the parsed Dockerfile.
        builder: ``"buildkit"``, ``"classic"`` or ``"buildah"``.
        target: the stage named by ``--target``; None for the last stage.

    Returns:
        Stage indexes, in file order.

    Raises:
        DockerfileError: there is no stage of that name.
    """
    needed = df.needed_stages(target)
    return list(range(needed[-1] + 1)) if builder == "classic" else needed


def simulate(df: Dockerfile, snapshot: ContextSnapshot | None, builder: str,
             same_sources: bool = False, target: str | None = None,
             base_ids: Mapping[str, str] | None = None) -> list[SimStep]:
    """Compute each reported step's cache key for one builder, from the parsed model alone.

    Args:
        df: the parsed Dockerfile (parsed with the build's ``--build-arg`` values).
        snapshot: the context (None: COPY/ADD sources are not checked).
        builder: ``"buildkit"``, ``"classic"`` or ``"buildah"`` (classic's keys, Buildah's numbering).
        same_sources: key ``COPY --from=<stage>`` as if the stage wrote the same bytes as before
            (BuildKit and classic both key such a copy by the copied content, not by the stage).
        target: the stage to build (``--target``), default the last.
        base_ids: the image ID each base image (as FROM names it) stands for, where known: a
            stage's FROM key holds it, so that a base whose tag moved to another image changes
            every key after it.  A base left out is keyed by its name alone.

    Returns:
        The steps of the stages the build runs (:func:`built_stages`), in the order the builder
        reports them (per stage, in Dockerfile order).

    Raises:
        DockerfileError: ``target`` names no stage, or a COPY source is missing.
    """
    steps: list[SimStep] = []
    stage_end: dict[int, tuple[str, int | None]] = {}  # stage index -> (key, position) of its last step
    built = set(built_stages(df, builder, target))
    base_ids = base_ids or {}
    for stage in df.stages:
        if stage.index not in built:
            continue  # a stage the build skips is never keyed: nothing the build runs refers to it
        if stage.base_stage is not None:
            key, pos = stage_end[stage.base_stage]
        else:
            base_id = base_ids.get(stage.base)
            key, pos = _h("from", stage.base, *([base_id] if base_id else [])), None
        for position, inst in enumerate(stage.instructions, 1):
            kw, st = inst.keyword, inst.state
            layer_key = None
            if builder == "buildkit" and inst.step is None:
                continue  # metadata: in BuildKit's LLB it changes the config only, not a key
            # classic counts all instructions of the file; Buildah those of the stage; BuildKit its steps.
            index = {"classic": inst.number, "buildah": position}.get(builder, inst.step)
            parent_key, parent_pos = key, pos
            inputs: dict[str, Any] = {"instruction": norm(inst.original)}
            if builder == "buildah" and kw not in ("FROM", "COPY", "ADD"):
                inputs["text"] = inst.original  # Buildah keys these by the line as written (spaces, case)
            source_stage = source_step = None
            if kw == "FROM":
                inputs = {"base": stage.base}
                if stage.base_stage is None and base_ids.get(stage.base):
                    inputs["base_id"] = base_ids[stage.base]
                parent_pos = None
            elif kw == "RUN":
                args = {k: v for k, v in st.args.items() if k not in st.env}
                inputs.update(command=inst.command, args=args, workdir=st.workdir, user=st.user)
                if builder == "buildkit":
                    inputs.update(env=dict(st.env), shell=st.shell, flags=dict(inst.flags))
                    if inst.heredocs:
                        # The classic builder of Docker 28 keys (and runs) only the line `RUN <<EOF`.
                        inputs["heredocs"] = dict(inst.heredocs)
                key = _h(parent_key, "RUN", _input_keys(inputs))
            elif kw in ("COPY", "ADD"):
                inputs.update(sources=list(inst.sources), dest=inst.dest, chown=inst.flags.get("chown"),
                              chmod=inst.flags.get("chmod"))
                if builder == "buildkit" and "link" in inst.flags:
                    inputs["link"] = inst.flags["link"]  # another LLB op; the classic builder ignores the flag
                src = copy_source_stage(df, inst)
                if src is not None:
                    source_stage, source_step = df.stages[src].label, stage_end[src][1]
                    inputs["from"] = "same bytes" if same_sources else stage_end[src][0]
                elif "from" in inst.flags:
                    inputs["from"] = _h("image", inst.flags["from"])
                elif snapshot is not None:
                    files: dict[str, tuple] = {}
                    docs = {f"<<{name}": text for name, text in inst.heredocs}
                    for source in inst.sources:
                        here = docs.get(source.replace('"', "").replace("'", "").replace("<<-", "<<"))
                        if here is not None:
                            files[source] = (hashlib.sha256(here.encode()).hexdigest(), 0o644)  # the document
                        elif kw == "ADD" and re.match(r"^[a-z]+://", source):
                            files[source] = ("url", 0)  # a URL is fetched and checked at build time
                        else:
                            files.update(select_files(snapshot, source, inst, df.path))
                    inputs["files"] = files
                key = _h(parent_key, kw, _input_keys(inputs))
                if "link" in inputs:
                    layer_key = _h(kw, _input_keys(inputs))
            elif kw == "WORKDIR":
                workdir = posixpath.normpath(posixpath.join(st.workdir, " ".join(inst.words)))
                inputs["workdir"] = workdir
                key = _h(parent_key, "WORKDIR", workdir, inputs.get("text"))
            else:
                # Classic commits an image for every instruction; the words count, not the spacing.
                # Buildah too, but it compares the line as written.
                key = _h(parent_key, kw, inst.words, inputs.get("text"))
            steps.append(SimStep(index, stage.label, inst.original, kw, inst.line, key, parent_pos, inputs,
                                 source_stage, source_step, layer_key=layer_key))
            pos = len(steps) - 1
        stage_end[stage.index] = (key, pos)
    if builder != "classic":
        # Identical steps on an identical parent: BuildKit makes them one LLB vertex, run and printed
        # once; Buildah prints each, and takes the later ones from the image the first one committed.
        first: dict[str, int] = {}
        for i, s in enumerate(steps):
            if s.keyword != "FROM":
                if builder == "buildkit":
                    s.shared_with = first.get(s.key)
                else:
                    s.reuses = first.get(s.key)
                first.setdefault(s.key, i)
    return steps


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


def _first_change(new: list[SimStep], i: int, old_keys: set[str]) -> int:
    """The earliest step on ``i``'s parent chain (``i`` included) whose key the earlier build lacks."""
    first = i
    j = new[i].parent
    while j is not None and new[j].key not in old_keys:
        first = j
        j = new[j].parent
    return first


def _own_reason(new: list[SimStep], k: int, old: list[SimStep], multi: bool) -> tuple[str, str]:
    """Why step ``k`` itself (whose parent the earlier build had) misses: (kind, words).

    kind is ``"inserted"``, ``"removed"``, ``"moved"`` or ``"changed"``.
    """
    step = new[k]
    if step.keyword == "FROM":
        moved = moved_base(step, old)
        if moved:
            return "base moved", moved
        return "changed", f"the base image changed: now {step.inputs['base']}"
    old_stage = [s for s in old if s.stage == step.stage and s.keyword != "FROM"]
    new_stage = [s.inputs.get("instruction") for s in new if s.stage == step.stage]
    old_texts = {s.inputs.get("instruction") for s in old_stage}
    me = step.inputs.get("instruction")
    parent_key = new[step.parent].key if step.parent is not None else None
    siblings = [s for s in old if (old[s.parent].key if s.parent is not None else None) == parent_key
                and s.keyword != "FROM"]
    same = next((s for s in siblings if s.inputs.get("instruction") == me), None)
    if same is not None and step.source_step is not None:
        return "changed", (f"stage {step.source_stage} was rebuilt ({_step_name(new[step.source_step], multi)}) "
                           "and the files copied from it came out different")
    if same is None and siblings:
        after = siblings[0]
        if me not in old_texts:
            if after.inputs.get("instruction") in new_stage[new_stage.index(me) + 1:]:
                return "inserted", f"a new instruction, inserted before `{after.instruction}`"
            return "changed", f"the instruction changed: `{after.instruction}` -> `{step.instruction}`"
        if after.inputs.get("instruction") not in new_stage:
            return "removed", f"an instruction removed before this step: `{after.instruction}`"
        return "moved", f"moved: in the earlier build `{step.instruction}` came at another place in the Dockerfile"
    if same is None:
        if me not in old_texts:
            return "inserted", "a new instruction"
        return "moved", f"moved: in the earlier build `{step.instruction}` came at another place in the Dockerfile"
    notes: list[str] = []
    if "files" in step.inputs and "files" in same.inputs:
        notes += _diff_files(same.inputs["files"], step.inputs["files"])
    if "env" in step.inputs and "env" in same.inputs:
        notes += _diff_values("environment value", same.inputs["env"], step.inputs["env"])
    if "args" in step.inputs and "args" in same.inputs:
        notes += _diff_values("build argument", same.inputs["args"], step.inputs["args"])
    if "heredocs" in step.inputs and same.inputs.get("heredocs") != step.inputs["heredocs"]:
        names = [k for k, v in step.inputs["heredocs"].items() if (same.inputs.get("heredocs") or {}).get(k) != v]
        notes.append(f"the text of its here-document changed (<<{', <<'.join(names)})")
    for key in ("workdir", "user", "dest", "chown", "chmod", "command", "shell"):
        if key in step.inputs and same.inputs.get(key) != step.inputs.get(key) and not notes:
            notes.append(f"{key} changed ({same.inputs.get(key)!r} -> {step.inputs.get(key)!r})")
    if "text" in step.inputs and same.inputs.get("text") != step.inputs["text"] and not notes:
        notes.append(f"the line as written changed ({same.inputs.get('text')!r} -> {step.inputs['text']!r}): "
                     "Buildah compares it with its spaces and case")
    return "changed", ("; ".join(notes) if notes else "an input changed that this model does not track")


def moved_base(step: SimStep, old: list[SimStep]) -> str | None:
    """When ``step`` (a FROM) names a base whose tag now names another image than in the earlier
    build(s), say so with both image IDs; None when it names the same one, or when that is not known.
    """
    now = step.inputs.get("base_id")
    base = step.inputs.get("base")
    then = [s.inputs.get("base_id") for s in old if s.keyword == "FROM" and s.inputs.get("base") == base]
    then = [i for i in then if i]
    if not now or not then or now in then:
        return None
    return (f"the base {base} now names {short_id(now)} (the last build used {short_id(then[-1])}): "
            "every step runs again")


def reason_for(new: list[SimStep], i: int, old: list[SimStep], multi: bool) -> str:
    """Why step ``i`` of ``new`` has no match among ``old``'s keys, in plain words."""
    words = _chain_reason(new, i, old, multi)
    if new[i].layer_key is not None and new[i].layer_key in {s.layer_key for s in old}:
        # Seen on Docker 28: the copy vertex is CACHED, only its LINK onto the new parent runs.
        words += ("; with --link the copied layer itself comes from the cache (the same layer), "
                  "and only its linking onto the new parent runs")
    return words


def _chain_reason(new: list[SimStep], i: int, old: list[SimStep], multi: bool) -> str:
    old_keys = {s.key for s in old}
    first = _first_change(new, i, old_keys)
    kind, words = _own_reason(new, first, old, multi)
    if first == i:
        return words
    culprit = new[first]
    if kind == "base moved":
        return words  # "the base ... now names ...: every step runs again"
    if kind == "inserted":
        return f"a new instruction before this step: `{culprit.instruction}`"
    if kind == "removed":
        return words  # "an instruction removed before this step: ..."
    if kind == "moved":
        return f"an instruction moved before this step: `{culprit.instruction}`"
    return f"parent changed at {_step_name(culprit, multi)}"


# --- predict -----------------------------------------------------------------------------------

class PredictedStep(NamedTuple):
    """One predicted step: ``(index, stage, instruction, cached, reason)``.

    ``cached`` is True or False when the answer can be known before building, and None
    ("depends") when it hangs on what a re-running stage writes: a ``COPY --from`` of that
    stage is cached exactly when the copied bytes come out the same, and so are the steps after it.
    """

    index: int
    stage: str
    instruction: str
    cached: bool | None
    reason: str

    @property
    def verdict(self) -> str:
        """``"cached"``, ``"runs"`` or ``"depends"``."""
        return "depends" if self.cached is None else "cached" if self.cached else "runs"


def step_position(steps) -> Callable[[Any], str]:
    """How text forms label a step: ``[3]``, or ``[stage 3]`` when the build has several stages."""
    multi = len({s.stage for s in steps}) > 1
    return lambda s: f"[{s.stage} {s.index}]" if multi else f"[{s.index}]"


@dataclass
class Prediction:
    """What a build will do, step by step, according to the cache rules of one builder.

    Attributes:
        builder: ``"buildkit"``, ``"classic"`` or ``"buildah"``.
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
            mark = {"cached": "CACHED ", "runs": "RUNS   ", "depends": "DEPENDS"}[s.verdict]
            lines.append(f"  {mark} {where(s)} {s.instruction}  -- {s.reason}")
        return "\n".join(lines)

    __str__ = text

    def __repr__(self) -> str:  # what nbval compares: the stable text form
        return self.text()

    def _repr_html_(self) -> str:
        rows = [[s.stage, s.index, s.instruction, s.verdict, s.reason] for s in self.steps]
        return table_html(["stage", "step", "instruction", "prediction", "why"], rows,
                          title=f"Prediction ({self.builder}), compared with {self.compared_with}",
                          drop_single_stage=True)


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
                          "build with course_helpers.build() (which records one) and try again.")
    return [record], "the given build"


def model_steps(record: BuildRecord, builder: str, same_sources: bool = False,
                base_ids: Mapping[str, str] | None = None) -> list[SimStep]:
    """The model's steps for a recorded build (none when its Dockerfile no longer parses).

    Args:
        base_ids: the image IDs to key its bases by (see :func:`simulate`); default: none.
    """
    try:
        df = parse_dockerfile_text(record.dockerfile_text, record.dockerfile, record.build_args)
        return simulate(df, record.snapshot(), builder, same_sources, record.target, base_ids)
    except DockerfileError:
        return []  # an earlier Dockerfile that no longer parses left nothing reusable to model


def compared_bases(now: Mapping[str, str], records: Iterable[BuildRecord]) -> tuple[dict, Callable]:
    """The base image IDs to model a build with, and how to model each earlier record's.

    A base is keyed by its image ID only where the ID it has now is known and an earlier record
    kept the one it had: an earlier record that did not keep it (made before the course recorded
    them) is taken to have used the image the base names now, as before.

    Returns:
        ``(ids for the new build, record -> ids for that record)``.
    """
    kept = {base for rec in records for base in rec.bases}
    new = {base: image for base, image in now.items() if base in kept}
    return new, lambda rec: {base: rec.bases.get(base, image) for base, image in new.items()}


def current_base_ids(df: Dockerfile) -> dict[str, str]:
    """The image ID each base of ``df`` names on the engine now; empty when no engine answers (in seconds)."""
    return base_image_ids(df, try_client(timeout=5))


def _depends_reason(new: list[SimStep], i: int, multi: bool) -> str:
    """Why step ``i`` depends: the COPY --from on its chain whose stage re-runs."""
    j: int | None = i
    while j is not None and new[j].source_step is None:
        j = new[j].parent
    copy = new[j] if j is not None else new[i]
    files = ", ".join(copy.inputs.get("sources") or [])
    if j == i:
        return f"cached if stage {copy.source_stage} writes the same bytes to {files} as before"
    return f"cached if {_step_name(copy, multi)} is: that is, if stage {copy.source_stage} writes the same bytes"


def judge(model_new: Callable[[bool], list[SimStep]], model_old: Callable[[bool], list[SimStep]],
          no_cache: bool, have_old: bool | None = None) -> tuple[list[SimStep], list[tuple[bool | None, str]]]:
    """Model a build and an earlier one, and give each of the build's steps its verdict.

    Args:
        model_new, model_old: ``model(same_sources)`` gives the steps of a build (see :func:`simulate`).
        no_cache: the build runs with ``no_cache=True``.
        have_old: there is an earlier build to compare with (default: when it has steps).

    Returns:
        The build's steps, and (cached, reason) for each (:func:`verdicts`).  The "same bytes"
        models, which only a ``COPY --from`` of a stage needs, are made only when there is one.
    """
    new, old = model_new(False), model_old(False)
    if any(s.source_step is not None for s in new):
        alt_new, alt_old = model_new(True), model_old(True)
    else:
        alt_new, alt_old = new, old
    return new, verdicts(new, alt_new, old, alt_old, no_cache, bool(old) if have_old is None else have_old)


def verdicts(new: list[SimStep], alt_new: list[SimStep], olds: list[SimStep], alt_olds: list[SimStep],
             no_cache: bool, have_old: bool) -> list[tuple[bool | None, str]]:
    """Per model step: (cached, reason), with None for "depends".  Shared by predict() and explain()."""
    old_keys, alt_keys = {s.key for s in olds}, {s.key for s in alt_olds}
    multi = len({s.stage for s in new}) > 1
    out: list[tuple[bool | None, str]] = []
    for i, s in enumerate(new):
        if s.shared_with is not None and s.shared_with < len(out):
            cached, reason = out[s.shared_with]
            out.append((cached, f"the same step as {_step_name(new[s.shared_with], multi)}: BuildKit runs it once "
                                f"for both stages ({reason})"))
        elif s.keyword == "FROM":
            moved = moved_base(s, olds)  # its tag names another image than the earlier build used
            out.append((False, moved) if moved else (True, "the base image is used as it is"))
        elif s.reuses is not None and not no_cache and s.reuses < len(out):
            out.append((True, f"the same step as {_step_name(new[s.reuses], multi)}, earlier in this build: "
                              "Buildah reuses the image that step made"))
        elif no_cache:
            out.append((False, "no_cache=True: every step runs"))
        elif not have_old:
            out.append((False, "no earlier build to reuse"))
        elif s.key in old_keys:
            out.append((True, "unchanged since the earlier build"))
        elif alt_new[i].key in alt_keys:
            out.append((None, _depends_reason(new, i, multi)))
        elif any(cached is None for cached, _ in out):
            # It runs whichever bytes the stage writes: name its own change, which the world
            # where the stage's output stays the same shows, not the COPY --from before it.
            out.append((False, reason_for(alt_new, i, alt_olds, multi)))
        else:
            out.append((False, reason_for(new, i, olds, multi)))
    return out


@course_call("predicting a build")
def predict(context: str | Path, dockerfile: str = "Dockerfile", against: "BuildReport | BuildRecord | None" = None,
            builder: str | None = None, build_args: dict[str, str] | None = None, no_cache: bool = False,
            tag: str | None = None, target: str | None = None) -> Prediction:
    """Say, without building, which steps the next build will take from the cache, and why.

    Needs no engine: it compares the context and Dockerfile on disk with what
    an earlier build recorded (see :func:`course_helpers.builder.records.record_context_snapshot`).
    Where the earlier build recorded the image ID of its base images and an engine answers, it
    also asks which image each base names now: a base whose tag moved to another image makes
    every step after its FROM run, and the reason names the base and both IDs.

    Args:
        context: the build context directory.
        dockerfile: the Dockerfile's path, relative to the context.
        against: the earlier build (a ``BuildReport``); default: the builds recorded
            for this context and Dockerfile (and ``tag``) with the same builder.
        builder: ``"buildkit"``, ``"classic"`` or ``"buildah"`` (Podman's builder): whose rules to
            follow; default: the builder of ``against`` when given, else ``"buildkit"``.
        build_args: the ``--build-arg`` values the build will get.
        no_cache: the build will run with ``no_cache=True`` (nothing is reused).
        tag: narrow the default comparison to builds of this tag.
        target: the stage the build will stop at (``--target``), default the last: BuildKit and
            Buildah build only the stages it needs, the classic builder every stage up to it.

    Returns:
        A :class:`Prediction`.

    Raises:
        DockerfileError: the Dockerfile does not parse, a COPY source is missing, or ``target``
            names no stage.
        CourseError: unknown builder, or ``against`` was never recorded.

    Example:
        >>> predict("sample_app", against=report)  # doctest: +SKIP
    """
    if builder is None:
        builder = getattr(against, "builder", None) or "buildkit"
    if builder not in BUILDERS:
        raise CourseError(f"predict(): builder must be one of {', '.join(BUILDERS)}, not {builder!r}")
    context = os.path.abspath(context)
    df = parse_dockerfile(Path(context) / dockerfile, build_args)
    snapshot = take_snapshot(context)
    records, compared = _record_for(against, context, dockerfile, builder, tag)
    # A base whose tag moved to another image since the earlier build: every step runs again.
    # Asked of the engine only when an earlier build kept its bases' IDs; no engine, no such check.
    now = current_base_ids(df) if any(rec.bases for rec in records) else {}
    ids, old_ids = compared_bases(now, records)
    new, found = judge(lambda same: simulate(df, snapshot, builder, same, target, ids),
                       lambda same: [s for rec in records for s in model_steps(rec, builder, same, old_ids(rec))],
                       no_cache)
    out = [PredictedStep(s.index, s.stage, s.instruction, cached, reason)
           for s, (cached, reason) in zip(new, found)]
    return Prediction(builder, out, compared)


# --- predict-then-verify ------------------------------------------------------------------------

@dataclass
class PredictionCheck:
    """The learner's expectations next to what the build did.

    Attributes:
        rows: ``(instruction, expected, actual, agree)`` per step (FROM left out); ``expected`` is
            ``"cached"``, ``"runs"`` or ``"depends"``, or None for a step not answered yet;
            ``actual`` is ``"cached"`` or ``"ran"``, with ``" (depends)"`` when the answer could
            not be known before building.
    """

    rows: list[tuple[str, str | None, str, bool]]

    @property
    def agreed(self) -> int:
        return sum(r[3] for r in self.rows)

    @property
    def unanswered(self) -> int:
        """How many steps have no answer yet."""
        return sum(r[1] is None for r in self.rows)

    @property
    def answered(self) -> bool:
        """False for an untouched quiz or an empty guess: then there is no score at all."""
        return self.unanswered < len(self.rows)

    @property
    def headline(self) -> str:
        if not self.answered:
            return ("not answered yet: say which steps you expect from the cache (the list or the quiz above), "
                    "then run this cell again")
        left = f" ({self.unanswered} not answered yet)" if self.unanswered else ""
        return f"{self.agreed} of {len(self.rows)} steps as you expected{left}"

    def text(self) -> str:
        lines = [self.headline]
        if not self.answered:  # one line: a table of blanks would read like a score
            return lines[0]
        for inst, exp, act, ok in self.rows:
            if exp is None:
                lines.append(f"  NO ANSWER was {act}: {inst}")
            else:
                lines.append(f"  {'agree   ' if ok else 'DISAGREE'} expected {exp}, was {act}: {inst}")
        return "\n".join(lines)

    __str__ = text

    def __repr__(self) -> str:  # what nbval compares: the stable text form
        return self.text()

    def _repr_html_(self) -> str:
        if not self.answered:
            return f"<p><b>{html.escape(self.headline)}</b></p>"
        rows = [[inst, e or "not answered yet", a, "agree" if ok else "no answer" if e is None else "DISAGREE"]
                for inst, e, a, ok in self.rows]
        return table_html(["instruction", "you expected", "the build", ""], rows, title=self.headline)


def _knowable(report: "BuildReport") -> dict[tuple[str, int], bool]:
    """Steps of ``report`` whose outcome could not be known before it ran ("depends"), by (stage, index)."""
    current, previous = find_record(report)
    if current is None or previous is None or report.no_cache:
        return {}
    new, found = judge(lambda same: model_steps(current, report.builder, same),
                       lambda same: model_steps(previous, report.builder, same), False, True)
    return {(s.stage, s.index): True for s, (cached, _) in zip(new, found) if cached is None}


def check_prediction(expected: "Iterable[str] | Mapping[str, str]", report: "BuildReport") -> PredictionCheck:
    """Compare what a learner expected of each step with what a real build reported.

    Args:
        expected: the instructions expected cached, as written (whitespace is not significant),
            e.g. ``["COPY requirements.txt .", "RUN pip3 install -r requirements.txt"]``; the steps
            a list leaves out are expected to run.  Or a mapping of instruction to ``"cached"``,
            ``"runs"`` or ``"depends"`` (what :func:`prediction_quiz` gives); a step it leaves out,
            or maps to None, is not answered.  "depends" is right for a step that could not be
            known before building (a ``COPY --from`` of a stage that re-runs, and what follows it).
            None, ``...``, an empty list and an untouched quiz are "not answered yet": they score
            nothing.  (To expect every step to run, answer "runs" for each in the quiz.)
        report: the build to check against.

    Returns:
        A :class:`PredictionCheck` (shows as a table in a notebook, or as one line when not answered).

    Raises:
        CourseError: an expected instruction is not a step of the build.
    """
    if expected is None or expected is Ellipsis:
        expected = []
    listed = not isinstance(expected, Mapping)
    if listed:
        answers = {norm(x): "cached" for x in expected}
    else:
        answers = {norm(k): str(v) for k, v in expected.items() if v is not None}
    bad = sorted(v for v in answers.values() if v not in ("cached", "runs", "depends"))
    if bad:
        raise CourseError(f"check_prediction(): {bad[0]!r} is not an answer; use 'cached', 'runs' or 'depends'")
    known = {norm(s.instruction) for s in report.steps}
    unknown = sorted(set(answers) - known)
    if unknown:
        raise CourseError(f"check_prediction(): {unknown[0]!r} is not a step of this build; copy the "
                          "instruction as the Dockerfile writes it")
    if not answers:  # nothing answered: no score (rows without an expectation each)
        return PredictionCheck([(s.instruction, None, "cached" if s.cached else "ran", False)
                                for s in report.steps if not s.instruction.upper().startswith("FROM")])
    depends = _knowable(report) if "depends" in answers.values() or not listed else {}
    rows = []
    for s in report.steps:
        if s.instruction.upper().startswith("FROM"):
            continue
        # A list names the cached steps, so it answers every step; a mapping answers only its keys.
        exp = answers.get(norm(s.instruction), "runs" if listed else None)
        was = "cached" if s.cached else "ran"
        if exp is None:
            rows.append((s.instruction, None, was, False))
        elif (s.stage, s.index) in depends:
            rows.append((s.instruction, exp, f"{was} (depends)", exp == "depends"))
        else:
            rows.append((s.instruction, exp, was, (exp == "cached") == s.cached and exp != "depends"))
    return PredictionCheck(rows)
