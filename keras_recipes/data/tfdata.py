"""The tf.data path: `TFData` (tf.data pipelines, shuffled every pass, epochs
read in a seeded order) and `make_tf_data`, the entry point; TFDS names.
"""

import dataclasses

import numpy as np
import tensorflow as tf

from keras_recipes.data.checks import ragged_inputs
from keras_recipes.data.checks import refuse_kept
from keras_recipes.data.core import Data
from keras_recipes.data.core import EMBEDDED
from keras_recipes.data.core import Leaf
from keras_recipes.data.core import class_weight_table
from keras_recipes.data.core import epoch_seed
from keras_recipes.data.nests import concatenate
from keras_recipes.data.nests import is_structure
from keras_recipes.data.nests import leaves
from keras_recipes.data.nests import rows
from keras_recipes.data.nests import shapes
from keras_recipes.data.split import array_split
from keras_recipes.data.split import held_out_batches
from keras_recipes.data.stats import array_feature_stats
from keras_recipes.data.stats import label_stats
from keras_recipes.data.stats import note_default_padding
from keras_recipes.data.tfsources import as_numpy
from keras_recipes.data.tfsources import batch_dataset
from keras_recipes.data.tfsources import check_deterministic_order
from keras_recipes.data.tfsources import check_finite_cardinality
from keras_recipes.data.tfsources import count_elements
from keras_recipes.data.tfsources import dataset_stats
from keras_recipes.data.tfsources import densified
from keras_recipes.data.tfsources import from_arrays
from keras_recipes.data.tfsources import is_batched
from keras_recipes.data.tfsources import is_ragged_spec
from keras_recipes.data.tfsources import leaf_spec
from keras_recipes.data.tfsources import load_named
from keras_recipes.data.tfsources import numpy_elements
from keras_recipes.data.tfsources import resolve_source
from keras_recipes.data.tfsources import stream_split
from keras_recipes.data.tfsources import validation_dataset
from keras_recipes.data.tfsources import varying_batches


