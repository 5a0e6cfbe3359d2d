"""Issue 37: the model you get back is the model you gave, trained.

Each case is a program a user would write on real data (the embedded UCI
digits), with an exact check: what a second call decides, what is kept when
something after training fails.
"""

import keras
import numpy as np
import pytest

import keras_recipes
import keras_recipes.modelinfo
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
    assert first.decisions.full is model  # trained in place, so compiled in place
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
    optimizer = second.decisions.make_optimizer().inner_optimizer
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


@pytest.mark.slow
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


@pytest.mark.slow
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


def _stateful_rows_model(batch):
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((8, 8), batch_size=batch),
                             keras.layers.LSTM(16, stateful=True, name="memory"),
                             keras.layers.Dense(10)])


class _StatesAtEpochStart(keras.callbacks.Callback):
    """The stateful layer's state norm when each epoch's first batch starts."""

    def __init__(self):
        super().__init__()
        self.norms, self.first = [], False

    def on_epoch_begin(self, epoch, logs=None):
        self.first = True

    def on_train_batch_begin(self, batch, logs=None):
        if self.first:
            layer = next(l for l in keras_recipes.modelinfo.walk_layers(self.model)
                         if l.name == "memory")
            self.norms.append(sum(float(np.abs(keras.ops.convert_to_numpy(v)).sum())
                                  for v in layer.states))
            self.first = False


def test_a_stateful_lstm_trains_at_its_fixed_batch_with_states_reset_per_epoch(digits):
    """Issue 37 item 4: a stateful LSTM crashed in the audit (a batch of 1).
    Every batch is now the model's 32 (Keras' own error otherwise), read in
    order, the states reset at each epoch's start, the validation split the
    last whole batches, and result.model keeps the fixed batch."""
    x, y = digits[0].reshape(-1, 8, 8), digits[1]
    if keras.backend.backend() == "torch":  # Keras' own fit fails there: refused by name
        with pytest.raises(ValueError, match="torch backend cannot train a stateful"):
            plan(_stateful_rows_model(32), (x, y), verbose=0)
        return
    watch = _StatesAtEpochStart()
    result = fit_with_tips(_stateful_rows_model(32), (x, y), epochs=3, seed=0, verbose=0,
                           callbacks=[watch])
    assert result.status in ("finished", "capped", "stopped")
    assert row(result, "minibatch").setting == "batch_size=32 (14 steps per epoch)"
    assert "fixed by the model's inputs (keras.Input(batch_size=32))" in row(
        result, "minibatch").reason
    assert "reset at each epoch's start" in row(result, "stateful").setting
    assert "shuffle off" in row(result, "stateful").reason
    assert result.data.split.startswith("the last 128 of 600 examples, in order")
    assert len(watch.norms) == 3 and watch.norms == [0.0, 0.0, 0.0]
    assert result.model.inputs[0].shape[0] == 32
    # The audit ran at the fixed size (no rule "could not run").
    assert not [f for f in result.audit.findings if "could not run" in f.message]
    assert min(result.history["val_loss"]) < result.history["val_loss"][0]


@pytest.mark.parametrize("backend_path", ["tf.data", "arrays"])
def test_a_fixed_input_batch_size_decides_the_batch_and_every_batch_is_whole(digits,
                                                                             backend_path):
    """Issue 37 item 4: `Input(batch_size=N)` is evidence: the batch-size
    decision takes it, a last partial batch is dropped (training and
    validation), another batch_size is refused by name."""
    from keras_recipes.data import arraydata
    from keras_recipes.data import make_data

    x, y = digits
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((64,), batch_size=100),
                              keras.layers.Dense(16, activation="relu"), keras.layers.Dense(10)])
    p = plan(model, (x, y), epochs=1, seed=0, verbose=0, audit=False)
    assert row(p, "minibatch").setting == "batch_size=100 (4 steps per epoch)"
    assert "81 training and 19 validation examples left over" in row(p, "minibatch").reason
    data = (make_data((x, y), batch_size=100, fixed_batch=True) if backend_path == "tf.data"
            else arraydata.make_array_data((x, y), None, 0.2, 100, 0, 0, fixed_batch=True))
    train, validation = data.fit_inputs(0, 1, True, None)
    rows = [len(keras.tree.flatten(b)[0]) for b in train]
    assert rows == [100] * 4 and data.steps_per_epoch == 4
    assert [len(keras.tree.flatten(b)[0]) for b in validation] == [100]
    with pytest.raises(ValueError, match=r"fix the batch size at 100.*Received: batch_size=64"):
        plan(model, (x, y), batch_size=64, verbose=0)


