import os
import pathlib

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

SHARED_DATA = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data"


def shared_data(*parts):
    """A path under ../shared/data, or a skip when this clone does not have it."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(
            f"{path} is not here: the real data in ../shared/data comes with the "
            "development checkout, not with a fresh clone."
        )
    return path


def pytest_terminal_summary(terminalreporter):
    """The versions under test, at the end of every log (CI's included, and
    with -q, which hides the header): a new major version of a test tool shows
    up here before it shows up as a failure."""
    from importlib import metadata

    found = []
    for name in ("pytest", "keras", "tensorflow", "jax", "torch", "numpy", "hypothesis"):
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            found.append(f"{name} absent")
    terminalreporter.write_line("keras_recipes under: " + ", ".join(found))


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true",
                     help="also run the tests marked slow (CI runs them: CI=true)")


def pytest_collection_modifyitems(config, items):
    """Tests marked slow (end-to-end kill/resume runs at size, minutes each)
    run in CI, which sets CI=true, or with --runslow; elsewhere they skip and
    say so, which keeps the README's test command short on a laptop."""
    if config.getoption("--runslow") or os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        return
    skip = pytest.mark.skip(reason="slow end-to-end test: runs in CI (CI=true) or with --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def rng():
    return np.random.default_rng(0)
