"""Issue 36, item 5: choose the calibration's target ratio on validation
results only. For each target in --targets, fit_with_tips(learning_rate=
"auto") is run on the quality benchmark's tasks and seeds with the
calibration aiming the first 8 steps' ||update|| / ||weights|| at that
target (and the per-epoch monitor's advice aiming at it, as in a real run).

Every run prints every column: the calibrated rate, the status, the epochs,
the best validation loss on the recipe's own validation split (which the
recipe also restores), and the test metric. The choice reads the validation
column only: per task, each target's mean best validation loss over the
seeds, divided by the best target's; the target with the lowest geometric
mean of that ratio over the tasks is chosen. The test column is printed
so the choice can be checked afterwards, never to make it.

    python benchmarks/bench_target_sweep.py [--tasks digits,wine] [--seeds 0,1,2]
        [--targets 0.005,0.01,0.02,0.04,0.08]
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before TensorFlow is imported

import argparse
import functools
import math
import warnings

import numpy as np

import bench_quality
from common import Timer, device_line
from keras_recipes import calibration
from keras_recipes import fit_with_tips
from keras_recipes.callbacks import UpdateRatioWarning

TASKS = "digits,wine,breast_cancer,grunfeld,acsf1,california,digit_rows,digit_pixels"
TARGETS = "0.005,0.01,0.02,0.04,0.08"


@functools.lru_cache(maxsize=None)
def original_calibrate():
    return calibration.calibrate_learning_rate


def aim_at(target):
    """Every reader of the target (the calibration and the monitor's advice)
    aims at `target` until the next call."""
    calibration.TARGET = target
    calibration.calibrate_learning_rate = functools.partial(original_calibrate(), target=target)


def run(task, seed, target):
    (x, y), (xt, yt), kind, _, build = task
    aim_at(target)
    with Timer() as t:
        result = fit_with_tips(build(seed), (x, y), seed=seed, verbose=0)
    val = np.asarray(result.history.get("val_loss", [np.inf]), "float64")
    found = result.plan.parts.get("calibration")
    return dict(rate=found.rate if found else float("nan"),
                probe=dict(found.measured).get(found.rate, float("nan")) if found else float("nan"),
                val_loss=float(np.nanmin(val)) if np.isfinite(val).any() else float("inf"),
                test=bench_quality.score(result.model, xt, yt, kind), status=result.status,
                epochs=len(result.history["loss"]), seconds=t.seconds)


def choose(rows, tasks, targets):
    """The validation-only choice: per task the mean best val_loss of each
    target over seeds, relative to that task's best target; the geometric
    mean of those ratios over tasks. Returns {target: geometric mean}."""
    score = {}
    for target in targets:
        ratios = []
        for name in tasks:
            means = {t: np.mean([r["val_loss"] for r in rows if r["task"] == name
                                 and r["target"] == t]) for t in targets}
            best = min(means.values())
            ratios.append(means[target] / best if math.isfinite(means[target]) else math.inf)
        score[target] = float(np.exp(np.mean(np.log(ratios))))
    return score


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", default=TASKS)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--targets", default=TARGETS)
    args = parser.parse_args()
    tasks = args.tasks.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    targets = [float(t) for t in args.targets.split(",")]
    warnings.filterwarnings("ignore", category=UpdateRatioWarning)
    print(device_line())
    print(f"targets={targets} seeds={seeds} (choice on val_loss only; test shown, not used)")
    print(f"{'task':14} {'target':>7} {'seed':>4} {'rate':>9} {'probe':>8} {'val_loss':>10} "
          f"{'test':>8} {'epochs':>6} {'seconds':>7}  status")
    rows = []
    for name in tasks:
        task = bench_quality.TASKS[name]()
        for target in targets:
            for seed in seeds:
                row = dict(run(task, seed, target), task=name, target=target, seed=seed)
                rows.append(row)
                print(f"{name:14} {target:7g} {seed:4d} {row['rate']:9.3g} {row['probe']:8.3g} "
                      f"{row['val_loss']:10.4g} {row['test']:8.4f} {row['epochs']:6d} "
                      f"{row['seconds']:7.1f}  {row['status']}", flush=True)
    print("\nper task, mean over seeds: val_loss (its ratio to the task's best target) | test")
    print(f"{'task':14} " + " ".join(f"{t:>24g}" for t in targets))
    for name in tasks:
        cells = []
        for target in targets:
            mine = [r for r in rows if r["task"] == name and r["target"] == target]
            val = np.mean([r["val_loss"] for r in mine])
            best = min(np.mean([r["val_loss"] for r in rows if r["task"] == name
                                and r["target"] == t]) for t in targets)
            test = np.mean([r["test"] for r in mine])
            cells.append(f"{val:.4g} ({val / best:.2f}) | {test:.4f}")
        print(f"{name:14} " + " ".join(f"{c:>24}" for c in cells))
    score = choose(rows, tasks, targets)
    print("\ngeometric mean over tasks of val_loss / the task's best: "
          + ", ".join(f"{t:g}: {s:.3f}" for t, s in score.items()))
    print(f"chosen on validation: target {min(score, key=score.get):g}")


if __name__ == "__main__":
    main()
