"""Issue 36, item 5: choose the calibration's target ratio on validation
results only. For each target in --targets, fit_with_tips(learning_rate=
"auto") is run on the quality benchmark's tasks and seeds with the
calibration aiming the first 8 steps' ||update|| / ||weights|| at that
target (and the per-epoch monitor's advice aiming at it, as in a real run).

Every run prints every column: the calibrated rate, the status, the epochs,
the best validation loss on the recipe's own validation split (which the
recipe also restores), and the test metric. The choice reads the validation
column only: per task, each target's mean best validation loss over the
seeds, divided by the best target's; the geometric mean of that ratio over
the tasks scores a target. Seeds disagree, so each seed's score is also
computed and their standard error taken: targets within one standard error
of the best score are tied, and among tied targets the lowest is chosen
(the lower rate: when the evidence is ambiguous, the safe choice). The test
column is printed so the choice can be checked afterwards, never to make it.

--grid_top K sets the search's highest rate for Adam to 1e-3 * 2**K. The
first sweep ran with K = 3 (8e-3, Adam's top before this sweep): the summary
counts the runs whose rate sits at 8e-3, where with K = 3 a higher target
could not raise the rate further. The recipe's top is now K = 6.

    python benchmarks/bench_target_sweep.py [--tasks digits,wine] [--seeds 0,1,2]
        [--targets 0.005,0.01,0.02,0.04,0.08]
    python benchmarks/bench_target_sweep.py --from_log results/target_sweep_cpu.log
    python benchmarks/bench_target_sweep.py --arms 128=a.log+b.log,32=c.log [--keep 128]

--input_noise R puts `keras.layers.GaussianNoise(R)` in front of each task's
model and passes `preprocess=True` (tip 1 leaves inputs raw in front of that
layer by default, since its stddev is on the user's scale), so the noise is R
standard deviations of the standardized inputs: tip 10's "mix with noise" as
an arm (issue 36). Before each task it prints the inputs row with the noise
and without it (`preprocess="auto"`), so an arm that changed the preprocessing
too is seen.

--arms compares other settings the same way (issue 36: tip 2's batch size), from
logs of runs at one target (--targets, default its first): each arm is a label
and the logs of its runs. Scored like the targets; among the arms tied with the
best, --keep (the recipe's current setting) is kept if it is one of them, else
the best.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before TensorFlow is imported

import argparse
import functools
import json
import math
import warnings

import keras
import numpy as np

import bench_quality
from common import Timer, device_line
from keras_recipes import calibration
from keras_recipes import fit_with_tips
from keras_recipes import plan
from keras_recipes.callbacks import UpdateRatioWarning
from keras_recipes.decide.training import GRIDS
from keras_recipes.decide.training import START_RATES

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


def run(task, seed, target, kwargs=None):
    (x, y), (xt, yt), kind, _, build = task
    aim_at(target)
    with Timer() as t:
        result = fit_with_tips(build(seed), (x, y), seed=seed, verbose=0, **(kwargs or {}))
    val = np.asarray(result.history.get("val_loss", [np.inf]), "float64")
    found = result.plan.decisions.calibration
    return dict(rate=found.rate if found else float("nan"),
                probe=dict(found.measured).get(found.rate, float("nan")) if found else float("nan"),
                val_loss=float(np.nanmin(val)) if np.isfinite(val).any() else float("inf"),
                test=bench_quality.score(result.model, xt, yt, kind), status=result.status,
                epochs=len(result.history["loss"]), seconds=t.seconds)


def scores(rows, tasks, targets, seed=None):
    """Per target: the geometric mean over tasks of its mean best val_loss
    (over the seeds, or of one `seed`) divided by the task's best target's
    mean over the seeds."""
    def mean(name, target, only=None):
        return np.mean([r["val_loss"] for r in rows if r["task"] == name and r["target"] == target
                        and (only is None or r["seed"] == only)])

    out = {}
    for target in targets:
        ratios = [mean(name, target, seed) / min(mean(name, t) for t in targets) for name in tasks]
        out[target] = (float(np.exp(np.mean(np.log(ratios)))) if all(map(math.isfinite, ratios))
                       else math.inf)
    return out


def choose(rows, tasks, targets):
    """The validation-only choice: the lowest target whose score is within
    one standard error (over seeds) of the best score. Returns (chosen,
    scores, standard errors)."""
    score = scores(rows, tasks, targets)
    seeds = sorted({r["seed"] for r in rows})
    per_seed = [scores(rows, tasks, targets, seed) for seed in seeds]
    error = {t: float(np.std([s[t] for s in per_seed], ddof=1) / math.sqrt(len(seeds)))
             if len(seeds) > 1 else 0.0 for t in targets}
    best = min(score, key=score.get)
    tied = [t for t in targets if score[t] <= score[best] + error[best]]
    return min(tied), score, error


def summary(rows, tasks, targets, keep=None):
    top = START_RATES["adam"] * calibration.FACTOR ** 3  # Adam's top before this sweep
    print("\nper task, mean over seeds: val_loss (its ratio to the task's best target) | test "
          f"| runs at {top:g} (the top with --grid_top 3)")
    print(f"{'task':14} " + " ".join(f"{t:>28g}" for t in targets))
    for name in tasks:
        cells = []
        for target in targets:
            mine = [r for r in rows if r["task"] == name and r["target"] == target]
            val = np.mean([r["val_loss"] for r in mine])
            best = min(np.mean([r["val_loss"] for r in rows if r["task"] == name
                                and r["target"] == t]) for t in targets)
            test = np.mean([r["test"] for r in mine])
            at_top = sum(math.isclose(r["rate"], top, rel_tol=1e-3) for r in mine)
            cells.append(f"{val:.4g} ({val / best:.2f}) | {test:.4f} | {at_top}")
        print(f"{name:14} " + " ".join(f"{c:>28}" for c in cells))
    chosen, score, error = choose(rows, tasks, targets)
    if keep is not None:  # arms: the current setting stays unless the best beats it
        best = min(score, key=score.get)
        chosen = keep if score[keep] <= score[best] + error[best] else best
    print("\ngeometric mean over tasks of val_loss / the task's best (standard error over "
          "seeds): " + ", ".join(f"{t:g}: {score[t]:.3f} ({error[t]:.3f})" for t in targets))
    best = min(score, key=score.get)
    print(f"best score: target {best:g}; tied within its standard error: "
          + ", ".join(f"{t:g}" for t in targets if score[t] <= score[best] + error[best]))
    print(f"chosen on validation ({'the lowest tied target' if keep is None else f'{keep:g} if tied, else the best'}): {chosen:g}")


def read_log(path):
    """The runs a previous invocation printed."""
    rows = []
    for line in open(path):
        parts = line.split()
        # The status is the last column and may be two words ("not learning").
        if len(parts) in (10, 11) and parts[0] in bench_quality.TASKS:
            try:
                rows.append(dict(task=parts[0], target=float(parts[1]), seed=int(parts[2]),
                                 rate=float(parts[3]), val_loss=float(parts[5]),
                                 test=float(parts[6]), status=" ".join(parts[9:])))
            except ValueError:
                continue
    return rows


def with_noise(task, rate):
    """The task with `GaussianNoise(rate)` in front of its model."""
    build = task[4]

    def noisy(seed):
        inner = build(seed)  # sets the seed, as the plain arm does
        return keras.Sequential([keras.Input(inner.input_shape[1:]),
                                 keras.layers.GaussianNoise(rate, seed=seed), inner])

    return task[:4] + (noisy,)


def inputs_row(task, **options):
    """Tip 1's inputs row of the recipe's plan for the task's data."""
    (x, y), build = task[0], task[4]
    rows = [t for t in plan(build(0), (x, y), seed=0, learning_rate=0.01, **options).tips
            if t.number == 1 and t.name == "inputs"]
    return f"{rows[0].setting} ({rows[0].reason})" if rows else "-"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", default=TASKS)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--targets", default=TARGETS)
    parser.add_argument("--grid_top", type=int, default=None,
                        help="the search's highest k (rates start * 2**k); default the recipe's")
    parser.add_argument("--recipe_kwargs", default="{}",
                        help="more fit_with_tips arguments, as JSON (e.g. a batch_size)")
    parser.add_argument("--rollback", action="store_true",
                        help="the recipe's plateau rule returns to the best epoch's weights "
                             "at each halving (keras_recipes.decide.training.ROLLBACK)")
    parser.add_argument("--input_noise", type=float, default=0.0,
                        help="GaussianNoise(R) in front of the model, with preprocess=True")
    parser.add_argument("--arms", default="",
                        help="label=log+log,label=log: compare settings from logs at one target")
    parser.add_argument("--keep", type=float, default=None,
                        help="with --arms: the arm kept when it ties with the best")
    parser.add_argument("--from_log", default="",
                        help="summarize earlier runs' logs (comma-separated; a later log's run "
                             "of the same task, target and seed wins)")
    args = parser.parse_args()
    if args.rollback:
        from keras_recipes.decide import training as decide_training
        decide_training.ROLLBACK = True
    tasks = args.tasks.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    targets = [float(t) for t in args.targets.split(",")]
    if args.grid_top is not None:
        GRIDS["adam"] = (GRIDS["adam"][0], args.grid_top)
    if args.arms:
        at = targets[0]
        rows = []
        for arm in args.arms.split(","):
            label, _, paths = arm.partition("=")
            runs = {}
            for path in paths.split("+"):
                runs.update({(r["task"], r["seed"]): dict(r, target=float(label))
                             for r in read_log(path) if math.isclose(r["target"], at)})
            rows += list(runs.values())
            print(f"arm {label}: {len(runs)} runs at target {at:g} from {paths}")
        arms = [float(arm.partition("=")[0]) for arm in args.arms.split(",")]
        print("(the columns below are the arms, where the targets' summary has targets)")
        tasks = [t for t in tasks if all(any(r["task"] == t and r["target"] == a for r in rows)
                                         for a in arms)]
        summary(rows, tasks, arms, keep=args.keep)
        return
    if args.from_log:
        runs = {}
        for path in args.from_log.split(","):
            runs.update({(r["task"], r["target"], r["seed"]): r for r in read_log(path)})
        rows = list(runs.values())
        print(f"runs from {args.from_log}: {len(rows)}")
        summary(rows, [t for t in tasks if any(r["task"] == t for r in rows)],
                sorted({r["target"] for r in rows}))
        return
    warnings.filterwarnings("ignore", category=UpdateRatioWarning)
    print(device_line())
    kwargs = json.loads(args.recipe_kwargs)
    if args.input_noise:
        kwargs = dict(kwargs, preprocess=True)
    print(f"targets={targets} seeds={seeds} Adam's grid top k={GRIDS['adam'][1]} recipe_kwargs="
          f"{kwargs} input_noise={args.input_noise:g} rollback={args.rollback} "
          "(choice on val_loss only; test shown, not used)")
    print(f"{'task':14} {'target':>7} {'seed':>4} {'rate':>9} {'probe':>8} {'val_loss':>10} "
          f"{'test':>8} {'epochs':>6} {'seconds':>7}  status")
    rows = []
    for name in tasks:
        task = bench_quality.TASKS[name]()[:5]
        if args.input_noise:
            print(f"# {name} inputs, plain: {inputs_row(task)}")
            task = with_noise(task, args.input_noise)
            print(f"# {name} inputs, noise arm: {inputs_row(task, preprocess=True)}", flush=True)
        for target in targets:
            for seed in seeds:
                row = dict(run(task, seed, target, kwargs), task=name, target=target, seed=seed)
                rows.append(row)
                print(f"{name:14} {target:7g} {seed:4d} {row['rate']:9.3g} {row['probe']:8.3g} "
                      f"{row['val_loss']:10.4g} {row['test']:8.4f} {row['epochs']:6d} "
                      f"{row['seconds']:7.1f}  {row['status']}", flush=True)
    summary(rows, tasks, targets)


if __name__ == "__main__":
    main()
