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
    kind: str  # "integer", "onehot" or "continuous"
    min: float
    max: float
    shape: tuple
    class_counts: dict  # label -> count (integer labels only)


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

    def map_pairs(self, fn):
        """Applies `fn(x, y) -> (x, y)` to the training and validation data."""
        self.train = self.train.map(fn)
        self.validation = self.validation.map(fn)
        self.maps.append(fn)

    def epochs(self, first, last):
        """Batches of epochs `first`..`last - 1`, one dataset.

        Epoch e is shuffled with a seed derived from (shuffle_seed, e), so an
        epoch's order does not depend on how many passes came before it: a
        resumed run sees exactly the orders of an uninterrupted one.
        """
        def one_epoch(epoch):
            # A Python int seed: with a global TF seed set (as Keras' seeding
            # does), tf.data cannot take a tensor seed.
            seed = (self.shuffle_seed * 1_000_003 + epoch * 7_919 + 1) % (2**31 - 1)
            ds = self.source.shuffle(self.shuffle_buffer, seed=seed,
                                     reshuffle_each_iteration=False).batch(self.batch_size)
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
        return -(-self.n_train // self.batch_size)


def _describe(value):
    if isinstance(value, np.ndarray):
        return f"array of shape {value.shape} and dtype {value.dtype}"
    text = repr(value)
    return text if len(text) < 80 else text[:77] + "..."


# -- checks ----------------------------------------------------------------


def _check_array_pair(x, y, name):
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


def _label_stats(y):
    y = np.asarray(y)
    per_example = y.shape[1:]
    if y.dtype.kind in "biu":
        values, counts = np.unique(y, return_counts=True)
        return LabelStats("integer", float(y.min()), float(y.max()), per_example,
                          {int(v): int(c) for v, c in zip(values, counts)})
    if (per_example and per_example[-1] > 1 and np.isin(y, (0.0, 1.0)).all()
            and np.allclose(y.sum(axis=-1), 1.0)):
        counts = np.bincount(y.reshape(-1, per_example[-1]).argmax(-1),
                             minlength=per_example[-1])
        return LabelStats("onehot", 0.0, 1.0, per_example,
                          {i: int(c) for i, c in enumerate(counts)})
    return LabelStats("continuous", float(y.min()), float(y.max()), per_example, {})


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
        x, y = element
        if integer_labels:
            bucket = tf.math.floormod(tf.cast(tf.reshape(y, [-1])[0], tf.int64), _STRATA)
        else:
            bucket = tf.constant(0, tf.int64)
        count = counts[bucket]
        is_val = tf.equal(tf.math.floormod(count + offsets[bucket], k), 0)
        counts = tf.tensor_scatter_nd_add(counts, [[bucket]], [1])
        return counts, (x, y, is_val)

    def is_validation(x, y, flag):
        return flag

    def is_training(x, y, flag):
        return tf.logical_not(flag)

    def untag(x, y, flag):
        return x, y

    tagged = dataset.scan(tf.zeros([_STRATA], tf.int64), assign)
    train = tagged.filter(is_training).map(untag)
    val = tagged.filter(is_validation).map(untag)
    return train, val, k


# -- dataset sources -------------------------------------------------------------


def _is_batched(dataset):
    """Detects `.batch()`: the label spec has a leading unknown dimension."""
    spec = dataset.element_spec
    if not isinstance(spec, (tuple, list)) or len(spec) != 2:
        raise ValueError(
            "A tf.data.Dataset passed as `data` must yield (x, y) pairs. "
            f"Received: element_spec={spec}"
        )
    x_spec, y_spec = spec
    if not isinstance(x_spec, tf.TensorSpec):
        raise ValueError(
            "fit_with_tips supports a single input tensor per example. "
            f"Received: x element_spec={x_spec}"
        )
    if y_spec.shape.rank == 0:
        return False
    # A leading unknown dimension is what `.batch()` gives; a fixed one
    # (`drop_remainder=True`, or vector labels) is read as unbatched.
    return y_spec.shape[0] is None


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


def _dataset_stats(dataset, verbose):
    """One streaming pass: feature and label statistics, NaN/Inf counts."""
    x_shape = tuple(dataset.element_spec[0].shape)
    axis = _stats_axis(x_shape)
    moments = _Moments()
    n = 0
    y_min, y_max = math.inf, -math.inf
    counts = {}
    integer = dataset.element_spec[1].dtype.is_integer
    nonfinite = []
    progbar = None
    if verbose:
        import keras

        progbar = keras.utils.Progbar(None, unit_name="example")
    for xb, yb in dataset.batch(1024).as_numpy_iterator():
        if xb.dtype.kind in "USO":
            raise TypeError(f"`data` x must be numeric. Received: x with dtype {xb.dtype}")
        if xb.dtype.kind == "f":
            bad = ~np.isfinite(xb.reshape(len(xb), -1))
            if bad.any():
                rows, cols = np.nonzero(bad)
                nonfinite.extend((int(n + r), int(c)) for r, c in zip(rows[:5], cols[:5]))
                raise ValueError(
                    f"`data` x holds {int(bad.sum())} NaN/Inf values in the batch "
                    f"starting at example {n} (first positions (example, flat feature) "
                    f"{nonfinite[:5]}); clean the data before training. "
                    f"Received: x with non-finite values"
                )
        if yb.dtype.kind == "f" and not np.isfinite(yb).all():
            raise ValueError(
                f"`data` y holds {int((~np.isfinite(yb)).sum())} NaN/Inf labels near "
                f"example {n}. Received: y with non-finite values"
            )
        moments.update(xb, axis)
        y_min = min(y_min, float(yb.min()))
        y_max = max(y_max, float(yb.max()))
        if integer:
            values, c = np.unique(yb, return_counts=True)
            for v, cc in zip(values, c):
                counts[int(v)] = counts.get(int(v), 0) + int(cc)
        n += len(xb)
        if progbar is not None:
            progbar.update(n)
    if n == 0:
        raise ValueError("`data` is empty: the dataset yielded no examples. Received: 0 examples")
    if integer:
        labels = LabelStats("integer", y_min, y_max, tuple(dataset.element_spec[1].shape), counts)
    else:
        labels = LabelStats("continuous", y_min, y_max, tuple(dataset.element_spec[1].shape), {})
    return moments.result(n, axis), labels, n


def target_scale(data):
    """Mean and std of continuous labels over the training split, streamed.

    Returns `None` when the targets are already on a unit scale (|mean| < 1
    and std in [0.1, 10]) or constant.
    """
    total = total_sq = 0.0
    n = 0
    for _, y in data.train.unbatch().batch(4096).as_numpy_iterator():
        y = np.asarray(y, "float64")
        total += y.sum()
        total_sq += (y * y).sum()
        n += y.size
    mean = total / max(n, 1)
    std = math.sqrt(max(total_sq / max(n, 1) - mean**2, 0.0))
    if std < 1e-12 or (abs(mean) < 1.0 and 0.1 <= std <= 10.0):
        return None
    return float(mean), float(std)


def _count(dataset):
    return int(dataset.reduce(np.int64(0), lambda c, _: c + 1).numpy())


# -- entry point -----------------------------------------------------------------


def make_data(data, validation_data=None, validation_split=0.2, batch_size=128,
              seed=None, data_dir=None, shuffle_buffer=10_000, verbose=0, shuffle_seed=None):
    """Resolves `data` into batched train/validation datasets plus statistics.

    Args:
        data: `(x, y)` arrays, a `tf.data.Dataset` of `(x, y)` (batched or
            not), `"digits"` (embedded) or a TFDS name.
        validation_data: `(x, y)` arrays or a dataset; if `None`, a seeded
            (stratified for integer labels) `validation_split` of `data`.
        batch_size: Integer. Batch size of both returned datasets.
        seed: Integer or None, for the split (and the shuffling, unless
            `shuffle_seed` is given).
        data_dir: TFDS data directory for named datasets.

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
    elif isinstance(data, (tuple, list)) and len(data) == 2 and not isinstance(data[0], tf.data.Dataset):
        description = "arrays"
    elif isinstance(data, tf.data.Dataset):
        description = "tf.data.Dataset"
    else:
        raise TypeError(
            "`data` must be an (x, y) tuple of arrays, a tf.data.Dataset of (x, y), "
            f"'digits' or a TFDS name. Received: data={_describe(data)}"
        )

    if isinstance(data, tuple) or isinstance(data, list):
        x, y = _check_array_pair(data[0], data[1], "data")
        if validation_data is None:
            train_idx, val_idx = stratified_split(y, validation_split, seed)
            if len(val_idx) == 0 or len(train_idx) == 0:
                raise ValueError(
                    f"`data` has too few examples ({len(x)}) for a validation split "
                    f"of {validation_split}. Received: {len(x)} examples"
                )
            xv, yv = x[val_idx], y[val_idx]
            x, y = x[train_idx], y[train_idx]
            split = (f"held out {len(val_idx)} of {len(val_idx) + len(train_idx)} examples "
                     f"({'stratified, ' if y.dtype.kind in 'biu' else ''}seed {seed})")
        else:
            xv, yv, split = None, None, "validation_data given"
        features = array_feature_stats(x)
        labels = _label_stats(y)
        source = tf.data.Dataset.from_tensor_slices((x, y))
        shuffle_buffer = len(x)
        train = source.shuffle(len(x), seed=shuffle_seed, reshuffle_each_iteration=True)
        n_train = len(x)
        x_shape, x_dtype = tuple(x.shape[1:]), str(x.dtype)
    else:
        dataset = data
        if _is_batched(dataset):
            dataset = dataset.unbatch()
            notes.append(f"the dataset was batched; it was re-batched to batch_size={batch_size}")
        x_spec, y_spec = dataset.element_spec
        if x_spec.dtype == tf.string or y_spec.dtype == tf.string:
            raise TypeError(
                "`data` must hold numeric tensors; encode strings first. "
                f"Received: x dtype {x_spec.dtype.name}, y dtype {y_spec.dtype.name}"
            )
        if validation_data is None:
            train_stream, val_stream, k = _stream_split(
                dataset, validation_split, seed, y_spec.dtype.is_integer)
            split = (f"held out every {k}th example"
                     f"{' of each class' if y_spec.dtype.is_integer else ''} (seed {seed}), streaming")
        else:
            train_stream, val_stream, split = dataset, None, "validation_data given"
        features, labels, n_train = _dataset_stats(train_stream, verbose)
        source = train_stream.apply(tf.data.experimental.assert_cardinality(n_train))
        train = train_stream.shuffle(shuffle_buffer, seed=shuffle_seed, reshuffle_each_iteration=True)
        x_shape, x_dtype = tuple(x_spec.shape), x_spec.dtype.name
        if val_stream is not None:
            xv = val_stream

    if validation_data is not None:
        if isinstance(validation_data, tf.data.Dataset):
            val = validation_data.unbatch() if _is_batched(validation_data) else validation_data
        elif isinstance(validation_data, (tuple, list)) and len(validation_data) == 2:
            vx, vy = _check_array_pair(validation_data[0], validation_data[1], "validation_data")
            if tuple(vx.shape[1:]) != x_shape:
                raise ValueError(
                    "`validation_data` x must have the same per-example shape as the "
                    f"training data {x_shape}. Received: {tuple(vx.shape[1:])}"
                )
            val = tf.data.Dataset.from_tensor_slices((vx, vy))
        else:
            raise TypeError(
                "`validation_data` must be an (x, y) tuple of arrays or a tf.data.Dataset. "
                f"Received: validation_data={_describe(validation_data)}"
            )
    elif isinstance(xv, tf.data.Dataset):
        val = xv
    else:
        val = tf.data.Dataset.from_tensor_slices((xv, yv))

    n_val = len(xv) if isinstance(xv, np.ndarray) and validation_data is None else _count(val)
    if n_val == 0:
        raise ValueError("The validation set is empty. Received: 0 validation examples")
    # Filtered streams have unknown cardinality; stating it lets Keras show
    # progress and not warn that the input "ran out of data".
    train = train.apply(tf.data.experimental.assert_cardinality(n_train))
    val = val.apply(tf.data.experimental.assert_cardinality(n_val))
    train = train.batch(batch_size).prefetch(tf.data.AUTOTUNE)
    val = val.batch(batch_size).prefetch(tf.data.AUTOTUNE)
    return Data(train, val, x_shape, x_dtype, features, labels, n_train, n_val,
                description, split, batch_size, notes, source=source,
                shuffle_buffer=shuffle_buffer, shuffle_seed=shuffle_seed)
