"""What a classroom needs installed: Debian packages, its Python environment, the proxy.

Nothing here runs unless ``./course classroom`` (or its test) asks: a learner
on a laptop never installs JupyterHub or rootlesskit.

The hub and the learners' servers share one environment under the classroom
folder, made with the system's own Python (``/usr/bin/python3``): a Python
installed under /root (pyenv, this project's machines) is closed to learners.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

from ..config import REPO_ROOT
from ..engine.streaming import run_streamed
from ..errors import SetupError
from ..engine.packages import Release, place_release
from .engines import engine_release, missing_packages
from .hub import proxy_command
from .state import Paths

#: configurable-http-proxy 5.3 needs Node 22 (its commander does); 5.2.0 runs on Node 20, 4.6.3 on older ones.
PROXY_VERSIONS = ((20, "5.2.0"), (0, "4.6.3"))


def _apt_install(packages: list[str], progress) -> None:
    if not packages:
        return
    if not shutil.which("apt-get"):
        raise SetupError(f"The classroom needs {', '.join(packages)}; install them with your package manager.")
    run_streamed(["apt-get", "update", "-q"], progress, "apt-get update")
    run_streamed(["apt-get", "install", "-y", "-q", *packages], progress, f"Installing {', '.join(packages)}")


def ensure_packages(rootless: bool, progress=print) -> None:
    """Install the Debian packages the classroom needs and does not have (once)."""
    wanted = []
    if rootless:
        wanted += missing_packages()
    if not shutil.which("node") or not shutil.which("npm"):
        wanted += ["nodejs", "npm"]
    if subprocess.run(["/usr/bin/python3", "-c", "import ensurepip, venv"], capture_output=True).returncode != 0:
        wanted += ["python3-venv"]
    if not shutil.which("mkfs.ext4"):
        wanted += ["e2fsprogs"]
    _apt_install(sorted(set(wanted)), progress)


#: What the learners' copy of the course holds (pip needs pyproject.toml and the README it names).
COURSE_PARTS = ("course_helpers", "sample_app", "notebooks", "classroom", "pyproject.toml", "README.md")


def reachable_by_all(path: Path) -> bool:
    """Whether every user can reach ``path`` (each folder above it lets others in)."""
    path = path.resolve()
    for folder in [path, *path.parents]:
        if not folder.stat().st_mode & 0o001:
            return False
    return bool(path.stat().st_mode & 0o004)


def sync_course(where: Paths, progress=print) -> Path:
    """Copy the course from this checkout into the classroom folder, where every learner can read it.

    The checkout may be anywhere (under /root, say); the learners' servers import
    the copy.  ``up`` refreshes it, so a ``git pull`` reaches the learners at the next ``up``.
    """
    if not reachable_by_all(where.root):
        raise SetupError(f"Learners cannot reach {where.root}: give every user read and search rights on it "
                         "and the folders above it, or set COURSE_CLASSROOM_DIR to another folder.")
    fresh = where.root / "course.partial"
    shutil.rmtree(fresh, ignore_errors=True)
    fresh.mkdir()
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info", ".ipynb_checkpoints")
    for part in COURSE_PARTS:
        source = REPO_ROOT / part
        if source.is_dir():
            shutil.copytree(source, fresh / part, ignore=skip)
        else:
            shutil.copy2(source, fresh / part)
    for folder, dirs, files in os.walk(fresh):
        os.chmod(folder, 0o755)
        for name in files:
            os.chmod(os.path.join(folder, name), 0o644)
    shutil.rmtree(where.course, ignore_errors=True)
    fresh.rename(where.course)
    progress(f"course copied to {where.course} for the learners")
    return where.course


def _stamp(where: Paths) -> str:
    text = (where.course / "pyproject.toml").read_bytes() + str(where.course).encode()
    return hashlib.sha256(text).hexdigest()[:16]


def ensure_venv(where: Paths, progress=print) -> Path:
    """The classroom's Python environment: the course, its test tools, JupyterHub and the culler.

    Installed with pip from ``pyproject.toml``'s ``[test,classroom]`` extras, the
    course itself editable from the classroom's copy (:func:`sync_course`, done first).

    Returns:
        Its python.

    Raises:
        SetupError: pip failed.
    """
    sync_course(where, progress)
    python = where.venv / "bin" / "python"
    stamp_file = where.venv / ".course-stamp"
    if python.exists() and stamp_file.exists() and stamp_file.read_text() == _stamp(where):
        progress(f"classroom Python environment up to date ({where.venv})")
        return python
    if not python.exists():
        progress(f"creating the classroom's Python environment in {where.venv} (a minute or two)")
        run_streamed(["/usr/bin/python3", "-m", "venv", str(where.venv)], progress, "Creating the environment")
    quiet = lambda line: None if "WARNING: Location" in line else progress(line)  # noqa: E731 - pip's index notes
    run_streamed([str(python), "-m", "pip", "install", "-q", "--progress-bar", "off", "-e",
                  f"{where.course}[test,classroom]"], quiet, "Installing the classroom's Python packages")
    stamp_file.write_text(_stamp(where))
    return python


def ensure_docker(where: Paths, progress=print) -> Release:
    """The course's Docker release in the classroom's folder, where every learner can run it (checked when there)."""
    rel = engine_release(where)
    return place_release(rel.name, rel.folder, progress)


def _node_major() -> int:
    out = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    try:
        return int(out.lstrip("v").split(".")[0])
    except ValueError:
        return 0


def ensure_proxy(where: Paths, progress=print) -> Path:
    """configurable-http-proxy, installed with npm into the classroom folder (JupyterHub's default proxy)."""
    command = proxy_command(where)
    version = next(v for major, v in PROXY_VERSIONS if _node_major() >= major)
    marker = where.proxy / f".version-{version}"
    if command.exists() and marker.exists():
        progress(f"configurable-http-proxy {version} present")
        return command
    where.proxy.mkdir(parents=True, exist_ok=True)
    run_streamed(["npm", "install", "--prefix", str(where.proxy), "--no-audit", "--no-fund",
                  f"configurable-http-proxy@{version}"], progress, "Installing configurable-http-proxy with npm")
    marker.touch()
    return command

