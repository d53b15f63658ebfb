"""The export reader on the real engines: each layout, images by id and by tag, shared and kept layers.

Runs on the main engine and, in the full tier, on Docker 20.10 (the Docker archive) and Docker 26
with overlay2 (OCI blobs, uncompressed): see ``course_engine`` in conftest.py.  Where a test needs
the export as a file, ``docker save`` of that engine's own client writes it.
"""
from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from course_helpers import CourseError, build, explore, workspace
from course_helpers.engine.endpoint import resolve
from course_helpers.layers import export

pytestmark = pytest.mark.builds  # full tier: the notebooks show these facts in the quick one

SHARED = """FROM python:3.11-slim-bookworm
RUN printf 'shared\\n' > /shared.txt
"""
# The same first step (so the same layer), then a file and a whiteout of the base's.
TOP = SHARED + "RUN printf 'top\\n' > /top.txt && rm /etc/debian_version\n"


@pytest.fixture(scope="module")
def pair(course_engine, repo):
    """Two images on the module's engine that share the base layer and the next one."""
    built = {}
    for name, dockerfile in (("one", SHARED), ("two", TOP)):
        ws = workspace(f"export-{name}")
        (ws / "Dockerfile").write_text(dockerfile)
        report = build(ws, tag=f"{repo}:{name}", progress=False)
        built[name] = course_engine.client.images.get(report.image_id)
    assert built["one"].attrs["RootFS"]["Layers"] == built["two"].attrs["RootFS"]["Layers"][:-1]
    return built


def _save(refs: list[str], path: Path) -> Path:
    """The engine's export as ``docker save`` writes it, with the client that goes with the engine."""
    docker = shutil.which("docker")
    assert docker, "no docker client on PATH"
    subprocess.run([docker, "save", "-o", str(path), *refs], check=True, capture_output=True,
                   env=resolve().cli_environment())
    return path


def _members(path: Path) -> list[tuple[tarfile.TarInfo, bytes | None]]:
    with tarfile.open(path) as tar:
        return [(m, tar.extractfile(m).read() if m.isreg() else None) for m in tar.getmembers()]


def _write(members: list[tuple[tarfile.TarInfo, bytes | None]], path: Path) -> Path:
    with tarfile.open(path, "w") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def test_each_image_maps_to_its_layers_by_id_and_by_tag(course_engine, repo, pair):
    ids = [pair["one"].id, pair["two"].id]
    by_id = export.read_export(ids, client=course_engine.client)
    by_tag = export.read_export([f"{repo}:one", f"{repo}:two"], client=course_engine.client)
    for image, read_id, read_tag in zip(pair.values(), by_id, by_tag):
        assert read_id.diff_ids == read_tag.diff_ids == image.attrs["RootFS"]["Layers"]
        assert read_id.layers == read_tag.layers and read_id.config_digest == read_tag.config_digest
        if course_engine.containerd:  # the id names the index around the manifest, not the config
            assert read_id.config_digest != image.id
        else:
            assert read_id.config_digest == image.id
    top = {m.path: m for m in by_id[1].layers[-1]}
    assert top["/top.txt"].digest == hashlib.sha256(b"top\n").hexdigest() and top["/top.txt"].size == 4
    assert top["/etc/.wh.debian_version"].kind == "file"  # whiteouts are kept as the layer holds them
    assert by_id[0].layers[-1] is by_id[1].layers[-2]  # the shared layer: one scan for both images


def test_the_config_digest_is_the_config_docker_save_names(course_engine, pair, tmp_path):
    saved = _save([pair["two"].id], tmp_path / "two.tar")
    with tarfile.open(saved) as tar:
        config_name = json.load(tar.extractfile("manifest.json"))[0]["Config"]
        config = tar.extractfile(config_name).read()
    read = export.read_export([pair["two"].id], client=course_engine.client)[0]
    assert read.config_digest == "sha256:" + hashlib.sha256(config).hexdigest()


def test_an_attestation_manifest_is_not_an_image(course_engine, pair, tmp_path):
    if not course_engine.containerd:
        pytest.skip(f"the {course_engine.label} engine uses the classic image store: its images have no "
                    "attestation manifests")
    saved = _members(_save([pair["two"].id], tmp_path / "two.tar"))
    blobs = {info.name: data for info, data in saved if info.name.startswith("blobs/")}
    index = json.loads(blobs["blobs/sha256/" + pair["two"].id.removeprefix("sha256:")])
    kinds = [(d.get("annotations") or {}).get("vnd.docker.reference.type") for d in index["manifests"]]
    assert kinds.count("attestation-manifest") == 1 and len(kinds) == 2, index  # buildx's provenance
    with (tmp_path / "two.tar").open("rb") as stream:
        images, _ = export.resolve_images(export.read_stream(stream), [pair["two"].id])
    assert images[0].diff_ids == pair["two"].attrs["RootFS"]["Layers"]


