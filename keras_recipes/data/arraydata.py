"""The in-memory path, for the JAX and torch backends (and a PyDataset or a
generator on every backend): `ArrayData` holds numpy arrays, or the user's
batches read anew, and `make_array_data` is the entry point. Needs no
TensorFlow.

Epoch e is shuffled by a permutation seeded with (shuffle_seed, e), so a
resumed run sees the orders of an uninterrupted one.
"""

import dataclasses

import keras
import numpy as np

from keras_recipes.data.batches import BatchList
from keras_recipes.data.batches import EpochBatches
from keras_recipes.data.batches import GeneratorStream
from keras_recipes.data.batches import LiveBatches
from keras_recipes.data.batches import Listed
from keras_recipes.data.batches import live_description
from keras_recipes.data.batches import live_note
from keras_recipes.data.batches import batch_rows
from keras_recipes.data.batches import chunks
from keras_recipes.data.batches import dense_batch
from keras_recipes.data.batches import is_generator
from keras_recipes.data.batches import map_nest
from keras_recipes.data.batches import pack
from keras_recipes.data.checks import check_array_pair
from keras_recipes.data.checks import refuse_kept
from keras_recipes.data.core import Data
from keras_recipes.data.core import class_weight_table
from keras_recipes.data.core import describe
from keras_recipes.data.nests import as_nest
from keras_recipes.data.nests import concatenate
from keras_recipes.data.nests import flat
from keras_recipes.data.nests import generator_note
from keras_recipes.data.nests import input_nest
from keras_recipes.data.nests import is_structure
from keras_recipes.data.nests import kept_spec
from keras_recipes.data.nests import leaf_of
from keras_recipes.data.nests import read_generator
from keras_recipes.data.nests import rows
from keras_recipes.data.nests import shapes
from keras_recipes.data.nests import take
from keras_recipes.data.nests import varying_shapes
from keras_recipes.data.split import array_weights
from keras_recipes.data.split import held_out_batches
from keras_recipes.data.split import split_arrays
from keras_recipes.data.stats import batch_stats
from keras_recipes.data.stats import note_default_padding
from keras_recipes.datasets import load_digits


