"""``python -m course_helpers.classroom up|status|down`` (what ``./course classroom`` calls)."""
from __future__ import annotations

import argparse
import sys

from ..errors import CourseError


def _say(line: str) -> None:
    print(line, flush=True)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="./course classroom",
                                     description="JupyterHub on 127.0.0.1 with a Docker engine of their own for every learner.")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_up = sub.add_parser("up", help="create the learners and start the hub")
    p_up.add_argument("--learners", type=int, required=True, metavar="N", help="how many learners")
    p_up.add_argument("--prefix", default="learner", help="login names are PREFIX1..PREFIXN (default: learner)")
    p_up.add_argument("--port", type=int, default=8000, help="the hub's port on 127.0.0.1 (default: 8000)")
    p_up.add_argument("--engine", default="auto", choices=["auto", "rootless", "root"],
                      help="rootless engines, or a root dockerd per learner (weaker isolation); auto tries rootless")
    p_up.add_argument("--idle-timeout", type=int, default=3600, metavar="S",
                      help="cull a server and its engine after S seconds without activity (default: 3600)")
    p_up.add_argument("--cull-every", type=int, default=300, metavar="S", help="how often the culler looks")
    p_up.add_argument("--disk-gb", type=int, default=20, metavar="GB",
                      help="each learner's engine disk, a sparse file (default: 20)")
    p_up.add_argument("--start-servers", action="store_true",
                      help="also start every learner's server and engine now, before the class arrives")
    p_up.add_argument("--registry", action=argparse.BooleanOptionalAction, default=None,
                      help="one registry for the class: the base every engine pulls, each learner's pushes and "
                           "cache exports (default: as the last up)")
    sub.add_parser("status", help="each learner's server, engine, disk used and images")
    p_down = sub.add_parser("down", help="stop the hub, the servers, the engines and the registry (learners' data stays)")
    p_down.add_argument("--purge", action="store_true",
                        help="also delete the learners' accounts, homes and engine disks, and the registry's data")
    args = parser.parse_args(argv)

    from . import commands

    try:
        if args.cmd == "up":
            commands.up(args.learners, prefix=args.prefix, port=args.port, engine=args.engine,
                        idle_timeout=args.idle_timeout, cull_every=args.cull_every, disk_gb=args.disk_gb,
                        start_servers=args.start_servers, registry=args.registry, progress=_say)
        elif args.cmd == "status":
            commands.status(progress=_say)
        else:
            commands.down(purge=args.purge, progress=_say)
    except CourseError as exc:
        print(f"\nERROR: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
