"""The tf.data path's sources and readers: every form `model.fit` takes turned
into a dataset (arrays, structures, PyDatasets, generators, batched or
not), the streaming split and statistics, and the batching helpers.
"""

import inspect

import keras
import numpy as np
import tensorflow as tf

from keras_recipes.data.checks import check_array_pair
from keras_recipes.data.checks import to_tf_sparse
from keras_recipes.data.core import EMBEDDED
from keras_recipes.data.core import Leaf
from keras_recipes.data.core import describe
from keras_recipes.data.nests import as_nest
from keras_recipes.data.nests import common_shape
from keras_recipes.data.nests import concatenate
from keras_recipes.data.nests import generator_note
from keras_recipes.data.nests import input_nest
from keras_recipes.data.nests import is_ragged
from keras_recipes.data.nests import is_sparse
from keras_recipes.data.nests import is_structure
from keras_recipes.data.nests import leaves
from keras_recipes.data.nests import read_generator
from keras_recipes.data.nests import rows
from keras_recipes.data.nests import shapes
from keras_recipes.data.nests import varying_shapes
from keras_recipes.data.split import array_weights
from keras_recipes.data.stats import batch_stats
from keras_recipes.datasets.digits import digits_builder


# Per-class counters for the streaming stratified split: labels are bucketed
# modulo this many counters.
_STRATA = 1024


def leaf_spec(spec):
    if isinstance(spec, tf.RaggedTensorSpec):
        return Leaf(tuple(spec.shape), "ragged")
    return Leaf(tuple(spec.shape), "sparse" if isinstance(spec, tf.SparseTensorSpec)
                else spec.dtype.name)


def is_ragged_spec(spec):
    """Whether an element spec's x holds a ragged tensor."""
    if isinstance(spec, (tuple, list)) and not spec:
        return False
    x = spec[0] if isinstance(spec, (tuple, list)) else spec
    return any(isinstance(s, tf.RaggedTensorSpec) for s in tf.nest.flatten(x))


def batch_dataset(dataset, size, drop_remainder=False, ragged=False):
    """`dataset.batch`, or `ragged_batch` for ragged inputs: tf.data's maps
    turn a ragged example into a tensor whose length varies, which `batch`
    refuses and `ragged_batch` batches as ragged again."""
    if ragged:
        return dataset.ragged_batch(size, drop_remainder=drop_remainder)
    return dataset.batch(size, drop_remainder=drop_remainder)


def as_numpy(value):
    """A tensor, sparse ones made dense, as numpy (for the probes and the
    audit; training keeps sparse inputs sparse)."""
    if isinstance(value, tf.SparseTensor):
        value = tf.sparse.to_dense(value)
    if isinstance(value, tf.RaggedTensor):
        return value  # the model takes it as it is; numpy has no ragged arrays
    return np.asarray(value)


def densified(dataset):
    """`dataset` with its sparse tensors made dense, inside the pipeline."""
    if any(isinstance(s, tf.SparseTensorSpec) for s in tf.nest.flatten(dataset.element_spec)):
        dense = lambda t: tf.sparse.to_dense(t) if isinstance(t, tf.SparseTensor) else t
        dataset = dataset.map(lambda *element: tf.nest.map_structure(dense, element))
    return dataset


def numpy_elements(dataset):
    """`dataset.as_numpy_iterator()` with sparse tensors made dense inside the
    pipeline (TensorFlow's own conversion of them is slow, element by element).
    Ragged tensors stay `tf.RaggedTensor`s: the model takes them as they are,
    where numpy would give an object array of their examples."""
    if not any(isinstance(s, tf.RaggedTensorSpec) for s in tf.nest.flatten(dataset.element_spec)):
        return densified(dataset).as_numpy_iterator()
    keep = lambda t: t if isinstance(t, tf.RaggedTensor) else t.numpy()
    return (tf.nest.map_structure(keep, element) for element in densified(dataset))


def stream_split(dataset, validation_split, seed, integer_labels):
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


def split_spec(dataset, name):
    spec = dataset.element_spec
    if not isinstance(spec, (tuple, list)) or len(spec) not in (2, 3):
        raise ValueError(
            f"A tf.data.Dataset passed as `{name}` must yield (x, y) or (x, y, sample_weight). "
            f"Received: element_spec={spec}"
        )
    return spec


