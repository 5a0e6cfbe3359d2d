"""Issue 25, item 4: the evidence tip 1's log1p rule reads, per column, on
real tables and signals (no training). A non-negative column gets log1p when
log10(1 + x) spans LOG_DECADES (2) decades, its spread is at least
LOG_SPREAD (0.25), and its largest value is at least LOG_TAIL (1) decade
above its typical non-zero value (the mean of log10(1 + x) over x > 0). Per
column here, also where the statistics would be pooled (pixels), to show
what the tail test decides on them; `preprocessing.log1p_decision` is the
rule itself.

    python benchmarks/probe_log1p.py
"""

import gzip
import os
import sys

import numpy as np
import pandas as pd
from sklearn import datasets

sys.path.insert(0, os.path.dirname(__file__))

from common import DATA  # noqa: E402
from common import need  # noqa: E402
from keras_recipes import preprocessing  # noqa: E402
from keras_recipes.data import stats as data_stats  # noqa: E402
from keras_recipes.datasets import load_digits  # noqa: E402


def per_column(x):
    """FeatureStats per column (never pooled), as the rule reads a table."""
    moments = data_stats._Moments()
    moments.update(np.asarray(x, "float64"), "feature")
    saved, data_stats.HOMOGENEOUS_SHARE = data_stats.HOMOGENEOUS_SHARE, 2.0  # no pooling here
    try:
        return moments.result(len(x), "feature")
    finally:
        data_stats.HOMOGENEOUS_SHARE = saved


def report(name, x, columns=None, show=8):
    stats = per_column(x)
    chosen, left = preprocessing.log1p_decision(stats)
    top = np.log10(1 + np.maximum(stats.max, 0))
    decades = top - np.log10(1 + np.maximum(stats.min, 0))
    tail = top - stats.log_positive_mean
    spans = int(((stats.min >= 0) & (decades >= preprocessing.LOG_DECADES)).sum())
    by_tail = sum("zero-inflated" in why for _, why in left)
    print(f"\n{name}: {x.shape[1]} columns, {spans} span >= {preprocessing.LOG_DECADES:g} decades; "
          f"log1p on {len(chosen)}, left out {len(left)} ({by_tail} by the tail test, "
          f"{len(left) - by_tail} by the spread)")
    # The left-out columns with the widest spread first: the tail test's cases.
    order = sorted((i for i, _ in left), key=lambda i: -stats.log_std[i])
    for i in (chosen + order)[:show]:
        label = columns[i] if columns is not None else f"feature {i}"
        print(f"  {label:<20} min {stats.min[i]:>9.4g} max {stats.max[i]:>9.4g} decades "
              f"{decades[i]:4.2f} spread {stats.log_std[i]:4.2f} tail {tail[i]:5.2f} -> "
              f"{'log1p' if i in chosen else 'left out'}")


def main():
    frame = pd.read_csv(need(DATA / "tabular" / "california_housing.csv")).dropna()
    frame = frame.drop(columns=["ocean_proximity", "median_house_value"])
    report("california", frame.to_numpy("float64"), list(frame.columns))
    grunfeld = pd.read_csv(need(DATA / "tabular" / "grunfeld.csv")).select_dtypes("number")
    grunfeld = grunfeld.drop(columns=[c for c in ("invest",) if c in grunfeld])
    report("grunfeld (inputs)", grunfeld.to_numpy("float64"), list(grunfeld.columns))
    with gzip.open(need(DATA / "mnist_test" / "t10k-images-idx3-ubyte.gz")) as f:
        pixels = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 784)
    report("mnist pixels, per column", pixels.astype("float64"), show=5)
    report("digits pixels, per column", load_digits("train")[0].astype("float64"), show=5)
    for name in ("load_wine", "load_breast_cancer", "load_diabetes", "load_iris"):
        bunch = getattr(datasets, name)()
        report(name[5:], bunch.data, list(bunch.feature_names), show=5)


if __name__ == "__main__":
    main()
