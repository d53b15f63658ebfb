"""Start or stop a private engine of any release beside the main one, with the course's base image in it.

For trying the course on another engine by hand (maintainers, instructors checking
a release before class):

    .venv/bin/python tools/private_engine.py start e20 --release docker20
    eval "$(.venv/bin/python tools/private_engine.py env e20 --release docker20)"
    .venv/bin/python tools/private_engine.py stop e20

``start`` prints progress, then the ``export`` line that points a shell (docker,
the course, nbval) at it; ``env`` prints that line only. The engine keeps running
after this script ends; ``stop`` stops it and removes its bridge (its data stays).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from course_helpers.engine.base_image import ensure_base_image  # noqa: E402
from course_helpers.engine.daemon import start_private_engine, stop_private_engine  # noqa: E402
from course_helpers.engine.packages import RELEASES, release  # noqa: E402
from course_helpers.errors import CourseError  # noqa: E402


def export_line(name: str, rel: str) -> str:
    return f"{release(rel).export_line()} DOCKER_HOST=unix:///run/dlc-{name}/docker.sock"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["start", "stop", "env"])
    parser.add_argument("name", help="1 to 8 lowercase letters or digits")
    parser.add_argument("--release", default="docker28", choices=sorted(RELEASES))
    parser.add_argument("--store", choices=["containerd", "overlay2"], default=None)
    args = parser.parse_args(argv)
    try:
        if args.action == "stop":
            print("stopped" if stop_private_engine(args.name) else "it was not running")
            return 0
        if args.action == "start":
            progress = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
            engine = start_private_engine(args.name, release=args.release, store=args.store, progress=progress)
            ensure_base_image(progress=progress, pull=False, cli=engine.client())
        print(export_line(args.name, args.release))
        return 0
    except CourseError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
