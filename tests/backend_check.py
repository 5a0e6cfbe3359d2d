"""Runs the in-memory front door on the backend in KERAS_BACKEND, in its own
process, optionally where TensorFlow cannot be imported (as on a machine
that has only JAX or torch). Used by tests/test_backends.py.

    python tests/backend_check.py tour OUT.json [--no-tf]
    python tests/backend_check.py train OUT.npz INIT.npz SHUFFLE [--no-tf]
"""

import json
import sys

from no_tensorflow import block

if "--no-tf" in sys.argv:
    block()

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_recipes  # noqa: E402
from keras_recipes.datasets import load_digits  # noqa: E402


def mlp(width=32):
    return keras.Sequential([keras.Input((64,)), keras.layers.Dense(width, activation="relu"),
                             keras.layers.Dense(10)])


class Batches(keras.utils.PyDataset):
    def __init__(self, x, y, size):
        super().__init__()
        self.x, self.y, self.size = x, y, size
        self.reads = 0

    def __len__(self):
        return -(-len(self.x) // self.size)

    def __getitem__(self, i):
        self.reads += 1
        part = slice(i * self.size, (i + 1) * self.size)
        return self.x[part], self.y[part]


class DoubledLoss(keras.Model):
    calls = 0

    @staticmethod
    def loss_of(y, logits):
        return 2.0 * keras.ops.mean(keras.losses.sparse_categorical_crossentropy(
            y, logits, from_logits=True))

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        type(self).calls += 1
        return self.loss_of(y, y_pred)


def tour(out):
    x, y = load_digits("train")
    xt, yt = load_digits("test")
    report = {"backend": keras.backend.backend()}
    # Two epochs: the plan's rows and that the same plan trains are checked
    # here (the default budget's quality is test_fit's and bench_quality's).
    plan = keras_recipes.plan(mlp(), (x, y), seed=0, verbose=0, epochs=2)
    report["plan_rows"] = [t.name for t in plan.tips]
    result = plan.fit()
    report["plan_fit_status"] = result.status
    result = keras_recipes.fit_with_tips(mlp(), (x, y), epochs=4, seed=0, verbose=0)
    report["accuracy"] = float((result.model.predict(xt, verbose=0).argmax(-1) == yt).mean())
    report["epochs"] = len(result.history["loss"])
    report["jit_compile"] = bool(result.model.jit_compile)
    report["execution_jit_compile"] = result.execution["jit_compile"]
    report["update_ratio_epochs"] = len(result.history["update_ratio"])
    report["has_standardize"] = any(layer.name == "standardize" for layer in result.model.layers)

    ensemble = keras_recipes.fit_ensemble(lambda: mlp(16), (x, y), members=3, epochs=2, seed=0,
                                          verbose=0)
    report["ensemble_path"] = ensemble.path
    report["ensemble_accuracy"] = float(
        (ensemble.model.predict(xt, verbose=0).argmax(-1) == yt).mean())

    _fused_ensembles(report, x[:480], y[:480])

    audit = keras_recipes.audit(mlp(), (x, y))
    report["audit_rules"] = len(audit.findings)
    report["audit_could_not_run"] = [f.rule for f in audit.findings if "could not run" in f.message]

    model = mlp()
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    report["gradients_ok"] = bool(keras_recipes.check_gradients(model, x[:8], y[:8], loss=loss,
                                                                seed=0))
    report["gradients_wrong_caught"] = not keras_recipes.check_gradients(
        _wrong_gradient_model(), x[:8], seed=0).ok

    # Several inputs (a dict), regression targets standardized, a PyDataset.
    keras.utils.set_random_seed(0)  # its initial weights, whatever ran before
    inputs = {"left": keras.Input((32,), name="left"), "right": keras.Input((32,), name="right")}
    joined = keras.layers.Concatenate()([inputs["left"], inputs["right"]])
    two = keras.Model(inputs, keras.layers.Dense(10)(keras.layers.Dense(16, "relu")(joined)))
    result = keras_recipes.fit_with_tips(two, ({"left": x[:, :32], "right": x[:, 32:]}, y),
                                         epochs=2, seed=0, verbose=0)
    report["dict_inputs_accuracy"] = float((keras.ops.convert_to_numpy(result.model.predict(
        {"left": xt[:, :32], "right": xt[:, 32:]}, verbose=0)).argmax(-1) == yt).mean())
    regression = keras.Sequential([keras.Input((63,)), keras.layers.Dense(1)])
    # A linear target far from unit scale: standardized for training, and
    # predicted back in its own units.
    target = x[:, :63] @ np.random.default_rng(0).normal(size=63) * 10.0 + 500.0
    result = keras_recipes.fit_with_tips(regression, (x[:, :63], target), epochs=10, seed=0,
                                         optimizer="sgd", learning_rate=0.01, verbose=0)
    report["regression_rows"] = [t.name for t in result.tips]
    prediction = result.model.predict(xt[:, :63], verbose=0).ravel()
    truth = xt[:, :63] @ np.random.default_rng(0).normal(size=63) * 10.0 + 500.0
    report["regression_r2"] = float(1 - ((prediction - truth) ** 2).mean() / truth.var())
    # result.model is compiled: evaluate reports in the targets' units.
    report["regression_evaluate_r2"] = float(result.model.evaluate(
        xt[:, :63], truth, verbose=0, return_dict=True)["r2_score"])
    # One 1-D column per input (as a pandas column would be), Input((1,)) each.
    columns = {f"c{i}": keras.Input((1,), name=f"c{i}") for i in range(3)}
    joined = keras.layers.Concatenate()(list(columns.values()))
    per_column = keras.Model(columns, keras.layers.Dense(10)(joined))
    result = keras_recipes.fit_with_tips(per_column, ({f"c{i}": x[:, 20 + i] for i in range(3)}, y),
                                         epochs=1, seed=0, verbose=0)
    report["column_inputs_status"] = result.status
    batches = Batches(x, y, 100)
    result = keras_recipes.fit_with_tips(mlp(), batches, epochs=2, seed=0, verbose=0)
    report["pydataset_n"] = result.data.n_train + result.data.n_validation
    # Read anew every epoch, as model.fit reads it (issue 38 item 3).
    report["pydataset_reads"] = batches.reads
    report["pydataset_steps"] = result.data.steps_per_epoch

    # The user's own compute_loss behind result.model (issue 37 item 2).
    inputs = keras.Input((64,))
    own = DoubledLoss(inputs, keras.layers.Dense(10)(inputs))
    got = keras_recipes.fit_with_tips(own, (x, y), epochs=1, seed=0, verbose=0).model
    logits = keras.ops.convert_to_numpy(own.predict(got.preprocess(x[:300]), verbose=0))
    report["own_loss_by_hand"] = float(keras.ops.convert_to_numpy(DoubledLoss.loss_of(
        y[:300], logits)))
    report["own_loss_evaluated"] = got.evaluate(x[:300], y[:300], batch_size=300, verbose=0,
                                                return_dict=True)["loss"]
    DoubledLoss.calls = 0
    got.fit(x[:300], y[:300], epochs=1, batch_size=100, verbose=0)
    report["own_loss_calls_in_fit"] = DoubledLoss.calls
    report["own_is_wrapped"] = type(got).__name__ == "Preprocessed" and got.wrapped is own

    try:
        keras_recipes.fit_with_tips(mlp(), "mnist", verbose=0)
        report["tfds_error"] = None
    except (ImportError, ValueError) as error:
        report["tfds_error"] = f"{type(error).__name__}: {error}"
    report["tensorflow_imported"] = "tensorflow" in sys.modules
    with open(out, "w") as f:
        json.dump(report, f)


def _fused_ensembles(report, x, y):
    """Issue 17: vectorized, stacked and sequential members are the same
    members (own numpy data orders here; LSTM clipped per member)."""
    def lstm():
        return keras.Sequential([keras.Input((8, 8)), keras.layers.LSTM(8), keras.layers.Dense(10)])

    for name, build, data, extra in [("mlp", lambda: mlp(16), (x, y), {}),
                                     ("lstm", lstm, (x[:240].reshape(-1, 8, 8), y[:240]),
                                      {"clip_norm": 0.1})]:
        # Two members: each path's per-member state is checked on both.
        common = dict(members=2, seed=0, epochs=2, stop_ratio=None, verbose=0,
                      learning_rate=0.05, **extra)
        runs = {"auto": keras_recipes.fit_ensemble(build, data, **common),
                "sequential": keras_recipes.fit_ensemble(build, data, fused=False, **common)}
        if name == "mlp":  # (the LSTM's layouts are compared on TensorFlow)
            runs["stacked"] = keras_recipes.fit_ensemble(build, data, vectorize=False, **common)
        preds = {k: np.stack([keras.ops.convert_to_numpy(m.predict(data[0][:64], verbose=0))
                              for m in r.members]) for k, r in runs.items()}
        row = next(t for t in runs["auto"].fit_result.tips if t.name == "ensemble")
        report[f"{name}_ensemble_setting"] = row.setting
        report[f"{name}_ensemble_reason"] = row.reason
        if "stacked" in preds:
            report[f"{name}_auto_vs_stacked"] = float(
                np.abs(preds["auto"] - preds["stacked"]).max())
        report[f"{name}_auto_vs_sequential"] = float(
            np.abs(preds["auto"] - preds["sequential"]).max())
        report[f"{name}_members_differ"] = float(np.abs(preds["auto"][0] - preds["auto"][1]).max())
        report[f"{name}_clip_fraction"] = runs["auto"].fit_result.history["clip_fraction"][0]


def _wrong_gradient_model():
    """A layer whose hand-written gradient is twice the true one (tip 8)."""

    @keras.ops.custom_gradient
    def square(v):
        def grad(*args, upstream=None):
            upstream = args[0] if upstream is None else upstream
            return upstream * 4.0 * v  # the true gradient is 2 * v

        return v * v, grad

    class Square(keras.layers.Layer):
        def call(self, v):
            return square(v)

    return keras.Sequential([keras.Input((64,)), keras.layers.Dense(8), Square(),
                             keras.layers.Dense(3)])


def train(out, init, shuffle):
    """A seeded run from given initial weights: its final weights and losses."""
    x, y = load_digits("train")
    model = mlp()
    start = np.load(init)
    model.set_weights([start[f"w{i}"] for i in range(len(start.files))])
    result = keras_recipes.fit_with_tips(model, (x, y), epochs=3, seed=0, verbose=0,
                                         shuffle=shuffle == "shuffle", audit=False)
    weights = result.model.get_weights()
    np.savez(out, loss=np.array(result.history["loss"]),
             val_loss=np.array(result.history["val_loss"]),
             **{f"w{i}": w for i, w in enumerate(weights)})


if __name__ == "__main__":
    if sys.argv[1] == "tour":
        tour(sys.argv[2])
    else:
        train(sys.argv[2], sys.argv[3], sys.argv[4])
