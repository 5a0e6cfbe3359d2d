"""The package's layout (issue 28): files saved before the modules moved
still load and predict the same."""

import pathlib

import keras
import numpy as np
import pytest

from keras_recipes import AveragingEnsemble
from keras_recipes.callbacks import ScaledSchedule
from keras_recipes.optimizers import ClippedOptimizer

SAVED = pathlib.Path(__file__).resolve().parent / "fixtures" / "saved"


@pytest.mark.parametrize("name", ["tabular", "image", "audio", "recurrent", "ensemble"])
def test_a_file_saved_before_the_move_loads_and_predicts_the_same(name):
    model = keras.saving.load_model(SAVED / f"{name}.keras")
    saved = np.load(SAVED / f"{name}.npz")
    np.testing.assert_allclose(model.predict(saved["x"], verbose=0), saved["y"],
                               rtol=1e-5, atol=1e-6)
    if name == "tabular":
        assert isinstance(model.optimizer, ClippedOptimizer)
        assert isinstance(model.optimizer.inner_optimizer._learning_rate, ScaledSchedule)
        assert model.get_layer(index=1).features == [0, 2]
    if name == "ensemble":
        # The ensemble result: preprocessing, then the averaging model.
        assert any(isinstance(layer, AveragingEnsemble) for layer in model.layers)
