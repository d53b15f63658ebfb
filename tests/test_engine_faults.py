"""Engine faults are the engine's, not the Dockerfile's; the unpack race (moby/buildkit#6521) is built again once.

Without an engine: the classification of BuildKit's own output of the unpack race
(``tests/fixtures/{plain,rawjson}_unpack_race.*``, recorded from a private Docker 28
engine on the containerd store while :mod:`unpack_fault` made the fault happen) and of a
full disk while unpacking (``*_disk_full.*``, the same engine on a 700 MB tmpfs), and
of the recorded Dockerfile failures, which stay the Dockerfile's.

On a private Docker 28 engine on the containerd store (the ``full`` tier), with
:class:`unpack_fault.UnpackFault` stopping the engine's unpack just before it lays a
layer on a snapshot it has only checked, and removing images or collecting garbage
then, as the race does:

* a rebuild under the same tag keeps the old image's snapshots, so the collector
  takes nothing from under it; the same rebuild by the docker CLI fails;
* a build whose unpack fails once is built again, says so in its output, and
  reports the steps the first try ran as ran;
* a build whose unpack fails twice ends in one sentence naming the engine's fault,
  an :class:`~course_helpers.errors.EngineFault`, leaving no image or container behind.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from course_helpers.builder import faults
from course_helpers.builder.build import _build_error
from course_helpers.builder.log_buildkit import PlainParser, RawjsonParser
from course_helpers.builder.log_classic import ClassicParser
from course_helpers.config import BASE_IMAGE, LABEL_CONTAINER
from course_helpers.errors import BuildError, EngineFault
from unpack_fault import APPLY_LAYERS, At, UnpackFault, go_function_address

FIXTURES = Path(__file__).parent / "fixtures"


def _parsed(parser, name: str):
    lines = (FIXTURES / name).read_text().splitlines()
    for line in lines:
        parser.feed(line)
    return parser.failure(), lines


# --- no engine: the recorded output ------------------------------------------------------------------

@pytest.mark.parametrize("parser, name", [(PlainParser, "plain_unpack_race.txt"),
                                          (RawjsonParser, "rawjson_unpack_race.jsonl")])
def test_the_unpack_race_is_named_from_buildkits_own_output(parser, name, tmp_path):
    failure, lines = _parsed(parser(), name)
    assert failure is not None and failure.step is None and failure.phase == "exporting to image"
    fault = faults.engine_fault(failure, lines)
    assert fault is not None and fault.kind == faults.UNPACK_RACE and fault.retry
    assert fault.words.startswith("failed to prepare extraction snapshot \"extract-")
    error = _build_error(failure, lines, "docker buildx build ...", tmp_path, "Dockerfile", 1,
                         doing="building flask-demo:first")
    assert isinstance(error, EngineFault) and not isinstance(error, BuildError)
    sentence = error.args[0]
    assert "\n" not in sentence and "moby/buildkit#6521" in sentence
    assert "not a problem in your Dockerfile" in sentence and "fix the" not in sentence
    assert "restart Docker" in sentence and "building flask-demo:first" in sentence
    assert "parent snapshot sha256:" in sentence and not any(len(w) > 80 for w in sentence.split())


@pytest.mark.parametrize("parser, name", [(PlainParser, "plain_disk_full.txt"),
                                          (RawjsonParser, "rawjson_disk_full.jsonl")])
def test_a_full_disk_while_unpacking_is_the_engines_disk(parser, name, tmp_path):
    """Recorded from a private engine whose data root was a 700 MB tmpfs, building a 150 MB RUN layer."""
    failure, lines = _parsed(parser(), name)
    assert failure is not None and failure.step is None and failure.phase == "exporting to image"
    fault = faults.engine_fault(failure, lines)
    assert fault is not None and fault.kind == faults.DISK_FULL and not fault.retry
    error = _build_error(failure, lines, "docker buildx build ...", tmp_path, "Dockerfile", 1,
                         doing="building disk:full")
    assert isinstance(error, EngineFault) and not isinstance(error, BuildError)
    assert error.args[0].startswith("The engine ran out of disk space while building disk:full: free some")


@pytest.mark.parametrize("parser, name, dockerfile_words", [
    (PlainParser, "plain_failed.txt", "pip could not get the packages"),
    (PlainParser, "plain_missing_copy.txt", "a file that COPY names is not in the build context"),
    (PlainParser, "plain_syntax.txt", "has an error on line 3"),
    (ClassicParser, "classic_failed.jsonl", "pip could not get the packages"),
    (ClassicParser, "classic_missing_copy.jsonl", "a file that COPY names is not in the build context"),
    (ClassicParser, "classic_syntax.jsonl", "has an error on line 3"),
])
def test_a_dockerfiles_own_failure_is_no_engine_fault(parser, name, dockerfile_words, tmp_path):
    failure, lines = _parsed(parser(), name)
    assert faults.engine_fault(failure, lines) is None
    error = _build_error(failure, lines, "docker build ...", tmp_path, "Dockerfile", 1)
    assert isinstance(error, BuildError) and dockerfile_words in error.args[0]


# --- a private Docker 28 engine on the containerd store ---------------------------------------------------

@pytest.fixture(scope="module")
def containerd28():
    """A private Docker 28 engine on the containerd image store, with the base image; the course's helpers use it."""
    from course_helpers.engine import client as client_module
    from course_helpers.engine.base_image import ensure_base_image
    from course_helpers.engine.daemon import start_private_engine

    if os.geteuid() != 0 or not shutil.which("iptables"):
        pytest.skip("a private engine needs root and iptables (./course setup installs it), "
                    "and this machine lacks them")
    missing = UnpackFault.missing()
    if missing:
        pytest.skip(f"stopping the engine's unpack at the racy moment needs {missing}, which this machine lacks")
    engine = start_private_engine("snfault", release="docker28", store="containerd", progress=None)
    try:
        try:
            go_function_address(int((engine.exec_root / "dockerd.pid").read_text()), APPLY_LAYERS)
        except LookupError as exc:
            pytest.skip(f"the private engine's dockerd cannot be stopped mid-unpack: {exc}")
        ensure_base_image(cli=engine.client(), pull=False, progress=None)
        with pytest.MonkeyPatch.context() as mp:
            for key, value in engine.client_env.items():
                mp.setenv(key, value)
            client_module.reset()
            yield engine
        client_module.reset()
    finally:
        engine.stop(wipe=True)


