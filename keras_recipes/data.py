"""Turning arrays, tf.data datasets and dataset names into train and
validation streams, with the statistics the rest of the recipe needs.

Everything here works on the training split only (statistics, the checks of
tip 1), streams over tf.data sources in batches (never materialising them),
and rejects bad input before any training with a message that names what was
received.
"""

import dataclasses
import math

import numpy as np
import tensorflow as tf

from keras_recipes.datasets.digits import DIGITS_NAME, digits_builder

EMBEDDED = ("digits", DIGITS_NAME)
# Distinct label values counted exactly up to this many.
_DISTINCT_CAP = 1000
# Integer labels with at most this many distinct values are split per value.
_STRATIFY_MAX = 100
# Per-class counters for the streaming stratified split: labels are bucketed
# modulo this many counters.
_STRATA = 1024


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


@dataclasses.dataclass
class Data:
    """Batched train/validation datasets and what was learned about them."""

    train: tf.data.Dataset
    validation: tf.data.Dataset
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
    source: tf.data.Dataset = None  # unbatched training split, unshuffled
    shuffle_buffer: int = 10_000
    shuffle_seed: int = 0
    maps: list = dataclasses.field(default_factory=list)
    validation_labels: LabelStats = None
    weighted: bool = False  # elements are (x, y, sample_weight)
    max_steps: int = None
    # Every input and output, in tf.nest order (also when there is one):
    input_stats: list = None  # FeatureStats, or None for a text input
    output_labels: list = None  # LabelStats per output
    output_val_labels: list = None
    x_spec: object = None  # one example's structure of tf.TensorSpec
    y_spec: object = None

    @property
    def structured(self):
        """Several inputs or outputs (dicts, lists or tuples of tensors)."""
        return self.features is None
    def map_pairs(self, fn):
        """Applies `fn(x, y) -> (x, y)` to the training and validation data
        (sample weights, when there are any, pass through)."""
        def on_element(x, y, *weights):
            return tuple(fn(x, y)) + weights

        self.train = self.train.map(on_element)
        self.validation = self.validation.map(on_element)
        self.maps.append(on_element)

    def standardize_targets(self, mean, std):
        """Trains on (y - mean) / std, per label column."""
        mean, std = np.asarray(mean, "float32"), np.asarray(std, "float32")
        shape = self.labels.shape or ()
        mean, std = mean.reshape(shape), std.reshape(shape)
        self.map_pairs(lambda x, y: (x, (tf.cast(y, tf.float32) - mean) / std))

    @staticmethod
    def pairs(dataset):
        """`dataset` as (x, y) elements (sample weights dropped)."""
        return dataset.map(lambda x, y, *weights: (x, y))

    def limit_steps(self, steps):
        """At most `steps` batches per epoch (`steps_per_epoch=`)."""
        self.max_steps = int(steps)

    def epochs(self, first, last, shuffle=True):
        """Batches of epochs `first`..`last - 1`, one dataset.

        Epoch e is shuffled with a seed derived from (shuffle_seed, e), so an
        epoch's order does not depend on how many passes came before it: a
        resumed run sees exactly the orders of an uninterrupted one.
        """
        def one_epoch(epoch):
            # A Python int seed: with a global TF seed set (as Keras' seeding
            # does), tf.data cannot take a tensor seed.
            seed = (self.shuffle_seed * 1_000_003 + epoch * 7_919 + 1) % (2**31 - 1)
            ds = self.source
            if shuffle:
                ds = ds.shuffle(self.shuffle_buffer, seed=seed, reshuffle_each_iteration=False)
            ds = ds.batch(self.batch_size).take(self.steps_per_epoch)
            for fn in self.maps:
                ds = ds.map(fn)
            return ds

        epochs = list(range(first, last))
        if not epochs:
            return self.train.take(0)
        steps = self.steps_per_epoch
        # Batches of epoch k come from the k-th dataset, epochs in order.
        choice = tf.data.Dataset.range(len(epochs)).flat_map(
            lambda i: tf.data.Dataset.from_tensors(i).repeat(steps))
        return tf.data.Dataset.choose_from_datasets(
            [one_epoch(e) for e in epochs], choice).prefetch(tf.data.AUTOTUNE)

    @property
    def steps_per_epoch(self):
        steps = -(-self.n_train // self.batch_size)
        return min(steps, self.max_steps) if self.max_steps else steps


def _describe(value):
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


def _check_array_pair(x, y, name):
    x, y = _as_array(x), _as_array(y)
    if isinstance(x, (list, tuple)) or isinstance(x, dict):
        raise ValueError(
            f"`{name}` must hold a single input array (multi-input data is not "
            f"supported by fit_with_tips). Received: x of type {type(x).__name__}"
        )
    x = np.asarray(x)
    y = np.asarray(y)
    for label, arr in (("x", x), ("y", y)):
        if arr.dtype.kind in "USO":
            raise TypeError(
                f"`{name}` {label} must be numeric; encode text columns first. "
                f"Received: {label} with dtype {arr.dtype}"
            )
        if arr.dtype.kind not in "biuf":
            raise TypeError(
                f"`{name}` {label} must be a numeric array. Received: {label} with dtype {arr.dtype}"
            )
    if x.ndim == 0 or len(x) == 0:
        raise ValueError(f"`{name}` is empty. Received: x of shape {x.shape}")
    if y.ndim == 0 or len(x) != len(y):
        raise ValueError(
            f"`{name}` x and y must have the same number of examples. "
            f"Received: x of length {len(x)}, y of shape {y.shape}"
        )
    for label, arr in (("x", x), ("y", y)):
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


def _label_stats(y):
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
            ls=logx.sum(0), lss=(logx * logx).sum(0),
        )
        if self.sums is None:
            self.sums = parts
        else:
            for k in ("s", "ss", "ls", "lss"):
                self.sums[k] += parts[k]
            self.sums["mn"] = np.minimum(self.sums["mn"], parts["mn"])
            self.sums["mx"] = np.maximum(self.sums["mx"], parts["mx"])
        self.n += len(x)

    def result(self, count, axis):
        s = self.sums
        n = max(self.n, 1)
        mean = s["s"] / n
        var = np.maximum(s["ss"] / n - mean**2, 0.0)
        lmean = s["ls"] / n
        lvar = np.maximum(s["lss"] / n - lmean**2, 0.0)
        return FeatureStats(count, mean, np.sqrt(var), s["mn"], s["mx"], lmean,
                            np.sqrt(lvar), axis)


