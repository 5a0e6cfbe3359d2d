"""Forget-gate bias and gradient clipping on a long-range task from real data.

Sequential MNIST from the MNIST test set (fixed 8k/2k split): each image is
read as a sequence of `--pixels_per_step` pixels (28 = row by row, 28 steps;
4 = 196 steps; 1 = pixel by pixel, 784 steps). An LSTM(64) is trained for a
fixed budget with SGD(0.1, momentum 0.9) and batch 128, for every combination
of forget-gate bias and clipping (ClippedOptimizer at max_norm 5, or none).

    python benchmarks/bench_lstm_forget_bias.py --pixels_per_step 28 --epochs 6

Prints one row per configuration: test accuracy after the budget, final
training loss, and whether training diverged (a non-finite loss).
"""

import argparse
import math

import keras

from common import Timer, device_line, load_mnist_split
from keras_recipes.initializers import ForgetGateBias
from keras_recipes.optimizers import ClippedOptimizer


def build(bias, clip, steps, features, seed):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input((steps, features)),
        keras.layers.LSTM(64, unit_forget_bias=False, bias_initializer=ForgetGateBias(bias)),
        keras.layers.Dense(10),
    ])
    sgd = keras.optimizers.SGD(0.1, momentum=0.9)
    opt = ClippedOptimizer(sgd, max_norm=clip, track_update_ratio=False)
    model.compile(opt, keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"], jit_compile=True)
    return model


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--pixels_per_step", type=int, default=28)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--biases", default="0,1,3,5")
    parser.add_argument("--clips", default="none,5")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n_train", type=int, default=8000)
    parser.add_argument("--configs", default=None,
                        help="ordered bias:clip pairs, e.g. 3:5,1:5,0:none (overrides the grid)")
    parser.add_argument("--budget_s", type=float, default=None,
                        help="skip the remaining configurations once this many seconds are spent")
    args = parser.parse_args(argv)
    (x, y), (xt, yt) = load_mnist_split()
    x, y = x[: args.n_train], y[: args.n_train]
    steps = 784 // args.pixels_per_step
    prep = lambda a: (a.reshape(len(a), steps, args.pixels_per_step).astype("float32") / 255.0 - 0.13) / 0.31
    x, xt = prep(x), prep(xt)
    print(device_line())
    print(f"sequential MNIST: {steps} steps of {args.pixels_per_step} pixels, "
          f"{len(x)} train / {len(xt)} test, {args.epochs} epochs, SGD(0.1, m=0.9), batch 128")
    print(f"{'bias':>5} {'clip':>5} {'test_acc':>9} {'train_loss':>11} {'diverged':>9} {'seconds':>8}")
    if args.configs:
        configs = [(float(c.split(":")[0]), c.split(":")[1]) for c in args.configs.split(",")]
    else:
        configs = [(float(b), c) for c in args.clips.split(",") for b in args.biases.split(",")]
    spent = 0.0
    for bias, clip in configs:
        max_norm = None if clip == "none" else float(clip)
        if args.budget_s is not None and spent > args.budget_s:
            print(f"{bias:5.1f} {clip:>5}   skipped: the time budget of {args.budget_s:.0f} s is spent")
            continue
        model = build(bias, max_norm, steps, args.pixels_per_step, args.seed)
        with Timer() as t:
            hist = model.fit(x, y, batch_size=128, epochs=args.epochs, verbose=0,
                             callbacks=[keras.callbacks.TerminateOnNaN()])
        losses = hist.history["loss"]
        diverged = not all(math.isfinite(v) for v in losses)
        acc = float("nan") if diverged else model.evaluate(xt, yt, verbose=0)[1]
        spent += t.seconds
        print(f"{bias:5.1f} {clip:>5} {acc:9.4f} {losses[-1]:11.4f} {str(diverged):>9} "
              f"{t.seconds:8.1f}", flush=True)


if __name__ == "__main__":
    main()
