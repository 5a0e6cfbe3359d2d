"""keras.distribution checks on JAX with two host devices, in their own
process (the device count is fixed when JAX starts). Used by
tests/test_sharding.py; writes what it measured as JSON.

    python tests/sharding_check.py plan OUT.json
    python tests/sharding_check.py train OUT.json CHECKPOINT_DIR
"""

import os

os.environ["KERAS_BACKEND"] = "jax"
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"

from no_tensorflow import block  # noqa: E402

block()  # the JAX run needs no TensorFlow

import json  # noqa: E402
import sys  # noqa: E402
import warnings  # noqa: E402

import jax  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_recipes import fit_ensemble  # noqa: E402
from keras_recipes import fit_with_tips  # noqa: E402
from keras_recipes import plan  # noqa: E402
from keras_recipes import sharding  # noqa: E402
from keras_recipes.datasets import load_digits  # noqa: E402

# Odd counts on purpose: 1004 examples, a 0.2 split (201 held out, 803 to train),
# so neither the last training batch nor the last validation batch divides over two.
N = 1004


def mlp(width=32):
    return keras.Sequential([keras.Input((64,)), keras.layers.Dense(width, activation="relu"),
                             keras.layers.Dense(10)])


def row(tips, name):
    return next(t for t in tips if t.name == name)


def data():
    x, y = load_digits("train")
    return x[:N], y[:N]


def layout_plan(x, y, shape, key):
    """plan() of a model named "net" under a ModelParallel laying `key`
    over the "model" axis of a `shape` mesh; (the plan, its RuntimeWarnings)."""
    mesh = keras.distribution.DeviceMesh(shape, ["batch", "model"], jax.devices())
    layout = keras.distribution.LayoutMap(mesh)
    layout[key] = (None, "model")
    parallel = keras.distribution.ModelParallel(layout_map=layout, batch_dim_name="batch")
    with parallel.scope():
        model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(
            32, activation="relu", name="hidden"), keras.layers.Dense(10)], name="net")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        p = plan(model, (x, y), seed=0, verbose=0, strategy=parallel, audit=False,
                 learning_rate=1e-3)
    return p, [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]


def check_plan(out):
    """Plan-level: the rows, the auto choice, the cut batches, a refusal."""
    x, y = data()
    report = {"devices": len(jax.devices())}
    two = keras.distribution.DataParallel(devices=jax.devices())
    p = plan(mlp(), (x, y), seed=0, verbose=0, batch_size=96, strategy=two, audit=False,
             learning_rate=1e-3)
    report["row"] = row(p.tips, "distribution").setting + " | " + row(
        p.tips, "distribution").reason
    report["shard_cut"] = list(p.data.shard_cut())
    report["padded_validation"] = p.decisions.padded_validation
    train, validation = p.data.fit_inputs(0, 1, True, None)
    report["train_rows"] = [int(len(train[i][1])) for i in range(len(train))]
    batches = [validation[i] for i in range(len(validation))]
    report["val_rows"] = [int(len(b[1])) for b in batches]
    report["val_weight_sum"] = float(sum(np.sum(b[2]) for b in batches))
    report["val_zero_weights"] = int(sum(np.sum(b[2] == 0) for b in batches))
    # A model built before the distribution (its variables on one device) is
    # cloned under it with its weights, and trained as the clone.
    before = mlp()
    before.build((None, 64))
    cloned = plan(before, (x, y), seed=0, verbose=0, strategy=two, audit=False,
                  learning_rate=1e-3)
    report["clone_row"] = row(cloned.tips, "model").setting + " | " + row(
        cloned.tips, "model").reason
    report["clone_same_weights"] = all(np.array_equal(a, b) for a, b in zip(
        before.get_weights(), cloned.model.get_weights())) and cloned.model is not before
    # Built after the distribution (Keras' default mesh names its devices
    # "cpu:0"): trained in place, no clone.
    default = keras.distribution.DataParallel()
    with default.scope():
        after = mlp()
    kept = plan(after, (x, y), seed=0, verbose=0, strategy=default, audit=False,
                learning_rate=1e-3)
    report["kept_in_place"] = kept.model is after and not any(t.name == "model"
                                                              for t in kept.tips)
    # The recipe's own read across processes (an ensemble's scores): all rows
    # predicted alone on one device from the laid-out weights, in batches
    # (37 rows, batch 16), as the same weights predict without the distribution.
    keras.distribution.set_distribution(default)
    here = sharding.predict_here(after, x[:37], 16)
    keras.distribution.set_distribution(None)
    alone = mlp()
    alone.set_weights(after.get_weights())
    report["predict_here_diff"] = float(np.abs(here - alone.predict(x[:37], verbose=0)).max())
    report["predict_here_shape"] = list(here.shape)
    # ModelParallel whose LayoutMap key matches no variable (a key without
    # the model's name in front): nothing is split, and the row and a warning
    # say so, with the paths' form.
    p, caught = layout_plan(x, y, (1, 2), "hidden/kernel")
    report["unmatched_layout"] = row(p.tips, "layout").setting + " | " + row(
        p.tips, "layout").reason
    report["unmatched_warnings"] = caught
    # A key that matches, over a model axis of one device: nothing to split
    # over, and the row says that instead.
    p, _ = layout_plan(x, y, (2, 1), ".*hidden/kernel")
    report["one_device_axis_layout"] = row(p.tips, "layout").reason
    # strategy="auto": no accelerators here (host devices), then two "found".
    auto = plan(mlp(), (x, y), seed=0, verbose=0, strategy="auto", audit=False,
                learning_rate=1e-3)
    report["auto_none"] = row(auto.tips, "distribution").reason
    sharding.local_accelerators = lambda: jax.devices()
    auto = plan(mlp(), (x, y), seed=0, verbose=0, strategy="auto", audit=False,
                learning_rate=1e-3)
    report["auto_two"] = row(auto.tips, "distribution").setting
    try:
        plan(mlp(), (x, y), strategy="mirrored", verbose=0)
    except TypeError as error:
        report["bad_strategy"] = str(error)
    # Several processes must split and shuffle alike: a seed, or an error first.
    sharding.process_count = lambda: 2
    try:
        plan(mlp(), (x, y), strategy=two, verbose=0)
    except ValueError as error:
        report["no_seed"] = str(error)
    json.dump(report, open(out, "w"))