def is_batched(dataset, name="data", input_rank=None):
    """Detects `.batch()`: from the model's input rank when it is known (so
    `drop_remainder=True` is seen too), else from a leading unknown dimension."""
    spec = split_spec(dataset, name)
    x_spec, y_spec = tf.nest.flatten(spec[0])[0], tf.nest.flatten(spec[1])[0]
    if isinstance(input_rank, dict):  # several inputs: each named input's rank
        named = [(input_rank[k], s.shape.rank) for k, s in spec[0].items()
                 if k in input_rank] if isinstance(spec[0], dict) else []
        if named and None not in [rank for _, rank in named]:
            return all(model == rank for model, rank in named)
        input_rank = None
    if input_rank is not None and x_spec.shape.rank is not None:
        # Batched strings of shape (batch,) for a model's Input((1,), dtype="string"):
        # Keras adds the last axis itself, as model.fit does.
        if (x_spec.dtype == tf.string and x_spec.shape.rank == input_rank - 1 == 1
                and x_spec.shape[0] is None):
            return True
        return x_spec.shape.rank == input_rank
    if y_spec.shape.rank == 0:
        return False
    # A leading unknown dimension is what `.batch()` gives; a fixed one
    # (`drop_remainder=True`, or vector labels) is read as unbatched.
    return y_spec.shape[0] is None


def varying_batches(dataset, batches=8):
    """Evidence that a batched dataset's batches differ in shape beyond the
    batch axis (a `padded_batch` of variable-length examples), read from its
    first `batches` batches, or None. Such batches are kept as given."""
    if is_ragged_spec(dataset.element_spec):
        return None  # ragged batches: unbatched and batched again as ragged
    if all(spec.shape.rank is not None and None not in spec.shape[1:]
           for spec in tf.nest.flatten(dataset.element_spec[0])):
        return None  # every batch has the declared shape
    return varying_shapes([tf.nest.map_structure(np.asarray, tuple(e))
                           for e in dataset.take(batches)])


def check_finite_cardinality(dataset, name):
    if int(dataset.cardinality()) == int(tf.data.INFINITE_CARDINALITY):
        raise ValueError(
            f"`{name}` is an endless dataset (`.repeat()` with no count): fit_with_tips "
            "needs one pass to take its statistics and define an epoch. Remove the "
            "`.repeat()` (epochs are repeated for you) or use `.take(n)`. "
            f"Received: {name} with infinite cardinality"
        )


def check_deterministic_order(dataset, name, probe=256):
    """Two passes over the first `probe` examples must agree: a split of a
    dataset that reshuffles on each pass would overlap the training split."""
    def fingerprint():
        rows = []
        for element in numpy_elements(dataset.take(probe)):
            leaves_ = [np.asarray(leaf) for leaf in tf.nest.flatten(element[0])]
            rows.append(hash(b"".join(
                repr(leaf.tolist()).encode() if leaf.dtype.kind == "O" else leaf.tobytes()
                for leaf in leaves_)))
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


def dataset_stats(dataset, verbose, name="data", features=True, padding=None, batched=False,
                   ragged=False, x_leaves=None):
    """`batch_stats` over one streaming pass of a dataset (unbatched, or
    `batched` as given). `ragged`: an input is ragged, and `x_leaves` its
    inputs' leaves as the source declared them (tf.data's maps make a
    ragged example a tensor)."""
    if x_leaves is None:
        x_leaves = [leaf_spec(spec) for _, spec in leaves(dataset.element_spec[0])]
    if batched:
        x_leaves = [Leaf(leaf.shape[1:], leaf.dtype) for leaf in x_leaves]
    dataset = dataset if batched else batch_dataset(dataset, 1024, ragged=ragged)
    batches = ((element[0], element[1]) for element in numpy_elements(dataset))
    return batch_stats(batches, x_leaves, verbose, name, features, padding)


def count_elements(dataset):
    return int(dataset.reduce(np.int64(0), lambda c, *_: c + 1).numpy())


def structured_dataset(data, sample_weight):
    """Several inputs or outputs (dicts, lists, tuples of arrays) as a dataset
    of examples, the structure kept; `model.fit` takes the same."""
    x, y = data[0], data[1]
    w = data[2] if len(data) == 3 else sample_weight
    x, y = input_nest(x), as_nest(y)
    lengths = {rows(a) for a in tf.nest.flatten(x) + tf.nest.flatten(y)}
    if len(lengths) != 1:
        raise ValueError("Every input and output array must have one row per example. "
                         f"Received: lengths {sorted(lengths)}")
    x = tf.nest.map_structure(to_tf_sparse, x)
    if w is not None:
        return tf.data.Dataset.from_tensor_slices((x, y, np.asarray(w, "float32")))
    return tf.data.Dataset.from_tensor_slices((x, y))


def spec_of(batch):
    return tf.nest.map_structure(
        lambda a: tf.TensorSpec((None,) + np.asarray(a).shape[1:],
                                tf.string if np.asarray(a).dtype.kind in "USO"
                                else tf.as_dtype(np.asarray(a).dtype)), batch)


def pydataset_source(data):
    """A `keras.utils.PyDataset` as a dataset of its batches, read by index
    (so every pass has the same order and a split of it is stable)."""
    n = len(data)
    if n == 0:
        raise ValueError("`data` is an empty PyDataset. Received: len(data)=0")
    first = tuple(data[0])
    spec = spec_of(first)

    def batches():
        for i in range(len(data)):
            yield tuple(data[i])

    return tf.data.Dataset.from_generator(batches, output_signature=tuple(spec)).apply(
        tf.data.experimental.assert_cardinality(n))


