"""Effect of augmentation on real data, trained with fit_with_tips.

    python benchmarks/bench_augment_effect.py [--part audio|images|all] [--epochs 20]

Audio: Free Spoken Digit Dataset (../shared/data/fsdd), train on takes 5-49,
test on takes 0-4 (the dataset's own split), 1-second 8 kHz clips, a small
log-mel conv net. Trained with and without NoiseMix (bank: every file in
../shared/data/noise, plus white/pink/brown). Tested on clean clips and on
clips mixed with ../shared/data/noise-eval/running_tap.wav (never in the
training bank) at 10, 5 and 0 dB.
Images: MNIST test set (fixed 8k/2k split), the cnn preset, trained with and
without RandomShiftRotate(0.1, 10 deg); tested on clean digits and on the
test digits shifted/rotated at random (up to 15% and 15 degrees, fixed seed).

Both use SGD at learning_rate=0.03 (`--learning_rate`): at tip 4's SGD start
0.1, UpdateRatioMonitor reported update/weight ratios of 1e-2 to 2.5e-2
(unstable) on these conv nets, and runs collapsed or not depending on the
data order (a run of the audio model with NoiseMix fell from 0.52 to 0.07
validation accuracy at epoch 9).
"""

import argparse
import re

import keras
import numpy as np

from common import DATA, Timer, device_line, load_mnist_split, need
from keras_recipes import fit_with_tips
from keras_recipes.audio import NoiseBank, read_wav, resample
from keras_recipes.layers.image import shift_rotate
from keras_recipes.models import preset

LENGTH = 8000
LEARNING_RATE = 0.03


def load_fsdd():
    files = sorted(need(DATA / "fsdd" / "recordings").glob("*.wav"))
    xs, ys, takes = [], [], []
    for f in files:
        digit, _, take = re.match(r"(\d)_(\w+)_(\d+)\.wav", f.name).groups()
        x, rate = read_wav(f)
        assert rate == 8000
        clip = np.zeros(LENGTH, "float32")
        x = x[:LENGTH, 0]
        clip[: len(x)] = x
        xs.append(clip)
        ys.append(int(digit))
        takes.append(int(take))
    xs, ys, takes = np.stack(xs), np.array(ys, "int32"), np.array(takes)
    test = takes < 5
    return (xs[~test], ys[~test]), (xs[test], ys[test])


def audio_model(seed):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((LENGTH,))
    z = keras.layers.MelSpectrogram(num_mel_bins=40, sampling_rate=8000, fft_length=256,
                                    sequence_stride=128, min_freq=50.0, max_freq=4000.0)(inputs)
    z = keras.layers.Rescaling(1 / 40.0, offset=1.0)(z)  # dB to about unit scale
    z = keras.layers.Permute((2, 1))(z)  # (time, mel)
    z = keras.layers.Conv1D(64, 5, activation="relu")(z)
    z = keras.layers.MaxPooling1D(2)(z)
    z = keras.layers.Conv1D(64, 5, activation="relu")(z)
    z = keras.layers.GlobalAveragePooling1D()(z)
    outputs = keras.layers.Dense(10)(z)
    return keras.Model(inputs, outputs)


def mix_at_snr(clean, noise, snr_db, rng):
    out = np.empty_like(clean)
    for i, c in enumerate(clean):
        start = rng.integers(0, len(noise) - LENGTH)
        n = noise[start:start + LENGTH]
        ps, pn = (c ** 2).mean(), (n ** 2).mean()
        out[i] = c + n * np.sqrt(ps / (pn * 10 ** (snr_db / 10))) if ps > 0 else c
    return out


def accuracy(model, x, y):
    return float((model.predict(x, batch_size=256, verbose=0).argmax(-1) == y).mean())


def audio_tests(xt):
    """The test clips clean and mixed with running_tap.wav (never in the
    training bank) at 10, 5 and 0 dB, with a fixed seed."""
    tap, rate = read_wav(need(DATA / "noise-eval" / "running_tap.wav"))
    tap = resample(tap[:, 0], rate, 8000)
    rng = np.random.default_rng(0)
    tests = {"clean": xt}
    for snr in (10, 5, 0):
        tests[f"tap {snr} dB"] = mix_at_snr(xt, tap, snr, rng)
    return tests


def audio(epochs):
    (x, y), (xt, yt) = load_fsdd()
    bank = NoiseBank.from_files(need(DATA / "noise"), sample_rate=8000)
    tests = audio_tests(xt)
    print(f"\n## audio: FSDD {len(x)} train / {len(xt)} test clips, log-mel conv net, up to {epochs} epochs")
    print(f"{'training':28} " + " ".join(f"{k:>11}" for k in tests) + "   epochs  seconds")
    for label, kwargs in (("no augmentation", {}),
                          ("NoiseMix (bank + colors)", {"augment": "audio", "noise_bank": bank})):
        with Timer() as t:
            res = fit_with_tips(audio_model(0), (x, y), epochs=epochs, seed=0, verbose=0,
                                optimizer="sgd", learning_rate=LEARNING_RATE, **kwargs)
        accs = [accuracy(res.model, xs, yt) for xs in tests.values()]
        print(f"{label:28} " + " ".join(f"{a:11.4f}" for a in accs)
              + f"   {len(res.history['loss']):6d} {t.seconds:8.1f}", flush=True)


def moved_digits(xt):
    """The test digits shifted (up to 15%) and rotated (up to 15 degrees) at
    random, with a fixed seed."""
    rng = np.random.default_rng(0)
    shifts = rng.uniform(-0.15, 0.15, (len(xt), 2)).astype("float32") * 28
    angles = np.radians(rng.uniform(-15, 15, len(xt))).astype("float32")
    return keras.ops.convert_to_numpy(shift_rotate(xt, shifts, angles, fill_mode="constant"))


def images(epochs):
    (x, y), (xt, yt) = load_mnist_split()
    x, xt = x[..., None].astype("float32"), xt[..., None].astype("float32")
    moved = moved_digits(xt)
    print(f"\n## images: MNIST 8k/2k, cnn preset, up to {epochs} epochs")
    print(f"{'training':28} {'clean':>8} {'shifted/rotated':>16}   epochs  seconds")
    for label, augment in (("no augmentation", None), ("RandomShiftRotate", "image")):
        with Timer() as t:
            res = fit_with_tips(preset("cnn", (28, 28, 1), 10), (x, y), epochs=epochs, seed=0,
                                verbose=0, augment=augment, optimizer="sgd",
                                learning_rate=LEARNING_RATE)
        print(f"{label:28} {accuracy(res.model, xt, yt):8.4f} {accuracy(res.model, moved, yt):16.4f}"
              f"   {len(res.history['loss']):6d} {t.seconds:8.1f}", flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--part", default="all", choices=["all", "audio", "images"])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--learning_rate", type=float, default=0.03)
    args = parser.parse_args()
    global LEARNING_RATE
    LEARNING_RATE = args.learning_rate
    print(device_line())
    if args.part in ("all", "audio"):
        audio(args.epochs)
    if args.part in ("all", "images"):
        images(args.epochs)


if __name__ == "__main__":
    main()
