"""The course's one Dockerfile reader: it reads a Dockerfile as BuildKit's frontend does, once, into a typed model.

What it follows (each checked against the engine by tests/test_dockerfile_corpus.py):

* parser directives at the very top (``# escape=``, ``# syntax=``);
* comments, blank lines, and continuation lines: the escape character and the
  line break are removed, comment and blank lines inside a continuation are
  skipped, and the next line is joined *with its leading spaces*, so
  ``RUN echo one \\`` + ``    two`` is ``RUN echo one     two``;
* keywords in any case, ``--flags`` before the arguments, JSON (exec) and shell forms;
* here-documents (``RUN <<EOF`` ... ``EOF``, ``COPY <<EOF /file``): Docker 23+'s frontend reads
  the lines up to the delimiter as the document, not as instructions (Docker 20.10's stops
  at the first of them: "unknown instruction");
* stages: ``FROM image AS Name`` names the stage ``name`` (lowercased), ``FROM name``
  or ``COPY --from=name`` refers to it, ``ARG`` before the first ``FROM`` feeds ``FROM``;
* ``$VAR`` substitution where Docker does it (ENV, ARG, LABEL, COPY, ADD, WORKDIR,
  USER, FROM, ...), with the values in scope at that line (build arguments, ENV,
  and the base image's own environment when the caller supplies it).

Each instruction carries how both builders show it: ``original`` (what the
classic builder prints after ``Step N/M :``) and ``buildkit_text`` (what BuildKit
prints after ``[stage i/n]``), plus the build state it runs in, so the cache
model reads this model and never parses again.

Example:
    >>> df = parse_dockerfile_text("FROM python:3.11-slim-bookworm\\nWORKDIR /app\\nCOPY . .\\n")
    >>> [(i.step, i.buildkit_text) for i in df.instructions]
    [(1, 'FROM python:3.11-slim-bookworm'), (2, 'WORKDIR /app'), (3, 'COPY . .')]
"""
from __future__ import annotations

import json
import posixpath
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Mapping

from ..errors import DockerfileError
from .shell import SubstitutionError, process_word, process_words

#: Every instruction Docker knows.
KNOWN = frozenset({"FROM", "RUN", "CMD", "LABEL", "MAINTAINER", "EXPOSE", "ENV", "ADD", "COPY",
                   "ENTRYPOINT", "VOLUME", "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL",
                   "HEALTHCHECK", "SHELL"})
#: The instructions that make a layer in both builders (and the only steps BuildKit shows, with FROM).
LAYER_INSTRUCTIONS = frozenset({"RUN", "COPY", "ADD", "WORKDIR"})
#: Instructions whose arguments Docker substitutes variables in.
_SUBSTITUTED = frozenset({"ADD", "COPY", "ENV", "EXPOSE", "FROM", "LABEL", "STOPSIGNAL", "USER", "VOLUME",
                          "WORKDIR", "ARG", "ONBUILD"})
#: The flags each instruction takes (BuildKit's frontend refuses others: "Unknown flag: bogus").
FLAGS = {"FROM": {"platform"}, "RUN": {"mount", "network", "security"},
         "COPY": {"from", "chown", "chmod", "link"}, "ADD": {"chown", "chmod", "link", "checksum", "keep-git-dir"},
         "HEALTHCHECK": {"interval", "timeout", "start-period", "start-interval", "retries"}}
_JSON_FORMS = frozenset({"RUN", "CMD", "ENTRYPOINT", "COPY", "ADD", "SHELL", "VOLUME"})
_DIRECTIVE = re.compile(r"^#[ \t]*([a-zA-Z][a-zA-Z0-9]*)[ \t]*=[ \t]*(.+?)[ \t]*$")
_FLAG = re.compile(r"^--([a-zA-Z][a-zA-Z0-9-]*)(?:=(\S*))?$")
_HEREDOC = re.compile(r"(?<![<\w])<<(-?)([\"']?)([A-Za-z0-9_]+)\2(?!<)")
_HEREDOC_KEYWORDS = frozenset({"RUN", "COPY", "ADD"})
DEFAULT_SHELL = ("/bin/sh", "-c")


