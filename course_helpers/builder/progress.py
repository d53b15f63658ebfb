"""Where a build's output goes while it runs, and what stays in the cell when it is done.

In a notebook the log streams live into one display that is updated in place (the
last lines, as a terminal shows them), so a learner never waits in silence; when the
build ends, that display becomes the step table, the command, and the whole log
folded under one line.  The stored output is then that final view only, not 60 lines
of log.  Anywhere else (a terminal, pytest) the lines are printed as they come.
"""
from __future__ import annotations

import html
import time
from typing import TYPE_CHECKING, Any, Callable

from ..formatting import folded_html

if TYPE_CHECKING:
    from .report import BuildReport

_TAIL = 25  # lines shown while the build runs: enough to follow, bounded however long the log
_EVERY = 0.1  # seconds between two redraws; the last lines are always drawn at the end


def in_notebook() -> bool:
    """True inside a Jupyter kernel (where a display can be updated), False in a terminal or pytest."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


class LiveLog:
    """Receives a build's lines one by one (``live(line)``), and shows the outcome at ``finish()``.

    Args:
        title: what is being built, e.g. ``flask-demo:first``.
        progress: True shows the lines (live display in a notebook, print elsewhere), False keeps
            quiet, a callable receives each line instead.
    """

    def __init__(self, title: str, progress: bool | Callable[[str], None] = True):
        self.title = title
        self.lines: list[str] = []
        self._say: Callable[[str], None] | None = progress if callable(progress) else None
        self._handle: Any = None
        self._drawn = 0.0
        if progress is True:
            if in_notebook():
                from IPython.display import display

                self._handle = display(self._live_view(), raw=True, display_id=True)
            else:
                self._say = lambda line: print(line, flush=True)  # flush: each line as it comes

    def __call__(self, line: str) -> None:
        self.lines.append(line)
        if self._say is not None:
            self._say(line)
        elif self._handle is not None and time.monotonic() - self._drawn >= _EVERY:
            self._draw()

    def _draw(self) -> None:
        self._handle.update(self._live_view(), raw=True)
        self._drawn = time.monotonic()

    def _live_view(self) -> dict[str, str]:
        tail = self.lines[-_TAIL:]
        earlier = len(self.lines) - len(tail)
        head = f"building {self.title} ... ({earlier} earlier lines above)" if earlier else \
            f"building {self.title} ..."
        return {"text/plain": "\n".join([head] + tail),
                "text/html": f"<p><small>{html.escape(head)}</small></p>"
                             f"<pre style='font-size:85%'>{html.escape(chr(10).join(tail))}</pre>"}

    def finish(self, report: "BuildReport | None") -> None:
        """Replace the live lines with the report and the folded log (or, on failure, the folded log).

        A failed build's error shows the last lines of its log itself, so the whole log folds here.
        """
        if self._handle is None:
            return
        lines = f"build log of {self.title}: {len(self.lines)} lines"
        if report is not None and report.builder == "classic":
            # labels= of the API adds one LABEL step per course label after the Dockerfile's own.
            lines += ("; its last LABEL io.docker-layers-course.* steps are the course's own labels, which "
                      "mark the image as the course's: your own docker build has none")
        folded = folded_html(f"{lines} (click to open)", "\n".join(self.lines))
        if report is None:
            self._handle.update({"text/plain": lines, "text/html": folded}, raw=True)
            return
        self._handle.update({"text/plain": f"{report.text()}\n{lines} (in .log)",
                             "text/html": report._repr_html_() + folded}, raw=True)
