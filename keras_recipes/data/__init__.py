"""Data: turning what `model.fit` accepts into train and validation
batches plus the statistics the recipe decides from.

Two paths feed `model.fit`, with one interface (`core.Data`), in the manner
of Keras' own `data_adapters`: in-memory data (arrays, pandas, dicts/lists
of arrays, a `PyDataset`, a generator) on the JAX and torch backends goes
through `arraydata` (numpy and Keras' own `PyDataset` adapter, no
TensorFlow); tf.data, TFDS names, and every input on the TensorFlow backend
go through `tfdata`. `core` holds what both share. `make_data` (here) picks
the path.
"""

import sys

import keras
import numpy as np

from keras_recipes.data import arraydata
from keras_recipes.data import batches
from keras_recipes.data.checks import refuse_ragged
from keras_recipes.data.core import Data
from keras_recipes.data.core import EMBEDDED
from keras_recipes.data.core import Leaf
from keras_recipes.data.core import class_ids
from keras_recipes.data.nests import leaves
from keras_recipes.data.split import check_split
from keras_recipes.data.split import stratified_split
from keras_recipes.data.stats import target_scale
from keras_recipes.data.stats import target_scale_of

__all__ = ["Data", "EMBEDDED", "Leaf", "class_ids", "leaves", "load_named", "make_data",
           "stratified_split", "target_scale", "target_scale_of", "uses_tfdata"]


def _tensorflow_or_none():
    """TensorFlow if the program has imported it (a tf.data.Dataset cannot
    exist otherwise), else None: nothing here imports it to find out."""
    tf = sys.modules.get("tensorflow")
    return tf if tf is not None and hasattr(tf, "data") else None


def _is_tf_dataset(value):
    tf = _tensorflow_or_none()
    return tf is not None and isinstance(value, tf.data.Dataset)


def _tfdata(what):
    """`keras_recipes.tfdata`, or a clear error naming what needed it."""
    try:
        # Deferred: the tf.data path imports TensorFlow, which JAX and torch
        # users may not have.
        from keras_recipes.data import tfdata
    except ImportError as error:
        raise ImportError(
            f"{what} needs TensorFlow (tf.data), which cannot be imported here ({error}). "
            "Install it (`pip install tensorflow`), or pass in-memory data (arrays, pandas, "
            "dicts of arrays, a keras.utils.PyDataset), which runs on the JAX and torch "
            f"backends without it. Received: {what}") from None
    return tfdata


def uses_tfdata(data, validation_data=None):
    """Whether `make_data` takes the tf.data path for these inputs. A
    PyDataset takes the in-memory path on every backend: read anew every
    epoch as `model.fit` reads it, or once into memory with `read_once`. So
    does a scipy.sparse matrix: its rows are split and batched as scipy,
    each batch fed sparse (tf.data would slice it example by example)."""
    if isinstance(data, keras.utils.PyDataset) and not _is_tf_dataset(validation_data):
        return False
    if (isinstance(data, (tuple, list)) and len(data) in (2, 3) and hasattr(data[0], "tocsr")
            and not _is_tf_dataset(validation_data)):
        return False  # a scipy.sparse matrix: split and batched as rows, fed sparse
    if isinstance(data, str):
        return data not in EMBEDDED or keras.backend.backend() == "tensorflow"
    return (_is_tf_dataset(data) or _is_tf_dataset(validation_data)
            or keras.backend.backend() == "tensorflow")


def load_named(name, data_dir=None, split="train"):
    """An unbatched (x, y) tf.data dataset for the embedded digits or a TFDS name."""
    return _tfdata(f"data={name!r} (a TFDS dataset)").load_named(name, data_dir, split)


