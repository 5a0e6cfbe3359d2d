"""The vectorized path: every member's variables stacked on a member axis,
the first member's `stateless_call` mapped over it (one kernel per layer)."""

import keras
import numpy as np
from keras import ops

from keras_recipes import sharding
from keras_recipes.ensemble.averaging import unique_names
from keras_recipes.ensemble.member_layers import MemberSlice
from keras_recipes.modelinfo import walk_layers


def _vectorized_map(fn, elements):
    """`keras.ops.vectorized_map`; on TensorFlow without its while-loop
    fallback, so an op pfor cannot vectorize is an error (the fused path
    then stacks the members instead) rather than a silent loop."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.vectorized_map(fn, elements, fallback_to_while_loop=False)
    return ops.vectorized_map(fn, elements)


def _stacked_initializer(values):
    array = np.stack(values)

    def initializer(shape, dtype=None):
        return ops.convert_to_tensor(array, dtype=dtype)

    return initializer


class VectorizedMembers(keras.layers.Layer):
    """Members of one architecture as one layer, for training.

    Every variable of the members is stacked along a leading member axis
    (`(members, *shape)`, initialized from each member's own values), and the
    forward pass is the first member's `stateless_call` vectorized over that
    axis (`jax.vmap`, TensorFlow's pfor, `torch.vmap` through
    `keras.ops.vectorized_map`): one kernel per layer for all members. Input
    and output are `(batch, members, ...)`: member `i` reads `x[:, i]`.
    Non-trainable state (BatchNormalization statistics, each member's seed
    for dropout) is stacked and updated too. `write_members()` copies the
    stacked values back into the member models.

    Args:
        members: List of built `keras.Model` of one architecture.
    """

    def __init__(self, members, **kwargs):
        super().__init__(**kwargs)
        members = list(members)
        # Not tracked as sublayers: their variables are copied, not trained.
        self.__dict__["_member_models"] = members
        self.members = len(members)
        template = members[0]

        def stacked(kind, trainable):
            made = []
            for j, variable in enumerate(getattr(template, kind)):
                values = [sharding.host(getattr(m, kind)[j]) for m in members]
                name = (variable.path or variable.name).replace("/", "__")
                made.append(self.add_weight(
                    shape=(len(members),) + tuple(variable.shape), dtype=variable.dtype,
                    initializer=_stacked_initializer(values), trainable=trainable, name=name))
            return made

        self._stacked_trainable = stacked("trainable_variables", True)
        self._stacked_state = stacked("non_trainable_variables", False)

    def call(self, x, training=None):
        template = self._member_models[0]

        def one_member(args):
            trainable, state, xi = args
            out, new_state = template.stateless_call(trainable, state, xi, training=training)
            return out, new_state

        elements = ([v.value for v in self._stacked_trainable],
                    [v.value for v in self._stacked_state], ops.moveaxis(x, 1, 0))
        out, new_state = _vectorized_map(one_member, elements)
        for variable, value in zip(self._stacked_state, new_state):
            variable.assign(value)
        return keras.tree.map_structure(lambda o: ops.moveaxis(o, 0, 1), out)

    def compute_output_spec(self, x, training=None):
        member_x = keras.KerasTensor((x.shape[0],) + tuple(x.shape[2:]), x.dtype)
        out = self._member_models[0].compute_output_spec(member_x)
        return keras.tree.map_structure(
            lambda o: keras.KerasTensor((o.shape[0], self.members) + tuple(o.shape[1:]), o.dtype),
            out)

    def write_members(self):
        """Copies the trained stacked values into the member models."""
        pairs = [(self._stacked_trainable, "trainable_variables"),
                 (self._stacked_state, "non_trainable_variables")]
        for stacked, kind in pairs:
            for j, variable in enumerate(stacked):
                value = sharding.host(variable)
                for i, member in enumerate(self._member_models):
                    getattr(member, kind)[j].assign(value[i])


def stack_members(members, input_shape, per_member=False):
    """A functional model whose output stacks the members': (batch, n, ...).

    With `per_member=True` its input is `(batch, n, *input_shape)` and
    member `i` reads `x[:, i]` (its own batch); else all read one batch."""
    unique_names(members)
    n = len(members)
    inputs = keras.Input(((n,) if per_member else ()) + tuple(input_shape))
    outs = []
    for i, member in enumerate(members):
        out = member(MemberSlice(i, name=f"member_{i}_share")(inputs) if per_member else inputs)
        outs.append(keras.layers.Reshape((1,) + tuple(out.shape[1:]))(out))
    stacked = keras.layers.Concatenate(axis=1)(outs) if len(outs) > 1 else outs[0]
    return keras.Model(inputs, stacked, name="stacked_members")


def architecture_signature(model):
    """The model's layers, in order, with their configs minus names and
    seeds: equal for models that differ only in names and weights.
    (Layer configs, not the model's: a functional config refers to layers by
    name, and a build function names them differently on every call.)"""
    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in ("name", "seed")}
        if isinstance(value, (list, tuple)):
            return [strip(v) for v in value]
        return value

    try:
        return repr([(type(layer).__name__, strip(layer.get_config()))
                     for layer in walk_layers(model) if layer is not model])
    except NotImplementedError:
        return None
