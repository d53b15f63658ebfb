"""Cache import and export, the course's registry as a release channel, and the CI runner (course_helpers/lesson/ci.py).

Three parts:

* the parsers of builder output (``cache_import_errors``, ``resolved_bases``) and the small
  helpers of ``build()`` (``_shown_dirs``, ``_cache_options``, ``cache_import_note``,
  ``_by_digest``), on short snippets recorded from real builds (Docker 28, buildx): no engine;
* builds with ``cache_from``/``cache_to``, ``publish()`` and ``pull()`` on the default engine and
  the course's registry (``builds`` mark: full tier).  Every image is tagged ``citest-...`` and
  removed at the end of its test; what a test pushes to the registry is deleted from it too;
* ``ci_runner()`` (``full`` mark: it starts a private engine, which needs root).  It runs under a
  name of the test's own, so a runner a notebook or another developer keeps is never stopped.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import socket
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from course_helpers.builder.build import _cache_options, _shown_dirs, cache_import_note
from course_helpers.builder.log_buildkit import cache_import_errors, resolved_bases
from course_helpers.builder.records import _by_digest
from course_helpers.config import BASE_IMAGE
from course_helpers.errors import BuildError

DIGEST = "sha256:bf21ec565f1dcf82b7b9428f239f23f698e7cb88c56b50b2dac4f48eb3414d01"
OTHER_DIGEST = "sha256:" + "0123456789abcdef" * 4
REF = "127.0.0.1:45909/citest-nothere/x:cache"
NOT_FOUND = f"failed to configure registry cache importer: {REF}: not found"

# --- recorded snippets (parser fixtures only) -----------------------------------------------------

#: rawjson: the import vertex starts, then completes with an error; the build goes on.
RAWJSON_IMPORT_FAILED = "\n".join([
    '{"vertexes":[{"digest":"sha256:91cc8e137fb0e6d1f4be801ddc984a87042e240664cae71c0dc8505d2f4551c2",'
    '"inputs":["sha256:2604b6567e81ea5ed6f274306db19afb0c3038b9a7166751e7c34aa2f4872d1d"],'
    '"name":"[2/2] RUN echo citest-probe \\u003e /probe.txt"},'
    '{"digest":"sha256:2604b6567e81ea5ed6f274306db19afb0c3038b9a7166751e7c34aa2f4872d1d",'
    f'"name":"[1/2] FROM docker.io/library/python:3.11-slim-bookworm@{DIGEST}"}},'
    '{"digest":"sha256:3f9ef402575d27e1796a4529b3b6e0a1a851ada0aca54fc684d0781e019798f7",'
    f'"name":"importing cache manifest from {REF}","started":"2026-12-05T07:07:38.966963327Z"}}]}}',
    '{"vertexes":[{"digest":"sha256:3f9ef402575d27e1796a4529b3b6e0a1a851ada0aca54fc684d0781e019798f7",'
    f'"name":"importing cache manifest from {REF}","started":"2026-12-05T07:07:38.966963327Z",'
    f'"completed":"2026-12-05T07:07:38.970524514Z","error":"{NOT_FOUND}"}}]}}',
    '{"vertexes":[{"digest":"sha256:2604b6567e81ea5ed6f274306db19afb0c3038b9a7166751e7c34aa2f4872d1d",'
    f'"name":"[1/2] FROM docker.io/library/python:3.11-slim-bookworm@{DIGEST}",'
    '"started":"2026-12-05T07:07:38.980660893Z","completed":"2026-12-05T07:07:38.981771853Z","cached":true}]}',
])

#: plain: the same failure, and buildx's own warning about a type=local source that is not there.
PLAIN_IMPORT_FAILED = f"""#4 [1/2] FROM docker.io/library/python:3.11-slim-bookworm@{DIGEST}
#4 resolve docker.io/library/python:3.11-slim-bookworm@{DIGEST} done
#4 DONE 0.0s

#5 importing cache manifest from {REF}
#5 ERROR: {NOT_FOUND}

#6 [2/2] RUN echo citest-probe > /probe.txt
#6 CACHED

#7 exporting to image
#7 DONE 0.1s
------
 > importing cache manifest from {REF}:
