"""Issue 37, item 4: a stateful LSTM at its fixed batch size.

UCR ACSF1 appliance power (../shared/data/sequences/acsf1), read as the
keras.io-era stateful pattern: the 100 training series are 100 parallel
streams, every batch is the next 5-step chunk of all of them (batch size 100
fixed by `keras.Input(batch_size=100)`), and the model predicts the power
at the step after each chunk (raw values). Series subsampled by 4 (365
steps, 72 chunks). Validation: the last 14 chunks of the training series,
in order; test: the 100 test series, read from reset states, RMSE in the series' units
(the UCR copy's values, about 0.3 std).

Arms, same model, same 60-epoch budget, seeds 0-2:
- plain: model.fit as written (Adam 1e-3, raw values, shuffle=False,
  states reset per epoch, EarlyStopping(patience=10, restore_best_weights));
- keras_defaults: the same with inputs and targets standardized by hand on
  the training statistics (Keras' Normalization advice);
- fit_with_tips: fit_with_tips(model, (x, y), epochs=60), nothing else.
  (Before this commit it refused the model: stateful layers.)

    python benchmarks/bench_stateful.py [--seeds 3] [--epochs 60]
"""

import argparse
import os
import sys

import keras
import numpy as np

sys.path.insert(0, os.path.dirname(__file__))

from bench_quality import read_ts  # noqa: E402
from common import DATA  # noqa: E402
from common import device_line  # noqa: E402
from common import need  # noqa: E402
from keras_recipes import fit_with_tips  # noqa: E402
from keras_recipes.callbacks import ResetStates  # noqa: E402
from keras_recipes.stateful import reset_states  # noqa: E402

STREAMS, CHUNK, EVERY = 100, 5, 4


def streams(series):
    """(chunks x streams, CHUNK, 1) inputs in chunk-major order and the
    value after each chunk."""
    s = series[:, ::EVERY, 0]
    chunks = (s.shape[1] - 1) // CHUNK
    x = np.stack([s[:, k * CHUNK:(k + 1) * CHUNK] for k in range(chunks)])  # (chunks, streams, CHUNK)
    y = np.stack([s[:, (k + 1) * CHUNK] for k in range(chunks)])            # (chunks, streams)
    return x.reshape(-1, CHUNK, 1).astype("float32"), y.reshape(-1, 1).astype("float32")


def build(seed):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((CHUNK, 1), batch_size=STREAMS),
                             keras.layers.LSTM(32, stateful=True, name="memory"),
                             keras.layers.Dense(1)])


def rmse(model, x, y, scale=None):
    reset_states(model)
    pred = model.predict(x, batch_size=STREAMS, verbose=0)
    if scale is not None:
        pred = pred * scale[1] + scale[0]
    return float(np.sqrt(np.mean((pred - y) ** 2)))


def plain(x, y, xt, yt, seed, epochs, standardize):
    n_val = 14 * STREAMS
    xtr, ytr, xv, yv = x[:-n_val], y[:-n_val], x[-n_val:], y[-n_val:]
    scale = None
    if standardize:
        mx, sx = xtr.mean(), xtr.std()
        my, sy = ytr.mean(), ytr.std()
        xtr, xv, xt = (xtr - mx) / sx, (xv - mx) / sx, (xt - mx) / sx
        ytr, yv = (ytr - my) / sy, (yv - my) / sy
        scale = (my, sy)
    model = build(seed)
    model.compile(keras.optimizers.Adam(1e-3), "mse")
    model.fit(xtr, ytr, batch_size=STREAMS, epochs=epochs, shuffle=False, verbose=0,
              validation_data=(xv, yv), callbacks=[
                  ResetStates(), keras.callbacks.EarlyStopping(patience=10,
                                                               restore_best_weights=True)])
    return rmse(model, xt, yt, scale)


def tips(x, y, xt, yt, seed, epochs):
    result = fit_with_tips(build(seed), (x, y), epochs=epochs, seed=seed, verbose=0)
    return rmse(result.model, xt, yt), result.status


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=60)
    args = parser.parse_args()
    print(device_line())
    folder = need(DATA / "sequences" / "acsf1")
    (train, _), (test, _) = read_ts(folder / "ACSF1_TRAIN.ts"), read_ts(folder / "ACSF1_TEST.ts")
    x, y = streams(train)
    xt, yt = streams(test)
    print(f"train {x.shape} (chunk-major), test {xt.shape}; target std {y.std():.4f}; "
          f"test RMSE of repeating each chunk's last value: "
          f"{float(np.sqrt(np.mean((xt[:, -1] - yt) ** 2))):.4f}")
    print(f"{'seed':>4}  {'plain':>9}  {'keras_defaults':>14}  {'fit_with_tips':>13}  status")
    rows = []
    for seed in range(args.seeds):
        a = plain(x, y, xt, yt, seed, args.epochs, standardize=False)
        b = plain(x, y, xt, yt, seed, args.epochs, standardize=True)
        c, status = tips(x, y, xt, yt, seed, args.epochs)
        rows.append((a, b, c))
        print(f"{seed:>4}  {a:>9.4f}  {b:>14.4f}  {c:>13.4f}  {status}", flush=True)
    mean = np.mean(rows, axis=0)
    print(f"mean  {mean[0]:>9.4f}  {mean[1]:>14.4f}  {mean[2]:>13.4f}  (test RMSE, the series' units)")


if __name__ == "__main__":
    main()
