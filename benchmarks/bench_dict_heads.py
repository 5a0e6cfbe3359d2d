"""Issue 37, item 1: dict outputs and inputs joined by name. scikit-learn's
bundled diabetes table as a two-input (vitals, age_sex), two-output
(progression, bmi) functional model whose names do not sort in the model's
order, trained with dict data by fit_with_tips; held-out R^2 of each of
result.model's heads, read by name. A heads swap (each output rescaled in
the other's units) shows as a negative R^2.

    python benchmarks/bench_dict_heads.py
"""

import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))

from common import device_line  # noqa: E402
from keras_recipes import fit_with_tips  # noqa: E402
from test_result_model import _diabetes_two_heads  # noqa: E402


def r2(pred, true):
    return 1 - float(((pred - true) ** 2).mean() / true.var())


def main():
    print(device_line())
    model, x, y = _diabetes_two_heads()
    cut = 340
    result = fit_with_tips(model, ({k: v[:cut] for k, v in x.items()},
                                   {k: v[:cut] for k, v in y.items()}), epochs=60, seed=0, verbose=0)
    pred = result.model.predict({k: v[cut:] for k, v in x.items()}, verbose=0)
    if not isinstance(pred, dict):
        pred = dict(zip(result.model.output_names, pred))
    print("result.model outputs:", sorted(pred), "inputs:", [i.name for i in result.model.inputs])
    for name in ("progression", "bmi"):
        print(f"{name:12} held-out R^2 {r2(np.asarray(pred[name]), y[name][cut:]):.4f}")


if __name__ == "__main__":
    main()
