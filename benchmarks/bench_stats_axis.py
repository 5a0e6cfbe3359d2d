"""Issue 25, item 3: the statistics axis from evidence. Pixel columns share
one range, so the recipe now standardizes them with one mean/std
(`data.data_stats.homogeneous`); before, every pixel column had its own. This
compares the two on the same model, data and seeds, choosing nothing on
test: fit_with_tips with the rule as it is ("one scalar") and with the
rule switched off (`HOMOGENEOUS_SHARE = 1`: "per column", the old
behaviour). Validation accuracy is the recipe's own best val_accuracy;
test accuracy is printed, not used.

Tasks: UCI digits (embedded; 64 pixels 0..16, the given train/test split),
MNIST flattened (../shared/data: first 8k train, last 2k test; 784 pixels
0..255), an MLP each.

    python benchmarks/bench_stats_axis.py [--seeds 3] [--mnist-epochs 20]
"""

import argparse
import os
import sys

import keras
import numpy as np

sys.path.insert(0, os.path.dirname(__file__))

from common import device_line  # noqa: E402
from common import load_mnist_split  # noqa: E402
from keras_recipes import fit_with_tips  # noqa: E402
from keras_recipes.data import stats as data_stats  # noqa: E402
from keras_recipes.datasets import load_digits  # noqa: E402


RULE = data_stats.HOMOGENEOUS_SHARE  # the recipe's rule, read once before any arm changes it


def mlp(width, features):
    return keras.Sequential([keras.Input((features,)), keras.layers.Dense(width, activation="relu"),
                             keras.layers.Dense(10)])


def run(task, seed, share, epochs):
    data_stats.HOMOGENEOUS_SHARE = share
    if task == "digits":
        (x, y), (xt, yt) = load_digits("train"), load_digits("test")
        width = 64
    else:
        (x, y), (xt, yt) = load_mnist_split()
        x, xt = x.reshape(len(x), -1), xt.reshape(len(xt), -1)
        width = 256
    keras.utils.set_random_seed(seed)
    result = fit_with_tips(mlp(width, x.shape[1]), (x.astype("float32"), y), epochs=epochs,
                           seed=seed, verbose=0)
    row = next(t for t in result.tips if t.name == "inputs")
    val = max(result.history["val_accuracy"]) if "val_accuracy" in result.history else float("nan")
    pred = result.model.predict(xt.astype("float32"), verbose=0).argmax(-1)
    return val, float((pred == yt).mean()), row.setting, result.status


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--mnist-epochs", type=int, default=20)
    args = parser.parse_args()
    print(device_line())
    print(f"{'task':7} {'axis':10} {'seed':>4} {'val_acc':>8} {'test_acc':>8}  status    inputs row")
    for task, epochs in (("digits", "auto"), ("mnist", args.mnist_epochs)):
        means = {}
        for label, share in (("one scalar", RULE), ("per column", 1.0)):
            vals, tests = [], []
            for seed in range(args.seeds):
                val, test, setting, status = run(task, seed, share, epochs)
                vals.append(val)
                tests.append(test)
                print(f"{task:7} {label:10} {seed:>4} {val:8.4f} {test:8.4f}  {status:9} {setting}",
                      flush=True)
            means[label] = (np.mean(vals), np.mean(tests))
        for label, (val, test) in means.items():
            print(f"{task:7} {label:10} mean {val:8.4f} {test:8.4f}")


if __name__ == "__main__":
    main()