def _context(tmp_path: Path, body: str) -> Path:
    ctx = tmp_path / uuid.uuid4().hex[:8]
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM {BASE_IMAGE}\n{body}")
    (ctx / "x.txt").write_text("1\n")
    return ctx


def _ref(tag: str) -> str:
    return f"docker.io/library/{tag}"


def _holders(engine) -> list[str]:
    from course_helpers.engine.snapshots import settle

    settle()  # build() removes its holder beside the next step
    return [c.name for c in engine.client().containers.list(all=True, filters={"label": f"{LABEL_CONTAINER}=hold"})]


@pytest.mark.full
def test_a_rebuild_under_one_tag_keeps_the_old_images_snapshots_while_it_unpacks(containerd28, tmp_path):
    from course_helpers import build

    mark = uuid.uuid4().hex[:8]
    ctx = _context(tmp_path, f"RUN echo {mark} > /one\nRUN echo two > /two\nCOPY x.txt /x.txt\n")
    tag = f"ct-unpack-{mark}:same"
    build(ctx, tag, progress=False)
    (ctx / "x.txt").write_text("2\n")
    lines: list[str] = []
    with UnpackFault(containerd28, [At()]) as fault:  # the collector runs between the check and the next layer
        report = build(ctx, tag, progress=lines.append)
    assert len(fault.hits) == 1, "the engine's unpack never reached the moment the race needs"
    assert report.ran_steps == ["COPY x.txt /x.txt"]
    assert not [line for line in lines if line.startswith("[course]")], "the first build should have passed"
    assert _holders(containerd28) == []
    # The same rebuild by the docker CLI alone, the collector run at the same moment: the race upstream reports.
    (ctx / "x.txt").write_text("3\n")
    with UnpackFault(containerd28, [At()]) as fault:
        plain = subprocess.run(["docker", "buildx", "build", "--load", "--progress=plain", "-t", tag, str(ctx)],
                               capture_output=True, text=True)
    assert len(fault.hits) == 1
    assert plain.returncode != 0 and "failed to prepare extraction snapshot" in plain.stdout + plain.stderr


