"""Files in the course's state folder that several processes (kernels, test runs) share.

Two rules make them safe without a lock server: a whole file is replaced
atomically (written under a name of its own, then renamed over the old one),
and a record is added with one ``O_APPEND`` write, which the kernel never
interleaves with another process's.  Readers skip a torn or foreign line.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

try:
    import fcntl
except ImportError:  # Windows: appends stay atomic enough; rewrites may lose a concurrent record
    fcntl = None  # type: ignore[assignment]


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path``'s lock file while a record file is changed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if fcntl is None:
        yield
        return
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text``: readers see the old file or the new one, never half of either."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def append_record(path: Path, record: dict[str, Any]) -> None:
    """Add one JSON line to ``path`` in a single write."""
    data = (json.dumps(record, separators=(",", ":")) + "\n").encode()
    with locked(path):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)


def rewrite_records(path: Path, keep: Callable[[dict[str, Any]], bool],
                    change: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> None:
    """Keep only the records ``keep`` accepts (as ``change`` makes them), with no record appended meanwhile lost."""
    with locked(path):
        kept = [change(item) if change else item for item in read_records(path) if keep(item)]
        write_atomic(path, "".join(json.dumps(item, separators=(",", ":")) + "\n" for item in kept))


def read_records(path: Path) -> Iterator[dict[str, Any]]:
    """The JSON lines of ``path`` that parse, oldest first (none when it does not exist)."""
    try:
        text = path.read_text()
    except (FileNotFoundError, NotADirectoryError):
        return
    for line in text.splitlines():
        try:
            item = json.loads(line)
        except ValueError:
            continue
        if isinstance(item, dict):
            yield item
