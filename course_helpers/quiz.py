"""A tick-box version of the predict-then-verify exercise (ipywidgets).

``check_prediction()`` takes any iterable of instructions, so a quiz can stand
where a hand-edited list would.  Widgets are not compared by nbval, and an
unticked quiz is simply the guess "nothing cached".
"""
from __future__ import annotations

from pathlib import Path

from .dockerfile import parse_dockerfile

# Instructions that become steps a builder reports as cached or run (BuildKit's set;
# the classic builder also reports ENV, LABEL, CMD ..., which a learner may tick by name).
_STEP_KEYWORDS = {"RUN", "COPY", "ADD", "WORKDIR"}


class PredictionQuiz:
    """One checkbox per build step: tick the ones you expect to come from the cache.

    Iterating over the quiz yields the ticked instructions, so
    ``check_prediction(quiz, report)`` works as with a list.
    """

    def __init__(self, instructions: list[str]):
        import ipywidgets as widgets

        self.boxes = [widgets.Checkbox(value=False, description=text, indent=False,
                                       layout=widgets.Layout(width="auto")) for text in instructions]
        self.widget = widgets.VBox([widgets.HTML("<b>Tick each step you expect the builder to take "
                                                 "from its cache, then run the build.</b>"), *self.boxes])

    @property
    def expected_cached(self) -> list[str]:
        return [box.description for box in self.boxes if box.value]

    def __iter__(self):
        return iter(self.expected_cached)

    def __repr__(self) -> str:
        return "ticked as cached: " + (", ".join(self.expected_cached) or "nothing")

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)


def prediction_quiz(context: str | Path, dockerfile: str = "Dockerfile") -> PredictionQuiz:
    """A checklist of the steps of ``context/dockerfile``, for the learner to tick before building.

    Args:
        context: the build context folder.
        dockerfile: the Dockerfile's path inside it.

    Returns:
        A :class:`PredictionQuiz`; pass it to :func:`check_prediction` after the build.

    Raises:
        DockerfileError: the Dockerfile cannot be read; the message names the line.
    """
    parsed = parse_dockerfile(Path(context) / dockerfile)
    return PredictionQuiz([i.text for i in parsed.instructions if i.keyword in _STEP_KEYWORDS])
