"""Builds the course recorded on a real engine, for learning the cache where no engine runs (Binder).

``tools/record_samples.py`` builds the sample app in the article's order on a
real engine and keeps what each build reported (its steps, cached or ran, sizes,
times) and what it saw (the Dockerfile's text, a digest of every file of the
context) in ``records/<name>.json``, with the engine's version and the date.
:func:`recorded_builds` reads them back for a folder of the learner's, so that
``predict(folder, against=...)`` and ``explain(report)`` work on them as on
builds made in this session.

The recording ran in a workspace with a run mark of its own (see
:mod:`course_helpers.lesson.workspace`), so none of its builds met the cache of
an earlier recording; the learner's folder gets the same mark, so its files are
the bytes the engine saw.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from ..builder.report import BuildReport, Step
from ..builder.records import BuildRecord, forget_context, record_from_dict, store_record
from ..errors import CourseError
from ..formatting import Html, format_seconds, table_html
from .workspace import set_run_mark

RECORDS = Path(__file__).resolve().parent / "records"


def report_to_dict(report: BuildReport) -> dict:
    """A :class:`BuildReport` as JSON-ready data (every field; a step's output lines included)."""
    return asdict(report)


def report_from_dict(item: dict) -> BuildReport:
    """A :class:`BuildReport` from :func:`report_to_dict`'s data."""
    item = dict(item)
    item["steps"] = [Step(**step) for step in item.get("steps", [])]
    return BuildReport(**item)


@dataclass
class RecordedBuilds:
    """Builds recorded on a real engine, each as its :class:`BuildReport` and the record predict/explain use.

    Attributes:
        engine: the engine they were recorded on, e.g. ``"Docker 20.10.24+dfsg1 (API 1.41), linux/amd64"``.
        date: the day they were recorded (``YYYY-MM-DD``).
        builder: how they were built, e.g. ``"BuildKit, /usr/bin/docker 20.10.24+dfsg1"``.
        names: the builds in the order they ran.
        context: the learner's folder they now describe.
    """

    engine: str
    date: str
    builder: str
    names: list[str]
    context: str
    _reports: dict[str, BuildReport]
    _records: dict[str, BuildRecord]
    _stories: dict[str, str]

    def __getitem__(self, name: str) -> BuildReport:
        """The report of build ``name`` (``builds["third"]``), as the engine gave it."""
        return self._reports[self._name(name)]

    def record(self, name: str) -> BuildRecord:
        """What build ``name`` saw (for ``predict(folder, against=builds.record("first"))``)."""
        return self._records[self._name(name)]

    def dockerfile(self, name: str) -> str:
        """The text of the Dockerfile build ``name`` used."""
        return self._records[self._name(name)].dockerfile_text

    def _name(self, name: str) -> str:
        if name not in self._reports:
            raise CourseError(f"No recorded build is called {name!r}: the recorded builds are "
                              f"{', '.join(self.names)}.")
        return name

    @property
    def provenance(self) -> str:
        """One sentence: where and when these builds really ran."""
        return f"Recorded with {self.builder} on {self.engine}, {self.date} (tools/record_samples.py)."

    def _rows(self) -> list[list[object]]:
        rows = []
        for name in self.names:
            report = self._reports[name]
            rows.append([name, ", ".join(report.tags), report.short_id, len(report.ran_steps),
                         len(report.cached_steps), format_seconds(report.seconds), self._stories[name]])
        return rows

    def __repr__(self) -> str:
        lines = [self.provenance]
        for name, tag, image, ran, cached, seconds, story in self._rows():
            lines.append(f"  {name:<7} {tag:<20} {image}  ran {ran}  cached {cached}  {seconds:>6}  {story}")
        return "\n".join(lines)

    def _repr_html_(self) -> Html:
        return table_html(["build", "tag", "image", "steps ran", "steps cached", "seconds", "what changed before it"],
                          self._rows(), title=self.provenance)


def recorded_builds(context: str | Path, name: str = "flask-demo") -> RecordedBuilds:
    """The builds the course recorded on a real engine, made to describe the folder ``context``.

    The folder's ``requirements.txt`` gets the recorded run's mark, and its build history
    is replaced by the recorded builds, in the order they ran,
    so ``explain(builds["third"])`` compares the third build with the second, as it would
    right after building them; ``predict(context, against=builds.record(...))`` compares
    the folder as it is now with any one of them.

    Args:
        context: the learner's copy of the sample app (``workspace(...)``).
        name: which set of recorded builds (a file in ``course_helpers/lesson/records/``).

    Returns:
        A :class:`RecordedBuilds`; it shows itself as a table, headed by where and when it was recorded.

    Raises:
        CourseError: no such set, or ``context`` is not a folder.

    Example:
        >>> app = workspace("015-offline")                          # doctest: +SKIP
        >>> builds = recorded_builds(app)                           # doctest: +SKIP
        >>> predict(app, against=builds.record("first"))            # doctest: +SKIP
    """
    path = RECORDS / f"{name}.json"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in RECORDS.glob("*.json"))) or "none"
        raise CourseError(f"No recorded builds are called {name!r} (the course ships: {known}).")
    folder = os.path.abspath(context)
    if not os.path.isdir(folder):
        raise CourseError(f"{folder} is not a folder: pass the workspace the recorded builds should describe.")
    data = json.loads(path.read_text())
    set_run_mark(Path(folder) / "requirements.txt", data["run_mark"])
    forget_context(folder)
    reports, records, stories, names = {}, {}, {}, []
    for build in data["builds"]:
        report = report_from_dict({**build["report"], "context": folder})
        record = record_from_dict({**build["record"], "context": folder})
        store_record(record)
        names.append(build["name"])
        reports[build["name"]], records[build["name"]] = report, record
        stories[build["name"]] = build.get("story", "")
    meta = data["recorded_on"]
    return RecordedBuilds(meta["engine"], meta["date"], meta["builder"], names, folder, reports, records, stories)
