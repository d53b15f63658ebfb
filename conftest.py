"""pytest for the whole checkout (tests/ and notebooks/): the two test tiers, and nbval's options from any folder."""
from __future__ import annotations

#: Marks of the full tier (pyproject.toml describes them).
FULL_TIER = ("full", "slow", "podman")


def pytest_addoption(parser):
    parser.addoption("--full", action="store_true",
                     help="also run the full tier: other engines, soak runs, the browser, the classroom (CI)")


def pytest_configure(config):
    # pyproject.toml names the sanitize file relative to the checkout; pytest may run from elsewhere.
    path = config.option.nbval_sanitize_with
    if path and not (config.invocation_params.dir / path).exists():
        config.option.nbval_sanitize_with = str(config.rootpath / path)


def pytest_collection_modifyitems(config, items):
    """Without --full, leave out the full tier's tests (pytest reports them as deselected)."""
    if config.getoption("--full"):
        return
    keep, left = [], []
    for item in items:
        (left if any(item.get_closest_marker(m) for m in FULL_TIER) else keep).append(item)
    if left:
        config.hook.pytest_deselected(items=left)
        items[:] = keep