@dataclasses.dataclass
class ArrayData(Data):
    """`Data` held as numpy: `train_arrays` and `val_arrays` are
    (x, y, w) nests (w None without sample weights); `transform(batch,
    training)` is applied to every batch."""

    train_arrays: tuple = None
    val_arrays: tuple = None
    transform: object = None
    # A PyDataset read anew every epoch: (the PyDataset, its training batch
    # indices); None when the data is held in memory.
    live: tuple = None
    # Batches whose shapes vary, kept as given (issue 38 item 1): (the
    # training batches as first read, the validation batches); then
    # `train_arrays` and `val_arrays` are None.
    kept: tuple = None

    @property
    def steps_per_epoch(self):
        if self.live is None:
            return Data.steps_per_epoch.fget(self)
        steps = len(self.live[1])
        return min(steps, self.max_steps) if self.max_steps else steps

    def _order(self, shuffle, seeds=None):
        """Epoch -> the order of the rows; with `seeds`, one row per seed."""
        n = self.n_train

        def one(seed, epoch):
            if not shuffle:
                return np.arange(n)
            return np.random.default_rng([seed, epoch]).permutation(n)

        if seeds is None:
            return lambda epoch: one(self.shuffle_seed, epoch)
        return lambda epoch: np.stack([one(seed, epoch) for seed in seeds])

    def _transformed(self, arrays, training):
        batch = tuple(a for a in arrays if a is not None)
        return self.transform(batch, training) if self.transform else batch

    def first_batch(self, size=None):
        if self.kept:
            x, y, *_ = self._transformed(self.kept[0][0], True)
            return keras.tree.map_structure(lambda a: np.asarray(a)[:size], (x, y))
        index = self._order(True)(0)[:size or self.batch_size]
        batch = self._transformed(tuple(take(a, index) if a is not None else None
                                        for a in self.train_arrays), True)
        return dense_batch(batch[:2])

    def example_batches(self, split):
        if self.kept:
            for batch in self.kept[0 if split == "train" else 1]:
                yield batch[0], batch[1]
            return
        arrays = self.train_arrays if split == "train" else self.val_arrays
        for batch in chunks(arrays):
            yield dense_batch(batch)

    def training_batches(self, count):
        train, _ = self.fit_inputs(0, 1, True, None)
        for i in range(min(count, len(train))):
            x, y, *_ = train[i]
            yield dense_batch((x, y))

    def calibration_batches(self, count, through_fit=True):
        if not through_fit or self.live is not None:  # a live source is read once, as now
            return list(self.training_batches(count)), None
        train, _ = self.fit_inputs(0, 1, True, None)  # training's elements, fit's adapter
        return [train[i] for i in range(min(count, len(train)))], Listed

    def validation_arrays(self):
        if self.kept:  # batches whose shapes vary stay a list of batches
            parts = [self._transformed(b[:2], False) for b in self.kept[1]]
            return [p[0] for p in parts], concatenate([(p[1],) for p in parts])[0]
        parts = [dense_batch(self._transformed((x, y), False)) for x, y in chunks(self.val_arrays)]
        return concatenate([p[:2] for p in parts])  # dicts and tuples (several outputs) too

    def fit_inputs(self, first, last, shuffle, validation_steps, members=None,
                   class_weight=None):
        steps = self.steps_per_epoch
        table = class_weight_table(class_weight, self.labels) if members and class_weight else None
        if self.live is not None and not members:
            source, indices = self.live
            count = len(indices)
            order = ((lambda epoch: np.random.default_rng([self.shuffle_seed, epoch]).permutation(
                count)) if shuffle else (lambda epoch: np.arange(count)))
            train = LiveBatches(source, indices, order, steps, first, max(last - first, 1),
                                self.transform, self.devices)
            val_steps = self.validation_steps
            if validation_steps is not None:
                val_steps = min(val_steps, validation_steps)
            if self.kept:
                return train, BatchList(self.kept[1][:val_steps], self.transform, training=False)
            validation = EpochBatches(self.val_arrays, self.batch_size, val_steps,
                                      lambda epoch: np.arange(self.n_validation),
                                      transform=self.transform, training=False,
                                      devices=self.devices)
            return train, validation
        # At least one epoch's batches: Keras reads one to build, also when
        # a resumed run has nothing left to train.
        train = EpochBatches(self.train_arrays, self.batch_size, steps,
                             self._order(shuffle, members),
                             first, max(last - first, 1), self.transform, training=True,
                             class_table=table, devices=self.devices)
        n_val = self.n_validation
        val_steps = self.validation_steps
        if validation_steps is not None:
            val_steps = min(val_steps, validation_steps)
        validation = EpochBatches(self.val_arrays, self.batch_size, val_steps,
                                  lambda epoch: np.arange(n_val), transform=self.transform,
                                  training=False, tile=len(members) if members else None,
                                  devices=self.devices)
        return train, validation

    def standardize_targets(self, mean, std):
        shape = self.labels.shape or ()
        mean = np.asarray(mean, "float32").reshape(shape)
        std = np.asarray(std, "float32").reshape(shape)
        scale = lambda arrays: (arrays[0], (arrays[1].astype("float32") - mean) / std, arrays[2])
        self.train_arrays, self.val_arrays = scale(self.train_arrays), scale(self.val_arrays)

    def preprocess_in_pipeline(self, input_layers, augment, targets):
        y_shapes = [leaf.shape for leaf in flat(self.y_spec)]
        before = self.transform

        def transform(batch, training):
            if before is not None:
                batch = before(batch, training)
            x, y, *w = batch
            xs, ys = flat(x), flat(y)
            for i, layers in enumerate(input_layers):
                for layer in layers:
                    xs[i] = layer(xs[i], training=training) if layer in augment else layer(xs[i])
                if layers:
                    xs[i] = keras.ops.convert_to_numpy(xs[i])
            for i, (target, shape) in enumerate(zip(targets, y_shapes)):
                if target is not None:
                    mean = target[0].astype("float32").reshape(shape)
                    std = target[1].astype("float32").reshape(shape)
                    ys[i] = (np.asarray(ys[i], "float32") - mean) / std
            return (pack(x, xs), pack(y, ys), *w)

        self.transform = transform


def _pydataset(data, name="data"):
    n = len(data)
    if n == 0:
        raise ValueError(f"`{name}` is an empty PyDataset. Received: len({name})=0")
    batches = [tuple(data[i]) for i in range(n)]
    if varying_shapes(batches) is not None:
        raise ValueError(
            f"`{name}` yields batches of different shapes ({varying_shapes(batches)}): such "
            "batches are kept as given only as training data read as model.fit reads it (not "
            "with read_once=True, not for a stateful model), and validation batches beside "
            "them; otherwise pad every example to one length. Received: "
            f"{name} of varying shapes")
    return concatenate(batches)