def _stats_axis(x_shape):
    if len(x_shape) <= 1:
        return "feature"
    return "channel" if x_shape[-1] is not None and x_shape[-1] <= 4 else "global"


def _reduce_view(x, axis):
    """Rows to reduce over: examples (tabular), pixels (channel) or values."""
    if axis == "feature":
        return x.reshape(len(x), -1)
    if axis == "channel":
        return x.reshape(-1, x.shape[-1])
    return x.reshape(-1, 1)


def array_feature_stats(x):
    axis = _stats_axis(x.shape[1:])
    moments = _Moments()
    for start in range(0, len(x), 8192):
        moments.update(x[start : start + 8192], axis)
    return moments.result(len(x), axis)


# -- splitting ----------------------------------------------------------------


def _check_split(validation_split):
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


def _stream_split(dataset, validation_split, seed, integer_labels):
    """Streaming, seeded split of an unbatched dataset.

    For integer labels it is stratified: a per-class counter sends every k-th
    example of each class (k = round(1 / validation_split)) to validation,
    starting at a seeded offset per class. Otherwise the example index decides.
    The split follows the dataset's order, which must be deterministic.
    """
    k = max(int(round(1.0 / validation_split)), 2)
    offsets = tf.constant(np.random.default_rng(seed).integers(0, k, _STRATA), tf.int64)

    def assign(counts, element):
        y = tf.nest.flatten(element[1])[0]
        if integer_labels:
            bucket = tf.math.floormod(tf.cast(tf.reshape(y, [-1])[0], tf.int64), _STRATA)
        else:
            bucket = tf.constant(0, tf.int64)
        count = counts[bucket]
        is_val = tf.equal(tf.math.floormod(count + offsets[bucket], k), 0)
        counts = tf.tensor_scatter_nd_add(counts, [[bucket]], [1])
        return counts, (tuple(element), is_val)

    def is_validation(element, flag):
        return flag

    def is_training(element, flag):
        return tf.logical_not(flag)

    def untag(element, flag):
        return element

    tagged = dataset.scan(tf.zeros([_STRATA], tf.int64), assign)
    train = tagged.filter(is_training).map(untag)
    val = tagged.filter(is_validation).map(untag)
    return train, val, k


