"""predict() and explain() against the real engine, with both builders.

Each scenario is a Dockerfile, a context and an edit.  The context carries a
unique marker (a LABEL for classic, a file read by the first RUN for BuildKit,
whose cache outlives images), so every scenario starts cold and never meets a
cache an earlier run left.  FROM rows are not compared: the builders report
FROM's cache state inconsistently (see docs/cache-rules.md).
"""
from __future__ import annotations

import os
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

from course_helpers.dockerfile.context import record_context_snapshot

BASE = "FROM python:3.11-slim-bookworm"


def _write(ctx: Path, name: str, text: str) -> None:
    (ctx / name).parent.mkdir(parents=True, exist_ok=True)
    (ctx / name).write_text(text)


def _dockerfile(body: str, marker: str) -> str:
    # The marker goes into the first RUN (BuildKit) and a LABEL (classic), so nothing is cached from before.
    return body.replace("@M@", marker)


SIMPLE = f"""{BASE}
LABEL marker=@M@
RUN echo @M@ > /marker
ENV GREETING=hello
WORKDIR /app
COPY requirements.txt .
RUN cat requirements.txt > /reqs
ARG VERSION=1
COPY . .
RUN echo version $VERSION && ls -la
CMD ["python3", "app.py"]
"""
IGNORE = "*.log\ndocs/**\n!docs/keep.md\n"


@dataclass
class Scenario:
    name: str
    edit: Callable[[Path, str], None]
    expect_file: str | dict | None = None  # what explain() must name for the first missed step (per builder)
    args_before: dict | None = None
    args_after: dict | None = None
    dockerfile: str = SIMPLE
    target: str | None = None  # --target, for both builds
    expect_after: str | None = None  # what explain() must say of every missed step after the first


def _edit_dockerfile(old: str, new: str) -> Callable[[Path, str], None]:
    def edit(ctx: Path, marker: str) -> None:
        text = (ctx / "Dockerfile").read_text()
        assert old in text
        _write(ctx, "Dockerfile", text.replace(old, new))
    return edit


MULTI = f"""{BASE} AS build
LABEL marker=@M@
RUN echo @M@ > /marker
COPY lib.txt /src/lib.txt
RUN cp /src/lib.txt /artifact
{BASE}
LABEL marker=@M@
# Not the same RUN as in stage build: BuildKit would run identical steps once and
# report them under either stage, as it pleases (docs/cache-rules.md, finding 19).
RUN echo @M@ final > /marker
COPY app.py /app.py
COPY --from=build /artifact /artifact
RUN cat /artifact
"""

# A build stage whose output does not change when its input does: the copy stays cached (finding 12).
SAME_BYTES = f"""{BASE} AS build
LABEL marker=@M@
RUN echo @M@ > /marker
COPY lib.txt /src/lib.txt
RUN cut -c1-3 /src/lib.txt > /artifact
{BASE}
LABEL marker=@M@
RUN echo @M@ final > /marker
COPY --from=build /artifact /artifact
RUN cat /artifact
"""

# --target a middle stage: BuildKit builds only what `middle` needs (not `unrelated`, not `final`);
# the classic builder builds every stage up to `middle`, `unrelated` included.
TARGET = f"""{BASE} AS base
LABEL marker=@M@
RUN echo @M@ > /marker
COPY lib.txt /lib.txt
{BASE} AS unrelated
LABEL marker=@M@
RUN echo @M@ unrelated > /marker
COPY app.py /app.py
FROM base AS middle
COPY app.py /app.py
RUN cat /lib.txt /app.py > /both
{BASE} AS final
COPY --from=middle /both /both
RUN cat /both
"""

# Two stages with the very same step on the same base: BuildKit runs it once (finding 19).
SHARED = f"""{BASE} AS one
RUN echo @M@ > /marker
COPY lib.txt /lib.txt
{BASE} AS two
RUN echo @M@ > /marker
COPY app.py /app.py
COPY --from=one /lib.txt /lib.txt
"""