------
"""
LOCAL_WARNING = ("WARNING: local cache import at /tmp/citest-nope not found due to err: could not lock "
                 "/tmp/citest-nope/index.json.lock: open /tmp/citest-nope/index.json.lock: no such file or directory")

#: A normal build: no cache source, and a step that fails with an ERROR of its own.
PLAIN_NORMAL = f"""#4 [1/3] FROM docker.io/library/python:3.11-slim-bookworm@{DIGEST}
#4 DONE 0.0s

#5 [2/3] RUN echo importing cache manifest from nowhere
#5 0.120 importing cache manifest from nowhere
#5 DONE 0.2s

#6 [3/3] RUN exit 3
#6 ERROR: process "/bin/sh -c exit 3" did not complete successfully: exit code: 3
"""
RAWJSON_NORMAL = (
    '{"vertexes":[{"digest":"sha256:91cc8e137fb0e6d1f4be801ddc984a87042e240664cae71c0dc8505d2f4551c2",'
    '"name":"[2/2] RUN exit 3","started":"2026-12-05T07:07:38.9Z","completed":"2026-12-05T07:07:39.1Z",'
    '"error":"process \\"/bin/sh -c exit 3\\" did not complete successfully: exit code: 3"}]}\n'
    '{"logs":[{"vertex":"sha256:91cc8e137fb0e6d1f4be801ddc984a87042e240664cae71c0dc8505d2f4551c2",'
    '"stream":1,"data":"aW1wb3J0aW5nIGNhY2hlIG1hbmlmZXN0IGZyb20geAo=","timestamp":"2026-12-05T07:07:39Z"}]}\n'
    "not json at all {\n")


def _from_vertex(step: str, ref: str) -> str:
    return json.dumps({"vertexes": [{"digest": "sha256:" + "1" * 64, "name": f"[{step}] FROM {ref}",
                                     "started": "2026-12-05T07:07:38.98Z"}]})


# --- parsers and helpers: no engine ----------------------------------------------------------------

def test_cache_import_errors_reads_the_failed_rawjson_vertex():
    assert cache_import_errors(RAWJSON_IMPORT_FAILED) == [(REF, NOT_FOUND)]


def test_cache_import_errors_reads_plain_output_and_the_buildx_local_warning():
    assert cache_import_errors(PLAIN_IMPORT_FAILED) == [(REF, NOT_FOUND)]
    assert cache_import_errors(LOCAL_WARNING) == [
        ("/tmp/citest-nope", "could not lock /tmp/citest-nope/index.json.lock: open /tmp/citest-nope/index.json.lock: "
                             "no such file or directory")]
    both = cache_import_errors(PLAIN_IMPORT_FAILED + LOCAL_WARNING + "\n")
    assert [source for source, _ in both] == [REF, "/tmp/citest-nope"]


def test_cache_import_errors_finds_nothing_in_a_normal_log():
    assert cache_import_errors(PLAIN_NORMAL) == []
    assert cache_import_errors(RAWJSON_NORMAL) == []
    # The import vertex that succeeded (no error) is no failure either.
    ok = RAWJSON_IMPORT_FAILED.splitlines()[0]
    assert cache_import_errors(ok) == []
    assert cache_import_errors("") == []


def test_resolved_bases_maps_a_docker_hub_short_name_to_the_digest_its_from_step_pinned():
    log = RAWJSON_IMPORT_FAILED  # its FROM vertex: docker.io/library/python:3.11-slim-bookworm@DIGEST
    assert resolved_bases(log, ["python:3.11-slim-bookworm"]) == {"python:3.11-slim-bookworm": DIGEST}
    assert resolved_bases(_from_vertex("1/4", f"docker.io/library/python:3.11-slim-bookworm@{OTHER_DIGEST}"),
                          ["python:3.11-slim-bookworm"]) == {"python:3.11-slim-bookworm": OTHER_DIGEST}
    assert resolved_bases(PLAIN_IMPORT_FAILED, ["python:3.11-slim-bookworm"]) == {"python:3.11-slim-bookworm": DIGEST}


def test_resolved_bases_maps_a_registry_ref_to_exactly_that_base_and_leaves_others_out():
    registry_base = "127.0.0.1:5000/library/python:3.11-slim-bookworm"
    log = _from_vertex("1/4", f"{registry_base}@{OTHER_DIGEST}")
    bases = [registry_base, "python:3.11-slim-bookworm", "debian:bookworm-slim"]
    # The Docker Hub name with the same path is another image: not mapped to the registry's digest.
    assert resolved_bases(log, bases) == {registry_base: OTHER_DIGEST}
    assert resolved_bases(log, ["debian:bookworm-slim"]) == {}
    assert resolved_bases(PLAIN_NORMAL, ["debian:bookworm-slim", registry_base]) == {}
    assert resolved_bases("#1 [internal] load metadata for docker.io/library/python:3.11-slim-bookworm",
                          ["python:3.11-slim-bookworm"]) == {}  # a log that pins nothing


def test_shown_dirs_keeps_other_keys_and_makes_near_folders_relative(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert _shown_dirs(f"type=local,dest={tmp_path / 'c'},mode=max") == "type=local,dest=c,mode=max"
    assert _shown_dirs(f"type=local,src={tmp_path / 'sub' / 'cache'}") == "type=local,src=sub/cache"
    assert _shown_dirs(f"type=local,src={tmp_path.parent / 'next'}") == "type=local,src=../next"
    far = "/usr/share/citest-cache"
    assert _shown_dirs(f"type=local,src={far}") == f"type=local,src={far}"
    registry = "type=registry,ref=127.0.0.1:5000/citest/app:cache,mode=max,oci-mediatypes=true"
    assert _shown_dirs(registry) == registry
    assert _shown_dirs("type=gha,scope=main,ignore-error") == "type=gha,scope=main,ignore-error"


def test_cache_options_are_buildkits_only():
    cli = object()  # only whether there is a BuildKit client counts
    assert _cache_options(cli, False, "type=registry,ref=r:1", ["type=local,dest=/x", "type=inline"], True) == [
        "--cache-from=type=registry,ref=r:1", "--cache-to=type=local,dest=/x", "--cache-to=type=inline", "--pull"]
    assert _cache_options(cli, False, None, None, False) == []
    assert _cache_options(None, False, None, None, True) == []  # the classic builder pulls by itself
    with pytest.raises(BuildError, match="the classic builder takes no --cache-from"):
        _cache_options(None, False, "type=registry,ref=r:1", None, False)
    with pytest.raises(BuildError, match=r"Buildah \(Podman\) takes no --cache-to"):
        _cache_options(None, True, None, "type=local,dest=/x", False)


def test_cache_import_note_for_a_missing_source_names_it_and_says_buildkit_only_warns():
    note = cache_import_note(REF, NOT_FOUND)
    assert REF in note and "only warns" in note and "no cache" in note
    local = cache_import_note("/tmp/citest-nope", "open /tmp/citest-nope/index.json.lock: no such file or directory")
    assert "/tmp/citest-nope" in local and "only warns" in local


def test_by_digest_drops_the_tag_of_a_pinned_base():
    assert _by_digest(f"python:3.11-slim-bookworm@{DIGEST}") == f"python@{DIGEST}"
    assert _by_digest(f"127.0.0.1:5000/library/python:3.11@{DIGEST}") == f"127.0.0.1:5000/library/python@{DIGEST}"
    assert _by_digest(f"localhost:5000/python@{DIGEST}") == f"localhost:5000/python@{DIGEST}"
    assert _by_digest("127.0.0.1:5000/library/python:3.11") == "127.0.0.1:5000/library/python:3.11"


# --- the default engine and the course's registry ---------------------------------------------------

@pytest.fixture(scope="module")
def buildkit(engine, base):
    """The docker client that runs BuildKit builds; skip, naming what is missing, without one."""
    from course_helpers.engine.cli import buildkit_client, describe_probes

    cli = buildkit_client()
    if cli is None:
        pytest.skip(f"no docker client here runs BuildKit builds (buildx or a BuildKit docker; tried: "
                    f"{describe_probes()})")
    return cli


@pytest.fixture(scope="module")
def registry(engine):
    """The course's registry (started if it does not run; a running one is only used)."""
    from course_helpers.engine.registry import start_registry

    try:
        return start_registry(progress=None)
    except Exception as exc:  # SetupError: no docker-registry program, port taken
        pytest.skip(f"the course's registry cannot run here: {exc}")


