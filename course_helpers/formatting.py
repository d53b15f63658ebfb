"""How the course prints things: sizes, seconds, ids, engine times and tables, in one place.

Every text form a notebook compares goes through here, so the sanitize file
(notebooks/sanitize.cfg) only has to know these shapes: ``sha256:`` + 12 hex,
``1.8s``, ``11.7MB`` and ISO dates.
"""
from __future__ import annotations

import datetime as _dt
import html
import os
import re
import shlex
from pathlib import Path
from typing import Any, Collection, Mapping, Sequence


def format_size(size: int) -> str:
    """Bytes as ``docker history`` prints them: 3 significant digits, powers of 1000 (``11.7MB``, ``0B``)."""
    if size < 1000:
        return f"{int(size)}B"
    value = float(size)
    for unit in ("kB", "MB", "GB", "TB"):
        value /= 1000
        if float(f"{value:.3g}") < 1000 or unit == "TB":  # 999.9kB rounds to 1MB, not 1e+03kB
            break
    return f"{value:.3g}{unit}"


def format_seconds(seconds: float) -> str:
    """``1.8s``: one decimal, as BuildKit prints step times."""
    return f"{seconds:.1f}s"


def short_id(image_id: str) -> str:
    """``sha256:`` + the first 12 hex digits: short enough to read, and what the sanitize file matches."""
    digest = image_id.split(":", 1)[1] if ":" in image_id else image_id
    return f"sha256:{digest[:12]}"


def short_hex(digest: str) -> str:
    """A digest cut to 12 hex characters, without its algorithm (as ``docker image ls`` prints ids)."""
    return digest.split(":")[-1][:12]


def parse_time(value: Any) -> float | None:
    """An engine timestamp as POSIX seconds: unix seconds, or RFC 3339 with up to nanoseconds (Go's format).

    Returns:
        Seconds since the epoch, or None when the value is empty or not a time.
    """
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)):
        return float(value)
    match = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:?\d\d)?$", str(value).strip())
    if not match:
        return None
    zone = match.group(3) or "Z"
    zone = "+00:00" if zone == "Z" else zone
    stamp = _dt.datetime.fromisoformat(match.group(1) + zone).timestamp()
    return stamp + float("0" + match.group(2)) if match.group(2) else stamp


def iso_time(value: Any) -> str:
    """An engine timestamp as ``YYYY-MM-DDTHH:MM:SSZ`` (UTC), or ``""`` when unknown."""
    seconds = parse_time(value)
    if seconds is None:
        return "" if value in (None, "") else str(value)
    return _dt.datetime.fromtimestamp(seconds, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def table_text(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Columns padded to their widest cell, three spaces apart, as the docker CLI prints tables."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row)]
    lines = ["   ".join(c.ljust(w) for c, w in zip(headers, widths)).rstrip()]
    lines += ["   ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join(lines)


class Html(str):
    """A table cell that is HTML already (a coloured badge, say): :func:`table_html` puts it in unescaped."""


def table_html(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, title: str = "", note: str = "",
               code: bool | Collection[str] = False, align: Mapping[str, str] | None = None,
               drop_single_stage: bool = False, command: str | Sequence[str] = "") -> str:
    """An HTML table for a notebook: the course's one table renderer.

    Args:
        headers: column names.
        rows: cells, shown with ``str()`` and escaped (an :class:`Html` cell goes in as it is).
        title: a bold line above the table.
        note: a small line below it.
        code: show cells in a monospace font (ids, instructions): True for every column, or the
            names of the columns that hold code.
        align: ``{"seconds": "right"}``: alignment per column name (default left).
        drop_single_stage: leave out a first column named ``stage`` when every row has the same stage.
        command: the docker command(s) that show the same on a terminal, put under the table
            (:func:`command_html`).

    Returns:
        The HTML, title, note and command included.
    """
    if drop_single_stage and headers and headers[0] == "stage" and len({str(r[0]) for r in rows}) <= 1:
        headers, rows = headers[1:], [r[1:] for r in rows]
    align = align or {}
    styles = [f" style='text-align:{align.get(h, 'left')}'" for h in headers]
    in_code = [code is True or (not isinstance(code, bool) and h in code) for h in headers]

    def cell(value: Any, column: int) -> str:
        text = value if isinstance(value, Html) else html.escape(str(value))
        return f"<code>{text}</code>" if in_code[column] and not isinstance(value, Html) else text

    head = "".join(f"<th{style}>{html.escape(h)}</th>" for h, style in zip(headers, styles))
    body = "".join("<tr>" + "".join(f"<td{styles[i]}>{cell(c, i)}</td>" for i, c in enumerate(row)) + "</tr>"
                   for row in rows)
    top = f"<p><b>{html.escape(title)}</b></p>" if title else ""
    foot = f"<p><small>{html.escape(note)}</small></p>" if note else ""
    return f"{top}<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{foot}{command_html(command)}"


# --- the docker command behind a result --------------------------------------------------------
# Every result a learner reads names the command that shows the same on their own terminal,
# so the notebooks teach Docker, not the helpers.  The forms below are the only ones.

def shell_line(argv: Sequence[str], env: Mapping[str, str] | None = None) -> str:
    """A command as a learner types it: ``DOCKER_BUILDKIT=1 docker build -t flask-demo:first .``."""
    words = [f"{key}={shlex.quote(value)}" for key, value in (env or {}).items()]
    return " ".join(words + [shlex.quote(str(arg)) for arg in argv])


def home_shown(path: str | Path) -> str:
    """``path`` with the home folder written ``~``: no machine's home in a stored notebook output."""
    return str(path).replace(str(Path.home()), "~", 1)


def shown_path(path: str | Path) -> str:
    """A folder as a command names it: relative to the working directory when it is near (in a
    notebook, ``../workspace/020-first-dockerfile``), absolute when it is elsewhere."""
    relative = os.path.relpath(Path(path).resolve(), Path.cwd().resolve())
    return relative if relative.split(os.sep).count("..") <= 1 else str(Path(path).resolve())


def _commands(command: str | Sequence[str]) -> list[str]:
    return [command] if isinstance(command, str) else list(command)


def command_text(command: str | Sequence[str]) -> str:
    """``on your terminal: $ docker history --no-trunc flask-demo:first`` (one line a command), or ``""``."""
    lines = [c for c in _commands(command) if c]
    if not lines:
        return ""
    return "on your terminal:" + "".join(f"\n  $ {line}" for line in lines)


def command_html(command: str | Sequence[str]) -> str:
    """The same as :func:`command_text`, for a notebook: small, under a table."""
    lines = [c for c in _commands(command) if c]
    if not lines:
        return ""
    code = "<br>".join(f"<code>$ {html.escape(line)}</code>" for line in lines)
    return f"<p><small>on your terminal:</small><br>{code}</p>"


def folded_html(summary: str, text: str) -> str:
    """Long text (a build log) folded under one line that opens it: HTML ``<details>``."""
    return (f"<details><summary><small>{html.escape(summary)}</small></summary>"
            f"<pre style='font-size:85%'>{html.escape(text)}</pre></details>")
