"""Remember when the course's builds ran, so their BuildKit cache can be told apart.

BuildKit keeps its cache apart from images and labels none of it, so the only
way to find the entries the course made is by when they were made.  Every
build appends its time window here; ``fresh_start()`` prunes the cache
entries created inside those windows and nothing else.
"""
from __future__ import annotations

import json
from pathlib import Path

from .config import state_dir


def windows_file() -> Path:
    return state_dir() / "build-windows.jsonl"


def record_build_window(start: float, end: float) -> None:
    """Note that a course build ran between two ``time.time()`` values."""
    with open(windows_file(), "a") as out:
        out.write(json.dumps({"start": start, "end": end}) + "\n")


def build_windows() -> list[tuple[float, float]]:
    """All recorded windows, oldest first."""
    try:
        lines = windows_file().read_text().splitlines()
    except FileNotFoundError:
        return []
    windows = []
    for line in lines:
        try:
            item = json.loads(line)
            windows.append((float(item["start"]), float(item["end"])))
        except (ValueError, KeyError, TypeError):
            continue  # a torn line from an interrupted write
    return windows


def forget_windows() -> None:
    """Drop the record once the entries it pointed to are pruned."""
    windows_file().unlink(missing_ok=True)