def make_data(data, validation_data=None, validation_split=0.2, batch_size=128,
              seed=None, data_dir=None, shuffle_buffer=10_000, verbose=0, shuffle_seed=None,
              sample_weight=None, input_rank=None, steps_per_epoch=None, fixed_batch=False,
              ordered=False, strings=False, read_once=False, padding=None):
    """Resolves `data` into batched train/validation data plus statistics.

    Args:
        data: `(x, y)` or `(x, y, sample_weight)` arrays (numpy or pandas;
            dicts or lists of them for several inputs or outputs), a
            `tf.data.Dataset` of such elements (batched or not), a
            `keras.utils.PyDataset`, a generator (with `steps_per_epoch`),
            `"digits"` (embedded) or a TFDS name.
        validation_data: The same forms; if `None`, a seeded (stratified for
            integer labels) `validation_split` of `data`.
        batch_size: Integer. Batch size of both returned datasets; or a
            function of the number of training examples returning it, for
            data whose size is known only once read (a dataset, a
            PyDataset): every form then gets the same batch size.
        seed: Integer or None, for the split (and the shuffling, unless
            `shuffle_seed` is given).
        data_dir: TFDS data directory for named datasets.
        sample_weight: Array of per-example weights for array data.
        input_rank: The model's input rank with the batch axis, when known:
            tells a batched dataset (also with `drop_remainder=True`) apart.
        fixed_batch: Every batch at exactly `batch_size` (the model's inputs
            fix it): a last partial batch is dropped, in training and
            validation.
        ordered: A stateful model's data: the validation split is the last
            whole batches, in order.
        strings: The model takes string inputs itself (TextVectorization,
            StringLookup): a text input is passed through, not refused.
        read_once: Read a PyDataset's batches, or a generator's first
            `steps_per_epoch` batches, once into memory and re-batch them;
            by default a PyDataset's batches are kept and read anew every
            epoch, and a generator that yields more than `steps_per_epoch`
            batches is read anew every epoch, as `model.fit` reads them.
        padding: The value whose steps of a sequence input are padding (a
            `Masking` layer's `mask_value`), left out of the statistics; or
            None. Batches whose shapes vary (a `padded_batch`) are kept as
            given, and their padding is 0.0 unless this says otherwise.

    Returns:
        A `Data`: `tfdata.TFData` for tf.data, TFDS names and the TensorFlow
        backend, `arraydata.ArrayData` for in-memory data on JAX and torch.
    """
    if not callable(batch_size) and (isinstance(batch_size, bool) or not isinstance(
            batch_size, (int, np.integer)) or batch_size < 1):
        raise ValueError(f"`batch_size` must be an integer >= 1. Received: batch_size={batch_size!r}")
    if validation_data is None:
        check_split(validation_split)
    refuse_ragged(data, "data")
    refuse_ragged(validation_data, "validation_data")
    if batches.is_generator(data) and not (read_once or ordered or getattr(data, "ended", False)):
        # Read as model.fit reads it (issue 38 item 3): anew every epoch when
        # it yields more than steps_per_epoch batches, else once.
        data = batches.stream_or_batches(data, steps_per_epoch)
    seed = 0 if seed is None else int(seed)
    shuffle_seed = seed if shuffle_seed is None else int(shuffle_seed)
    args = dict(validation_data=validation_data, validation_split=validation_split,
                batch_size=batch_size, seed=seed, verbose=verbose, shuffle_seed=shuffle_seed,
                sample_weight=sample_weight, steps_per_epoch=steps_per_epoch,
                fixed_batch=bool(fixed_batch), padding=padding,
                ordered=batch_size if ordered and not callable(batch_size) else None)
    if uses_tfdata(data, validation_data):
        what = f"data={data!r} (a TFDS dataset)" if isinstance(data, str) else "a tf.data.Dataset"
        made = _tfdata(what).make_tf_data(data, data_dir=data_dir, shuffle_buffer=shuffle_buffer,
                                          input_rank=input_rank, strings=strings, **args)
    else:
        made = arraydata.make_array_data(data, read_once=read_once, **args)
    if fixed_batch:
        for name, n in (("training", made.n_train), ("validation", made.n_validation)):
            if n < made.batch_size:
                raise ValueError(
                    f"The model's inputs fix the batch size at {made.batch_size}, and the {name} set "
                    f"has fewer examples ({n}): not one whole batch. Received: {n} {name} "
                    "examples")
    if steps_per_epoch is not None:
        # Here, not when training starts: every decision taken from the
        # updates an epoch (batch size, patience, budget) sees the limit.
        made.limit_steps(steps_per_epoch)
    return made
