"""diff.py on the real engines: shared layers, file changes, whiteouts, long names and links in the export.

Each test runs on the main engine and, in the full tier, on Docker 20.10 (the Docker archive) and
Docker 26 with overlay2 (OCI blobs, uncompressed): see ``course_engine`` in conftest.py.
"""
from __future__ import annotations

import pytest

from course_helpers.config import BASE_IMAGE

pytestmark = [pytest.mark.builds, pytest.mark.usefixtures("engine")]


THIRD_DOCKERFILE = """FROM python:3.11-slim-bookworm

WORKDIR /usr/src/app

COPY requirements.txt ./

RUN pip3 install -r requirements.txt

COPY . .

CMD ["python3", "-m", "flask", "run", "--host=0.0.0.0"]
"""


def _build(context, tag):
    from course_helpers.builder.build import build

    return build(context, tag, builder="buildkit", progress=False)


@pytest.fixture(scope="module")
def first_third(course_engine, repo):
    from course_helpers.lesson.workspace import edit, workspace

    first = _build(workspace(f"{repo}-first"), f"{repo}:first")
    ws = workspace(f"{repo}-third")
    (ws / "Dockerfile").write_text(THIRD_DOCKERFILE)
    edit(ws / "app.py", "Hello world!", "Hello universe!")
    third = _build(ws, f"{repo}:third")
    return first, third


def test_first_vs_third_layers(repo, first_third):
    from course_helpers.layers.diff import diff_images

    d = diff_images(f"{repo}:first", f"{repo}:third")
    assert (len(d.shared), d.shared_prefix, len(d.only_a), len(d.only_b)) == (2, 2, 2, 3)
    assert d.shared[0].size > 100_000_000  # the base layer
    assert d.shared[1].created_by == "WORKDIR /usr/src/app"
    assert [x.created_by for x in d.only_a] == ["COPY . .", "RUN /bin/sh -c pip3 install -r requirements.txt"]
    assert [x.created_by for x in d.only_b] == [
        "COPY requirements.txt ./", "RUN /bin/sh -c pip3 install -r requirements.txt", "COPY . ."]
    text = str(d)
    for line in ("shared layers: 2", "only in a: 2", "only in b: 3"):
        assert line in text.splitlines()
    assert d.files is None
    assert "<table>" in d._repr_html_()


def test_first_vs_third_files(repo, first_third):
    from course_helpers.layers.diff import diff_images

    d = diff_images(f"{repo}:first", f"{repo}:third", files=True)
    changes = {c.path: c for c in d.files}
    app = changes["/usr/src/app/app.py"]
    assert app.change == "modified" and (app.size_a, app.size_b) == (160, 163)
    assert app.layer == "COPY . ."
    packages = [p for p in changes if "-packages/" in p]
    assert packages, "the pip layers differ, so some installed files should"
    assert d.files.layers_read == 5
    assert "files added: 0" in str(d) and "/usr/src/app" in str(d)
    # What the reinstall rewrote is compiled bytecode, apart from the one edited source file.
    suffixes = {(suffix, change): n for suffix, change, n in d.files.by_suffix()}
    assert suffixes[(".pyc", "modified")] == sum(c.change == "modified" and c.path.endswith(".pyc") for c in d.files)
    assert d.files.by_suffix()[0][:2] == (".pyc", "modified")
    assert str(d).endswith(f"$ docker image inspect --format '{{{{json .RootFS.Layers}}}}' {repo}:first {repo}:third"
                           f"\n  $ docker save -o images.tar {repo}:first {repo}:third")