@dataclass(frozen=True)
class BuildState:
    """What an instruction runs in: the state the instructions above it left.

    Attributes:
        env: ENV values (the base image's own, then the Dockerfile's).
        args: build arguments declared in this stage that have a value.
        workdir: the working directory (``/`` until a WORKDIR).
        user: the USER, ``""`` for the image's default.
        shell: the SHELL for shell-form RUN.
    """

    env: Mapping[str, str]
    args: Mapping[str, str]
    workdir: str = "/"
    user: str = ""
    shell: tuple[str, ...] = DEFAULT_SHELL

    @property
    def scope(self) -> dict[str, str]:
        """Variables a ``$VAR`` can see: build arguments, overridden by ENV of the same name."""
        return {**self.args, **self.env}


@dataclass(frozen=True)
class Instruction:
    """One instruction, as written and as the builders will carry it out.

    Attributes:
        keyword: ``"COPY"`` (upper case).
        original: the instruction as Docker joins its lines (keyword as typed): the classic
            builder's ``Step N/M : <original>``.
        args: what follows the keyword and its flags, as written.
        flags: ``--name=value`` flags as written (``{"from": "build"}``); a bare ``--flag`` is ``"true"``.
        json_args: the list, when written in JSON (exec) form.
        line, end_line: where it starts and ends in the file (1-based).
        number: position among all instructions (what classic ``Step N`` counts).
        stage: index of its stage, None for an ``ARG`` before the first ``FROM``.
        state: the build state it runs in.
        words: the arguments split as Docker splits them, variables substituted where Docker does.
        values: ``ENV``/``ARG``/``LABEL`` pairs, substituted (an ``ARG`` without a value is absent).
        step: BuildKit's ``[i/n]`` number in the stage, None when BuildKit shows no step for it.
        buildkit_text: what BuildKit prints for the step (None when it shows none).
        heredocs: ``(name, text)`` of each here-document the instruction opens (``<<EOF``), in order.
    """

    keyword: str
    original: str
    args: str
    flags: Mapping[str, str]
    json_args: tuple[str, ...] | None
    line: int
    end_line: int
    number: int
    stage: int | None
    state: BuildState
    words: tuple[str, ...] = ()
    values: Mapping[str, str] = field(default_factory=dict)
    step: int | None = None
    buildkit_text: str | None = None
    heredocs: tuple[tuple[str, str], ...] = ()

    @property
    def text(self) -> str:
        """The instruction on one line, as the course shows it (the classic builder's form)."""
        return self.original

    @property
    def makes_layer(self) -> bool:
        """RUN, COPY, ADD and WORKDIR make a layer; everything else only changes the image's config."""
        return self.keyword in LAYER_INSTRUCTIONS

    @property
    def sources(self) -> tuple[str, ...]:
        """COPY/ADD: the sources (substituted)."""
        return self.words[:-1] if self.keyword in ("COPY", "ADD") else ()

    @property
    def dest(self) -> str | None:
        """COPY/ADD: the destination as the builder resolves it (absolute, against WORKDIR)."""
        if self.keyword not in ("COPY", "ADD") or not self.words:
            return None
        dest = self.words[-1]
        resolved = dest if dest.startswith("/") else posixpath.join(self.state.workdir, dest)
        return resolved + ("/" if dest.endswith("/") and not resolved.endswith("/") else "")

    @property
    def command(self) -> tuple[str, ...] | str:
        """RUN/CMD/ENTRYPOINT: the JSON list, or the shell text as written."""
        return self.json_args if self.json_args is not None else self.args


@dataclass
class Stage:
    """A build stage.

    Attributes:
        index: 0-based position in the file.
        name: the ``AS`` name, lowercased (as BuildKit does), or None.
        base: the image FROM names, substituted (``python:3.11-slim-bookworm``), or the stage it names.
        base_stage: index of the stage this one starts FROM, None for an image.
        instructions: its instructions, FROM first.
    """

    index: int
    name: str | None
    base: str
    base_stage: int | None
    instructions: list[Instruction] = field(default_factory=list)

    @property
    def label(self) -> str:
        """How reports name the stage: its name, else its number as a string."""
        return self.name or str(self.index)

    @property
    def buildkit_name(self) -> str:
        """BuildKit's name for the stage in ``[name i/n]``: its ``AS`` name, else ``stage-N``."""
        return self.name or f"stage-{self.index}"

    @property
    def steps(self) -> list[Instruction]:
        """The instructions BuildKit shows as steps, in order."""
        return [i for i in self.instructions if i.step is not None]


