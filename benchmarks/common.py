"""Helpers shared by the benchmark scripts (not part of the package).

The benchmarks read the real data in ../shared/data (see its README for the
licences). MNIST's test set is split into a fixed 8k/2k train/test split.
"""

import gzip
import os
import pathlib
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
DATA = pathlib.Path(os.environ.get("KERAS_RECIPES_DATA", ROOT.parent / "shared" / "data"))


def need(path):
    path = pathlib.Path(path)
    if not path.exists():
        sys.exit(f"{path} not found: the benchmarks need ../shared/data "
                 "(or KERAS_RECIPES_DATA pointing at a copy).")
    return path


def load_mnist_split(n_train=8000):
    """MNIST test set as a fixed split: first 8k train, last 2k test.

    Pixels are returned raw (uint8, 28x28); labels int32.
    """
    folder = need(DATA / "mnist_test")
    with gzip.open(folder / "t10k-images-idx3-ubyte.gz") as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(folder / "t10k-labels-idx1-ubyte.gz") as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8).astype("int32")
    return (x[:n_train], y[:n_train]), (x[n_train:], y[n_train:])


class Timer:
    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start


def device_line():
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        devices = ", ".join(str(d.device_kind) for d in jax.devices())
    else:
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        devices = "GPU x%d" % len(gpus) if gpus else "CPU"
    return f"backend={backend} devices={devices} cpus={os.cpu_count()}"
