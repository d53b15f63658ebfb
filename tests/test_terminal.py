"""docker(): the cheat sheet's read-only commands, run on the real engine, and nothing that writes."""
from __future__ import annotations

import pytest

from course_helpers import docker
from course_helpers.errors import CourseError


@pytest.mark.parametrize("args", [("build", "."), ("rmi", "x"), ("builder", "prune", "-f"), ("buildx", "history", "ls"),
                                  ("system", "prune")])
def test_commands_that_change_the_engine_are_refused_in_one_sentence(args):
    with pytest.raises(CourseError) as err:
        docker(*args)
    assert "read-only" in str(err.value) and "\n" not in str(err.value)


def test_a_read_only_command_shows_what_the_engine_printed(engine):
    run = docker("version", "--format", "{{.Server.Version}}")
    assert run.ok and run.lines == [engine.version()["Version"]]
    assert repr(run).splitlines()[0] == "$ docker version --format {{.Server.Version}}"


def test_a_refusal_is_returned_with_the_engines_words(engine):
    run = docker("image", "inspect", "course-no-such-image:never")
    assert not run.ok and "course-no-such-image" in run.output
    assert "exit status" in repr(run)


def test_long_output_is_cut_and_counted(engine):
    run = docker("info", lines=2)
    shown = repr(run).splitlines()
    more = len(run.lines) - 2
    assert more > 0 and shown[-1] == f"... {more} more line{'' if more == 1 else 's'}"