# -- dataset sources -------------------------------------------------------------


def _split_spec(dataset, name):
    spec = dataset.element_spec
    if not isinstance(spec, (tuple, list)) or len(spec) not in (2, 3):
        raise ValueError(
            f"A tf.data.Dataset passed as `{name}` must yield (x, y) or (x, y, sample_weight). "
            f"Received: element_spec={spec}"
        )
    return spec


def leaves(spec):
    """[(name, leaf)] of a nest: dict keys, tuple positions, or "" for one leaf."""
    if isinstance(spec, dict):  # tf.nest's order: sorted keys
        named = [(str(k), v) for k, v in sorted(spec.items())]
    elif isinstance(spec, (list, tuple)):
        named = [(str(i), v) for i, v in enumerate(spec)]
    else:
        return [("", spec)]
    if any(_is_structure(v) for _, v in named):
        raise ValueError("Inputs and outputs may be nested one level deep (a dict or a list of "
                         f"tensors). Received: a nested structure {spec}")
    return named


def _is_batched(dataset, name="data", input_rank=None):
    """Detects `.batch()`: from the model's input rank when it is known (so
    `drop_remainder=True` is seen too), else from a leading unknown dimension."""
    spec = _split_spec(dataset, name)
    x_spec, y_spec = tf.nest.flatten(spec[0])[0], tf.nest.flatten(spec[1])[0]
    if input_rank is not None and x_spec.shape.rank is not None:
        return x_spec.shape.rank == input_rank
    if y_spec.shape.rank == 0:
        return False
    # A leading unknown dimension is what `.batch()` gives; a fixed one
    # (`drop_remainder=True`, or vector labels) is read as unbatched.
    return y_spec.shape[0] is None


def _check_finite_cardinality(dataset, name):
    if int(dataset.cardinality()) == int(tf.data.INFINITE_CARDINALITY):
        raise ValueError(
            f"`{name}` is an endless dataset (`.repeat()` with no count): fit_with_tips "
            "needs one pass to take its statistics and define an epoch. Remove the "
            "`.repeat()` (epochs are repeated for you) or use `.take(n)`. "
            f"Received: {name} with infinite cardinality"
        )


def _check_deterministic_order(dataset, name, probe=256):
    """Two passes over the first `probe` examples must agree: a split of a
    dataset that reshuffles on each pass would overlap the training split."""
    def fingerprint():
        rows = []
        for element in dataset.take(probe).as_numpy_iterator():
            rows.append(hash(b"".join(
                repr(np.asarray(leaf).tolist()).encode() if np.asarray(leaf).dtype.kind == "O"
                else np.asarray(leaf).tobytes() for leaf in tf.nest.flatten(element[0]))))
        return rows

    if fingerprint() != fingerprint():
        raise ValueError(
            f"`{name}` yields its examples in a different order on each pass (a "
            "`.shuffle()` that reshuffles, or parallel reads without "
            "`deterministic=True`), so a validation split taken from it would overlap the "
            "training split. Pass `validation_data=`, or shuffle with a seed and "
            "`reshuffle_each_iteration=False` (fit_with_tips shuffles every epoch itself). "
            f"Received: {name} whose first {probe} examples change order between passes"
        )


