"""Overhead of ClippedOptimizer (with update-ratio tracking) against Keras'
own SGD(global_clipnorm=...), per epoch, with and without XLA, in one run.

    python benchmarks/bench_clip_overhead.py [--epochs 6] [--repeats 3]

Prints one line per configuration and the ratio clipped/plain per XLA mode.
Runs are interleaved (A B A B ...) so that machine noise hits both alike;
the median epoch time of each is compared. Target: ratio <= 1.05.
"""

import argparse
import statistics

import keras

from common import Timer, device_line, load_mnist_split
from keras_recipes.callbacks import UpdateRatioMonitor
from keras_recipes.optimizers import ClippedOptimizer


def build(jit, variant, seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input((784,)),
        keras.layers.Dense(256, activation="relu"),
        keras.layers.Dense(256, activation="relu"),
        keras.layers.Dense(10),
    ])
    if variant != "plain":
        opt = ClippedOptimizer(keras.optimizers.SGD(0.1), max_norm=5.0,
                               track_update_ratio=variant == "clipped")
    else:
        opt = keras.optimizers.SGD(0.1, global_clipnorm=5.0)
    model.compile(opt, keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  jit_compile=jit)
    return model


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--jit", default="both", choices=["both", "on", "off"])
    args = parser.parse_args()
    (x, y), _ = load_mnist_split()
    x = (x.reshape(-1, 784).astype("float32") / 255.0 - 0.13) / 0.31
    print(device_line())
    modes = {"both": [False, True], "on": [True], "off": [False]}[args.jit]
    for jit in modes:
        # clipped: ClippedOptimizer + ratio tracking + UpdateRatioMonitor (what
        # fit_with_tips uses); clip_only: ClippedOptimizer(track_update_ratio=False).
        names = ("plain", "clipped", "clip_only")
        models = {name: build(jit, name) for name in names}
        callbacks = {"plain": [], "clipped": [UpdateRatioMonitor(warn=False)], "clip_only": []}
        for name, model in models.items():  # compile / warm up
            model.fit(x, y, batch_size=128, epochs=1, verbose=0, callbacks=callbacks[name])
        times = {name: [] for name in models}
        for _ in range(args.repeats):
            for name, model in models.items():
                timing = keras.callbacks.LambdaCallback()
                epoch_times = []
                timer = Timer()
                timing.on_epoch_begin = lambda e, l: timer.__enter__()
                timing.on_epoch_end = lambda e, l: (timer.__exit__(), epoch_times.append(timer.seconds))
                model.fit(x, y, batch_size=128, epochs=args.epochs, verbose=0,
                          callbacks=[timing] + callbacks[name])
                times[name].extend(epoch_times)
        med = {name: statistics.median(t) for name, t in times.items()}
        for name in models:
            print(f"jit_compile={jit!s:5} {name:8} median epoch {med[name] * 1000:8.1f} ms "
                  f"(n={len(times[name])}, 63 steps of 128)")
        print(f"jit_compile={jit!s:5} ratio clipped/plain = {med['clipped'] / med['plain']:.3f}")
        print(f"jit_compile={jit!s:5} ratio clip_only/plain = {med['clip_only'] / med['plain']:.3f}")


if __name__ == "__main__":
    main()
