"""What both data paths share, on every backend: the `Data` interface and
the summaries it carries (`FeatureStats`, `LabelStats`, `Leaf`).
`keras_recipes.data.make_data` picks the path.
"""

import dataclasses

import numpy as np

from keras_recipes.datasets.digits import DIGITS_NAME


EMBEDDED = ("digits", DIGITS_NAME)


# Distinct label values counted exactly up to this many.
DISTINCT_CAP = 1000


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
    distinct: int = 0  # distinct values seen, capped at DISTINCT_CAP + 1
    mean: np.ndarray = None  # per column (last axis), float64
    std: np.ndarray = None
    dtype: str = ""

    @property
    def binary(self):
        return self.kind == "integer" and self.min >= 0 and self.max <= 1

    def evidence(self):
        """The values that decided `kind`, in words."""
        values = (f"{self.distinct} distinct values" if self.distinct <= DISTINCT_CAP
                  else f"more than {DISTINCT_CAP} distinct values")
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


@dataclasses.dataclass(frozen=True)
class DeviceSplit:
    """How a global batch is split under keras.distribution: over `shards`
    devices on the batch axis, this process feeding the consecutive rows of
    the batch axis's positions `first` to `stop` (its devices'): half each
    for two processes of one device, all of them when the batch axis is not
    split across processes (a ModelParallel mesh whose model axis is)."""

    shards: int = 1
    first: int = 0
    stop: int = None
    processes: int = 1

    def share(self, rows):
        """This process's rows of a batch of `rows` (a multiple of `shards`)."""
        size = rows // self.shards
        return slice(self.first * size, (self.shards if self.stop is None else self.stop) * size)

    def padding(self, rows):
        """(padding rows, the weight of every real row) for a validation pass
        reading `rows` real rows: the row-weighted means stay theirs."""
        pad = -rows % self.shards
        return pad, (rows + pad) / rows


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
    # How every batch is split over keras.distribution's devices on JAX: the
    # batches are cut to fit, and each process reads its share (`batches`).
    devices: "DeviceSplit" = None

    @property
    def structured(self):
        """Several inputs or outputs (dicts, lists or tuples of tensors)."""
        return self.features is None

    def limit_steps(self, steps):
        """At most `steps` batches per epoch (`steps_per_epoch=`)."""
        self.max_steps = int(steps)

    def split_over(self, shards, span=None, processes=1):
        """Every batch split into `shards` parts (keras.distribution's
        devices), this process (of `processes`) feeding the rows of the
        batch axis's positions `span` (`(first, stop)`; all by default)."""
        first, stop = span or (0, int(shards))
        self.devices = DeviceSplit(int(shards), int(first), int(stop), int(processes))

    @property
    def shards(self):
        return 1 if self.devices is None else self.devices.shards

    @property
    def steps_per_epoch(self):
        if self.kept_batches:
            steps = self.kept_batches[0]
        else:
            # A last batch of fewer rows than the shards is left out whole.
            drop = self.drop_remainder or self.n_train % self.batch_size < self.shards
            steps = (self.n_train // self.batch_size if drop
                     else -(-self.n_train // self.batch_size))
        return min(steps, self.max_steps) if self.max_steps else steps

    def shard_cut(self):
        """(training examples left out per epoch, validation padding rows, the
        weight of every real validation row) for batches split into `shards`."""
        if self.shards <= 1 or self.drop_remainder or self.kept_batches:
            return 0, 0, 1.0
        return (self.n_train % self.shards, *self.devices.padding(self.n_validation))

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

    def calibration_batches(self, count, through_fit=True):
        """The calibration's batches: `(elements, fit_input)`.

        With `through_fit` and where this path can, `elements` are the
        first `count` elements of the first epoch as `model.fit` reads them
        in training (sample weights included), and `fit_input(chosen)` is an
        input of the same form that `model.fit` reads `chosen` from: the
        probes then run the step training runs, traced (and compiled) once.
        Otherwise `(x, y)` pairs (`training_batches`) and None."""
        return list(self.training_batches(count)), None

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