@dataclass
class Dockerfile:
    """A parsed Dockerfile.

    Attributes:
        path: where it was read from (``"<text>"`` for strings).
        instructions: every instruction in order, ARGs before the first FROM included.
        stages: the stages in order.
        directives: parser directives, e.g. ``{"escape": "`"}``.
        build_args: the build arguments it was read with.
        not_utf8: where the file is not UTF-8 (``"byte 0xe9 on line 4"``), else None. Docker builds
            it anyway; the bad bytes read as U+FFFD, as BuildKit prints them.
    """

    path: str
    instructions: list[Instruction]
    stages: list[Stage]
    directives: dict[str, str]
    build_args: dict[str, str]
    not_utf8: str | None = None

    @property
    def global_args(self) -> list[Instruction]:
        """ARG instructions before the first FROM."""
        return [i for i in self.instructions if i.stage is None]

    @property
    def multi_stage(self) -> bool:
        return len(self.stages) > 1

    def stage(self, ref: str) -> Stage | None:
        """The stage a ``FROM`` or ``--from`` names: its name (any case) or its number."""
        for stage in self.stages:
            if stage.name is not None and stage.name == ref.lower():
                return stage
        if ref.isdigit() and int(ref) < len(self.stages):
            return self.stages[int(ref)]
        return None

    def needed_stages(self, target: str | None = None) -> list[int]:
        """The stages a BuildKit build of ``target`` (default: the last stage) runs, in file order."""
        last = self.stage(target) if target else self.stages[-1]
        if last is None:
            raise DockerfileError(f"{self.path}: there is no stage named {target!r} to build")
        needed: set[int] = set()
        todo = [last.index]
        while todo:
            i = todo.pop()
            if i in needed:
                continue
            needed.add(i)
            stage = self.stages[i]
            if stage.base_stage is not None:
                todo.append(stage.base_stage)
            for inst in stage.instructions:
                source = copy_source_stage(self, inst)
                if source is not None:
                    todo.append(source)
        return sorted(needed)

    def buildkit_label(self, inst: Instruction) -> str:
        """``[2/4]`` or, with several stages, ``[build 2/4]``: how BuildKit numbers the step."""
        stage = self.stages[inst.stage] if inst.stage is not None else None
        if stage is None or inst.step is None:
            raise ValueError(f"{inst.original!r} is not a BuildKit step")
        prefix = f"{stage.buildkit_name} " if self.multi_stage else ""
        return f"[{prefix}{inst.step}/{len(stage.steps)}]"


def copy_source_stage(df: Dockerfile, inst: Instruction) -> int | None:
    """The stage a ``COPY --from`` copies from, or None (a plain COPY, or ``--from`` an image)."""
    if inst.keyword != "COPY" or "from" not in inst.flags:
        return None
    ref = process_word(inst.flags["from"], inst.state.scope, _escape(df))
    found = df.stage(ref)
    return found.index if found is not None and found.index < (inst.stage or 0) else None


def _escape(df: Dockerfile) -> str:
    return df.directives.get("escape", "\\")


# --- lines -------------------------------------------------------------------------------------

def _directives(lines: list[str]) -> tuple[dict[str, str], int]:
    """Parser directives, only at the very top: the first other line (even a blank one) ends them."""
    found: dict[str, str] = {}
    for i, raw in enumerate(lines):
        match = _DIRECTIVE.match(raw.strip())
        if not match or match.group(1).lower() in found:
            return found, i
        found[match.group(1).lower()] = match.group(2)
    return found, len(lines)


def _is_comment(raw: str) -> bool:
    return raw.lstrip().startswith("#")