@dataclasses.dataclass
class TFData(Data):
    """`Data` as tf.data pipelines: batched `train` (shuffled every pass)
    and `validation`, and the unbatched, unshuffled training `source`."""

    train: tf.data.Dataset = None
    validation: tf.data.Dataset = None
    source: tf.data.Dataset = None
    shuffle_buffer: int = 10_000
    maps: list = dataclasses.field(default_factory=list)
    arrays: tuple = None  # (x, y, w) when the source is in-memory arrays
    ragged: bool = False  # an input is a tf.RaggedTensor: batched with ragged_batch
    _tensors: tuple = None

    def map_pairs(self, fn):
        """Applies `fn(x, y) -> (x, y)` to the training and validation data
        (sample weights, when there are any, pass through)."""
        def on_element(x, y, *weights):
            return tuple(fn(x, y)) + weights

        self.train = self.train.map(on_element)
        self.validation = self.validation.map(on_element)
        self.maps.append(on_element)

    def standardize_targets(self, mean, std):
        mean, std = np.asarray(mean, "float32"), np.asarray(std, "float32")
        shape = self.labels.shape or ()
        mean, std = mean.reshape(shape), std.reshape(shape)
        self.map_pairs(lambda x, y: (x, (tf.cast(y, tf.float32) - mean) / std))

    def preprocess_in_pipeline(self, input_layers, augment, targets):
        shapes = [tuple(spec.shape) for spec in tf.nest.flatten(self.y_spec)]
        # Build the layers eagerly first: variables made inside a dataset's map
        # function would belong to that function's graph.
        sample = tf.nest.flatten(next(iter(self.train.take(1)))[0])
        for leaf, layers in zip(sample, input_layers):
            for layer in layers:
                leaf = layer(leaf)

        def on_pair(x, y, training):
            xs = tf.nest.flatten(x)
            for i, layers in enumerate(input_layers):
                for layer in layers:
                    xs[i] = layer(xs[i], training=training) if layer in augment else layer(xs[i])
            ys = tf.nest.flatten(y)
            for i, (target, shape) in enumerate(zip(targets, shapes)):
                if target is not None:
                    mean = target[0].astype("float32").reshape(shape)
                    std = target[1].astype("float32").reshape(shape)
                    ys[i] = (tf.cast(ys[i], tf.float32) - mean) / std
            return tf.nest.pack_sequence_as(x, xs), tf.nest.pack_sequence_as(y, ys)

        self.train = self.train.map(lambda x, y, *w: on_pair(x, y, True) + w)
        self.validation = self.validation.map(lambda x, y, *w: on_pair(x, y, False) + w)
        self.maps.append(lambda x, y, *w: on_pair(x, y, True) + w)

    @staticmethod
    def pairs(dataset):
        """`dataset` as (x, y) elements (sample weights dropped)."""
        return dataset.map(lambda x, y, *weights: (x, y))

    def first_batch(self, size=None):
        dataset = self.pairs(self.train)
        if size is not None and not self.kept_batches:
            dataset = batch_dataset(dataset.unbatch(), size, ragged=self.ragged)
        x, y = next(iter(dataset.take(1)))
        return tf.nest.map_structure(lambda a: as_numpy(a)[:size], (x, y),
                                     expand_composites=False)

    def example_batches(self, split):
        dataset = {"train": self.train, "validation": self.validation}[split]
        if not self.kept_batches:  # batches kept as given are read as they are
            dataset = batch_dataset(dataset.unbatch(), 1024, ragged=self.ragged)
        for x, y, *_ in numpy_elements(dataset):
            yield x, y

    def training_batches(self, count):
        for x, y, *_ in numpy_elements(self.epochs(0, 1, shuffle=True).take(count)):
            yield x, y

    def calibration_batches(self, count, through_fit=True):
        # Training's dataset, its first elements cached in one read: every
        # probe's input is a run of them, element_spec unchanged, so fit's
        # traced step is training's (no Python generator in the pipeline).
        if not through_fit:
            return list(self.training_batches(count)), None
        cached = self.epochs(0, 1, shuffle=True).take(count).cache()
        elements = list(cached)
        where = {id(e): i for i, e in enumerate(elements)}

        def fit_input(chosen):  # a run of `elements`, cycled: the calibration's slices
            first = where[id(chosen[0])]
            return cached.repeat().skip(first).take(len(chosen))

        return elements, fit_input

    def validation_arrays(self):
        xs, ys = [], []
        for x, y in numpy_elements(self.pairs(self.validation)):
            xs.append(x)
            ys.append(y)
        # Batches kept as given (shapes vary), and ragged ones, stay a list of batches.
        ys = concatenate([(y,) for y in ys])[0]  # dicts and tuples (several outputs) too
        return (xs if self.kept_batches or self.ragged else concatenate([(x,) for x in xs])[0]), ys

    def fit_inputs(self, first, last, shuffle, validation_steps, members=None,
                   class_weight=None):
        validation = self.validation
        if validation_steps is not None:
            validation = validation.take(validation_steps)
        if not members:
            return self.epochs(first, last, shuffle), validation
        # Class weights weigh training only, as Keras' class_weight does.
        weigh = _class_weigher(class_weight, self.labels)
        tile = lambda v: tf.repeat(tf.expand_dims(v, 1), len(members), axis=1)
        validation = densified(validation).map(lambda *e: tf.nest.map_structure(tile, e))
        return self.epochs(first, last, shuffle, members, weigh), validation

    def epochs(self, first, last, shuffle=True, members=None, weigh=None):
        """Batches of epochs `first`..`last - 1`, one dataset.

        Epoch e is shuffled with a seed derived from (shuffle_seed, e), so an
        epoch's order does not depend on how many passes came before it: a
        resumed run sees exactly the orders of an uninterrupted one. With
        `members` (shuffle seeds), each element stacks one batch per member
        along axis 1, member i's in the order its own run would see.
        """
        def batches(shuffle_seed, epoch):
            ds = self._shuffled(shuffle_seed, epoch, shuffle)
            for fn in self.maps:
                ds = ds.map(fn)
            return ds

        def one_epoch(epoch):
            if not members:
                return batches(self.shuffle_seed, epoch)
            if self.arrays is not None:
                ds = self._gathered(members, epoch, shuffle)
                for fn in self.maps:
                    ds = ds.map(fn)
                return ds.map(weigh)
            # Stacked members' shares are dense: sparse tensors do not stack.
            shares = [densified(batches(seed, epoch)) for seed in members]
            stack = lambda *shares: tf.nest.map_structure(lambda *v: tf.stack(v, axis=1), *shares)
            return tf.data.Dataset.zip(tuple(shares)).map(stack).map(weigh)

        epochs = list(range(first, last))
        if not epochs:
            return one_epoch(first).take(0)
        steps = self.steps_per_epoch
        # Batches of epoch k come from the k-th dataset, epochs in order.
        choice = tf.data.Dataset.range(len(epochs)).flat_map(
            lambda i: tf.data.Dataset.from_tensors(i).repeat(steps))
        return tf.data.Dataset.choose_from_datasets(
            [one_epoch(e) for e in epochs], choice).prefetch(tf.data.AUTOTUNE)

    def _shuffled(self, shuffle_seed, epoch, shuffle):
        """One epoch's batches of the source, shuffled by (shuffle_seed, epoch)."""
        ds = self.source
        if shuffle:
            ds = ds.shuffle(self.shuffle_buffer, seed=epoch_seed(shuffle_seed, epoch),
                            reshuffle_each_iteration=False)
        if self.kept_batches:  # the user's batches, in a shuffled order
            return ds.take(self.steps_per_epoch)
        return batch_dataset(ds, self.batch_size, self.drop_remainder, self.ragged).take(
            self.steps_per_epoch)

    def _gathered(self, seeds, epoch, shuffle):
        """For in-memory arrays: batches `(batch, members, ...)` whose member
        i share is in the order `_shuffled(seeds[i], epoch)` gives (a
        shuffle's order does not depend on the elements), drawn on indices
        and read with one gather: no member holds a shuffle buffer of the
        whole data."""
        n = self.n_train
        orders = []
        for seed in seeds:
            index = tf.data.Dataset.range(n)
            if shuffle:
                index = index.shuffle(n, seed=epoch_seed(seed, epoch),
                                      reshuffle_each_iteration=False)
            orders.append(index)
        if self._tensors is None:  # converted once, shared by every epoch and member
            self._tensors = tuple(tf.nest.map_structure(tf.constant, a)
                                  for a in self.arrays if a is not None)
        tensors = self._tensors
        rows = tf.data.Dataset.zip(tuple(orders)).batch(
            self.batch_size, drop_remainder=self.drop_remainder).take(
            self.steps_per_epoch).map(lambda *index: tf.stack(index, axis=1))
        return rows.map(lambda index: tuple(
            tf.nest.map_structure(lambda a: tf.gather(a, index), a) for a in tensors))


