"""What every public helper does around its work: one decorator, so no helper forgets a part.

* renew this process's lesson claims (and say so when another notebook took one);
* sweep dead kernels' containers (engine.reaper);
* turn the engine's errors into one sentence (errors.from_engine), in one place.
"""
from __future__ import annotations

import functools
from typing import Any, Callable, TypeVar

from ..errors import CourseError, from_engine
from . import claims, reaper

F = TypeVar("F", bound=Callable[..., Any])


def course_call(doing: str) -> Callable[[F], F]:
    """Wrap a public helper.

    Args:
        doing: what the helper does, as the middle of a sentence (``"building an image"``),
            for the error message when the engine fails.
    """
    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            top = claims.enter_call()
            try:
                if top:
                    claims.renew()
                    reaper.sweep()
                return fn(*args, **kwargs)
            except CourseError:
                raise
            except Exception as exc:
                mapped = from_engine(exc, doing)
                if mapped is None:
                    raise
                raise mapped from exc
            finally:
                claims.exit_call()
        return wrapper  # type: ignore[return-value]
    return decorate