SCENARIOS = [
    Scenario("content edit", lambda c, m: _write(c, "app.py", "print('hello universe')\n"), "app.py"),
    Scenario("touch only", lambda c, m: os.utime(c / "app.py", (1e9, 1e9))),
    Scenario("chmod", lambda c, m: os.chmod(c / "app.py", 0o755), "app.py"),
    Scenario("edit an ignored file", lambda c, m: _write(c, "debug.log", "more noise\n")),
    Scenario("new file picked up by COPY . .", lambda c, m: _write(c, "extra.py", "x = 1\n"), "extra.py"),
    Scenario("build argument changed", lambda c, m: None, "VERSION", {"VERSION": "1"}, {"VERSION": "2"}),
    Scenario("ENV value changed", _edit_dockerfile("GREETING=hello", "GREETING=hi"), "GREETING"),
    Scenario("comment and whitespace in the Dockerfile",
             _edit_dockerfile("ENV GREETING=hello\n", "# say hello\nENV GREETING=hello   \n\n"),
             # Buildah compares ENV as written: the trailing spaces count (docs/cache-rules.md, 6b).
             {"buildkit": None, "classic": None, "buildah": "the line as written changed"}),
    Scenario("reordered instructions",
             _edit_dockerfile("ARG VERSION=1\nCOPY . .\n", "COPY . .\nARG VERSION=1\n"),
             # BuildKit: ARG is no step and COPY does not see build args, so nothing misses.
             {"classic": "COPY . .", "buildah": "COPY . .", "buildkit": None}),
    Scenario("multi-stage, first stage rebuilt", lambda c, m: _write(c, "lib.txt", "lib v2\n"), "lib.txt",
             dockerfile=MULTI),
    Scenario("multi-stage, rebuilt stage writes the same bytes", lambda c, m: _write(c, "lib.txt", "lib v2\n"),
             "lib.txt", dockerfile=SAME_BYTES),
    Scenario("multi-stage, a step shared by two stages", lambda c, m: _write(c, "app.py", "print('v2')\n"),
             "app.py", dockerfile=SHARED),
    Scenario("--target a middle stage", lambda c, m: _write(c, "app.py", "print('v2')\n"), "app.py",
             dockerfile=TARGET, target="middle"),
    Scenario("an inserted instruction",
             _edit_dockerfile("WORKDIR /app\n", "WORKDIR /app\nRUN echo inserted > /inserted\n"),
             "a new instruction", expect_after="a new instruction before this step: `RUN echo inserted"),
    Scenario("an inserted LABEL",
             _edit_dockerfile("WORKDIR /app\n", "WORKDIR /app\nLABEL course.stage=070\n"),
             # BuildKit: LABEL is no step and changes no filesystem, so nothing misses.
             {"classic": "a new instruction", "buildah": "a new instruction", "buildkit": None},
             expect_after="a new instruction before this step: `LABEL course.stage=070`"),
    Scenario("a removed instruction", _edit_dockerfile("RUN cat requirements.txt > /reqs\n", ""),
             "an instruction removed before this step: `RUN cat requirements.txt > /reqs`",
             expect_after="an instruction removed before this step: `RUN cat requirements.txt > /reqs`"),
    Scenario("a moved instruction",
             _edit_dockerfile("RUN cat requirements.txt > /reqs\nARG VERSION=1\nCOPY . .\n",
                              "ARG VERSION=1\nCOPY . .\nRUN cat requirements.txt > /reqs\n"),
             "moved", expect_after="moved"),
]


@pytest.fixture
def make_context(tmp_path: Path):
    def make(dockerfile: str) -> tuple[Path, str]:
        marker = uuid.uuid4().hex[:12]
        ctx = tmp_path / "ctx"
        _write(ctx, "Dockerfile", _dockerfile(dockerfile, marker))
        _write(ctx, ".dockerignore", IGNORE + "Dockerfile\n")
        _write(ctx, "app.py", "print('hello world')\n")
        _write(ctx, "requirements.txt", "flask==2.3.1\n")
        _write(ctx, "lib.txt", "lib v1\n")
        _write(ctx, "debug.log", "noise\n")
        _write(ctx, "docs/keep.md", "kept\n")
        _write(ctx, "docs/skip.md", "skipped\n")
        os.chmod(ctx / "app.py", 0o644)
        return ctx, marker
    return make


