"""Record the builds that notebook 015 studies without an engine, on the real engine.

Builds the sample app five times with BuildKit, in the article's order, in a
workspace with a run mark of its own (so no build meets the cache of an earlier
recording), and checks each result is the fact the notebook teaches before it
keeps anything:

1. ``first``:  the sample Dockerfile, no cache: every step runs;
2. ``second``: the same again: every step cached;
3. ``third``:  after ``app.py`` says "Hello universe!": ``COPY . .`` and pip run;
4. ``fourth``: the requirements-first Dockerfile (chapter 060);
5. ``fifth``:  after ``app.py`` says "Hello world!" again: only the last ``COPY`` runs.

Writes ``course_helpers/lesson/records/flask-demo.json`` with the engine's
version and the date, and removes the images it tagged (only those).

    .venv/bin/python tools/record_samples.py
"""
from __future__ import annotations

import datetime
import json
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from course_helpers import build, client, edit, workspace  # noqa: E402
from course_helpers.builder.records import find_record  # noqa: E402
from course_helpers.engine.cli import buildkit_client  # noqa: E402
from course_helpers.lesson.recorded import RECORDS, report_to_dict  # noqa: E402
from course_helpers.lesson.workspace import REQUIREMENTS_FIRST, RUN_MARK  # noqa: E402

REPOSITORY = "course-recorded"


def main() -> int:
    cli = client()
    bk = buildkit_client()
    if bk is None:
        print("No docker CLI here can run BuildKit builds; the recorded builds are BuildKit's.", file=sys.stderr)
        return 1
    version = cli.version()
    app = workspace(f"record-{uuid.uuid4().hex[:6]}")
    mark = next(line.strip() for line in (app / "requirements.txt").read_text().splitlines()
                if line.startswith(RUN_MARK))
    plan = [
        ("first", "nothing: the sample app, built with no cache", None, True),
        ("second", "nothing: the same files again", None, False),
        ("third", 'app.py now says "Hello universe!"', lambda: edit(app / "app.py", "Hello world!", "Hello universe!"), False),
        ("fourth", "the Dockerfile copies requirements.txt and runs pip before COPY . .",
         lambda: (app / "Dockerfile").write_text(REQUIREMENTS_FIRST), False),
        ("fifth", 'app.py says "Hello world!" again', lambda: edit(app / "app.py", "Hello universe!", "Hello world!"), False),
    ]
    builds, tags = [], []
    try:
        for name, story, change, no_cache in plan:
            if change:
                change()
            tag = f"{REPOSITORY}:{name}"
            print(f"building {name} ({story}) ...", flush=True)
            report = build(app, tag=tag, builder="buildkit", no_cache=no_cache, progress=False)
            tags.append(tag)
            record, _ = find_record(report)
            assert record is not None, f"{name}: the build left no record"
            builds.append({"name": name, "story": story,
                           "report": {**report_to_dict(report), "context": None},
                           "record": {**record.__dict__, "context": None}})
            print(f"  ran: {report.ran_steps}  cached: {report.cached_steps}", flush=True)
        check([b["report"] for b in builds])
    finally:
        for tag in tags:
            try:
                cli.images.remove(tag)  # only the tags this script made; the image goes when no tag is left
            except Exception as exc:  # noqa: BLE001 - report, do not hide the recording's own error
                print(f"could not remove {tag}: {exc}", file=sys.stderr)
    data = {
        "recorded_on": {
            "engine": f"Docker {version.get('Version')} (API {version.get('ApiVersion')}), "
                      f"{version.get('Os')}/{version.get('Arch')}",
            "builder": f"BuildKit through {bk.path} {bk.version}",
            "date": datetime.date.today().isoformat(),
        },
        "run_mark": mark,
        "builds": builds,
    }
    RECORDS.mkdir(parents=True, exist_ok=True)
    out = RECORDS / "flask-demo.json"
    out.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {out.relative_to(ROOT)}: {len(builds)} builds on {data['recorded_on']['engine']}")
    return 0


def check(reports: list[dict]) -> None:
    """The facts notebook 015 states; a recording that shows anything else is not kept."""
    def ran(i: int) -> list[str]:
        return [s["instruction"] for s in reports[i]["steps"] if not s["cached"] and not s["instruction"].startswith("FROM")]

    pip = "RUN pip3 install -r requirements.txt"
    assert "COPY . ." in ran(0) and pip in ran(0), ran(0)
    assert ran(1) == [], ran(1)
    assert ran(2) == ["COPY . .", pip], ran(2)
    assert ran(4) == ["COPY . ."], ran(4)


if __name__ == "__main__":
    sys.exit(main())
