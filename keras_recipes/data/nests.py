"""Inputs and outputs as nests (dicts, lists, tuples of arrays) and as
batches: their leaves, rows, shapes, and a generator's batches read.
"""

import numpy as np

from keras_recipes.data.core import Leaf


def as_array(value):
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


def flat(value):
    """The leaves of a one-level nest in `leaves()` order (sorted dict keys,
    positions), or [value] for a single array."""
    if isinstance(value, dict):
        return [value[k] for k in sorted(value, key=str)]
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def is_structure(value):
    return isinstance(value, (dict, list, tuple))


def leaf_array(value):
    if is_sparse(value):
        return value.tocsr() if hasattr(value, "tocsr") else value
    if is_ragged(value):
        return value
    array = np.asarray(as_array(value))
    return array.astype(str) if array.dtype.kind == "O" else array


def as_nest(value):
    """Arrays, pandas objects, and dicts/lists of them as numpy (one level)."""
    if isinstance(value, dict):
        return {str(k): leaf_array(a) for k, a in value.items()}
    if is_structure(value):
        return tuple(leaf_array(a) for a in value)
    return leaf_array(value)


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


def shapes(x_spec):
    """Per-example shape of a single input, or {name: shape} of several."""
    named = leaves(x_spec)
    if len(named) == 1 and not is_structure(x_spec):
        return tuple(named[0][1].shape)
    return {name: tuple(spec.shape) for name, spec in named}
