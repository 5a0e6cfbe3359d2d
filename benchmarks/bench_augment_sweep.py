"""Issue 18: which augmentation settings help on unseen conditions without
costing clean accuracy.

Audio (`--part audio`): which NoiseMix settings help on unseen noise. A sweep over rate, SNR range and noise sources, each trained
with fit_with_tips on FSDD (takes 5-49) and tested on takes 0-4, clean and
mixed with a recording never in the bank (noise-eval/running_tap.wav) at 10,
5 and 0 dB. The setup of bench_augment_effect.py (log-mel conv net,
SGD at learning_rate 0.03, 20 epochs), repeated over seeds.

Images (`--part images`): RandomShiftRotate's range on MNIST (8k/2k, the cnn
preset, the setup of bench_augment_effect.py), tested clean and shifted/rotated
at random by up to 15% and 15 degrees.

    python benchmarks/bench_augment_sweep.py --part audio|images [--seeds 2] [--epochs 20]
        [--only NAME ...]
"""

import argparse
import statistics

import keras

from bench_augment_effect import LENGTH, accuracy, audio_model, audio_tests, load_fsdd, moved_digits
from common import DATA, Timer, device_line, load_mnist_split, need
from keras_recipes import fit_with_tips
from keras_recipes.audio import NoiseBank
from keras_recipes.layers import NoiseMix
from keras_recipes.layers import RandomShiftRotate
from keras_recipes.models import preset

ALL = ("white", "pink", "brown")
# name: NoiseMix arguments (None: no augmentation); "bank" is replaced by the
# NoiseBank of ../shared/data/noise.
CONFIGS = {
    "none": None,
    "rate 1.0, 0..20 dB, bank+colors": dict(rate=1.0, snr_db=(0, 20), colors=ALL, noise="bank"),
    "rate 0.5, 0..20 dB, bank+colors": dict(rate=0.5, snr_db=(0, 20), colors=ALL, noise="bank"),
    "rate 0.5, -5..20 dB, bank+colors": dict(rate=0.5, snr_db=(-5, 20), colors=ALL, noise="bank"),
    "rate 0.5, 5..30 dB, bank+colors": dict(rate=0.5, snr_db=(5, 30), colors=ALL, noise="bank"),
    "rate 0.5, 0..20 dB, bank only": dict(rate=0.5, snr_db=(0, 20), colors=(), noise="bank"),
    "rate 0.5, 0..20 dB, colors only": dict(rate=0.5, snr_db=(0, 20), colors=ALL, noise=None),
    "rate 0.8, -5..20 dB, bank+colors": dict(rate=0.8, snr_db=(-5, 20), colors=ALL, noise="bank"),
    "rate 0.3, 0..20 dB, bank+colors": dict(rate=0.3, snr_db=(0, 20), colors=ALL, noise="bank"),
    "rate 0.65, 0..20 dB, bank+colors": dict(rate=0.65, snr_db=(0, 20), colors=ALL, noise="bank"),
    "rate 0.5, -5..25 dB, bank+colors": dict(rate=0.5, snr_db=(-5, 25), colors=ALL, noise="bank"),
}
IMAGE_CONFIGS = {
    "none": None,
    "shift 0.05, 5 deg": dict(max_shift=0.05, max_degrees=5.0),
    "shift 0.1, 10 deg": dict(max_shift=0.1, max_degrees=10.0),
    "shift 0.15, 15 deg": dict(max_shift=0.15, max_degrees=15.0),
    "shift 0.2, 20 deg": dict(max_shift=0.2, max_degrees=20.0),
}


def _row(name, scores, seconds):
    cells = [f"{statistics.mean(v):.3f} ({min(v):.2f}..{max(v):.2f})" for v in scores.values()]
    print(f"{name:34} " + " ".join(f"{c:>17}" for c in cells) + f"  {seconds:7.0f}", flush=True)


def images(args):
    (x, y), (xt, yt) = load_mnist_split()
    x, xt = x[..., None].astype("float32"), xt[..., None].astype("float32")
    tests = {"clean": xt, "shifted/rotated": moved_digits(xt)}
    print(f"\n## RandomShiftRotate sweep: MNIST 8k/2k, cnn preset, {args.epochs} epochs, "
          f"learning_rate 0.03, seeds 0..{args.seeds - 1}; mean over seeds (min..max)")
    print(f"{'training':34} " + " ".join(f"{k:>17}" for k in tests) + "  seconds")
    for name in args.only or list(IMAGE_CONFIGS):
        config = IMAGE_CONFIGS[name]
        scores = {k: [] for k in tests}
        with Timer() as t:
            for seed in range(args.seeds):
                augment = None if config is None else RandomShiftRotate(
                    seed=seed, name="augment_shift_rotate", **config)
                keras.utils.set_random_seed(seed)
                res = fit_with_tips(preset("cnn", (28, 28, 1), 10), (x, y), epochs=args.epochs,
                                    seed=seed, verbose=0, optimizer="sgd", learning_rate=0.03,
                                    augment=augment)
                for k, xs in tests.items():
                    scores[k].append(accuracy(res.model, xs, yt))
        _row(name, scores, t.seconds)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--part", default="audio", choices=["audio", "images"])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--only", nargs="*", default=None)
    args = parser.parse_args()
    print(device_line())
    if args.part == "images":
        return images(args)
    (x, y), (xt, yt) = load_fsdd()
    bank = NoiseBank.from_files(need(DATA / "noise"), sample_rate=8000)
    tests = audio_tests(xt)
    names = args.only or list(CONFIGS)
    print(f"\n## NoiseMix sweep: FSDD {len(x)} train / {len(xt)} test clips ({LENGTH} samples), "
          f"{args.epochs} epochs, learning_rate 0.03, seeds 0..{args.seeds - 1}; mean over seeds "
          "(min..max)")
    print(f"{'training':34} " + " ".join(f"{k:>17}" for k in tests) + "  seconds")
    for name in names:
        config = CONFIGS[name]
        scores = {k: [] for k in tests}
        with Timer() as t:
            for seed in range(args.seeds):
                augment = None
                if config is not None:
                    options = dict(config, noise=bank if config["noise"] == "bank" else None)
                    augment = NoiseMix(seed=seed, name="augment_noise_mix", **options)
                res = fit_with_tips(audio_model(seed), (x, y), epochs=args.epochs, seed=seed,
                                    verbose=0, optimizer="sgd", learning_rate=0.03,
                                    augment=augment)
                for k, xs in tests.items():
                    scores[k].append(accuracy(res.model, xs, yt))
        _row(name, scores, t.seconds)


if __name__ == "__main__":
    main()
