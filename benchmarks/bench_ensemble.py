"""Cost and gain of fit_ensemble(members=10), in one run, per architecture.

    python benchmarks/bench_ensemble.py [--members 10] [--epochs 5]
        [--models mlp,cnn,lstm] [--n 8000] [--skip_sequential] [--xla_models mlp]

MNIST test set, fixed 8k/2k split, a fixed number of epochs (stop_ratio=None)
so that every run does the same work. For each architecture (the mlp and cnn
presets, an LSTM over the 28 rows), side by side:

* one fit_with_tips member (the unit of the ratios);
* fit_ensemble fused as the rule chooses it ("auto"), and the other fused
  path where it can run (stacked <-> vectorized; vectorized on TensorFlow
  needs XLA, so it is timed with jit_compile=True against one member with
  jit_compile=True);
* fit_ensemble sequential (fused=False): ten independent runs;
* the compute floor: one member trained on batches ten times as large for
  ten times the epochs, the same arithmetic and number of steps as ten
  members (what no fusing can beat on a compute-bound device).

Gain, fused vs sequential: the ensemble's test accuracy and NLL, the
members' mean, and the disagreement rate (the fraction of test digits on
which two members' predicted classes differ, averaged over pairs): members
that saw their own data orders should disagree as much as independent runs.
"""

import argparse
import itertools
import time

import keras
import numpy as np

from common import Timer, device_line, load_mnist_split
from keras_recipes import fit_ensemble, fit_with_tips
from keras_recipes.models import preset


def builder(name):
    if name == "lstm":
        return lambda: keras.Sequential([keras.Input((28, 28)), keras.layers.LSTM(64),
                                         keras.layers.Dense(10)], name="lstm_rows")
    return lambda: preset(name, (784,), 10)


def inputs(name, x):
    x = x.astype("float32")
    return x.reshape(len(x), 28, 28) if name == "lstm" else x.reshape(len(x), -1)


def softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def nll(p, y):
    return float(-np.log(np.clip(p[np.arange(len(y)), y], 1e-12, 1)).mean())


def quality(result, xt, yt):
    probs = [softmax(np.asarray(m.predict(xt, verbose=0, batch_size=512), "float64"))
             for m in result.members]
    classes = [p.argmax(-1) for p in probs]
    ens = np.mean(probs, axis=0)
    pairs = list(itertools.combinations(range(len(classes)), 2))
    disagreement = np.mean([(classes[i] != classes[j]).mean() for i, j in pairs]) if pairs else 0.0
    return dict(member_acc=float(np.mean([(c == yt).mean() for c in classes])),
                member_nll=float(np.mean([nll(p, yt) for p in probs])),
                acc=float((ens.argmax(-1) == yt).mean()), nll=nll(ens, yt),
                disagreement=float(disagreement))


class EpochTimer(keras.callbacks.Callback):
    """Epoch times after each run's first (which traces and compiles)."""

    def __init__(self):
        super().__init__()
        self.steady, self._first = [], True

    def on_train_begin(self, logs=None):
        self._first = True

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if not self._first:
            self.steady.append(time.perf_counter() - self._start)
        self._first = False

    @property
    def epoch_seconds(self):
        return float(np.median(self.steady)) if self.steady else float("nan")


def ensemble_row(result):
    row = next(t for t in result.fit_result.tips if t.name == "ensemble")
    return row.setting.split(", ")[-1], row.reason.split(";")[0]


