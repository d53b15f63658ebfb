"""The helpers behind chapters 080-130: what the build context holds, run_command, pip's words, hadolint,
--target builds, a failed classic build, and predict()'s reason next to a "depends" step.

Tests that need the engine build under the module's own repository; the parsers are fed
recorded or hand-written lines (pip's and BuildKit's own formats).
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import docker
import pytest

from course_helpers.builder.build import build
from course_helpers.builder.log_common import context_transfer, parse_size
from course_helpers.cache.predict import simulate, verdicts
from course_helpers.builder.records import find_record
from course_helpers.dockerfile.context import ContextSnapshot, FileEntry, context_size
from course_helpers.dockerfile.lint import lint
from course_helpers.dockerfile.parse import parse_dockerfile_text
from course_helpers.errors import BuildError, CourseError
from course_helpers.lesson.clutter import add_clutter, simulate_commit
from course_helpers.lesson.pip import pip_activity
from course_helpers.lesson.run import run_command

pytestmark = pytest.mark.builds  # full tier: the notebooks show these facts in the quick one

FIXTURES = Path(__file__).parent / "fixtures"
BASE = "python:3.11-slim-bookworm"


# ---------------------------------------------------------------- parsers (no engine)

def test_context_transfer_reads_the_build_context_step_not_the_dockerignore_step():
    log = (FIXTURES / "plain_cold.txt").read_text()
    # the fixture's "[internal] load .dockerignore" also says "transferring context: 2B"
    assert "transferring context: 2B" in log
    assert context_transfer(log) == 524


def test_context_transfer_takes_the_last_progress_line_and_decimal_units():
    log = "\n".join(["#6 [internal] load build context", "#6 transferring context: 12.10MB 0.5s",
                     "#6 transferring context: 34.36MB 1.2s done", "#6 DONE 1.4s"])
    assert context_transfer(log) == 34_360_000
    assert parse_size("1.05kB") == 1050 and parse_size("7B") == 7 and parse_size("done") is None


def test_context_transfer_reads_the_build_context_step_in_rawjson_too():
    raw = (FIXTURES / "rawjson_cold.jsonl").read_text()  # buildx 0.29.1, Docker 28.5.2
    statuses = [st for line in raw.splitlines() if line.startswith("{")
                for st in json.loads(line).get("statuses") or [] if st.get("id") == "transferring context:"]
    assert {st.get("current") for st in statuses} >= {2}  # the .dockerignore's, as in plain_cold.txt
    assert context_transfer(raw) == max(st.get("current") or 0 for st in statuses) > 2
    assert context_transfer("#1 [internal] load build definition from Dockerfile\n") is None


def test_pip_activity_reads_pip_23_and_newer_pips():
    lines = ["Collecting flask==2.3.1",
             "  Downloading Flask-2.3.1-py3-none-any.whl (96 kB)",
             "  Downloading flask-2.3.1-py3-none-any.whl.metadata (3.7 kB)",  # pip 24+: metadata only
             "  Using cached werkzeug-3.1.9-py3-none-any.whl (228 kB)",
             "  File was already downloaded /root/.cache/wheels/click-8.5.1-py3-none-any.whl",
             "Successfully installed Werkzeug-3.1.9 click-8.5.1 flask-2.3.1"]
    activity = pip_activity(lines)
    assert activity.downloaded == ("Flask-2.3.1-py3-none-any.whl",)
    assert activity.reused == ("werkzeug-3.1.9-py3-none-any.whl", "click-8.5.1-py3-none-any.whl")
    assert activity.installed == ("Werkzeug-3.1.9", "click-8.5.1", "flask-2.3.1")
    assert activity.summary() == "pip downloaded 1 package file(s) and reused 2 from a cache"


def test_steps_carry_what_they_printed():
    from course_helpers.builder.log_buildkit import parse_buildkit_plain

    steps = parse_buildkit_plain((FIXTURES / "plain_cold.txt").read_text())
    pip = next(s for s in steps if "pip3 install" in s.instruction)
    assert pip.output[0] == "Collecting flask==2.3.1"
    assert len(pip_activity(pip).downloaded) == 7
    assert all(not s.output for s in steps if s.cached)


def test_a_copy_that_runs_either_way_names_its_own_change_not_the_stage():
    """After a COPY --from that "depends", a COPY whose own file changed runs whatever the stage writes."""
    text = (f"FROM {BASE} AS build\nCOPY lib.txt /lib.txt\nRUN cut -c1-3 /lib.txt > /artifact\n"
            f"FROM {BASE}\nCOPY --from=build /artifact /artifact\nCOPY app.py /app.py\n")
    df = parse_dockerfile_text(text)

    def snap(lib: str, app: str) -> ContextSnapshot:
        return ContextSnapshot("/ctx", {"lib.txt": FileEntry(lib, 0o644), "app.py": FileEntry(app, 0o644)})

    old, new = snap("lib-v1", "app-v1"), snap("lib-v2", "app-v2")
    found = verdicts(simulate(df, new, "buildkit"), simulate(df, new, "buildkit", True),
                     simulate(df, old, "buildkit"), simulate(df, old, "buildkit", True), False, True)
    by_instruction = dict(zip([s.instruction for s in simulate(df, new, "buildkit")], found))
    assert by_instruction["COPY --from=build /artifact /artifact"][0] is None  # depends
    cached, reason = by_instruction["COPY app.py /app.py"]
    assert cached is False and reason.startswith("app.py content changed"), reason


def test_simulate_follows_the_target():
    text = f"FROM {BASE} AS build\nRUN echo a\nFROM {BASE}\nCOPY --from=build / /x\nRUN echo b\n"
    df = parse_dockerfile_text(text)
    for builder in ("buildkit", "classic"):
        stages = {s.stage for s in simulate(df, None, builder, target="build")}
        assert stages == {"build"}, builder


# ---------------------------------------------------------------- hadolint (real binary, no engine)

def test_lint_names_the_articles_two_findings_and_their_chapters(tmp_path):
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(f"FROM {BASE}\nWORKDIR /usr/src/app\nCOPY . .\nRUN pip3 install -r requirements.txt\n"
                          'CMD "python3 -m flask run --host=0.0.0.0"\n')
    report = lint(tmp_path)
    assert report.codes == ["DL3042", "DL3025"]
    assert [f.chapter for f in report] == ["100-multi-stage", "020-first-dockerfile"]
    assert report[1].instruction == 'CMD "python3 -m flask run --host=0.0.0.0"' and report[1].line == 5
    assert "020-first-dockerfile.ipynb" in report._repr_html_()
    assert str(report).startswith(f"hadolint on {tmp_path.name}/Dockerfile: 2 finding(s)")
    assert lint(tmp_path, ignore=("DL3042", "DL3025")).codes == []


def test_lint_of_a_missing_file_is_a_sentence(tmp_path):
    with pytest.raises(CourseError, match="There is no Dockerfile at"):
        lint(tmp_path / "nothing-here")


# ---------------------------------------------------------------- BuildKit's build checks

def _checking_client():
    from course_helpers.engine.cli import buildkit_client, describe_probes

    cli = buildkit_client()
    if cli is None or not cli.offers("--check"):
        pytest.skip(f"no docker client here has `buildx build --check` (tried: {describe_probes()})")
    return cli


def test_build_checks_and_hadolint_on_the_articles_dockerfile(repo, tmp_path, monkeypatch):
    from course_helpers.dockerfile.lint import build_checks, compare_linters
    from course_helpers.exercises.linting import ARTICLE_DOCKERFILE

    _checking_client()
    monkeypatch.chdir(tmp_path)
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "Dockerfile").write_text(ARTICLE_DOCKERFILE)
    checks = build_checks(tmp_path / "app")
    assert [(c.line, c.rule, c.instruction) for c in checks] == [
        (9, "JSONArgsRecommended", 'CMD "python3 -m flask run --host=0.0.0.0"')]
    assert checks[0].url.startswith("https://docs.docker.com/") and checks.unavailable is None
    assert str(checks).startswith("BuildKit's build checks on app/Dockerfile: 1 finding(s)")
    assert str(checks).endswith("on your terminal:\n  $ docker buildx build --check app")
    assert "JSONArgsRecommended</a>" in checks._repr_html_()
    # Both see the quoted CMD; only hadolint knows pip's cache.
    assert compare_linters(tmp_path / "app").rows() == [
        ["7", "RUN pip3 install -r requirements.txt", "DL3042", "-"],
        ["9", 'CMD "python3 -m flask run --host=0.0.0.0"', "DL3025", "JSONArgsRecommended"]]


def test_build_checks_find_their_own_rules_and_a_dockerfile_that_does_not_parse(repo, tmp_path):
    from course_helpers.dockerfile.lint import build_checks

    _checking_client()
    (tmp_path / "Dockerfile").write_text(f"FROM {BASE} as base\nENV A 1\nWORKDIR app\nCMD python3\n")
    assert build_checks(tmp_path).rules == ["FromAsCasing", "LegacyKeyValueFormat", "WorkdirRelativePath",
                                            "JSONArgsRecommended"]
    (tmp_path / "broken.Dockerfile").write_text(f"FROM {BASE}\nRUNN echo hi\n")
    broken = build_checks(tmp_path / "broken.Dockerfile", context=tmp_path)
    assert broken.rules == [] and "line 2: unknown instruction: RUNN" in broken.error
    assert "docker buildx build --check -f " in str(broken)
    with pytest.raises(CourseError, match="There is no Dockerfile at"):
        build_checks(tmp_path / "nothing-here")


def test_build_checks_without_check_are_one_sentence(tmp_path, monkeypatch):
    """A client without --check (20.10, buildx 0.13; run for real in test_build's full tier): one sentence."""
    import dataclasses

    import course_helpers.dockerfile.lint as lint_module
    from course_helpers.engine.cli import BuildkitClient

    (tmp_path / "Dockerfile").write_text(f"FROM {BASE}\nCMD python3\n")
    older = [BuildkitClient("/usr/bin/docker", "20.10.24+dfsg1", "builtin", "plain"),
             BuildkitClient("/usr/bin/docker", "26.1.5+dfsg1", "buildx", "plain", options=frozenset({"--load"}))]
    for client in older + [None]:
        monkeypatch.setattr(lint_module, "buildkit_client", lambda client=client: client)
        checks = lint_module.build_checks(tmp_path)
        assert checks == [] and checks.unavailable and str(checks) == checks.unavailable
        assert checks.unavailable.count(". ") == 0 and checks.unavailable.endswith(".")
        side = lint_module.compare_linters(tmp_path)
        assert side.rows() == [["2", "CMD python3", "DL3025", "-"]] and str(side).endswith(checks.unavailable)
    monkeypatch.setattr(lint_module, "buildkit_client", lambda: older[0])
    assert "docker client here (docker 20.10.24+dfsg1, no buildx) does not have" in \
        lint_module.build_checks(tmp_path).unavailable
    assert dataclasses.replace(older[1], options=frozenset({"--check"})).offers("--check") and not older[1].offers(
        "--check")


# ---------------------------------------------------------------- the engine

def test_context_size_lists_exactly_what_the_engine_copies(repo, tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "app.py").write_text("print('hi')\n")
    (ctx / "Dockerfile").write_text(f"FROM {BASE}\nWORKDIR /ctx\nCOPY . .\n")
    add_clutter(ctx, history_mb=1)
    (ctx / ".dockerignore").write_text(".git\n.venv\n**/*.log\n**/__pycache__\ndocs/**\n!docs/README.md\n"
                                       "data/raw/\n")
    counted = context_size(ctx)
    report = build(ctx, f"{repo}:context", progress=False)
    found = run_command(report, "cd /ctx && find . ! -type d | sort", network=False)
    assert found.ok
    assert found.output.split() == sorted("./" + name for name in counted.files)
    assert "docs/README.md" in counted.files and "docs/todo.md" not in counted.files
    # BuildKit sends every byte counted, plus a little metadata per file (name, mode, times).
    assert counted.bytes <= report.context_bytes <= counted.bytes * 1.01 + 128 * counted.count


def test_a_commit_changes_only_files_under_git(tmp_path):
    (tmp_path / "app.py").write_text("x = 1\n")
    add_clutter(tmp_path, history_mb=1)
    before = context_size(tmp_path)
    changed = simulate_commit(tmp_path)
    after = context_size(tmp_path)
    assert all(path.startswith(".git/") for path in changed)
    assert "git commit" in repr(changed) and "No docker command" in str(before)
    assert set(after.files) - set(before.files) == {p for p in changed if p.startswith(".git/objects/")}


def test_run_command_returns_output_and_exit_code_and_removes_its_container(engine, base):
    result = run_command(BASE, "echo out; echo err >&2; exit 3", network=False)
    assert (result.exit_code, result.ok) == (3, False)
    assert "out" in result.output and "err" in result.output
    assert "(exit code 3)" in repr(result)
    # The same command as a learner types it, with the flags the course used.
    assert repr(result).endswith(f"$ docker run --rm --network none {BASE} sh -c 'echo out; echo err >&2; exit 3'")
    listed = run_command(BASE, ["python3", "-c", "print(6 * 7)"])
    assert str(listed) == "42"
    from course_helpers.config import LABEL_CONTAINER
    assert engine.containers.list(all=True, filters={"label": f"{LABEL_CONTAINER}=run_command"}) == []


def test_run_command_stops_a_command_that_hangs(engine, base):
    with pytest.raises(CourseError, match="ran longer than 2 s"):
        run_command(BASE, "sleep 60", timeout=2, network=False)
    from course_helpers.config import LABEL_CONTAINER
    assert engine.containers.list(all=True, filters={"label": f"{LABEL_CONTAINER}=run_command"}) == []


def test_target_builds_one_stage_and_is_not_the_next_builds_comparison(repo, tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "lib.txt").write_text(os.urandom(8).hex())
    (ctx / "Dockerfile").write_text(f"FROM {BASE} AS build\nCOPY lib.txt /lib.txt\n"
                                    f"FROM {BASE}\nCOPY --from=build /lib.txt /copied.txt\n")
    full = build(ctx, f"{repo}:full", progress=False)
    stage = build(ctx, f"{repo}:stage", target="build", progress=False)
    assert {s.stage for s in stage.steps} == {"build"} and stage.target == "build"
    assert run_command(stage, "cat /lib.txt", network=False).ok
    assert not run_command(stage, "test -e /copied.txt", network=False).ok
    again = build(ctx, f"{repo}:full", progress=False)
    _, previous = find_record(again)
    assert previous is not None and previous.image_id == full.image_id and previous.target is None


def test_a_failed_classic_build_leaves_no_intermediate_image(repo, engine, tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "requirements.txt").write_text(os.urandom(8).hex())  # new bytes: the COPY commits a new image
    (ctx / "Dockerfile").write_text(f"FROM {BASE}\nCOPY requirements.txt /r.txt\n"
                                    "RUN --mount=type=cache,target=/c true\n")
    with pytest.raises(BuildError, match=r"the classic builder cannot run --mount \(its own words: \"the --mount "
                                         r"option requires BuildKit") as info:
        build(ctx, f"{repo}:classic", builder="classic", progress=False)
    # The COPY step committed an image (" ---> <id>" after it in the log); the failed build removed it.
    tail = info.value.log_tail.splitlines()
    at = next(i for i, line in enumerate(tail) if line.startswith("Step 2/"))
    made = re.match(r"^ ---> ([0-9a-f]{12})$", tail[at + 1]).group(1)
    with pytest.raises(docker.errors.ImageNotFound):
        engine.images.get(made)


def test_an_unknown_flag_is_named_with_what_to_do(repo, tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "a.txt").write_text("a")
    (ctx / "Dockerfile").write_text(f"FROM {BASE}\nCOPY --lnik a.txt /a.txt\n")
    # 20.10 says "Unknown flag: lnik"; Docker 28 "unknown flag: --lnik (did you mean link?)".
    with pytest.raises(BuildError, match=r"line 2 \((Unknown flag: lnik|unknown flag: --lnik, did you mean link\?)\): "
                                         r"this engine's Dockerfile reader does not know --lnik "):
        build(ctx, f"{repo}:flag", progress=False)


def test_a_step_named_by_a_concurrent_build_is_put_back_in_its_stage():
    """BuildKit may print a vertex shared with another build under that build's name ([2/4] in a 5-step stage)."""
    from course_helpers.builder.log_buildkit import parse_buildkit_plain
    from course_helpers.builder.log_common import read_instructions

    dockerfile = (f"FROM {BASE} AS builder\nWORKDIR /src\nRUN echo wheels\n"
                  f"FROM {BASE}\nWORKDIR /usr/src/app\nCOPY --from=builder /src /src\nCOPY . .\n")
    log = "\n".join(["#4 [builder 1/3] FROM docker.io/library/python:3.11-slim-bookworm", "#4 DONE 0.0s",
                     "#5 [2/4] WORKDIR /usr/src/app", "#5 CACHED",
                     "#6 [builder 2/3] WORKDIR /src", "#6 CACHED",
                     "#7 [builder 3/3] RUN echo wheels", "#7 0.2 wheels", "#7 DONE 0.3s",
                     "#8 [stage-1 3/4] COPY --from=builder /src /src", "#8 CACHED",
                     "#9 [stage-1 4/4] COPY . .", "#9 DONE 0.1s"])
    steps = parse_buildkit_plain(log, read_instructions(dockerfile))
    rows = [(s.stage, s.index, s.instruction) for s in steps if not s.is_from]
    assert ("1", 2, "WORKDIR /usr/src/app") in rows
    assert all(stage in ("builder", "1") for stage, _, _ in rows)