def test_reset_states_zeroes_every_stateful_layer_nested_too():
    inner = _stateful_rows_model(4)
    outer = keras.Sequential([keras.Input((8, 8), batch_size=4), inner])
    outer(np.ones((4, 8, 8), "float32"))
    layer = inner.get_layer("memory")
    assert any(np.abs(keras.ops.convert_to_numpy(v)).sum() > 0 for v in layer.states)
    callback = keras_recipes.callbacks.ResetStates()
    callback.set_model(outer)
    callback.on_epoch_begin(0)
    assert all(np.abs(keras.ops.convert_to_numpy(v)).sum() == 0 for v in layer.states)


# -- item 2: the user's steps, loss and metric objects travel with result.model ---------

class DoubledLoss(keras.Model):
    """keras.io's "customizing what happens in fit" pattern: the model's own
    compute_loss (twice the cross-entropy on logits), counted."""

    calls = 0

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        type(self).calls += 1
        return 2.0 * keras.ops.mean(keras.losses.sparse_categorical_crossentropy(
            y, y_pred, from_logits=True))


def _doubled_loss_model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((64,), name="pixels")
    hidden = keras.layers.Dense(32, activation="relu")(inputs)
    return DoubledLoss(inputs, keras.layers.Dense(10)(hidden))


def test_a_custom_compute_loss_is_what_result_model_evaluates_and_fits(digits, tmp_path):
    """Issue 37 item 2: result.model was a functional model around the user's:
    its evaluate reported plain cross-entropy and its fit never called the
    user's compute_loss. Now it is the user's model with the preprocessing in
    front, and both go through the user's compute_loss."""
    x, y = digits
    model = _doubled_loss_model()
    result = fit_with_tips(model, (x, y), epochs=2, seed=0, verbose=0)
    got = result.model
    assert isinstance(got, keras_recipes.Preprocessed) and got.wrapped is model
    assert row(result, "inputs").setting.startswith("zero mean, unit variance")  # digits' pixels run 0..16
    # The user's loss on the preprocessed inputs, computed by hand.
    logits = model.predict(got.preprocess(x), verbose=0)
    by_hand = 2.0 * float(keras.ops.mean(keras.losses.sparse_categorical_crossentropy(
        y, logits, from_logits=True)))
    evaluated = got.evaluate(x, y, batch_size=len(x), verbose=0, return_dict=True)["loss"]
    assert evaluated == pytest.approx(by_hand, rel=1e-5)
    DoubledLoss.calls = 0
    history = got.fit(x, y, epochs=1, batch_size=100, verbose=0)
    assert DoubledLoss.calls > 0 and history.history["loss"][0] < evaluated
    # Raw inputs in: the same predictions as preprocessing by hand, and after
    # a save and load (the preprocessing and the user's model both inside).
    np.testing.assert_allclose(got.predict(x, verbose=0),
                               model.predict(got.preprocess(x), verbose=0), rtol=1e-5, atol=1e-5)
    got.save(tmp_path / "m.keras")
    with keras.saving.custom_object_scope({"DoubledLoss": DoubledLoss}):
        loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert isinstance(loaded.wrapped, DoubledLoss)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), got.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-5)
    assert loaded.evaluate(x, y, batch_size=len(x), verbose=0, return_dict=True)["loss"] == (
        pytest.approx(got.evaluate(x, y, batch_size=len(x), verbose=0, return_dict=True)["loss"],
                      rel=1e-5))


def test_a_custom_step_keeps_regression_targets_as_given():
    """The user's compute_loss reads the labels: standardizing them changes
    what it computes (and result.model's loss units). Kept, and said."""
    from sklearn.datasets import load_diabetes

    class HalvedSquares(keras.Model):
        def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
            return 0.5 * keras.ops.mean(keras.ops.square(keras.ops.reshape(y, (-1, 1)) - y_pred))

    x, y = load_diabetes(return_X_y=True)
    keras.utils.set_random_seed(0)
    inputs = keras.Input((10,))
    model = HalvedSquares(inputs, keras.layers.Dense(1)(inputs))
    p = plan(model, (x.astype("float32"), y.astype("float32")), epochs=1, seed=0, verbose=0)
    targets = row(p, "targets")
    assert targets.setting == "unchanged" and "your compute_loss reads them" in targets.reason
    assert p.decisions.target is None


