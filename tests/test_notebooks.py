"""The notebooks as a regression test: well-formed, with real stored outputs, and able to fail."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def test_notebooks_are_numbered_with_gaps_and_unique():
    # Tens, with room between them: 015 (the engine-free notebook) sits between 010 and 020.
    numbers = [int(re.match(r"(\d{3})-", p.name).group(1)) for p in NOTEBOOKS]
    assert numbers == sorted(set(numbers)), "two notebooks share a number"
    assert numbers[0] == 0 and all(b - a >= 5 for a, b in zip(numbers, numbers[1:]))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_code_cell_carries_real_outputs(path):
    for cell in _cells(path):
        if cell["cell_type"] != "code" or not cell["source"]:
            continue
        tags = cell.get("metadata", {}).get("tags", [])
        source = "".join(cell["source"])
        if "nbval-ignore-output" not in tags:
            # A compared cell states a fact, so it must have a stored output to compare.
            assert cell["outputs"], f"{path.name}: a compared cell has no stored output:\n{source}"
        errors = [o for o in cell["outputs"] if o["output_type"] == "error"]
        if errors:
            # Jupyter's own tag: JupyterLab's Run All goes past the cell, and nbval expects the error.
            assert "raises-exception" in tags, f"{path.name}: an unexpected stored error:\n{source}"
            assert len(errors[0]["traceback"]) <= 3, "a course error should show as a sentence, not a traceback"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_a_fresh_start_is_not_compared(path):
    # How many images fresh_start removes depends on what the engine held before the run
    # (a second run, another notebook's leftovers), so its line is never a stored fact.
    for cell in _cells(path):
        if cell["cell_type"] == "code" and "fresh_start(" in "".join(cell["source"]):
            tags = cell.get("metadata", {}).get("tags", [])
            assert "nbval-ignore-output" in tags, f"{path.name}: a fresh_start cell is compared"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_outputs_are_sized_for_reading_and_name_no_recording_machine(path):
    # A learner reads every output: none over 20 kB (long tables fold), and no path of the machine
    # that recorded it (the checkout, the course's state folder) where a path relative to the course
    # folder, or ~, says the same.
    from course_helpers.config import state_dir

    machine = [str(ROOT), "/work/", str(state_dir())]
    for cell in _cells(path):
        if cell["cell_type"] != "code":
            continue
        text = json.dumps(cell["outputs"])
        assert len(text) <= 20_000, f"{path.name}: an output of {len(text)} characters:\n{''.join(cell['source'])[:80]}"
        found = [m for m in machine if m in text]
        assert not found, f"{path.name}: an output names {found}:\n{''.join(cell['source'])[:80]}"


def test_nothing_volatile_is_committed():
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    if not tracked:
        pytest.skip("not a git checkout")
    bad = [f for f in tracked if re.search(r"(\.ipynb_checkpoints|__pycache__|\.pytest_cache|/\.cache/)", f)]
    assert bad == []


@pytest.mark.slow
def test_nbval_fails_when_stage_6_copies_everything_first(tmp_path):
    """Put the COPY-everything-first Dockerfile back in 060: the stored facts must no longer hold."""
    source = ROOT / "notebooks" / "060-caching-dependencies.ipynb"
    nb = json.loads(source.read_text())
    reordered = "COPY requirements.txt .\n\nRUN pip3 install -r requirements.txt\n\nCOPY . .\n"
    article = "COPY . .\n\nRUN pip3 install -r requirements.txt\n"
    changed = 0
    for cell in nb["cells"]:
        text = "".join(cell["source"])
        if text.startswith("%%writefile") and reordered in text:
            cell["source"] = text.replace(reordered, article)
            changed += 1
    assert changed == 1, "060 no longer writes the reordered Dockerfile in one %%writefile cell"
    mutated = tmp_path / source.name
    mutated.write_text(json.dumps(nb))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--nbval", "--nbval-current-env",
         "--nbval-sanitize-with", str(ROOT / "notebooks" / "sanitize.cfg"), str(mutated)],
        cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 1, proc.stdout[-3000:]
    # It must fail on a fact, not on an error: the cached/ran lists of the fifth build.
    assert "fifth.cached_steps, fifth.ran_steps" in proc.stdout, proc.stdout[-3000:]


def test_sanitize_file_makes_the_shown_commands_stable():
    """Ports the engine picks and a client found off PATH must not fail a comparison."""
    import configparser

    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "notebooks" / "sanitize.cfg")

    def sanitize(text: str) -> str:
        for section in cfg.sections():
            text = re.sub(cfg[section]["regex"], cfg[section]["replace"], text)
        return text

    assert sanitize("  $ docker run --rm -p 127.0.0.1:32772:5000 flask-demo:first") == \
        sanitize("  $ docker run --rm -p 127.0.0.1:49153:5000 flask-demo:first")
    assert sanitize("$ DOCKER_BUILDKIT=1 /usr/bin/docker build -t flask-demo:first ../workspace/020") == \
        sanitize("$ DOCKER_BUILDKIT=1 docker build -t flask-demo:first ../workspace/020")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_writefile_cells_quote_their_path(path):
    # IPython splits a magic's line on spaces: a workspace under "/Users/Jane Doe/..." needs the quotes
    # (bench/bench_engines.py met it first, with a workspace folder named "docker20 overlay2").
    for cell in _cells(path):
        first = "".join(cell["source"]).split("\n", 1)[0]
        if cell["cell_type"] == "code" and first.startswith("%%writefile"):
            assert re.fullmatch(r'%%writefile "[^"]+"', first), f"{path.name}: {first}"


#: The notebooks whose exercises issue 18 turned into starter, check, collapsed solution.
EXERCISES = ("015", "080", "090", "100", "110", "130")


@pytest.mark.parametrize("number", EXERCISES)
def test_each_solution_is_collapsed_after_a_check_that_says_not_answered_yet(number):
    """A learner who runs the notebook untouched sees "not answered yet"; the solution, collapsed, passes."""
    path = next(p for p in NOTEBOOKS if p.name.startswith(number + "-"))
    cells = [c for c in _cells(path) if c["cell_type"] == "code"]
    hidden = [i for i, c in enumerate(cells) if c.get("metadata", {}).get("jupyter", {}).get("source_hidden")]
    assert hidden, f"{path.name}: no collapsed solution cell"

    def text(cell) -> str:
        return "".join("".join(o.get("text", "")) + "".join(o.get("data", {}).get("text/plain", ""))
                       for o in cell["outputs"])

    for i in hidden:
        solution = cells[i]
        assert solution["metadata"]["jupyter"].get("outputs_hidden"), f"{path.name}: the solution's output shows"
        source = "".join(solution["source"])
        check = re.search(r"^(check_\w+)\(", source, re.M)
        assert check, f"{path.name}: the solution cell does not run its check:\n{source}"
        assert re.search(r"^PASS ", text(solution), re.M), f"{path.name}: the solution does not pass its check"
        # The learner's check: the same function on the learner's folder, before the solution.
        learner = [c for c in cells[:i] if re.search(rf"^{check.group(1)}\(", "".join(c["source"]), re.M)]
        assert learner, f"{path.name}: no check of the learner's own attempt before the solution"
        assert "not answered yet" in text(learner[-1]), f"{path.name}: the untouched starter got a score"
        assert "PASS" not in text(learner[-1])
