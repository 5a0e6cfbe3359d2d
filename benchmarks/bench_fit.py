"""fit_with_tips against (a) model.fit with Keras defaults and (b) a
hand-written Keras pipeline doing the same tips, in one run; plus its
per-epoch overhead and the jit_compile="auto" choice on a conv net.

    python benchmarks/bench_fit.py [--part quality|overhead|execution|all]

Datasets: digits (embedded, fixed test split), MNIST test set (fixed 8k/2k
split, flattened for the MLP) and grunfeld (regression of `invest` on `value`
and `capital`, R^2 on a fixed 20% test split).
"""

import argparse
import csv
import statistics

import keras
import numpy as np

from common import DATA, Timer, device_line, load_mnist_split, need
from keras_recipes import fit_with_tips
from keras_recipes.datasets import load_digits
from keras_recipes.models import preset


def datasets():
    out = {"digits": (load_digits("train"), load_digits("test"), 10)}
    (x, y), (xt, yt) = load_mnist_split()
    out["mnist"] = ((x.reshape(len(x), -1).astype("float32"), y),
                    (xt.reshape(len(xt), -1).astype("float32"), yt), 10)
    rows = list(csv.reader(open(need(DATA / "tabular" / "grunfeld.csv"))))
    head = rows[0]
    table = np.array([[float(r[head.index(c)]) for c in ("value", "capital", "invest")]
                      for r in rows[1:]], "float32")
    test = np.arange(len(table)) % 5 == 0
    out["grunfeld"] = ((table[~test, :2], table[~test, 2]), (table[test, :2], table[test, 2]), None)
    return out


def model_for(name, n_in, n_out):
    keras.utils.set_random_seed(0)
    if n_out is None:
        return keras.Sequential([keras.Input((n_in,)), keras.layers.Dense(32, activation="relu"),
                                 keras.layers.Dense(1)])
    return preset("mlp", (n_in,), n_out)


def score(model, xt, yt, n_out):
    pred = model.predict(xt, verbose=0)
    if n_out is None:
        pred = pred[:, 0]
        return 1 - ((yt - pred) ** 2).sum() / ((yt - yt.mean()) ** 2).sum()
    return (pred.argmax(-1) == yt).mean()


def loss_for(n_out):
    return "mse" if n_out is None else keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def hand_written(model, x, y, epochs, n_out, jit, callbacks=()):
    """What a careful Keras user writes by hand for the same tips."""
    norm = keras.layers.Normalization()
    norm.adapt(x)
    inputs = keras.Input(x.shape[1:])
    full = keras.Model(inputs, model(norm(inputs)))
    full.compile(keras.optimizers.SGD(0.1, momentum=0.9), loss_for(n_out), jit_compile=jit)
    cbs = [keras.callbacks.ReduceLROnPlateau(factor=0.5, patience=3),
           keras.callbacks.EarlyStopping(patience=12, restore_best_weights=True),
           *callbacks]
    hist = full.fit(x, y, batch_size=128, epochs=epochs, validation_split=0.2, callbacks=cbs,
                    verbose=0)
    return full, len(hist.history["loss"])


