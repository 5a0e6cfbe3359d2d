"""Run as a script (logical devices must be set before TensorFlow starts):
fit_with_tips and fit_ensemble under MirroredStrategy over two logical CPUs,
against one device. Prints one JSON line for tests/test_distribute.py."""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import tensorflow as tf  # noqa: E402

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_recipes import distribute  # noqa: E402
from keras_recipes import fit_ensemble  # noqa: E402
from keras_recipes import fit_with_tips  # noqa: E402
from keras_recipes.datasets import load_digits  # noqa: E402

EPOCHS = int(sys.argv[1]) if len(sys.argv) > 1 else 8
out = {}
x, y = load_digits("train")
x_test, y_test = load_digits("test")


def mlp():
    return keras.Sequential([keras.Input((64,)), keras.layers.Dense(64, activation="relu"),
                             keras.layers.Dense(10)])


def accuracy(model):
    return float(np.mean(np.argmax(model.predict(x_test, verbose=0), -1) == y_test))


def digits_run(strategy):
    keras.utils.set_random_seed(0)
    model = mlp()
    # Tip 2's 128 (the default is 32): a global batch that splits 64 per replica.
    result = fit_with_tips(model, (x, y), epochs=EPOCHS, seed=0, verbose=0, strategy=strategy,
                           batch_size=128)
    return {"test_accuracy": accuracy(result.model), "history": result.history,
            "tips": [[t.name, t.setting, t.reason] for t in result.tips],
            "execution": {k: v for k, v in result.execution.items()
                          if isinstance(v, (bool, int, float, str, list))}}


mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
out["single"] = digits_run(None)
out["mirrored"] = digits_run(mirrored)

# Validation with a partial last batch holding fewer examples than replicas
# (129 = 4 * 32 + 1 at the default batch: one replica gets no example of it).
keras.utils.set_random_seed(1)
x_val, y_val = x[:129], y[:129]
result = fit_with_tips(mlp(), (x[129:], y[129:]), validation_data=(x_val, y_val), epochs=1,
                       seed=1, verbose=0, strategy=mirrored)
logits = result.model.predict(x_val, verbose=0).astype("float64")
logits -= logits.max(-1, keepdims=True)
nll = -(logits[np.arange(len(y_val)), y_val] - np.log(np.exp(logits).sum(-1)))
out["partial_validation"] = {"val_loss": result.history["val_loss"][-1],
                             "numpy_loss": float(nll.mean()), "n": len(y_val)}
# The same through the split fit_with_tips holds out itself (validation_split).
result = fit_with_tips(mlp(), (x[:1153], y[:1153]), validation_split=0.2, epochs=1, seed=1,
                       verbose=0, strategy=mirrored)
out["split_validation"] = {"n_validation": result.data.n_validation,
                           "val_loss": result.history["val_loss"][-1]}

# Called inside the strategy's scope without `strategy=`: that strategy is used.
with mirrored.scope():
    keras.utils.set_random_seed(3)
    inside = mlp()
    result = fit_with_tips(inside, (x, y), epochs=1, seed=3, verbose=0)
out["inside_scope"] = {"replicas": result.execution["replicas"],
                       "rows": [t.setting for t in result.tips if t.name == "model"]}

# Bad input, refused before any work.
errors = {}
for name, kwargs in [("batch_size", {"batch_size": 127}), ("jit_compile", {"jit_compile": True})]:
    try:
        fit_with_tips(mlp(), (x, y), epochs=1, verbose=0, strategy=mirrored, **kwargs)
        errors[name] = None
    except ValueError as error:
        errors[name] = str(error)
out["errors"] = errors

# A model built outside the scope is cloned in with its weights; a subclassed
# one that cannot be cloned is refused with a message saying what to do.
keras.utils.set_random_seed(2)
outside = mlp()
clone, note = distribute.in_scope(outside, mirrored)
out["clone"] = {
    "note": note,
    "same_weights": all(np.array_equal(a, b) for a, b in zip(outside.get_weights(),
                                                            clone.get_weights())),
    "in_scope": all(mirrored.extended.variable_created_in_scope(v.value) for v in clone.variables),
    "original_in_scope": any(mirrored.extended.variable_created_in_scope(v.value)
                             for v in outside.variables),
}


class Subclassed(keras.Model):
    def __init__(self, units):
        super().__init__()
        self.dense = keras.layers.Dense(units)

    def call(self, inputs):
        return self.dense(inputs)


subclassed = Subclassed(10)
subclassed(np.zeros((1, 64), "float32"))
try:
    distribute.in_scope(subclassed, mirrored)
    out["subclassed_error"] = None
except ValueError as error:
    out["subclassed_error"] = str(error)

# fit_ensemble: members built in the scope, trained data-parallel.
ens = {}
for name, strategy in [("single", None), ("mirrored", mirrored)]:
    result = fit_ensemble(mlp, (x, y), members=3, epochs=max(EPOCHS // 2, 2), seed=0, verbose=0,
                          strategy=strategy)
    ens[name] = {"path": result.path, "test_accuracy": accuracy(result.model),
                 "members_in_scope": all(mirrored.extended.variable_created_in_scope(v.value)
                                         for m in result.members for v in m.variables)}
out["ensemble"] = ens
print(json.dumps(out))