@pytest.fixture
def citest_images(engine):
    """Tags (``citest-...``) and image IDs this test made; each removed at its end (a tag only untags)."""
    from docker.errors import APIError, NotFound

    made: list[str] = []
    yield made
    for ref in reversed(made):
        try:
            engine.images.remove(ref)
        except (NotFound, APIError):
            pass


def _context(folder: Path, marker: str) -> Path:
    """A Dockerfile whose RUN no earlier build has run (the marker is new)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "Dockerfile").write_text(f"FROM {BASE_IMAGE}\nRUN echo {marker} > /citest.txt\n")
    return folder


@pytest.mark.builds
def test_a_cache_source_that_is_not_in_the_registry_is_one_note_and_the_build_succeeds(
        buildkit, registry, tmp_path: Path, citest_images: list[str]):
    from course_helpers.builder.build import build

    marker = uuid.uuid4().hex[:10]
    ref = registry.ref(f"citest-{marker}/cache:none")
    assert registry.tags(f"citest-{marker}/cache") == []  # nothing was ever pushed there
    tag = f"citest-{marker}:from"
    citest_images.append(tag)
    report = build(_context(tmp_path / "ctx", marker), tag, builder="buildkit",
                   cache_from=f"type=registry,ref={ref}", progress=False)
    citest_images.append(report.image_id)
    assert report.image_id.startswith("sha256:")
    assert report.ran_steps == [f"RUN echo {marker} > /citest.txt"], report.text()
    assert len(report.notes) == 1, report.notes
    assert ref in report.notes[0] and "only warns" in report.notes[0]
    assert f"--cache-from=type=registry,ref={ref}" in report.command
    assert f"note: {report.notes[0]}" in report.text()


@pytest.mark.builds
def test_a_cache_export_to_a_registry_that_does_not_answer_is_one_sentence_naming_it(
        buildkit, tmp_path: Path, citest_images: list[str]):
    from course_helpers.builder.build import build

    if not buildkit.offers("--cache-to"):
        pytest.skip(f"this docker client ({buildkit.path}, {buildkit.version}) has no --cache-to")
    with socket.socket() as s:  # a port on 127.0.0.1 where nothing listens
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    marker = uuid.uuid4().hex[:10]
    citest_images.append(f"citest-{marker}:down")
    with pytest.raises(BuildError) as caught:
        build(_context(tmp_path / "ctx", marker), f"citest-{marker}:down", builder="buildkit",
              cache_to=f"type=registry,ref=127.0.0.1:{port}/citest/cache", progress=False)
    first = str(caught.value).splitlines()[0]
    assert first.startswith(f"The registry at 127.0.0.1:{port} does not answer"), first
    assert "could not be exported" in first


@pytest.mark.builds
def test_a_local_cache_export_writes_its_index_and_the_command_shows_the_flag(
        buildkit, tmp_path: Path, monkeypatch, citest_images: list[str]):
    from course_helpers.builder.build import build

    if not buildkit.offers("--cache-to"):
        pytest.skip(f"this docker client ({buildkit.path}, {buildkit.version}) has no --cache-to")
    monkeypatch.chdir(tmp_path)  # the command names the folder as the learner's shell would: relative
    marker = uuid.uuid4().hex[:10]
    tag = f"citest-{marker}:to"
    citest_images.append(tag)
    report = build(_context(tmp_path / "ctx", marker), tag, builder="buildkit",
                   cache_to=f"type=local,dest={tmp_path / 'c'},mode=max", progress=False)
    citest_images.append(report.image_id)
    index = tmp_path / "c" / "index.json"
    assert index.is_file(), report.log[-2000:]
    assert json.loads(index.read_text())["manifests"], index.read_text()
    assert "--cache-to=type=local,dest=c,mode=max" in report.command, report.command
    assert report.notes == []


@dataclass
class Published:
    repo: str  # the registry's repository, ``citest-<hex>/python``
    name: str  # the engine's own name of the release
    ref: str  # the release in the registry
    release_id: str
    digest: str
    before: str  # what the engine's ``ref`` named before publish()
    after: str  # ... and after it


def _registry_digest(registry, repo: str, tag: str) -> str | None:
    """The digest the registry names ``repo:tag`` by (its Docker-Content-Digest), None when it has none."""
    accept = ", ".join(["application/vnd.oci.image.index.v1+json",
                        "application/vnd.docker.distribution.manifest.list.v2+json",
                        "application/vnd.oci.image.manifest.v1+json",
                        "application/vnd.docker.distribution.manifest.v2+json"])
    request = urllib.request.Request(f"http://{registry.address}/v2/{repo}/manifests/{tag}", method="HEAD",
                                     headers={"Accept": accept})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=10) as reply:
            return reply.headers["Docker-Content-Digest"]
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise


def _delete_from_registry(registry, repo: str, digest: str) -> None:
    """Delete what this test pushed: its manifest, then its repository's folder (blobs stay for the registry's GC)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    if digest:
        try:
            opener.open(urllib.request.Request(f"http://{registry.address}/v2/{repo}/manifests/{digest}",
                                               method="DELETE"), timeout=10).close()
        except (urllib.error.URLError, OSError):
            pass
    top = repo.split("/", 1)[0]
    assert top.startswith("citest-")
    shutil.rmtree(registry.data / "docker" / "registry" / "v2" / "repositories" / top, ignore_errors=True)


