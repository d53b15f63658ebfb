"""The package's layout, read from its source with ``ast``: no import cycle, no private names shared.

Every import of a ``course_helpers`` module, wherever it sits (module level, a function
body, a class body, ``if TYPE_CHECKING:``), makes a graph of modules: an import put off into
a function still ties the two modules together, it only hides the tie from an import-time
reader.  The checks, each also run on a broken copy of the package to show it can fail:

* the graph has no cycle (each failure names the modules of a cycle and the imports that close it);
* each subpackage imports only the subpackages before it in the pipeline (``ORDER``), and the
  shared top-level modules (config, errors, formatting, statefiles) import none;
* no module imports a ``_private`` name from another course_helpers module (what two
  modules share is public, in one place);
* no package ``__init__`` binds a name that hides one of its own modules
  (``course_helpers.build`` once was a function, and the module was out of reach).
"""
from __future__ import annotations

import ast
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "course_helpers"
# From the engine to the lesson: a subpackage may use those before it, never one after it.
ORDER = ["engine", "dockerfile", "layers", "builder", "cache", "lesson", "exercises", "classroom"]


@dataclass
class Module:
    name: str  # dotted, e.g. course_helpers.builder.build
    path: Path
    is_package: bool
    imports: dict[str, list[int]] = field(default_factory=dict)  # course_helpers module -> lines importing it
    private: list[str] = field(default_factory=list)  # "_name from module" imported across modules
    bound: set[str] = field(default_factory=set)  # names bound at module level


def _modules(root: Path) -> dict[str, Module]:
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        out[".".join(parts)] = Module(".".join(parts), path, is_package)
    return out


def _imports(tree: ast.Module):
    """Every import statement in the module, wherever it sits, in line order."""
    found = [node for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))]
    return sorted(found, key=lambda node: node.lineno)


def _read(modules: dict[str, Module]) -> None:
    top = next(iter(modules)).split(".")[0]
    for mod in modules.values():
        tree = ast.parse(mod.path.read_text(), str(mod.path))
        package = mod.name if mod.is_package else mod.name.rpartition(".")[0]
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                mod.bound.add(node.name)
            elif isinstance(node, ast.Assign):
                mod.bound.update(t.id for t in node.targets if isinstance(t, ast.Name))
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                mod.bound.add(node.target.id)
        for node in _imports(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == top:
                        mod.imports.setdefault(alias.name, []).append(node.lineno)
                    if node in tree.body:
                        mod.bound.add((alias.asname or alias.name).split(".")[0])
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                for alias in node.names:
                    # `from . import logs` in a package's __init__ binds the module itself: no shadow.
                    own_module = target == mod.name and f"{target}.{alias.name}" in modules
                    if node in tree.body and not own_module:
                        mod.bound.add(alias.asname or alias.name)
                if target.split(".")[0] != top:
                    continue
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    if sub in modules:
                        mod.imports.setdefault(sub, []).append(node.lineno)  # `from . import logs`: the module itself
                        continue
                    mod.imports.setdefault(target, []).append(node.lineno)
                    if alias.name.startswith("_") and not alias.name.startswith("__") and target != mod.name:
                        mod.private.append(f"{alias.name} from {target} in {mod.name}")


def _cycles(modules: dict[str, Module]) -> list[list[str]]:
    """The modules caught in import cycles: each group of modules that import one another, sorted.

    A group is a strongly connected component of the graph with more than one module (Tarjan's
    algorithm): breaking every cycle in it means breaking imports among exactly these modules.
    """
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(name: str) -> None:
        index[name] = low[name] = len(index)
        stack.append(name)
        for nxt in sorted(modules[name].imports):
            if nxt not in modules:
                continue
            if nxt not in index:
                visit(nxt)
                low[name] = min(low[name], low[nxt])
            elif nxt in stack:
                low[name] = min(low[name], index[nxt])
        if low[name] == index[name]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == name:
                    break
            if len(group) > 1 or name in modules[name].imports:
                groups.append(sorted(group))

    for name in sorted(modules):
        if name not in index:
            visit(name)
    return sorted(groups)


def _where(modules: dict[str, Module], a: str, b: str) -> str:
    """``report.py:139, 150``: the lines of module ``a`` that import ``b``."""
    return f"{modules[a].path.name}:{', '.join(map(str, sorted(set(modules[a].imports[b]))))}"


def _cycle_text(modules: dict[str, Module], group: list[str]) -> str:
    """A cycle's modules and each import among them, with where it is written."""
    edges = [f"{a} -> {b} ({_where(modules, a, b)})" for a in group for b in sorted(modules[a].imports) if b in group]
    return " <-> ".join(group) + ", through " + ", ".join(edges)


def _shadowed(modules: dict[str, Module]) -> list[str]:
    """``package.name`` where the package's __init__ binds ``name`` and a module of that name exists."""
    out = []
    for mod in modules.values():
        if not mod.is_package:
            continue
        for name in sorted(mod.bound):
            if f"{mod.name}.{name}" in modules:
                out.append(f"{mod.name}.{name}")
    return out


def _against_the_order(modules: dict[str, Module]) -> list[str]:
    """``a -> b`` for each import that goes against ``ORDER`` (the package's __init__ and __main__ sit above it)."""
    def rank(name: str) -> int | None:
        parts = name.split(".")
        if len(parts) == 1 or parts[1] == "__main__":
            return None  # the package itself: it gathers everything
        return ORDER.index(parts[1]) if parts[1] in ORDER else -1  # -1: a shared top-level module
    out = []
    for mod in modules.values():
        mine = rank(mod.name)
        if mine is None:
            continue
        for target in sorted(mod.imports):
            theirs = rank(target)
            if theirs is None or theirs == -1:
                continue  # the package itself, or a shared module: anyone may use those
            if mine == -1 or theirs > mine:
                out.append(f"{mod.name} -> {target}")
    return out


def _order_text(modules: dict[str, Module], violation: str) -> str:
    """``a -> b (a.py:12)``: an import against the pipeline, with where it is written."""
    a, _, b = violation.partition(" -> ")
    return f"{violation} ({_where(modules, a, b)})"


def _check(root: Path) -> dict:
    modules = _modules(root)
    _read(modules)
    return {"modules": modules, "cycles": _cycles(modules), "private": [p for m in modules.values() for p in m.private],
            "shadowed": _shadowed(modules), "order": _against_the_order(modules)}


def test_the_reader_sees_the_package():
    found = _check(PACKAGE)
    modules = found["modules"]
    # Spot checks that the graph is the real one (a reader that sees nothing passes everything).
    assert "course_helpers.builder.build" in modules["course_helpers"].imports
    assert "course_helpers.builder.log_buildkit" in modules["course_helpers.builder.build"].imports
    assert "course_helpers.builder.report" in modules["course_helpers.cache.explain"].imports  # TYPE_CHECKING
    assert len(modules) > 30


def test_no_import_cycle():
    found = _check(PACKAGE)
    cycles = [_cycle_text(found["modules"], group) for group in found["cycles"]]
    if cycles:
        pytest.fail(f"{len(cycles)} import cycle(s):\n" + "\n".join(f"  {c}" for c in cycles), pytrace=False)


def test_no_private_names_across_modules():
    assert _check(PACKAGE)["private"] == []


def test_subpackages_follow_the_pipeline():
    assert sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()) == sorted(ORDER)
    found = _check(PACKAGE)
    upward = [_order_text(found["modules"], v) for v in found["order"]]
    if upward:
        pytest.fail(f"{len(upward)} import(s) against the pipeline {' < '.join(ORDER)}:\n"
                    + "\n".join(f"  {u}" for u in upward), pytrace=False)


