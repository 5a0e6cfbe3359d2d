"""Issue 36, item 1: fused ensembles of any member count train as one
member does. Test accuracy of fit_ensemble's averaging ensemble at 10, 16
and 32 members on the embedded UCI digits and on MNIST (the test set's fixed
8k/2k split, pixels flattened), several seeds, every run's status printed.

Before the fix the divergence guard read the members' summed loss against
one member's first loss: 16 members on digits ended at 0.075 (diverged).

    python benchmarks/bench_ensemble_size.py [--seeds 0,1,2] [--members 10,16,32] [--tasks digits,mnist]
"""

import argparse
import time

import keras
import numpy as np

from common import device_line, load_mnist_split
from keras_recipes import fit_ensemble
from keras_recipes.datasets import load_digits


def mlp(inputs):
    def build():
        return keras.Sequential([keras.Input((inputs,)), keras.layers.Dense(64, activation="relu"),
                                 keras.layers.Dense(10)])
    return build


def tasks(names):
    if "digits" in names:
        (x, y), (xt, yt) = (load_digits("train"), load_digits("test"))
        yield "digits", mlp(64), (x, y), (xt, yt), 8
    if "mnist" in names:
        (x, y), (xt, yt) = load_mnist_split()
        yield "mnist", mlp(784), (x.reshape(len(x), -1), y), (xt.reshape(len(xt), -1), yt), 5


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--members", default="10,16,32")
    parser.add_argument("--tasks", default="digits,mnist")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    sizes = [int(m) for m in args.members.split(",")]
    print(device_line())
    print(f"{'task':8} {'members':>7} {'seed':>4} {'status':>9} {'recoveries':>10} {'test_acc':>8} {'seconds':>7}")
    table = {}
    for name, build, train, (xt, yt), epochs in tasks(args.tasks.split(",")):
        for members in sizes:
            for seed in seeds:
                start = time.perf_counter()
                result = fit_ensemble(build, train, members=members, epochs=epochs, seed=seed,
                                      verbose=0)
                seconds = time.perf_counter() - start
                fit = result.fit_result
                recoveries = sum("restored the last good epoch" in e for e in fit.events)
                acc = float((result.model.predict(xt, verbose=0).argmax(-1) == yt).mean())
                table.setdefault((name, members), []).append(acc)
                print(f"{name:8} {members:7d} {seed:4d} {fit.status:>9} {recoveries:10d} "
                      f"{acc:8.4f} {seconds:7.1f}", flush=True)
    print("\nmean test accuracy over seeds, and the gap to 10 members (points)")
    for (name, members), accs in table.items():
        base = np.mean(table.get((name, 10), accs))
        print(f"{name:8} {members:7d} {np.mean(accs):.4f} {100 * (np.mean(accs) - base):+.2f}")


if __name__ == "__main__":
    main()
