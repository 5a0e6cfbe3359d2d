"""Issue 38 item 4: inputs the model encodes itself pass through untouched.

A model whose only input is text (a `TextVectorization` inside, as in
keras.io's text classification examples) was refused in every form with
"encode strings first". The sentences below are written for this test: two
classes of short reviews, separable by their words. Each form `model.fit`
reads (or, for numpy strings, that only fit_with_tips reads: Keras 3's own
`fit` fails on numpy string arrays with "Invalid dtype") trains, the inputs
row says the model encodes the text itself, and result.model reads strings.
"""

import keras
import numpy as np
import pytest

from keras_recipes import fit_with_tips
from keras_recipes import plan

pytestmark = pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                                reason="Keras feeds strings to a model on TensorFlow only")

GOOD = ["great film, loved it", "wonderful acting and a superb story", "a delight to watch",
        "brilliant and moving", "the best movie this year", "funny, warm and clever",
        "I would watch it again tomorrow", "a beautiful, gripping story"]
BAD = ["terrible film, hated it", "awful acting and a boring story", "a chore to watch",
       "dull and lifeless", "the worst movie this year", "flat, cold and stupid",
       "I walked out after an hour", "an ugly, tedious mess"]


def corpus(n=240, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    texts = np.array([rng.choice(GOOD) if label else rng.choice(BAD) for label in labels])
    return texts, labels


def text_model(texts, shape=(1,), name=None):
    keras.utils.set_random_seed(0)
    vectorize = keras.layers.TextVectorization(max_tokens=200, output_sequence_length=8)
    vectorize.adapt(texts)
    inputs = keras.Input(shape, dtype="string", name=name)
    z = keras.layers.Embedding(200, 8)(vectorize(inputs))
    z = keras.layers.GlobalAveragePooling1D()(z)
    return keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(z))


def _forms(tmp_path):
    import tensorflow as tf

    texts, labels = corpus()
    folder = tmp_path / "reviews"
    for cls in ("bad", "good"):
        (folder / cls).mkdir(parents=True)
    for i, (text, label) in enumerate(zip(texts, labels)):
        (folder / ("good" if label else "bad") / f"{i}.txt").write_text(text)
    return {
        "column array": ((texts[:, None], labels), (1,), None),
        "flat array": ((texts, labels), (), None),
        "dict": (({"review": texts[:, None]}, labels), (1,), "review"),
        "batched tf.data": (tf.data.Dataset.from_tensor_slices((texts, labels)).batch(16), (),
                            None),
        # Batches of shape (16,) into Input((1,)): Keras adds the last axis.
        "batched 1-D strings into Input((1,))": (
            tf.data.Dataset.from_tensor_slices((texts, labels)).batch(16), (1,), None),
        "text_dataset_from_directory": (keras.utils.text_dataset_from_directory(
            str(folder), batch_size=16, shuffle=False), (), None),
    }


@pytest.mark.parametrize("form", ["column array", "flat array", "dict", "batched tf.data",
                                  "batched 1-D strings into Input((1,))",
                                  "text_dataset_from_directory"])
def test_a_text_model_trains_in_every_form_with_its_text_passed_through(form, tmp_path):
    import tensorflow as tf

    data, shape, name = _forms(tmp_path)[form]
    texts, _ = corpus()
    p = plan(text_model(texts, shape, name), data, epochs=20, seed=0, verbose=0)
    row = next(t for t in p.tips if t.name in ("inputs", "input review"))
    assert row.setting == "passed through"
    assert "the model encodes them itself" in row.reason and "dtype='string'" in row.reason
    audit = next(t for t in p.tips if t.name == "audit")
    assert audit.setting == "not run" and "this model's input is text it encodes itself" in (
        audit.reason)
    result = p.fit()
    assert max(result.history["val_binary_accuracy"]) > 0.9, result.history
    probe = tf.constant([["a beautiful, gripping story"], ["an ugly, tedious mess"]] if shape
                        else ["a beautiful, gripping story", "an ugly, tedious mess"])
    pred = np.asarray(result.model.predict({"review": probe} if name else probe, verbose=0))
    assert pred.ravel()[0] > 0.5 > pred.ravel()[1]


def test_text_into_a_model_that_does_not_encode_it_is_refused_by_name():
    import tensorflow as tf

    texts, labels = corpus()
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    with pytest.raises(TypeError, match=r"x must be numeric, or go to a model that takes strings "
                                        r"itself.*Received: x with dtype <U"):
        plan(model, (texts[:, None], labels), verbose=0)
    dataset = tf.data.Dataset.from_tensor_slices((texts[:, None], labels)).batch(16)
    with pytest.raises(TypeError, match=r"holds strings, and the model does not take them itself"
                                        r".*Received: x dtype string"):
        plan(model, dataset, verbose=0)