@pytest.fixture
def built_tags(engine):
    tags: list[str] = []
    before = {img.id for img in engine.images.list(filters={"dangling": True})}
    yield tags
    for name in tags:  # tags and image ids this test made; nothing else
        subprocess.run(["docker", "rmi", "-f", name], capture_output=True)
    # The classic builder leaves an untagged image for each stage the final one copies from;
    # remove those this test made (new since it started, and carrying its marker in their history).
    markers = [t.split(":", 1)[1] for t in tags if t.startswith("course-test-predict:")]
    for img in engine.images.list(filters={"dangling": True}):
        if img.id in before:
            continue
        steps = " ".join(row.get("CreatedBy", "") for row in img.history())
        if any(m in steps for m in markers):
            engine.images.remove(img.id, force=True)


def _build(ctx: Path, tag: str, builder: str, args: dict | None, target: str | None = None):
    from course_helpers.builder.build import build
    report = build(ctx, tag, builder=builder, build_args=args, target=target, progress=False)
    record_context_snapshot(report)  # idempotent if build() already records it
    return report


def _rows(steps) -> list[tuple[str, str, bool]]:
    return [(s.stage, " ".join(s.instruction.split()), s.cached) for s in steps
            if not s.instruction.upper().startswith("FROM")]


@pytest.mark.parametrize("builder", ["buildkit", "classic"])
@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_prediction_matches_real_build(engine, make_context, built_tags, builder: str, scenario: Scenario):
    check_scenario(make_context, built_tags, builder, scenario)


def check_scenario(make_context, built_tags: list[str], builder: str, scenario: Scenario) -> None:
    """Build, edit, predict, build again on the engine in use; the prediction and explain() must match the build.

    tests/test_podman.py runs the same scenarios with Buildah.
    """
    from course_helpers.cache.explain import explain
    from course_helpers.cache.predict import predict

    ctx, marker = make_context(scenario.dockerfile)
    tag = f"course-test-predict:{marker}"
    built_tags.append(tag)
    first = _build(ctx, tag, builder, scenario.args_before, scenario.target)
    scenario.edit(ctx, marker)
    prediction = predict(ctx, against=first, builder=builder, build_args=scenario.args_after,
                         target=scenario.target)
    second = _build(ctx, tag, builder, scenario.args_after, scenario.target)
    built_tags += [first.image_id, second.image_id]  # the first image is untagged once the second takes the tag

    actual = _rows(second.steps)
    # A step BuildKit shares between stages is printed once, under whichever stage's label the
    # solver met first (it varies from run to run): compare shared steps without their stage.
    shared = {" ".join(p.instruction.split()) for p in prediction.steps if p.reason.startswith("the same step as")}
    predicted = _rows(prediction.steps)
    if shared:
        def unlabelled(rows):
            return sorted({("*" if i in shared else s, i, c) for s, i, c in rows}, key=str)
        actual, predicted = unlabelled(actual), unlabelled(predicted)
    # "depends" (None) is the honest answer for a step that hangs on what a re-run stage writes:
    # it matches either outcome, and explain() must then say which way it went.
    outcome = {(s, i): c for s, i, c in actual}
    resolved = [(s, i, outcome.get((s, i)) if c is None else c) for s, i, c in predicted]
    assert sorted(resolved) == sorted(actual), f"\n{prediction.text()}\n--- real build:\n" + "\n".join(
        f"{'CACHED' if c else 'ran   '} [{s}] {i}" for s, i, c in actual)
    depends = {(s, i) for s, i, c in predicted if c is None}

    explanation = explain(second, against=first)
    assert len(explanation.steps) == len(second.steps)
    missed = [s for s in explanation.steps if not s.cached and not s.instruction.upper().startswith("FROM")]
    for s in explanation.steps:
        if (s.stage, " ".join(s.instruction.split())) in depends:
            assert s.reason and "the re-run stage wrote" in s.reason, explanation.text()
        else:
            assert (s.reason is None) == s.cached
    expect = scenario.expect_file
    if isinstance(expect, dict):
        expect = expect[builder]
    if expect is None:
        assert not missed, explanation.text()
    else:
        assert expect in missed[0].reason, explanation.text()
        assert all(s.reason for s in missed)
        if scenario.expect_after:
            assert all(scenario.expect_after in s.reason for s in missed[1:]), explanation.text()
