"""Helpers for the Docker layers course: build, inspect, diff, run and explain images.

The notebooks import from here only, so every name a learner types is listed below.
"""
from .base_image import ensure_base_image
from .build import build
from .cleanup import cleanup, fresh_start
from .diff import ImageDiff, diff_images
from .display import plot_step_times
from .engine import client, ensure_engine
from .errors import BuildError, ContainerExited, CourseError, DockerfileError, EngineUnavailable, SetupError
from .explain import Explanation, explain
from .images import Layer, history, images, same_image, tag
from .notebook import install_error_handler
from .predict import Prediction, check_prediction, predict
from .preflight import check_setup
from .quiz import PredictionQuiz, prediction_quiz
from .report import BuildReport, Step
from .run import run_app
from .workspace import edit, workspace

__all__ = [
    "BuildError", "BuildReport", "ContainerExited", "CourseError", "DockerfileError", "EngineUnavailable",
    "Explanation", "ImageDiff", "Layer", "Prediction", "PredictionQuiz", "SetupError", "Step",
    "build", "check_prediction", "check_setup", "cleanup", "client", "diff_images", "edit", "ensure_base_image",
    "ensure_engine", "explain", "fresh_start", "history", "images", "plot_step_times", "predict", "prediction_quiz", "run_app",
    "same_image", "tag", "workspace",
]

# In a notebook, a CourseError shows as its one-sentence message, not a traceback wall.
install_error_handler()
