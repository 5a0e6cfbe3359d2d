"""The statistics of the training split, in one streaming pass: per input
feature (padding steps left out), per output label, NaN/Inf refused.
"""

import math

import keras
import numpy as np

from keras_recipes.data.checks import ragged_values
from keras_recipes.data.checks import sparse_values
from keras_recipes.data.core import DISTINCT_CAP
from keras_recipes.data.core import FeatureStats
from keras_recipes.data.core import LabelStats
from keras_recipes.data.nests import flat
from keras_recipes.data.nests import is_ragged
from keras_recipes.data.nests import is_sparse
from keras_recipes.data.nests import rows


class _LabelMoments:
    """Streaming label statistics: integrality, 0/1 rows, distinct values,
    per-column mean/std. The kind is read from the values, never the dtype."""

    def __init__(self):
        self.n = 0
        self.integral = self.zero_one = self.rows_one = True
        self.values = {}
        self.s = self.ss = None
        self.min, self.max = math.inf, -math.inf
        self.shape, self.dtype = (), ""

    def update(self, y):
        y = np.asarray(y)
        self.shape, self.dtype = tuple(y.shape[1:]), str(y.dtype)
        yf = y.astype("float64")
        if not np.isfinite(yf).all():
            raise ValueError(f"holds {int((~np.isfinite(yf)).sum())} NaN/Inf labels")
        if yf.size == 0:
            return
        self.integral &= bool(np.all(yf == np.round(yf)))
        self.zero_one &= bool(np.isin(yf, (0.0, 1.0)).all())
        if yf.ndim >= 2 and yf.shape[-1] > 1:
            self.rows_one &= bool(np.all(yf.sum(-1) == 1.0))
        else:
            self.rows_one = False
        if self.integral and len(self.values) <= DISTINCT_CAP:
            if self.rows_one and self.zero_one:
                keys, counts = np.unique(yf.reshape(-1, yf.shape[-1]).argmax(-1), return_counts=True)
                self.onehot_counts = getattr(self, "onehot_counts", {})
                for k, c in zip(keys, counts):
                    self.onehot_counts[int(k)] = self.onehot_counts.get(int(k), 0) + int(c)
            keys, counts = np.unique(yf, return_counts=True)
            for k, c in zip(keys, counts):
                self.values[float(k)] = self.values.get(float(k), 0) + int(c)
        cols = yf.reshape(len(yf), -1) if yf.ndim > 1 else yf.reshape(-1, 1)
        s, ss = cols.sum(0), (cols * cols).sum(0)
        self.s = s if self.s is None else self.s + s
        self.ss = ss if self.ss is None else self.ss + ss
        self.min, self.max = min(self.min, float(yf.min())), max(self.max, float(yf.max()))
        self.n += len(yf)

    def result(self):
        if self.n == 0:
            return LabelStats("continuous", 0.0, 0.0, self.shape, {}, 0, dtype=self.dtype)
        distinct = len(self.values) if self.integral else DISTINCT_CAP + 1
        if self.zero_one and self.rows_one:
            kind, counts = "onehot", dict(sorted(getattr(self, "onehot_counts", {}).items()))
        elif self.zero_one and self.shape and self.shape[-1] > 1:
            kind, counts = "multilabel", {}
        elif self.integral and distinct <= DISTINCT_CAP:
            kind, counts = "integer", {int(k): c for k, c in sorted(self.values.items())}
        else:
            kind, counts = "continuous", {}
        mean = self.s / self.n
        std = np.sqrt(np.maximum(self.ss / self.n - mean**2, 0.0))
        return LabelStats(kind, self.min, self.max, self.shape, counts, distinct, mean, std,
                          self.dtype)


def label_stats(y):
    moments = _LabelMoments()
    for start in range(0, len(y), 65536):
        moments.update(y[start : start + 65536])
    return moments.result()