def _class_weigher(class_weight, labels):
    """(x, y[, w]) -> (x, y, w * class_weight[class of y]) for targets
    stacked per member (`(batch, members)` ids, or one-hot rows); the
    identity without class weights."""
    if not class_weight:
        return lambda *element: element
    table = tf.constant(class_weight_table(class_weight, labels))

    def weigh(x, y, *w):
        if y.shape.rank > 2 and y.shape[-1] > 1:
            ids = tf.argmax(y, -1)
        else:
            ids = tf.cast(tf.reshape(y, tf.shape(y)[:2]), tf.int64)
        weights = tf.gather(table, ids)
        if w:
            weights = weights * tf.reshape(tf.cast(w[0], tf.float32), tf.shape(weights))
        return x, y, weights

    return weigh


def _kept_tf_data(dataset, varying, validation_data, validation_split, seed, shuffle_seed,
                  verbose, padding, fixed_batch, ordered, input_rank, description, notes):
    """A batched dataset whose batches vary in shape, kept as given (issue
    38 item 1): split by whole batches (seeded), read anew every epoch in a
    shuffled order, its statistics over one pass with the padding steps left
    out (`padding`, else 0.0: padded_batch's and pad_sequences' default)."""
    refuse_kept(varying, fixed_batch, ordered)
    n = count_elements(dataset)
    weighted = len(dataset.element_spec) == 3
    if validation_data is None:
        check_deterministic_order(dataset, "data", probe=8)
        indices = held_out_batches(n, validation_split, seed, "Pass validation_data=.")
        held, chosen = len(indices), tf.constant(indices, tf.int64)

        def held_out(index, element):
            return tf.reduce_any(tf.equal(index, chosen))

        def kept(index, element):
            return tf.logical_not(held_out(index, element))

        def untag(index, element):
            return element

        tagged = dataset.enumerate()
        source, val = tagged.filter(kept).map(untag), tagged.filter(held_out).map(untag)
        split = (f"held out {held} of its {n} batches whole (seed {seed}); the other {n - held} "
                 "train, in a new order every epoch")
        n_batches = (n - held, held)
    else:
        source, split = dataset, "validation_data given"
        val = _kept_validation(validation_data, dataset, weighted, input_rank)
        n_batches = (n, count_elements(val))
    features, labels, n_train = dataset_stats(source, verbose, padding=0.0 if padding is None
                                               else padding, batched=True)
    if padding is None:
        note_default_padding(features)
    _, val_labels, n_val = dataset_stats(val, 0, "validation_data", features=False, batched=True)
    source = source.apply(tf.data.experimental.assert_cardinality(n_batches[0]))
    val = val.apply(tf.data.experimental.assert_cardinality(n_batches[1]))
    first = next(iter(source.take(1)))
    size = int(tf.shape(tf.nest.flatten(first[1])[0])[0])
    spec = source.element_spec
    unbatched = lambda t: Leaf(leaf_spec(t).shape[1:], leaf_spec(t).dtype)
    x_spec, y_spec = tf.nest.map_structure(unbatched, spec[0]), tf.nest.map_structure(
        unbatched, spec[1])
    x_shape = shapes(x_spec)
    x_leaves = tf.nest.flatten(spec[0])
    structured = isinstance(x_shape, dict) or len(labels) > 1 or is_structure(spec[1])
    return TFData(
        x_shape=x_shape, x_dtype=x_leaves[0].dtype.name if len(x_leaves) == 1 else "several",
        features=None if structured else features[0],
        labels=None if structured else labels[0], n_train=n_train, n_validation=n_val,
        description=description, split=split, batch_size=size,
        notes=[f"batches of varying shapes ({varying}), kept as given"] + notes,
        shuffle_seed=shuffle_seed, validation_labels=None if structured else val_labels[0],
        weighted=weighted, input_stats=features, output_labels=labels,
        output_val_labels=val_labels, x_spec=x_spec, y_spec=y_spec,
        train=source.shuffle(n_batches[0], seed=shuffle_seed, reshuffle_each_iteration=True),
        validation=val.prefetch(tf.data.AUTOTUNE), source=source, shuffle_buffer=n_batches[0],
        kept_batches=n_batches)