def _resolve(data, sample_weight, steps_per_epoch, name="data"):
    """(description, the (x, y[, w]) arrays or nests, notes) for in-memory `data`."""
    if isinstance(data, BatchList):  # a generator's batches, read once (a PyDataset too)
        return "generator", concatenate(data.batches), [generator_note(len(data), data.ended)]
    if isinstance(data, keras.utils.PyDataset):
        arrays = _pydataset(data)
        return (f"PyDataset ({type(data).__name__}, {len(data)} batches)", arrays,
                [f"the PyDataset's {len(data)} batches were read into memory "
                 f"({batch_rows(arrays)} examples) and re-batched"])
    if isinstance(data, (tuple, list)) and len(data) in (2, 3) and all(
            d is None or is_structure(d) or np.ndim(d) >= 1 for d in data):
        if is_structure(data[0]) or is_structure(data[1]):
            return "arrays (several inputs or outputs)", tuple(data), []
        return "arrays", tuple(data), []
    raise TypeError(
        f"`{name}` must be an (x, y) or (x, y, sample_weight) tuple of arrays (numpy or pandas; "
        "dicts or lists of them for several inputs or outputs), a tf.data.Dataset of such "
        "elements, a keras.utils.PyDataset, a generator with steps_per_epoch, 'digits' or a "
        f"TFDS name. Received: {name}={describe(data)}"
    )


def _checked(arrays, sample_weight, name):
    """(x, y, w) as numpy nests, one row per example in every array."""
    if not (is_structure(arrays[0]) or is_structure(arrays[1])):
        x, y = check_array_pair(arrays[0], arrays[1], name)
        return x, y, array_weights(arrays, sample_weight, rows(x))
    x, y = input_nest(arrays[0]), as_nest(arrays[1])
    lengths = {rows(a) for a in flat(x) + flat(y)}
    if len(lengths) != 1:
        raise ValueError("Every input and output array must have one row per example. "
                         f"Received: lengths {sorted(lengths)}")
    return x, y, array_weights(arrays, sample_weight, lengths.pop())


def _stats(arrays, verbose, name, features=True, padding=None):
    x_leaves = [leaf_of(a) for a in flat(arrays[0])]
    return batch_stats(chunks(arrays), x_leaves, verbose, name, features, padding)


def _validation(validation_data, x_shape, weighted):
    if isinstance(validation_data, keras.utils.PyDataset):
        arrays = _pydataset(validation_data, "validation_data")
    elif isinstance(validation_data, (tuple, list)) and len(validation_data) in (2, 3):
        arrays = tuple(validation_data)
    else:
        raise TypeError(
            "`validation_data` must be an (x, y) or (x, y, sample_weight) tuple of arrays, a "
            "keras.utils.PyDataset or a tf.data.Dataset. "
            f"Received: validation_data={describe(validation_data)}")
    x, y, w = _checked(arrays, None, "validation_data")
    v_shape = shapes(map_nest(leaf_of, x))
    if v_shape != x_shape:
        raise ValueError(
            "`validation_data` x must have the same per-example shape as the "
            f"training data {x_shape}. Received: {v_shape}"
        )
    if weighted and w is None:
        w = np.ones(rows(flat(x)[0]), "float32")
    return x, y, w if weighted else None


def _live_split(data, validation_data, validation_split, seed):
    """A PyDataset split by whole batches, seeded: (the batches read once,
    the training batch indices, the validation batches or None, the split
    in words). Its training batches are read again every epoch."""
    n = len(data)
    if n == 0:
        raise ValueError("`data` is an empty PyDataset. Received: len(data)=0")
    batches = [tuple(data[i]) for i in range(n)]
    if validation_data is not None:
        return batches, list(range(n)), None, "validation_data given"
    val_idx = held_out_batches(n, validation_split, seed, (
        "Pass validation_data=, or, for a PyDataset, read_once=True (the batches read into "
        "memory and split by example)."))
    held = len(val_idx)
    train_idx = sorted(set(range(n)) - set(val_idx))
    split = (f"held out {held} of its first {n} batches whole (seed {seed}); training reads "
             "fresh batches" if isinstance(data, GeneratorStream) else
             f"held out {held} of its {n} batches whole (seed {seed}); the other "
             f"{n - held} are read anew every epoch")
    return batches, train_idx, [batches[i] for i in val_idx], split


