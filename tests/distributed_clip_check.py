"""Run as a script (a fresh process: logical devices must be set before
TensorFlow starts): the pre-clip norm ClippedOptimizer records under
MirroredStrategy over two logical CPUs equals the single-device one on the
same global batch, and the weights after the steps match. Prints JSON."""

import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import tensorflow as tf  # noqa: E402

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_recipes.optimizers import ClippedOptimizer  # noqa: E402

rng = np.random.default_rng(0)
x = rng.normal(size=(64, 5)).astype("float32")
y = (x @ rng.normal(size=(5, 1)) * 10).astype("float32")


def run(strategy):
    with strategy.scope():
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(8, activation="tanh"),
                                  keras.layers.Dense(1)])
        optimizer = ClippedOptimizer(keras.optimizers.SGD(0.05), max_norm=1.0)
        model.compile(optimizer, "mse")
    model.fit(x, y, batch_size=64, epochs=1, shuffle=False, verbose=0)
    stats = optimizer.read_stats(reset=False)
    model.fit(x, y, batch_size=64, epochs=2, shuffle=False, verbose=0)
    return stats, [w.tolist() for w in model.get_weights()]


single, w_single = run(tf.distribute.get_strategy())
mirrored, w_mirrored = run(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))
print(json.dumps({"single": single, "mirrored": mirrored,
                  "max_weight_diff": max(float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
                                         for a, b in zip(w_single, w_mirrored))}))
