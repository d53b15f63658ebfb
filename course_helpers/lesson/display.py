"""Pictures of real builds and images: which steps ran, how long they took, and what an image's rows made.

Each picture is drawn from results the course got from the engine (BuildReports, a
history), never by hand, and shows itself in a notebook as HTML or a PNG, with a short
stable text beside it (what nbval compares, and what a terminal prints).
"""
from __future__ import annotations

import html
import io
from typing import Any, Sequence

from ..builder.report import BADGE_COLOURS, BuildReport, Step, stage_name
from ..formatting import command_html, command_text, format_seconds, format_size, shell_line, short_hex, table_text
from ..layers.images import History, history

# A build step's place in the grid and the chart: (stage, instruction, how many times it came before).
StepKey = tuple[str, str, int]


def _keyed(report: BuildReport) -> list[tuple[StepKey, Step]]:
    """The steps of a build, FROM left out, each with a key that stays the same across builds."""
    seen: dict[tuple[str, str], int] = {}
    out = []
    for step in report.steps:
        if step.is_from:
            continue
        n = seen.get((step.stage, step.instruction), 0)
        seen[(step.stage, step.instruction)] = n + 1
        out.append(((step.stage, step.instruction, n), step))
    return out


def step_order(reports: Sequence[BuildReport]) -> list[StepKey]:
    """Every step of the builds once, in Dockerfile order: the last build's order, the others' steps fitted in.

    A step the last Dockerfile no longer has goes just after the step that came before it in
    its own build, so ``first``'s steps keep their place around ``fourth``'s new ``COPY``.
    """
    order: list[StepKey] = []
    for report in reversed(reports):
        before = -1
        for key, _ in _keyed(report):
            if key in order:
                before = order.index(key)
            else:
                before += 1
                order.insert(before, key)
    return order


def _build_name(report: BuildReport, reports: Sequence[BuildReport]) -> str:
    """``first`` for ``flask-demo:first`` when every build shares the repository, else the whole tag."""
    tags = [r.tags[0] if r.tags else r.short_id for r in reports]
    repos = {t.rsplit(":", 1)[0] for t in tags if ":" in t and not t.startswith("sha256:")}
    tag = report.tags[0] if report.tags else report.short_id
    return tag.rsplit(":", 1)[1] if len(repos) == 1 and ":" in tag and not tag.startswith("sha256:") else tag


def _label(key: StepKey, multi_stage: bool) -> str:
    stage, instruction, _ = key
    return f"[{stage_name(stage)}] {instruction}" if multi_stage else instruction


# ------------------------------------------------------------------ the grid


class StepGrid:
    """Builds side by side: one row per step in Dockerfile order, one column per build, RAN or CACHED.

    Attributes:
        builds: the builds' names (their tags, the repository left out when all share one).
        rows: ``(instruction, [state per build])``, the state ``"RAN"``, ``"CACHED"`` or None
            when that build's Dockerfile has no such step.
    """

    def __init__(self, reports: Sequence[BuildReport]):
        keys = step_order(reports)
        multi = len({stage for stage, _, _ in keys}) > 1
        self.builds = [_build_name(r, reports) for r in reports]
        states = [{key: step.badge for key, step in _keyed(r)} for r in reports]
        self.rows: list[tuple[str, list[str | None]]] = [
            (_label(key, multi), [s.get(key) for s in states]) for key in keys]

    title = "Which steps ran, build by build (rows in Dockerfile order, FROM left out)"
    note = ("No docker command draws this: it sets the builds' step tables side by side. On a terminal, "
            "docker build --progress=plain prints CACHED beside each step it reused.")

    def column(self, build: str) -> dict[str, str | None]:
        """One build's column: ``{instruction: "RAN" | "CACHED" | None}``."""
        i = self.builds.index(build)
        return {instruction: states[i] for instruction, states in self.rows}

    def text(self) -> str:
        rows = [[instruction] + [s or "-" for s in states] for instruction, states in self.rows]
        return "\n".join([self.title, table_text(["STEP"] + self.builds, rows), "(- : no such step in that "
                          "build's Dockerfile)", self.note])

    def __str__(self) -> str:
        return self.text()

    __repr__ = __str__

    def _repr_html_(self) -> str:
        cell = "padding:2px 10px;text-align:center;font-size:85%;font-weight:bold;border:1px solid white"
        head = "".join(f"<th style='text-align:center'>{html.escape(b)}</th>" for b in self.builds)
        body = []
        for instruction, states in self.rows:
            tds = "".join(
                f"<td style='{cell};background:{BADGE_COLOURS[s]};color:white'>{s}</td>" if s else
                f"<td style='{cell};background:#eeeeee;color:#9e9e9e' title='not in this Dockerfile'>-</td>"
                for s in states)
            body.append(f"<tr><td style='text-align:left'><code>{html.escape(instruction)}</code></td>{tds}</tr>")
        legend = (f"<span style='color:{BADGE_COLOURS['RAN']}'>&#9632;</span> RAN: the builder ran the step "
                  f"&nbsp; <span style='color:{BADGE_COLOURS['CACHED']}'>&#9632;</span> CACHED: reused from the "
                  "cache &nbsp; - : no such step in that build's Dockerfile")
        return (f"<p><b>{html.escape(self.title)}</b></p><table class='course-step-grid'><thead><tr>"
                "<th style='text-align:left'>step</th>"
                f"{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
                f"<p><small>{legend}</small><br><small>{html.escape(self.note)}</small></p>")


