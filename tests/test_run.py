"""run.py on the real engine: the app answers, and its container never outlives the block."""
from __future__ import annotations

import pytest
from docker.errors import NotFound

from course_helpers.config import LABEL_SESSION, SESSION_ID

pytestmark = pytest.mark.usefixtures("engine")


ARTICLE_CMD = 'CMD "python3 -m flask run --host=0.0.0.0"'


@pytest.fixture(scope="module")
def app_image(repo):
    from course_helpers.builder.build import build
    from course_helpers.lesson.workspace import workspace

    return build(workspace(f"{repo}-app"), f"{repo}:first", builder="buildkit", progress=False)


def _gone(engine, cid: str) -> bool:
    try:
        engine.containers.get(cid)
        return False
    except NotFound:
        return True


def test_serves_hello_world_and_cleans_up(engine, app_image, capsys):
    from course_helpers.lesson.run import run_app

    with run_app(app_image) as app:
        assert app.get("/") == "Hello world!"
        tag = app_image.tags[0]
        said = capsys.readouterr().out  # the docker run a learner types for the same, port included
        assert said == (f"{tag} answers on {app.url}\non your terminal:\n"
                        f"  $ docker run --rm -p 127.0.0.1:{app.host_port}:5000 {tag}\n")
        assert app.command == f"docker run --rm -p 127.0.0.1:{app.host_port}:5000 {tag}"
        assert str(app) == app.url and app.url.startswith("http://127.0.0.1:")
        c = app.container
        c.reload()
        host = c.attrs["HostConfig"]
        assert host["Privileged"] is False
        assert host["PortBindings"]["5000/tcp"][0]["HostIp"] == "127.0.0.1"
        assert not any("docker.sock" in (m.get("Source") or "") for m in c.attrs.get("Mounts", []))
        assert c.labels[LABEL_SESSION] == SESSION_ID
        cid = c.id
    assert _gone(engine, cid)


def test_container_removed_after_exception(engine, app_image):
    from course_helpers.lesson.run import run_app

    cid = None
    with pytest.raises(RuntimeError, match="boom"):
        with run_app(app_image) as app:
            cid = app.container.id
            raise RuntimeError("boom")
    assert cid and _gone(engine, cid)


def test_article_cmd_exits_127(engine, repo, tmp_path):
    from course_helpers.builder.build import build
    from course_helpers.errors import ContainerExited
    from course_helpers.lesson.run import run_app
    from course_helpers.lesson.workspace import workspace

    ws = workspace(f"{repo}-article")
    dockerfile = ws / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text().replace(
        'CMD ["python3", "-m", "flask", "run", "--host=0.0.0.0"]', ARTICLE_CMD))
    report = build(ws, f"{repo}:article", builder="buildkit", progress=False)
    before = {c.id for c in engine.containers.list(all=True, filters={"label": f"{LABEL_SESSION}={SESSION_ID}"})}
    with pytest.raises(ContainerExited) as info:
        with run_app(report, timeout=15):
            pytest.fail("the article's CMD should not serve")
    err = info.value
    assert err.exit_status == 127
    assert "python3 -m flask run --host=0.0.0.0: not found" in err.logs
    assert "shell-form CMD with the whole command in quotes" in str(err)
    after = {c.id for c in engine.containers.list(all=True, filters={"label": f"{LABEL_SESSION}={SESSION_ID}"})}
    assert after <= before


def test_missing_program_in_exec_form(engine, app_image):
    from course_helpers.errors import ContainerExited
    from course_helpers.lesson.run import run_app

    with pytest.raises(ContainerExited) as info:
        with run_app(app_image, command=["no-such-program"], timeout=10):
            pass
    assert info.value.exit_status == 127 and "no-such-program" in str(info.value)


def test_reaper_removes_leftovers(engine, app_image):
    import course_helpers.lesson.run as run

    c = engine.containers.create(app_image.image_id, labels={LABEL_SESSION: SESSION_ID})
    run._reaper_client[:] = [engine]
    run._started.add(c.id)
    run._reap()
    assert _gone(engine, c.id)
