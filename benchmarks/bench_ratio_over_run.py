"""Issue 36, item 5: how the first steps' ratio the calibration aims at
(2e-2 over its 8 probe steps) relates to tip 5's 1e-3 over a run. The
per-epoch mean update/weight ratio (`history["update_ratio"]`) of runs at
their calibrated rates: the same tasks as bench_band.py (digits, wine,
breast cancer MLPs; 30 epochs; seeds 0-2), printed by epoch as the median
and range over the 9 runs.

    python benchmarks/bench_ratio_over_run.py
"""

import os
import sys
import warnings

import keras
import numpy as np

sys.path.insert(0, os.path.dirname(__file__))

from bench_band import tasks  # noqa: E402
from common import device_line  # noqa: E402
from keras_recipes import fit_with_tips  # noqa: E402

EPOCHS = 30


def main():
    print(device_line())
    runs = []
    for name, (x, y), _, classes in tasks():
        for seed in range(3):
            keras.utils.set_random_seed(seed)
            model = keras.Sequential([keras.Input((x.shape[1],)),
                                      keras.layers.Dense(32, activation="relu"),
                                      keras.layers.Dense(classes)])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = fit_with_tips(model, (x, y), epochs=EPOCHS, seed=seed, verbose=0)
            ratios = result.history["update_ratio"]
            runs.append(ratios + [np.nan] * (EPOCHS - len(ratios)))
            print(f"{name:14} seed {seed}: rate {result.plan.decisions.calibration.rate:.3g}, "
                  f"{len(ratios)} epochs", flush=True)
    table = np.array(runs, dtype="float64")
    print(f"{'epoch':>5} {'median':>9} {'min':>9} {'max':>9} {'runs':>4}")
    for epoch in (1, 2, 3, 5, 10, 15, 20, 25, 30):
        col = table[:, epoch - 1]
        col = col[np.isfinite(col)]
        if len(col):
            print(f"{epoch:>5} {np.median(col):9.2e} {col.min():9.2e} {col.max():9.2e} "
                  f"{len(col):>4}")


if __name__ == "__main__":
    main()
