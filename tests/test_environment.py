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


# --- hosted sessions: Binder (repo2docker) and Codespaces (dev containers) ------------------------

def _jsonc(text: str) -> object:
    """JSON with ``//`` and ``/* */`` comments, as dev containers allow (a ``//`` inside a string stays)."""
    import json

    out, i, in_string = [], 0, False
    while i < len(text):
        ch = text[i]
        if in_string:
            out.append(ch)
            if ch == "\\":
                out.append(text[i + 1])
                i += 1
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
            out.append(ch)
        elif text.startswith("//", i):
            i = text.find("\n", i) if "\n" in text[i:] else len(text)
            continue
        elif text.startswith("/*", i):
            i = text.index("*/", i) + 2
            continue
        else:
            out.append(ch)
        i += 1
    return json.loads("".join(out))


def test_devcontainer_gives_a_real_engine_runs_setup_and_forwards_jupyterlab():
    config = _jsonc((ROOT / ".devcontainer" / "devcontainer.json").read_text())
    assert "ghcr.io/devcontainers/features/docker-in-docker:2" in config["features"]
    assert config["postCreateCommand"] == "./course setup"
    assert 8888 in config["forwardPorts"]
    assert "privileged" not in config  # the feature asks for what it needs; the course adds nothing
    assert (ROOT / "course").stat().st_mode & 0o111, "./course must be executable for postCreateCommand"


def test_binder_builds_from_environment_yml_with_the_course_package_and_opens_notebook_000():
    """repo2docker reads the root environment.yml (a binder/ folder would hide it) and installs the package.

    A local pip requirement (``-e .``) makes repo2docker install after copying the repository
    (jupyterhub/repo2docker#743), so the package is importable in the session. The launch link
    opens notebook 000, which says in one sentence what runs without an engine.
    """
    assert not (ROOT / "binder").exists() and not (ROOT / ".binder").exists()
    lines = [line.strip() for line in (ROOT / "environment.yml").read_text().splitlines()]
    assert "- -e ." in lines
    assert re.search(r"python=3\.1[01]\b", (ROOT / "environment.yml").read_text())
    readme = (ROOT / "README.md").read_text()
    assert "?urlpath=lab/tree/notebooks/000-check-your-setup.ipynb" in readme
    for name in ("postBuild", "start"):  # nothing that would need root in a hosted session
        assert not (ROOT / name).exists()
