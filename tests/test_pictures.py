"""The pictures (lesson/display.py) drawn from builds the parsers read from recorded logs: no engine needed.

first, second and third are BuildKit's rawjson streams of a cold, a cached and an edit build of
the tutorial's Dockerfile (tests/fixtures); fourth is the requirements-first Dockerfile of 060,
its steps as that build reported them.
"""
from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest

from course_helpers.builder.log_buildkit import parse_buildkit_rawjson
from course_helpers.builder.log_common import read_instructions
from course_helpers.builder.report import BuildReport, Step
from course_helpers.layers.images import History, Layer
from course_helpers.lesson.display import layer_stack, plot_step_times, step_grid, step_order

FIXTURES = Path(__file__).parent / "fixtures"
FROM = "FROM python:3.11-slim-bookworm"
PIP = "RUN pip3 install -r requirements.txt"


def _recorded(name: str, tag: str) -> BuildReport:
    instructions = read_instructions((FIXTURES / "simple.Dockerfile").read_text())
    steps = parse_buildkit_rawjson((FIXTURES / f"rawjson_{name}.jsonl").read_text(), instructions)
    return BuildReport("sha256:" + "0" * 64, [tag], "buildkit", sum(s.seconds for s in steps), "", steps)


@pytest.fixture
def builds() -> list[BuildReport]:
    fourth = BuildReport("sha256:" + "4" * 64, ["flask-demo:fourth"], "buildkit", 4.1, "", [
        Step(1, "0", FROM, True), Step(2, "0", "WORKDIR /usr/src/app", True),
        Step(3, "0", "COPY requirements.txt .", False, 0.1), Step(4, "0", PIP, False, 3.8),
        Step(5, "0", "COPY . .", False, 0.1)])
    return [_recorded("cold", "flask-demo:first"), _recorded("cached", "flask-demo:second"),
            _recorded("edit", "flask-demo:third"), fourth]


def _stored(output: dict) -> int:
    return len(json.dumps(output))


def test_steps_keep_dockerfile_order_when_a_step_is_inserted(builds):
    # fourth inserts COPY requirements.txt before the pip step: first's COPY . . is the same step as
    # fourth's last one, and no step of any build lands out of its own order.
    assert [ins for _, ins, _ in step_order(builds)] == [
        "WORKDIR /usr/src/app", "COPY requirements.txt .", PIP, "COPY . ."]
    for report in builds:
        mine = [s.instruction for s in report.steps if not s.is_from]
        positions = [[ins for _, ins, _ in step_order(builds)].index(i) for i in mine if i != "COPY . ."]
        assert positions == sorted(positions)


def test_grid_says_ran_or_cached_per_build(builds):
    grid = step_grid(builds)
    assert grid.builds == ["first", "second", "third", "fourth"]
    assert grid.column("second") == {"WORKDIR /usr/src/app": "CACHED", "COPY requirements.txt .": None,
                                      PIP: "CACHED", "COPY . .": "CACHED"}
    assert grid.column("third")[PIP] == "RAN" and grid.column("fourth")["COPY requirements.txt ."] == "RAN"
    text = repr(grid)
    assert re.search(r"^RUN pip3 install -r requirements.txt\s+RAN\s+CACHED\s+RAN\s+RAN$", text, re.M), text
    page = grid._repr_html_()
    assert page.count("background:#2e7d32") == sum(s == "CACHED" for _, row in grid.rows for s in row)
    assert page.count(">RAN<") == sum(s == "RAN" for _, row in grid.rows for s in row)
    assert "0x" not in text


def test_grid_of_a_multi_stage_build_names_the_stages():
    instructions = read_instructions((FIXTURES / "multistage.Dockerfile").read_text())
    steps = parse_buildkit_rawjson((FIXTURES / "rawjson_multistage.jsonl").read_text(), instructions)
    grid = step_grid([BuildReport("sha256:" + "5" * 64, ["ms:one"], "buildkit", 1.0, "", steps)])
    assert [row for row, _ in grid.rows] == ["[build] WORKDIR /src", "[build] RUN echo built > /src/out.txt",
                                             "[stage-1] COPY --from=build /src/out.txt /out.txt"]


