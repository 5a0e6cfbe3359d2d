"""The front door on an accelerator: `fit_with_tips`, `fit_ensemble` and the
augmentation layers end to end under the current backend (JAX or torch; no
TensorFlow needed), each against plain `model.fit` of the same model on the
same arrays (batch 128, the same XLA setting), epoch time side by side.

    KERAS_BACKEND=jax KERAS_RECIPES_DATA=<copy of shared/data> \\
        python benchmarks/gpu_front_door.py [--epochs 4] [--n 8000]

Successor of gpu_check.py's parts for issue 14 (that script times the parts
alone). The first epoch (compilation) is dropped from every median. Runs on
the CPU too (`--n 1024 --epochs 3` for a quick look).
"""

import argparse
import statistics
import time

import keras
import numpy as np

from common import device_line, load_mnist_split
from keras_recipes import fit_ensemble
from keras_recipes import fit_with_tips
from keras_recipes.layers import RandomShiftRotate
from keras_recipes.models import preset


class EpochTimer(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.times = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self._start)


def median_epoch(timer):
    return statistics.median(timer.times[1:]) if len(timer.times) > 1 else float("nan")


def plain_fit(model, x, y, epochs, jit, augment=None):
    """What a user writes by hand: standardize, compile, fit (20% held out)."""
    mean, std = x.mean(), x.std()
    inputs = keras.Input(x.shape[1:])
    z = keras.layers.Normalization(mean=mean, variance=std**2)(inputs)
    for layer in augment or []:
        z = layer(z)
    full = keras.Model(inputs, model(z))
    full.compile(keras.optimizers.SGD(0.1, momentum=0.9),
                 keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                 metrics=["accuracy"], jit_compile=jit)
    timer = EpochTimer()
    full.fit(x, y, batch_size=128, epochs=epochs, validation_split=0.2, verbose=0,
             callbacks=[timer])
    return median_epoch(timer)


def ours(model, x, y, epochs, jit, **options):
    timer = EpochTimer()
    result = fit_with_tips(model, (x, y), epochs=epochs, stop_ratio=None, jit_compile=jit,
                           seed=0, verbose=0, callbacks=[timer], **options)
    return median_epoch(timer), result


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--n", type=int, default=8000)
    parser.add_argument("--members", type=int, default=10)
    args = parser.parse_args()
    print(device_line())
    jit = keras.backend.backend() == "jax"  # torch.compile is not Keras' default
    (x, y), (xt, yt) = load_mnist_split(args.n)
    x = x[..., None].astype("float32")
    xt = xt[..., None].astype("float32")
    flat = x.reshape(len(x), -1)
    print(f"\n## epoch time (median, first epoch dropped), batch 128, jit_compile={jit}")
    print(f"{'what':34} {'fit_with_tips':>14} {'model.fit':>10} {'ratio':>6}  test acc")
    rows = [("mlp", "mlp", flat, None), ("cnn", "cnn", x, None),
            ("cnn + augment='image'", "cnn", x, "image")]
    for name, kind, data, augment in rows:
        shape = data.shape[1:]
        keras.utils.set_random_seed(0)
        t_ours, result = ours(preset(kind, shape, 10), data, y, args.epochs, jit, augment=augment)
        keras.utils.set_random_seed(0)
        layers = [RandomShiftRotate(seed=0)] if augment else None
        t_plain = plain_fit(preset(kind, shape, 10), data, y, args.epochs, jit, layers)
        test = xt.reshape(len(xt), -1) if kind == "mlp" else xt
        accuracy = float((np.asarray(result.model.predict(test, verbose=0)).argmax(-1) == yt).mean())
        print(f"{name:34} {t_ours * 1e3:11.1f} ms {t_plain * 1e3:7.1f} ms {t_ours / t_plain:6.2f}"
              f"  {accuracy:.4f} ({result.status}, jit_compile={result.model.jit_compile})",
              flush=True)

    print(f"\n## fit_ensemble: {args.members} mlp members vs one (fit_with_tips), epoch time")
    keras.utils.set_random_seed(0)
    t_one, _ = ours(preset("mlp", flat.shape[1:], 10), flat, y, args.epochs, jit)
    timer = EpochTimer()
    ensemble = fit_ensemble(lambda: preset("mlp", flat.shape[1:], 10), (flat, y),
                            members=args.members, epochs=args.epochs, stop_ratio=None, seed=0,
                            verbose=0, jit_compile=jit, callbacks=[timer])
    t_all = median_epoch(timer)
    accuracy = float((np.asarray(ensemble.model.predict(xt.reshape(len(xt), -1), verbose=0))
                      .argmax(-1) == yt).mean())
    print(f"{ensemble.path} ensemble of {args.members}: {t_all * 1e3:.1f} ms vs one member "
          f"{t_one * 1e3:.1f} ms = {t_all / t_one:.2f}x; ensemble test accuracy {accuracy:.4f}")

    print("\n## augment='audio' (NoiseMix) on 1 s clips at 8 kHz, a small conv net")
    rng = np.random.default_rng(0)
    clips = rng.normal(size=(1024, 8000, 1)).astype("float32") * 0.1
    labels = rng.integers(0, 10, 1024)
    model = keras.Sequential([keras.Input((8000, 1)), keras.layers.Conv1D(16, 64, strides=16),
                              keras.layers.ReLU(), keras.layers.GlobalAveragePooling1D(),
                              keras.layers.Dense(10)])
    t_audio, result = ours(model, clips, labels, args.epochs, jit, augment="audio", audit=False)
    print(f"NoiseMix inside fit_with_tips: {t_audio * 1e3:.1f} ms per epoch of 1024 clips "
          f"({result.status}, jit_compile={result.model.jit_compile})")


if __name__ == "__main__":
    main()
