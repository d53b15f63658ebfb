"""The course installs as a package: a non-editable install holds every module and the recorded builds.

An editable install (``pip install -e .``, what ``./course`` does) reads the checkout, so it
cannot show what a wheel leaves out.  This test builds and installs the course the other way,
into a virtual environment of its own, and uses it from a folder outside the checkout.  It
needs no network: pip installs with ``--no-index --no-deps --no-build-isolation``, and the
new environment reaches the running interpreter's packages (docker, setuptools, ...) through
a ``.pth`` file (pip itself too).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "course_helpers"

# Run inside the new environment: import every module named on the command line, print where
# each came from, then load the recorded builds through the course's API for the folder given.
_PROBE = """\
import importlib, json, sys
folder, names = sys.argv[1], sys.argv[2:]
files = {name: importlib.import_module(name).__file__ for name in names}
from course_helpers import recorded_builds
builds = recorded_builds(folder)
print(json.dumps({"files": files, "names": builds.names, "engine": builds.engine}))
"""


def _checkout_modules() -> list[str]:
    """Every module and package of the checkout's course_helpers, dotted (``__main__`` modules left out: they run a CLI)."""
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__main__":
            continue
        if parts[-1] == "__init__":
            parts.pop()
        names.append(".".join(parts))
    return names


def _data_files(root: Path) -> set[str]:
    """The files under ``root`` that are not Python source, relative to it."""
    return {p.relative_to(root).as_posix() for p in root.rglob("*")
            if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts}


def _dependency_folders() -> list[str]:
    """The folders on this interpreter's path, in order, but the checkout and any folder holding a course_helpers.

    A folder inside the checkout stays: ``./course`` makes its virtual environment in ``.venv`` there.
    """
    folders = []
    for entry in sys.path:
        path = Path(entry or ".").resolve()
        if (path.is_dir() and path != ROOT and not (path / "course_helpers").exists()
                and str(path) not in folders):
            folders.append(str(path))
    return folders


def _clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without the variables that would change the new interpreter's path."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSAFEPATH")}
    return {**env, **extra}


def _install(tmp_path: Path) -> Path:
    """A virtual environment in ``tmp_path`` with the course installed into it (not editable); its python."""
    # Build from a copy, so setuptools' build/ and *.egg-info never land in the checkout.
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(PACKAGE, source / "course_helpers", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    # The dependencies (and setuptools for the build: the test extra pins it) come from the folders
    # the interpreter running this test imports from, the checkout left out.  Plain path lines add
    # folders without running their .pth files, so the checkout's editable install stays out too.
    (site / "course-deps.pth").write_text("".join(f"{folder}\n" for folder in _dependency_folders()))
    # pip too comes through that file, and installs into the environment that runs it.
    result = subprocess.run(
        [python, "-m", "pip", "install", "--no-index", "--no-deps", "--no-build-isolation", "--no-cache-dir",
         "--disable-pip-version-check", "--quiet", str(source)],
        capture_output=True, text=True, cwd=tmp_path, env=_clean_env(), timeout=300)
    assert result.returncode == 0, (f"pip install of the course failed (it needs the test extra's setuptools: "
                                    f"./course setup installs it):\n{result.stdout}\n{result.stderr}")
    return python


def test_a_non_editable_install_has_every_module_and_the_recorded_builds(tmp_path):
    python = _install(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # The learner's folder the records describe: a copy of the sample app (the package does not ship it).
    folder = shutil.copytree(ROOT / "sample_app", elsewhere / "app")
    env = _clean_env(COURSE_STATE_DIR=str(tmp_path / "state"), COURSE_WORKSPACE=str(tmp_path / "workspace"),
                     DOCKER_HOST="unix:///nonexistent/docker.sock", PYTHONDONTWRITEBYTECODE="1")
    names = _checkout_modules()
    result = subprocess.run([python, "-c", _PROBE, str(folder), *names], capture_output=True, text=True,
                            cwd=elsewhere, env=env, timeout=120)
    assert result.returncode == 0, f"the installed course does not work from {elsewhere}:\n{result.stderr}"
    seen = json.loads(result.stdout.strip().splitlines()[-1])

    venv_dir = (tmp_path / "venv").resolve()
    for name, file in seen["files"].items():
        path = Path(file).resolve()
        assert venv_dir in path.parents, f"{name} was imported from {path}, not from the installed copy"
        assert ROOT not in path.parents, f"{name} was imported from the checkout ({path})"
    assert seen["names"] == ["first", "second", "third", "fourth", "fifth"]
    assert seen["engine"].startswith("Docker ")

    # Every data file of the checkout's package is in the installed one (records and any added later).
    installed = Path(seen["files"]["course_helpers"]).resolve().parent
    missing = _data_files(PACKAGE) - _data_files(installed)
    assert not missing, f"the install leaves out {sorted(missing)}: add them to package-data in pyproject.toml"
