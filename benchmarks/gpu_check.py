"""The GPU/XLA checks, as one script for a machine with a GPU and JAX
(TensorFlow's wheel is too large to carry there), run once per session:

    KERAS_BACKEND=jax KERAS_RECIPES_DATA=<copy of shared/data> \\
        python benchmarks/gpu_check.py --budget_s 420

Parts, in order (each prints as it finishes):
  A. conv net (cnn preset, MNIST 8k, batch 128): train step time with XLA
     (jit_compile=True: the whole step is one XLA program) against without
     (run_eagerly=True: JAX dispatches op by op; on the JAX backend
     jit_compile=False alone still compiles the step);
  B. ClippedOptimizer + update-ratio tracking against SGD(global_clipnorm)
     on the MNIST MLP, XLA on;
  C. augmentation throughput: NoiseMix clips/s (1 s at 8 kHz, batch 128) and
     RandomShiftRotate vs Keras RandomTranslation+RandomRotation in a model;
  D. pixel-by-pixel MNIST LSTM (784 steps): forget-gate bias x clipping,
     within what is left of the time budget.
"""

import argparse
import statistics
import sys
import time

import keras
import numpy as np

from common import DATA, device_line, load_mnist_split

START = time.perf_counter()


def timed_epochs(model, x, y, epochs, steps):
    times = []
    cb = keras.callbacks.LambdaCallback(
        on_epoch_begin=lambda e, l: times.append(-time.perf_counter()),
        on_epoch_end=lambda e, l: times.__setitem__(-1, times[-1] + time.perf_counter()))
    model.fit(x[: steps * 128], y[: steps * 128], batch_size=128, epochs=epochs, verbose=0,
              callbacks=[cb])
    return statistics.median(times[1:]) / steps


def part_a():
    from keras_recipes.models import preset

    (x, y), _ = load_mnist_split()
    x = (x[..., None].astype("float32") / 255.0 - 0.13) / 0.31
    print("\n## A. cnn preset step time, batch 128")
    res = {}
    for jit, steps in ((True, 60), (False, 12)):
        keras.utils.set_random_seed(0)
        model = preset("cnn", (28, 28, 1), 10)
        model.compile(keras.optimizers.SGD(0.1, momentum=0.9),
                      keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile=jit,
                      run_eagerly=not jit)
        res[jit] = timed_epochs(model, x, y, 4, steps)
        print(f"jit_compile={jit!s:5} {res[jit] * 1e3:8.2f} ms/step", flush=True)
    print(f"no-XLA / XLA step time = {res[False] / res[True]:.1f}x")


def part_b():
    from bench_clip_overhead import build
    from keras_recipes.callbacks import UpdateRatioMonitor

    (x, y), _ = load_mnist_split()
    x = (x.reshape(-1, 784).astype("float32") / 255.0 - 0.13) / 0.31
    print("\n## B. ClippedOptimizer overhead, MNIST MLP, XLA, interleaved")
    models = {n: build(True, n) for n in ("plain", "clipped", "clip_only")}
    cbs = {"plain": [], "clipped": [UpdateRatioMonitor(warn=False)], "clip_only": []}
    times = {n: [] for n in models}
    for n, m in models.items():
        m.fit(x, y, batch_size=128, epochs=1, verbose=0, callbacks=cbs[n])
    for _ in range(3):
        for n, m in models.items():
            t = time.perf_counter()
            m.fit(x, y, batch_size=128, epochs=2, verbose=0, callbacks=cbs[n])
            times[n].append((time.perf_counter() - t) / 2)
    med = {n: statistics.median(v) for n, v in times.items()}
    for n in models:
        print(f"{n:10} {med[n] * 1e3:8.2f} ms/epoch")
    print(f"clipped/plain = {med['clipped'] / med['plain']:.3f}  clip_only/plain = "
          f"{med['clip_only'] / med['plain']:.3f}", flush=True)


def rate(fn, batch, seconds=3.0):
    fn(batch)
    n, t = 0, time.perf_counter()
    while time.perf_counter() - t < seconds:
        fn(batch)
        n += len(batch)
    return n / (time.perf_counter() - t)


def part_c():
    import jax

    from keras_recipes.audio import NoiseBank
    from keras_recipes.layers import NoiseMix, RandomShiftRotate

    print("\n## C. augmentation throughput")
    clean = np.random.default_rng(0).normal(size=(128, 8000)).astype("float32") * 0.1
    bank = NoiseBank.from_files(DATA / "noise", sample_rate=8000)
    for label, layer in (("NoiseMix white", NoiseMix(colors=("white",), seed=0)),
                         ("NoiseMix bank", NoiseMix(noise=bank, colors=(), seed=0)),
                         ("NoiseMix bank+colors", NoiseMix(noise=bank, seed=0))):
        layer.build(clean.shape)
        state = [v.value for v in layer.non_trainable_variables]

        @jax.jit
        def mix(state, b):
            out, new_state = layer.stateless_call([], state, b, training=True)
            return out, new_state

        def run(b, holder=[state]):
            out, holder[0] = mix(holder[0], b)
            out.block_until_ready()

        print(f"{label:22} {rate(run, clean):12.0f} clips/s", flush=True)
    (x, _), _ = load_mnist_split()
    x = x[..., None].astype("float32") / 255.0
    y = np.zeros(len(x), "int32")
    for label, layers in (("keras Translation+Rotation",
                           [keras.layers.RandomTranslation(0.1, 0.1, seed=0),
                            keras.layers.RandomRotation(10 / 360, seed=0)]),
                          ("RandomShiftRotate", [RandomShiftRotate(seed=0)])):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((28, 28, 1)), *layers, keras.layers.Flatten(),
                                  keras.layers.Dense(10)])
        model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile=True)
        model.fit(x, y, batch_size=128, epochs=1, verbose=0)
        t = time.perf_counter()
        model.fit(x, y, batch_size=128, epochs=3, verbose=0)
        print(f"{label:26} in-model fit {3 * len(x) / (time.perf_counter() - t):10.0f} img/s", flush=True)


def part_d(budget):
    import bench_lstm_forget_bias

    left = budget - (time.perf_counter() - START)
    print(f"\n## D. pixel-by-pixel LSTM, budget left {left:.0f} s")
    if left < 30:
        print("skipped: no time left")
        return
    bench_lstm_forget_bias.main(["--pixels_per_step", "1", "--epochs", "3",
                                 "--configs", "3:5,1:5,0:5,3:none,1:none,0:none",
                                 "--budget_s", str(max(left - 60, 0))])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--budget_s", type=float, default=420)
    parser.add_argument("--parts", default="abcd")
    args = parser.parse_args()
    print(device_line())
    for part in args.parts:
        try:
            {"a": part_a, "b": part_b, "c": part_c, "d": lambda: part_d(args.budget_s)}[part]()
        except Exception as error:  # report and go on: one run per session
            print(f"part {part} failed: {type(error).__name__}: {error}", file=sys.stderr, flush=True)
    print(f"\ntotal {time.perf_counter() - START:.0f} s")


if __name__ == "__main__":
    main()
