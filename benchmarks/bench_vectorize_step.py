"""Train-step time of 10 fused members, stacked vs vectorized, per backend.

    python benchmarks/bench_vectorize_step.py [--models mlp,cnn,lstm] [--members 10]
        [--steps 10] [--jit auto|0|1]

The evidence behind fit_ensemble's vectorize="auto" rule: for each
architecture, one member alone, the members side by side in one functional
model (`stack_members`, what the stacked path trains) and the members as one
`VectorizedMembers` layer (stacked weights, the forward pass vectorized over
the member axis), each compiled the same way (`--jit auto`: XLA on JAX, plain
on TensorFlow and torch) and timed over `--steps` train steps on random
MNIST-shaped batches of 128 after two warm-up steps. A path the backend
cannot compile is reported with its error. Also the compute floor: one
member on batches of 128 x members (the same arithmetic per step).
"""

import argparse
import re
import time

import keras
import numpy as np

from common import device_line
from keras_recipes.ensemble import MemberwiseLoss, VectorizedMembers, stack_members
from keras_recipes.models import preset


def build(name):
    if name == "lstm":
        return keras.Sequential([keras.Input((28, 28)), keras.layers.LSTM(64),
                                 keras.layers.Dense(10)])
    return preset(name, (784,), 10)


def step_ms(model, x, y, loss, jit, steps):
    model.compile(keras.optimizers.SGD(0.01, momentum=0.9), loss, jit_compile=jit)
    for _ in range(2):
        model.train_on_batch(x, y)
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    return (time.perf_counter() - start) / steps * 1e3


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="mlp,cnn,lstm")
    parser.add_argument("--members", type=int, default=10)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--jit", default="auto")
    args = parser.parse_args()
    jit = {"auto": keras.backend.backend() == "jax", "0": False, "1": True}[args.jit]
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.get_logger().setLevel("CRITICAL")  # pfor logs each op it cannot convert
    m = args.members
    print(device_line(), f"jit_compile={jit}")
    rng = np.random.default_rng(0)
    sparse = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    for name in args.models.split(","):
        shape = (28, 28) if name == "lstm" else (784,)
        x = rng.normal(size=(128,) + shape).astype("float32")
        y = rng.integers(0, 10, 128)
        xm, ym = np.repeat(x[:, None], m, 1), np.repeat(y[:, None], m, 1)
        rows = {"one member": lambda: step_ms(build(name), x, y, sparse, jit, args.steps),
                f"floor: one member, batch {128 * m}": lambda: step_ms(
                    build(name), np.repeat(x, m, 0), np.repeat(y, m, 0), sparse, jit, args.steps)}

        def stacked():
            members = [build(name) for _ in range(m)]
            model = stack_members(members, shape, per_member=True)
            return step_ms(model, xm, ym, MemberwiseLoss(sparse, stacked_targets=True), jit, args.steps)

        def vectorized():
            members = [build(name) for _ in range(m)]
            inputs = keras.Input((m,) + shape)
            model = keras.Model(inputs, VectorizedMembers(members)(inputs))
            return step_ms(model, xm, ym, MemberwiseLoss(sparse, stacked_targets=True), jit, args.steps)

        rows[f"{m} members stacked"] = stacked
        rows[f"{m} members vectorized"] = vectorized
        print(f"\n### {name}")
        one = None
        for label, fn in rows.items():
            try:
                ms = fn()
            except Exception as error:  # noqa: BLE001 - reported, the next row runs
                text = " ".join(re.sub(r"\x1b\[[0-9;]*m", "", str(error)).split())
                print(f"  {label:34} failed: {type(error).__name__}: {text[:140]}", flush=True)
                continue
            one = one or ms
            print(f"  {label:34} {ms:9.2f} ms/step  {ms / one:6.2f}x one member", flush=True)


if __name__ == "__main__":
    main()