def make_array_data(data, validation_data, validation_split, batch_size, seed, shuffle_seed,
                    verbose=0, sample_weight=None, steps_per_epoch=None, fixed_batch=False,
                    ordered=None, read_once=False, padding=None):
    """`keras_recipes.data.make_data` for in-memory data (arguments checked
    there; `seed` and `shuffle_seed` are integers). Returns an `ArrayData`."""
    live = None
    if is_generator(data):
        ended = getattr(data, "ended", False)
        data = BatchList(read_generator(data, steps_per_epoch))
        data.ended = ended
        if varying_shapes(data.batches) is not None:  # else re-batched, as before
            return _kept_data(data, validation_data, validation_split, seed, shuffle_seed,
                              verbose, padding, fixed_batch, ordered, "generator",
                              [generator_note(len(data), ended)])
    if isinstance(data, keras.utils.PyDataset) and not isinstance(data, BatchList) and not (
            read_once or ordered):
        batches, train_idx, val_batches, split = _live_split(data, validation_data,
                                                             validation_split, seed)
        if varying_shapes(batches) is not None:
            return _kept_data(data, validation_data, validation_split, seed, shuffle_seed,
                              verbose, padding, fixed_batch, ordered, live_description(data),
                              [live_note(data, _live_steps(data, train_idx))],
                              (batches, train_idx, val_batches, split))
        size = batch_rows(tuple(batches[train_idx[0]]))
        x, y, w = _checked(concatenate([batches[i] for i in train_idx]), sample_weight, "data")
        train = (x, y, w)
        if val_batches is None:
            val = _validation(validation_data, shapes(map_nest(leaf_of, x)), w is not None)
        else:
            val = _checked(concatenate(val_batches), None, "data")
        live = (data, _live_indices(data, train_idx))
        description = live_description(data)
        notes = [live_note(data, _live_steps(data, train_idx))]
        batch_size = size
        return _array_data(train, val, split, batch_size, description, notes, shuffle_seed,
                           verbose, fixed_batch, live, padding)
    if isinstance(data, str):  # the embedded digits (uses_tfdata sends TFDS names away)
        description, arrays, notes = "dataset 'digits' (embedded, in memory)", load_digits("train"), []
    else:
        description, arrays, notes = _resolve(data, sample_weight, steps_per_epoch)
        if len(arrays) == 3 and arrays[2] is None:
            arrays = arrays[:2]
    x, y, w = _checked(arrays, sample_weight, "data")
    if validation_data is None:
        train, val, split = split_arrays(x, y, w, validation_split, seed, ordered)
    else:
        train, split = (x, y, w), "validation_data given"
        val = _validation(validation_data, shapes(map_nest(leaf_of, x)), w is not None)
    return _array_data(train, val, split, batch_size, description, notes, shuffle_seed, verbose,
                       fixed_batch, None, padding)


def _live_indices(data, train_idx):
    """The batches an epoch reads: a PyDataset's training batches; for a
    generator read anew, `steps_per_epoch` fresh ones (model.fit's count):
    the batches held out came from its first read, not from each epoch."""
    return list(range(len(data))) if isinstance(data, GeneratorStream) else train_idx


def _live_steps(data, train_idx):
    return len(_live_indices(data, train_idx))


