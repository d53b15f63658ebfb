"""Read a Dockerfile the way Docker's parser does, enough to reason about the build cache.

What it handles: parser directives (``# escape=``, ``# syntax=``), comments,
blank lines, continuation lines (comment and empty lines inside a continuation
are skipped, the escape character and the line break are removed, the next
line's leading spaces are kept, as Docker does), JSON (exec) form, flags such
as ``--from``, ``--chown`` and ``--chmod``, stages (``FROM ... AS name``) and
``$VAR`` / ``${VAR}`` / ``${VAR:-default}`` / ``${VAR:+alt}`` substitution.

Errors are :class:`~course_helpers.errors.DockerfileError` naming the file and
line, never a parser traceback.

Example:
    >>> df = parse_dockerfile_text("FROM python:3.11-slim-bookworm\\nCOPY . /app\\n")
    >>> [i.text for i in df.instructions]
    ['FROM python:3.11-slim-bookworm', 'COPY . /app']
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from .errors import DockerfileError

#: Every instruction Docker knows (MAINTAINER and ONBUILD included).
KNOWN = frozenset({"FROM", "RUN", "CMD", "LABEL", "MAINTAINER", "EXPOSE", "ENV", "ADD", "COPY",
                   "ENTRYPOINT", "VOLUME", "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL",
                   "HEALTHCHECK", "SHELL"})
#: Flags each instruction accepts; anything else is an error, as in Docker.
FLAGS = {"FROM": {"platform"}, "COPY": {"from", "chown", "chmod", "link"},
         "ADD": {"chown", "chmod", "link", "checksum", "keep-git-dir"},
         "RUN": {"mount", "network", "security"}, "HEALTHCHECK": {"interval", "timeout", "start-period",
                                                                  "retries", "start-interval"}}
_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
_VAR = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(?:(:[-+])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))")


@dataclass
class Instruction:
    """One logical Dockerfile instruction.

    Attributes:
        keyword: the instruction in upper case (``"COPY"``).
        args: what follows the keyword and its flags, continuation lines joined.
        text: the instruction as written on one line (keyword as typed, flags kept).
        line: 1-based line where it starts; ``end_line`` where it ends.
        flags: ``--name=value`` flags, e.g. ``{"from": "build"}``.
        stage: index of its stage (0-based); ``stage_name`` its ``AS`` name or None.
        json_form: the parsed list when written in JSON (exec) form, else None.
    """

    keyword: str
    args: str
    text: str
    line: int
    end_line: int
    flags: dict[str, str] = field(default_factory=dict)
    stage: int = 0
    stage_name: str | None = None
    json_form: list[str] | None = None

    def words(self) -> list[str]:
        """Arguments split as Docker splits them (JSON form, else on whitespace)."""
        return list(self.json_form) if self.json_form is not None else self.args.split()


@dataclass
class Stage:
    """A build stage: its FROM, name and instructions (FROM first)."""

    index: int
    name: str | None
    base: str
    instructions: list[Instruction] = field(default_factory=list)

    @property
    def label(self) -> str:
        """How reports name the stage: its AS name, else its number as a string."""
        return self.name or str(self.index)


@dataclass
class Dockerfile:
    """A parsed Dockerfile.

    Attributes:
        path: where it was read from (``"<text>"`` for strings).
        instructions: all instructions in order, including ARGs before the first FROM.
        stages: the stages in order.
        global_args: ARG instructions before the first FROM.
        directives: parser directives (``{"escape": "\\\\"}``).
    """

    path: str
    instructions: list[Instruction]
    stages: list[Stage]
    global_args: list[Instruction]
    directives: dict[str, str]

    def stage_by_ref(self, ref: str) -> Stage | None:
        """The stage a ``--from`` or ``FROM`` refers to (name, case-insensitive, or number)."""
        for stage in self.stages:
            if stage.name and stage.name.lower() == ref.lower():
                return stage
        if ref.isdigit() and int(ref) < len(self.stages):
            return self.stages[int(ref)]
        return None


def _error(path: str, line: int, message: str) -> DockerfileError:
    return DockerfileError(f"{path}, line {line}: {message}")


def expand(word: str, env: dict[str, str]) -> str:
    """Substitute ``$VAR`` forms as the Dockerfile frontend does; unset variables become ''.

    Args:
        word: text with variable references.
        env: values in scope (ENV and ARG).

    Returns:
        The text with references replaced.
    """
    def sub(m: re.Match) -> str:
        name = m.group(1) or m.group(4)
        value = env.get(name)
        if m.group(2) == ":-":
            return value if value else m.group(3)
        if m.group(2) == ":+":
            return m.group(3) if value else ""
        return value or ""
    return _VAR.sub(sub, word)


def _logical_lines(text: str, path: str) -> tuple[list[tuple[int, int, str]], dict[str, str]]:
    """Join continuation lines; return (first line, last line, text) and the parser directives."""
    lines = text.splitlines()
    directives: dict[str, str] = {}
    start = 0
    # Directives are only recognised at the very top, before any comment, blank line or instruction.
    while start < len(lines):
        m = _DIRECTIVE.match(lines[start].strip())
        if not m or m.group(1).lower() in directives:
            break
        directives[m.group(1).lower()] = m.group(2)
        start += 1
    escape = directives.get("escape", "\\")
    if escape not in ("\\", "`"):
        raise _error(path, 1, f"the escape directive must be \\ or `, not {escape!r}")
    continuation = re.compile(re.escape(escape) + r"[ \t]*$")
    out: list[tuple[int, int, str]] = []
    pending: str | None = None
    first = 0
    for number, raw in enumerate(lines[start:], start=start + 1):
        stripped = raw.strip()
        if pending is None:
            if not stripped or stripped.startswith("#"):
                continue
            first, pending = number, ""
            raw = raw.lstrip()
        elif not stripped or stripped.startswith("#"):
            continue  # Docker drops comments and empty lines inside a continuation
        if continuation.search(raw):
            pending += continuation.sub("", raw)
            continue
        out.append((first, number, (pending + raw).strip()))
        pending = None
    if pending is not None:
        if not pending.strip():
            raise _error(path, first, "the file ends inside a continuation line (a trailing "
                                      f"{escape} with nothing after it)")
        out.append((first, len(lines), pending.strip()))
    return out, directives


def _split_flags(rest: str, keyword: str, path: str, line: int) -> tuple[dict[str, str], str]:
    flags: dict[str, str] = {}
    while rest.startswith("--"):
        token, _, rest = rest.partition(" ")
        rest = rest.lstrip()
        name, eq, value = token[2:].partition("=")
        if name not in FLAGS.get(keyword, set()):
            raise _error(path, line, f"{keyword} does not accept the flag --{name}")
        flags[name] = value if eq else "true"
    return flags, rest


def parse_dockerfile_text(text: str, path: str = "<text>") -> Dockerfile:
    """Parse Dockerfile text.

    Args:
        text: the Dockerfile's content.
        path: name used in error messages.

    Returns:
        The parsed :class:`Dockerfile`.

    Raises:
        DockerfileError: unknown instruction, missing arguments, bad JSON form,
            unknown flag, or no FROM; the message names the file and line.
    """
    logical, directives = _logical_lines(text, path)
    instructions: list[Instruction] = []
    stages: list[Stage] = []
    global_args: list[Instruction] = []
    for first, last, line in logical:
        m = re.match(r"(\S+)\s*(.*)$", line, re.S)
        assert m is not None  # logical lines are never empty
        word, rest = m.group(1), m.group(2)
        keyword = word.upper()
        if keyword not in KNOWN:
            raise _error(path, first, f"unknown instruction {word!r} (Docker knows "
                                      f"{', '.join(sorted(KNOWN))})")
        flags, rest = _split_flags(rest, keyword, path, first)
        if not rest and keyword not in ("CMD", "ENTRYPOINT"):
            raise _error(path, first, f"{keyword} needs arguments")
        json_form = None
        if rest.startswith("[") and keyword in ("RUN", "CMD", "ENTRYPOINT", "COPY", "ADD", "SHELL", "VOLUME"):
            try:
                parsed = json.loads(rest)
            except ValueError:
                parsed = None
            if isinstance(parsed, list) and all(isinstance(x, str) for x in parsed):
                json_form = parsed
            elif keyword == "SHELL":
                raise _error(path, first, "SHELL must be a JSON array of strings")
        inst = Instruction(keyword, rest, line, first, last, flags, json_form=json_form)
        if keyword == "FROM":
            parts = rest.split()
            if len(parts) not in (1, 3) or (len(parts) == 3 and parts[1].upper() != "AS"):
                raise _error(path, first, "FROM takes an image and optionally 'AS name': "
                                          f"FROM {rest!r} does not parse")
            name = parts[2].lower() if len(parts) == 3 else None
            stages.append(Stage(len(stages), name, parts[0]))
        elif not stages:
            if keyword != "ARG":
                raise _error(path, first, f"{keyword} comes before the first FROM; only ARG may")
            global_args.append(inst)
            instructions.append(inst)
            continue
        if keyword in ("COPY", "ADD") and len(inst.words()) < 2:
            raise _error(path, first, f"{keyword} needs at least one source and a destination")
        inst.stage, inst.stage_name = stages[-1].index, stages[-1].name
        stages[-1].instructions.append(inst)
        instructions.append(inst)
    if not stages:
        raise _error(path, 1, "no FROM instruction: a Dockerfile must start its first stage with FROM")
    return Dockerfile(path, instructions, stages, global_args, directives)


def parse_dockerfile(path: str | Path) -> Dockerfile:
    """Read and parse a Dockerfile from disk.

    Args:
        path: the Dockerfile.

    Returns:
        The parsed :class:`Dockerfile`.

    Raises:
        DockerfileError: the file is missing or does not parse (message names file and line).
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DockerfileError(f"{path}: no such Dockerfile; check the path and the dockerfile= argument") from None
    except UnicodeDecodeError as exc:
        raise DockerfileError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    return parse_dockerfile_text(text, str(path))


def parse_kv(inst: Instruction, env: dict[str, str]) -> dict[str, str]:
    """Key/value pairs of ENV, LABEL or ARG (``k=v`` forms, legacy ``ENV k v``), expanded.

    For ARG without a default the value is None-like: the key maps to ``""`` only
    when present in ``env``; callers handle defaults.
    """
    import shlex
    rest = inst.args
    if inst.keyword == "ENV" and "=" not in rest.split(None, 1)[0]:
        key, _, value = rest.partition(" ")
        return {key: expand(value.strip(), env)}
    try:
        words = shlex.split(rest, posix=True)
    except ValueError as exc:
        raise _error("Dockerfile", inst.line, f"{inst.keyword} does not parse: {exc}") from None
    out: dict[str, str] = {}
    for word in words:
        key, eq, value = word.partition("=")
        out[key] = expand(value, env) if eq else None  # type: ignore[assignment]
    return out
