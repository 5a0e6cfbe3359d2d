"""The arithmetic of `ClippedOptimizer`'s step: the global norm's clipping
factor (tip 7), the same per ensemble member, and where the gradients and
variables come from (replicas, layers).
"""

import keras
import numpy as np
from keras import ops

from keras_recipes import sharding

EPS = 1e-12


def to_numpy(variable):
    return sharding.host(keras.ops.convert_to_tensor(variable))


def cross_replica_sum(grads):
    """Under a TensorFlow distribution strategy, all-reduces the per-replica
    gradients (sum). Returns (grads, number of replicas)."""
    if keras.backend.backend() != "tensorflow":
        return grads, 1
    import tensorflow as tf

    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return grads, 1
    return context.all_reduce(tf.distribute.ReduceOp.SUM, grads), context.num_replicas_in_sync


def overwritten(variable):
    """Float8 scaling factors and the like: Keras assigns their gradient as
    the new value and leaves them out of clipping."""
    return bool(getattr(variable, "overwrite_with_gradient", False))


def layer_name(variable):
    """The name of the layer that owns a variable, from its path."""
    path = getattr(variable, "path", None) or variable.name
    parts = path.split("/")
    return "/".join(parts[:-1]) if len(parts) > 1 else parts[0]


def clip_scale(norm, max_norm):
    """(factor or None, clipped flag) for a global norm."""
    if max_norm is None:
        return None, ops.zeros((), "float32")
    # A non-finite norm is left for the loss-scale / NaN handling to see.
    scale = ops.where(norm > max_norm, max_norm / (norm + EPS), 1.0)
    return scale, ops.cast(norm > max_norm, "float32")


def member_clip(variables, grads, members, owner, max_norm):
    """Clipping by each ensemble member's own global norm: (per-variable
    factors, the members' mean norm, the clipped fraction of members).

    `owner` maps `id(variable)` to its member, or to None for a variable that
    stacks every member along axis 0.
    """
    owners, singles, stacked = [], [], []
    for variable, g in zip(variables, grads):
        if id(variable) not in owner:
            raise ValueError(
                "ClippedOptimizer clips per member, but a trained variable belongs to no "
                f"member. Received: variable {getattr(variable, 'path', variable.name)!r}")
        g2 = ops.square(ops.cast(g, "float32"))
        k = owner[id(variable)]
        owners.append(k)
        if k is None:
            stacked.append(ops.sum(ops.reshape(g2, (members, -1)), axis=1))
        else:
            singles.append(ops.sum(g2))
    # Squared norms per member: one matmul for the members' own
    # variables, one sum for the stacked ones (few ops per step).
    sq = ops.zeros((members,), "float32")
    if singles:
        one_hot = np.eye(members, dtype="float32")[[k for k in owners if k is not None]]
        sq = sq + ops.matmul(ops.stack(singles)[None, :], one_hot)[0]
    if stacked:
        sq = sq + ops.sum(ops.stack(stacked), axis=0)
    norms = ops.sqrt(sq)
    if max_norm is None:
        return [None] * len(variables), ops.mean(norms), ops.zeros((), "float32")
    scales = ops.where(norms > max_norm, max_norm / (norms + EPS), 1.0)
    per_member = ops.unstack(scales) if singles else None
    factors = [per_member[k] if k is not None else
               ops.reshape(scales, (members,) + (1,) * (len(v.shape) - 1))
               for v, k in zip(variables, owners)]
    return factors, ops.mean(norms), ops.mean(ops.cast(norms > max_norm, "float32"))