class _Moments:
    """Running sums for mean/std/min/max of x and of log10(1 + x)."""

    def __init__(self):
        self.n = 0
        self.sums = None

    def update(self, x, axis):
        # In blocks of about 2**20 values: float64 temporaries of a few MB,
        # reused, instead of seven the size of the whole array (2700 clips of
        # 8000 samples: 1.2 GB of fresh pages, 5 s here; blocks: 0.3 s).
        x = _reduce_view(np.asarray(x), axis)
        step = max(1, (1 << 20) // max(int(np.prod(x.shape[1:])), 1))
        for start in range(0, len(x), step):
            self._update(np.asarray(x[start:start + step], dtype="float64"))

    def _update(self, x):
        # log10(1 + x) as log1p(x) / ln 10: the same values, without libm's
        # slow path for log10 of arguments near 1.
        logx = np.log1p(np.maximum(x, 0.0)) * (1.0 / np.log(10.0))
        parts = dict(
            s=x.sum(0), ss=(x * x).sum(0), mn=x.min(0), mx=x.max(0),
            ls=logx.sum(0), lss=(logx * logx).sum(0), pn=(x > 0).sum(0),
        )
        if self.sums is None:
            self.sums = parts
        else:
            for k in ("s", "ss", "ls", "lss", "pn"):
                self.sums[k] += parts[k]
            self.sums["mn"] = np.minimum(self.sums["mn"], parts["mn"])
            self.sums["mx"] = np.maximum(self.sums["mx"], parts["mx"])
        self.n += len(x)

    def result(self, count, axis):
        """The statistics per column of the view (features of a table, the
        last axis of a sequence or image, over batch and the other axes),
        or pooled into one mean/std when the columns are homogeneous
        (`homogeneous`): then axis is "global"."""
        s = dict(self.sums)
        n = max(self.n, 1)
        columns = len(s["s"])
        mean = s["s"] / n
        std = np.sqrt(np.maximum(s["ss"] / n - mean**2, 0.0))
        same, evidence = homogeneous(s["mn"], s["mx"], std)
        if same and (axis == "feature" or columns > 4):
            s = {k: (np.array([v.min()]) if k == "mn" else np.array([v.max()]) if k == "mx"
                     else np.array([v.sum()])) for k, v in s.items()}
            n, axis = n * columns, "global"
            evidence = "one mean/std for all values: " + evidence
        else:
            kind = {"feature": "per feature", "channel": (
                "per channel" if columns <= 4 else "per feature over batch and time")}[axis]
            evidence = f"{kind}: " + (evidence if not same else
                                      f"{columns} channels (at most 4, an image's)")
        mean = s["s"] / n
        var = np.maximum(s["ss"] / n - mean**2, 0.0)
        lmean = s["ls"] / n
        lvar = np.maximum(s["lss"] / n - lmean**2, 0.0)
        # log10(1 + x) is 0 where x <= 0: the positive values' sum is the sum.
        positive = s["ls"] / np.maximum(s["pn"], 1)
        return FeatureStats(count, mean, np.sqrt(var), s["mn"], s["mx"], lmean,
                            np.sqrt(lvar), axis, positive, evidence)


# Columns share one scale (pixels, a flattened image, one quantity over
# time) when every varying column's range contains a common value and more
# than this share of them spans at least half of the overall range.
# Measured on real data (BUILD_NOTES.md, issue 25 item 3): digits 0.87,
# flattened MNIST 0.96, scikit-learn's diabetes 0.90 share one scale;
# California 0.25, wine 0.08, breast cancer 0.07, iris 0.25, Grunfeld's
# value/capital 0.50, a raw waveform 0.05 do not.
HOMOGENEOUS_SHARE = 0.5


def homogeneous(mn, mx, std):
    """(whether the columns share one scale, the evidence in words)."""
    varying = std > 1e-8
    k = int(varying.sum())
    if k < 2:
        return False, f"{k} varying column{'s' if k != 1 else ''}"
    lo, hi = float(mn[varying].min()), float(mx[varying].max())
    common = mn[varying].max() <= mx[varying].min()
    wide = int((((mx - mn)[varying]) >= 0.5 * (hi - lo)).sum())
    share = wide / k
    if common and share > HOMOGENEOUS_SHARE:
        return True, (f"the {k} varying columns share one range ({lo:.4g}..{hi:.4g}: every "
                      f"range holds a common value, {wide} of them span at least half of it)")
    why = ("their ranges have no value in common" if not common else
           f"only {wide} of {k} span at least half of the overall {lo:.4g}..{hi:.4g}")
    return False, f"{k} columns on different scales ({why})"


def _stats_axis(x_shape):
    """The view statistics are gathered in: per feature of a flat example,
    per last-axis column (channel, or a sequence's feature) of a deeper one;
    `_Moments.result` pools them when the columns share one scale."""
    return "feature" if len(x_shape) <= 1 else "channel"


def _reduce_view(x, axis):
    """Rows to reduce over: examples (tabular), pixels (channel) or values."""
    if axis == "feature":
        return x.reshape(len(x), -1)
    if axis == "channel":
        return x.reshape(-1, x.shape[-1])
    return x.reshape(-1, 1)


def array_feature_stats(x, padding=None):
    """`FeatureStats` of one array; with `padding`, a sequence input's
    padding steps left out (as `batch_stats` does)."""
    axis = _stats_axis(x.shape[1:])
    padding = padding if x.ndim >= 3 else None
    moments, counts = _Moments(), [0, 0, 0, 0]
    for start in range(0, len(x), 8192):
        if padding is None:
            moments.update(x[start : start + 8192], axis)
        else:
            _update_unpadded(moments, np.asarray(x[start : start + 8192]), padding, counts)
    return _unpadded_result(moments, len(x), axis, padding, counts, "data")


def _check_batch_finite(xb, n, name):
    if xb.dtype.kind in "USO":
        raise TypeError(f"`{name}` x must be numeric. Received: x with dtype {xb.dtype}")
    if xb.dtype.kind == "f":
        bad = ~np.isfinite(xb.reshape(len(xb), -1))
        if bad.any():
            rows, cols = np.nonzero(bad)
            positions = [(int(n + r), int(c)) for r, c in zip(rows[:5], cols[:5])]
            raise ValueError(
                f"`{name}` x holds {int(bad.sum())} NaN/Inf values in the batch "
                f"starting at example {n} (first positions (example, flat feature) "
                f"{positions}); clean the data before training. "
                f"Received: x with non-finite values"
            )


def batch_stats(batches, x_leaves, verbose=0, name="data", features=True, padding=None):
    """One pass over `(x, y)` numpy batches: per-input feature statistics
    (None for text inputs), per-output label statistics, NaN/Inf checks.

    `padding` (a value, or None) leaves out of the statistics the steps of a
    sequence input (per-example rank 2 or more) whose features all equal it:
    padding, as a `Masking` layer or `padded_batch` defines it (issue 38 item
    1). The evidence says how many steps that was.

    Returns (list of FeatureStats or None, list of LabelStats, count)."""
    numeric = [leaf.dtype not in ("string", "sparse", "ragged") for leaf in x_leaves]
    sparse = [leaf.dtype in ("sparse", "ragged") for leaf in x_leaves]
    axes = [_stats_axis(tuple(leaf.shape)) for leaf in x_leaves]
    moments = [_Moments() for _ in x_leaves]
    padded = [padding is not None and len(leaf.shape) >= 2 for leaf in x_leaves]
    # Per input: padding steps left out, all steps, and, for a sequence
    # (steps, features), the sum and the largest of each example's real steps.
    steps = [[0, 0, 0, 0] for _ in x_leaves]
    labels = None
    n = 0
    progbar = None
    if verbose == 1:  # a terminal: a progress bar of the statistics pass
        progbar = keras.utils.Progbar(None, unit_name="example")
    for x, y in batches:
        xs = [a if is_sparse(a) or is_ragged(a) else np.asarray(a) for a in flat(x)]
        ys = [np.asarray(a) for a in flat(y)]
        labels = labels or [_LabelMoments() for _ in ys]
        for xb, thin in zip(xs, sparse):
            bad = int((~np.isfinite(sparse_values(xb))).sum()) if thin else 0
            if bad:
                kind = "a ragged input" if ragged_values(xb) is not None else "a sparse input"
                raise ValueError(f"`{name}` x holds {bad} NaN/Inf values ({kind}) in the "
                                 f"batch starting at example {n}; clean the data before "
                                 f"training. Received: x with {bad} non-finite values")
        for xb, keep, axis, m, pad, counts in zip(xs, numeric, axes, moments, padded, steps):
            if keep:
                _check_batch_finite(xb, n, name)
                if features and pad:
                    _update_unpadded(m, xb, padding, counts)
                elif features:
                    m.update(xb, axis)
        for yb, label in zip(ys, labels):
            if yb.dtype.kind in "USO":
                raise TypeError(f"`{name}` y must be numeric. Received: y with dtype {yb.dtype}")
            try:
                label.update(yb)
            except ValueError as error:
                raise ValueError(f"`{name}` y {error} near example {n}. "
                                 "Received: y with non-finite values") from None
        n += len(ys[0])
        if progbar is not None:
            progbar.update(n)
    if progbar is not None:
        progbar.update(n, finalize=True)
    if n == 0:
        raise ValueError(f"`{name}` is empty: the dataset yielded no examples. Received: 0 examples")
    stats = [_unpadded_result(m, n, axis, padding if pad else None, counts, name)
             if keep and features else None
             for m, keep, axis, pad, counts in zip(moments, numeric, axes, padded, steps)]
    return stats, [label.result() for label in labels], n


def _update_unpadded(moments, xb, padding, counts):
    """`moments.update` over the steps of sequence batch `xb` (examples,
    steps..., features) whose features do not all equal `padding`; counts
    [steps left out, all steps]."""
    rows = xb.reshape(-1, xb.shape[-1])
    real = ~np.all(rows == padding, axis=-1)
    counts[0] += int(len(rows) - real.sum())
    counts[1] += len(rows)
    if xb.ndim == 3:  # (examples, steps, features): each example's real steps
        lengths = real.reshape(len(xb), -1).sum(1)
        counts[2] += int(lengths.sum())
        counts[3] = max(counts[3], int(lengths.max(initial=0)))
    if real.any():
        moments.update(rows[real], "channel")


def _unpadded_result(moments, n, axis, padding, counts, name):
    """`moments.result`, with the padding left out said in the evidence."""
    if padding is None:
        return moments.result(n, axis)
    if moments.sums is None:
        raise ValueError(f"`{name}` holds nothing but padding: every step's features equal "
                         f"{float(padding)!r}. Received: {n} examples of padding only")
    stats = moments.result(n, axis)
    stats.padding = padding
    stats.evidence += (f"; {counts[0]} of {counts[1]} steps are padding (every feature "
                       f"{float(padding)!r}) and were left out")
    if counts[3]:
        stats.steps = (counts[2] / n, counts[3])
    return stats


def note_default_padding(features):
    """Says, in the evidence of statistics that left padding out, that the
    padding value 0.0 is the default (padded_batch's and pad_sequences'),
    not one the model names, and how to name another."""
    for stats in features:
        if stats is not None and getattr(stats, "padding", None) is not None:
            stats.evidence += (" (0.0: padded_batch's default; a Masking layer's mask_value "
                               "reading the input names another)")


def target_scale(data):
    """Per-column mean and std of continuous labels over the training split.

    Returns `None` when every column is already on a unit scale (|mean| < 1
    and std in [0.1, 10]) or constant; else `(mean, std)` arrays of the label
    width (a constant column keeps mean 0, std 1).
    """
    return target_scale_of(data.labels)


def target_scale_of(labels):
    """`target_scale` for one output's `LabelStats`."""
    mean, std = np.atleast_1d(labels.mean), np.atleast_1d(labels.std)
    unit = (np.abs(mean) < 1.0) & (std >= 0.1) & (std <= 10.0)
    constant = std < 1e-12
    if np.all(unit | constant):
        return None
    mean = np.where(constant, 0.0, mean)
    std = np.where(constant, 1.0, std)
    return mean.astype("float64"), std.astype("float64")
