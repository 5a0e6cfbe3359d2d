"""The in-memory path's batches, as `keras.utils.PyDataset`s Keras' own adapter
reads: arrays cut per epoch (`EpochBatches`), batches kept as a list
(`BatchList`), a PyDataset or a generator read anew every epoch
(`LiveBatches`, `GeneratorStream`).
"""

import inspect
import warnings

import keras
import numpy as np

from keras_recipes.data.checks import densify
from keras_recipes.data.checks import to_tf_sparse
from keras_recipes.data.core import DeviceSplit
from keras_recipes.data.core import class_ids
from keras_recipes.data.nests import flat
from keras_recipes.data.nests import read_generator
from keras_recipes.data.nests import rows
from keras_recipes.data.nests import take


_CHUNK = 1024


def map_nest(fn, nest):
    if isinstance(nest, dict):
        return {k: fn(a) for k, a in nest.items()}
    if isinstance(nest, (list, tuple)):
        return tuple(fn(a) for a in nest)
    return fn(nest)


def pack(like, values):
    """`values` (in `flat` order) in the structure of `like`."""
    if isinstance(like, dict):
        return dict(zip(sorted(like, key=str), values))
    if isinstance(like, (list, tuple)):
        return tuple(values)
    return values[0]


def batch_rows(arrays):
    return rows(flat(arrays[0])[0])


def tf_sparse_batch(batch):
    """A batch with its scipy.sparse inputs as `tf.SparseTensor` (the
    TensorFlow backend, whose PyDataset adapter does not take scipy)."""
    x, *rest = batch
    return (pack(x, [to_tf_sparse(a) for a in flat(x)]), *rest)


def dense_batch(batch):
    """A batch with its sparse inputs made dense (for the probes and the audit,
    which call the model or read values directly; training keeps them sparse)."""
    x, *rest = batch
    return (pack(x, [densify(a) for a in flat(x)]), *rest)


def pad_for_shards(batch, shards, scale):
    """A validation batch whose rows divide over `shards` devices: padded
    with copies of its first row at weight 0, every real row's weight
    multiplied by `scale`. Keras weighs each batch's mean loss by its row
    count and divides a weighted loss by the rows, so with `scale` = (rows
    read, padding included) / (real rows) over the whole pass, `val_loss` and
    the weighted metrics are the real rows' own."""
    x, y, *w = batch
    n = batch_rows(batch)
    pad = -n % shards
    index = np.concatenate([np.arange(n), np.zeros(pad, int)])
    weights = (np.asarray(w[0], "float32") if w else np.ones(n, "float32")) * np.float32(scale)
    if pad:
        x, y, weights = take(x, index), take(y, index), weights[index]
        weights[n:] = 0.0
    return x, y, weights


def chunks(arrays, size=_CHUNK):
    for start in range(0, batch_rows(arrays), size):
        index = slice(start, start + size)
        yield take(arrays[0], index), take(arrays[1], index)


