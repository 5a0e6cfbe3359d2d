"""Layers that put members side by side: a member's slice of the outputs,
and the member axis folded into (and out of) the batch axis."""

import keras
from keras import ops

_PACKAGE = "keras_recipes"  # part of the saved-file format: never rename it


@keras.saving.register_keras_serializable(package=_PACKAGE)
class MemberSlice(keras.layers.Layer):
    """`x[:, index]`: member `index`'s share of a `(batch, members, ...)` batch."""

    def __init__(self, index, **kwargs):
        super().__init__(**kwargs)
        self.index = int(index)

    def call(self, x):
        return x[:, self.index]

    def compute_output_shape(self, shape):
        return (shape[0],) + tuple(shape[2:])

    def get_config(self):
        return {**super().get_config(), "index": self.index}


def _dims(x, first, start):
    """`first` + the shape of x from axis `start`, unknown sizes read at run time."""
    dims = list(first)
    for axis in range(start, len(x.shape)):
        dims.append(x.shape[axis] if x.shape[axis] is not None else ops.shape(x)[axis])
    return dims


@keras.saving.register_keras_serializable(package=_PACKAGE)
class FoldMembers(keras.layers.Layer):
    """`(batch, members, ...)` -> `(batch * members, ...)`, so that
    preprocessing and augmentation see ordinary examples (each member's rows
    get their own augmentation draws)."""

    def call(self, x):
        return ops.reshape(x, _dims(x, [-1], 2))

    def compute_output_shape(self, shape):
        return (None,) + tuple(shape[2:])


@keras.saving.register_keras_serializable(package=_PACKAGE)
class UnfoldMembers(keras.layers.Layer):
    """`(batch * members, ...)` -> `(batch, members, ...)`."""

    def __init__(self, members, **kwargs):
        super().__init__(**kwargs)
        self.members = int(members)

    def call(self, x):
        return ops.reshape(x, _dims(x, [-1, self.members], 1))

    def compute_output_shape(self, shape):
        return (None, self.members) + tuple(shape[1:])

    def get_config(self):
        return {**super().get_config(), "members": self.members}
