"""The cost of deterministic kernels (issue 16), and whether they are needed.

The issue's model: a 20-512-512-2 MLP on 40,000 examples, SGD recipe,
batch 128, XLA off, on this CPU. Interleaved runs of the same seeded
`fit_with_tips` call with `deterministic=True` and `False`: median epoch time
(first epoch dropped), and whether two runs of each repeat bit for bit.

    python benchmarks/bench_determinism.py [--epochs 4] [--rounds 2]
"""

import argparse
import statistics
import time

import keras
import numpy as np

from keras_recipes import fit_with_tips


class EpochTimer(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.times = []

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self.start)


def run(x, y, deterministic, epochs):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((20,)), keras.layers.Dense(512, activation="relu"),
                              keras.layers.Dense(512, activation="relu"), keras.layers.Dense(2)])
    timer = EpochTimer()
    result = fit_with_tips(model, (x, y), epochs=epochs, seed=0, verbose=0, stop_ratio=None,
                           jit_compile=False, deterministic=deterministic, callbacks=[timer])
    return timer.times[1:], result.history["loss"], model.get_weights()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40_000, 20)).astype("float32")
    y = ((x[:, :5] ** 2).sum(1) > 5).astype("int32")
    times = {True: [], False: []}
    runs = {True: [], False: []}
    for _ in range(args.rounds):
        for deterministic in (True, False):
            epoch_times, losses, weights = run(x, y, deterministic, args.epochs)
            times[deterministic] += epoch_times
            runs[deterministic].append((losses, weights))
    for deterministic in (True, False):
        (la, wa), (lb, wb) = runs[deterministic][:2]
        same = la == lb and all(np.array_equal(a, b) for a, b in zip(wa, wb))
        print(f"deterministic={deterministic!s:5}  median epoch {statistics.median(times[deterministic]) * 1e3:8.1f} ms"
              f"  (n={len(times[deterministic])})  two runs bitwise equal: {same}"
              f"  final losses {la[-1]:.6g} / {lb[-1]:.6g}")
    ratio = statistics.median(times[True]) / statistics.median(times[False])
    print(f"cost of determinism: deterministic / not = {ratio:.3f}")


if __name__ == "__main__":
    main()
