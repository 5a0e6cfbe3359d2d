"""What both data paths share, on every backend: the `Data` interface, the
statistics of the training split, the label kinds, the checks of bad input
and the split. `keras_recipes.data.make_data` picks the path.

Everything here works on the training split only and rejects bad input
before any training with a message that names what was received.
"""

import dataclasses
import math

import keras
import numpy as np

from keras_recipes.datasets.digits import DIGITS_NAME

EMBEDDED = ("digits", DIGITS_NAME)
# Distinct label values counted exactly up to this many.
_DISTINCT_CAP = 1000
# Integer labels with at most this many distinct values are split per value.
_STRATIFY_MAX = 100


@dataclasses.dataclass
class FeatureStats:
    """Streaming statistics of the training inputs, per feature (tabular) or
    per channel (images), in float64."""

    count: int
    mean: np.ndarray
    std: np.ndarray
    min: np.ndarray
    max: np.ndarray
    log_mean: np.ndarray  # of log10(1 + x), meaningful where min >= 0
    log_std: np.ndarray
    axis: str  # "feature", "channel" or "global"
    # Of log10(1 + x) over the positive values only: where a zero-inflated
    # feature's non-zero values typically lie (a pixel's near its maximum).
    log_positive_mean: np.ndarray = None
    # Why this axis, from the per-column statistics (issue 25 item 3).
    evidence: str = ""
    # The padding value whose steps were left out (a sequence input), or None.
    padding: float = None
    # A padded sequence's real steps per example: (mean, longest), measured.
    steps: tuple = None


@dataclasses.dataclass
class LabelStats:
    """What the label values show (never their dtype alone).

    `kind` is "integer" (integral values: class ids, or counts that the plan
    may read as regression once it knows the output width), "onehot" (rows of
    0/1 summing to 1, in any dtype), "multilabel" (rows of 0/1) or
    "continuous"."""

    kind: str
    min: float
    max: float
    shape: tuple
    class_counts: dict  # label -> count (integer and one-hot labels)
    distinct: int = 0  # distinct values seen, capped at _DISTINCT_CAP + 1
    mean: np.ndarray = None  # per column (last axis), float64
    std: np.ndarray = None
    dtype: str = ""

    @property
    def binary(self):
        return self.kind == "integer" and self.min >= 0 and self.max <= 1

    def evidence(self):
        """The values that decided `kind`, in words."""
        values = (f"{self.distinct} distinct values" if self.distinct <= _DISTINCT_CAP
                  else f"more than {_DISTINCT_CAP} distinct values")
        shape = f"shape {self.shape}" if self.shape else "one value per example"
        text = {"integer": f"integral values {self.min:g}..{self.max:g}, {values}",
                "onehot": "rows of 0/1 that sum to 1",
                "multilabel": "rows of 0/1 (not summing to 1)",
                "continuous": f"non-integral values {self.min:.4g}..{self.max:.4g}"}[self.kind]
        return f"labels ({self.dtype}, {shape}): {text}"



@dataclasses.dataclass(frozen=True)
class Leaf:
    """One input's or output's per-example shape and dtype name ("string"
    for text), the same on every path (a leaf of `Data.x_spec`)."""

    shape: tuple
    dtype: str


