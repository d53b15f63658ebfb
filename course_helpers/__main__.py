"""``python -m course_helpers setup|preflight|clean`` (what ./course calls)."""
from __future__ import annotations

import os
import sys
import time

from .errors import CourseError


def _setup(podman: bool = False) -> int:
    from .engine.base_image import ensure_base_image
    from .engine.provision import ensure_engine

    start = time.monotonic()
    ensure_engine()
    ensure_base_image(pull=os.environ.get("COURSE_OFFLINE") != "1")
    print(f"engine and base image ready in {time.monotonic() - start:.1f} s", flush=True)
    if podman:
        from .config import BASE_IMAGE
        from .engine.podman import PodmanService

        service = PodmanService().start()
        service.load_image(BASE_IMAGE)
        print(f"Podman's service is ready: export DOCKER_HOST={service.address} to run the course on it "
              "(builds then go through Buildah)", flush=True)
    return 0


def _clean() -> int:
    from .engine.housekeeping import cleanup
    print(cleanup(all_sessions=True))
    return 0


def main(argv: list[str]) -> int:
    cmd = argv[0] if argv else "setup"
    try:
        if cmd == "setup":
            return _setup(podman="--podman" in argv[1:])
        if cmd == "preflight":
            from .engine.preflight import main as preflight
            return preflight(int(os.environ.get("COURSE_PORT", "8888")))
        if cmd == "clean":
            return _clean()
    except CourseError as exc:
        # One sentence for the learner, not a traceback.
        print(f"\nERROR: {exc}", file=sys.stderr)
        return 1
    print(f"unknown command {cmd!r}; use setup, preflight or clean", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
