"""Chapter 160's exercise: pin the base by digest, so that a moved tag changes nothing.

The learner writes the ``FROM`` line.  The check builds the chapter's app with it,
then plays upstream once more (a new release of the base, published under the
same tag and pulled, so the engine's tag moves too) and builds again: with a
pin, the second build is all CACHED and used the same base as the first.
"""
from __future__ import annotations

from pathlib import Path

from ..engine.base_image import release_base
from ..lesson.ci import publish, pull
from ..lesson.exercise import ExerciseResult, build_for_check, grade, not_answered, not_checked

TITLE = "Pin the base, and a moved tag changes nothing"
#: The release the check publishes while it runs (a number no lesson cell uses).
CHECK_RELEASE = 9


def check_pinned_base(folder: str | Path, from_line: str, upstream: str,
                      tag: str = "base-demo:exercise") -> ExerciseResult:
    """Grade ``from_line`` as the first line of ``folder``'s Dockerfile.

    Args:
        folder: the exercise's copy of the app; its Dockerfile's first line is replaced.
        from_line: the learner's ``FROM`` line.
        upstream: the chapter's base tag in the course's registry.
        tag: the image name the check builds.

    Returns:
        An :class:`~course_helpers.lesson.exercise.ExerciseResult`; "not answered yet" while the
        line is the chapter's starter (``FROM`` and the tag alone).
    """
    folder = Path(folder)
    line = " ".join(from_line.split())
    if not line or line == f"FROM {upstream}":
        return not_answered(TITLE, "Change my_from in the cell above so that it names one image for good, "
                                   "run it, then run this check again.")
    names = ["FROM names the base by a digest", "the build after upstream moved the tag is all CACHED",
             "both builds used the same base image"]
    pinned = "@sha256:" in line
    dockerfile = folder / "Dockerfile"
    lines = dockerfile.read_text().splitlines()
    dockerfile.write_text("\n".join([line] + lines[1:]) + "\n")
    first, problem = build_for_check(folder, tag, "a build with your FROM line")
    if first is None:
        return grade(TITLE, [(names[0], pinned, line)] + not_checked(names[1:], problem))
    print(f"[check] upstream publishes release {CHECK_RELEASE} under {upstream}, and your engine pulls it ...",
          flush=True)
    release_base("base-demo/release:check", CHECK_RELEASE, progress=None, fresh=True)
    publish("base-demo/release:check", upstream, progress=None)
    pull(upstream, progress=None, compare=False)
    second, problem = build_for_check(folder, tag, "the same build after the tag moved")
    if second is None:
        return grade(TITLE, [(names[0], pinned, line)] + not_checked(names[1:], problem))
    ran = second.ran_steps
    return grade(TITLE, [
        (names[0], pinned, line),
        (names[1], not ran, "ran: " + "; ".join(ran) if ran else "every step CACHED"),
        (names[2], bool(first.base_ids) and first.base_ids == second.base_ids,
         "the same image" if first.base_ids == second.base_ids else
         f"{list(first.base_ids.values())} then {list(second.base_ids.values())}"),
    ])
