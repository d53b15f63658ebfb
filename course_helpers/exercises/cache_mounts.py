"""Chapter 090's exercise: a pip step that takes its packages from a cache mount.

The check builds the learner's Dockerfile, changes ``requirements.txt`` (a
comment line, so pip must run again and resolve the very same packages),
builds again, and reads pip's own output: every package file should come from
the cache mount, none from the index.  Then it looks inside the image: the
mount's folder must be empty there, and Flask must import.
"""
from __future__ import annotations

import uuid
from pathlib import Path
from textwrap import shorten

from ..dockerfile.parse import parse_dockerfile
from ..errors import DockerfileError
from ..lesson.exercise import ExerciseResult, build_for_check, grade, not_answered, not_checked, untouched
from ..lesson.pip import pip_activity
from ..lesson.run import run_command
from ..lesson.workspace import SAMPLE_APP, bump_mtime, workspace

TITLE = "pip's packages from a cache mount"



def starter() -> str:
    """The exercise's starting Dockerfile: the sample app's own, which copies everything before pip runs."""
    return (SAMPLE_APP / "Dockerfile").read_text()


def prepare(name: str = "090-exercise") -> Path:
    """A fresh copy of the sample app for the exercise; the learner rewrites its Dockerfile."""
    return workspace(name)


def cache_targets(dockerfile: str | Path) -> list[str]:
    """The ``target=`` folders of the ``RUN --mount=type=cache`` flags in a Dockerfile."""
    targets = []
    for inst in parse_dockerfile(dockerfile).instructions:
        spec = dict(part.split("=", 1) for part in inst.flags.get("mount", "").split(",") if "=" in part)
        if inst.keyword == "RUN" and spec.get("type") == "cache":
            targets.append(spec.get("target") or spec.get("dst") or spec.get("destination") or "")
    return [t for t in targets if t]


def check_cache_mount(folder: str | Path, tag: str = "cache-demo:exercise") -> ExerciseResult:
    """Grade the learner's Dockerfile: after a change to ``requirements.txt``, does pip reuse the mount?

    Args:
        folder: the exercise folder (:func:`prepare`).
        tag: the image name to build.

    Returns:
        An :class:`~course_helpers.lesson.exercise.ExerciseResult`, one line per criterion; "not answered
        yet", with no build, while the Dockerfile is the starter's.
    """
    folder = Path(folder)
    if untouched(folder / "Dockerfile", starter()):
        return not_answered(TITLE, "Give the pip step a cache mount in the Dockerfile cell above, run that cell, "
                                   "then run this check again.")
    try:
        targets = cache_targets(folder / "Dockerfile")
    except DockerfileError as exc:
        return grade(TITLE, [("the Dockerfile can be read", False, str(exc))])
    rest = ["after a change to requirements.txt, pip runs again",
            "pip takes every package file from the cache, downloading none",
            "the cache stays out of the image, and Flask imports"]
    criteria = [("a RUN step has a cache mount (RUN --mount=type=cache,target=...)", bool(targets),
                 f"cache mount at {', '.join(targets)}" if targets else "no RUN --mount=type=cache in the Dockerfile")]
    first, error = build_for_check(folder, tag, "building your image")
    if first is None:
        return grade(TITLE, criteria + [("the image builds with BuildKit", False, error)]
                     + not_checked(rest, "the build failed"))
    requirements = folder / "requirements.txt"
    original = requirements.read_text()
    before = requirements.stat().st_mtime_ns
    # A comment: pip must run again, and must resolve exactly the packages it fetched before.
    requirements.write_text(original + f"# changed by the check {uuid.uuid4().hex[:8]}\n")
    bump_mtime(requirements, before)
    try:
        second, error = build_for_check(folder, tag, "building again after a change to requirements.txt")
    finally:
        before = requirements.stat().st_mtime_ns
        requirements.write_text(original)
        bump_mtime(requirements, before)
    if second is None:
        return grade(TITLE, criteria + [("the image builds again", False, error)]
                     + not_checked(rest[1:], "the build failed"))
    pip_steps = [s for s in second.steps if "pip" in s.instruction and s.instruction.split()[0].upper() == "RUN"]
    ran = [s for s in pip_steps if not s.cached]
    criteria.append((rest[0], bool(ran), f"ran: {shorten(ran[0].instruction, 70, placeholder=' ...')}" if ran else
                     "no RUN with pip ran" if pip_steps else "no RUN step calls pip"))
    if ran:
        activity = pip_activity([line for s in ran for line in s.output])
        ok = bool(activity.reused) and not activity.downloaded
        criteria.append((rest[1], ok, f"{len(activity.reused)} reused, {len(activity.downloaded)} downloaded"
                         + (f" ({', '.join(activity.downloaded[:3])}...)" if activity.downloaded else "")))
    else:
        criteria += not_checked(rest[1:2], "pip did not run")
    folders = " ".join(sorted(set(targets) | {"/root/.cache/pip"}))
    probe = run_command(tag, f"for d in {folders}; do [ -d $d ] && find $d -type f | head -3; done; "
                             "python3 -c 'import flask' && echo FLASK-OK", network=False)
    leftovers = [line for line in probe.output.splitlines() if line.startswith("/")]
    imports = "FLASK-OK" in probe.output
    saw = ("cache folders empty in the image" if not leftovers else f"in the image: {', '.join(leftovers)}") + \
          ("; flask imports" if imports else "; `import flask` failed")
    criteria.append((rest[2], not leftovers and imports, saw))
    return grade(TITLE, criteria)