class EpochBatches(keras.utils.PyDataset):
    """Batches of (x, y[, w]) arrays for `model.fit`: `epochs` epochs of
    `steps` batches each, epoch `first + k` ordered by `order(first + k)`.
    Read by index, it holds no state: Keras may read ahead or start over.
    With one order per ensemble member, element i stacks the members' batches
    (`(batch, members, ...)`)."""

    def __init__(self, arrays, batch_size, steps, order, first=0, epochs=1, transform=None,
                 training=True, tile=None, class_table=None, devices=None):
        super().__init__()
        self.arrays = tuple(a for a in arrays if a is not None)
        self.batch_size, self.steps, self.order = batch_size, steps, order
        self.first, self.epochs = first, epochs
        self.transform, self.training = transform, training
        # Ensembles: `order(epoch)` may give one order per member (rows of a
        # 2-D array: batches `(batch, members, ...)`); `tile` repeats every
        # batch along a member axis; `class_table` turns class ids into
        # sample weights.
        self.tile, self.class_table = tile, class_table
        # keras.distribution's devices (a `DeviceSplit`): a training batch is
        # cut to a multiple of them; validation is padded, each real row
        # weighted by `scale` (`pad_for_shards`); a process reads its share.
        self.devices, self.scale = devices or DeviceSplit(), 1.0
        self.shards = self.devices.shards
        if self.shards > 1 and not training:
            _, self.scale = self.devices.padding(min(steps * batch_size, len(order(first))))
        self._cached = (None, None)
        # Sparse inputs stay sparse where Keras feeds them so: scipy rows to
        # JAX's adapter, a tf.SparseTensor to TensorFlow's (its PyDataset
        # adapter does not take scipy); torch's adapter, and stacked ensemble
        # members, get them dense.
        self.dense = keras.backend.backend() == "torch"
        self.tf_sparse = keras.backend.backend() == "tensorflow"

    def __len__(self):
        return self.steps * self.epochs

    def __getitem__(self, i):
        epoch, step = self.first + i // self.steps, i % self.steps
        if self._cached[0] != epoch:
            self._cached = (epoch, self.order(epoch))
        order = self._cached[1]
        rows = slice(step * self.batch_size, (step + 1) * self.batch_size)
        order = order[..., rows]
        if self.training and self.shards > 1:  # the epoch's last rows left out
            order = order[..., :order.shape[-1] - order.shape[-1] % self.shards]
            order = order[..., self.devices.share(order.shape[-1])]
        if order.ndim == 2:  # one order per ensemble member
            shares = [dense_batch(self._share(tuple(take(a, o) for a in self.arrays)))
                      for o in order]
            return keras.tree.map_structure(lambda *v: np.stack(v, axis=1), *shares)
        batch = self._share(tuple(take(a, order) for a in self.arrays))
        if self.scale != 1.0:
            batch = pad_for_shards(batch, self.shards, self.scale)
        if not self.training and self.devices.processes > 1 and self.shards > 1:
            index = np.arange(batch_rows(batch))[self.devices.share(batch_rows(batch))]
            batch = tuple(take(a, index) for a in batch)
        if self.tile:
            batch = keras.tree.map_structure(
                lambda v: np.repeat(np.asarray(v)[:, None], self.tile, axis=1), dense_batch(batch))
        if self.dense:
            return dense_batch(batch)
        return tf_sparse_batch(batch) if self.tf_sparse else batch

    def _share(self, batch):
        batch = self.transform(batch, self.training) if self.transform else batch
        if self.class_table is None:
            return batch
        weights = self.class_table[class_ids(batch[1])]
        if len(batch) == 3:
            weights = weights * np.asarray(batch[2], "float32").reshape(weights.shape)
        return (batch[0], batch[1], weights)


class Listed(keras.utils.PyDataset):
    """Elements held as a list, read by index as they are (the calibration's
    probes: training's own elements, through the same adapter)."""

    def __init__(self, elements):
        super().__init__()
        self.elements = elements

    def __len__(self):
        return len(self.elements)

    def __getitem__(self, i):
        return self.elements[i]


class BatchList(keras.utils.PyDataset):
    """Batches held as a list (a generator's, read once; a validation set
    kept in batches), read by index through `transform`."""

    ended = False  # a generator's: it ended after these batches

    def __init__(self, batches, transform=None, training=True):
        super().__init__()
        self.batches, self.transform, self.training = batches, transform, training

    def __len__(self):
        return len(self.batches)

    def __getitem__(self, i):
        batch = tuple(a for a in self.batches[i] if a is not None)
        return self.transform(batch, self.training) if self.transform else batch


class GeneratorStream(keras.utils.PyDataset):
    """A generator that yields more batches than `steps_per_epoch`, read as
    `model.fit` reads it (issue 38 item 3): its first `steps_per_epoch`
    batches (`first`, indexed as a PyDataset's) give the statistics and the
    validation batches; training reads fresh batches from it every step
    (`fresh`), so augmentation or new data it makes keeps coming. Should it
    end, the later steps reread its first batches, with a warning saying
    when (model.fit stops there: "ran out of data")."""

    def __init__(self, generator, first, pending):
        super().__init__()
        self.generator, self.first, self.pending = generator, list(first), [tuple(pending)]
        self.read = len(self.first) + 1
        self.ended_at = None  # the number of batches it gave, once it ended

    def __len__(self):
        return len(self.first)

    def __getitem__(self, i):
        return self.first[i]

    def fresh(self, index):
        """The generator's next batch; `first[index]` once it has ended."""
        if self.pending:
            return self.pending.pop()
        if self.ended_at is None:
            try:
                batch = tuple(next(self.generator))
                self.read += 1
                return batch
            except StopIteration:
                self.ended_at = self.read
                warnings.warn(
                    f"The generator ended after {self.read} batches, in training: the later "
                    "steps reread its first batches (model.fit would stop here, 'ran out of "
                    "data'). A generator read as model.fit reads it should not end; pass "
                    "read_once=True to read its first steps_per_epoch batches once instead.",
                    RuntimeWarning, stacklevel=2)
        return self.first[index]


