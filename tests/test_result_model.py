"""Issue 37: the model you get back is the model you gave, trained.

Each case is a program a user would write on real data (the embedded UCI
digits), with an exact check: what a second call decides, what is kept when
something after training fails.
"""

import keras
import numpy as np
import pytest

from keras_recipes import fit_with_tips
from keras_recipes import plan
from keras_recipes.datasets import load_digits


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits("train")
    return x[:600].astype("float32"), y[:600]


def mlp():
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((64,)), keras.layers.Dense(32, activation="relu"),
                             keras.layers.Dense(10)])


def row(p, name):
    return next(t for t in p.tips if t.name == name)


def test_a_second_call_is_a_new_call_for_a_model_the_user_never_compiled(digits):
    model = mlp()
    first = plan(model, digits, epochs=1, seed=0, verbose=0, preprocess=False)
    assert first.parts["full"] is model  # trained in place, so compiled in place
    first.fit()
    assert model.compiled
    second = plan(model, digits, epochs=1, seed=0, verbose=0, preprocess=False)
    assert "from model.compile" not in row(second, "optimizer").setting
    assert row(second, "optimizer").setting == row(first, "optimizer").setting
    assert "from model.compile" not in row(second, "loss").reason
    assert row(second, "learning rate").setting.endswith("(calibrated)")


def test_a_second_call_keeps_what_the_user_compiled(digits):
    model = mlp()
    model.compile(keras.optimizers.SGD(0.05, momentum=0.5),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    user_optimizer = model.optimizer
    fit_with_tips(model, digits, epochs=2, seed=0, verbose=0, preprocess=False)
    # Trained in place: compiled with the trained copy of the user's optimizer,
    # whose rate is where the plateau rule left it (planted: four halvings).
    assert model.optimizer is not user_optimizer
    model.optimizer.learning_rate = 0.05 / 16
    second = plan(model, digits, epochs=1, seed=0, verbose=0, preprocess=False)
    assert row(second, "optimizer").setting == "SGD (from model.compile)"
    optimizer = second.parts["make_optimizer"]().inner_optimizer
    assert float(optimizer.learning_rate) == pytest.approx(0.05)
    assert float(optimizer.momentum) == pytest.approx(0.5)
    # The user compiling anew after a call is the user's choice again.
    model.compile(keras.optimizers.Adam(3e-4),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    third = plan(model, digits, epochs=1, seed=0, verbose=0, preprocess=False)
    assert row(third, "optimizer").setting == "Adam (from model.compile)"


@pytest.mark.parametrize("where", ["result_model", "save_final"])
def test_a_failure_after_training_leaves_the_trained_weights_on_disk(digits, where, tmp_path,
                                                                     monkeypatch):
    from keras_recipes import build
    from keras_recipes.checkpoint import Checkpointer

    def planted(*args, **kwargs):
        raise OSError("planted failure")

    if where == "result_model":
        monkeypatch.setattr(build, "result_model", planted)
        kwargs, stage = {}, "assembling result.model"
    else:
        monkeypatch.setattr(Checkpointer, "save_final", planted)
        kwargs, stage = {"checkpoint_dir": str(tmp_path / "run")}, "saving the final model"
    model = mlp()
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(RuntimeError, match=f"then failed while {stage} .OSError: planted "
                                           r"failure.\. The trained weights are saved in") as info:
        fit_with_tips(model, digits, epochs=2, seed=0, verbose=0, **kwargs)
    path = str(info.value).split("saved in ")[1].split(": `")[0]
    assert path.endswith("_trained.weights.h5")
    if kwargs:
        assert path.startswith(kwargs["checkpoint_dir"])
    restored = mlp()
    restored.load_weights(path)
    for trained, loaded, initial in zip(model.get_weights(), restored.get_weights(), before):
        np.testing.assert_array_equal(loaded, trained)
    assert any(not np.array_equal(t, i) for t, i in zip(model.get_weights(), before))
