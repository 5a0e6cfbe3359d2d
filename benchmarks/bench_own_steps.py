"""Issue 37, item 2: the user's compute_loss and metric objects behind
result.model. On the embedded UCI digits (600 train, the held-out test
split), two keras.io-style programs trained by fit_with_tips (inputs
standardized, so result.model is not the user's object):

- a model with its own compute_loss (twice the cross-entropy): what
  result.model.evaluate reports against the user's loss computed by hand,
  and how many times result.model.fit calls the user's compute_loss;
- a compiled model with an F2 metric at threshold 0.3 whose class has
  __init__ arguments and no get_config: what result.model.evaluate reports
  against F2 at 0.3 computed by hand.

    python benchmarks/bench_own_steps.py
"""

import os
import sys

import keras
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))

from common import device_line  # noqa: E402
from keras_recipes import fit_with_tips  # noqa: E402
from keras_recipes.datasets import load_digits  # noqa: E402
from test_result_model import FBeta  # noqa: E402
from test_result_model import DoubledLoss  # noqa: E402
from test_result_model import _doubled_loss_model  # noqa: E402


def main():
    print(device_line())
    x, y = load_digits("train")
    x, y = x[:600].astype("float32"), y[:600]
    xt, yt = load_digits("test")
    xt = xt.astype("float32")

    model = _doubled_loss_model()
    got = fit_with_tips(model, (x, y), epochs=5, seed=0, verbose=0).model
    print("result.model:", type(got).__name__, "| the user's object inside:",
          getattr(got, "wrapped", None) is model)
    preprocess = getattr(got, "preprocess", None)
    if preprocess is None:  # the earlier functional result: standardize, then the model
        features = keras.Model(got.inputs, got.get_layer("standardize").output)
        preprocess = lambda a: features.predict(a, verbose=0)  # noqa: E731
    logits = model.predict(preprocess(xt), verbose=0)
    by_hand = float(DoubledLoss.loss_of(yt, logits)) if hasattr(DoubledLoss, "loss_of") else (
        2.0 * float(keras.ops.mean(keras.losses.sparse_categorical_crossentropy(
            yt, logits, from_logits=True))))
    evaluated = got.evaluate(xt, yt, batch_size=len(xt), verbose=0, return_dict=True)["loss"]
    print(f"compute_loss  user's loss by hand {by_hand:.4f}  result.model.evaluate {evaluated:.4f}")
    DoubledLoss.calls = 0
    got.fit(x, y, epochs=1, batch_size=100, verbose=0)
    print(f"compute_loss  calls during result.model.fit: {DoubledLoss.calls} (TensorFlow counts its traces)")

    big, big_t = (y >= 5).astype("float32"), (yt >= 5).astype("float32")
    keras.utils.set_random_seed(0)
    clf = keras.Sequential([keras.Input((64,)), keras.layers.Dense(16, activation="relu"),
                            keras.layers.Dense(1, activation="sigmoid")])
    clf.compile("adam", "binary_crossentropy", metrics=[FBeta(beta=2.0, threshold=0.3, name="f2")])
    got = fit_with_tips(clf, (x, big), epochs=5, seed=0, verbose=0).model
    reported = got.evaluate(xt, big_t, batch_size=len(xt), verbose=0, return_dict=True)["f2"]
    pred = got.predict(xt, verbose=0)[:, 0] > 0.3
    tp, fp = float((pred & (big_t == 1)).sum()), float((pred & (big_t == 0)).sum())
    fn = float((~pred & (big_t == 1)).sum())
    print(f"F2 at 0.3     by hand {5 * tp / (5 * tp + 4 * fn + fp):.4f}  result.model.evaluate "
          f"{reported:.4f}")


if __name__ == "__main__":
    main()
