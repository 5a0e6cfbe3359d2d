"""Issue 36 items 3 and 6: a model that cannot learn from its start, acted on
(tip 6). The embedded UCI digits (1437 train, 360 test) into Dense(32, relu)
+ Dense(10) whose kernels are all zero (`kernel_initializer="zeros"`): the
output is the same for every example and no gradient reaches the hidden
layer. Seeds 0-2, test accuracy and status:

  plain         model.fit: Adam(1e-3), batch 32, 20% validation,
                EarlyStopping(patience 10, best weights), up to 200 epochs
  kept          fit_with_tips(model, (x, y), reinitialize=False)
  redrawn       fit_with_tips(model, (x, y)): the zero kernels redrawn,
                randn / sqrt(fan_in), before anything is measured
  keras_init    fit_with_tips on the same layers with Keras' default
                initialization (glorot_uniform), for reference

    python benchmarks/bench_dead_start.py
"""

import os
import sys
import warnings

import keras
import numpy as np

sys.path.insert(0, os.path.dirname(__file__))

from common import device_line  # noqa: E402
from keras_recipes import fit_with_tips  # noqa: E402
from keras_recipes.datasets import load_digits  # noqa: E402


def model(seed, init):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((64,)),
                             keras.layers.Dense(32, activation="relu", kernel_initializer=init),
                             keras.layers.Dense(10, kernel_initializer=init)])


def main():
    print(device_line())
    x, y = load_digits("train")
    xt, yt = load_digits("test")
    x, xt = x.astype("float32"), xt.astype("float32")
    print("arm         seed  test_acc  epochs  status")
    for seed in (0, 1, 2):
        for arm in ("plain", "kept", "redrawn", "keras_init"):
            status = "-"
            m = model(seed, "glorot_uniform" if arm == "keras_init" else "zeros")
            if arm == "plain":
                m.compile(keras.optimizers.Adam(1e-3),
                          keras.losses.SparseCategoricalCrossentropy(from_logits=True))
                stop = keras.callbacks.EarlyStopping(patience=10, restore_best_weights=True)
                epochs = len(m.fit(x, y, batch_size=32, epochs=200, validation_split=0.2,
                                   callbacks=[stop], verbose=0).history["loss"])
            else:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    result = fit_with_tips(m, (x, y), seed=seed, verbose=0,
                                           reinitialize=False if arm == "kept" else "auto")
                m, status, epochs = result.model, result.status, len(result.history["loss"])
            accuracy = float((np.asarray(m.predict(xt, verbose=0)).argmax(-1) == yt).mean())
            print(f"{arm:<11} {seed:>4}  {accuracy:.4f}  {epochs:>6}  {status}", flush=True)


if __name__ == "__main__":
    main()
