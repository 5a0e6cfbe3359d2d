"""Checks of bad input, before any training, with a message that names what
was received; and the inputs passed through as given (sparse, ragged).
"""

import keras
import numpy as np

from keras_recipes.data.nests import as_array
from keras_recipes.data.nests import is_ragged
from keras_recipes.data.nests import is_sparse
from keras_recipes.data.nests import leaf_array
from keras_recipes.data.nests import rows


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
                   "as model.fit feeds them")


RAGGED_OVERRIDE = "x.to_tensor() and keras.layers.Masking(0.0) to have it standardized"


def check_array_pair(x, y, name):
    x, y = as_array(x), as_array(y)
    if isinstance(x, (list, tuple)) or isinstance(x, dict):
        raise ValueError(
            f"`{name}` must hold a single input array (multi-input data is not "
            f"supported by fit_with_tips). Received: x of type {type(x).__name__}"
        )
    thin = is_sparse(x)
    x = leaf_array(x) if thin else np.asarray(x)
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


def refuse_kept(varying, fixed_batch, ordered):
    """Batches of varying shapes cannot feed a model that fixes the batch
    size or carries state between batches: refused by name."""
    if fixed_batch or ordered:
        raise ValueError(
            "`data` yields batches of different shapes, and the model's inputs fix the batch "
            "size (or hold state from batch to batch), which needs batches of one shape in "
            f"order: pad every example to one length. Received: batches of varying shapes "
            f"({varying})")
