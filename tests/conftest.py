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


@pytest.fixture
def rng():
    return np.random.default_rng(0)
