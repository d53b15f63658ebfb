"""The course's exceptions: one base class, each message one actionable sentence.

Notebooks show only ``str(error)`` (see :func:`course_helpers.display.install_error_handler`),
so every message must stand on its own: what failed, then what to do.
"""
from __future__ import annotations


class CourseError(Exception):
    """Base class of every error the course helpers raise."""


class EngineUnavailable(CourseError):
    """No Docker engine answers, and the course could not start one."""


class SetupError(CourseError):
    """Preparing the machine (engine install, base image) failed."""


class BuildError(CourseError):
    """A ``docker build`` failed.

    Attributes:
        step: index of the failing step (1-based, as Docker counts), or None.
        instruction: the failing Dockerfile line as written, or None.
        exit_code: the exit code of the failing RUN, or None.
        log_tail: the last lines of build output.
        command: the command that ran (BuildKit CLI builds), or None.
    """

    def __init__(self, message: str, *, step: int | None = None, instruction: str | None = None,
                 exit_code: int | None = None, log_tail: str = "", command: str | None = None):
        super().__init__(message)
        self.step = step
        self.instruction = instruction
        self.exit_code = exit_code
        self.log_tail = log_tail
        self.command = command

    def __str__(self) -> str:
        text = self.args[0]
        if self.log_tail:
            text += "\n--- last lines of the build output ---\n" + self.log_tail
        return text


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
