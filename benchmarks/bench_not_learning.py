"""Issue 36, item 3: no run that learned nothing comes back as a success, and
a run stuck because its steps are too small is acted on (the rate raised).

Recurrent models on the embedded UCI digits read as 8 rows of 8 pixels
(raw pixels 0..16, so tip 1 standardizes them), with the default optimizer
and with optimizer="sgd", several seeds; each run's status, the guard's
"not learning" raises and the test accuracy. Chance is 0.1.

    python benchmarks/bench_not_learning.py [--seeds 0,1,2] [--epochs 60] [--steps 8|64]
"""

import argparse
import time

import keras
import numpy as np

from common import device_line
from keras_recipes import fit_with_tips
from keras_recipes.datasets import load_digits


def build(kind, steps):
    layer = {"gru": keras.layers.GRU, "lstm": keras.layers.LSTM, "rnn": keras.layers.SimpleRNN}[kind]
    return keras.Sequential([keras.Input((steps, 64 // steps)), layer(32), keras.layers.Dense(10)])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--models", default="gru,lstm,rnn")
    parser.add_argument("--steps", type=int, default=8,
                        help="time steps per digit: 8 (rows) or 64 (pixel by pixel, long range)")
    args = parser.parse_args()
    x, y = load_digits("train")
    xt, yt = load_digits("test")
    x, xt = x.reshape(-1, args.steps, 64 // args.steps), xt.reshape(-1, args.steps, 64 // args.steps)
    print(device_line())
    print(f"{'model':5} {'optimizer':9} {'seed':>4} {'status':>12} {'raises':>6} {'epochs':>6} "
          f"{'test_acc':>8} {'seconds':>7}")
    for kind in args.models.split(","):
        for optimizer in ("auto", "sgd"):
            for seed in [int(s) for s in args.seeds.split(",")]:
                keras.utils.set_random_seed(seed)
                start = time.perf_counter()
                result = fit_with_tips(build(kind, args.steps), (x, y), epochs=args.epochs, seed=seed,
                                       optimizer=optimizer, verbose=0)
                raises = sum(e.startswith("not learning at epoch") for e in result.events)
                acc = float((result.model.predict(xt, verbose=0).argmax(-1) == yt).mean())
                print(f"{kind:5} {optimizer:9} {seed:4d} {result.status:>12} {raises:6d} "
                      f"{len(result.history['loss']):6d} {acc:8.4f} "
                      f"{time.perf_counter() - start:7.1f}", flush=True)


if __name__ == "__main__":
    main()
