"""Issue 38, item 4: a model that encodes its text itself (keras.Input of
dtype string into TextVectorization), fed in each form, against plain
model.fit on the batched tf.data form (Keras 3's fit refuses numpy string
arrays: "Invalid dtype"). The corpus is the short reviews written for
tests/test_text_inputs.py (two classes), 240 for training and 240 others
(seed 1) for test; 20 epochs each, seeds 0-2. Before this change every
form was refused ("encode strings first").

    python benchmarks/bench_text_inputs.py
"""

import os
import sys
import tempfile

import keras
import numpy as np
import tensorflow as tf

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
sys.path.insert(0, os.path.dirname(__file__))

from common import device_line  # noqa: E402
from keras_recipes import fit_with_tips  # noqa: E402
from test_text_inputs import _forms  # noqa: E402
from test_text_inputs import corpus  # noqa: E402
from test_text_inputs import text_model  # noqa: E402


class _Path(str):
    def __truediv__(self, other):
        import pathlib
        return pathlib.Path(self) / other


def main():
    print(device_line())
    texts, _ = corpus()
    test_x, test_y = corpus(240, seed=1)
    with tempfile.TemporaryDirectory() as folder:
        forms = _forms(_Path(folder))
        print(f"{'form':28} {'seed':>4} {'test_acc':>8}")
        for seed in range(3):
            for form, (data, shape, name) in forms.items():
                model = text_model(texts, shape, name)
                result = fit_with_tips(model, data, epochs=20, seed=seed, verbose=0)
                x = tf.constant(test_x[:, None] if shape else test_x)
                pred = np.asarray(result.model.predict({name: x} if name else x, verbose=0))
                print(f"{form:28} {seed:>4} {float(((pred.ravel() > 0.5) == test_y).mean()):8.4f}",
                      flush=True)
            keras.utils.set_random_seed(seed)
            model = text_model(texts, (), None)
            model.compile("adam", "binary_crossentropy", metrics=["accuracy"])
            model.fit(forms["batched tf.data"][0], epochs=20, verbose=0)
            pred = np.asarray(model.predict(tf.constant(test_x), verbose=0))
            print(f"{'plain model.fit (tf.data)':28} {seed:>4} "
                  f"{float(((pred.ravel() > 0.5) == test_y).mean()):8.4f}", flush=True)


if __name__ == "__main__":
    main()
