"""Issue 38 item 4: ragged inputs, as model.fit takes them (on TensorFlow,
the one backend where Keras feeds ragged tensors). A tf.RaggedTensor, or a
dataset of them, was refused by name. Now it passes through as given: split
and batched as ragged (tf.data's `ragged_batch`, since its maps make a ragged
example a tensor whose length varies), no statistics and a row that says so,
XLA off with the evidence (it compiles anew for every batch's shape). A model
whose layers fail on a real ragged batch is refused by name before training,
as model.fit would fail. Data: the embedded UCI digits as sets of their
inked pixels (each pixel's ink, row and column; 16 to 41 per digit), read
by a pooling model as a point cloud is.
"""

import keras
import numpy as np
import pytest

pytestmark = pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                                reason="Keras feeds tf.RaggedTensor on TensorFlow only")

tf = pytest.importorskip("tensorflow")

from keras_recipes import fit_ensemble  # noqa: E402
from keras_recipes import fit_with_tips  # noqa: E402
from keras_recipes import plan  # noqa: E402
from keras_recipes.decide.execution import RAGGED_JIT  # noqa: E402
from keras_recipes.data.checks import RAGGED_EVIDENCE  # noqa: E402
from keras_recipes.data.checks import RAGGED_OVERRIDE  # noqa: E402
from keras_recipes.data.checks import refuse_ragged  # noqa: E402
from keras_recipes.datasets import load_digits  # noqa: E402

# Test accuracy floor of the small end-to-end run: it measured 0.756 on
# TensorFlow at 40 epochs, where plain model.fit (30 epochs) measured 0.736;
# chance is 0.1, and digits misaligned with their labels would sit near it.
FLOOR = 0.65


def inked_pixels(split="train", n=None):
    """Each digit as the set of its inked pixels, one (ink, row, column)
    triple per pixel, each scaled to [0, 1] (ink / 16, row / 7, column / 7):
    a tf.RaggedTensor (digits, None, 3), and the labels."""
    x, y = load_digits(split)
    x, y = x[:n].astype("float32").reshape(-1, 8, 8), y[:n]
    points = []
    for image in x:
        rows, columns = np.nonzero(image)
        points.append(np.stack([image[rows, columns] / 16, rows / 7, columns / 7], 1).astype(
            "float32"))
    return tf.RaggedTensor.from_row_lengths(np.concatenate(points), [len(p) for p in points]), y