@pytest.fixture(scope="module")
def published(buildkit, registry, engine):
    """A fresh release of the base, ``citest-<hex>/python:rel``, published to the registry.

    The engine's own ``ref`` named the base image before (an older copy of the tag, as a
    learner has), so publish() must leave it there.
    """
    from docker.errors import APIError, NotFound

    from course_helpers.engine.base_image import release_base
    from course_helpers.lesson.ci import publish

    marker = uuid.uuid4().hex[:10]
    repo = f"citest-{marker}/python"
    name, ref = f"{repo}:rel", registry.ref(f"{repo}:rel")
    release_id, digest = "", ""
    try:
        release_id = release_base(name, 1, progress=None, fresh=True)
        base_id = engine.images.get(BASE_IMAGE).id
        assert release_id != base_id
        engine.images.get(BASE_IMAGE).tag(registry.ref(repo), "rel")
        digest = publish(name, ref, progress=None)
        yield Published(repo, name, ref, release_id, digest, before=base_id, after=engine.images.get(ref).id)
    finally:
        for tag in (ref, name):  # names only: the base image keeps its own
            try:
                engine.images.remove(tag)
            except (NotFound, APIError):
                pass
        if release_id:
            try:
                engine.images.remove(release_id, force=True)  # made by release_base(fresh=True): this test's
            except (NotFound, APIError):
                pass
        _delete_from_registry(registry, repo, digest)


