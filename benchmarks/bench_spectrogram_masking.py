"""Issue 36, the next lever for spoken_gru (an unseen voice): tip 10 on
spectrogram sequences. Does masking whole mel bands while training
(`keras.layers.SpatialDropout1D(rate)` in front of the GRU: each example
loses a random `rate` of its 40 bands at every step, a frequency mask)
bring the recipe closer on a voice it never heard?

Chosen on validation only: `spoken_gru_by_speaker` (bench_quality.py) gives
every arm the same validation set, a sixth voice, per seed; its best
val_loss decides. spoken_gru (random clips of the known voices as the
recipe's own split) is printed beside it. The test ("theo") is printed for
the record, never used to choose.

    python benchmarks/bench_spectrogram_masking.py [--seeds 0,1,2,3,4] [--rates 0,0.1,0.2]
        [--layer mask|noise]

    python benchmarks/bench_spectrogram_masking.py --from_logs a.log,b.log
        # one summary of earlier invocations' runs (e.g. seeds 0-4 and 5-9)

--layer noise uses `keras.layers.GaussianNoise(rate)` instead (noise of `rate`
standard deviations on every value). Tip 1 leaves the inputs raw in front of
GaussianNoise (its stddev is on the scale the user gave), so those arms pass
`preprocess=True`: the noise is then in units of the standardized inputs.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before TensorFlow is imported

import argparse
import warnings

import keras
import numpy as np

import bench_quality
from common import Timer, device_line
from keras_recipes import fit_with_tips
from keras_recipes.callbacks import UpdateRatioWarning

L = keras.layers


def build(shape, rate, seed, layer="mask"):
    keras.utils.set_random_seed(seed)
    kind = L.SpatialDropout1D if layer == "mask" else L.GaussianNoise
    front = [kind(rate)] if rate else []
    return keras.Sequential([keras.Input(shape)] + front + [L.GRU(32), L.Dense(10)])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--rates", default="0,0.1,0.2")
    parser.add_argument("--layer", default="mask", choices=["mask", "noise"])
    parser.add_argument("--from_logs", default="",
                        help="comma-separated logs: summarize their runs instead of training")
    args = parser.parse_args()
    if args.from_logs:
        means, layer = {}, args.layer
        for path in args.from_logs.split(","):
            for line in open(path):
                parts = line.split()
                if line.startswith("layer="):
                    layer = line.strip().partition("=")[2]
                elif len(parts) >= 7 and parts[0] in ("spoken_gru_by_speaker", "spoken_gru"):
                    try:
                        key = parts[0], float(parts[1])
                        run = int(parts[2]), float(parts[3]), float(parts[4])
                    except ValueError:
                        continue
                    means.setdefault(key, {})[run[0]] = run[1:]
        print(f"runs from {args.from_logs}")
        summarize({k: [v[s] for s in sorted(v)] for k, v in means.items()}, layer,
                  min(r for _, r in means))
        return
    seeds = [int(s) for s in args.seeds.split(",")]
    rates = [float(r) for r in args.rates.split(",")]
    warnings.filterwarnings("ignore", category=UpdateRatioWarning)
    print(device_line())
    print(f"layer={args.layer}")
    print(f"{'task':22} {'rate':>5} {'seed':>4} {'val_loss':>9} {'test':>7} {'epochs':>6} "
          f"{'seconds':>7}  status")
    by_speaker = bench_quality.spoken_gru_by_speaker()
    (x_all, y_all), (xt, yt) = by_speaker[0], by_speaker[1]
    holdout = by_speaker[5]
    means = {}
    for task in ("spoken_gru_by_speaker", "spoken_gru"):
        for rate in rates:
            runs = []
            for seed in seeds:
                if task == "spoken_gru_by_speaker":
                    (x, y), validation = holdout(seed)
                    kwargs = dict(validation_data=validation)
                else:
                    (x, y), kwargs = (x_all, y_all), {}
                if args.layer == "noise" and rate:
                    kwargs = dict(kwargs, preprocess=True)
                with Timer() as t:
                    result = fit_with_tips(build(x.shape[1:], rate, seed, args.layer), (x, y),
                                           seed=seed, verbose=0, **kwargs)
                val = float(np.nanmin(result.history["val_loss"]))
                test = bench_quality.score(result.model, xt, yt, "classification")
                runs.append((val, test))
                print(f"{task:22} {rate:5g} {seed:4d} {val:9.4g} {test:7.4f} "
                      f"{len(result.history['loss']):6d} {t.seconds:7.1f}  {result.status}",
                      flush=True)
            means[task, rate] = runs
    summarize(means, args.layer, rates[0])


def summarize(means, layer, base_rate):
    """Per task and rate: mean best val_loss over seeds, the seeds on which it
    is lower than the base rate's (paired by seed), and the test (record)."""
    print(f"\nmean over seeds: best val_loss (seeds lower than rate {base_rate:g}) | test (record)")
    for (task, rate), runs in means.items():
        base = means[task, base_rate]
        lower = sum(r[0] < b[0] for r, b in zip(runs, base))
        print(f"{task:22} {layer} {rate:4g}: {np.mean([r[0] for r in runs]):.4g} "
              f"({lower}/{len(runs)}) | {np.mean([r[1] for r in runs]):.4f}")


if __name__ == "__main__":
    main()
