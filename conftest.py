"""pytest for the whole checkout (tests/ and notebooks/): the two test tiers, and nbval's options from any folder.

The stored outputs were recorded on one engine (notebooks/recorded-on.txt).  On another
(a learner's Docker 20.10, Docker 26 with overlay2, Podman) sizes, IDs and history rows
differ by design, so nbval compares only the cells tagged ``nbval-check-output``, the
facts that hold on every engine, and still fails on any error.
"""
from __future__ import annotations

from pathlib import Path

import pytest

#: Marks of the full tier (pyproject.toml describes them).
FULL_TIER = ("full", "slow", "podman", "builds")


def pytest_addoption(parser):
    parser.addoption("--full", action="store_true",
                     help="also run the full tier: other engines, soak runs, the browser, the classroom (CI)")


def pytest_configure(config):
    # pyproject.toml names the sanitize file relative to the checkout; pytest may run from elsewhere.
    path = config.option.nbval_sanitize_with
    if path and not (config.invocation_params.dir / path).exists():
        config.option.nbval_sanitize_with = str(config.rootpath / path)


def _deselect_full_tier(config, items):
    """Without --full, leave out the full tier's tests (pytest reports them as deselected)."""
    if config.getoption("--full"):
        return
    keep, left = [], []
    for item in items:
        (left if any(item.get_closest_marker(m) for m in FULL_TIER) else keep).append(item)
    if left:
        config.hook.pytest_deselected(items=left)
        items[:] = keep


_engine_checked: dict[str, str | None] = {}

#: A cell tag: its facts hold on every Docker engine, not under Buildah (Podman), whose cache lookup
#: can take an older identical image after a no_cache build (docs/podman.md). On Podman the
#: cell runs and shows what Buildah did, uncompared.
DIFFERS_ON_PODMAN = "differs-on-podman"


def _recording_engine_differs(config) -> str | None:
    """The sentence saying this engine is not the one the outputs were recorded on, or None."""
    if "said" not in _engine_checked:
        _engine_checked["said"] = None
        stamp = Path(config.rootpath) / "notebooks" / "recorded-on.txt"
        try:
            from course_helpers.engine.client import try_client
            from course_helpers.engine.preflight import engine_signature

            cli = try_client()
            here = engine_signature(cli) if cli is not None else None
        except Exception:  # no engine, or one that does not answer: the notebooks' own cells say so
            here = None
        recorded = stamp.read_text().strip() if stamp.exists() else None
        _engine_checked["here"] = here
        if here and recorded and here != recorded:
            _engine_checked["said"] = (f"notebooks: outputs recorded on {recorded}, this engine is {here}: "
                                       "comparing the cells tagged nbval-check-output only (--nbval-lax)")
    return _engine_checked["said"]


@pytest.hookimpl(tryfirst=True)
def pytest_collect_file(file_path, parent):
    """Before nbval reads its options for the first notebook: lax on an engine the outputs are not from."""
    opt = parent.config.option
    if file_path.suffix == ".ipynb" and getattr(opt, "nbval", False) and not opt.nbval_lax:
        if _recording_engine_differs(parent.config):
            opt.nbval_lax = True
    return None


def pytest_collection_modifyitems(config, items):
    """Without --full, leave out the full tier's tests; on Podman, do not compare the cells Buildah changes."""
    _deselect_full_tier(config, items)
    if not (_engine_checked.get("here") or "").startswith("Podman"):
        return
    for item in items:
        cell = getattr(item, "cell", None)
        if cell is not None and DIFFERS_ON_PODMAN in cell.metadata.get("tags", []) and item.options.get("check"):
            item.options["check"] = False
            _uncompared.append(item.nodeid)


_uncompared: list[str] = []


def pytest_terminal_summary(terminalreporter):
    if _engine_checked.get("said"):
        terminalreporter.write_line(_engine_checked["said"])
    if _uncompared:
        terminalreporter.write_line(f"not compared under Buildah ({DIFFERS_ON_PODMAN}): {', '.join(_uncompared)}")
