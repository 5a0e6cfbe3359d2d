"""Augmentation throughput, one run, same machine.

    pip install -e ".[bench]"   # audiomentations, the library compared with
    python benchmarks/bench_augment_throughput.py

Audio: NoiseMix against audiomentations AddGaussianSNR and AddBackgroundNoise
on 1-second 8 kHz clips (FSDD recordings padded/cropped), batches of 128,
noise from ../shared/data/noise. audiomentations runs per clip in numpy (its
design); NoiseMix runs per batch in a compiled function.
Images: RandomShiftRotate against Keras RandomTranslation + RandomRotation
on 28x28 MNIST digits, in a model (fit, XLA asked) and in a tf.data map.
"""

import time

import keras
import numpy as np
import tensorflow as tf

from common import DATA, device_line, load_mnist_split, need
from keras_recipes.audio import NoiseBank, read_wav
from keras_recipes.layers import NoiseMix, RandomShiftRotate


def clips_per_second(fn, batch, n_clips, repeats=3):
    fn(batch)  # warm up / compile
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        done = 0
        while done < n_clips:
            fn(batch)
            done += len(batch)
        best = max(best, done / (time.perf_counter() - start))
    return best


def fsdd_batch(n=128, length=8000):
    files = sorted(need(DATA / "fsdd" / "recordings").glob("*.wav"))[:n]
    out = np.zeros((n, length), "float32")
    for i, f in enumerate(files):
        x, rate = read_wav(f)
        assert rate == 8000
        x = x[:length, 0]
        out[i, : len(x)] = x
    return out


def audio():
    import audiomentations as am

    batch = fsdd_batch()
    noise_dir = need(DATA / "noise")
    gauss = am.AddGaussianSNR(min_snr_db=0.0, max_snr_db=20.0, p=1.0)
    background = am.AddBackgroundNoise(sounds_path=str(noise_dir), min_snr_db=0.0, max_snr_db=20.0,
                                       p=1.0)

    def per_clip(transform):
        return lambda b: [transform(samples=c, sample_rate=8000) for c in b]

    bank = NoiseBank.from_files(noise_dir, sample_rate=8000)

    def compiled(layer, jit=True):
        f = tf.function(lambda b: layer(b, training=True), jit_compile=jit)
        return lambda b: f(b).numpy()

    rows = [
        ("audiomentations AddGaussianSNR", clips_per_second(per_clip(gauss), batch, 1024)),
        ("NoiseMix white (generated)", clips_per_second(compiled(NoiseMix(colors=("white",), seed=0)), batch, 32768)),
        ("audiomentations AddBackgroundNoise", clips_per_second(per_clip(background), batch, 256, repeats=2)),
        ("NoiseMix real-noise bank", clips_per_second(compiled(NoiseMix(noise=bank, colors=(), seed=0)), batch, 32768)),
        ("NoiseMix bank + white/pink/brown", clips_per_second(compiled(NoiseMix(noise=bank, seed=0)), batch, 16384)),
        # Without XLA (what jit_compile="auto" picks on this CPU): XLA's CPU
        # random-number generator is much slower than TensorFlow's kernels.
        ("NoiseMix white, no XLA", clips_per_second(compiled(NoiseMix(colors=("white",), seed=0), False), batch, 32768)),
        ("NoiseMix bank, no XLA", clips_per_second(compiled(NoiseMix(noise=bank, colors=(), seed=0), False), batch, 32768)),
        ("NoiseMix bank + colors, no XLA", clips_per_second(compiled(NoiseMix(noise=bank, seed=0), False), batch, 16384)),
    ]
    print("\n## audio: clips per second (1 s at 8 kHz, batches of 128)")
    for name, rate in rows:
        print(f"{name:36} {rate:12.0f}")
    print(f"NoiseMix white / AddGaussianSNR = {rows[1][1] / rows[0][1]:.1f}x")
    print(f"NoiseMix bank / AddBackgroundNoise = {rows[3][1] / rows[2][1]:.1f}x")
    print(f"no XLA: NoiseMix white / AddGaussianSNR = {rows[5][1] / rows[0][1]:.1f}x, "
          f"NoiseMix bank / AddBackgroundNoise = {rows[6][1] / rows[2][1]:.1f}x")


def images():
    (x, _), _ = load_mnist_split()
    x = (x[..., None].astype("float32") / 255.0)
    keras_aug = [keras.layers.RandomTranslation(0.1, 0.1, fill_mode="reflect", seed=0),
                 keras.layers.RandomRotation(10.0 / 360.0, fill_mode="reflect", seed=0)]
    ours = [RandomShiftRotate(max_shift=0.1, max_degrees=10.0, seed=0)]
    print("\n## images: 28x28 MNIST, batches of 128")
    results = {}
    for name, layers in (("keras RandomTranslation+RandomRotation", keras_aug), ("RandomShiftRotate", ours)):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((28, 28, 1)), *layers, keras.layers.Flatten(),
                                  keras.layers.Dense(10)])
        model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile=True)
        y = np.zeros(len(x), "int32")
        model.fit(x, y, batch_size=128, epochs=1, verbose=0)
        start = time.perf_counter()
        model.fit(x, y, batch_size=128, epochs=2, verbose=0)
        in_model = 2 * len(x) / (time.perf_counter() - start)
        xla = model.jit_compile

        aug = keras.Sequential(layers)
        ds = tf.data.Dataset.from_tensor_slices(x).batch(128).map(
            lambda b: aug(b, training=True), num_parallel_calls=tf.data.AUTOTUNE)
        for _ in ds.take(2):
            pass
        start = time.perf_counter()
        count = sum(int(b.shape[0]) for b in ds)
        in_data = count / (time.perf_counter() - start)
        results[name] = (in_model, in_data)
        print(f"{name:40} in-model fit {in_model:9.0f} img/s (jit_compile after fit: {xla})  "
              f"tf.data map {in_data:9.0f} img/s")
    k, o = results["keras RandomTranslation+RandomRotation"], results["RandomShiftRotate"]
    print(f"RandomShiftRotate / keras: in-model {o[0] / k[0]:.2f}x, tf.data {o[1] / k[1]:.2f}x")


if __name__ == "__main__":
    print(device_line())
    audio()
    images()
