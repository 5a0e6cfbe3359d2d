"""Issue 36, item 5: one band. How many UpdateRatioWarnings a run at its
calibrated rate gets during training, with the monitor's old band ([1e-4,
1e-2], advice aimed at 1e-3) and with the recipe's one band ([1e-4, 3e-2],
where the guard acts; advice aimed at the calibration's 2e-2). Real data:
the embedded UCI digits, scikit-learn's wine and breast cancer tables; an
MLP each; fit_with_tips defaults, 30 epochs, seeds 0-2. The warning does
not change training: the accuracy columns show the same run.

    python benchmarks/bench_band.py
"""

import os
import sys
import warnings

import keras
import numpy as np

sys.path.insert(0, os.path.dirname(__file__))

from common import device_line  # noqa: E402
from keras_recipes import train  # noqa: E402
from keras_recipes import fit_with_tips  # noqa: E402
from keras_recipes.callbacks import UpdateRatioMonitor  # noqa: E402
from keras_recipes.callbacks import UpdateRatioWarning  # noqa: E402
from keras_recipes.datasets import load_digits  # noqa: E402

ONE_BAND = train.UpdateRatioMonitor


def tasks():
    from sklearn.datasets import load_breast_cancer
    from sklearn.datasets import load_wine

    yield "digits", load_digits("train"), load_digits("test"), 10
    for name, loader in (("wine", load_wine), ("breast_cancer", load_breast_cancer)):
        x, y = loader(return_X_y=True)
        cut = int(0.8 * len(x))
        order = np.random.default_rng(0).permutation(len(x))
        x, y = x[order].astype("float32"), y[order]
        yield name, (x[:cut], y[:cut]), (x[cut:], y[cut:]), int(y.max()) + 1


def main():
    print(device_line())
    print(f"{'task':14} {'band':16} {'seed':>4} {'warnings':>8} {'test_acc':>8}  status")
    for name, (x, y), (xt, yt), classes in tasks():
        for band, monitor in (("old [1e-4,1e-2]", lambda **k: UpdateRatioMonitor()),
                              ("one [1e-4,3e-2]", ONE_BAND)):
            train.UpdateRatioMonitor = monitor
            for seed in range(3):
                keras.utils.set_random_seed(seed)
                model = keras.Sequential([keras.Input((x.shape[1],)),
                                          keras.layers.Dense(32, activation="relu"),
                                          keras.layers.Dense(classes)])
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always", UpdateRatioWarning)
                    result = fit_with_tips(model, (x, y), epochs=30, seed=seed, verbose=0)
                count = sum(issubclass(w.category, UpdateRatioWarning)
                            and "Epoch" in str(w.message) for w in caught)
                acc = float((np.asarray(result.model.predict(xt, verbose=0)).argmax(-1) == yt).mean())
                print(f"{name:14} {band:16} {seed:>4} {count:>8} {acc:8.4f}  {result.status}",
                      flush=True)
    train.UpdateRatioMonitor = ONE_BAND


if __name__ == "__main__":
    main()
