"""Issue 36: what tip 1's log1p does end to end, judged on validation.

BUILD_NOTES (issue 25, item 4) says no run isolated log1p's effect: the rule
(`preprocessing.log1p_decision`) was checked on its evidence only. Here the
quality benchmark's tasks whose columns get log1p (grunfeld, california)
train with fit_with_tips as is, and with the rule told to choose no column
(`--arms`), seeds 0-6. Every run prints the best validation loss on the
recipe's own split (which would make a choice) and the test R^2 (printed for
the record, never to choose). The "log1p" arm keeps the rule's columns
whatever the recipe's linear check of them says; the check's evidence (its
two validation R^2) is printed on that arm's line.

    python benchmarks/bench_log1p_effect.py [--tasks grunfeld,california] [--seeds 0,...,6]
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before TensorFlow is imported

import argparse
import warnings

import numpy as np

import bench_quality
from common import Timer, device_line
from keras_recipes import fit_with_tips
from keras_recipes import preprocessing

RULE = preprocessing.log1p_decision
CHECK = preprocessing.log1p_linear_check


def kept_check(*arrays):
    """The recipe's linear check, its evidence kept, its verdict ignored."""
    check = CHECK(*arrays)
    return lambda columns: (True, check(columns)[1])


def no_log1p(stats):
    """The rule, with every column it would choose left out instead."""
    chosen, left = RULE(stats)
    return [], left + [(int(i), "left out by this benchmark's arm") for i in chosen]


def run(task, seed, arm):
    (x, y), (xt, yt), kind, _, build = task
    preprocessing.log1p_decision = RULE if arm == "log1p" else no_log1p
    preprocessing.log1p_linear_check = kept_check
    try:
        with Timer() as t, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = fit_with_tips(build(seed), (x, y), seed=seed, verbose=0)
    finally:
        preprocessing.log1p_decision, preprocessing.log1p_linear_check = RULE, CHECK
    inputs = next(tip for tip in result.tips if tip.name == "inputs").setting
    val = np.asarray(result.history["val_loss"], "float64")
    return dict(val_loss=float(np.nanmin(val)), test=bench_quality.score(result.model, xt, yt, kind),
                status=result.status, epochs=len(val), seconds=t.seconds, inputs=inputs)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", default="grunfeld,california")
    parser.add_argument("--seeds", default="0,1,2,3,4,5,6")
    parser.add_argument("--arms", default="log1p,none")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    arms = args.arms.split(",")
    print(device_line())
    print(f"{'task':12} {'arm':6} {'seed':>4} {'val_loss':>9} {'test R^2':>9} {'epochs':>6} "
          f"{'s':>5}  status, inputs row")
    results = {}
    for name in args.tasks.split(","):
        task = getattr(bench_quality, name)()
        for seed in seeds:
            for arm in arms:
                r = results[name, arm, seed] = run(task, seed, arm)
                print(f"{name:12} {arm:6} {seed:4d} {r['val_loss']:9.4f} {r['test']:9.4f} "
                      f"{r['epochs']:6d} {r['seconds']:5.1f}  {r['status']}, {r['inputs']}",
                      flush=True)
    print("\nper task: mean best val_loss (the choice's evidence), val_loss ratio none/log1p "
          "paired by seed (geometric mean), mean test R^2 (the record)")
    for name in args.tasks.split(","):
        val = {a: np.array([results[name, a, s]["val_loss"] for s in seeds]) for a in arms}
        test = {a: np.mean([results[name, a, s]["test"] for s in seeds]) for a in arms}
        ratio = np.exp(np.mean(np.log(val["none"] / val["log1p"]))) if len(arms) == 2 else 1.0
        wins = int(np.sum(val["none"] < val["log1p"])) if len(arms) == 2 else 0
        print(f"{name:12} " + " ".join(f"{a}: val {val[a].mean():.4f} test {test[a]:.4f}"
                                       for a in arms)
              + f"  none/log1p val ratio {ratio:.3f}, none lower on {wins}/{len(seeds)} seeds")


if __name__ == "__main__":
    main()
