"""The course's exceptions, and the one place where the engine's own errors become them.

Notebooks show only ``str(error)`` (see :mod:`course_helpers.lesson.notebook`),
so every message stands on its own: what failed, then what to do.  Engine
errors (docker-py's ``APIError``, a refused socket, a stopped daemon) are
mapped by :func:`from_engine`, so a learner never reads a traceback through
the helpers, and never reads "fix the Dockerfile" when the engine stopped.
"""
from __future__ import annotations

import re


class CourseError(Exception):
    """Base class of every error the course helpers raise."""


class EngineUnavailable(CourseError):
    """No Docker engine answers (it is not running, stopped, or DOCKER_HOST points nowhere)."""


class SetupError(CourseError):
    """Preparing the machine (engine install, base image) failed."""


class RegistryUnavailable(CourseError):
    """The course's image registry (or another one a helper was given) does not answer."""


class InvalidName(CourseError, ValueError):
    """An image name or other argument Docker would refuse, caught before the engine sees it."""


class BuildOutput(CourseError):
    """A failed build: its sentence, then the last lines of its output.

    Attributes:
        log_tail: the last lines of the build output.
        command: the command that ran.
    """

    def __init__(self, message: str, *, log_tail: str = "", command: str | None = None):
        super().__init__(message)
        self.log_tail = log_tail
        self.command = command

    def __str__(self) -> str:
        text = self.args[0]
        if self.log_tail:
            text += "\n--- last lines of the build output ---\n" + self.log_tail
        return text


class BuildError(BuildOutput):
    """A ``docker build`` failed.

    Attributes:
        step: the failing step as the learner's Dockerfile counts it (1-based), or None.
        instruction: the failing instruction as written, or None.
        exit_code: the exit code of the failing RUN, or None.
        log_tail: the last lines of the build output.
        command: the command that ran.
    """

    def __init__(self, message: str, *, step: int | None = None, instruction: str | None = None,
                 exit_code: int | None = None, log_tail: str = "", command: str | None = None):
        super().__init__(message, log_tail=log_tail, command=command)
        self.step = step
        self.instruction = instruction
        self.exit_code = exit_code


class EngineFault(BuildOutput):
    """The engine failed at its own part of a build (exporting, unpacking or storing the image), not at a step.

    Not a :class:`BuildError`: no change to the Dockerfile fixes it, and a check that grades the
    learner's Dockerfile must not count it against them.

    Attributes:
        kind: which fault (:mod:`course_helpers.builder.faults` names them), e.g. ``"unpack race"``.
        engine_error: the engine's own words.
        retried: True when the course had already built once more and the engine failed again.
        log_tail: the last lines of the build output.
        command: the command that ran.
    """

    def __init__(self, message: str, *, kind: str = "", engine_error: str = "", retried: bool = False,
                 log_tail: str = "", command: str | None = None):
        super().__init__(message, log_tail=log_tail, command=command)
        self.kind = kind
        self.engine_error = engine_error
        self.retried = retried


class ContainerExited(CourseError):
    """A container stopped before it answered.

    Attributes:
        exit_status: the container's exit code.
        logs: what it printed.
    """

    def __init__(self, message: str, *, exit_status: int | None, logs: str):
        super().__init__(message)
        self.exit_status = exit_status
        self.logs = logs

    def __str__(self) -> str:
        return f"{self.args[0]}\n--- container output ---\n{self.logs.rstrip()}"


class DockerfileError(CourseError):
    """A Dockerfile that cannot be read: names the file and line."""


class LessonBusy(CourseError):
    """Another notebook is using the lesson's repository on this engine right now."""


class LessonInterrupted(CourseError):
    """Another notebook took over this lesson's repository while this one was idle."""


# --- the engine's errors ------------------------------------------------------------------------

ENGINE_STOPPED_HINT = "start it again (./course setup, or Docker Desktop) and run the cell again"


