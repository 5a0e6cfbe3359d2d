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


def _diabetes_two_heads():
    """scikit-learn's bundled diabetes table as a keras-io style two-input,
    two-output functional model: inputs and outputs named out of sorted
    order (Keras pairs dicts with them by name)."""
    from sklearn.datasets import load_diabetes

    bunch = load_diabetes()
    x = bunch.data.astype("float32")
    progression = bunch.target.astype("float32")[:, None]       # 25..346
    bmi = x[:, 2:3] * 100                                       # about -9..17
    vitals, age_sex = x[:, 4:], x[:, :2]
    keras.utils.set_random_seed(0)
    v_in, a_in = keras.Input((6,), name="vitals"), keras.Input((2,), name="age_sex")
    h = keras.layers.Dense(32, activation="relu")(keras.layers.Concatenate()([v_in, a_in]))
    model = keras.Model([v_in, a_in], [keras.layers.Dense(1, name="progression")(h),
                                       keras.layers.Dense(1, name="bmi")(h)])
    x_dict = {"vitals": vitals, "age_sex": age_sex}
    y_dict = {"progression": progression, "bmi": bmi}
    return model, x_dict, y_dict


def _r2(pred, true):
    return 1 - float(((pred - true) ** 2).mean() / true.var())


def test_dict_outputs_and_inputs_out_of_sorted_order_keep_their_names_and_units(tmp_path):
    """Issue 37: the raw-unit outputs were paired with the targets' scales by
    sorted name (progression came back as the bmi head in progression's
    units) and result.model's inputs and outputs were renamed and reordered."""
    model, x, y = _diabetes_two_heads()
    cut = 340
    train = ({k: v[:cut] for k, v in x.items()}, {k: v[:cut] for k, v in y.items()})
    x_test = {k: v[cut:] for k, v in x.items()}
    result = fit_with_tips(model, train, epochs=60, seed=0, verbose=0)
    got = result.model
    assert [i.name for i in got.inputs] == ["vitals", "age_sex"]
    assert got.output_names == ["progression", "bmi"]
    pred = got.predict(x_test, verbose=0)
    assert isinstance(pred, list) and len(pred) == 2  # the user's model returns a list
    # Each head in its own units: a heads swap reads far below these (R^2 < 0).
    assert _r2(pred[0], y["progression"][cut:]) > 0.2
    assert _r2(pred[1], y["bmi"][cut:]) > 0.1
    # By name or as a list in model.inputs order: the same predictions.
    as_list = got.predict([x_test["vitals"], x_test["age_sex"]], verbose=0)
    np.testing.assert_allclose(as_list[0], pred[0], rtol=1e-6)
    got.save(tmp_path / "m.keras")
    reloaded = keras.saving.load_model(tmp_path / "m.keras").predict(x_test, verbose=0)
    for a, b in zip(reloaded, pred):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_two_softmax_heads_with_dict_labels_out_of_sorted_order(tmp_path):
    """Issue 37: the labels were checked against the heads in sorted-name
    order ('big' against the 10-way head): refused with a false range error."""
    x, y = load_digits("train")
    x_test, y_test = load_digits("test")
    keras.utils.set_random_seed(0)
    pixels = keras.Input((64,), name="pixels")
    h = keras.layers.Dense(64, activation="relu")(pixels)
    model = keras.Model(pixels, [keras.layers.Dense(10, activation="softmax", name="digit")(h),
                                 keras.layers.Dense(2, activation="softmax", name="big")(h)])
    p = plan(model, (x, {"digit": y, "big": (y >= 5).astype("int32")}), epochs=20, seed=0,
             verbose=0)
    assert [t.name for t in p.tips if t.name.startswith("loss")] == ["loss (digit)", "loss (big)"]
    result = p.fit()
    assert result.model.output_names == ["digit", "big"]
    digit, big = result.model.predict(x_test, verbose=0)
    assert digit.shape[-1] == 10 and big.shape[-1] == 2
    assert (digit.argmax(-1) == y_test).mean() > 0.9
    assert (big.argmax(-1) == (y_test >= 5)).mean() > 0.9


def test_a_stateful_model_is_refused_by_name_before_any_work():
    """Issue 37, item 4 (support not built yet): a stateful LSTM crashed deep
    in the output probe with Keras' shape error; now it is refused at once."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8), batch_size=32),
                              keras.layers.LSTM(8, stateful=True, name="memory"),
                              keras.layers.Dense(10)])
    with pytest.raises(ValueError, match=r"stateful layers \(memory\).*Received: stateful=True "
                                         r"on 'memory'"):
        plan(model, "no data is read before this error")