def test_no_package_hides_its_modules():
    assert _check(PACKAGE)["shadowed"] == []


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    """A copy of the package with each fault put in once."""
    copy = tmp_path / "course_helpers"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    # A cycle: report -> explain -> report, as when BuildReport.explain() imported explain() and
    # explain.py used BuildReport at run time (issue 9 removed it).
    report = copy / "builder" / "report.py"
    report.write_text(report.read_text() + "\nfrom ..cache.explain import explain  # noqa\n")
    explain = copy / "cache" / "explain.py"
    explain.write_text(explain.read_text() + "\nfrom ..builder.report import BuildReport  # noqa\n")
    # A private name shared across modules.
    images = copy / "layers" / "images.py"
    images.write_text(images.read_text() + "\nfrom .history import _guess  # noqa\n")
    # A package whose __init__ hides a module behind a function of the same name.
    init = copy / "builder" / "__init__.py"
    init.write_text(init.read_text() + "\nfrom .build import build\n")
    # An import against the pipeline: the Dockerfile reader using the builder's report.
    ignore = copy / "dockerfile" / "ignore.py"
    ignore.write_text(ignore.read_text() + "\nfrom ..builder import report  # noqa\n")
    # Imports an import-time reader misses.  In functions: overlay imports diff back (diff imports
    # overlay at module level), closing a cycle, and diff imports from the lesson, after it.
    overlay = copy / "layers" / "overlay.py"
    overlay.write_text(overlay.read_text() + "\n\ndef _hidden():\n    from . import diff  # noqa\n")
    diff = copy / "layers" / "diff.py"
    diff.write_text(diff.read_text() + "\n\nclass _Hidden:\n    def method(self):\n"
                    "        from ..lesson import display  # noqa\n")
    # Under TYPE_CHECKING: the shell-word reader naming the cache model.
    shell = copy / "dockerfile" / "shell.py"
    shell.write_text(shell.read_text() + "\nfrom typing import TYPE_CHECKING  # noqa\n"
                     "if TYPE_CHECKING:\n    from ..cache.predict import predict  # noqa\n")
    return copy


def test_the_checks_fail_on_a_broken_copy(broken: Path):
    found = _check(broken)
    groups = [set(group) for group in found["cycles"]]
    assert any({"course_helpers.builder.report", "course_helpers.cache.explain"} <= g for g in groups)
    assert {"course_helpers.layers.diff", "course_helpers.layers.overlay"} in groups
    hidden = _cycle_text(found["modules"], ["course_helpers.layers.diff", "course_helpers.layers.overlay"])
    assert "course_helpers.layers.overlay -> course_helpers.layers.diff (overlay.py:" in hidden
    assert found["private"] == ["_guess from course_helpers.layers.history in course_helpers.layers.images"]
    assert found["shadowed"] == ["course_helpers.builder.build"]
    assert "course_helpers.dockerfile.ignore -> course_helpers.builder.report" in found["order"]
    assert "course_helpers.builder.report -> course_helpers.cache.explain" in found["order"]
    assert "course_helpers.layers.diff -> course_helpers.lesson.display" in found["order"]  # in a method
    assert "course_helpers.dockerfile.shell -> course_helpers.cache.predict" in found["order"]  # TYPE_CHECKING
