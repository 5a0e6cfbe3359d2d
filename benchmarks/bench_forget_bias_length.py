"""Issue 36, item 4: tip 9 as a decision. From which sequence length does a
forget-gate bias of 3 (ForgetGateBias) beat Keras' default of 1 under
fit_with_tips' defaults, and does it hurt on short sequences?

The embedded UCI digits read as sequences of 8, 16, 32 and 64 steps (8, 4, 2,
1 pixels per step: the longer, the longer the dependency from the first
pixels to the label), an LSTM(32), fit_with_tips' defaults, seeds 0-2. The
choice is made on the best validation accuracy (fit_with_tips' own split);
the test accuracy is printed, never used to choose.

    python benchmarks/bench_forget_bias_length.py [--seeds 0,1,2] [--epochs 40]
"""

import argparse
import time

import keras
import numpy as np

from common import device_line
from keras_recipes import fit_with_tips
from keras_recipes.datasets import load_digits
from keras_recipes.initializers import ForgetGateBias


def lstm(steps, bias):
    cell = (dict() if bias == 1.0 else
            dict(unit_forget_bias=False, bias_initializer=ForgetGateBias(bias)))
    return keras.Sequential([keras.Input((steps, 64 // steps)), keras.layers.LSTM(32, **cell),
                             keras.layers.Dense(10)])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--steps", default="8,16,32,64")
    args = parser.parse_args()
    x, y = load_digits("train")
    xt, yt = load_digits("test")
    seeds = [int(s) for s in args.seeds.split(",")]
    print(device_line())
    print(f"{'steps':>5} {'bias':>4} {'seed':>4} {'best_val_acc':>12} {'test_acc':>8} {'status':>9} {'seconds':>7}")
    table = {}
    for steps in [int(s) for s in args.steps.split(",")]:
        xs, xts = x.reshape(-1, steps, 64 // steps), xt.reshape(-1, steps, 64 // steps)
        for bias in (1.0, 3.0):
            for seed in seeds:
                keras.utils.set_random_seed(seed)
                start = time.perf_counter()
                r = fit_with_tips(lstm(steps, bias), (xs, y), epochs=args.epochs, seed=seed,
                                  verbose=0)
                val = max(r.history["val_accuracy"])
                test = float((r.model.predict(xts, verbose=0).argmax(-1) == yt).mean())
                table.setdefault((steps, bias), []).append((val, test))
                print(f"{steps:5d} {bias:4.0f} {seed:4d} {val:12.4f} {test:8.4f} {r.status:>9} "
                      f"{time.perf_counter() - start:7.1f}", flush=True)
    print("\nmean over seeds: steps, bias 1 val/test, bias 3 val/test, val gain of 3 (points)")
    for steps in sorted({s for s, _ in table}):
        one, three = np.mean(table[(steps, 1.0)], 0), np.mean(table[(steps, 3.0)], 0)
        print(f"{steps:5d}  {one[0]:.4f}/{one[1]:.4f}  {three[0]:.4f}/{three[1]:.4f}  "
              f"{100 * (three[0] - one[0]):+.2f}")


if __name__ == "__main__":
    main()
