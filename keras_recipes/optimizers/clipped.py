"""`ClippedOptimizer`: global-norm gradient clipping with in-step statistics.

Tips 3, 5 and 7: the gradient is the mean over the batch (Keras losses reduce
with a mean), it is hard-clipped at a global norm of 5 or 15 for recurrent
nets, and the update/weight norm ratio is watched every step.
"""

import math

import keras
import numpy as np
from keras import ops

from keras_recipes.optimizers import clipping

_PACKAGE = "keras_recipes"


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ClippedOptimizer(keras.optimizers.Optimizer):
    """Wraps an optimizer: clips the gradient to a global norm, records stats.

    Before the wrapped optimizer sees them, the gradients are scaled by
    `min(1, max_norm / global_norm)`, where `global_norm` is the L2 norm of all
    gradients taken together (the clipping of tip 7). The gradients are those
    of the mean-reduced loss, so they are already divided by the batch size
    and `max_norm` does not depend on it. Under `LossScaleOptimizer` (mixed
    precision), the loss-scale optimizer unscales first and this one clips the
    true gradient; around it (`ClippedOptimizer(LossScaleOptimizer(opt))`) it
    divides by the current loss scale before measuring, so both nestings clip
    the same gradient. So does an inner `loss_scale_factor`. The clipping is
    that of Keras' `global_clipnorm` on the inner optimizer: variables with
    `overwrite_with_gradient` are left out of the norm and not scaled, and with
    `gradient_accumulation_steps` the accumulated mean is clipped on the
    update step (the statistics then count update steps). Under a
    `MultiOptimizer`, its `optimizers` are exposed for learning-rate callbacks.

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
        self._accumulation = getattr(optimizer, "gradient_accumulation_steps", None)
        self.max_norm = max_norm
        self.track_update_ratio = track_update_ratio
        self.layer_names = []

    # -- state ---------------------------------------------------------------

    def build(self, var_list):
        var_list = list(var_list)
        if self._accumulation:
            # The unscaled micro-batch gradients since the last update, so the
            # clip can see the mean the inner optimizer will apply.
            self._micro_steps = self.add_variable((), "zeros", "int32",
                                                  aggregation="only_first_replica",
                                                  name="micro_steps")
            self._accumulated = [
                None if clipping.overwritten(v) else self.add_variable(
                    tuple(v.shape), "zeros", v.dtype, aggregation="only_first_replica",
                    name="clip_accumulator")
                for v in var_list
            ]
        # Step statistics, accumulated over the steps of an epoch and read and
        # reset by UpdateRatioMonitor. Two variables so that a step costs two
        # assignments: the scalars (steps, clipped steps, sum of pre-clip
        # norms, sum of update ratios) and, per layer, the summed squared
        # update norm and squared weight norm.
        # "only_first_replica": every replica computes the same values from
        # the all-reduced gradients, and Keras' iterations counter does the same.
        self._stat_scalars = self.add_variable((4,), "zeros", "float32",
                                               aggregation="only_first_replica", name="step_stats")
        self.layer_names = sorted({clipping.layer_name(v) for v in var_list})
        layer_of = [self.layer_names.index(clipping.layer_name(v)) for v in var_list]
        self._layer_one_hot = np.eye(max(len(self.layer_names), 1), dtype="float32")[layer_of]
        self._stat_layers = self.add_variable(
            (2, max(len(self.layer_names), 1)), "zeros", "float32",
            aggregation="only_first_replica", name="layer_stats"
        )
        self.inner_optimizer.build(var_list)
        # The base class would give the wrapper accumulators of its own when
        # it reads gradient_accumulation_steps (the inner optimizer's, below):
        # the inner optimizer accumulates, and `_accumulated` above serves the clip.
        self._base_building = True
        try:
            super().build(var_list)
        finally:
            self._base_building = False

    @property
    def variables(self):
        return self._variables + self.inner_optimizer.variables

    @property
    def loss_scale_factor(self):
        return getattr(getattr(self, "inner_optimizer", None), "loss_scale_factor", None)

    @loss_scale_factor.setter
    def loss_scale_factor(self, value):
        # Set by Optimizer.__init__ (None) before the inner optimizer exists,
        # and by LossScaleOptimizer (None) when it wraps this one: the inner
        # optimizer's own factor would otherwise unscale a gradient that was
        # never scaled by it.
        if getattr(self, "inner_optimizer", None) is not None:
            self.inner_optimizer.loss_scale_factor = value

    @property
    def gradient_accumulation_steps(self):
        """The inner optimizer's (Keras' trainers and callbacks read it here)."""
        if getattr(self, "_base_building", False):
            return None
        return getattr(getattr(self, "inner_optimizer", None), "gradient_accumulation_steps", None)

    @gradient_accumulation_steps.setter
    def gradient_accumulation_steps(self, value):
        # Optimizer.__init__ sets None before the inner optimizer exists. The
        # clip's own accumulators are sized when the wrapper is made, so the
        # value cannot change afterwards.
        inner = getattr(self, "inner_optimizer", None)
        if inner is not None and value != inner.gradient_accumulation_steps:
            raise ValueError(
                "Set gradient_accumulation_steps on the optimizer before wrapping it in "
                f"ClippedOptimizer. Received: gradient_accumulation_steps={value!r}")

    @property
    def optimizers(self):
        """The sub-optimizers of an inner `MultiOptimizer` (Keras' LR
        callbacks look for this attribute)."""
        if not hasattr(self.inner_optimizer, "optimizers"):
            raise AttributeError("optimizers")
        return self.inner_optimizer.optimizers

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
        present = [i for i, g in enumerate(grads)
                   if g is not None and not clipping.overwritten(variables[i])]
        # Under tf.distribute each replica holds its share of the global-batch
        # gradient; clipping must see their sum (clipping per replica skews
        # it). The wrapped optimizer all-reduces again with a sum, so it is
        # handed the clipped sum divided by the number of replicas.
        summed, replicas = clipping.cross_replica_sum([ops.convert_to_tensor(grads[i]) for i in present])
        loss_scale = self._loss_scale()
        # The true gradient: unscaled (loss scaling) and, with accumulation,
        # the mean the inner optimizer applies on its update step.
        true = [g if loss_scale is None else g / ops.cast(loss_scale, g.dtype) for g in summed]
        update = None
        if self._accumulation and present:
            update = ops.equal(ops.mod(self._micro_steps + 1, self._accumulation), 0)
            acc = [self._accumulated[i] for i in present]
            true = [(g + a) / self._accumulation for g, a in zip(true, acc)]

        if self._member_groups is not None and present:
            factors, norm, clipped = clipping.member_clip(
                [variables[i] for i in present], true, *self._member_groups, self.max_norm)
        else:
            sq = [ops.sum(ops.square(ops.cast(g, "float32"))) for g in true]
            norm = ops.sqrt(ops.sum(ops.stack(sq))) if sq else ops.zeros(())
            scale, clipped = clipping.clip_scale(norm, self.max_norm)
            factors = [scale] * len(present)
        if update is not None:
            self._accumulate(present, summed, loss_scale, replicas, factors, update, grads)
        elif self.max_norm is not None or replicas > 1:
            for i, g, factor in zip(present, summed, factors):
                factor = 1.0 if factor is None else factor
                grads[i] = g * ops.cast(factor / replicas, g.dtype)

        if self.track_update_ratio and present:
            # ops.copy forces a read now: on TensorFlow, converting a
            # variable gives a handle that would be read after the update.
            before = [ops.copy(variables[i]) for i in present]
        self._inner_apply(grads, variables)

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
            ratio = ops.sqrt(totals[0]) / (ops.sqrt(totals[1]) + clipping.EPS)
            self._stat_layers.assign_add(ops.matmul(sums, self._layer_one_hot[present]))
        # A step whose gradient overflowed (loss scaling skips it) adds no
        # norm; with accumulation only update steps count.
        norm = ops.where(ops.isfinite(norm), ops.cast(norm, "float32"), 0.0)
        counted = ops.ones((), "float32") if update is None else ops.cast(update, "float32")
        self._stat_scalars.assign_add(ops.stack([counted, clipped, norm, ratio]) * counted)

    def _inner_apply(self, grads, variables):
        inner = self.inner_optimizer
        if not (keras.backend.backend() == "jax"
                and isinstance(inner, keras.optimizers.LossScaleOptimizer)):
            inner.apply(grads, variables)
            return
        # On JAX this runs inside the trainer's stateless scope, where
        # LossScaleOptimizer's stateful `apply` (an ops.cond that assigns)
        # leaks tracers: its own stateless_apply, with the values assigned back.
        new_variables, new_inner = inner.stateless_apply(
            [v.value for v in inner.variables], grads, [v.value for v in variables])
        for variable, value in zip(inner.variables, new_inner):
            variable.assign(value)
        for variable, value in zip(variables, new_variables):
            variable.assign(value)

    # -- per-member clipping (fit_ensemble's fused members) -------------------

    def clip_per_member(self, members, stacked=(), groups=None):
        """Clips each ensemble member by its own global norm instead of one
        norm over all variables, so members trained as one program are
        clipped as if trained alone (tip 7 in `fit_ensemble`).

        Args:
            members: Integer, the number of members.
            stacked: Variables that hold every member along axis 0 (a
                vectorized ensemble); member i's part is `variable[i]`.
            groups: List of `members` lists: member i's own variables.

        Every trained variable must be in `stacked` or in one group. The
        statistics then report the members' mean pre-clip norm and the
        fraction of (member, step) pairs that were clipped.
        """
        members = int(members)
        groups = list(groups or [])
        if groups and len(groups) != members:
            raise ValueError(f"`groups` must hold one list per member ({members}). "
                             f"Received: {len(groups)} groups")
        owner = {id(v): None for v in stacked}
        owner.update({id(v): i for i, group in enumerate(groups) for v in group})
        self._member_groups = (members, owner)

    _member_groups = None

    def _loss_scale(self):
        """What the gradients arriving here are multiplied by: an inner
        LossScaleOptimizer's current scale, or the inner loss_scale_factor."""
        inner = self.inner_optimizer
        if isinstance(inner, keras.optimizers.LossScaleOptimizer):
            return inner.dynamic_scale
        return inner.loss_scale_factor

    def _accumulate(self, present, summed, loss_scale, replicas, factors, update, grads):
        """With gradient accumulation: on the update step, hands the inner
        optimizer the gradient that makes its accumulated mean the clipped
        mean; between updates, the gradient as it is (and keeps the sum)."""
        for i, g, factor in zip(present, summed, factors):
            factor = 1.0 if factor is None else factor
            unit = ops.cast(1.0 if loss_scale is None else loss_scale, g.dtype)
            acc = self._accumulated[i]
            total = g / unit + acc
            clipped_total = total * ops.cast(factor, g.dtype)
            handed = ops.where(update, clipped_total - acc, g / unit)
            grads[i] = handed * unit / replicas
            acc.assign(ops.where(update, ops.zeros_like(total), total))
        self._micro_steps.assign_add(1)

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
        steps, clipped, norm_sum, ratio_sum = clipping.to_numpy(self._stat_scalars).tolist()
        if steps == 0:
            return {}
        stats = {
            "steps": steps,
            "grad_norm": norm_sum / steps,
            "clip_fraction": clipped / steps,
        }
        if self.track_update_ratio:
            stats["update_ratio"] = ratio_sum / steps
            update_sq, weight_sq = clipping.to_numpy(self._stat_layers)
            stats["layer_update_ratio"] = {
                name: float(np.sqrt(u) / (np.sqrt(w) + clipping.EPS))
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