def _kept_data(data, validation_data, validation_split, seed, shuffle_seed, verbose, padding,
               fixed_batch, ordered, description, notes, split_made=None):
    """Batches whose shapes vary (a `padded_batch`, per-batch padding),
    kept as given and read anew every epoch (issue 38 item 1): split by
    whole batches, their statistics over one pass with the padding steps
    left out (`padding`, else 0.0: padded_batch's and pad_sequences'
    default)."""
    batches, train_idx, val_batches, split = split_made or _live_split(
        data, validation_data, validation_split, seed)
    varying = varying_shapes(batches)
    refuse_kept(varying, fixed_batch, ordered)
    train_batches = [_checked(batches[i], None, "data") for i in train_idx]
    spec = kept_spec(train_batches)
    if val_batches is None:
        val_batches = _validation_batches(validation_data, len(flat(train_batches[0][1])[0]))
    else:
        val_batches = [_checked(b, None, "data") for b in val_batches]
    for batch in val_batches:
        got = [np.shape(a)[1:] for a in flat(batch[0])]
        if any(len(g) != len(s) or any(d is not None and d != e for d, e in zip(s, g))
               for g, s in zip(got, spec)):
            raise ValueError(
                "`validation_data` x must have the per-example shape of the training data "
                f"{spec if len(spec) > 1 else spec[0]} (None: varies). Received: {got}")
    default_padding, padding = padding is None, 0.0 if padding is None else padding
    x_first = train_batches[0][0]
    x_leaves = [leaf_of(a) for a in flat(x_first)]
    x_leaves = [type(leaf)(tuple(s), leaf.dtype) for leaf, s in zip(x_leaves, spec)]
    pairs = ((b[0], b[1]) for b in train_batches)
    features, labels, n_train = batch_stats(pairs, x_leaves, verbose, "data", padding=padding)
    if default_padding:
        note_default_padding(features)
    _, val_labels, n_val = batch_stats(((b[0], b[1]) for b in val_batches), x_leaves, 0,
                                       "validation_data", features=False)
    x_spec = pack(x_first, x_leaves)
    y_spec = map_nest(leaf_of, train_batches[0][1])
    x_shape = shapes(x_spec)
    structured = isinstance(x_shape, dict) or is_structure(train_batches[0][1])
    weighted = train_batches[0][2] is not None
    size = len(flat(train_batches[0][1])[0])
    notes = [f"batches of varying shapes ({varying}), kept as given"] + notes
    return ArrayData(
        x_shape=x_shape, x_dtype=x_leaves[0].dtype if len(x_leaves) == 1 else "several",
        features=None if structured else features[0],
        labels=None if structured else labels[0], n_train=n_train, n_validation=n_val,
        description=description, split=split, batch_size=size, notes=notes,
        shuffle_seed=shuffle_seed, validation_labels=None if structured else val_labels[0],
        weighted=weighted, input_stats=features, output_labels=labels,
        output_val_labels=val_labels, x_spec=x_spec, y_spec=y_spec, live=(data, _live_indices(data, train_idx)),
        kept_batches=(len(train_batches), len(val_batches)),
        kept=([b[:2] + ((b[2],) if weighted else ()) for b in train_batches],
              [b[:2] + ((b[2],) if weighted else ()) for b in val_batches]))


def _validation_batches(validation_data, size):
    """`validation_data` for kept batches, as a list of batches: a
    PyDataset's own, arrays cut into batches of the training batch size."""
    if isinstance(validation_data, keras.utils.PyDataset):
        return [_checked(tuple(validation_data[i]), None, "validation_data")
                for i in range(len(validation_data))]
    if not (isinstance(validation_data, (tuple, list)) and len(validation_data) in (2, 3)):
        raise TypeError(
            "`validation_data` must be an (x, y) or (x, y, sample_weight) tuple of arrays, a "
            "keras.utils.PyDataset or a tf.data.Dataset. "
            f"Received: validation_data={describe(validation_data)}")
    x, y, w = _checked(tuple(validation_data), None, "validation_data")
    n = len(flat(y)[0])
    return [(take(x, slice(i, i + size)), take(y, slice(i, i + size)),
             None if w is None else w[i:i + size]) for i in range(0, n, size)]


def _array_data(train, val, split, batch_size, description, notes, shuffle_seed, verbose,
                fixed_batch, live, padding=None):
    features, labels, n_train = _stats(train, verbose, "data", padding=padding)
    if callable(batch_size):  # decided on the number of examples, now read
        batch_size = int(batch_size(n_train))
    _, val_labels, n_val = _stats(val, 0, "validation_data", features=False)
    x_spec, y_spec = map_nest(leaf_of, train[0]), map_nest(leaf_of, train[1])
    x_shape = shapes(x_spec)
    x_leaves = flat(train[0])
    structured = isinstance(x_shape, dict) or is_structure(train[1])
    return ArrayData(
        x_shape=x_shape, x_dtype=str(x_leaves[0].dtype) if len(x_leaves) == 1 else "several",
        features=None if structured else features[0],
        labels=None if structured else labels[0], n_train=n_train, n_validation=n_val,
        description=description, split=split, batch_size=batch_size, notes=notes,
        shuffle_seed=shuffle_seed, validation_labels=None if structured else val_labels[0],
        weighted=train[2] is not None, input_stats=features, output_labels=labels,
        output_val_labels=val_labels, x_spec=x_spec, y_spec=y_spec, train_arrays=train,
        val_arrays=val, drop_remainder=fixed_batch, live=live)