def test_an_unnamed_stage_is_named_as_buildkit_names_it():
    """A stage without AS shows as BuildKit's log names it (stage-1), not as a bare number."""
    instructions = read_instructions((FIXTURES / "multistage.Dockerfile").read_text())
    steps = parse_buildkit_rawjson((FIXTURES / "rawjson_multistage.jsonl").read_text(), instructions)
    report = BuildReport("sha256:" + "5" * 64, ["ms:one"], "buildkit", 1.0, "", steps)
    stages = [line.split()[1] for line in report.text().splitlines()[1:]]
    assert set(stages) == {"build", "stage-1"}, report.text()
    assert "stage-1" in report._repr_html_()


def test_chart_stacks_each_build_in_its_own_order_and_shows_cached_steps(builds):
    chart = plot_step_times(builds)
    bars = chart.ax.patches
    fourth = bars[-4:]  # the last build's four steps, drawn bottom to top
    bottoms = [b.get_y() for b in fourth]
    assert bottoms == sorted(bottoms)
    colours = {b.get_facecolor()[:3] for b in fourth}
    assert len(colours) == 4  # one colour per instruction
    copy_req, pip = fourth[1], fourth[2]
    assert pip.get_height() == pytest.approx(3.8) and copy_req.get_y() < pip.get_y()
    tallest = max(b.get_y() + b.get_height() for b in bars)
    cached = [b for b in bars if b.get_hatch()]
    assert cached and all(b.get_height() >= 0.05 * 3.9 for b in cached)  # seen, though 0 s
    assert all(b.get_height() > tallest / 100 for b in cached)
    labels = [t.get_text() for t in chart.ax.get_legend().get_texts()]
    assert labels[:4] == ["WORKDIR /usr/src/app", "COPY requirements.txt .", PIP, "COPY . ."]
    assert any("from the cache" in label for label in labels)
    png = chart._repr_png_()
    assert png.startswith(b"\x89PNG")
    stored = _stored({"image/png": base64.b64encode(png).decode(), "text/plain": repr(chart)})
    assert stored < 20_000, stored
    assert "0x" not in repr(chart) and "fourth" in repr(chart)


def _history() -> History:
    rows = [  # newest first, as history() gives them (the rows of 030's first build)
        Layer("sha256:" + "b" * 64, "2026-12-04T22:33:59Z", 'CMD ["python3" "-m" "flask" "run"]', 0, True,
              "buildkit.dockerfile.v0", "dockerfile"),
        Layer("<missing>", "2026-12-04T22:33:59Z", "RUN /bin/sh -c " + PIP[4:], 5_810_000, False,
              "buildkit.dockerfile.v0", "dockerfile", "sha256:" + "3" * 64),
        Layer("<missing>", "2026-12-04T22:33:58Z", "COPY . .", 28_700, False, "buildkit.dockerfile.v0",
              "dockerfile", "sha256:" + "2" * 64),
        Layer("<missing>", "2026-12-04T22:33:58Z", "WORKDIR /usr/src/app", 16_400, False,
              "buildkit.dockerfile.v0", "dockerfile", "sha256:" + "1" * 64),
        Layer("<missing>", "2026-11-01T00:00:00Z", "", 217_000_000, False, "Imported from -", "base",
              "sha256:" + "0" * 64),
    ]
    return History(rows, image="flask-demo:first", base="python:3.11-slim-bookworm")


def test_layer_stack_tells_layers_from_config_changes():
    stack = layer_stack(_history())
    text = repr(stack)
    lines = text.splitlines()
    assert lines[0].endswith("4 rows of its Dockerfile made 3 layers; 1 only changed the image config")
    assert lines[1].split()[:2] == ["config", "only"] and "CMD" in lines[1]
    assert lines[2].split()[:2] == ["layer", "333333333333"] and "pip3 install" in lines[2]
    assert lines[4].split()[1] == "111111111111" and lines[4].endswith("WORKDIR /usr/src/app")
    assert "base image python:3.11-slim-bookworm: 1 row(s), 1 layer(s)" in lines[5]
    page = stack._repr_html_()
    assert page.count("config only, no layer") == 1 and page.count("<b>layer</b>") == 3
    assert page.index("CMD") < page.index("pip3") < page.index("WORKDIR") < page.index("base image")  # newest on top
    assert "docker history --no-trunc flask-demo:first" in text and "0x" not in text
