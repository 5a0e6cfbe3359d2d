"""How should the learning-rate calibration probe the update ratio? (issue 24)

    python benchmarks/bench_calibration.py [--seeds 0,1,2]

For small real tasks (the models of bench_quality.py), at one fixed rate
(SGD 0.05, momentum 0.9, standardized inputs and targets), it measures the
update/weight ratio a probe reads (`keras_recipes.calibration`'s
measurement) for several designs: steps per probe, the second half of the
steps (momentum built up) or all of them, the global ratio or the median
over layers. Then it trains the first epoch at that rate and reads the
epoch's mean ratio (`UpdateRatioMonitor`). A good probe reads the same
value for every seed (small spread) at small cost; its ratio to the first
epoch's says how the probe's target maps onto the training ratio.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import argparse
import time

import keras
import numpy as np

from bench_quality import TASKS
from common import device_line
from keras_recipes.callbacks import UpdateRatioMonitor
from keras_recipes.optimizers import ClippedOptimizer

RATE = 0.05
DESIGNS = {  # name: (steps, read from step, per-layer median)
    "4 steps, 2nd half": (4, 2, False),
    "8 steps, 2nd half": (8, 4, False),
    "16 steps, 2nd half": (16, 8, False),
    "8 steps, all": (8, 0, False),
    "8 steps, 2nd half, layer median": (8, 4, True),
}


def _standardized(task):
    (x, y), _, kind, n_classes, build = task
    x = np.asarray(x, "float32")
    axes = tuple(range(x.ndim - 1)) if x.ndim > 2 else 0
    x = (x - x.mean(axis=axes)) / (x.std(axis=axes) + 1e-6)
    if kind == "regression":
        y = ((y - y.mean()) / y.std()).astype("float32")
    loss = ("mse" if kind == "regression" else
            keras.losses.BinaryCrossentropy() if build(0).outputs[0].shape[-1] == 1
            else keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return x, y, loss, build


def _compiled(build, seed, loss):
    keras.utils.set_random_seed(seed)
    model = build(seed)
    model.compile(ClippedOptimizer(keras.optimizers.SGD(RATE, momentum=0.9), max_norm=None), loss)
    return model


def _probe(model, batches, steps, start, median):
    """(ratio, seconds of the steps after the first, which traces the step)."""
    clipped = model.optimizer
    for i in range(steps):
        if i == 1:
            began = time.perf_counter()
        if i == start:
            clipped.reset_stats()
        model.train_on_batch(*batches[i % len(batches)])
    stats = clipped.read_stats(reset=True)
    ratio = (float(np.median(list(stats["layer_update_ratio"].values()))) if median
             else stats["update_ratio"])
    return ratio, time.perf_counter() - began


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--tasks", default="digits,breast_cancer,wine,california,grunfeld")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    print(device_line())
    print(f"rate {RATE}, SGD momentum 0.9, batch 128; probe ratio / first-epoch ratio, "
          "spread = max/min of the probe over seeds, ms per probe step")
    print(f"{'task':14} {'design':34} {'probe (mean)':>12} {'spread':>7} "
          f"{'probe/epoch1':>12} {'ms/step':>8}")
    for name in args.tasks.split(","):
        x, y, loss, build = _standardized(TASKS[name]())
        batches = [(x[i:i + 128], y[i:i + 128]) for i in range(0, min(len(x), 16 * 128), 128)]
        first_epoch = []
        for seed in seeds:
            model = _compiled(build, seed, loss)
            history = model.fit(x, y, batch_size=128, epochs=1, verbose=0, shuffle=False,
                                callbacks=[UpdateRatioMonitor(warn=False)])
            first_epoch.append(history.history["update_ratio"][0])
        for design, (steps, start, median) in DESIGNS.items():
            reads, seconds = [], 0.0
            for seed in seeds:
                model = _compiled(build, seed, loss)
                ratio, took = _probe(model, batches, steps, start, median)
                reads.append(ratio)
                seconds += took
            mean = float(np.mean(reads))
            print(f"{name:14} {design:34} {mean:12.3g} {max(reads) / min(reads):7.2f} "
                  f"{mean / float(np.mean(first_epoch)):12.2f} "
                  f"{1e3 * seconds / ((steps - 1) * len(seeds)):8.1f}", flush=True)


if __name__ == "__main__":
    main()
