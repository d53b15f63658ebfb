"""The README stays true to the repository: what it names exists, and its module table is complete.

Quick tier, no engine. The checks, each also run on a small broken README to show it can fail:

* every repository path the README names, in backticks or as a link target
  (``course_helpers/layers/history.py``, ``notebooks/050-cache-busting.ipynb``, ``docs/engines.md``),
  exists in the checkout;
* every ``course_helpers`` name it mentions resolves: a dotted name
  (``course_helpers.engine.claims``) imports; a helper written as a call (``history()``,
  ``PodmanService.load_image()``) in a row of the module table or the newcomer's map is in a module
  that row names by path, and elsewhere in the package's public names or in a module the same
  paragraph names; a class name in such a row (``BuildReport``) is in that row's module too;
* every module of ``course_helpers`` has a row in the module table, so a new module cannot go
  unlisted;
* no file under ``docs/`` (nor the README) calls itself a draft or carries a note to the merger.
"""
from __future__ import annotations

import importlib
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PACKAGE = "course_helpers"

#: What a repository path in the README starts with: the top-level folders and files of the checkout.
TOP_FOLDERS = ("notebooks/", "course_helpers/", "sample_app/", "tests/", "tools/", "bench/", "docs/",
               "classroom/", ".ci/", ".devcontainer/")
TOP_FILES = {"conftest.py", "course", "environment.yml", "pyproject.toml", "README.md"}
#: The heading above the module table; its first column names each module by path.
MODULE_TABLE_HEADING = "### How the package is laid out"
MAP_HEADING = "### A map for a newcomer"

SPAN = re.compile(r"`([^`\n]+)`")
LINK = re.compile(r"\]\(([^)\s]+)\)")
CALL = re.compile(r"^([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\(")
CLASS_NAME = re.compile(r"^[A-Z][a-z]\w*$")  # BuildReport, PodmanService; not DOCKER_HOST or CMD
DRAFT = re.compile(r"\bdrafts?\b|merge note|for the lead", re.IGNORECASE)


def _without_fences(text: str) -> str:
    """The text with its fenced code blocks blanked: shell examples there are not claims about files."""
    return re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)


def _blocks(text: str) -> list[str]:
    """Table rows one by one, and paragraphs (or list items) otherwise: the context a name is read in."""
    blocks: list[str] = []
    for para in re.split(r"\n\s*\n", _without_fences(text)):
        lines = para.splitlines()
        if any(line.lstrip().startswith("|") for line in lines):
            blocks.extend(line for line in lines if line.strip())
        else:
            blocks.extend(item for item in re.split(r"\n(?=\* )", para) if item.strip())
    return blocks


def _section(text: str, heading: str) -> str:
    """The text under ``heading`` up to the next heading of the same or a higher level."""
    start = text.find(heading + "\n")
    if start < 0:
        return ""
    level = heading.split()[0]
    rest = text[start + len(heading):]
    end = re.search(rf"^#{{1,{len(level)}}} ", rest, flags=re.MULTILINE)
    return rest[:end.start()] if end else rest


def _repo_path(token: str) -> str | None:
    """``token`` as a path inside the checkout, or None when it is not one (a command, a home path...)."""
    token = token.split("#", 1)[0]
    if any(ch in token for ch in " <>*{}…$~") or "..." in token:
        return None
    token = token.removeprefix("./")
    if token in TOP_FILES or token.startswith(TOP_FOLDERS):
        return token
    return None


def _paths(text: str) -> list[str]:
    body = _without_fences(text)
    found = [_repo_path(span) for span in SPAN.findall(body)]
    found += [_repo_path(target) for target in LINK.findall(body) if "://" not in target]
    return sorted({path for path in found if path})


def missing_paths(text: str, root: Path = ROOT) -> list[str]:
    """Paths the README names that the checkout does not have."""
    return [path for path in _paths(text) if not (root / path).exists()]


def _module_of(path: str) -> str | None:
    """``course_helpers/layers/history.py`` as ``course_helpers.layers.history``; None for other paths."""
    if not (path.startswith(PACKAGE + "/") and path.endswith(".py")):
        return None
    dotted = path[:-3].replace("/", ".")
    return dotted.removesuffix(".__init__")