class PointsThenPool(keras.layers.Layer):
    """Two Dense layers on every point of a set (a ragged axis), then each set's
    mean and max: a point-cloud (Deep Sets) encoder, as a TensorFlow user
    writes it."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.first = keras.layers.Dense(units, activation="relu")
        self.second = keras.layers.Dense(units, activation="relu")

    def call(self, x):
        points = lambda v: self.second(self.first(v))
        h = tf.ragged.map_flat_values(points, x) if isinstance(x, tf.RaggedTensor) else points(x)
        return tf.concat([tf.reduce_mean(h, axis=1), tf.reduce_max(h, axis=1)], axis=-1)


def pooled(seed=0, ragged=True):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((None, 3), ragged=ragged)
    hidden = keras.layers.Dense(64, activation="relu")(PointsThenPool(64)(inputs))
    return keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(hidden))


def row(p, name):
    return next(t for t in p.tips if t.name == name)


def test_the_digits_pixels_are_ragged():
    x, _ = inked_pixels()
    lengths = x.row_lengths().numpy()
    assert (lengths.min(), lengths.max()) == (16, 41), (lengths.min(), lengths.max())


@pytest.mark.slow
def test_every_ragged_form_passes_through_and_is_decided_alike():
    x, y = inked_pixels(n=600)
    forms = {
        "arrays": lambda: ((x, y), None),
        "x, y": lambda: (x, y),
        "dataset": lambda: (tf.data.Dataset.from_tensor_slices((x, y)), None),
        "batched": lambda: (tf.data.Dataset.from_tensor_slices((x, y)).batch(16), None),
        "ragged_batch": lambda: (tf.data.Dataset.from_tensor_slices((x, y)).ragged_batch(16),
                                 None),
    }
    seen = {}
    for form, make in forms.items():
        p = plan(pooled(), *make(), seed=0, verbose=0, learning_rate=0.01)
        inputs, execution, audit = row(p, "inputs"), row(p, "execution"), row(p, "audit")
        assert (inputs.setting, inputs.reason, inputs.override) == (
            "passed through", RAGGED_EVIDENCE, RAGGED_OVERRIDE), form
        assert (execution.setting, execution.reason) == ("jit_compile=False", RAGGED_JIT), form
        assert "ragged, passed through as given" in audit.reason, form
        assert p.data.ragged and p.data.x_spec.dtype == "ragged", form
        assert p.data.x_shape == (None, 3), form
        # Fed ragged, as model.fit feeds it: the first training batch.
        train, validation = p.data.fit_inputs(0, 1, True, None)
        batch = next(iter(train))
        assert isinstance(batch[0], tf.RaggedTensor), (form, type(batch[0]))
        assert int(batch[0].nrows()) == p.data.batch_size, form
        held = sum(int(b[0].nrows()) for b in validation)
        assert held == p.data.n_validation, form
        seen[form] = (p.data.n_train, p.data.n_validation, p.data.batch_size, p.data.split)
    assert len(set(seen.values())) == 1, seen
    assert "of each class" in next(iter(seen.values()))[3]


def test_ragged_validation_data_is_read_as_given():
    x, y = inked_pixels(n=400)
    xv, yv = inked_pixels("test", n=120)
    p = plan(pooled(), (x, y), validation_data=(xv, yv), seed=0, verbose=0, learning_rate=0.01)
    assert (p.data.n_train, p.data.n_validation, p.data.split) == (
        400, 120, "validation_data given")
    _, validation = p.data.fit_inputs(0, 1, True, None)
    first = next(iter(validation))[0]
    assert isinstance(first, tf.RaggedTensor)
    # The held-out digits in their order, each with its own rows.
    assert np.array_equal(first.row_lengths().numpy(), xv.row_lengths().numpy()[:len(
        first.row_lengths())])


def test_a_model_that_fails_on_ragged_input_is_refused_by_name():
    """A GRU on an Input not declared ragged: model.fit fails inside the GRU
    ("Cannot index into an inner ragged dimension"); here the error comes
    before training, with that reason, the cause and what to do."""
    x, y = inked_pixels(n=200)
    keras.utils.set_random_seed(0)
    gru = keras.Sequential([keras.Input((None, 3)), keras.layers.GRU(8),
                            keras.layers.Dense(10, activation="softmax")])
    match = (r"The data.s x is ragged.*not declared ragged=True.*x.to_tensor\(\).*Masking\(0.0\)"
             r".*Received: .*GRU.*Cannot index into an inner ragged dimension")
    with pytest.raises(TypeError, match=match):
        plan(gru, (x, y), seed=0, verbose=0, learning_rate=0.01)
    # Declared ragged, a GRU behind it: the layer is named as the cause.
    keras.utils.set_random_seed(0)
    inputs = keras.Input((None, 3), ragged=True)
    declared = keras.Model(inputs, keras.layers.Dense(10)(keras.layers.GRU(8)(inputs)))
    with pytest.raises(TypeError, match=r"a layer of the model does not take ragged tensors"):
        plan(declared, (x, y), seed=0, verbose=0, learning_rate=0.01)
    # An Input without ragged=True whose layers read it is not refused:
    # model.fit trains it, so the recipe does.
    p = plan(pooled(ragged=False), (x, y), seed=0, verbose=0, learning_rate=0.01)
    assert row(p, "inputs").reason == RAGGED_EVIDENCE


def test_bad_ragged_inputs_are_refused_by_name(monkeypatch):
    x, y = inked_pixels(n=100)
    values = x.flat_values.numpy().copy()
    values[5, 2] = np.inf
    bad = x.with_flat_values(values)
    with pytest.raises(ValueError, match=r"`data` x holds 1 NaN/Inf values \(a ragged input\)"):
        plan(pooled(), (bad, y), seed=0, verbose=0, learning_rate=0.01)
    # Off TensorFlow, Keras does not feed ragged tensors: refused before any work.
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    with pytest.raises(TypeError, match=r"`data` x is ragged.*TensorFlow backend only.*on jax"):
        refuse_ragged((x, y), "data")
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    with pytest.raises(TypeError, match=r"`validation_data` x is ragged"):
        refuse_ragged(dataset, "validation_data")
    refuse_ragged((x.to_tensor(), y), "data")  # padded: nothing to refuse


@pytest.mark.slow
def test_a_ragged_program_trains_and_an_ensemble_trains_in_turn():
    x, y = inked_pixels()
    xt, yt = inked_pixels("test")
    result = fit_with_tips(pooled(), x, y, seed=0, verbose=0, epochs=40)
    assert result.status in ("finished", "stopped", "capped"), result.status
    assert result.model.jit_compile is False  # the row's decision, kept by Keras
    accuracy = float((result.model.predict(xt, verbose=0).argmax(-1) == yt).mean())
    assert accuracy > FLOOR, accuracy
    ensemble = fit_ensemble(pooled, (x[:600], y[:600]), members=2, seed=0, verbose=0, epochs=3)
    assert len(ensemble.member_scores) == 2
    assert ensemble.model.predict(xt[:50], verbose=0).shape == (50, 10)