@pytest.mark.full
def test_an_unpack_that_fails_once_is_built_again_and_says_so(containerd28, tmp_path):
    from course_helpers import build

    mark = uuid.uuid4().hex[:8]
    ctx = _context(tmp_path, f"RUN echo {mark} > /one\nRUN echo two > /two\nCOPY x.txt /x.txt\n")
    build(ctx, f"ct-unpack-{mark}:before", progress=False)
    (ctx / "x.txt").write_text("2\n")
    lines: list[str] = []
    # The image whose snapshots the next unpack checks goes away between its check and the next layer.
    with UnpackFault(containerd28, [At(remove=(_ref(f"ct-unpack-{mark}:before"),))]) as fault:
        report = build(ctx, f"ct-unpack-{mark}:after", progress=lines.append)
    assert len(fault.hits) == 1 and all(code == 0 for code, _ in fault.hits[0]["results"]), fault.hits
    notes = [line for line in lines if line.startswith("[course]")]
    assert len(notes) == 1 and "moby/buildkit#6521" in notes[0] and "building once more" in notes[0]
    # COPY ran in the first build; the second found it in the cache the first one left.
    assert report.ran_steps == ["COPY x.txt /x.txt"] and report.step("COPY x.txt").layer
    assert containerd28.client().images.get(f"ct-unpack-{mark}:after").id == report.image_id
    assert _holders(containerd28) == []


@pytest.mark.full
def test_an_unpack_that_fails_twice_ends_in_one_sentence_naming_the_engine(containerd28, tmp_path):
    from course_helpers import build

    mark = uuid.uuid4().hex[:8]
    # Another image shares the first RUN: the second try's unpack finds that one's snapshot, and loses it.
    other = _context(tmp_path, f"RUN echo {mark} > /one\nRUN echo other > /other\n")
    build(other, f"ct-unpack-{mark}:other", progress=False)
    ctx = _context(tmp_path, f"RUN echo {mark} > /one\nRUN echo two > /two\nCOPY x.txt /x.txt\n")
    build(ctx, f"ct-unpack-{mark}:before", progress=False)
    (ctx / "x.txt").write_text("2\n")
    lines: list[str] = []
    with UnpackFault(containerd28, [At(remove=(_ref(f"ct-unpack-{mark}:before"),)),
                                    At(remove=(_ref(f"ct-unpack-{mark}:other"),))]) as fault:
        with pytest.raises(EngineFault) as info:
            build(ctx, f"ct-unpack-{mark}:after", progress=lines.append)
    assert len(fault.hits) == 2 and all(code == 0 for hit in fault.hits for code, _ in hit["results"]), fault.hits
    error = info.value
    assert not isinstance(error, BuildError) and error.retried and error.kind == faults.UNPACK_RACE
    sentence = error.args[0]
    assert "\n" not in sentence and "moby/buildkit#6521" in sentence and "again when the course built it once more" \
        in sentence and "not a problem in your Dockerfile" in sentence
    assert len([line for line in lines if line.startswith("[course]")]) == 1
    # Nothing half-made stays: the tag the failed build had moved is gone, and so is the holder.
    names = {t for img in containerd28.client().images.list() for t in img.tags}
    assert f"ct-unpack-{mark}:after" not in names
    assert _holders(containerd28) == []
