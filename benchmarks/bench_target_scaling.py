"""Issue 25, item 5: regression targets in front of a non-negative output.

A relu (or softplus) output cannot go below 0, so centered targets ask for
values it cannot give. Three ways to feed the same targets, the same model,
the same Adam, side by side on real data (scikit-learn's bundled diabetes,
../shared/data's California housing), several seeds; the validation R^2
decides (the test split is printed, never used to choose):

    standardized   (y - mean) / std, inverted after
    scaled         y / std, inverted after (not centered)
    raw            y as it is

    python benchmarks/bench_target_scaling.py [--seeds 0,1,2]
"""

import argparse

import keras
import numpy as np
import pandas as pd

from common import DATA, device_line


def tasks():
    from sklearn.datasets import load_diabetes

    bunch = load_diabetes()
    yield "diabetes", bunch.data.astype("float32"), bunch.target.astype("float32"), 200
    path = DATA / "tabular" / "california_housing.csv"
    if path.exists():
        frame = pd.read_csv(path).dropna().drop(columns="ocean_proximity")
        y = frame.pop("median_house_value").to_numpy("float32")
        yield "california", frame.to_numpy("float32")[:6000], y[:6000], 40


def r2(pred, y):
    return 1 - float(((pred.reshape(-1) - y) ** 2).mean() / y.var())


def run(x, y, mode, activation, seed, epochs):
    n = len(x)
    idx = np.random.default_rng(seed).permutation(n)
    tr, va, te = idx[:int(0.6 * n)], idx[int(0.6 * n):int(0.8 * n)], idx[int(0.8 * n):]
    mu, sd = x[tr].mean(0), x[tr].std(0) + 1e-6
    xs = (x - mu) / sd
    mean, std = float(y[tr].mean()), float(y[tr].std())
    shift, scale = {"standardized": (mean, std), "scaled": (0.0, std), "raw": (0.0, 1.0)}[mode]
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((x.shape[1],)), keras.layers.Dense(64, activation="relu"),
                              keras.layers.Dense(1, activation=activation)])
    model.compile(keras.optimizers.Adam(1e-3), "mse")
    model.fit(xs[tr], (y[tr] - shift) / scale, validation_data=(xs[va], (y[va] - shift) / scale),
              epochs=epochs, batch_size=32, verbose=0,
              callbacks=[keras.callbacks.EarlyStopping(patience=10, restore_best_weights=True)])
    pred = lambda rows: model.predict(xs[rows], verbose=0) * scale + shift
    return r2(pred(va), y[va]), r2(pred(te), y[te])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", default="0,1,2")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    print(device_line())
    print(f"{'task':11} {'output':8} {'targets':13} {'val_r2 (mean over seeds)':>24} {'test_r2':>8}  per seed (val)")
    for name, x, y, epochs in tasks():
        for activation in ("relu", "softplus"):
            for mode in ("standardized", "scaled", "raw"):
                scores = [run(x, y, mode, activation, s, epochs) for s in seeds]
                val = [v for v, _ in scores]
                test = [t for _, t in scores]
                print(f"{name:11} {activation:8} {mode:13} {np.mean(val):24.4f} {np.mean(test):8.4f}  "
                      + " ".join(f"{v:.4f}" for v in val), flush=True)


if __name__ == "__main__":
    main()