@pytest.fixture(scope="module")
def pulled(published: Published):
    """``pull()`` of the published release: the engine has it already, under its own name.

    Once per module: pull() inspects every image on the engine, which takes seconds on a busy one.
    """
    from course_helpers.lesson.ci import pull

    return pull(published.ref, progress=None)


@pytest.mark.builds
def test_publish_returns_the_registrys_digest_and_leaves_the_engines_tag(published: Published, pulled, registry,
                                                                        engine):
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", published.digest), published.digest
    assert registry.tags(published.repo) == ["rel"]
    assert _registry_digest(registry, published.repo, "rel") == published.digest
    assert published.after == published.before  # publish() did not move the engine's tag to the release
    assert engine.images.get(published.name).id == published.release_id
    # pull() then gives the engine the very image that was published.
    assert any(published.digest in line for line in pulled.lines), pulled.lines
    assert engine.images.get(published.ref).id == published.release_id, pulled.lines


@pytest.mark.builds
def test_a_pull_of_an_image_the_engine_has_reports_every_layer_had(published: Published, pulled, engine):
    assert pulled.ref == published.ref
    assert pulled.layers == engine.images.get(published.name).attrs["RootFS"]["Layers"]
    assert pulled.had == pulled.layers and pulled.fetched == []
    assert f"{len(pulled.layers)} already on this engine (not downloaded), 0 downloaded" in str(pulled)


