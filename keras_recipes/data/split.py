"""The validation split: seeded, stratified whenever the labels are class
labels; whole batches for data kept in its batches.
"""

import numpy as np

from keras_recipes.data.checks import check_array_pair
from keras_recipes.data.nests import as_array
from keras_recipes.data.nests import flat
from keras_recipes.data.nests import take
from keras_recipes.data.stats import label_stats


# Integer labels with at most this many distinct values are split per value.
_STRATIFY_MAX = 100


def check_split(validation_split):
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


def held_out_batches(n, validation_split, seed, advice):
    """The sorted indices of the `n` batches held out whole for validation,
    seeded, the same on every path (so every form gets the same split)."""
    held = max(int(round(n * validation_split)), 1)
    if held >= n:
        raise ValueError(
            f"`data` has too few batches ({n}) to hold out {validation_split} of them whole and "
            f"train on the rest. {advice} Received: {n} batches")
    return sorted(np.random.default_rng(seed).permutation(n)[:held].tolist())


def array_weights(data, sample_weight, n):
    w = data[2] if len(data) == 3 else sample_weight
    if len(data) == 3 and sample_weight is not None:
        raise ValueError("Pass sample weights once: as the third element of `data` or as "
                         "`sample_weight`. Received: both")
    if w is None:
        return None
    w = np.asarray(as_array(w), dtype="float32")
    if w.shape[:1] != (n,) or not np.isfinite(w).all() or (w < 0).any():
        raise ValueError("`sample_weight` must hold one finite weight >= 0 per example. "
                         f"Received: sample_weight of shape {w.shape}")
    return w


def stratify_ids(labels, stats):
    """Integer class ids of labels whose values are class labels, whatever
    their dtype (float 0/1 from pandas, one-hot rows), or None (regression,
    multilabel, or too many distinct values to stratify by)."""
    array = np.asarray(labels)
    if stats.kind == "integer" and stats.distinct <= _STRATIFY_MAX and (
            array.ndim == 1 or (array.ndim == 2 and array.shape[1] == 1)):
        return array.reshape(len(array)).astype("int64")
    if stats.kind == "onehot" and array.ndim == 2:
        return array.argmax(-1).astype("int64")
    return None


def split_arrays(x, y, w, validation_split, seed, ordered=None):
    """A seeded split of in-memory (x, y, w) nests: stratified when the
    (first) labels' values look like class ids (a few distinct integers).
    With `ordered` (a batch size: a stateful model reads consecutive batches
    as one stream), the last rows in order, a whole number of batches.
    Returns (train triple, validation triple, the split in words)."""
    first = flat(y)[0]
    n = len(first)
    pick = lambda idx: (take(x, idx), take(y, idx), None if w is None else w[idx])
    if ordered:
        batches = int(round(n * validation_split / ordered))
        if batches < 1 or n - batches * ordered < ordered:
            raise ValueError(
                f"`data` has too few examples ({n}) for a validation split of "
                f"{validation_split} in whole batches of {ordered} (the model's fixed batch "
                f"size) with a batch left to train on. Pass validation_data=. Received: {n} "
                "examples")
        cut = n - batches * ordered
        return (pick(np.arange(cut)), pick(np.arange(cut, n)),
                f"the last {n - cut} of {n} examples, in order (a stateful model reads "
                "consecutive batches)")
    classes = stratify_ids(first, label_stats(first))
    stratify = classes is not None
    train_idx, val_idx = stratified_split(classes if stratify else np.zeros(n, "float32"),
                                          validation_split, seed)
    if len(val_idx) == 0 or len(train_idx) == 0:
        raise ValueError(
            f"`data` has too few examples ({n}) for a validation split "
            f"of {validation_split}. Received: {n} examples"
        )
    split = (f"held out {len(val_idx)} of {n} examples "
             f"({'stratified, ' if stratify else ''}seed {seed})")
    return pick(train_idx), pick(val_idx), split


def array_split(data, validation_data, validation_split, seed, sample_weight, ordered=None):
    x, y = check_array_pair(data[0], data[1], "data")
    w = array_weights(data, sample_weight, len(x))
    if validation_data is not None:
        return (x, y, w), None, "validation_data given"
    return split_arrays(x, y, w, validation_split, seed, ordered)