def stream_or_batches(generator, steps_per_epoch):
    """A generator's first `steps_per_epoch` batches and a peek past them:
    a `GeneratorStream` when it yields more (read anew every epoch, as
    `model.fit` reads it), else a `FiniteBatches` iterator over the batches
    it gave (read once: there is nothing more to read)."""
    batches = read_generator(generator, steps_per_epoch)
    try:
        more = next(generator)
    except StopIteration:
        return FiniteBatches(batches)
    return GeneratorStream(generator, batches, more)


class FiniteBatches:
    """An iterator over the batches of a generator that ended after them."""

    ended = True

    def __init__(self, batches):
        self._batches = iter(batches)

    def __iter__(self):
        return self

    def __next__(self):
        return next(self._batches)


class LiveBatches(keras.utils.PyDataset):
    """The user's PyDataset read anew every epoch, as `model.fit` reads it
    (issue 38 item 3): epoch `first + i // steps` reads the user's training
    batches `indices` in the order `order(epoch)` gives (a seeded
    permutation when shuffled, as model.fit shuffles a PyDataset's batches),
    its first `steps`, through `transform`; the user's `on_epoch_end` runs
    between epochs, so augmentation or reshuffling it does per epoch
    happens."""

    def __init__(self, source, indices, order, steps, first=0, epochs=1, transform=None,
                 devices=None):
        super().__init__()
        self.source, self.indices, self.order = source, list(indices), order
        self.steps, self.first, self.epochs = steps, first, epochs
        self.transform, self.devices = transform, devices or DeviceSplit()
        self._epoch, self._positions = None, None

    def __len__(self):
        return self.steps * self.epochs

    def __getitem__(self, i):
        epoch = self.first + i // self.steps
        if epoch != self._epoch:
            if self._epoch is not None:
                self.source.on_epoch_end()
            self._epoch, self._positions = epoch, self.order(epoch)
        index = self.indices[self._positions[i % self.steps]]
        read = self.source.fresh(index) if isinstance(self.source, GeneratorStream) else (
            self.source[index])
        batch = tuple(a for a in tuple(read) if a is not None)
        rows = batch_rows(batch)
        if self.devices.shards > 1:  # keras.distribution: the rows that divide, this process's
            keep = np.arange(rows - rows % self.devices.shards)
            batch = tuple(take(a, keep[self.devices.share(len(keep))]) for a in batch)
        # Class weights are model.fit's own here (one model, not stacked members).
        return self.transform(batch, True) if self.transform else batch


def is_generator(data):
    return inspect.isgenerator(data) or (hasattr(data, "__next__") and hasattr(data, "__iter__"))


def live_description(data):
    """A PyDataset or a generator read anew, in the data row."""
    if isinstance(data, GeneratorStream):
        return "generator"
    return f"PyDataset ({type(data).__name__}, {len(data)} batches)"


def live_note(data, steps):
    """The minibatch row's note for a PyDataset or a generator read anew."""
    if isinstance(data, GeneratorStream):
        return (f"generator: read anew every epoch, as model.fit reads it ({steps} fresh batches "
                f"an epoch); its first {len(data)} batches (steps_per_epoch) gave the statistics "
                "and any validation batches; it yielded more, so it is not read once "
                "(read_once=True reads those batches once and reshuffles them every epoch)")
    return ("its batches are read anew every epoch, as model.fit reads them (read_once=True "
            "reads them once into memory and re-batches)")