def _kept_validation(validation_data, dataset, weighted, input_rank):
    """`validation_data` beside kept batches, as batches: a batched dataset
    as given; arrays or an unbatched dataset of one shape in batches of the
    training data's first batch size."""
    size = int(tf.shape(tf.nest.flatten(next(iter(dataset.take(1)))[1])[0])[0])
    if isinstance(validation_data, tf.data.Dataset) and is_batched(
            validation_data, "validation_data", input_rank):
        check_finite_cardinality(validation_data, "validation_data")
        val = validation_data
    else:
        val = validation_dataset(validation_data, None, weighted, input_rank)
        if any(None in s.shape for s in tf.nest.flatten(val.element_spec[0])):
            raise ValueError(
                "`validation_data` holds examples of varying shapes, unbatched: batch it as the "
                "training data is (padded_batch). Received: an unbatched dataset of element "
                f"spec {val.element_spec[0]}")
        val = val.batch(size)
    if weighted and len(val.element_spec) == 2:
        val = val.map(lambda x, y: (x, y, tf.ones(tf.shape(tf.nest.flatten(y)[0])[:1])))
    elif not weighted and len(val.element_spec) == 3:
        val = val.map(lambda x, y, w: (x, y))
    return val


def make_tf_data(data, validation_data, validation_split, batch_size, seed, shuffle_seed,
                 verbose=0, sample_weight=None, steps_per_epoch=None, data_dir=None,
                 shuffle_buffer=10_000, input_rank=None, fixed_batch=False, ordered=None,
                 strings=False, padding=None):
    """`keras_recipes.data.make_data` on the tf.data path (arguments checked
    there; `seed` and `shuffle_seed` are integers). Returns a `TFData`."""
    notes = []
    if isinstance(data, str):
        description = f"dataset {data!r}" + (" (embedded, via TFDS)" if data in EMBEDDED else " (TFDS)")
        data = load_named(data, data_dir)
    else:
        description, data, more = resolve_source(data, sample_weight, steps_per_epoch, strings)
        notes += more

    val_source = None
    if isinstance(data, (tuple, list)):
        (x, y, w), held_out, split = array_split(data, validation_data, validation_split, seed,
                                                  sample_weight, ordered)
        features, labels = [array_feature_stats(x, padding)], [label_stats(y)]
        source = from_arrays(x, y, w)
        arrays = (x, y, w)
        shuffle_buffer, n_train = len(x), len(x)
        x_shape, x_dtype = tuple(x.shape[1:]), str(x.dtype)
        spec_x, ragged = source.element_spec[0], False
        if held_out is not None:
            val_source = from_arrays(*held_out)
            val_labels, n_val = [label_stats(held_out[1])], len(held_out[0])
    else:
        arrays = None
        check_finite_cardinality(data, "data")
        dataset = data
        if is_batched(dataset, "data", input_rank):
            varying = varying_batches(dataset)
            if varying is not None:
                return _kept_tf_data(dataset, varying, validation_data, validation_split, seed,
                                     shuffle_seed, verbose, padding, fixed_batch, ordered,
                                     input_rank, description, notes)
            dataset = dataset.unbatch()
            notes.append("the dataset was batched; it was re-batched to batch_size={batch_size}")
        spec = dataset.element_spec
        x_leaves = [leaf for _, leaf in leaves(spec[0])]
        ragged = is_ragged_spec(spec) or bool(ragged_inputs(validation_data))
        read = dict(ragged=ragged, x_leaves=[leaf_spec(leaf) for leaf in x_leaves])
        if len(x_leaves) == 1 and x_leaves[0].dtype == tf.string and not strings:
            raise TypeError(
                "`data` holds strings, and the model does not take them itself (no input "
                "declared keras.Input(dtype='string') feeding a TextVectorization or "
                "StringLookup): encode the text first, or put such a layer in the model. "
                f"Received: x dtype {x_leaves[0].dtype.name}")
        integer = len(tf.nest.flatten(spec[1])) == 1 and tf.nest.flatten(spec[1])[0].dtype.is_integer
        if validation_data is None and ordered:
            raise ValueError(
                "A stateful model reads consecutive batches as one stream, so its validation "
                "set must be a separate stretch of the series, not examples taken out of it: "
                "pass validation_data=. Received: a dataset and validation_data=None")
        if validation_data is None:
            check_deterministic_order(dataset, "data")
            train_stream, val_source, k = stream_split(dataset, validation_split, seed, integer)
            split = (f"held out every {k}th example"
                     f"{' of each class' if integer else ''} (seed {seed}), streaming")
            _, val_labels, n_val = dataset_stats(val_source, 0, "data", features=False, **read)
        else:
            train_stream, split = dataset, "validation_data given"
        features, labels, n_train = dataset_stats(train_stream, verbose, padding=padding, **read)
        source = train_stream.apply(tf.data.experimental.assert_cardinality(n_train))
        x_shape = shapes(spec[0])
        x_dtype = x_leaves[0].dtype.name if len(x_leaves) == 1 else "several"
        spec_x = spec[0]
    weighted = len(source.element_spec) == 3
    train = source.shuffle(shuffle_buffer, seed=shuffle_seed, reshuffle_each_iteration=True)

    if validation_data is not None:
        val_source = validation_dataset(validation_data, x_shape, weighted, input_rank)
        _, val_labels, n_val = dataset_stats(val_source, 0, "validation_data", features=False,
                                              ragged=ragged)
    if n_val == 0:
        raise ValueError("The validation set is empty. Received: 0 validation examples")
    # Filtered streams have unknown cardinality; stating it lets Keras show
    # progress and not warn that the input "ran out of data".
    train = train.apply(tf.data.experimental.assert_cardinality(n_train))
    val = val_source.apply(tf.data.experimental.assert_cardinality(n_val))
    if callable(batch_size):  # decided on the number of examples, now read
        batch_size = int(batch_size(n_train))
    notes = [n.format(batch_size=batch_size) if "{batch_size}" in n else n for n in notes]
    train = batch_dataset(train, batch_size, fixed_batch, ragged).prefetch(tf.data.AUTOTUNE)
    val = batch_dataset(val, batch_size, fixed_batch, ragged).prefetch(tf.data.AUTOTUNE)
    spec_y = source.element_spec[1]
    structured = isinstance(x_shape, dict) or len(labels) > 1 or is_structure(
        source.element_spec[1])
    return TFData(
        x_shape=x_shape, x_dtype=x_dtype, features=None if structured else features[0],
        labels=None if structured else labels[0], n_train=n_train, n_validation=n_val,
        description=description, split=split, batch_size=batch_size, notes=notes,
        shuffle_seed=shuffle_seed, validation_labels=None if structured else val_labels[0],
        weighted=weighted, input_stats=features, output_labels=labels,
        output_val_labels=val_labels, x_spec=tf.nest.map_structure(leaf_spec, spec_x),
        y_spec=tf.nest.map_structure(leaf_spec, spec_y), train=train, validation=val,
        source=source, shuffle_buffer=shuffle_buffer, arrays=arrays, drop_remainder=fixed_batch,
        ragged=ragged)