def load_named(name, data_dir=None, split="train"):
    """An unbatched (x, y) dataset for the embedded digits or a TFDS name."""
    if not isinstance(name, str) or not name:
        raise TypeError(f"A dataset name must be a non-empty string. Received: {name!r}")
    import tensorflow_datasets as tfds

    if name in EMBEDDED:
        builder = digits_builder(data_dir)
        return builder.as_dataset(split=split, as_supervised=True, shuffle_files=False)
    try:
        # download=False: offline, an unprepared dataset must fail fast and
        # clearly rather than hang on the network.
        return tfds.load(name, split=split, as_supervised=True, data_dir=data_dir,
                         shuffle_files=False, download=False)
    except tfds.core.registered.DatasetNotFoundError as error:
        raise ValueError(
            "Unknown dataset name. Use 'digits' (embedded) or a TFDS name such as "
            f"'mnist' or 'cifar10:3.*.*'. TFDS said: {str(error).splitlines()[0]} "
            f"Received: data={name!r}"
        ) from None
    except AssertionError as error:  # TFDS' "could not find data in ..."
        raise ValueError(
            f"The TFDS dataset {name!r} is not prepared ({str(error).split('. Please')[0]}), "
            "and this machine may be offline. Prepare it once where there is a "
            f"network (`tfds build {name.split(':')[0]}` or "
            f"`tfds.builder({name!r}).download_and_prepare()`), then pass "
            f"`data_dir=` pointing at it. Received: data={name!r}, data_dir={data_dir!r}"
        ) from None


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


def _dataset_stats(dataset, verbose, name="data", features=True):
    """One streaming pass: per-input feature statistics (None for text
    inputs), per-output label statistics, NaN/Inf checks.

    Returns (list of FeatureStats or None, list of LabelStats, count)."""
    x_leaves = [spec for _, spec in leaves(dataset.element_spec[0])]
    numeric = [spec.dtype != tf.string for spec in x_leaves]
    axes = [_stats_axis(tuple(spec.shape)) for spec in x_leaves]
    moments = [_Moments() for _ in x_leaves]
    labels = [_LabelMoments() for _ in tf.nest.flatten(dataset.element_spec[1])]
    n = 0
    progbar = None
    if verbose == 1:  # a terminal: a progress bar of the statistics pass
        import keras

        progbar = keras.utils.Progbar(None, unit_name="example")
    for element in dataset.batch(1024).as_numpy_iterator():
        xs, ys = tf.nest.flatten(element[0]), tf.nest.flatten(element[1])
        for xb, keep, axis, m in zip(xs, numeric, axes, moments):
            if keep:
                _check_batch_finite(xb, n, name)
                if features:
                    m.update(xb, axis)
        for yb, label in zip(ys, labels):
            if yb.dtype.kind in "USO":
                raise TypeError(f"`{name}` y must be numeric. Received: y with dtype {yb.dtype}")
            try:
                label.update(yb)
            except ValueError as error:
                raise ValueError(f"`{name}` y {error} near example {n}. "
                                 "Received: y with non-finite values") from None
        n += len(xs[0])
        if progbar is not None:
            progbar.update(n)
    if progbar is not None:
        progbar.update(n, finalize=True)
    if n == 0:
        raise ValueError(f"`{name}` is empty: the dataset yielded no examples. Received: 0 examples")
    stats = [m.result(n, axis) if keep and features else None
             for m, keep, axis in zip(moments, numeric, axes)]
    return stats, [label.result() for label in labels], n


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


def _count(dataset):
    return int(dataset.reduce(np.int64(0), lambda c, *_: c + 1).numpy())


# -- entry point -----------------------------------------------------------------


def _is_structure(value):
    return isinstance(value, (dict, list, tuple))


def _leaf_array(value):
    array = np.asarray(_as_array(value))
    return array.astype(str) if array.dtype.kind == "O" else array


