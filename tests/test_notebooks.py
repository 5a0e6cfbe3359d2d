"""The colab/ tutorials: committed clean, and run top to bottom in fast mode
(KERAS_RECIPES_FAST=1), offline, on the CPU, drawing their figures."""

import json
import os
import pathlib
import re

import keras
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
COLAB = ROOT / "colab"
NOTEBOOKS = sorted(COLAB.glob("*.ipynb"))
# Figures (image/png outputs) each tutorial must draw.
FIGURES = {
    "01_quickstart.ipynb": 1,
    "02_learning_rate.ipynb": 4,
    "03_init_and_clipping.ipynb": 2,
    "04_augmentation.ipynb": 2,
    "05_ensembles.ipynb": 2,
    "06_diagnostics.ipynb": 1,
}

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")


def repository_url():
    text = (ROOT / "pyproject.toml").read_text()
    return re.search(r'^Repository = "([^"]+)"', text, re.M).group(1)


def test_the_six_tutorials_are_there():
    assert [p.name for p in NOTEBOOKS] == sorted(FIGURES)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_notebook_is_stripped_and_points_at_the_repository(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, "outputs not stripped"
    url = repository_url()
    owner_repo = url.removeprefix("https://github.com/")
    badge = f"https://colab.research.google.com/github/{owner_repo}/blob/main/colab/{path.name}"
    assert badge in nb.cells[0].source and "colab-badge.svg" in nb.cells[0].source
    install = nb.cells[1].source
    assert f'REPO_URL = "{url}"' in install
    assert 'find_spec("keras_recipes") is None' in install  # skipped when importable
    # Notebooks only call the package: no keras_recipes internals re-implemented.
    assert not any("keras_recipes/" in c.source for c in nb.cells if c.cell_type == "code")


@pytest.fixture(scope="module")
def fast_mode():
    saved = {k: os.environ.get(k) for k in ("KERAS_RECIPES_FAST", "TF_CPP_MIN_LOG_LEVEL", "MPLBACKEND")}
    os.environ.update(KERAS_RECIPES_FAST="1", TF_CPP_MIN_LOG_LEVEL="3")
    os.environ.pop("MPLBACKEND", None)  # the kernel's inline backend draws the figures
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def _outputs(nb, mime):
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
            if mime in o.get("data", {})]


# Running a tutorial takes 10-30 s each: the diagnostics one runs everywhere,
# the others are slow-marked and run in CI.
RUN_EVERYWHERE = ("06_diagnostics.ipynb",)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                    reason="the tutorials use the TensorFlow backend (tf.data, TFDS)")
@pytest.mark.parametrize("path", [
    path if path.name in RUN_EVERYWHERE else pytest.param(path, marks=pytest.mark.slow)
    for path in NOTEBOOKS], ids=lambda p: p.name)
def test_notebook_runs_top_to_bottom_and_draws(path, fast_mode):
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=900, kernel_name="python3",
                                     resources={"metadata": {"path": str(COLAB)}})
    client.execute()  # raises CellExecutionError, with the cell, on any error
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]
    assert not errors
    assert nb.cells[1].outputs == []  # the install cell did nothing: the package is importable
    assert len(_outputs(nb, "image/png")) >= FIGURES[path.name]
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "Traceback" not in text
    if path.name == "04_augmentation.ipynb":
        players = _outputs(nb, "text/html")
        assert len(players) >= 4 and all("<audio" in json.dumps(o["data"]) for o in players)