def _import(name: str):
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def _resolve_dotted(name: str) -> bool:
    """``course_helpers.a.b`` imports, or its longest importable prefix has the rest as attributes."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        obj = _import(".".join(parts[:cut]))
        if obj is None:
            continue
        for attr in parts[cut:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


def _resolve_in(name: str, modules: list) -> bool:
    """``name`` (``history`` or ``PodmanService.load_image``) is an attribute path of one of ``modules``."""
    for module in modules:
        obj, ok = module, True
        for attr in name.split("."):
            if not hasattr(obj, attr):
                ok = False
                break
            obj = getattr(obj, attr)
        if ok:
            return True
    return False


def unresolved_names(text: str) -> list[str]:
    """course_helpers names the README mentions that do not resolve, each with where it was read."""
    package = importlib.import_module(PACKAGE)
    strict = set(_blocks(_section(text, MODULE_TABLE_HEADING))) | set(_blocks(_section(text, MAP_HEADING)))
    problems = []
    for block in _blocks(text):
        named = [m for m in (_import(name) for name in filter(None, map(_module_of, _paths(block))))
                 if m is not None]
        # A row of the module table or the map ties each helper to its own file; prose may also
        # name a helper the package exports.
        modules = named if block in strict else [package] + named
        where = block.strip().splitlines()[0][:70]
        for span in SPAN.findall(block):
            span = span.strip()
            if re.fullmatch(rf"{PACKAGE}(\.\w+)+(\(\))?", span):
                if not _resolve_dotted(span.removesuffix("()")):
                    problems.append(f"{span} (in: {where})")
                continue
            call = CALL.match(span)
            if call and not _resolve_in(call.group(1), modules):
                problems.append(f"{call.group(1)}() is not in " + ("this row's module" if block in strict else
                                "course_helpers nor in a module this paragraph names") + f" (in: {where})")
            elif block in strict and CLASS_NAME.match(span) and not _resolve_in(span, modules):
                problems.append(f"{span} is not in this row's module (in: {where})")
    return problems


def package_modules(root: Path = ROOT) -> list[str]:
    """Every module of the package as a path; a subpackage's ``__init__.py`` is its folder, not a module."""
    out = []
    for path in sorted((root / PACKAGE).rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if path.name == "__init__.py" and path.parent != root / PACKAGE:
            continue
        out.append(rel)
    return out


def unlisted_modules(text: str, root: Path = ROOT) -> list[str]:
    """Modules of the package that have no row in the README's module table."""
    table = _section(text, MODULE_TABLE_HEADING)
    rows = {_repo_path(cells[1].strip().strip("`")) for cells in
            (line.split("|") for line in table.splitlines() if line.lstrip().startswith("|")) if len(cells) > 2}
    return [module for module in package_modules(root) if module not in rows]


def drafts(root: Path = ROOT) -> list[str]:
    """Files under docs/ (and the README) that call themselves a draft or speak to whoever merges them."""
    files = sorted((root / "docs").rglob("*.md")) + [root / "README.md"]
    out = []
    for path in files:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if DRAFT.search(line):
                out.append(f"{path.relative_to(root)}:{number}: {line.strip()[:80]}")
    return out


def _listing(items: list[str]) -> str:
    return "".join(f"\n  {item}" for item in items)


# --- the README as it is -------------------------------------------------------------------------

def test_every_path_the_readme_names_exists():
    missing = missing_paths(README.read_text())
    assert not missing, "README.md names paths that do not exist:" + _listing(missing)


def test_every_course_helpers_name_the_readme_mentions_resolves():
    problems = unresolved_names(README.read_text())
    assert not problems, "README.md names helpers that do not resolve:" + _listing(problems)


def test_every_module_of_the_package_has_a_row_in_the_module_table():
    text = README.read_text()
    assert _section(text, MODULE_TABLE_HEADING), f"README.md has no section {MODULE_TABLE_HEADING!r}"
    unlisted = unlisted_modules(text)
    assert not unlisted, (f"README.md's module table ({MODULE_TABLE_HEADING}) has no row for:" + _listing(unlisted)
                          + "\nadd one row per module: its path in backticks, and what it does in a few words")


def test_no_doc_calls_itself_a_draft():
    found = drafts()
    assert not found, "these files read as drafts; merge them or make them docs of their own:" + _listing(found)


# --- the checks can fail -------------------------------------------------------------------------

BROKEN = """# A README gone stale

### How the package is laid out

| module | what it does |
| --- | --- |
| `course_helpers/layers/images.py` | `history()`, `vanished()`, `NoSuchClass` |
| `course_helpers/layers/gone.py` | a module that was removed |

### A map for a newcomer

| docker command | helper | file |
| --- | --- | --- |
| `docker history` | `history()` | `course_helpers/layers/images.py` |
| `docker save` | `history()` | `course_helpers/layers/export.py` |

See [the rules](docs/no-such-doc.md), `tools/gone.py`, `course_helpers.layers.nowhere` and `sweep()`.
`~/.cache/docker-layers-course/` and `docker history --no-trunc` are not repository paths.

```bash
./course nothing/here.py   # a fenced example is not checked
```
"""


def test_the_checks_find_what_a_stale_readme_gets_wrong(tmp_path):
    assert missing_paths(BROKEN) == ["course_helpers/layers/gone.py", "docs/no-such-doc.md", "tools/gone.py"]
    problems = "\n".join(unresolved_names(BROKEN))
    for name in ("vanished()", "NoSuchClass", "course_helpers.layers.nowhere", "sweep()",
                 "history() is not in this row's module (in: | `docker save`"):
        assert name in problems, (name, problems)
    assert len(unresolved_names(BROKEN)) == 5  # the history() rows that name images.py pass
    unlisted = unlisted_modules(BROKEN)
    assert "course_helpers/layers/images.py" not in unlisted and "course_helpers/builder/build.py" in unlisted
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "readme-x.md").write_text("# Draft for the README\n")
    (tmp_path / "README.md").write_text("# ok\n")
    assert drafts(tmp_path) == ["docs/readme-x.md:1: # Draft for the README"]
