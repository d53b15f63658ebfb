"""images.py on the real engine: tags, image list, identity, history with origins and sizes."""
from __future__ import annotations

from pathlib import Path

import pytest

from course_helpers.config import BASE_IMAGE

pytestmark = pytest.mark.usefixtures("engine")



def _build(context, tag, builder="buildkit"):
    from course_helpers.builder.build import build

    return build(context, tag, builder=builder, progress=False)


@pytest.fixture(scope="module")
def first(engine, repo):
    try:
        engine.images.get(BASE_IMAGE)
    except Exception:
        pytest.skip(f"base image {BASE_IMAGE} missing (run ./course setup)")
    from course_helpers.lesson.workspace import workspace

    return _build(workspace(f"{repo}-first"), f"{repo}:first")


def test_two_tags_one_image(engine, repo, first):
    from course_helpers.layers.images import images, same_image, tag

    img = tag(first, f"{repo}:latest")
    assert sorted(img.tags) == [f"{repo}:first", f"{repo}:latest"]
    rows = images(repo)
    assert [(r.repository, r.tag) for r in rows] == [(repo, "first"), (repo, "latest")]
    assert rows[0].id == rows[1].id == first.image_id
    assert same_image(f"{repo}:first", f"{repo}:latest")
    assert same_image(first, first.image_id)
    text = str(rows)
    short = first.image_id[7:19]
    assert text.count(short) == 2, text
    assert text.splitlines()[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert "same IMAGE ID" in rows._repr_html_()


def test_results_name_the_docker_command_that_shows_the_same(engine, repo, first):
    from course_helpers.layers.images import history, images, same_image

    listed = images(repo)
    assert str(listed).endswith(f"on your terminal:\n  $ docker image ls {repo}")
    assert f"<code>$ docker image ls {repo}</code>" in listed._repr_html_()
    rows = history(f"{repo}:first")
    assert str(rows).endswith(f"on your terminal:\n  $ docker history --no-trunc {repo}:first")
    same = same_image(f"{repo}:first", first)  # a report is named by its tag
    assert same and same == True  # noqa: E712 -- it still answers like the bool it was
    assert repr(same).splitlines() == [
        f"True: {repo}:first and {repo}:first are one image (sha256:{first.image_id[7:19]})",
        "on your terminal:", f"  $ docker image inspect --format '{{{{.Id}}}}' {repo}:first {repo}:first"]
    assert "docker image inspect" in same._repr_html_()


def test_images_lists_only_course_images(engine, repo, first):
    from course_helpers.layers.images import images

    plain = engine.images.build(fileobj=__import__("io").BytesIO(b"FROM scratch\nLABEL x=1\n"), rm=True)[0]
    try:
        assert plain.id not in {r.id for r in images()}
        assert first.image_id in {r.id for r in images()}
    finally:
        engine.images.remove(plain.id, force=True)


def test_history_origins_and_sizes(engine, repo, first):
    from course_helpers.layers.images import MISSING, history

    rows = history(f"{repo}:first")
    assert rows[0].id == first.image_id  # BuildKit: only the top row has an id
    assert all(r.id == MISSING for r in rows[1:])
    bottom = rows[-1]
    assert bottom.origin == "base" and bottom.size > 100_000_000 and not bottom.empty_layer
    assert [r.origin for r in rows[:-1]] == ["dockerfile"] * (len(rows) - 1)
    by_cmd = {r.created_by.split(" ")[0]: r for r in rows}
    pip = next(r for r in rows if r.created_by == "RUN /bin/sh -c pip3 install -r requirements.txt")
    assert 1_000_000 < pip.size < 50_000_000
    app_bytes = sum(p.stat().st_size for p in Path(first.context).iterdir() if p.is_file())
    contents = rows.from_dockerfile().contents()
    assert contents.of("COPY . .").file_bytes == app_bytes  # a COPY layer holds the copied files
    assert contents.of("COPY . .").files == 3
    assert by_cmd["CMD"].empty_layer and by_cmd["CMD"].size == 0
    # WORKDIR of a folder the base lacks makes a layer that holds the folder and no file.
    assert not by_cmd["WORKDIR"].empty_layer and contents.of("WORKDIR").files == 0
    # SIZE is the files' bytes on the classic store, the unpacked snapshot's disk blocks on containerd's.
    from course_helpers.engine.client import image_store

    copy = contents.of("COPY . .")
    if image_store(engine) == "classic":
        assert copy.history_size == app_bytes and contents.of("WORKDIR").history_size == 0
    else:
        assert copy.history_size % 4096 == 0 and copy.history_size >= 4096 * copy.files
    own = rows.from_dockerfile()
    assert [r.created_by.split(" ")[0] for r in own] == ["CMD", "RUN", "COPY", "WORKDIR"]
    assert str(own).startswith(f"history of {repo}:first, the rows its Dockerfile made: 4 rows, 3 layers\n")
    assert by_cmd["WORKDIR"].diff_id is not None
    img = engine.images.get(first.image_id)
    assert [r.diff_id for r in rows.layers] == img.attrs["RootFS"]["Layers"]
    assert comment_ok(rows)
    text = str(rows)
    assert "<missing>: " in text and "RUN /bin/sh -c pip3 install -r requirements.txt" in text
    assert "4 layers" in text and "#(nop)" not in text
    assert "<table>" in rows._repr_html_()


def comment_ok(rows) -> bool:
    return all(r.comment == "buildkit.dockerfile.v0" for r in rows[:-1])


def test_history_classic_builder_has_ids(engine, repo):
    from course_helpers.layers.images import MISSING, history
    from course_helpers.lesson.workspace import workspace

    report = _build(workspace(f"{repo}-classic"), f"{repo}:classic", builder="classic")
    rows = history(report)
    assert MISSING not in {r.id for r in rows}
    assert rows[-1].origin == "base"
    img = engine.images.get(report.image_id)
    assert [r.diff_id for r in rows.layers] == img.attrs["RootFS"]["Layers"]
    assert any(r.created_by.startswith("COPY dir:") for r in rows)  # classic writes COPY as "dir:<hash> in ."
    assert "<missing>:" not in str(rows)


def test_history_of_base_is_all_base(engine):
    from course_helpers.layers.images import history

    rows = history(BASE_IMAGE)
    assert rows and all(r.origin == "base" for r in rows)


def test_sizes_print_as_docker_prints_them():
    from course_helpers.formatting import format_size

    assert [format_size(n) for n in (0, 315, 999, 1000, 4_948_513, 11_700_000, 190_812_345)] == \
        ["0B", "315B", "999B", "1kB", "4.95MB", "11.7MB", "191MB"]


def test_unknown_image_is_a_clear_error(engine):
    from course_helpers.errors import CourseError
    from course_helpers.layers.images import history

    with pytest.raises(CourseError, match="no image 'ct-no-such-image:x'"):
        history("ct-no-such-image:x")
