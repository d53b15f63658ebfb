"""The pip path (pyproject.toml) and the conda path (environment.yml) pin the same versions."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _pyproject_requirements() -> list[str]:
    # Python 3.10 has no tomllib; every quoted string in the two dependency lists is a requirement.
    text = (ROOT / "pyproject.toml").read_text()
    blocks = re.findall(r"^(?:dependencies|test) = \[(.*?)\]", text, re.S | re.M)
    assert len(blocks) == 2, "pyproject.toml should have dependencies and a test extra"
    return [r for block in blocks for r in re.findall(r'"([^"]+)"', block)]


def _pyproject_pins() -> dict[str, str]:
    return dict(r.lower().split("==") for r in _pyproject_requirements())


def _environment_pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "environment.yml").read_text().splitlines():
        match = re.match(r"^\s*-\s*([A-Za-z0-9_.\-]+)==(\S+)\s*$", line)
        if match:
            pins[match.group(1).lower()] = match.group(2)
    return pins


def test_every_requirement_is_pinned_exactly():
    for req in _pyproject_requirements():
        assert re.fullmatch(r"[A-Za-z0-9_.\-]+==[0-9][0-9A-Za-z.]*", req), f"{req} is not an exact pin"


def test_environment_yml_and_pyproject_agree():
    pyproject, conda = _pyproject_pins(), _environment_pins()
    for name in ("docker", "nbval", "jupyterlab", "ipywidgets", "pytest"):
        assert name in pyproject, f"{name} missing from pyproject.toml"
    assert conda == pyproject


def test_environment_yml_installs_the_package_itself():
    assert re.search(r"^\s*-\s*-e \.\s*$", (ROOT / "environment.yml").read_text(), re.M)