def step_grid(reports: Sequence[BuildReport]) -> StepGrid:
    """A grid of builds × steps, each cell RAN or CACHED, rows in Dockerfile order.

    Args:
        reports: builds in the order they ran (what ``build()`` returned).

    Returns:
        A :class:`StepGrid`: a coloured table in a notebook, a text table in ``print()``.

    Example:
        >>> step_grid([first, second, third, fourth, fifth])
    """
    return StepGrid(reports)


# ------------------------------------------------------------------ the timing chart

CHART_DPI = 90
CHART_COLOURS = 64  # a palette PNG: a tenth of the bytes of a full-colour one, so a notebook stores it small
_FLOOR = 0.05  # the least height of a step's bar, as a share of the tallest build: a 0 s step still shows


class StepTimes:
    """The time per step of several builds, as a chart (PNG in a notebook) and as text.

    Attributes:
        figure: the matplotlib Figure; ax: its Axes (to change the chart, or save it).
    """

    def __init__(self, figure: Any, ax: Any, reports: Sequence[BuildReport]):
        self.figure, self.ax = figure, ax
        self._lines = [f"  {_build_name(r, reports):<10} {format_seconds(sum(s.seconds for s in r.steps)):>6}  "
                       f"{len(r.ran_steps)} ran, {len(r.cached_steps)} cached" for r in reports]

    def text(self) -> str:
        return "\n".join(["Time per step, build by build (a chart; the seconds its steps took):", *self._lines])

    def __str__(self) -> str:
        return self.text()

    __repr__ = __str__

    def _repr_png_(self) -> bytes:
        from PIL import Image  # matplotlib's own dependency

        drawn = io.BytesIO()
        self.figure.savefig(drawn, format="png", dpi=CHART_DPI, bbox_inches="tight", facecolor="white")
        out = io.BytesIO()
        Image.open(drawn).convert("RGB").quantize(colors=CHART_COLOURS).save(out, format="png", optimize=True)
        return out.getvalue()


def plot_step_times(reports: Sequence[BuildReport], ax=None) -> StepTimes:
    """A stacked bar per build: each step in its Dockerfile's order, coloured by instruction, cached steps hatched.

    A cached step takes about no time, and so does a small COPY; such a bar gets a least height
    (5 % of the tallest build) so it can still be seen, and the legend says so. The number
    above a bar is the build's real total.

    Args:
        reports: builds in the order they ran.
        ax: an existing matplotlib Axes to draw on (a new figure by default).

    Returns:
        A :class:`StepTimes`: the chart in a notebook, its ``.figure`` and ``.ax`` to change it.
    """
    from matplotlib.figure import Figure  # not pyplot: the chart shows once, as this result, never twice
    from matplotlib.patches import Patch

    if ax is None:
        figure = Figure(figsize=(9, 4))
        ax = figure.subplots()
    keys = step_order(reports)
    multi = len({stage for stage, _, _ in keys}) > 1
    colours = [f"C{k % 10}" for k in range(len(keys))]
    colour = dict(zip(keys, colours))
    totals = [sum(s.seconds for _, s in _keyed(r)) for r in reports]
    floor = _FLOOR * max(totals + [1.0])
    for i, report in enumerate(reports):
        bottom = 0.0
        for key, step in _keyed(report):  # this build's own order, bottom to top
            height = max(step.seconds, floor)
            ax.bar(i, height, bottom=bottom, width=0.6, color=colour[key], edgecolor="black", linewidth=0.6,
                   hatch="///" if step.cached else None, alpha=0.55 if step.cached else 1.0)
            bottom += height
        ax.text(i, bottom, format_seconds(totals[i]), ha="center", va="bottom", fontsize=9)
    handles = [Patch(facecolor=colour[key], edgecolor="black", label=_label(key, multi)) for key in keys]
    handles.append(Patch(facecolor="white", edgecolor="black", hatch="///",
                         label="hatched: from the cache"))
    handles.append(Patch(facecolor="none", edgecolor="none",
                         label=f"a step under {format_seconds(floor)} is\ndrawn {format_seconds(floor)} high to be seen"))
    ax.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False,
              title="steps, bottom to top", title_fontsize=8)
    ax.set_xticks(range(len(reports)), [_build_name(r, reports) for r in reports])
    ax.set_ylabel("seconds")
    ax.set_ylim(0, max(totals + [1.0]) * 1.15 + floor * len(keys))
    ax.set_title("Time per step, build by build")
    return StepTimes(ax.figure, ax, reports)