class EpochTimer(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.times = []

    def on_epoch_begin(self, epoch, logs=None):
        self._t = Timer().__enter__()

    def on_epoch_end(self, epoch, logs=None):
        self._t.__exit__()
        self.times.append(self._t.seconds)


def quality(data):
    print("\n## quality (test metric: accuracy, or R^2 for grunfeld)")
    print(f"{'dataset':9} {'pipeline':22} {'metric':>7} {'epochs':>6} {'seconds':>8}")
    for name, ((x, y), (xt, yt), n_out) in data.items():
        with Timer() as t:
            res = fit_with_tips(model_for(name, x.shape[1], n_out), (x, y), seed=0, verbose=0)
        epochs = len(res.history["loss"])
        print(f"{name:9} {'fit_with_tips':22} {score(res.model, xt, yt, n_out):7.4f} {epochs:6d} {t.seconds:8.1f}", flush=True)
        with Timer() as t:
            m = model_for(name, x.shape[1], n_out)
            m.compile(loss=loss_for(n_out))  # Keras defaults: rmsprop, batch 32
            m.fit(x, y, epochs=epochs, verbose=0)
        print(f"{name:9} {'keras defaults':22} {score(m, xt, yt, n_out):7.4f} {epochs:6d} {t.seconds:8.1f}", flush=True)
        with Timer() as t:
            full, ran = hand_written(model_for(name, x.shape[1], n_out), x, y, 60, n_out, False)
        print(f"{name:9} {'hand-written tips':22} {score(full, xt, yt, n_out):7.4f} {ran:6d} {t.seconds:8.1f}", flush=True)


def overhead(data, repeats=3, epochs=8, jit=False):
    print(f"\n## overhead: median epoch time, same model/data, jit_compile={jit}, interleaved runs")
    (x, y), _, n_out = data["mnist"]
    # "same work by hand": result.model (the recipe's layers, its compiled
    # ClippedOptimizer and metrics) fit on the arrays by model.fit, so the
    # ratio to it is the recipe's plumbing (data path, callbacks) alone.
    times = {"fit_with_tips": [], "hand-written": [], "same work by hand": []}
    for _ in range(repeats):
        timer = EpochTimer()
        result = fit_with_tips(model_for("mnist", 784, 10), (x, y), epochs=epochs,
                               stop_ratio=None, jit_compile=jit, seed=0, verbose=0,
                               callbacks=[timer])
        times["fit_with_tips"].extend(timer.times[1:])
        timer = EpochTimer()
        hand_written(model_for("mnist", 784, 10), x, y, epochs, n_out, jit, [timer])
        times["hand-written"].extend(timer.times[1:])
        timer = EpochTimer()
        same = result.model
        same.compile(result.optimizer, same.loss, metrics=["accuracy"], jit_compile=jit)
        same.fit(x, y, batch_size=128, epochs=epochs, validation_split=0.2, verbose=0,
                 callbacks=[timer])
        times["same work by hand"].extend(timer.times[1:])
    med = {k: statistics.median(v) for k, v in times.items()}
    for k, v in med.items():
        print(f"{k:17} median epoch {v * 1000:7.1f} ms (n={len(times[k])})")
    layers = [type(layer).__name__ for layer in result.model.layers[1:-1]]
    print(f"(the recipe's layers before the model: {layers}; optimizer "
          f"{type(result.optimizer).__name__}; logged: {sorted(result.history)})")
    print(f"overhead ratio fit_with_tips / hand-written = {med['fit_with_tips'] / med['hand-written']:.3f}")
    print(f"plumbing ratio fit_with_tips / same work by hand = "
          f"{med['fit_with_tips'] / med['same work by hand']:.3f}")


def execution(data, epochs=3, rounds=2):
    print("\n## execution choice on the conv net (MNIST 8k, cnn preset), interleaved rounds")
    (x, y), _, _ = data["mnist"]
    x = x.reshape(-1, 28, 28, 1)
    times = {"auto": [], "True": [], "False": []}
    chosen = []
    for _ in range(rounds):
        for jit in ("auto", True, False):
            timer = EpochTimer()
            res = fit_with_tips(preset("cnn", (28, 28, 1), 10), (x, y), epochs=epochs,
                                stop_ratio=None, jit_compile=jit, seed=0, verbose=0, callbacks=[timer])
            times[str(jit)].extend(timer.times[1:])
            if jit == "auto":
                chosen.append((res.execution["jit_compile"], res.execution["plain_over_xla"]))
    med = {k: statistics.median(v) for k, v in times.items()}
    for k in times:
        print(f"jit_compile={k:5} median epoch {med[k]:.2f} s (n={len(times[k])})")
    print("auto chose: " + ", ".join(f"jit_compile={c} (probe plain/XLA step ratio {r:.2f})"
                                     for c, r in chosen))
    best = min(med["True"], med["False"])
    print(f"auto / faster of (XLA on, XLA off) = {med['auto'] / best:.3f}")
    print(f"XLA off / XLA on = {med['False'] / med['True']:.3f}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--part", default="all", choices=["all", "quality", "overhead", "execution"])
    parser.add_argument("--jit", action="store_true", help="overhead part: both with XLA")
    args = parser.parse_args()
    print(device_line())
    data = datasets()
    if args.part in ("all", "quality"):
        quality(data)
    if args.part in ("all", "overhead"):
        overhead(data, jit=args.jit)
    if args.part in ("all", "execution"):
        execution(data)


if __name__ == "__main__":
    main()