def _structured_dataset(data, sample_weight):
    """Several inputs or outputs (dicts, lists, tuples of arrays) as a dataset
    of examples, the structure kept; `model.fit` takes the same."""
    x, y = data[0], data[1]
    w = data[2] if len(data) == 3 else sample_weight
    as_nest = lambda v: ({str(k): _leaf_array(a) for k, a in v.items()} if isinstance(v, dict)
                         else tuple(_leaf_array(a) for a in v) if _is_structure(v)
                         else _leaf_array(v))
    x, y = as_nest(x), as_nest(y)
    lengths = {len(a) for a in tf.nest.flatten(x) + tf.nest.flatten(y)}
    if len(lengths) != 1:
        raise ValueError("Every input and output array must have one row per example. "
                         f"Received: lengths {sorted(lengths)}")
    if w is not None:
        return tf.data.Dataset.from_tensor_slices((x, y, np.asarray(w, "float32")))
    return tf.data.Dataset.from_tensor_slices((x, y))


def _spec_of(batch):
    return tf.nest.map_structure(
        lambda a: tf.TensorSpec((None,) + np.asarray(a).shape[1:],
                                tf.string if np.asarray(a).dtype.kind in "USO"
                                else tf.as_dtype(np.asarray(a).dtype)), batch)


def _pydataset(data):
    """A `keras.utils.PyDataset` as a dataset of its batches, read by index
    (so every pass has the same order and a split of it is stable)."""
    n = len(data)
    if n == 0:
        raise ValueError("`data` is an empty PyDataset. Received: len(data)=0")
    first = tuple(data[0])
    spec = _spec_of(first)

    def batches():
        for i in range(len(data)):
            yield tuple(data[i])

    return tf.data.Dataset.from_generator(batches, output_signature=tuple(spec)).apply(
        tf.data.experimental.assert_cardinality(n))


def _generator(data, steps_per_epoch):
    """A Python generator: `steps_per_epoch` batches read once and kept."""
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
    stacked = tuple(tf.nest.map_structure(lambda *a: np.concatenate(a), *[b[i] for b in batches])
                    for i in range(len(batches[0])))
    return tf.data.Dataset.from_tensor_slices(stacked), len(batches)


def _resolve_source(data, sample_weight, steps_per_epoch=None):
    """(description, data, notes) with names loaded, pandas converted, and
    structures, PyDatasets and generators turned into datasets."""
    import inspect

    import keras

    if isinstance(data, tf.data.Dataset):
        if sample_weight is not None:
            raise ValueError("`sample_weight` goes with array data; a dataset carries its "
                             "weights as (x, y, sample_weight) elements. "
                             f"Received: sample_weight={_describe(sample_weight)}")
        return "tf.data.Dataset", data, []
    if isinstance(data, keras.utils.PyDataset):
        return f"PyDataset ({type(data).__name__}, {len(data)} batches)", _pydataset(data), [
            "the PyDataset's batches were re-batched"]
    if inspect.isgenerator(data) or (hasattr(data, "__next__") and hasattr(data, "__iter__")):
        dataset, n = _generator(data, steps_per_epoch)
        return "generator", dataset, [
            f"generator: its first {n} batches (steps_per_epoch) were read once and are "
            "reshuffled every epoch; a generator that makes new data every epoch should be a "
            "PyDataset, or use augment="]
    if isinstance(data, (tuple, list)) and len(data) in (2, 3) and not any(
            isinstance(d, tf.data.Dataset) for d in data) and all(
            d is None or _is_structure(d) or np.ndim(d) >= 1 for d in data):
        if _is_structure(data[0]) or _is_structure(data[1]):
            return "arrays (several inputs or outputs)", _structured_dataset(data, sample_weight), []
        return "arrays", data, []
    raise TypeError(
        "`data` must be an (x, y) or (x, y, sample_weight) tuple of arrays (numpy or pandas; "
        "dicts or lists of them for several inputs or outputs), a tf.data.Dataset of such "
        "elements, a keras.utils.PyDataset, a generator with steps_per_epoch, 'digits' or a "
        f"TFDS name. Received: data={_describe(data)}"
    )


def _array_weights(data, sample_weight, n):
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


