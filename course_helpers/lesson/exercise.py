"""Grading an exercise on facts from a real build: one line per criterion, in plain words.

A chapter's check function (in :mod:`course_helpers.exercises`) builds the
learner's work, collects facts from the real build, and returns
:func:`grade`'s result.  The result says which criterion failed and what the
build showed, never only "wrong".

Example:
    >>> grade("Keep the cache", [("editing notes.md keeps every step cached", True, "all 4 steps cached")])
    PASS  Keep the cache
      ok    editing notes.md keeps every step cached (saw: all 4 steps cached)
"""
from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from ..builder.report import BuildReport
from ..errors import BuildError
from ..formatting import Html, table_html


@dataclass(frozen=True)
class Criterion:
    """One thing the exercise asks for, whether the build showed it, and what the build showed."""

    name: str
    ok: bool
    saw: str


@dataclass(frozen=True)
class ExerciseResult:
    """The graded exercise; shows as PASS/FAIL lines in a notebook (and as text for nbval)."""

    title: str
    criteria: tuple[Criterion, ...]

    @property
    def passed(self) -> bool:
        return all(c.ok for c in self.criteria)

    @property
    def failed(self) -> list[str]:
        """Names of the criteria the build did not meet."""
        return [c.name for c in self.criteria if not c.ok]

    def text(self) -> str:
        lines = [f"{'PASS' if self.passed else 'FAIL'}  {self.title}"]
        lines += [f"  {'ok   ' if c.ok else 'NOT  '} {c.name} (saw: {c.saw})" for c in self.criteria]
        return "\n".join(lines)

    __str__ = text

    def __repr__(self) -> str:  # what nbval compares
        return self.text()

    def _repr_html_(self) -> str:
        colour = "#2e7d32" if self.passed else "#c62828"
        rows = [('✅' if c.ok else '❌', c.name, Html(f"<small>{html.escape(c.saw)}</small>"))
                for c in self.criteria]
        return (f"<p><b style='color:{colour}'>{'PASS' if self.passed else 'NOT YET'}</b> "
                f"{html.escape(self.title)}</p>{table_html(('met', 'what is asked', 'what the build showed'), rows)}")


def grade(title: str, criteria: Iterable[tuple[str, bool, str]]) -> ExerciseResult:
    """Collect ``(what is asked, met?, what the build showed)`` triples into a result.

    Args:
        title: the exercise's name, as the chapter calls it.
        criteria: one triple per requirement, in the order the chapter lists them.

    Returns:
        An :class:`ExerciseResult`; ``.passed`` is True when every criterion is met.
    """
    return ExerciseResult(title, tuple(Criterion(name, bool(ok), str(saw)) for name, ok, saw in criteria))


@dataclass(frozen=True)
class NotAnswered(ExerciseResult):
    """An exercise the learner has not tried yet: no score, one line saying what to do.

    A check that meets the starter as the chapter left it returns this instead of grading it:
    grading a starter would only list failures the learner has not had a chance to avoid.
    """

    todo: str = ""

    @property
    def passed(self) -> bool:  # never a pass: there is nothing of the learner's to pass
        return False

    @property
    def failed(self) -> list[str]:
        return []

    def text(self) -> str:
        return f"{self.title}: not answered yet. {self.todo}"

    __str__ = text

    def __repr__(self) -> str:
        return self.text()

    def _repr_html_(self) -> str:
        return (f"<p><b style='color:#6d6d6d'>not answered yet</b> {html.escape(self.title)}: "
                f"{html.escape(self.todo)}</p>")


def not_answered(title: str, todo: str) -> NotAnswered:
    """The result for an untouched exercise: ``todo`` says, in one sentence, what to write where."""
    return NotAnswered(title, (), todo)


def _meaningful_lines(text: str) -> list[str]:
    """The lines that change a Dockerfile or a .dockerignore: no blank lines, no comments."""
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def untouched(path: str | Path, starter: str) -> bool:
    """Whether the learner's file is missing or says what the starter said (comments and blank lines aside).

    Args:
        path: the file the exercise asks the learner to write.
        starter: the text the chapter gave them to start from ("" when it gave none).
    """
    path = Path(path)
    if not path.is_file():
        return True
    return _meaningful_lines(path.read_text(errors="replace")) == _meaningful_lines(starter)


def build_for_check(context: str | Path, tag: str, note: str, **kwargs: Any) -> tuple[BuildReport | None, str]:
    """Build for a check, saying so in one line; a failed build becomes a sentence, not an exception.

    Args:
        context: the learner's folder.
        tag: the image name the check uses.
        note: what this build is for, e.g. ``"the first build"``.
        kwargs: passed on to :func:`~course_helpers.builder.build.build` (``dockerfile=``, ``build_args=``...).

    Returns:
        ``(report, "")`` after a build, or ``(None, the build error's first sentence)``.
    """
    from ..builder.build import build

    print(f"[check] {note} ...", flush=True)
    try:
        report = build(context, tag, progress=False, **kwargs)
    except BuildError as exc:
        return None, str(exc).splitlines()[0]
    return report, ""


def not_checked(names: Iterable[str], why: str) -> list[tuple[str, bool, str]]:
    """Criteria a check could not get to (e.g. the build failed): each NOT met, saying why."""
    return [(name, False, f"not checked: {why}") for name in names]
