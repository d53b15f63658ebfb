"""Chapter 100's exercise: a final stage that installs the builder's wheels without keeping them.

:data:`DOCKERFILE` is the lesson's two-stage build: a builder with a compiler
makes wheels (MarkupSafe compiled from source), and the final stage copies
them in and installs them.  The copied wheels stay in the image as a layer of
their own.  The learner writes ``exercise.Dockerfile`` whose final stage
installs them through ``RUN --mount=type=bind,from=builder,...`` instead; the
check builds it and looks inside the final image.
"""
from __future__ import annotations

from pathlib import Path

from ..dockerfile.parse import parse_dockerfile
from ..errors import DockerfileError
from ..formatting import format_size
from ..layers.images import get_image
from ..lesson.exercise import ExerciseResult, build_for_check, grade, not_answered, not_checked, untouched
from ..lesson.run import run_command
from ..lesson.workspace import edit, workspace

TITLE = "Wheels in, compiler and wheel files out"

#: The lesson's two-stage Dockerfile.  The builder's ENV makes its wheels byte-identical from one
#: build to the next: fixed dates inside the wheel (SOURCE_DATE_EPOCH), no build paths in the
#: compiled code (CFLAGS=-g0).
DOCKERFILE = """\
FROM python:3.11-slim-bookworm AS builder
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev python3-dev
ENV SOURCE_DATE_EPOCH=315532800 CFLAGS=-g0
WORKDIR /src
COPY requirements.txt .
# Compile MarkupSafe from its source, as pip must for a package with no wheel for your platform
RUN pip3 wheel --no-binary markupsafe --wheel-dir /wheels -r requirements.txt

FROM python:3.11-slim-bookworm
WORKDIR /usr/src/app
COPY --from=builder /wheels /wheels
RUN pip3 install --no-cache-dir --no-index /wheels/*.whl
COPY . .
CMD ["python3", "-m", "flask", "run", "--host=0.0.0.0"]
"""


def prepare(name: str = "100-multi-stage") -> Path:
    """A fresh copy of the sample app with the lesson's two-stage :data:`DOCKERFILE` as its Dockerfile."""
    folder = workspace(name)
    (folder / "Dockerfile").write_text(DOCKERFILE)
    return folder


def _wheel_files(image: str) -> set[str]:
    out = run_command(image, "find / -xdev -name '*.whl' 2>/dev/null", network=False).output
    return {line for line in out.splitlines() if line.startswith("/")}


def check_multi_stage(folder: str | Path, dockerfile: str = "exercise.Dockerfile",
                      tag: str = "wheels-demo:exercise") -> ExerciseResult:
    """Grade the learner's two-stage Dockerfile on the final image it builds.

    Criteria: two stages or more; no compiler in the final image; no wheel file there that
    the base image does not have; MarkupSafe's compiled speedups import; and after an
    ``app.py`` edit only the last ``COPY`` runs again.

    Args:
        folder: the lesson's folder (:func:`prepare`), which holds the learner's file too.
        dockerfile: the learner's Dockerfile, relative to the folder.
        tag: the image name to build.

    Returns:
        An :class:`~course_helpers.lesson.exercise.ExerciseResult`, one line per criterion; "not answered
        yet", with no build, while the file is missing or is the lesson's :data:`DOCKERFILE`.
    """
    folder = Path(folder)
    if untouched(folder / dockerfile, DOCKERFILE):  # the exercise starts from the lesson's file
        return not_answered(TITLE, f"Change the final stage in the {dockerfile} cell above, run that cell, "
                                   "then run this check again.")
    try:
        stages = parse_dockerfile(folder / dockerfile).stages
    except DockerfileError as exc:
        return grade(TITLE, [("the Dockerfile can be read", False, str(exc))])
    rest = ["the final image has no C compiler",
            "no wheel file is left in the final image",
            "MarkupSafe's compiled speedups import in the final image",
            "after an app.py edit, only the last COPY runs again"]
    criteria = [("a builder stage and a final stage", len(stages) >= 2, f"{len(stages)} stage(s)")]
    report, error = build_for_check(folder, tag, "building your image", dockerfile=dockerfile)
    if report is None:
        return grade(TITLE, criteria + [("the image builds", False, error)] + not_checked(rest, "the build failed"))
    probe = run_command(tag, "command -v gcc cc || echo NO-COMPILER; python3 -c 'import markupsafe._speedups' "
                             "&& echo SPEEDUPS-OK", network=False).output
    compilers = [line for line in probe.splitlines() if line.startswith("/")]
    criteria.append((rest[0], not compilers, f"found {', '.join(compilers)}" if compilers else "no gcc, no cc"))
    root = stages[-1]
    while root.base_stage is not None:  # FROM another stage: the image underneath is that stage's base
        root = stages[root.base_stage]
    base = root.base
    extra = sorted(_wheel_files(tag) - _wheel_files(base))
    size = int(get_image(tag).attrs.get("Size") or 0) - int(get_image(base).attrs.get("Size") or 0)
    criteria.append((rest[1], not extra, (f"found {', '.join(extra[:3])}" + (" ..." if len(extra) > 3 else "")
                                         if extra else "none beyond the base image's own")
                     + f"; the final image is {format_size(size)} over its base"))
    criteria.append((rest[2], "SPEEDUPS-OK" in probe,
                     "import markupsafe._speedups works" if "SPEEDUPS-OK" in probe else "import markupsafe._speedups failed"))
    change = edit(folder / "app.py", "Hello", "Hello again,", count=1)
    try:
        again, error = build_for_check(folder, tag, "building again after an app.py edit", dockerfile=dockerfile)
    finally:
        edit(change.path, "Hello again,", "Hello", count=1)
    if again is None:
        criteria.append((rest[3], False, error))
    else:
        ran = again.ran_steps
        criteria.append((rest[3], ran == ["COPY . ."], f"ran: {'; '.join(ran) or 'nothing'}"))
    return grade(TITLE, criteria)
