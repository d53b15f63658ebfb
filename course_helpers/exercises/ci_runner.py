"""Chapter 150's exercise: a runner's first build, all CACHED, from the cache your engine exported.

The learner names a cache source (what ``build(cache_from=...)`` takes).  The
check starts a fresh runner, as a new CI job would, builds the sample app there
with that source, and reads which steps ran: every one must come from the cache,
``pip install`` included, on an engine that never built it.
"""
from __future__ import annotations

from pathlib import Path

from ..lesson.ci import ci_runner
from ..lesson.exercise import ExerciseResult, build_for_check, grade, not_answered, not_checked

TITLE = "A fresh runner's build, all CACHED from the registry"


def check_runner_cache(context: str | Path, cache_from: str | None, tag: str = "ci-demo:exercise") -> ExerciseResult:
    """Build ``context`` on a fresh runner with ``cache_from`` and grade what the build took from the cache.

    Args:
        context: the chapter's copy of the sample app (``app_dir``), as your engine last built it.
        cache_from: the learner's answer, e.g. ``"type=registry,ref=127.0.0.1:PORT/NAME"``; None or ""
            while the exercise is untouched.
        tag: the image name the runner builds.

    Returns:
        An :class:`~course_helpers.lesson.exercise.ExerciseResult`; "not answered yet", with no
        runner started, while ``cache_from`` is empty.
    """
    if not cache_from:
        return not_answered(TITLE, "Set my_cache_from in the cell above to where your engine's cache went, "
                                   "run it, then run this check again.")
    names = ["the runner starts with no cache of its own", "every step CACHED on the runner",
             "the pip step CACHED on the runner"]
    runner = ci_runner(progress=lambda line: print(f"[check] {line}", flush=True))
    with runner.in_use():
        report, problem = build_for_check(context, tag, "the runner's build with your cache_from",
                                          cache_from=cache_from)
    if report is None:
        return grade(TITLE, not_checked(names, problem))
    ran = [s.instruction for s in report.steps if not s.cached and not s.instruction.upper().startswith("FROM")]
    pip = [s for s in report.steps if s.instruction.upper().startswith("RUN") and "pip" in s.instruction]
    return grade(TITLE, [
        (names[0], True, "the runner's build cache was emptied for this check"),
        (names[1], not ran, " ".join((["ran: " + "; ".join(ran) + "."] if ran else ["every step CACHED"])
                                     + report.notes)),
        (names[2], bool(pip) and all(s.cached for s in pip),
         ", ".join(f"{s.instruction}: {'CACHED' if s.cached else 'ran'}" for s in pip) or "no pip step"),
    ])
