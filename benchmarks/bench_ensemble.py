"""Cost and gain of fit_ensemble(members=10), in one run.

    python benchmarks/bench_ensemble.py [--members 10] [--epochs 10]

MNIST test set, fixed 8k/2k split, the mlp preset, a fixed number of epochs
(stop_ratio=None) so that every run does the same work. Cost: wall time of
fit_ensemble (fused path) against one fit_with_tips run of the same member,
and of the sequential path (forced by clipping, which is per member).
Gain: the ensemble's test accuracy and negative log-likelihood against the
members' mean and best, and the ensemble of the first k members, k = 1..N.
"""

import argparse

import numpy as np

from common import Timer, device_line, load_mnist_split
from keras_recipes import fit_ensemble, fit_with_tips
from keras_recipes.models import preset


def build():
    return preset("mlp", (784,), 10)


def softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def nll(p, y):
    return float(-np.log(np.clip(p[np.arange(len(y)), y], 1e-12, 1)).mean())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--members", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--skip_sequential", action="store_true")
    args = parser.parse_args()
    (x, y), (xt, yt) = load_mnist_split()
    x, xt = x.reshape(len(x), -1).astype("float32"), xt.reshape(len(xt), -1).astype("float32")
    common = dict(epochs=args.epochs, stop_ratio=None, verbose=0, jit_compile=False)
    print(device_line())
    with Timer() as t1:
        fit_with_tips(build(), (x, y), seed=0, **common)
    with Timer() as tf_:
        fused = fit_ensemble(build, (x, y), members=args.members, seed=0, **common)
    print(f"\n## cost ({args.epochs} epochs each, jit_compile=False)")
    print(f"one fit_with_tips member        {t1.seconds:7.1f} s")
    print(f"fit_ensemble fused, {args.members} members  {tf_.seconds:7.1f} s  ratio {tf_.seconds / t1.seconds:.2f}x")
    if not args.skip_sequential:
        with Timer() as ts:
            fit_ensemble(build, (x, y), members=args.members, seed=0, clip_norm=1e6, **common)
        print(f"fit_ensemble sequential         {ts.seconds:7.1f} s  ratio {ts.seconds / t1.seconds:.2f}x "
              "(clip_norm=1e6 forces it)")

    probs = [softmax(m.predict(xt, verbose=0)) for m in fused.members]
    accs = [float((p.argmax(-1) == yt).mean()) for p in probs]
    nlls = [nll(p, yt) for p in probs]
    ens = np.mean(probs, axis=0)
    print(f"\n## gain on the 2k test digits ({fused.path} path)")
    print(f"{'':18} {'accuracy':>9} {'NLL':>8}")
    print(f"{'members mean':18} {np.mean(accs):9.4f} {np.mean(nlls):8.4f}")
    print(f"{'best member':18} {max(accs):9.4f} {min(nlls):8.4f}")
    print(f"{'ensemble':18} {float((ens.argmax(-1) == yt).mean()):9.4f} {nll(ens, yt):8.4f}")
    print("\nfirst k members:  k  accuracy     NLL")
    for k in range(1, len(probs) + 1):
        p = np.mean(probs[:k], axis=0)
        print(f"{'':17} {k:2d}  {float((p.argmax(-1) == yt).mean()):8.4f} {nll(p, yt):8.4f}")


if __name__ == "__main__":
    main()
