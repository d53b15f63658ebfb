"""Chapter 120's exercise: keep what the Dockerfile makes, lose the space it wastes.

The starting Dockerfile makes a 20 MB file in one ``RUN``, changes its mode in
a second, uses it in a third and deletes it in a fourth.  The image ends with
only the checksum, yet it stores the big file twice: once as made and once
again for the ``chmod`` (changing a file's mode copies the whole file into the
new layer).  The learner rewrites it so that the same result comes out of one
layer; :func:`check_wasted_space` builds their Dockerfile and grades it on what
the real image holds.
"""
from __future__ import annotations

from pathlib import Path

from ..builder.build import build
from ..errors import BuildError, DockerfileError
from ..formatting import format_size
from ..layers.explorer import explore
from ..lesson.exercise import ExerciseResult, grade

#: The Dockerfile the exercise starts from (also the chapter's example of wasted space).
WASTEFUL_DOCKERFILE = """\
FROM python:3.11-slim-bookworm
WORKDIR /usr/src/app
COPY . .
RUN head -c 20000000 /dev/urandom > /tmp/dataset.bin
RUN chmod 0400 /tmp/dataset.bin
RUN sha256sum /tmp/dataset.bin > dataset.sha256
RUN rm /tmp/dataset.bin
"""

CHECKSUM = "/usr/src/app/dataset.sha256"
DATASET = "/tmp/dataset.bin"

TITLE = "Same image, no wasted space"
BUILDS = "the Dockerfile builds"
HAS_CHECKSUM = f"{CHECKSUM} is in the image"
NO_DATASET = f"{DATASET} is not in the final image"
NO_WASTE = "the Dockerfile's layers waste no space (dive's measure)"


def write_wasteful_dockerfile(folder: str | Path) -> str:
    """Write the exercise's starting Dockerfile into a workspace folder.

    Args:
        folder: a workspace made with :func:`course_helpers.workspace`.

    Returns:
        The Dockerfile's text, to show.
    """
    (Path(folder) / "Dockerfile").write_text(WASTEFUL_DOCKERFILE)
    return WASTEFUL_DOCKERFILE


def check_wasted_space(folder: str | Path, tag: str = "explorer-demo:exercise") -> ExerciseResult:
    """Build the learner's Dockerfile and grade it: same result, nothing wasted.

    Args:
        folder: the build context holding the learner's Dockerfile.
        tag: the name to build it as.

    Returns:
        An :class:`~course_helpers.lesson.exercise.ExerciseResult`, one line per criterion,
        each saying what the build showed.
    """
    print(f"[check] building {tag} from {Path(folder).name}/Dockerfile ...", flush=True)
    try:
        report = build(folder, tag=tag, progress=False)
    except (BuildError, DockerfileError) as exc:
        # The check shows no build log, so name the failing step and its last words instead.
        reason = exc.args[0].split(": read the last lines")[0]
        tail = [line.strip() for line in getattr(exc, "log_tail", "").splitlines() if line.strip()]
        if tail:
            reason += f"; its last output line: {tail[-1]}"
        return grade(TITLE, [(BUILDS, False, reason), (HAS_CHECKSUM, False, "no image"),
                             (NO_DATASET, False, "no image"), (NO_WASTE, False, "no image")])
    print("[check] reading its layers ...", flush=True)
    view = explore(report, progress=False)
    checksum = view.files.get(CHECKSUM)
    dataset = view.files.get(DATASET)
    waste = view.wasted(base=False)
    if waste.files:
        worst = waste.files[0]
        saw_waste = (f"{format_size(waste.wasted_bytes)} wasted; {worst.path} is stored or deleted by "
                     f"{worst.count} layers")
    else:
        saw_waste = f"{format_size(0)} wasted"
    return grade(TITLE, [
        (BUILDS, True, f"built as {tag}"),
        (HAS_CHECKSUM, checksum is not None and checksum.kind == "file",
         f"a file of {format_size(checksum.size)}" if checksum is not None else "no such file"),
        (NO_DATASET, dataset is None, "absent" if dataset is None else f"present, {format_size(dataset.size)}"),
        (NO_WASTE, not waste.files, saw_waste),
    ])