def _heredocs(joined: str, lines: list[str], i: int) -> tuple[tuple[tuple[str, str], ...], int]:
    """The here-documents a RUN, COPY or ADD opens, read from line ``i`` on; and the line after them."""
    if joined.split(None, 1)[0].upper() not in _HEREDOC_KEYWORDS:
        return (), i
    docs = []
    for match in _HEREDOC.finditer(joined):
        dash, name = match.group(1), match.group(3)
        body = []
        while i < len(lines):
            line = lines[i]
            i += 1
            if (line.lstrip("\t") if dash else line) == name:
                break
            body.append(line.lstrip("\t") if dash else line)
        docs.append((name, "".join(b + "\n" for b in body)))
    return tuple(docs), i


def logical_lines(text: str, path: str = "<text>") -> tuple[list[tuple[int, int, str, tuple]], dict[str, str]]:
    """Join continuation lines as Docker's parser does, and read the here-documents an instruction opens.

    Returns:
        ``(first line, last line, joined text, here-documents)`` per instruction, and the parser
        directives; here-documents are ``(name, text)`` pairs.

    Raises:
        DockerfileError: a bad escape directive.
    """
    lines = text.lstrip("\ufeff").split("\n")
    lines = [line[:-1] if line.endswith("\r") else line for line in lines]
    directives, start = _directives(lines)
    escape = directives.get("escape", "\\")
    if escape not in ("\\", "`"):
        raise DockerfileError(f"{path}, line 1: the escape directive must be \\ or `, not {escape!r}")
    continuation = re.compile(re.escape(escape) + r"[ \t]*$")
    out: list[tuple[int, int, str]] = []
    i = start
    while i < len(lines):
        raw = lines[i].lstrip()
        i += 1
        first = i
        if not raw or _is_comment(raw):
            continue
        joined = raw
        ended = continuation.search(joined) is None
        joined = continuation.sub("", joined)
        while not ended and i < len(lines):
            raw = lines[i]
            i += 1
            if _is_comment(raw) or not raw.strip():
                continue  # comment and empty lines inside a continuation are skipped
            ended = continuation.search(raw) is None
            joined += continuation.sub("", raw)
        if joined.strip():
            docs, i = _heredocs(joined, lines, i)
            out.append((first, i, joined, docs))
    return out, directives


def _split_flags(rest: str) -> tuple[dict[str, str], str]:
    flags: dict[str, str] = {}
    while rest.startswith("--"):
        token, _, tail = rest.partition(" ")
        match = _FLAG.match(token)
        if not match:
            break
        flags[match.group(1).lower()] = match.group(2) if match.group(2) is not None else "true"
        rest = tail.lstrip(" \t")
    return flags, rest


def _json_list(rest: str) -> tuple[str, ...] | None:
    if not rest.lstrip().startswith("["):
        return None
    try:
        parsed = json.loads(rest)
    except ValueError:
        return None
    if isinstance(parsed, list) and all(isinstance(x, str) for x in parsed):
        return tuple(parsed)
    return None


def _uppercase_keyword(text: str) -> str:
    word, sep, rest = text.partition(" ")
    if not sep:
        return text.upper()
    return word.upper() + sep + rest


def _docker_ref(ref: str) -> str:
    """``python:3.11`` -> ``docker.io/library/python:3.11``: the name BuildKit prints for FROM."""
    if ref == "scratch":
        return ref
    name, at, digest = ref.partition("@")
    first = name.split("/", 1)[0]
    has_registry = "/" in name and ("." in first or ":" in first or first == "localhost")
    if not has_registry:
        name = ("docker.io/library/" if "/" not in name else "docker.io/") + name
    if ":" not in name.rsplit("/", 1)[-1] and not at:
        name += ":latest"
    return name + at + digest


