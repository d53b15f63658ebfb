"""A click-through version of the predict-then-verify exercise (ipywidgets).

One row per step, three answers: cached, runs, or depends (for a step that no
one can know before building: a ``COPY --from`` of a stage that re-runs, and
what follows it).  ``check_prediction()`` takes the quiz as it takes a list.
Widgets are not compared by nbval.  Every row starts with no answer chosen, so an
untouched quiz is "not answered yet", never a guess the learner did not make.
"""
from __future__ import annotations

import html
from collections.abc import Mapping
from pathlib import Path

from ..dockerfile.parse import parse_dockerfile


class PredictionQuiz:
    """One row per build step: choose cached, runs or depends for each.

    ``quiz.answers`` maps each instruction to the choice, or None for a row not answered yet;
    iterating yields the instructions chosen as cached.  ``check_prediction(quiz, report)`` reads
    the three-way answers.
    """

    CHOICES = ("cached", "runs", "depends")

    def __init__(self, instructions: list[str]):
        import ipywidgets as widgets

        self.instructions = list(instructions)
        self.buttons = [widgets.ToggleButtons(options=self.CHOICES, value=None, style={"button_width": "70px"})
                        for _ in self.instructions]
        rows = [widgets.HBox([button, widgets.HTML(f"<code>{html.escape(text)}</code>")])
                for button, text in zip(self.buttons, self.instructions)]
        self.widget = widgets.VBox([widgets.HTML("<b>For each step, say what you expect the builder to do, "
                                                 "then run the build.</b>"), *rows])

    @property
    def answers(self) -> dict[str, str | None]:
        return {text: button.value for text, button in zip(self.instructions, self.buttons)}

    def keys(self):
        return self.answers.keys()

    def __getitem__(self, instruction: str) -> str:
        return self.answers[instruction]

    def items(self):
        return self.answers.items()

    @property
    def expected_cached(self) -> list[str]:
        return [text for text, value in self.answers.items() if value == "cached"]

    def __iter__(self):
        return iter(self.expected_cached)

    def __repr__(self) -> str:
        return "; ".join(f"{text}: {value or 'not answered yet'}" for text, value in self.answers.items()) \
            or "no steps"

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
    # The steps both builders report as cached or run: those that make a layer (the classic builder
    # also reports ENV, LABEL, CMD ..., which a learner may still name in check_prediction()).
    return PredictionQuiz([i.text for i in parsed.instructions if i.makes_layer])


Mapping.register(PredictionQuiz)  # check_prediction() reads its three-way answers
