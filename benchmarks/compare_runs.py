"""Compares the recipe's runs in two or more `bench_quality.py` logs, task by
task: mean test metric, mean epochs run and mean epochs after the best one
(what a stopping rule costs), and the total seconds.

    python benchmarks/compare_runs.py results/a.log results/b.log

Each log is one variant (e.g. `--recipe_kwargs '{"stop_ratio": 0.01}'`);
only its `recipe` lines are read.
"""

import argparse
import re

import numpy as np

from bench_quality import rows_from_logs


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("logs", nargs="+")
    args = parser.parse_args()
    variants = {path: [r for r in rows_from_logs([path]) if r["contender"] == "recipe"]
                for path in args.logs}
    tasks = sorted({r["task"] for rows in variants.values() for r in rows})
    print(f"{'task':14} " + " ".join(f"{'metric':>8} {'epochs':>7} {'after':>6}"
                                      for _ in variants) + "   (one column group per log)")
    for task in tasks:
        cells = []
        for rows in variants.values():
            runs = [r for r in rows if r["task"] == task]
            after = [int(m.group(1)) for r in runs
                     for m in [re.search(r"after=(\d+)", r["extra"])] if m]
            cells.append(f"{np.mean([r['metric'] for r in runs]):8.4f} "
                         f"{np.mean([r['epochs'] for r in runs]):7.1f} "
                         f"{np.mean(after) if after else float('nan'):6.1f}")
        print(f"{task:14} " + " ".join(cells))
    for path, rows in variants.items():
        print(f"{path}: {len(rows)} runs, {sum(r['epochs'] for r in rows)} epochs, "
              f"{sum(r['seconds'] for r in rows):.0f} s")


if __name__ == "__main__":
    main()
