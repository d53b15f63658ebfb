"""Set-up steps that talk while they work: one line of progress per thing done, commands streamed."""
from __future__ import annotations

import os
import subprocess
from typing import Callable

from ..errors import SetupError

Progress = Callable[[str], None]


def say(progress: Progress | None, text: str) -> None:
    """Pass one line of progress on, when someone listens."""
    if progress:
        progress(text)


def run_streamed(cmd: list[str], progress: Progress | None, what: str, cwd: str | None = None) -> None:
    """Run a command, passing its output lines to progress; raise SetupError on failure."""
    say(progress, "$ " + " ".join(cmd))
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=cwd)
    tail: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        line = line.rstrip()
        tail = (tail + [line])[-15:]
        say(progress, "  " + line)
    if proc.wait() != 0:
        raise SetupError(f"{what} failed (exit {proc.returncode}); read the lines above, fix the cause "
                         f"(network, disk space, apt lock) and run the set-up again.\n" + "\n".join(tail))