def _pairs(keyword: str, rest: str, scope: Mapping[str, str], escape: str, where: str) -> dict[str, str]:
    """ENV/LABEL/ARG pairs: ``k=v k2="v 2"``, or the legacy ``ENV k v with spaces``."""
    first = rest.split(None, 1)[0] if rest.strip() else ""
    if keyword == "ENV" and "=" not in first:
        name, _, value = rest.strip().partition(" ")
        value = value.strip() if keyword == "ENV" else value
        return {name: process_word(value.lstrip(" \t"), scope, escape)}
    out: dict[str, str] = {}
    for word in process_words(rest, scope, escape):
        name, eq, value = word.partition("=")
        if keyword == "ARG":
            out[name] = value if eq else None  # type: ignore[assignment]  # declared, no default
        elif not eq:
            raise DockerfileError(f"{where}: {keyword} needs name=value pairs, got {word!r}")
        else:
            out[name] = value
    return out


# --- the reader ----------------------------------------------------------------------------------

EnvLookup = Callable[[str], Mapping[str, str]]


@dataclass(frozen=True)
class _Line:
    """One instruction read but not yet placed: what every keyword's handler starts from."""

    number: int
    first: int
    last: int
    where: str  # "path, line N", how error messages start
    keyword: str
    original: str
    rest: str
    flags: dict[str, str]
    json_args: tuple[str, ...] | None
    words: tuple[str, ...]
    values: dict[str, str]  # an ARG without a value maps to None here
    heredocs: tuple

    def instruction(self, stage: int | None, state: BuildState, step: int | None = None,
                    buildkit_text: str | None = None) -> Instruction:
        """The instruction this line is in ``stage`` (None before the first FROM), run in ``state``."""
        return Instruction(self.keyword, self.original, self.rest, self.flags, self.json_args, self.first,
                           self.last, self.number, stage, state, self.words,
                           {k: v for k, v in self.values.items() if v is not None}, step, buildkit_text,
                           self.heredocs)


@dataclass
class _Reader:
    """What the reader carries from one instruction to the next."""

    path: str
    escape: str
    args_given: dict[str, str]
    base_env: EnvLookup | None
    global_scope: dict[str, str] = field(default_factory=dict)  # the ARGs before the first FROM
    instructions: list[Instruction] = field(default_factory=list)
    stages: list[Stage] = field(default_factory=list)
    ends: dict[int, BuildState] = field(default_factory=dict)  # the state each stage leaves
    state: BuildState = field(default_factory=lambda: BuildState(env={}, args={}))
    step: int = 0  # BuildKit's step number in the current stage

    def read(self, number: int, first: int, last: int, original: str, heredocs: tuple) -> _Line:
        """What every instruction needs: its keyword, flags, arguments and words, checked."""
        where = f"{self.path}, line {first}"
        word, _, rest = original.partition(" ")
        keyword = word.upper()
        if keyword not in KNOWN:
            raise DockerfileError(f"{where}: unknown instruction {word!r} (Docker knows "
                                  f"{', '.join(sorted(KNOWN))})")
        flags, rest = _split_flags(rest.strip(" \t"))
        unknown = sorted(set(flags) - FLAGS.get(keyword, set()))
        if unknown:
            raise DockerfileError(f"{where}: {keyword} has no flag --{unknown[0]} (Docker stops with "
                                  f"\"Unknown flag: {unknown[0]}\"): remove it or fix its spelling")
        rest = rest.strip(" \t")
        if not rest and keyword not in ("CMD", "ENTRYPOINT", "RUN"):
            raise DockerfileError(f"{where}: {keyword} needs arguments")
        json_args = _json_list(rest) if keyword in _JSON_FORMS else None
        # FROM sees only the ARGs declared before the first FROM; other lines see their stage's scope.
        scope = self.state.scope if self.stages and keyword != "FROM" else self.global_scope
        try:
            words = tuple(json_args) if json_args is not None else (
                tuple(process_words(rest, scope, self.escape)) if keyword in _SUBSTITUTED else tuple(rest.split()))
            if json_args is not None and keyword in _SUBSTITUTED:
                words = tuple(process_word(w, scope, self.escape) for w in json_args)
            values = _pairs(keyword, rest, scope, self.escape, where) if keyword in ("ENV", "LABEL", "ARG") else {}
        except SubstitutionError as exc:
            raise DockerfileError(f"{where}: {keyword} does not parse ({exc})") from None
        return _Line(number, first, last, where, keyword, original, rest, flags, json_args, words, values,
                     heredocs)

    def in_stage(self, line: _Line) -> BuildState:
        """The state ``line`` runs in.

        Raises:
            DockerfileError: there is no stage yet (only ARG may come before the first FROM).
        """
        if not self.stages:
            raise DockerfileError(f"{line.where}: {line.keyword} comes before the first FROM; only ARG may")
        return self.state

    def step_text(self, line: _Line, **substitution) -> str:
        """Count a BuildKit step, and the text BuildKit prints for it: ``original`` substituted."""
        self.step += 1
        try:
            text = process_word(line.original, self.state.scope, self.escape, **substitution)
        except SubstitutionError as exc:
            raise DockerfileError(f"{line.where}: {line.keyword} does not parse ({exc})") from None
        return _uppercase_keyword(text)

    def add(self, line: _Line, buildkit_text: str | None = None, after: BuildState | None = None) -> None:
        """Put ``line`` in the current stage; ``after`` is the state it leaves (default: the one it runs in)."""
        stage = self.stages[-1]
        inst = line.instruction(stage.index, self.state, self.step if buildkit_text else None, buildkit_text)
        stage.instructions.append(inst)
        self.instructions.append(inst)
        self.state = after if after is not None else self.state
        self.ends[stage.index] = self.state