def test_a_kept_layer_scan_gives_the_same_answer(course_engine, repo, first_third, tmp_path, monkeypatch):
    from course_helpers.layers import export
    from course_helpers.layers.diff import diff_images

    monkeypatch.setenv("COURSE_STATE_DIR", str(tmp_path))
    export.forget(disk=False)  # a new kernel on a new machine: nothing kept
    exports = []
    real_read = export.read_export
    monkeypatch.setattr(export, "read_export", lambda *a, **k: exports.append(a) or real_read(*a, **k))
    read = diff_images(f"{repo}:first", f"{repo}:third", files=True)  # reads every layer
    kept = {p.stem for p in (tmp_path / "layer-scans").glob("*.json")} - {"names"}
    diff_ids = {d.removeprefix("sha256:") for tag in ("first", "third")
                for d in course_engine.client.images.get(f"{repo}:{tag}").attrs["RootFS"]["Layers"]}
    assert kept == diff_ids and len(exports) == 1  # every layer kept by its content, from one export
    export.forget(disk=False)
    again = diff_images(f"{repo}:first", f"{repo}:third", files=True)  # every layer kept: no export at all
    assert len(exports) == 1
    assert list(again.files) == list(read.files) and again.files.same_content == read.files.same_content
    biggest = max((tmp_path / "layer-scans").glob("*.json"), key=lambda p: p.stat().st_size)
    biggest.write_text("{not json")  # a damaged scan is read again, never trusted
    export.forget(disk=False)
    damaged = diff_images(f"{repo}:first", f"{repo}:third", files=True)
    assert len(exports) == 2 and list(damaged.files) == list(read.files)


def test_same_image_has_no_differences(repo, first_third):
    from course_helpers.layers.diff import diff_images

    d = diff_images(f"{repo}:first", first_third[0], files=True)
    assert d.same_image and not d.only_a and not d.only_b and list(d.files) == []


def test_whiteouts_and_opaque_dirs(course_engine, repo, tmp_path):
    from course_helpers.layers.diff import diff_images

    # rm of a base file -> whiteout; rm -rf + mkdir of a base dir in one step -> opaque dir.
    (tmp_path / "Dockerfile").write_text(
        "FROM python:3.11-slim-bookworm\n"
        "RUN rm /etc/debian_version && rm -rf /usr/share/doc && mkdir /usr/share/doc "
        "&& echo hi > /usr/share/doc/NEW\n")
    _build(tmp_path, f"{repo}:whiteout")
    d = diff_images(BASE_IMAGE, f"{repo}:whiteout", files=True)
    changes = {c.path: c for c in d.files}
    assert changes["/etc/debian_version"].change == "deleted"
    assert changes["/usr/share/doc/NEW"].change == "added"
    gone = [p for p, c in changes.items() if p.startswith("/usr/share/doc/") and c.change == "deleted"]
    assert gone, "the opaque /usr/share/doc should hide the base's files"
    assert not any(".wh." in p for p in changes)
    assert "/usr/share/doc" not in changes or changes["/usr/share/doc"].change != "deleted"


def test_long_names_and_links(course_engine, repo, tmp_path):
    from course_helpers.layers.diff import diff_images

    # A path over tar's 100-byte name field (a PAX or GNU long name in the export), a hard link
    # (compared by the content it shares) and a symlink.
    long_dir = "/a/" + "x" * 150
    (tmp_path / "Dockerfile").write_text(
        "FROM python:3.11-slim-bookworm\n"
        f"RUN mkdir -p {long_dir} && head -c 700 /dev/zero > {long_dir}/file.txt "
        f"&& ln {long_dir}/file.txt /hard && ln -s /etc/hostname /soft\n")
    _build(tmp_path, f"{repo}:links")
    d = diff_images(BASE_IMAGE, f"{repo}:links", files=True)
    changes = {c.path: c for c in d.files}
    assert (changes[f"{long_dir}/file.txt"].change, changes[f"{long_dir}/file.txt"].size_b) == ("added", 700)
    assert (changes["/hard"].kind, changes["/hard"].size_b) == ("file", 700)
    assert changes["/soft"].kind == "symlink"
    assert (d.files.count("added"), d.files.count("modified"), d.files.count("deleted")) == (5, 0, 0)
