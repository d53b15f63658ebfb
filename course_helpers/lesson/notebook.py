"""Notebook niceties: a course error shows as one short message, not a traceback wall."""
from __future__ import annotations

from ..errors import CourseError


def _short_error(shell, etype, value, tb, tb_offset=None):
    # IPython sends what we return as the cell's error output: the sentence and,
    # for a build, the last lines of its log; never the helper's own frames.
    lines = str(value).splitlines() or [etype.__name__]
    lines[0] = f"{etype.__name__}: {lines[0]}"
    shell._showtraceback(etype, value, lines)
    return lines


def install_error_handler() -> bool:
    """Show CourseError as its message only, when running inside IPython.

    Returns:
        True when a shell was found and the handler installed.
    """
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    if shell is None:
        return False
    shell.set_custom_exc((CourseError,), _short_error)
    return True