def _from(r: _Reader, line: _Line) -> None:
    words = line.words
    if len(words) not in (1, 3) or (len(words) == 3 and words[1].upper() != "AS"):
        raise DockerfileError(f"{line.where}: FROM takes an image and optionally 'AS name': "
                              f"`{line.original}` does not parse")
    name = words[2].lower() if len(words) == 3 else None
    if name is not None and any(s.name == name for s in r.stages):
        raise DockerfileError(f"{line.where}: a stage named {name!r} already exists: give this one "
                              "another name")
    base = words[0]
    parent = next((s for s in r.stages if s.name == base.lower()), None)
    bk_text: str | None = None
    if parent is not None:
        # FROM a stage goes on from the state that stage left, without its build arguments.
        r.state = replace(r.ends[parent.index], env=dict(r.ends[parent.index].env), args={})
        r.step = 0
    else:
        env = dict(r.base_env(base)) if r.base_env and base != "scratch" else {}
        r.state = BuildState(env=env, args={})
        r.step = 0 if base == "scratch" else 1
        bk_text = f"FROM {_docker_ref(base)}" if base != "scratch" else None
    r.stages.append(Stage(len(r.stages), name, base, parent.index if parent else None))
    r.add(line, bk_text)


def _arg(r: _Reader, line: _Line) -> None:
    if not r.stages:
        # Before the first FROM: a global argument, which FROM lines (and a stage's bare ARG) see.
        for name, default in line.values.items():
            value = r.args_given.get(name, default)
            if value is not None:
                r.global_scope[name] = value
        r.instructions.append(line.instruction(None, BuildState(env={}, args=dict(r.global_scope))))
        return
    before = r.in_stage(line)
    args = dict(before.args)
    for name, default in line.values.items():
        value = r.args_given.get(name, default if default is not None else r.global_scope.get(name))
        if value is not None:
            args[name] = value
        else:
            args.pop(name, None)
    r.add(line, after=replace(before, args=args))


def _env(r: _Reader, line: _Line) -> None:
    before = r.in_stage(line)
    r.add(line, after=replace(before, env={**before.env, **line.values}))


def _run(r: _Reader, line: _Line) -> None:
    r.in_stage(line)
    # RUN's step name keeps quotes as written and leaves unset variables alone.
    bk_text = r.step_text(line, raw_quotes=True, skip_unset=True)
    if len(line.heredocs) == 1 and _HEREDOC.fullmatch(line.rest):
        # A RUN whose whole command is one here-document: BuildKit names it by the script's
        # first line, "..." when more follow (seen on Docker 28).
        body = line.heredocs[0][1].splitlines() or [""]
        bk_text += f" ({body[0]}{'...' if len(body) > 1 else ''})"
    r.add(line, bk_text)


