"""Reliability costs.

    python benchmarks/bench_reliability.py

1. Checkpoint overhead: median epoch time of fit_with_tips on the MNIST MLP
   (MNIST test set, fixed 8k split) with and without `checkpoint_dir`,
   interleaved rounds. Target <= 5%.
2. Peak RSS with a streamed tf.data source (a generator that makes examples
   on the fly, so nothing exists in memory unless the pipeline keeps it) of
   N and 2N examples, each in a fresh process. Target: <= 10% growth.
"""

import os
import statistics
import subprocess
import sys
import tempfile

from common import device_line, load_mnist_split

CHILD = r'''
import os, resource, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np, tensorflow as tf, keras
from keras_recipes import fit_with_tips
n = int(sys.argv[1])
def gen():
    rng = np.random.default_rng(0)
    for i in range(n):
        x = rng.normal(size=784).astype("float32")
        yield x, np.int64(int(x[:10].sum() > 0))
ds = tf.data.Dataset.from_generator(gen, output_signature=(
    tf.TensorSpec((784,), tf.float32), tf.TensorSpec((), tf.int64)))
model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(64, activation="relu"),
                          keras.layers.Dense(2)])
fit_with_tips(model, ds, epochs=1, seed=0, verbose=0, jit_compile=False)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0)
'''


class BeginToBegin:
    """Epoch times from one epoch's start to the next one's (or the end of
    training): unlike on_epoch_end timing, this includes the checkpoint that
    fit_with_tips writes after every other callback."""

    def __new__(cls):
        import time

        import keras

        marks = []
        callback = keras.callbacks.LambdaCallback(
            on_epoch_begin=lambda e, l: marks.append(time.perf_counter()),
            on_train_end=lambda l: marks.append(time.perf_counter()))
        callback.marks = marks
        return callback


def checkpoint_overhead(rounds=3, epochs=8):
    import keras

    from keras_recipes import fit_with_tips
    from keras_recipes.models import preset

    (x, y), _ = load_mnist_split()
    x = x.reshape(len(x), -1).astype("float32")
    times = {"no checkpoint": [], "checkpoint_dir": []}
    for _ in range(rounds):
        for label in times:
            timer = BeginToBegin()
            with tempfile.TemporaryDirectory() as folder:
                kwargs = {"checkpoint_dir": folder} if label == "checkpoint_dir" else {}
                keras.utils.set_random_seed(0)
                fit_with_tips(preset("mlp", (784,), 10), (x, y), epochs=epochs, stop_ratio=None,
                              jit_compile=False, seed=0, verbose=0, callbacks=[timer], **kwargs)
            times[label].extend(list(statistics.fmean([b - a]) for a, b in
                                     zip(timer.marks[1:-1], timer.marks[2:])))
    med = {k: statistics.median(v) for k, v in times.items()}
    print("\n## checkpoint overhead (MNIST MLP, 63 steps per epoch)")
    for k, v in med.items():
        print(f"{k:14} median epoch {v * 1000:7.1f} ms (n={len(times[k])})")
    print(f"checkpoint overhead = {med['checkpoint_dir'] / med['no checkpoint'] - 1:+.3f} of an epoch")


def peak_rss(n=40_000):
    print(f"\n## peak RSS, streamed tf.data source (generator), {n} and {2 * n} examples of 784 floats")
    rss = {}
    for size in (n, 2 * n):
        out = subprocess.run([sys.executable, "-c", CHILD, str(size)], capture_output=True, text=True,
                             timeout=1200, env={**os.environ, "PYTHONPATH": os.getcwd()})
        rss[size] = float(out.stdout.strip().splitlines()[-1])
        print(f"{size:7d} examples ({size * 784 * 4 / 2**20:6.0f} MiB if materialised): "
              f"peak RSS {rss[size]:7.0f} MiB", flush=True)
    print(f"growth at 2x data = {rss[2 * n] / rss[n] - 1:+.3f}")


if __name__ == "__main__":
    print(device_line())
    checkpoint_overhead()
    if "--skip_rss" not in sys.argv:
        peak_rss()
