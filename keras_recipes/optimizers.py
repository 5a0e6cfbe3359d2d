"""`ClippedOptimizer`: global-norm gradient clipping with in-step statistics.

Tips 3, 5 and 7: the gradient is the mean over the batch (Keras losses reduce
with a mean), it is hard-clipped at a global norm of 5 or 15 for recurrent
nets, and the update/weight norm ratio is watched every step.
"""

import math

import keras
import numpy as np
from keras import ops

_PACKAGE = "keras_recipes"
_EPS = 1e-12


def _numpy(variable):
    return keras.ops.convert_to_numpy(keras.ops.convert_to_tensor(variable))


def _cross_replica_sum(grads):
    """Under a TensorFlow distribution strategy, all-reduces the per-replica
    gradients (sum). Returns (grads, number of replicas)."""
    if keras.backend.backend() != "tensorflow":
        return grads, 1
    import tensorflow as tf

    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return grads, 1
    return context.all_reduce(tf.distribute.ReduceOp.SUM, grads), context.num_replicas_in_sync


def _layer_name(variable):
    """The name of the layer that owns a variable, from its path."""
    path = getattr(variable, "path", None) or variable.name
    parts = path.split("/")
    return "/".join(parts[:-1]) if len(parts) > 1 else parts[0]


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ClippedOptimizer(keras.optimizers.Optimizer):
    """Wraps an optimizer: clips the gradient to a global norm, records stats.

    Before the wrapped optimizer sees them, the gradients are scaled by
    `min(1, max_norm / global_norm)`, where `global_norm` is the L2 norm of all
    gradients taken together (the clipping of tip 7). The gradients are those
    of the mean-reduced loss, so they are already divided by the batch size
    and `max_norm` does not depend on it. Under `LossScaleOptimizer` (mixed
    precision), the loss-scale optimizer unscales first and this one clips the
    true gradient: wrap as `LossScaleOptimizer(ClippedOptimizer(opt))`.

    Inside the compiled train step it also records the pre-clip global norm,
    whether the step was clipped, and (when `track_update_ratio=True`) the
    update/weight ratio `||w_new - w_old|| / ||w_old||` of tip 5, globally and
    per layer. `keras_recipes.callbacks.UpdateRatioMonitor` turns these into
    epoch logs; `read_stats()` gives them directly.

    `learning_rate` (getter and setter) and `iterations` are those of the
    wrapped optimizer, so learning-rate callbacks keep working.

    Example:

    ```python
    optimizer = ClippedOptimizer(keras.optimizers.SGD(0.1), max_norm=5.0)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    ```

    Args:
        optimizer: A `keras.optimizers.Optimizer` to wrap. It must not clip on
            its own (`clipnorm`, `global_clipnorm`, `clipvalue`).
        max_norm: Float or `None`. Global gradient norm above which gradients
            are scaled down. `None` records statistics without clipping.
            Defaults to `5.0`.
        track_update_ratio: Boolean. Whether to compute the update/weight norm
            ratio each step (one extra pass over the weights). Defaults to
            `True`.
        name: String. Name of the optimizer.
    """

    def __init__(
        self,
        optimizer,
        max_norm=5.0,
        track_update_ratio=True,
        name=None,
        **kwargs,
    ):
        if not isinstance(optimizer, keras.optimizers.Optimizer):
            raise TypeError(
                "`optimizer` must be a keras.optimizers.Optimizer instance. "
                f"Received: optimizer={optimizer!r}"
            )
        if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
            raise ValueError(
                "ClippedOptimizer must sit inside LossScaleOptimizer, not "
                "around it, so that it clips unscaled gradients: use "
                "`LossScaleOptimizer(ClippedOptimizer(opt))`. "
                f"Received: optimizer={optimizer.__class__.__name__}"
            )
        if isinstance(optimizer, ClippedOptimizer):
            raise ValueError(
                "`optimizer` is already a ClippedOptimizer; wrapping twice "
                "would clip twice. Received: optimizer=ClippedOptimizer"
            )
        for attr in ("clipnorm", "global_clipnorm", "clipvalue"):
            value = getattr(optimizer, attr, None)
            if value is not None:
                raise ValueError(
                    "The wrapped optimizer already clips gradients, and "
                    "clipping twice makes the effective threshold unclear "
                    f"(and `{attr}` is per-replica under tf.distribute). "
                    f"Remove `{attr}` and set `max_norm` here instead. "
                    f"Received: {attr}={value}"
                )
        if max_norm is not None:
            if isinstance(max_norm, bool) or not isinstance(
                max_norm, (int, float, np.integer, np.floating)
            ):
                raise TypeError(
                    "`max_norm` must be a positive number or None. "
                    f"Received: max_norm={max_norm!r}"
                )
            if not (math.isfinite(max_norm) and max_norm > 0):
                raise ValueError(
                    "`max_norm` must be a finite number > 0 (or None to only "
                    f"record statistics). Received: max_norm={max_norm}"
                )
            max_norm = float(max_norm)
        if not isinstance(track_update_ratio, bool):
            raise TypeError(
                "`track_update_ratio` must be a bool. "
                f"Received: track_update_ratio={track_update_ratio!r}"
            )
        # Only `name` is meaningful on the wrapper; the rest belongs to the
        # wrapped optimizer (as in LossScaleOptimizer).
        if kwargs:
            raise ValueError(
                "ClippedOptimizer does not take optimizer arguments; set them "
                "on the wrapped optimizer. "
                f"Received: {', '.join(f'{k}={v!r}' for k, v in kwargs.items())}"
            )
        super().__init__(learning_rate=0.0, name=name)
        self.inner_optimizer = optimizer
        self.max_norm = max_norm
        self.track_update_ratio = track_update_ratio
        self.layer_names = []

    # -- state ---------------------------------------------------------------

    def build(self, var_list):
        var_list = list(var_list)
        # Step statistics, accumulated over the steps of an epoch and read and
        # reset by UpdateRatioMonitor. Two variables so that a step costs two
        # assignments: the scalars (steps, clipped steps, sum of pre-clip
        # norms, sum of update ratios) and, per layer, the summed squared
        # update norm and squared weight norm.
        # "only_first_replica": every replica computes the same values from
        # the all-reduced gradients, and Keras' iterations counter does the same.
        self._stat_scalars = self.add_variable((4,), "zeros", "float32",
                                               aggregation="only_first_replica", name="step_stats")
        self.layer_names = sorted({_layer_name(v) for v in var_list})
        layer_of = [self.layer_names.index(_layer_name(v)) for v in var_list]
        self._layer_one_hot = np.eye(max(len(self.layer_names), 1), dtype="float32")[layer_of]
        self._stat_layers = self.add_variable(
            (2, max(len(self.layer_names), 1)), "zeros", "float32",
            aggregation="only_first_replica", name="layer_stats"
        )
        self.inner_optimizer.build(var_list)
        super().build(var_list)

    @property
    def variables(self):
        return self._variables + self.inner_optimizer.variables

    @property
    def learning_rate(self):
        return self.inner_optimizer.learning_rate

    @learning_rate.setter
    def learning_rate(self, learning_rate):
        self.inner_optimizer.learning_rate = learning_rate

    @property
    def iterations(self):
        return self.inner_optimizer.iterations

    def scale_loss(self, loss):
        return self.inner_optimizer.scale_loss(loss)

    def finalize_variable_values(self, var_list):
        self.inner_optimizer.finalize_variable_values(var_list)

    # -- the step ------------------------------------------------------------

    def apply(self, grads, trainable_variables=None):
        if not self.built:
            if trainable_variables is None:
                raise ValueError(
                    "ClippedOptimizer must be built before `apply` is called "
                    "without `trainable_variables`: call "
                    "`optimizer.build(model.trainable_variables)`."
                )
            self.build(list(trainable_variables))
        variables = (
            list(trainable_variables)
            if trainable_variables is not None
            else self._trainable_variables
        )
        grads = list(grads)
        present = [i for i, g in enumerate(grads) if g is not None]
        # Under tf.distribute each replica holds its share of the global-batch
        # gradient; clipping must see their sum (clipping per replica skews
        # it). The wrapped optimizer all-reduces again with a sum, so it is
        # handed the clipped sum divided by the number of replicas.
        summed, replicas = _cross_replica_sum([ops.convert_to_tensor(grads[i]) for i in present])
        dense = dict(zip(present, summed))

        sq = [ops.sum(ops.square(ops.cast(dense[i], "float32"))) for i in present]
        norm = ops.sqrt(ops.sum(ops.stack(sq))) if sq else ops.zeros(())
        if self.max_norm is not None:
            # A non-finite norm is left for the loss-scale / NaN handling to
            # see; scaling by it would turn every gradient into NaN.
            scale = ops.where(
                norm > self.max_norm, self.max_norm / (norm + _EPS), 1.0
            )
            clipped = ops.cast(norm > self.max_norm, "float32")
            factor = scale / replicas if replicas > 1 else scale
        else:
            clipped = ops.zeros((), "float32")
            factor = 1.0 / replicas if replicas > 1 else None
        if factor is not None:
            grads = [
                g if g is None else dense[i] * ops.cast(factor, dense[i].dtype)
                for i, g in enumerate(grads)
            ]

        if self.track_update_ratio and present:
            # ops.copy forces a read now: on TensorFlow, converting a
            # variable gives a handle that would be read after the update.
            before = [ops.copy(variables[i]) for i in present]
        self.inner_optimizer.apply(grads, trainable_variables)

        ratio = ops.zeros((), "float32")
        if self.track_update_ratio and present:
            sums = ops.stack(
                [
                    ops.stack([ops.sum(ops.square(ops.cast(variables[i] - old, "float32")))
                               for old, i in zip(before, present)]),
                    ops.stack([ops.sum(ops.square(ops.cast(old, "float32")))
                               for old in before]),
                ]
            )
            totals = ops.sum(sums, axis=1)
            ratio = ops.sqrt(totals[0]) / (ops.sqrt(totals[1]) + _EPS)
            self._stat_layers.assign_add(ops.matmul(sums, self._layer_one_hot[present]))
        self._stat_scalars.assign_add(
            ops.stack([ops.ones((), "float32"), clipped, ops.cast(norm, "float32"), ratio])
        )

    # -- reading the statistics ---------------------------------------------

    def read_stats(self, reset=True):
        """Means of the step statistics since the last reset, as floats.

        Returns a dict with `steps`, `grad_norm` (mean pre-clip global norm),
        `clip_fraction` and, when tracked, `update_ratio`
        (mean global ratio) and `layer_update_ratio` (a dict, layer name ->
        ratio of root-mean-square update to root-mean-square weight norm).
        Returns `{}` before the first step.
        """
        if not self.built:
            return {}
        steps, clipped, norm_sum, ratio_sum = _numpy(self._stat_scalars).tolist()
        if steps == 0:
            return {}
        stats = {
            "steps": steps,
            "grad_norm": norm_sum / steps,
            "clip_fraction": clipped / steps,
        }
        if self.track_update_ratio:
            stats["update_ratio"] = ratio_sum / steps
            update_sq, weight_sq = _numpy(self._stat_layers)
            stats["layer_update_ratio"] = {
                name: float(np.sqrt(u) / (np.sqrt(w) + _EPS))
                for name, u, w in zip(self.layer_names, update_sq, weight_sq)
            }
        if reset:
            self.reset_stats()
        return stats

    def reset_stats(self):
        """Zeroes the accumulated step statistics."""
        if self.built:
            for variable in (self._stat_scalars, self._stat_layers):
                variable.assign(keras.ops.zeros(variable.shape, variable.dtype))

    # -- serialization -------------------------------------------------------

    def get_config(self):
        return {
            "name": self.name,
            "optimizer": keras.saving.serialize_keras_object(self.inner_optimizer),
            "max_norm": self.max_norm,
            "track_update_ratio": self.track_update_ratio,
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        inner = keras.saving.deserialize_keras_object(
            config.pop("optimizer"), custom_objects=custom_objects
        )
        return cls(inner, **config)