def _copy(r: _Reader, line: _Line) -> None:
    """COPY and ADD."""
    r.in_stage(line)
    bk_text = r.step_text(line)
    if len(line.words) < 2:
        raise DockerfileError(f"{line.where}: {line.keyword} needs at least one source and a destination")
    r.add(line, bk_text)


def _workdir(r: _Reader, line: _Line) -> None:
    before = r.in_stage(line)
    bk_text = r.step_text(line)
    workdir = posixpath.normpath(posixpath.join(before.workdir, " ".join(line.words)))
    r.add(line, bk_text, replace(before, workdir=workdir))


def _user(r: _Reader, line: _Line) -> None:
    before = r.in_stage(line)
    r.add(line, after=replace(before, user=" ".join(line.words)))


def _shell(r: _Reader, line: _Line) -> None:
    before = r.in_stage(line)
    if line.json_args is None:
        raise DockerfileError(f"{line.where}: SHELL must be a JSON array of strings")
    r.add(line, after=replace(before, shell=tuple(line.json_args)))


def _other(r: _Reader, line: _Line) -> None:
    """CMD, LABEL, EXPOSE, ...: they change only the image's config, which the build state leaves out."""
    r.in_stage(line)
    r.add(line)


#: What each keyword does to the model; the others are :func:`_other`.
_HANDLERS: dict[str, Callable[[_Reader, _Line], None]] = {
    "FROM": _from, "ARG": _arg, "ENV": _env, "RUN": _run, "COPY": _copy, "ADD": _copy, "WORKDIR": _workdir,
    "USER": _user, "SHELL": _shell}


def parse_dockerfile_text(text: str, path: str = "<text>", build_args: Mapping[str, str] | None = None,
                          base_env: EnvLookup | None = None, not_utf8: str | None = None) -> Dockerfile:
    """Parse Dockerfile text into the course's model.

    Args:
        text: the Dockerfile.
        path: its name, for error messages.
        build_args: ``--build-arg`` values the build gets.
        base_env: looks up a base image's own environment (its config's ``Env``), which BuildKit
            substitutes too (``RUN echo $PATH``); default: bases have no environment.
        not_utf8: set by :func:`parse_dockerfile` when the bytes were not UTF-8.

    Returns:
        A :class:`Dockerfile`.

    Raises:
        DockerfileError: unknown instruction, missing arguments, a bad substitution, a stage named
            twice, or no FROM; the message names the file and line.
    """
    logical, directives = logical_lines(text, path)
    reader = _Reader(path, directives.get("escape", "\\"), dict(build_args or {}), base_env)
    for number, (first, last, original, heredocs) in enumerate(logical, 1):
        line = reader.read(number, first, last, original, heredocs)
        _HANDLERS.get(line.keyword, _other)(reader, line)
    if not reader.stages:
        raise DockerfileError(f"{path}, line 1: no FROM instruction: a Dockerfile must start its first "
                              "stage with FROM")
    return Dockerfile(path, reader.instructions, reader.stages, directives, reader.args_given, not_utf8)


def read_text(path: str | Path) -> tuple[str, str | None]:
    """A Dockerfile's text as Docker reads it, and where it is not UTF-8 (None when it is).

    Bytes that are not UTF-8 become U+FFFD, as BuildKit prints them; Docker builds such a file.

    Raises:
        DockerfileError: the file does not exist.
    """
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise DockerfileError(f"There is no Dockerfile at {path}: create it, or pass dockerfile= with its "
                              "path relative to the context.") from None
    except IsADirectoryError:
        raise DockerfileError(f"{path} is a folder, not a Dockerfile: pass the file's path.") from None
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        return data.decode("utf-8", "replace"), f"byte 0x{data[exc.start]:02x} on line {line}"


def parse_dockerfile(path: str | Path, build_args: Mapping[str, str] | None = None,
                     base_env: EnvLookup | None = None) -> Dockerfile:
    """Read and parse a Dockerfile from disk (see :func:`parse_dockerfile_text`).

    Raises:
        DockerfileError: the file is missing or does not parse; the message names the file and line.
    """
    text, not_utf8 = read_text(path)
    return parse_dockerfile_text(text, str(path), build_args, base_env, not_utf8)
