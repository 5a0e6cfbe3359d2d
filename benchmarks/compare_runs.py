"""Compares one contender's runs (the recipe's by default) in two or more
`bench_quality.py` logs, task by task: mean test metric, mean epochs run and
mean epochs after the best one (what a stopping rule costs), the mean best
validation loss (the logs' `val_loss=`, where printed), on how many seeds
that loss is lower than the first log's, and the total seconds.

    python benchmarks/compare_runs.py results/a.log results/b.log
    python benchmarks/compare_runs.py --contender tuned_adam results/a.log

Each log is one variant (e.g. `--recipe_kwargs '{"stop_ratio": 0.01}'`);
only the contender's lines are read. A log given as `path:contender`
reads that contender there instead, and `a.log+b.log` joins two logs' runs
into one variant (e.g. seeds 0-4 and 5-9).
"""

import argparse
import re

import numpy as np

from bench_quality import rows_from_logs


def val_loss(row):
    found = re.search(r"val_loss=([0-9.eE+-]+|nan|inf)", row["extra"])
    return float(found.group(1)) if found else float("nan")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("logs", nargs="+")
    parser.add_argument("--contender", default="recipe")
    args = parser.parse_args()
    variants = {}
    for spec in args.logs:
        path, _, contender = spec.partition(":")
        contender = contender or args.contender
        variants[spec] = [r for r in rows_from_logs(path.split("+"))
                          if r["contender"] == contender]
    tasks = sorted({r["task"] for rows in variants.values() for r in rows})
    first = next(iter(variants.values()))
    print(f"{'task':22} " + " ".join(f"{'metric':>8} {'epochs':>7} {'after':>6} {'val_loss':>9} "
                                      f"{'lower':>6}" for _ in variants)
          + "   (one column group per log; lower: seeds whose val_loss is below the first log's)")
    for task in tasks:
        cells = []
        reference = {r["seed"]: val_loss(r) for r in first if r["task"] == task}
        for rows in variants.values():
            runs = [r for r in rows if r["task"] == task]
            after = [int(m.group(1)) for r in runs
                     for m in [re.search(r"after=(\d+)", r["extra"])] if m]
            paired = [(val_loss(r), reference[r["seed"]]) for r in runs if r["seed"] in reference]
            lower = sum(v < ref for v, ref in paired)
            cells.append(f"{np.mean([r['metric'] for r in runs]):8.4f} "
                         f"{np.mean([r['epochs'] for r in runs]):7.1f} "
                         f"{np.mean(after) if after else float('nan'):6.1f} "
                         f"{np.mean([val_loss(r) for r in runs]):9.4g} "
                         f"{f'{lower}/{len(paired)}':>6}")
        print(f"{task:22} " + " ".join(cells))
    for path, rows in variants.items():
        print(f"{path}: {len(rows)} runs, {sum(r['epochs'] for r in rows)} epochs, "
              f"{sum(r['seconds'] for r in rows):.0f} s")


if __name__ == "__main__":
    main()