class FBeta(keras.metrics.Metric):
    """A keras.io-style metric: __init__ arguments and no get_config (a clone
    from its config has the defaults: beta 1, threshold 0.5)."""

    def __init__(self, beta=1.0, threshold=0.5, name="fbeta", **kwargs):
        super().__init__(name=name, **kwargs)
        self.beta, self.threshold = beta, threshold
        self.tp = self.add_variable((), initializer="zeros", name="tp")
        self.fp = self.add_variable((), initializer="zeros", name="fp")
        self.fn = self.add_variable((), initializer="zeros", name="fn")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = keras.ops.cast(keras.ops.reshape(y_true, (-1,)), "float32")
        y_pred = keras.ops.cast(keras.ops.reshape(y_pred, (-1,)) > self.threshold, "float32")
        self.tp.assign_add(keras.ops.sum(y_true * y_pred))
        self.fp.assign_add(keras.ops.sum((1 - y_true) * y_pred))
        self.fn.assign_add(keras.ops.sum(y_true * (1 - y_pred)))

    def result(self):
        b2 = self.beta ** 2
        return (1 + b2) * self.tp / ((1 + b2) * self.tp + b2 * self.fn + self.fp + 1e-7)

    def reset_state(self):
        for v in (self.tp, self.fp, self.fn):
            v.assign(0.0)


def test_a_metric_with_init_arguments_comes_back_as_the_users_object(digits):
    """Issue 37 item 2: metrics were rebuilt from get_config, so an F2 at
    threshold 0.3 was reported as FBeta(beta=1) at 0.5."""
    x, y = digits
    big = (y >= 5).astype("float32")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(1, activation="sigmoid")])
    f2 = FBeta(beta=2.0, threshold=0.3, name="f2")
    model.compile("adam", "binary_crossentropy", metrics=[f2])
    result = fit_with_tips(model, (x, big), epochs=2, seed=0, verbose=0)
    assert row(result, "inputs").setting.startswith("zero mean, unit variance")  # so result.model is a new model
    assert result.model is not model
    reported = result.model.evaluate(x, big, batch_size=len(x), verbose=0, return_dict=True)["f2"]
    # The metric computed by hand at the user's beta and threshold.
    pred = result.model.predict(x, verbose=0)[:, 0] > 0.3
    tp, fp = float((pred & (big == 1)).sum()), float((pred & (big == 0)).sum())
    fn = float((~pred & (big == 1)).sum())
    assert reported == pytest.approx(5 * tp / (5 * tp + 4 * fn + fp), rel=1e-5)
    flat = result.model._compile_metrics._user_metrics
    assert any(m is f2 for m in keras.tree.flatten(flat))


def test_the_loss_row_of_a_model_with_its_own_compute_loss_says_whose_loss_trains(digits):
    """From a new user's trial (issue 37): the loss row showed only the
    inferred loss, though the user's compute_loss computes the one trained
    on. It now says so, and what the inferred loss is compiled for."""
    p = keras_recipes.plan(_doubled_loss_model(), digits, seed=0, verbose=0, audit=False,
                           learning_rate=0.01)
    loss = next(t for t in p.tips if t.name == "loss")
    assert loss.setting == "your compute_loss (compiled with sparse_categorical_crossentropy)"
    assert loss.reason.startswith("your compute_loss computes the loss trained on; ")


def test_more_outputs_than_label_arrays_is_refused_by_name(digits):
    x, y = digits
    inputs = keras.Input((64,))
    two = keras.Model(inputs, [keras.layers.Dense(10)(inputs), keras.layers.Dense(1)(inputs)])
    with pytest.raises(ValueError, match=r"The model has 2 output\(s\) and the data 1 label "
                                         r"array\(s\).*Received: 1 label arrays"):
        keras_recipes.plan(two, (x, y), verbose=0)
