"""Issue 27's device check: `fit_with_tips` under keras.distribution on JAX,
over every local device, against the same call on one device (the same
weights, data and batch), epoch time side by side and the accuracy of each.

    KERAS_BACKEND=jax KERAS_RECIPES_DATA=<copy of shared/data> \\
        python benchmarks/gpu_sharding.py [--n 8000] [--epochs 4]

Prints one line per run (devices, median epoch seconds after the first,
test accuracy, the first epoch's gradient norm) and the ratio. The gradient
norm is the global one, so the two lines should agree to float tolerance.
On a CPU, for a quick look: XLA_FLAGS=--xla_force_host_platform_device_count=2
(`--n 2048 --epochs 3`); host devices share the same cores, so the ratio
there says nothing about speed.
"""

import argparse
import statistics

import jax
import keras
import numpy as np

from common import device_line, load_mnist_split
from gpu_front_door import EpochTimer
from keras_recipes import fit_with_tips


def convnet():
    return keras.Sequential([
        keras.Input((28, 28, 1)),
        keras.layers.Conv2D(32, 3, activation="relu"), keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(64, 3, activation="relu"), keras.layers.MaxPooling2D(),
        keras.layers.Flatten(), keras.layers.Dense(10)])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=8000)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch_size", type=int, default=256)
    args = parser.parse_args()
    print(device_line())
    (x, y), (xt, yt) = load_mnist_split(args.n)
    x, xt = x[..., None], xt[..., None]
    devices = jax.devices()
    keras.utils.set_random_seed(0)
    start = convnet().get_weights()
    lines = {}
    for name, chosen in (("one", devices[:1]), ("all", devices)):
        distribution = keras.distribution.DataParallel(devices=chosen)
        with distribution.scope():
            model = convnet()
        model.set_weights(start)
        timer = EpochTimer()
        result = fit_with_tips(model, (x, y), strategy=distribution, seed=0, epochs=args.epochs,
                               batch_size=args.batch_size, learning_rate=1e-3, verbose=0,
                               callbacks=[timer])
        accuracy = float((np.asarray(result.model.predict(xt, batch_size=len(chosen) * 100,
                                                          verbose=0)).argmax(-1) == yt).mean())
        epoch = statistics.median(timer.times[1:]) if len(timer.times) > 1 else float("nan")
        lines[name] = epoch
        row = next(t for t in result.tips if t.name == "distribution")
        print(f"{len(chosen)} device(s): epoch {epoch:.3f} s, test accuracy {accuracy:.4f}, "
              f"grad_norm epoch 1 {result.history['grad_norm'][0]:.6f}, status {result.status}")
        print(f"    row: {row.setting}; {row.reason.split('; ', 1)[-1]}")
    print(f"one device / all {len(devices)}: epoch time ratio {lines['one'] / lines['all']:.2f}")


if __name__ == "__main__":
    main()