# ------------------------------------------------------------------ the layer stack

_LAYER_COLOUR = "#1565c0"
_BASE_COLOUR = BADGE_COLOURS["BASE"]


class LayerStack:
    """An image's history rows as a stack, newest on top: which rows made a layer, which changed the config only.

    Attributes:
        image: the image's name.
        rows: the Dockerfile's rows, newest first: ``(instruction, size, diff id or None)``.
        base: the base image's name, base_rows and base_layers: how many rows and layers it gave.
    """

    def __init__(self, rows: History):
        self.image = rows.image
        self.base = rows.base
        mine = [r for r in rows if r.origin == "dockerfile"]
        theirs = [r for r in rows if r.origin == "base"]
        self.rows = [(r.created_by, r.size, r.diff_id) for r in mine]
        self.base_rows, self.base_layers = len(theirs), sum(1 for r in theirs if r.diff_id)

    @property
    def title(self) -> str:
        layers = sum(1 for *_, d in self.rows if d)
        return (f"{self.image}, newest row on top: {len(self.rows)} rows of its Dockerfile made {layers} layers; "
                f"{len(self.rows) - layers} only changed the image config")

    @property
    def commands(self) -> list[str]:
        return [shell_line(["docker", "history", "--no-trunc", self.image]),
                shell_line(["docker", "image", "inspect", "--format", "{{json .RootFS.Layers}}", self.image])]

    def _base_line(self) -> str:
        return (f"base image {self.base}: {self.base_rows} row(s), {self.base_layers} layer(s)" if self.base_rows
                else "")

    def text(self) -> str:
        lines = [self.title]
        for instruction, size, diff_id in self.rows:
            where = f"layer {short_hex(diff_id)}" if diff_id else "config only"
            lines.append(f"  {where:<19} {format_size(size) if diff_id else '':>7}  {instruction}")
        if self.base_rows:
            lines.append(f"  {'base':<19} {'':>7}  {self._base_line()}")
        lines.append(command_text(self.commands))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.text()

    __repr__ = __str__

    def _repr_html_(self) -> str:
        box = "margin:3px 0;padding:4px 10px;border-radius:3px;font-size:90%"
        parts = []
        for instruction, size, diff_id in self.rows:
            text = html.escape(instruction)
            if diff_id:
                parts.append(f"<div class='course-layer' style='{box};background:{_LAYER_COLOUR};color:white'>"
                             "<b>layer</b> "
                             f"<small>{short_hex(diff_id)} &middot; {format_size(size)}</small><br>"
                             f"<code style='color:white;background:none'>{text}</code></div>")
            else:
                parts.append(f"<div class='course-config-only' style='{box};border:2px dashed #9e9e9e;color:#616161'>"
                             "<b>config only, no "
                             f"layer</b><br><code style='background:none'>{text}</code></div>")
        if self.base_rows:
            parts.append(f"<div style='{box};background:{_BASE_COLOUR};color:white'><b>base image</b> "
                         f"<small>{html.escape(self._base_line().removeprefix('base image '))}</small></div>")
        legend = (f"<span style='color:{_LAYER_COLOUR}'>&#9632;</span> a layer: files the row added "
                  "(its diff id and size) &nbsp; <span style='color:#9e9e9e'>&#9633;</span> dashed: the row "
                  "changed only the image config (CMD, ENV, LABEL, ...), with no layer")
        return (f"<p><b>{html.escape(self.title)}</b></p><div class='course-layer-stack' style='max-width:640px'>"
                f"{''.join(parts)}</div>"
                f"<p><small>{legend}</small></p>{command_html(self.commands)}")


def layer_stack(image: Any) -> LayerStack:
    """A picture of an image's history: each row of its Dockerfile as a layer or as a config change.

    Args:
        image: a :class:`History` (what ``history()`` returned), or a tag, id or BuildReport.

    Returns:
        A :class:`LayerStack`: boxes in a notebook, newest on top; text in ``print()``.
    """
    return LayerStack(image if isinstance(image, History) else history(image))
