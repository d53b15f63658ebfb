"""``python -m course_helpers setup|preflight|clean|env`` (what ./course calls)."""
from __future__ import annotations

import os
import sys
import time

from .errors import CourseError


def _setup(podman: bool = False, engine: str | None = None, registry: bool = False) -> int:
    from .engine.base_image import ensure_base_image
    from .engine.provision import ensure_engine

    start = time.monotonic()
    ensure_engine(engine=engine)
    ensure_base_image(pull=os.environ.get("COURSE_OFFLINE") != "1")
    print(f"engine and base image ready in {time.monotonic() - start:.1f} s", flush=True)
    if podman:
        from .config import BASE_IMAGE
        from .engine.podman import PodmanService

        service = PodmanService().start()
        service.load_image(BASE_IMAGE)
        print(f"Podman's service is ready: export DOCKER_HOST={service.address} to run the course on it "
              "(builds then go through Buildah)", flush=True)
    if registry:
        from .engine.registry import start_registry

        reg = start_registry(progress=lambda line: print(line, flush=True))
        print(f"The course's registry is ready: push with docker push {reg.ref('NAME:TAG')}; its images are in "
              f"{reg.data}; ./course clean stops it and removes them", flush=True)
    return 0


def _clean() -> int:
    from .engine.housekeeping import cleanup
    from .engine.registry import registry_folder, stop_registry

    # First, and with no engine needed: the course's registry and its folder, nothing else.
    folder = registry_folder()
    if folder.exists():
        stopped = stop_registry(remove_data=True)
        print(f"the course's registry {'stopped and ' if stopped else ''}removed, with what was pushed to it "
              f"({folder})", flush=True)
    from .lesson.ci import stop_ci_runner

    if stop_ci_runner():
        print("the course's CI runner (chapter 150) stopped, and its data removed", flush=True)
    print(cleanup(all_sessions=True))
    return 0


def _env() -> int:
    """Print the ``export`` line for the course's own docker client, when the course started the engine."""
    from .engine.endpoint import resolve
    from .engine.packages import course_release

    rel = course_release()
    if rel is not None and not resolve().named:  # an engine the learner named keeps its own client
        print(rel.export_line())
    return 0


def _option(argv: list[str], name: str) -> str | None:
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def main(argv: list[str]) -> int:
    cmd = argv[0] if argv else "setup"
    try:
        if cmd == "setup":
            return _setup(podman="--podman" in argv[1:], engine=_option(argv[1:], "--engine"),
                          registry="--registry" in argv[1:])
        if cmd == "env":
            return _env()
        if cmd == "preflight":
            from .engine.preflight import main as preflight
            return preflight(int(os.environ.get("COURSE_PORT", "8888")))
        if cmd == "clean":
            return _clean()
    except CourseError as exc:
        # One sentence for the learner, not a traceback.
        print(f"\nERROR: {exc}", file=sys.stderr)
        return 1
    print(f"unknown command {cmd!r}; use setup, preflight, clean or env", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