def run(name, args, data, test):
    build = builder(name)
    x, y = inputs(name, data[0]), data[1]
    xt, yt = inputs(name, test[0]), test[1]
    common = dict(epochs=args.epochs, stop_ratio=None, verbose=0)
    backend = keras.backend.backend()
    print(f"\n### {name} ({args.members} members, {args.epochs} epochs, {len(x)} examples)")
    rows, qualities = [], {}

    def timed(label, fn, unit=None, per_member=False):
        """Runs fn(callbacks); prints wall time and the steady epoch time
        (per member's epoch for the sequential path, so that it compares
        with one epoch of all members), each as a ratio to `unit`."""
        timer = EpochTimer()
        with Timer() as t:
            result = fn([timer])
        epoch = timer.epoch_seconds * (args.members if per_member else 1)
        line = f"  {label:50} {t.seconds:7.1f} s"
        if unit:
            line += f"  ratio {t.seconds / unit[0]:5.2f}x"
        line += f" | epoch {epoch:6.3f} s"
        if unit:
            line += f"  ratio {epoch / unit[1]:5.2f}x"
        print(line, flush=True)
        return result, (t.seconds, epoch)

    jit = backend != "tensorflow"  # JAX always compiles; TF plain is the CPU default
    members = dict(members=args.members, seed=0, jit_compile=jit, **common)
    _, one = timed(f"one member (jit_compile={jit})", lambda cb: fit_with_tips(
        build(), (x, y), seed=0, jit_compile=jit, callbacks=cb, **common))
    fused, _ = timed("fit_ensemble fused, auto", lambda cb: fit_ensemble(
        build, (x, y), callbacks=cb, **members), one)
    path, why = ensemble_row(fused)
    print(f"    auto chose: {path} ({why})")
    qualities["fused " + path] = quality(fused, xt, yt)
    other = "stacked" if path == "vectorized" else "vectorized"
    try:
        alt, _ = timed(f"fit_ensemble fused, {other}", lambda cb: fit_ensemble(
            build, (x, y), callbacks=cb, vectorize=other == "vectorized", **members), one)
        qualities["fused " + other] = quality(alt, xt, yt)
    except ValueError as error:
        print(f"    {other} not possible: {str(error)[:150]}")
    if backend == "tensorflow" and name in args.xla_models.split(","):
        # TensorFlow with XLA, against one member with XLA.
        _, one_xla = timed("one member (jit_compile=True)", lambda cb: fit_with_tips(
            build(), (x, y), seed=0, jit_compile=True, callbacks=cb, **common))
        try:
            xla, _ = timed("fit_ensemble fused, auto, jit_compile=True", lambda cb: fit_ensemble(
                build, (x, y), callbacks=cb, **dict(members, jit_compile=True)), one_xla)
            print(f"    auto chose: {' ('.join(ensemble_row(xla))})")
        except ValueError as error:
            print(f"    XLA not possible: {str(error)[:150]}")
    if not args.skip_sequential:
        seq, _ = timed("fit_ensemble sequential (fused=False)", lambda cb: fit_ensemble(
            build, (x, y), callbacks=cb, fused=False, **members), one, per_member=True)
        qualities["sequential"] = quality(seq, xt, yt)
    # The arithmetic of ten members' steps: batches ten times as large, as
    # many steps as the ensemble takes (ten times the epochs).
    floor = dict(common, epochs=args.epochs * args.members)
    timed(f"floor: one member, batch {128 * args.members}, x{args.members} epochs",
          lambda cb: fit_with_tips(build(), (x, y), seed=0, jit_compile=jit, callbacks=cb,
                                   batch_size=128 * args.members, **floor), one,
          per_member=True)

    print(f"\n  quality on the {len(yt)} test digits:")
    print(f"  {'':22} {'ens acc':>8} {'ens NLL':>8} {'mem acc':>8} {'mem NLL':>8} {'disagree':>9}")
    for label, q in qualities.items():
        print(f"  {label:22} {q['acc']:8.4f} {q['nll']:8.4f} {q['member_acc']:8.4f} "
              f"{q['member_nll']:8.4f} {q['disagreement']:9.4f}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--members", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--models", default="mlp,cnn,lstm")
    parser.add_argument("--n", type=int, default=8000)
    parser.add_argument("--skip_sequential", action="store_true")
    parser.add_argument("--xla_models", default="mlp",
                        help="TensorFlow: also time these with jit_compile=True (XLA on a CPU "
                             "is slow for conv nets)")
    args = parser.parse_args()
    (x, y), test = load_mnist_split()
    print(device_line())
    for name in args.models.split(","):
        run(name, args, (x[:args.n], y[:args.n]), test)


if __name__ == "__main__":
    main()