def _array_split(data, validation_data, validation_split, seed, sample_weight):
    x, y = _check_array_pair(data[0], data[1], "data")
    w = _array_weights(data, sample_weight, len(x))
    if validation_data is not None:
        return (x, y, w), None, "validation_data given"
    labels = _label_stats(y)
    # Stratified when the values look like class ids (a few distinct ones).
    strata = y if labels.kind == "integer" and y.ndim == 1 and labels.distinct <= _STRATIFY_MAX else None
    train_idx, val_idx = stratified_split(strata if strata is not None else np.zeros(len(y), "float32"),
                                          validation_split, seed)
    if len(val_idx) == 0 or len(train_idx) == 0:
        raise ValueError(
            f"`data` has too few examples ({len(x)}) for a validation split "
            f"of {validation_split}. Received: {len(x)} examples"
        )
    pick = lambda idx: (x[idx], y[idx], None if w is None else w[idx])
    split = (f"held out {len(val_idx)} of {len(x)} examples "
             f"({'stratified, ' if strata is not None else ''}seed {seed})")
    return pick(train_idx), pick(val_idx), split


def _from_arrays(x, y, w):
    return tf.data.Dataset.from_tensor_slices((x, y) if w is None else (x, y, w))


def _shapes(x_spec):
    """Per-example shape of a single input, or {name: shape} of several."""
    named = leaves(x_spec)
    if len(named) == 1 and not _is_structure(x_spec):
        return tuple(named[0][1].shape)
    return {name: tuple(spec.shape) for name, spec in named}


def _validation_dataset(validation_data, x_shape, weighted, input_rank):
    """The validation set as an unbatched dataset, checked like the training data."""
    import keras

    if isinstance(validation_data, keras.utils.PyDataset):
        validation_data = _pydataset(validation_data)
    elif (isinstance(validation_data, (tuple, list)) and len(validation_data) in (2, 3)
          and (_is_structure(validation_data[0]) or _is_structure(validation_data[1]))):
        validation_data = _structured_dataset(validation_data, None)
    if isinstance(validation_data, tf.data.Dataset):
        _check_finite_cardinality(validation_data, "validation_data")
        batched = _is_batched(validation_data, "validation_data", input_rank)
        val = validation_data.unbatch() if batched else validation_data
    elif isinstance(validation_data, (tuple, list)) and len(validation_data) in (2, 3):
        vx, vy = _check_array_pair(validation_data[0], validation_data[1], "validation_data")
        vw = _array_weights(validation_data, None, len(vx))
        val = _from_arrays(vx, vy, vw)
    else:
        raise TypeError(
            "`validation_data` must be an (x, y) or (x, y, sample_weight) tuple of arrays or "
            f"a tf.data.Dataset. Received: validation_data={_describe(validation_data)}"
        )
    v_shape = _shapes(val.element_spec[0])
    if v_shape != x_shape:
        raise ValueError(
            "`validation_data` x must have the same per-example shape as the "
            f"training data {x_shape}. Received: {v_shape}"
        )
    if weighted and len(val.element_spec) == 2:
        val = val.map(lambda x, y: (x, y, tf.ones([], tf.float32)))
    elif not weighted and len(val.element_spec) == 3:
        val = val.map(lambda x, y, w: (x, y))
    return val


