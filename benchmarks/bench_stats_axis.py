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
0..255), an MLP each. With --tasks, also the sequence tasks of
bench_quality.py whose features the rule pools (issue 36): spoken_gru
(FSDD log-mel, 63 frames x 40 bands in dB, GRU(32)), digit_rows (8 rows of 8
pixels, LSTM(32)), adding (value and marker, LSTM(32)). There "per column" is
one mean/std per feature (a mel band, a pixel column) over batch and time,
Keras' Normalization() default for such data. Best val_loss is printed too:
it is what the recipe itself restores and stops on.

    python benchmarks/bench_stats_axis.py [--seeds 3] [--first-seed 0] [--mnist-epochs 20]
        [--tasks digits,mnist,spoken_gru,digit_rows,adding]
"""

import argparse
import os
import sys

import keras
import numpy as np

sys.path.insert(0, os.path.dirname(__file__))

from common import device_line  # noqa: E402
from common import load_mnist_split  # noqa: E402
import bench_quality  # noqa: E402
from keras_recipes import fit_with_tips  # noqa: E402
from keras_recipes.data import stats as data_stats  # noqa: E402
from keras_recipes.datasets import load_digits  # noqa: E402


RULE = data_stats.HOMOGENEOUS_SHARE  # the recipe's rule, read once before any arm changes it


def mlp(width, features):
    return keras.Sequential([keras.Input((features,)), keras.layers.Dense(width, activation="relu"),
                             keras.layers.Dense(10)])


def run(task, seed, share, epochs):
    data_stats.HOMOGENEOUS_SHARE = share
    if task in bench_quality.TASKS:
        (x, y), (xt, yt), kind, _, build = bench_quality.TASKS[task]()
        result = fit_with_tips(build(seed), (x, y), epochs=epochs, seed=seed, verbose=0)
        row = next(t for t in result.tips if t.name == "inputs")
        val = max(result.history.get("val_accuracy", [float("nan")]))
        return (val, bench_quality.score(result.model, xt, yt, kind), row.setting, result.status,
                min(result.history["val_loss"]))
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
    return (val, float((pred == yt).mean()), row.setting, result.status,
            min(result.history["val_loss"]))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--mnist-epochs", type=int, default=20)
    parser.add_argument("--tasks", default="digits,mnist")
    args = parser.parse_args()
    print(device_line())
    print(f"{'task':10} {'axis':10} {'seed':>4} {'val_acc':>8} {'val_loss':>9} {'test':>8}  status"
          "    inputs row")
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    for task in args.tasks.split(","):
        epochs = args.mnist_epochs if task == "mnist" else "auto"
        means, arms = {}, {}
        for label, share in (("one scalar", RULE), ("per column", 1.0)):
            runs = arms[label] = []
            for seed in seeds:
                val, test, setting, status, val_loss = run(task, seed, share, epochs)
                runs.append((val, val_loss, test))
                print(f"{task:10} {label:10} {seed:>4} {val:8.4f} {val_loss:9.5f} {test:8.4f}  "
                      f"{status:9} {setting}", flush=True)
            means[label] = np.mean(runs, axis=0)
        for label, (val, val_loss, test) in means.items():
            print(f"{task:10} {label:10} mean {val:8.4f} {val_loss:9.5f} {test:8.4f}")
        lower = sum(p[1] < o[1] for o, p in zip(arms["one scalar"], arms["per column"]))
        print(f"{task:10} per column has the lower val_loss on {lower} of {len(seeds)} seeds")


if __name__ == "__main__":
    main()
