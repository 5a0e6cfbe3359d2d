"""Cost of the diagnostics.

    python benchmarks/bench_diagnostics.py

1. The audit that fit_with_tips runs first, as a fraction of the whole
   fit_with_tips wall time (default settings), on digits and on the MNIST test
   set (fixed 8k/2k split, mlp preset). Target <= 5%.
2. check_gradients with 200 parameters on a ~100k-parameter MLP
   (784-128-10, 101,770 parameters), 32 examples, with a loss.
"""

import keras

from common import Timer, device_line, load_mnist_split
from keras_recipes import check_gradients, fit_with_tips
from keras_recipes.datasets import load_digits
from keras_recipes.models import preset


def main():
    print(device_line())
    (x, y), _ = load_mnist_split()
    x = x.reshape(len(x), -1).astype("float32")
    print("\n## audit cost inside fit_with_tips (defaults, seed 0)")
    print(f"{'data':8} {'audit s':>8} {'fit s':>8} {'fraction':>9}")
    for name, data, n_in in (("digits", load_digits("train"), 64), ("mnist", (x, y), 784)):
        result = fit_with_tips(preset("mlp", (n_in,), 10), data, seed=0, verbose=0)
        print(f"{name:8} {result.audit.seconds:8.2f} {result.seconds:8.2f} "
              f"{result.audit.seconds / result.seconds:9.3f}", flush=True)

    print("\n## check_gradients, 200 parameters")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(128, activation="relu"),
                              keras.layers.Dense(10)])
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    with Timer() as t:
        report = check_gradients(model, x[:32] / 255.0, y[:32], loss=loss, num_params=200, seed=0)
    print(f"{model.count_params()} parameters, 32 examples: {t.seconds:.1f} s, ok={report.ok}, "
          f"max relative error {report.max_relative_error:.2e}, "
          f"kinks skipped {sum(r.kinks_skipped for r in report.rows)}")


if __name__ == "__main__":
    main()