def make_data(data, validation_data=None, validation_split=0.2, batch_size=128,
              seed=None, data_dir=None, shuffle_buffer=10_000, verbose=0, shuffle_seed=None,
              sample_weight=None, input_rank=None, steps_per_epoch=None):
    """Resolves `data` into batched train/validation datasets plus statistics.

    Args:
        data: `(x, y)` or `(x, y, sample_weight)` arrays (numpy or pandas), a
            `tf.data.Dataset` of such elements (batched or not), `"digits"`
            (embedded) or a TFDS name.
        validation_data: The same forms; if `None`, a seeded (stratified for
            integer labels) `validation_split` of `data`.
        batch_size: Integer. Batch size of both returned datasets.
        seed: Integer or None, for the split (and the shuffling, unless
            `shuffle_seed` is given).
        data_dir: TFDS data directory for named datasets.
        sample_weight: Array of per-example weights for array data.
        input_rank: The model's input rank with the batch axis, when known:
            tells a batched dataset (also with `drop_remainder=True`) apart.

    Returns:
        A `Data`.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"`batch_size` must be an integer >= 1. Received: batch_size={batch_size!r}")
    if validation_data is None:
        _check_split(validation_split)
    notes = []
    seed = 0 if seed is None else int(seed)
    shuffle_seed = seed if shuffle_seed is None else int(shuffle_seed)
    if isinstance(data, str):
        description = f"dataset {data!r}" + (" (embedded, via TFDS)" if data in EMBEDDED else " (TFDS)")
        data = load_named(data, data_dir)
    else:
        description, data, more = _resolve_source(data, sample_weight, steps_per_epoch)
        notes += more

    val_source = None
    if isinstance(data, (tuple, list)):
        (x, y, w), held_out, split = _array_split(data, validation_data, validation_split, seed,
                                                  sample_weight)
        features, labels = [array_feature_stats(x)], [_label_stats(y)]
        source = _from_arrays(x, y, w)
        shuffle_buffer, n_train = len(x), len(x)
        x_shape, x_dtype = tuple(x.shape[1:]), str(x.dtype)
        if held_out is not None:
            val_source = _from_arrays(*held_out)
            val_labels, n_val = [_label_stats(held_out[1])], len(held_out[0])
    else:
        _check_finite_cardinality(data, "data")
        dataset = data
        if _is_batched(dataset, "data", input_rank):
            dataset = dataset.unbatch()
            notes.append(f"the dataset was batched; it was re-batched to batch_size={batch_size}")
        spec = dataset.element_spec
        x_leaves = [leaf for _, leaf in leaves(spec[0])]
        if len(x_leaves) == 1 and x_leaves[0].dtype == tf.string:
            raise TypeError(
                "`data` must hold numeric tensors; encode strings first. "
                f"Received: x dtype {x_leaves[0].dtype.name}"
            )
        integer = len(tf.nest.flatten(spec[1])) == 1 and tf.nest.flatten(spec[1])[0].dtype.is_integer
        if validation_data is None:
            _check_deterministic_order(dataset, "data")
            train_stream, val_source, k = _stream_split(dataset, validation_split, seed, integer)
            split = (f"held out every {k}th example"
                     f"{' of each class' if integer else ''} (seed {seed}), streaming")
            _, val_labels, n_val = _dataset_stats(val_source, 0, "data", features=False)
        else:
            train_stream, split = dataset, "validation_data given"
        features, labels, n_train = _dataset_stats(train_stream, verbose)
        source = train_stream.apply(tf.data.experimental.assert_cardinality(n_train))
        x_shape = _shapes(spec[0])
        x_dtype = x_leaves[0].dtype.name if len(x_leaves) == 1 else "several"
    weighted = len(source.element_spec) == 3
    train = source.shuffle(shuffle_buffer, seed=shuffle_seed, reshuffle_each_iteration=True)

    if validation_data is not None:
        val_source = _validation_dataset(validation_data, x_shape, weighted, input_rank)
        _, val_labels, n_val = _dataset_stats(val_source, 0, "validation_data", features=False)
    if n_val == 0:
        raise ValueError("The validation set is empty. Received: 0 validation examples")
    # Filtered streams have unknown cardinality; stating it lets Keras show
    # progress and not warn that the input "ran out of data".
    train = train.apply(tf.data.experimental.assert_cardinality(n_train))
    val = val_source.apply(tf.data.experimental.assert_cardinality(n_val))
    train = train.batch(batch_size).prefetch(tf.data.AUTOTUNE)
    val = val.batch(batch_size).prefetch(tf.data.AUTOTUNE)
    structured = isinstance(x_shape, dict) or len(labels) > 1 or _is_structure(
        source.element_spec[1])
    return Data(train, val, x_shape, x_dtype, None if structured else features[0],
                None if structured else labels[0], n_train, n_val,
                description, split, batch_size, notes, source=source,
                shuffle_buffer=shuffle_buffer, shuffle_seed=shuffle_seed,
                validation_labels=None if structured else val_labels[0], weighted=weighted,
                input_stats=features, output_labels=labels, output_val_labels=val_labels,
                x_spec=source.element_spec[0], y_spec=source.element_spec[1])
