"""Helpers for the Docker layers course: build, inspect, diff, run and explain images.

The notebooks import from here only, so every name a learner types is listed below.
The subpackages go from the engine to the lesson; each uses only those above it
(tests/test_layout.py checks it):

* ``engine``     the Docker engine: client, set-up, base image, ownership, claims, reaper, housekeeping;
* ``dockerfile`` the one Dockerfile reader, ``.dockerignore`` rules, and the build context;
* ``layers``     images, their history rows mapped to layers, and diffs between images;
* ``builder``    running a build (BuildKit, classic, or Buildah on Podman) and reading its output into a report;
* ``cache``      the cache model: predict before a build, explain after it, the quiz;
* ``lesson``     what notebooks need around that: workspaces, running apps, display, grading;
* ``exercises``  the check behind each chapter's exercise.
"""
from .builder.build import build, builders_available, using_podman
from .builder.report import BuildReport, Step
from .cache.explain import Explanation, explain
from .cache.predict import Prediction, check_prediction, predict
from .cache.quiz import PredictionQuiz, prediction_quiz
from .dockerfile.context import context_size
from .dockerfile.lint import build_checks, compare_linters, lint
from .engine.base_image import ensure_base_image, release_base
from .engine.client import client
from .engine.housekeeping import cleanup, fresh_start
from .engine.preflight import check_setup
from .engine.registry import start_registry
from .engine.provision import ensure_engine
from .exercises.explorer import check_wasted_space, write_wasteful_dockerfile
from .errors import (BuildError, ContainerExited, CourseError, DockerfileError, EngineFault, EngineUnavailable,
                     InvalidName, LessonBusy, LessonInterrupted, SetupError)
from .formatting import format_seconds, format_size
from .layers.diff import ImageDiff, diff_images
from .layers.explorer import Explorer, explore
from .layers.images import Layer, history, image_parts, images, same_image, tag
from .lesson.ci import build_exporting_cache, ci_runner, publish, pull, push
from .lesson.clutter import add_clutter, simulate_commit
from .lesson.display import layer_stack, plot_step_times, step_grid
from .lesson.notebook import install_error_handler
from .lesson.pip import index_caching, installed_vs_index, pip_activity
from .lesson.recorded import RecordedBuilds, recorded_builds
from .lesson.run import run_app, run_command
from .lesson.terminal import docker
from .lesson.workspace import edit, workspace

__all__ = [
    "BuildError", "BuildReport", "ContainerExited", "CourseError", "DockerfileError", "EngineFault", "EngineUnavailable",
    "Explanation", "Explorer", "ImageDiff", "InvalidName", "Layer", "LessonBusy", "LessonInterrupted", "Prediction",
    "PredictionQuiz", "RecordedBuilds", "SetupError", "Step",
    "add_clutter", "build", "build_checks", "build_exporting_cache", "builders_available", "ci_runner", "check_prediction", "check_setup", "check_wasted_space", "cleanup", "client",
    "compare_linters", "context_size", "diff_images", "docker", "edit", "ensure_base_image", "ensure_engine", "explain", "explore",
    "format_seconds", "format_size", "fresh_start", "history", "image_parts", "images", "index_caching", "installed_vs_index",
    "layer_stack", "lint", "pip_activity", "plot_step_times", "predict", "prediction_quiz", "publish", "pull", "push", "release_base", "recorded_builds", "run_app", "run_command", "same_image",
    "simulate_commit", "start_registry", "step_grid", "tag", "using_podman", "workspace", "write_wasteful_dockerfile",
]

# In a notebook, a CourseError shows as its one-sentence message, not a traceback wall.
install_error_handler()
