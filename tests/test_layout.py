"""The package's layout, read from its source with ``ast``: no import cycle, no private names shared.

What a module imports when it is imported (its module-level imports; those inside
functions and under ``if TYPE_CHECKING:`` run later or never) makes a graph of
``course_helpers`` modules.  The checks, each also run on a broken copy of the
package to show it can fail:

* the graph has no cycle;
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
    imports: set[str] = field(default_factory=set)  # course_helpers modules imported at import time
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


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_time_statements(body: list[ast.stmt]):
    """Statements that run when the module is imported: not function bodies, not ``if TYPE_CHECKING:``."""
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        yield node
        if isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                yield from _import_time_statements(node.body)
            yield from _import_time_statements(node.orelse)
        elif isinstance(node, (ast.Try, ast.With, ast.ClassDef)):
            for part in ("body", "orelse", "finalbody"):
                yield from _import_time_statements(getattr(node, part, []))
            for handler in getattr(node, "handlers", []):
                yield from _import_time_statements(handler.body)


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
        for node in _import_time_statements(tree.body):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == top:
                        mod.imports.add(alias.name)
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
                        mod.imports.add(sub)  # `from . import logs`: the module itself
                        continue
                    mod.imports.add(target)
                    if alias.name.startswith("_") and not alias.name.startswith("__") and target != mod.name:
                        mod.private.append(f"{alias.name} from {target} in {mod.name}")


def _cycle(modules: dict[str, Module]) -> list[str] | None:
    """One import cycle as a path (first module repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(name: str) -> list[str] | None:
        state[name] = 1
        path.append(name)
        for nxt in sorted(modules[name].imports):
            if nxt not in modules:
                continue
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[name] = 2
        return None

    for name in sorted(modules):
        if name not in state:
            found = visit(name)
            if found:
                return found
    return None


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


def _check(root: Path) -> dict:
    modules = _modules(root)
    _read(modules)
    return {"modules": modules, "cycle": _cycle(modules), "private": [p for m in modules.values() for p in m.private],
            "shadowed": _shadowed(modules), "order": _against_the_order(modules)}


def test_the_reader_sees_the_package():
    found = _check(PACKAGE)
    modules = found["modules"]
    # Spot checks that the graph is the real one (a reader that sees nothing passes everything).
    assert "course_helpers.builder.build" in modules["course_helpers"].imports
    assert "course_helpers.builder.log_buildkit" in modules["course_helpers.builder.build"].imports
    assert "course_helpers.builder.report" not in modules["course_helpers.cache.explain"].imports  # TYPE_CHECKING
    assert len(modules) > 30


def test_no_import_cycle():
    cycle = _check(PACKAGE)["cycle"]
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_no_private_names_across_modules():
    assert _check(PACKAGE)["private"] == []


def test_subpackages_follow_the_pipeline():
    assert sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()) == sorted(ORDER)
    assert _check(PACKAGE)["order"] == []


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
    return copy


def test_the_checks_fail_on_a_broken_copy(broken: Path):
    found = _check(broken)
    assert found["cycle"] is not None
    assert {"course_helpers.builder.report", "course_helpers.cache.explain"} <= set(found["cycle"])
    assert found["private"] == ["_guess from course_helpers.layers.history in course_helpers.layers.images"]
    assert found["shadowed"] == ["course_helpers.builder.build"]
    assert "course_helpers.dockerfile.ignore -> course_helpers.builder.report" in found["order"]
    assert "course_helpers.builder.report -> course_helpers.cache.explain" in found["order"]