def test_the_files_may_come_in_any_order(course_engine, pair, tmp_path):
    """The same export, as the engine wrote it and reordered: layout files first, layers in reverse."""
    ids = [pair["one"].id, pair["two"].id]
    saved = _members(_save(ids, tmp_path / "both.tar"))
    layout = [(i, d) for i, d in saved if i.name.endswith(".json") or "/" not in i.name]
    rest = [(i, d) for i, d in saved if (i, d) not in layout]
    assert layout and rest
    results = []
    for order in (saved, layout + rest[::-1], rest + layout):
        with _write(order, tmp_path / "order.tar").open("rb") as stream:
            images, _ = export.resolve_images(export.read_stream(stream), ids)
        results.append([(image.config_digest, image.diff_ids, image.layers) for image in images])
    assert results[0] == results[1] == results[2]
    assert [diff_ids for _, diff_ids, _ in results[0]] == [p.attrs["RootFS"]["Layers"] for p in pair.values()]


def test_a_layer_is_read_once_then_passes_unread(course_engine, pair, tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_STATE_DIR", str(tmp_path))
    export.forget(disk=False)  # a new kernel on a new machine: nothing kept
    scanned, exports = [], []
    real_scan, real_read = export.scan_layer, export.read_export
    monkeypatch.setattr(export, "scan_layer", lambda data: scanned.append(1) or real_scan(data))
    monkeypatch.setattr(export, "read_export", lambda *a, **k: exports.append(1) or real_read(*a, **k))
    images = [pair["one"], pair["two"]]
    layers = list(dict.fromkeys(d for image in images for d in image.attrs["RootFS"]["Layers"]))
    first = export.image_layers(images, client=course_engine.client)
    assert (len(exports), len(scanned)) == (1, len(layers))  # one export; a shared layer is read once
    export.forget([layers[-1]])  # the top layer's scan is lost; the others are kept on disk
    export.forget(disk=False)
    again = export.image_layers(images, client=course_engine.client)
    assert (len(exports), len(scanned)) == (2, len(layers) + 1)  # only the top layer read again
    export.forget(disk=False)
    kept = export.image_layers(images, client=course_engine.client)
    assert (len(exports), len(scanned)) == (2, len(layers) + 1)  # every layer kept: no export at all
    assert [i.layers for i in first] == [i.layers for i in again] == [i.layers for i in kept]


def test_an_export_that_breaks_off_is_one_sentence(course_engine, pair, monkeypatch):
    top = pair["two"].attrs["RootFS"]["Layers"][-1]
    export.forget([top])
    with monkeypatch.context() as mp:
        mp.setattr(export, "scan_layer", lambda data: (_ for _ in ()).throw(OSError("connection reset by peer")))
        with pytest.raises(CourseError, match=r"^The engine's image export could not be read \(connection reset "
                                              r"by peer\): run the cell again\.$"):
            export.read_export([pair["two"].id], client=course_engine.client)
    assert export.kept(top) is None  # nothing half-read is kept
    # Running the cell again works: the engine stopped the broken export and serves the next one.
    assert export.read_export([pair["two"].id], client=course_engine.client)[0].diff_ids == \
        pair["two"].attrs["RootFS"]["Layers"]


def test_zstd_layers_are_refused_in_one_sentence(course_engine, repo, tmp_path):
    from course_helpers.engine.cli import buildkit_client

    cli = buildkit_client()
    if not course_engine.containerd or cli is None or cli.via != "buildx":
        pytest.skip(f"the {course_engine.label} engine cannot store zstd layers (that needs the containerd "
                    "image store and buildx)")
    (tmp_path / "Dockerfile").write_text("FROM python:3.11-slim-bookworm\nRUN echo zstd > /zstd.txt\n")
    tag = f"{repo}:zstd"
    subprocess.run([cli.path, "buildx", "build", "--output",
                    f"type=image,name={tag},compression=zstd,force-compression=true,oci-mediatypes=true",
                    str(tmp_path)], check=True, capture_output=True, env=cli.environment())
    top = course_engine.client.images.get(tag).attrs["RootFS"]["Layers"][-1]
    with pytest.raises(CourseError, match=r"compressed with zstd \(application/vnd\.oci\.image\.layer\.v1\.tar\+zstd\)"
                                          r".*rebuild the image with gzip layers") as raised:
        explore(tag, progress=False)
    assert "\n" not in str(raised.value)
    assert export.kept(top) is None  # nothing half-read was kept