def generator_source(data, steps_per_epoch):
    """A Python generator: `steps_per_epoch` batches read once and kept,
    as examples, or, when their shapes vary, as the batches they are."""
    batches = read_generator(data, steps_per_epoch)
    if varying_shapes(batches) is None:
        return tf.data.Dataset.from_tensor_slices(concatenate(batches)), len(batches)

    def varying_spec(*leaves):  # None on the batch axis and every axis that varies
        return tf.TensorSpec((None,) + common_shape([np.shape(a)[1:] for a in leaves]),
                             tf.as_dtype(np.asarray(leaves[0]).dtype))

    spec = tf.nest.map_structure(varying_spec, *batches)
    return tf.data.Dataset.from_generator(lambda: iter(batches), output_signature=spec).apply(
        tf.data.experimental.assert_cardinality(len(batches))), len(batches)


def resolve_source(data, sample_weight, steps_per_epoch=None, strings=False):
    """(description, data, notes) with names loaded, pandas converted, and
    structures, PyDatasets and generators turned into datasets."""
    if isinstance(data, tf.data.Dataset):
        if sample_weight is not None:
            raise ValueError("`sample_weight` goes with array data; a dataset carries its "
                             "weights as (x, y, sample_weight) elements. "
                             f"Received: sample_weight={describe(sample_weight)}")
        return "tf.data.Dataset", data, []
    if isinstance(data, keras.utils.PyDataset):
        return f"PyDataset ({type(data).__name__}, {len(data)} batches)", pydataset_source(data), [
            "the PyDataset's batches were re-batched"]
    if inspect.isgenerator(data) or (hasattr(data, "__next__") and hasattr(data, "__iter__")):
        dataset, n = generator_source(data, steps_per_epoch)
        return "generator", dataset, [generator_note(n, getattr(data, "ended", False))]
    if isinstance(data, (tuple, list)) and len(data) in (2, 3) and not any(
            isinstance(d, tf.data.Dataset) for d in data) and all(
            d is None or is_structure(d) or is_sparse(d) or is_ragged(d) or np.ndim(d) >= 1
            for d in data):
        through = is_sparse(data[0]) or is_ragged(data[0])
        text = strings and not is_structure(data[0]) and not through and np.asarray(
            data[0]).dtype.kind in "USO"
        if is_structure(data[0]) or is_structure(data[1]) or text or through:
            # A sparse input passes through too, as a tf.SparseTensor, and
            # a ragged one as a tf.RaggedTensor.
            # Text the model encodes itself is read as one text input (its
            # statistics skipped, passed through as given).
            return "arrays (several inputs or outputs)", structured_dataset(data, sample_weight), []
        return "arrays", data, []
    raise TypeError(
        "`data` must be an (x, y) or (x, y, sample_weight) tuple of arrays (numpy or pandas; "
        "dicts or lists of them for several inputs or outputs), a tf.data.Dataset of such "
        "elements, a keras.utils.PyDataset, a generator with steps_per_epoch, 'digits' or a "
        f"TFDS name. Received: data={describe(data)}"
    )


def from_arrays(x, y, w):
    return tf.data.Dataset.from_tensor_slices((x, y) if w is None else (x, y, w))


def validation_dataset(validation_data, x_shape, weighted, input_rank):
    """The validation set as an unbatched dataset, checked like the training data."""
    if isinstance(validation_data, keras.utils.PyDataset):
        validation_data = pydataset_source(validation_data)
    elif (isinstance(validation_data, (tuple, list)) and len(validation_data) in (2, 3)
          and (is_structure(validation_data[0]) or is_structure(validation_data[1])
               or is_ragged(validation_data[0]))):
        validation_data = structured_dataset(validation_data, None)
    if isinstance(validation_data, tf.data.Dataset):
        check_finite_cardinality(validation_data, "validation_data")
        batched = is_batched(validation_data, "validation_data", input_rank)
        val = validation_data.unbatch() if batched else validation_data
    elif isinstance(validation_data, (tuple, list)) and len(validation_data) in (2, 3):
        vx, vy = check_array_pair(validation_data[0], validation_data[1], "validation_data")
        vw = array_weights(validation_data, None, len(vx))
        val = from_arrays(vx, vy, vw)
    else:
        raise TypeError(
            "`validation_data` must be an (x, y) or (x, y, sample_weight) tuple of arrays or "
            f"a tf.data.Dataset. Received: validation_data={describe(validation_data)}"
        )
    v_shape = shapes(val.element_spec[0])
    if x_shape is not None and v_shape != x_shape:
        raise ValueError(
            "`validation_data` x must have the same per-example shape as the "
            f"training data {x_shape}. Received: {v_shape}"
        )
    if weighted and len(val.element_spec) == 2:
        val = val.map(lambda x, y: (x, y, tf.ones([], tf.float32)))
    elif not weighted and len(val.element_spec) == 3:
        val = val.map(lambda x, y, w: (x, y))
    return val


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
