"""Losses for members trained side by side as one program: each member's
own loss on its own share of the targets."""

import keras
from keras import ops

_PACKAGE = "keras_recipes"  # part of the saved-file format: never rename it


def _member_share(value, index, stacked):
    """Member `index`'s targets or weights: `value[:, index]` when the batch
    holds one share per member (`(batch, members, ...)`), else `value`."""
    return value[:, index] if stacked and value is not None else value


@keras.saving.register_keras_serializable(package=_PACKAGE)
class MemberwiseLoss(keras.losses.Loss):
    """Sum over members of a mean-reduced loss, for stacked member outputs.

    `y_pred` has shape `(batch, members, ...)`; member `i` is scored on
    `y_pred[:, i]` against the shared `y_true`, or with
    `stacked_targets=True` against `y_true[:, i]` (each member's own batch,
    as `fit_ensemble` feeds them); sample weights likewise. Each member's
    gradient comes from its own term only, so training the stack trains
    every member as if alone.

    Args:
        loss: A Keras loss (mean-reduced).
        stacked_targets: Boolean. Whether targets and sample weights are
            `(batch, members, ...)`. Defaults to `False`.
    """

    def __init__(self, loss, stacked_targets=False, name="memberwise_loss", **kwargs):
        # The members' losses reduce themselves (mean); the sum over members
        # needs no further reduction.
        super().__init__(name=name, reduction=None, **kwargs)
        self.loss = keras.losses.get(loss)
        self.stacked_targets = bool(stacked_targets)
        if getattr(self.loss, "reduction", None) == "sum":
            raise ValueError("MemberwiseLoss needs a mean-reduced loss. Received: reduction='sum'")

    def __call__(self, y_true, y_pred, sample_weight=None):
        stacked = self.stacked_targets
        return ops.sum(ops.stack([
            self.loss(_member_share(y_true, i, stacked), y_pred[:, i],
                      _member_share(sample_weight, i, stacked))
            for i in range(y_pred.shape[1])]))

    def call(self, y_true, y_pred):
        return self(y_true, y_pred)

    def get_config(self):
        return {"name": self.name, "loss": keras.saving.serialize_keras_object(self.loss),
                "stacked_targets": self.stacked_targets}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        return cls(keras.saving.deserialize_keras_object(config.pop("loss")), **config)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class MemberLoss(keras.metrics.Mean):
    """Metric: the loss of one member of a stack (`y_pred[:, index]`, against
    `y_true[:, index]` with `stacked_targets=True`)."""

    def __init__(self, loss, index, stacked_targets=False, name=None, **kwargs):
        super().__init__(name=name or f"member_{index}_loss", **kwargs)
        self.loss = keras.losses.get(loss)
        self.index = int(index)
        self.stacked_targets = bool(stacked_targets)

    def update_state(self, y_true, y_pred, sample_weight=None):
        stacked = self.stacked_targets
        return super().update_state(self.loss(
            _member_share(y_true, self.index, stacked), y_pred[:, self.index],
            _member_share(sample_weight, self.index, stacked)))

    def get_config(self):
        return {"name": self.name, "index": self.index, "stacked_targets": self.stacked_targets,
                "loss": keras.saving.serialize_keras_object(self.loss)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        return cls(keras.saving.deserialize_keras_object(config.pop("loss")), **config)
