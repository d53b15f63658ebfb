"""Pictures: per-step build times across several builds."""
from __future__ import annotations

from typing import Sequence

from ..builder.report import BuildReport


def plot_step_times(reports: Sequence[BuildReport], ax=None):
    """A stacked bar per build: how long each step took, cached steps drawn hatched.

    Args:
        reports: builds in the order they ran.
        ax: an existing matplotlib Axes to draw on (a new figure by default).

    Returns:
        The matplotlib Axes.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(8, 4))
    instructions: list[str] = []
    for report in reports:
        for step in report.steps:
            if step.instruction not in instructions and not step.instruction.upper().startswith("FROM"):
                instructions.append(step.instruction)
    colours = plt.get_cmap("tab10")
    labels = [report.tags[0] if report.tags else report.image_id[7:19] for report in reports]
    bottoms = [0.0] * len(reports)
    labelled: set[str] = set()
    for k, instruction in enumerate(instructions):
        for i, report in enumerate(reports):
            step = next((s for s in report.steps if s.instruction == instruction), None)
            if step is None:
                continue
            # A cached step takes no time; give it a sliver so it is still visible.
            height = max(step.seconds, 0.03)
            ax.bar(i, height, bottom=bottoms[i], color=colours(k % 10), edgecolor="black",
                   hatch="//" if step.cached else None,
                   label=None if instruction in labelled else instruction)
            labelled.add(instruction)
            bottoms[i] += height
    ax.legend(fontsize=8, loc="upper right")
    ax.set_xticks(range(len(reports)), labels, rotation=20)
    ax.set_ylabel("seconds (hatched: taken from the cache)")
    ax.set_title("Time per step, build by build")
    return ax