@pytest.mark.builds
def test_a_pinned_base_whose_tag_moved_is_found_by_its_digest(published: Published, pulled, engine, tmp_path: Path):
    from course_helpers.builder.records import base_image_ids
    from course_helpers.dockerfile.parse import parse_dockerfile

    pinned = f"{published.ref}@{published.digest}"
    (tmp_path / "Dockerfile").write_text(f"FROM {pinned}\nRUN true\n")
    df = parse_dockerfile(tmp_path / "Dockerfile")
    assert base_image_ids(df, engine) == {pinned: published.release_id}
    engine.images.get(BASE_IMAGE).tag(published.ref.rsplit(":", 1)[0], "rel")  # the tag moves on
    assert engine.images.get(published.ref).id != published.release_id
    assert base_image_ids(df, engine) == {pinned: published.release_id}


# --- the CI runner: a private engine -----------------------------------------------------------------

@pytest.fixture
def runner_name(monkeypatch):
    """ci_runner() under a name of this test's own; stopped, and its data removed, at the end."""
    from course_helpers.engine.daemon import stop_private_engine
    from course_helpers.lesson import ci

    if os.geteuid() != 0 or not shutil.which("iptables"):
        pytest.skip("ci_runner() starts a private engine, which needs root and iptables, and this process "
                    "lacks them")
    name = "citest" + uuid.uuid4().hex[:2]
    monkeypatch.setattr(ci, "RUNNER", name)
    monkeypatch.setattr(ci, "_runner", None)
    yield name
    try:
        ci.stop_ci_runner()
    finally:
        stop_private_engine(name)  # in case stop_ci_runner() itself failed


@pytest.mark.full
def test_ci_runner_starts_with_the_base_only_and_each_call_is_a_new_job(engine, base, runner_name: str,
                                                                       tmp_path: Path):
    from course_helpers.builder.build import build
    from course_helpers.config import state_dir
    from course_helpers.engine.cli import buildkit_client
    from course_helpers.lesson.ci import ci_runner, stop_ci_runner

    said: list[str] = []
    runner = ci_runner(progress=said.append)
    assert runner.name == runner_name and runner.process.running()
    cli = runner.client()
    assert [t for img in cli.images.list() for t in img.tags] == [BASE_IMAGE]
    assert cli.images.get(BASE_IMAGE).id == base.id
    marker = uuid.uuid4().hex[:10]
    ctx = _context(tmp_path / "ctx", marker)
    with runner.in_use():
        if buildkit_client() is None:
            pytest.skip("the runner's docker client runs no BuildKit builds")
        first = build(ctx, f"citest-{marker}:job1", builder="buildkit", progress=False)
        again = build(ctx, f"citest-{marker}:job1b", builder="buildkit", progress=False)
    assert first.ran_steps == [f"RUN echo {marker} > /citest.txt"], first.text()
    assert again.all_cached, again.text()  # the runner has a cache of its own, until the next job
    assert f"citest-{marker}:job1" in [t for img in cli.images.list() for t in img.tags]

    second = ci_runner(progress=said.append)
    assert second is runner and second.process.pid == runner.process.pid  # reused, not started again
    assert "build cache emptied" in said[-1], said
    assert [t for img in cli.images.list() for t in img.tags] == [BASE_IMAGE]
    with second.in_use():
        job2 = build(ctx, f"citest-{marker}:job2", builder="buildkit", progress=False)
    assert job2.ran_steps == [f"RUN echo {marker} > /citest.txt"], job2.text()  # not CACHED: cache emptied
    assert not job2.cached_steps

    socket = Path(runner.host.removeprefix("unix://"))
    assert socket.exists()
    assert stop_ci_runner() is True
    assert not socket.exists() and not runner.process.running()
    assert not (state_dir() / "private-engines" / runner_name).exists()
    assert stop_ci_runner() is False  # nothing left to stop