@dataclasses.dataclass
class Data:
    """The training and validation data, batched for `model.fit`, and what
    was learned about them. The paths (`tfdata.TFData`,
    `arraydata.ArrayData`) implement the methods at the end."""

    x_shape: tuple
    x_dtype: str
    features: FeatureStats
    labels: LabelStats
    n_train: int
    n_validation: int
    description: str
    split: str
    batch_size: int
    notes: list = dataclasses.field(default_factory=list)
    shuffle_seed: int = 0
    validation_labels: LabelStats = None
    weighted: bool = False  # elements are (x, y, sample_weight)
    max_steps: int = None
    # Every input and output, in sorted-key / position order (also when there is one):
    input_stats: list = None  # FeatureStats, or None for a text input
    output_labels: list = None  # LabelStats per output
    output_val_labels: list = None
    x_spec: object = None  # one example's structure of `Leaf`
    y_spec: object = None
    # Every batch at exactly `batch_size` (a model whose inputs fix the batch
    # size): a last partial batch is dropped, in training and validation.
    drop_remainder: bool = False
    # (training, validation) batch counts of batches kept as given (their
    # shapes vary: issue 38 item 1); `batch_size` is then the first one's.
    kept_batches: tuple = None

    @property
    def structured(self):
        """Several inputs or outputs (dicts, lists or tuples of tensors)."""
        return self.features is None

    def limit_steps(self, steps):
        """At most `steps` batches per epoch (`steps_per_epoch=`)."""
        self.max_steps = int(steps)

    @property
    def steps_per_epoch(self):
        if self.kept_batches:
            steps = self.kept_batches[0]
        else:
            steps = (self.n_train // self.batch_size if self.drop_remainder
                     else -(-self.n_train // self.batch_size))
        return min(steps, self.max_steps) if self.max_steps else steps

    @property
    def validation_steps(self):
        if self.kept_batches:
            return self.kept_batches[1]
        return (self.n_validation // self.batch_size if self.drop_remainder
                else -(-self.n_validation // self.batch_size))

    # What a path implements (numpy values in, numpy values out):

    def first_batch(self, size=None):
        """(x, y) of the first training batch (of `size` examples), as trained."""
        raise NotImplementedError

    def example_batches(self, split):
        """(x, y) chunks of the "train" or "validation" split."""
        raise NotImplementedError

    def training_batches(self, count):
        """(x, y) of the first `count` batches of the first epoch, shuffled
        and preprocessed as training reads them."""
        raise NotImplementedError

    def validation_arrays(self):
        """The whole validation set as (x, y), as evaluated."""
        raise NotImplementedError

    def fit_inputs(self, first, last, shuffle, validation_steps, members=None,
                   class_weight=None):
        """(x, validation_data) for `model.fit` over epochs `first`..`last - 1`.
        Epoch e is shuffled by (shuffle_seed, e), so a resumed run sees the
        orders of an uninterrupted one.

        With `members` (a list of shuffle seeds, one per ensemble member),
        every training element is `(batch, members, ...)`: member i's share
        is the batch its own run (shuffle seed `members[i]`) would see, and
        validation batches are repeated along that axis. `class_weight` is
        then applied as per-member sample weights (Keras' `class_weight`
        cannot read stacked targets)."""
        raise NotImplementedError

    def standardize_targets(self, mean, std):
        """Trains and validates on (y - mean) / std, per label column."""
        raise NotImplementedError

    def preprocess_in_pipeline(self, input_layers, augment, targets):
        """With the user's own train_step, or several inputs or outputs: each
        input through its layers (those in `augment` in training only) and
        each target scaled by its `(mean, std)`, in the input pipeline."""
        raise NotImplementedError


def epoch_seed(shuffle_seed, epoch):
    """The shuffle seed of one epoch (a Python int: with a global TF seed set,
    as Keras' seeding does, tf.data cannot take a tensor seed)."""
    return (int(shuffle_seed) * 1_000_003 + int(epoch) * 7_919 + 1) % (2**31 - 1)


def class_weight_table(class_weight, labels=None):
    """`{class id: weight}` as a vector indexed by class id (weight 1 for the
    classes of `labels`, a `LabelStats`, that it does not name)."""
    ids = [int(k) for k in class_weight]
    if labels is not None and labels.class_counts:
        ids += [int(k) for k in labels.class_counts]
    table = np.ones(max(ids) + 1, "float32")
    for k, v in class_weight.items():
        table[int(k)] = float(v)
    return table


def class_ids(y):
    """Class ids of a batch of labels: one-hot rows are argmax-ed, as Keras'
    `class_weight` reads them."""
    y = np.asarray(y)
    if y.ndim > 1 and y.shape[-1] > 1:
        return y.argmax(-1)
    return y.reshape(len(y)).astype("int64")


def describe(value):
    if isinstance(value, np.ndarray):
        return f"array of shape {value.shape} and dtype {value.dtype}"
    text = repr(value)
    return text if len(text) < 80 else text[:77] + "..."


# -- checks ----------------------------------------------------------------


def _as_array(value):
    """pandas DataFrames and Series as numpy arrays (model.fit takes them)."""
    if hasattr(value, "to_numpy") and hasattr(value, "dtypes"):
        return value.to_numpy()
    return value


def is_sparse(value):
    """A scipy.sparse matrix, or a TensorFlow sparse tensor (or its numpy value)."""
    return ((hasattr(value, "tocsr") and hasattr(value, "nnz"))
            or type(value).__name__ in ("SparseTensor", "SparseTensorValue"))


def is_ragged(value):
    """A `tf.RaggedTensor` (or its numpy value): lengths that vary per example."""
    return type(value).__name__ in ("RaggedTensor", "RaggedTensorValue")


def densify(value):
    """A sparse value (`is_sparse`) as a dense numpy array; anything else as is."""
    if hasattr(value, "tocsr"):
        return value.toarray()
    if type(value).__name__ in ("SparseTensor", "SparseTensorValue"):
        dense = np.zeros(tuple(int(d) for d in np.asarray(value.dense_shape)),
                         np.asarray(value.values).dtype)
        dense[tuple(np.asarray(value.indices).T)] = np.asarray(value.values)
        return dense
    return value


def to_tf_sparse(value):
    """A scipy.sparse matrix as a `tf.SparseTensor` (anything else as is).
    Called on the TensorFlow backend only, where TensorFlow is loaded."""
    if not hasattr(value, "tocsr"):
        return value
    import tensorflow as tf  # deferred: JAX and torch users may not have it

    coo = value.tocoo()
    return tf.sparse.reorder(tf.SparseTensor(np.stack([coo.row, coo.col], 1).astype("int64"),
                                             coo.data, coo.shape))


def ragged_values(value):
    """The values of a ragged batch, as one flat numpy array, or None for
    anything else (tf.data's numpy iterator gives a ragged batch as an
    object array of its examples)."""
    if is_ragged(value):
        return np.asarray(value.flat_values).ravel()
    if isinstance(value, np.ndarray) and value.dtype == object and value.size:
        if all(isinstance(v, np.ndarray) for v in value.ravel()):
            return np.concatenate([v.ravel() for v in value.ravel()]).astype("float64")
    return None


def sparse_values(value):
    """The stored values of a sparse value (all values of a dense one: tf.data's
    numpy iterator makes sparse batches dense; every value of a ragged one), as numpy."""
    flat_values = ragged_values(value)
    if flat_values is not None:
        return flat_values
    if not is_sparse(value):
        return np.asarray(value)
    return np.asarray(value.data if hasattr(value, "tocsr") else value.values)


SPARSE_EVIDENCE = ("sparse values: centering would turn every zero into a value (a dense "
                   "matrix), so they pass through as given, sparse, as model.fit feeds them")
RAGGED_EVIDENCE = ("ragged values (lengths vary per example): they pass through as given, "
                   "as model.fit feeds them (an Input without ragged=True pads them with 0)")
RAGGED_OVERRIDE = "x.to_tensor() and keras.layers.Masking(0.0) to have it standardized"


def check_array_pair(x, y, name):
    x, y = _as_array(x), _as_array(y)
    if isinstance(x, (list, tuple)) or isinstance(x, dict):
        raise ValueError(
            f"`{name}` must hold a single input array (multi-input data is not "
            f"supported by fit_with_tips). Received: x of type {type(x).__name__}"
        )
    thin = is_sparse(x)
    x = _leaf_array(x) if thin else np.asarray(x)
    y = np.asarray(y)
    for label, arr in (("x", x), ("y", y)):
        if label == "x" and thin:
            continue

        if arr.dtype.kind in "USO":
            if label == "x" and keras.backend.backend() != "tensorflow":
                raise TypeError(
                    f"`{name}` x holds strings: Keras feeds strings to a model (a "
                    "TextVectorization or StringLookup inside it) on the TensorFlow backend "
                    f"only; on {keras.backend.backend()} its model.fit fails on them too. Use "
                    "KERAS_BACKEND=tensorflow, or encode the text first. Received: x with dtype "
                    f"{arr.dtype}")
            raise TypeError(
                f"`{name}` {label} must be numeric"
                + (", or go to a model that takes strings itself (keras.Input(dtype='string') "
                   "into a TextVectorization or StringLookup)" if label == "x" else "")
                + "; encode text columns first. "
                f"Received: {label} with dtype {arr.dtype}"
            )
        if arr.dtype.kind not in "biuf":
            raise TypeError(
                f"`{name}` {label} must be a numeric array. Received: {label} with dtype {arr.dtype}"
            )
    rows = x.shape[0] if len(x.shape) else 0
    if len(x.shape) == 0 or rows == 0:
        raise ValueError(f"`{name}` is empty. Received: x of shape {x.shape}")
    if y.ndim == 0 or rows != len(y):
        raise ValueError(
            f"`{name}` x and y must have the same number of examples. "
            f"Received: x of length {rows}, y of shape {y.shape}"
        )
    for label, arr in (("x", x if not thin else sparse_values(x)), ("y", y)):
        if arr.dtype.kind == "f":
            bad = ~np.isfinite(arr)
            if bad.any():
                positions = np.argwhere(bad)[:5].tolist()
                raise ValueError(
                    f"`{name}` {label} holds {int(bad.sum())} NaN/Inf values "
                    f"(first positions {positions}); impute or drop them before "
                    f"training. Received: {label} with {int(np.isnan(arr).sum())} NaN "
                    f"and {int(np.isinf(arr).sum())} Inf"
                )
    return x, y


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
        if self.integral and len(self.values) <= _DISTINCT_CAP:
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
        distinct = len(self.values) if self.integral else _DISTINCT_CAP + 1
        if self.zero_one and self.rows_one:
            kind, counts = "onehot", dict(sorted(getattr(self, "onehot_counts", {}).items()))
        elif self.zero_one and self.shape and self.shape[-1] > 1:
            kind, counts = "multilabel", {}
        elif self.integral and distinct <= _DISTINCT_CAP:
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


# -- statistics ---------------------------------------------------------------


class _Moments:
    """Running sums for mean/std/min/max of x and of log10(1 + x)."""

    def __init__(self):
        self.n = 0
        self.sums = None

    def update(self, x, axis):
        x = np.asarray(x, dtype="float64")
        x = _reduce_view(x, axis)
        logx = np.log10(1.0 + np.maximum(x, 0.0))
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


# -- splitting ----------------------------------------------------------------


def check_split(validation_split):
    if isinstance(validation_split, bool) or not isinstance(
        validation_split, (int, float)
    ) or not 0.0 < validation_split < 1.0:
        raise ValueError(
            "`validation_split` must be a fraction in (0, 1) (used when "
            f"`validation_data` is not given). Received: validation_split={validation_split!r}"
        )


def stratified_split(y, validation_split, seed):
    """Seeded indices (train, validation); per class for integer labels."""
    rng = np.random.default_rng(seed)
    y = np.asarray(y)
    if y.dtype.kind in "biu" and y.ndim == 1:
        val = []
        for label in np.unique(y):
            idx = np.flatnonzero(y == label)
            rng.shuffle(idx)
            take = int(round(len(idx) * validation_split))
            if len(idx) > 1:
                take = min(max(take, 1), len(idx) - 1)
            else:
                take = 0
            val.append(idx[:take])
        val = np.sort(np.concatenate(val))
    else:
        perm = rng.permutation(len(y))
        val = np.sort(perm[: int(round(len(y) * validation_split))])
    mask = np.zeros(len(y), bool)
    mask[val] = True
    return np.flatnonzero(~mask), np.flatnonzero(mask)



def leaves(spec):
    """[(name, leaf)] of a nest: dict keys, tuple positions, or "" for one leaf."""
    if isinstance(spec, dict):  # tf.nest's order: sorted keys
        named = [(str(k), v) for k, v in sorted(spec.items())]
    elif isinstance(spec, (list, tuple)):
        named = [(str(i), v) for i, v in enumerate(spec)]
    else:
        return [("", spec)]
    if any(is_structure(v) for _, v in named):
        raise ValueError("Inputs and outputs may be nested one level deep (a dict or a list of "
                         f"tensors). Received: a nested structure {spec}")
    return named


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



def flat(value):
    """The leaves of a one-level nest in `leaves()` order (sorted dict keys,
    positions), or [value] for a single array."""
    if isinstance(value, dict):
        return [value[k] for k in sorted(value, key=str)]
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


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


# -- arrays -----------------------------------------------------------------------


def is_structure(value):
    return isinstance(value, (dict, list, tuple))


def _leaf_array(value):
    if is_sparse(value):
        return value.tocsr() if hasattr(value, "tocsr") else value
    if is_ragged(value):
        return value
    array = np.asarray(_as_array(value))
    return array.astype(str) if array.dtype.kind == "O" else array


def as_nest(value):
    """Arrays, pandas objects, and dicts/lists of them as numpy (one level)."""
    if isinstance(value, dict):
        return {str(k): _leaf_array(a) for k, a in value.items()}
    if is_structure(value):
        return tuple(_leaf_array(a) for a in value)
    return _leaf_array(value)


def input_nest(value):
    """`as_nest` for inputs: one numeric value per example (a pandas Series, a
    1-D column) becomes a column, as Keras' functional models read it for
    `Input((1,))`, since the preprocessing layers run before the model."""
    nest = as_nest(value)
    widen = lambda a: a[:, None] if a.ndim == 1 and a.dtype.kind in "biuf" else a
    if isinstance(nest, dict):
        return {k: widen(a) for k, a in nest.items()}
    if isinstance(nest, tuple):
        return tuple(widen(a) for a in nest)
    return nest


def rows(array):
    """The number of examples (the first axis) of an array, sparse and ragged ones too."""
    if is_ragged(array):
        return int(array.nrows())
    return int(array.shape[0]) if is_sparse(array) else len(array)


def leaf_of(array):
    """The `Leaf` of an array with a batch axis."""
    if is_sparse(array):
        return Leaf(tuple(int(d) for d in array.shape[1:]), "sparse")
    if is_ragged(array):
        return Leaf(tuple(array.shape[1:]), "ragged")
    array = np.asarray(array)
    return Leaf(tuple(array.shape[1:]), "string" if array.dtype.kind in "USO" else array.dtype.name)


def take(nest, index):
    """Rows `index` of every array of a one-level nest."""
    if isinstance(nest, dict):
        return {k: a[index] for k, a in nest.items()}
    if isinstance(nest, (list, tuple)):
        return tuple(a[index] for a in nest)
    return nest[index]


def varying_shapes(batches):
    """Evidence that (x, y[, w]) batches differ in shape beyond the batch
    axis (a `padded_batch` or per-batch padding), in words, or None."""
    seen = {}
    for i, batch in enumerate(batches):
        key = tuple(np.shape(a)[1:] for a in flat(batch[0]))
        seen.setdefault(key, (i, tuple(np.shape(a) for a in flat(batch[0]))))
        if len(seen) > 1:
            (_, (_, a)), (_, (j, b)) = list(seen.items())[:2]
            show = lambda s: s[0] if len(s) == 1 else s
            return f"batch 0 {show(a)}, batch {j} {show(b)}"
    return None


def concatenate(batches):
    """A list of (x, y[, w]) batches of one shape as one (x, y[, w]) of arrays."""
    width = len(batches[0])
    joined = []
    for i in range(width):
        parts = [b[i] for b in batches]
        first = parts[0]
        if isinstance(first, dict):
            joined.append({k: np.concatenate([np.asarray(p[k]) for p in parts]) for k in first})
        elif isinstance(first, (list, tuple)):
            joined.append(tuple(np.concatenate([np.asarray(p[j]) for p in parts])
                                for j in range(len(first))))
        else:
            joined.append(np.concatenate([np.asarray(p) for p in parts]))
    return tuple(joined)


def ragged_inputs(value):
    """The positions (or names, for a dict) of the ragged inputs of data
    `value` (an (x, y[, w]) tuple or a dataset of such elements): a
    tf.RaggedTensor, or a dataset's RaggedTensorSpec. Read from the value or
    its element spec only, so before any work."""
    spec = getattr(value, "element_spec", None)
    if isinstance(spec, (tuple, list)) and spec:
        x = spec[0]
    elif isinstance(value, (tuple, list)) and len(value) in (2, 3):
        x = value[0]
    else:
        return []
    named = x.items() if isinstance(x, dict) else enumerate(
        x if isinstance(x, (tuple, list)) else [x])
    return [key for key, leaf in named if "Ragged" in type(leaf).__name__]


def refuse_ragged(value, name):
    """A ragged input (a tf.RaggedTensor, or a dataset of them) feeds a Keras
    model on the TensorFlow backend only, as Keras documents for
    `keras.Input(ragged=...)`: on JAX and torch it is refused by name before
    any work, with what to do. On TensorFlow it passes through as given."""
    if keras.backend.backend() == "tensorflow" or not ragged_inputs(value):
        return
    raise TypeError(
        f"`{name}` x is ragged (its lengths vary per example), and Keras feeds ragged "
        f"tensors to a model on the TensorFlow backend only (on {keras.backend.backend()} its "
        "model.fit fails on them too). Use KERAS_BACKEND=tensorflow, or pad it (x.to_tensor(), "
        "or padded_batch for a dataset) and put keras.layers.Masking(0.0) first in the model. "
        f"Received: a ragged x in `{name}`")


def held_out_batches(n, validation_split, seed, advice):
    """The sorted indices of the `n` batches held out whole for validation,
    seeded, the same on every path (so every form gets the same split)."""
    held = max(int(round(n * validation_split)), 1)
    if held >= n:
        raise ValueError(
            f"`data` has too few batches ({n}) to hold out {validation_split} of them whole and "
            f"train on the rest. {advice} Received: {n} batches")
    return sorted(np.random.default_rng(seed).permutation(n)[:held].tolist())


def refuse_kept(varying, fixed_batch, ordered):
    """Batches of varying shapes cannot feed a model that fixes the batch
    size or carries state between batches: refused by name."""
    if fixed_batch or ordered:
        raise ValueError(
            "`data` yields batches of different shapes, and the model's inputs fix the batch "
            "size (or hold state from batch to batch), which needs batches of one shape in "
            f"order: pad every example to one length. Received: batches of varying shapes "
            f"({varying})")


def generator_note(n, ended=False):
    """The minibatch row's note for a generator read once: because it
    `ended` after its first `n` batches, or as `read_once=True` asked."""
    if ended:
        return (f"generator: it ended after {n} batches (steps_per_epoch), so they were read "
                "once and are reshuffled every epoch")
    return (f"generator: its first {n} batches (steps_per_epoch) were read once and are "
            "reshuffled every epoch (read_once=True or a stateful model; otherwise a generator "
            "that yields more is read anew every epoch, as model.fit reads it)")


def common_shape(shapes):
    """The shape `shapes` (of one rank) share: None on every axis where they differ."""
    return tuple(sizes[0] if len(set(sizes)) == 1 else None for sizes in zip(*shapes))


def kept_spec(batches):
    """Per input, the per-example shape over `batches`, None on every axis
    whose size varies between them."""
    return [common_shape([np.shape(flat(b[0])[i])[1:] for b in batches])
            for i in range(len(flat(batches[0][0])))]


def read_generator(data, steps_per_epoch):
    """A Python generator's first `steps_per_epoch` batches, read once, as a
    list of (x, y[, w]) tuples."""
    if steps_per_epoch is None:
        raise ValueError(
            "A generator has no length: pass `steps_per_epoch=` (the batches of one epoch), "
            "as model.fit needs too, or wrap the data in a keras.utils.PyDataset. "
            "Received: steps_per_epoch=None")
    batches = []
    for batch in data:
        batches.append(tuple(batch))
        if len(batches) == steps_per_epoch:
            break
    if not batches:
        raise ValueError("The generator yielded nothing. Received: 0 batches")
    return batches


def array_weights(data, sample_weight, n):
    w = data[2] if len(data) == 3 else sample_weight
    if len(data) == 3 and sample_weight is not None:
        raise ValueError("Pass sample weights once: as the third element of `data` or as "
                         "`sample_weight`. Received: both")
    if w is None:
        return None
    w = np.asarray(_as_array(w), dtype="float32")
    if w.shape[:1] != (n,) or not np.isfinite(w).all() or (w < 0).any():
        raise ValueError("`sample_weight` must hold one finite weight >= 0 per example. "
                         f"Received: sample_weight of shape {w.shape}")
    return w


def class_ids(labels, stats):
    """Integer class ids of labels whose values are class labels, whatever
    their dtype (float 0/1 from pandas, one-hot rows), or None (regression,
    multilabel, or too many distinct values to stratify by)."""
    array = np.asarray(labels)
    if stats.kind == "integer" and stats.distinct <= _STRATIFY_MAX and (
            array.ndim == 1 or (array.ndim == 2 and array.shape[1] == 1)):
        return array.reshape(len(array)).astype("int64")
    if stats.kind == "onehot" and array.ndim == 2:
        return array.argmax(-1).astype("int64")
    return None


def split_arrays(x, y, w, validation_split, seed, ordered=None):
    """A seeded split of in-memory (x, y, w) nests: stratified when the
    (first) labels' values look like class ids (a few distinct integers).
    With `ordered` (a batch size: a stateful model reads consecutive batches
    as one stream), the last rows in order, a whole number of batches.
    Returns (train triple, validation triple, the split in words)."""
    first = flat(y)[0]
    n = len(first)
    pick = lambda idx: (take(x, idx), take(y, idx), None if w is None else w[idx])
    if ordered:
        batches = int(round(n * validation_split / ordered))
        if batches < 1 or n - batches * ordered < ordered:
            raise ValueError(
                f"`data` has too few examples ({n}) for a validation split of "
                f"{validation_split} in whole batches of {ordered} (the model's fixed batch "
                f"size) with a batch left to train on. Pass validation_data=. Received: {n} "
                "examples")
        cut = n - batches * ordered
        return (pick(np.arange(cut)), pick(np.arange(cut, n)),
                f"the last {n - cut} of {n} examples, in order (a stateful model reads "
                "consecutive batches)")
    classes = class_ids(first, label_stats(first))
    stratify = classes is not None
    train_idx, val_idx = stratified_split(classes if stratify else np.zeros(n, "float32"),
                                          validation_split, seed)
    if len(val_idx) == 0 or len(train_idx) == 0:
        raise ValueError(
            f"`data` has too few examples ({n}) for a validation split "
            f"of {validation_split}. Received: {n} examples"
        )
    split = (f"held out {len(val_idx)} of {n} examples "
             f"({'stratified, ' if stratify else ''}seed {seed})")
    return pick(train_idx), pick(val_idx), split


def array_split(data, validation_data, validation_split, seed, sample_weight, ordered=None):
    x, y = check_array_pair(data[0], data[1], "data")
    w = array_weights(data, sample_weight, len(x))
    if validation_data is not None:
        return (x, y, w), None, "validation_data given"
    return split_arrays(x, y, w, validation_split, seed, ordered)


def shapes(x_spec):
    """Per-example shape of a single input, or {name: shape} of several."""
    named = leaves(x_spec)
    if len(named) == 1 and not is_structure(x_spec):
        return tuple(named[0][1].shape)
    return {name: tuple(spec.shape) for name, spec in named}


# -- entry point -----------------------------------------------------------------