def accuracy(model, x, y):
    return float((np.asarray(model.predict(x, batch_size=200, verbose=0)).argmax(-1) == y).mean())


def check_train(out, checkpoint_dir):
    """End to end: plain fit's crash, the exact validation, one and two
    devices' norms, ModelParallel, resume, an ensemble."""
    x, y = data()
    xt, yt = load_digits("test")
    report = {}
    two = keras.distribution.DataParallel(devices=jax.devices())
    one = keras.distribution.DataParallel(devices=jax.devices()[:1])

    # Plain model.fit on the same split stops at its 33-row last batch.
    with two.scope():
        plain = mlp()
        plain.compile("adam", "sparse_categorical_crossentropy")
        try:
            plain.fit(x[:801], y[:801], batch_size=128, epochs=1, verbose=0)
            report["plain_fit"] = "trained"
        except Exception as error:  # noqa: BLE001 (what a user would see)
            report["plain_fit"] = f"{type(error).__name__}: {str(error)[:200]}"

    # One and two devices, from the same weights and batches (800 training
    # rows: none left out): the same global gradient norm and update ratio.
    keras.utils.set_random_seed(0)
    start = mlp().get_weights()
    runs = {}
    for name, distribution in (("one", one), ("two", two)):
        with distribution.scope():
            model = mlp()
        model.set_weights(start)
        result = fit_with_tips(model, (x[:1001], y[:1001]), strategy=distribution, seed=0,
                               epochs=3, verbose=0, learning_rate=1e-3, batch_size=96)
        runs[name] = result
        report[f"{name}_grad_norm"] = [float(v) for v in result.history["grad_norm"]]
        report[f"{name}_update_ratio"] = [float(v) for v in result.history["update_ratio"]]
        report[f"{name}_val_loss"] = [float(v) for v in result.history["val_loss"]]

    # val_loss and val_accuracy of the padded pass against the real rows,
    # evaluated without the distribution (one batch of all 201 rows).
    result = runs["two"]
    report["two_val_accuracy"] = float(result.history["val_accuracy"][-1])
    x_val, y_val = result.data.validation_arrays()
    final = keras.models.clone_model(result.model)
    final.set_weights(result.model.get_weights())
    final.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    # History holds the last epoch; the weights are the best epoch's.
    best = int(np.argmin(result.history["val_loss"]))
    report["best_val_loss"] = float(result.history["val_loss"][best])
    report["best_val_accuracy"] = float(result.history["val_accuracy"][best])
    keras.distribution.set_distribution(None)
    loss, acc = final.evaluate(x_val, y_val, batch_size=len(x_val), verbose=0)
    report["reference_val_loss"], report["reference_val_accuracy"] = float(loss), float(acc)

    # The user's own weighted_metrics, a dict for a two-output model, joined
    # with its metrics= as weighted: every validation metric is the real rows'.
    with two.scope():
        inputs = keras.Input((64,))
        hidden = keras.layers.Dense(32, activation="relu")(inputs)
        heads = {"a": keras.layers.Dense(10, name="a")(hidden),
                 "b": keras.layers.Dense(10, name="b")(hidden)}
        two_heads = keras.Model(inputs, heads)
        ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        two_heads.compile("adam", {"a": ce, "b": ce}, metrics={"a": ["accuracy"]},
                          weighted_metrics={"b": ["accuracy"]})
    # preprocess=False: validation_arrays() then holds the rows the model reads.
    heads_result = fit_with_tips(two_heads, (x[:1001], {"a": y[:1001], "b": y[:1001]}),
                                 strategy=two, seed=0, epochs=2, verbose=0, preprocess=False)
    # History's epoch whose weights result.model holds (the best val_loss).
    best = int(np.argmin(heads_result.history["val_loss"]))
    shown = {k: float(v[best]) for k, v in heads_result.history.items() if k.startswith("val_")}
    x_val, y_val = heads_result.data.validation_arrays()
    keras.distribution.set_distribution(None)
    plain_heads = keras.models.clone_model(heads_result.model)
    plain_heads.set_weights(heads_result.model.get_weights())
    plain_heads.compile(loss={"a": ce, "b": ce}, metrics={"a": ["accuracy"], "b": ["accuracy"]})
    evaluated = plain_heads.evaluate(x_val, y_val, batch_size=len(x_val), verbose=0,
                                     return_dict=True)
    report["heads_shown"], report["heads_reference"] = shown, {
        f"val_{k}": float(v) for k, v in evaluated.items()}
    report["heads_padded"] = bool(heads_result.plan.decisions.padded_validation)

    # A longer run: accuracy floor, and resume from a checkpoint written with
    # sharded variables.
    with two.scope():
        model = mlp(64)
    first = fit_with_tips(model, (x, y), strategy=two, seed=0, epochs=4, verbose=0,
                          checkpoint_dir=checkpoint_dir)
    report["first_status"] = first.status
    with two.scope():
        model = mlp(64)
    resumed = fit_with_tips(model, (x, y), strategy=two, seed=0, epochs=30, verbose=0,
                            checkpoint_dir=checkpoint_dir)
    report["resumed_rows"] = [t.setting for t in resumed.tips if t.name == "resumed"]
    report["resumed_epochs"] = len(resumed.history["loss"])
    report["resumed_accuracy"] = accuracy(resumed.model, xt, yt)
    report["final_keras"] = os.path.exists(os.path.join(checkpoint_dir, "final.keras"))

    # ModelParallel with the user's LayoutMap: the hidden kernel split over
    # the "model" axis, the batch over none.
    mesh = keras.distribution.DeviceMesh((1, 2), ["batch", "model"], jax.devices())
    layout = keras.distribution.LayoutMap(mesh)
    layout[".*hidden/kernel"] = (None, "model")  # a full match of the variable's path
    parallel = keras.distribution.ModelParallel(layout_map=layout, batch_dim_name="batch")
    with parallel.scope():
        model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(64, activation="relu",
                                                                          name="hidden"),
                                  keras.layers.Dense(10)])
    result = fit_with_tips(model, (x, y), strategy=parallel, seed=0, epochs=20, verbose=0)
    kernel = model.get_layer("hidden").kernel.value  # the model given, trained in place
    report["model_parallel_spec"] = str(kernel.sharding.spec)
    report["model_parallel_accuracy"] = accuracy(result.model, xt, yt)
    report["model_parallel_row"] = row(result.tips, "distribution").setting
    report["model_parallel_layout"] = row(result.tips, "layout").setting + " | " + row(
        result.tips, "layout").reason

    # An ensemble under the distribution.
    ensemble = fit_ensemble(lambda: mlp(), (x, y), members=2, strategy=two, seed=0, epochs=10,
                            verbose=0)
    report["ensemble_path"] = ensemble.path
    report["ensemble_accuracy"] = accuracy(ensemble.model, xt, yt)
    json.dump(report, open(out, "w"))


if __name__ == "__main__":
    if sys.argv[1] == "plan":
        check_plan(sys.argv[2])
    else:
        check_train(sys.argv[2], sys.argv[3])