def is_connection_error(exc: BaseException) -> bool:
    """True when ``exc`` means the engine could not be reached (socket gone, connection refused or reset)."""
    import http.client

    import requests
    import urllib3

    from docker.errors import DockerException

    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError,
                            ConnectionError, FileNotFoundError, http.client.IncompleteRead,
                            urllib3.exceptions.ProtocolError)):
            return True
        if isinstance(exc, DockerException) and "Error while fetching server API version" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return False


def disk_full(doing: str) -> str:
    """The one sentence for an engine whose disk filled up."""
    return (f"The engine ran out of disk space while {doing}: free some with ./course clean or "
            "`docker system df`, then try again.")


def engine_stopped(doing: str) -> EngineUnavailable:
    """The one sentence for an engine that went away while the course used it."""
    return EngineUnavailable(f"The Docker engine stopped answering while {doing}: {ENGINE_STOPPED_HINT}.")


def from_engine(exc: BaseException, doing: str) -> CourseError | None:
    """The course error for an engine error, or None when it is not one the course knows.

    Args:
        exc: what docker-py (or requests under it) raised.
        doing: what the course was doing, as the middle of a sentence: ``"building flask-demo:first"``.

    Returns:
        A :class:`CourseError` with one actionable sentence, or None.
    """
    from docker.errors import APIError, ImageNotFound, NotFound

    if is_connection_error(exc):
        return engine_stopped(doing)
    if isinstance(exc, APIError):
        text = str(exc.explanation or exc)
        if "invalid reference format" in text:
            detail = " (repository names must be lowercase)" if "lowercase" in text else ""
            return InvalidName(f"The engine refused an image name while {doing}{detail}: "
                               f"{name_rules()}")
        if isinstance(exc, (ImageNotFound, NotFound)):
            return CourseError(f"The engine has no such object while {doing} ({text}): check the name, "
                               "or build it first.")
        if "port is already allocated" in text or "address already in use" in text:
            return CourseError(f"The port is already taken on this machine while {doing}: pass another "
                               "port, or stop what uses it.")
        if "no space left on device" in text:
            return CourseError(disk_full(doing))
        return CourseError(f"The engine refused the request while {doing}: {text}")
    return None


# --- names --------------------------------------------------------------------------------------

# Docker's reference grammar (distribution/reference): lowercase path components, an optional
# registry host with port, and a tag of up to 128 word characters, dots and dashes.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*"
_HOST = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?"
_REFERENCE = re.compile(rf"^(?:{_HOST}/)?{_COMPONENT}(?:/{_COMPONENT})*(?::[\w][\w.-]{{0,127}})?$")


def name_rules() -> str:
    return ("an image name is `repository:tag`, the repository in lowercase letters, digits and . _ - "
            "(e.g. 'flask-demo:first'); the tag may use letters of any case, digits, . _ -.")


def check_image_name(name: str) -> str:
    """Refuse, in one sentence, an image name Docker would refuse.

    Returns:
        The name, unchanged.

    Raises:
        InvalidName: the name does not follow Docker's rules; the message shows a fixed version.
    """
    if not isinstance(name, str) or not name:
        raise InvalidName(f"{name!r} is not an image name: {name_rules()}")
    if _REFERENCE.match(name):
        return name
    repo, sep, tag = name.rpartition(":")
    if not sep or "/" in tag:
        repo, tag = name, ""
    fixed = repo.lower() + (f":{tag}" if tag else "")
    if repo != repo.lower() and _REFERENCE.match(fixed):
        raise InvalidName(f"The image name {name!r} has capital letters in its repository part, which Docker "
                          f"refuses: use {fixed!r} (only the tag after ':' may have capitals).")
    raise InvalidName(f"{name!r} is not a valid image name: {name_rules()}")


def check_port(port: object, what: str = "port") -> int:
    """A TCP port number, or one sentence saying why not."""
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise InvalidName(f"{what}={port!r} is not a TCP port: use a whole number from 1 to 65535 "
                          "(the app's port inside the container, 5000 for Flask).")
    return port
