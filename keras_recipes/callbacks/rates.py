"""Reading and setting an optimizer's learning rate (also inside wrappers and
schedules), the `ScaledSchedule` that scales a schedule, and the argument
checks the callbacks share.
"""

import keras
import numpy as np
from absl import logging

from keras_recipes import sharding


PACKAGE = "keras_recipes"


_Schedule = keras.optimizers.schedules.LearningRateSchedule


@keras.saving.register_keras_serializable(package=PACKAGE)
class ScaledSchedule(_Schedule):
    """A learning-rate schedule multiplied by a constant `scale`.

    `ReduceLROnPlateau` uses it to lower a schedule's learning rate without
    replacing the schedule's shape.

    Args:
        schedule: A `LearningRateSchedule`.
        scale: Float. Multiplier of the schedule's value.
    """

    def __init__(self, schedule, scale=1.0):
        if not isinstance(schedule, _Schedule):
            raise TypeError(
                "`schedule` must be a LearningRateSchedule. "
                f"Received: schedule={schedule!r}"
            )
        self.schedule = schedule
        self.scale = float(scale)

    def __call__(self, step):
        return self.schedule(step) * self.scale

    def get_config(self):
        return {
            "schedule": keras.saving.serialize_keras_object(self.schedule),
            "scale": self.scale,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        schedule = keras.saving.deserialize_keras_object(config.pop("schedule"))
        return cls(schedule, **config)


def lr_optimizers(optimizer):
    """[(name, optimizer)] whose learning rates an LR callback drives: the
    sub-optimizers of a `MultiOptimizer` (also inside a ClippedOptimizer), as
    Keras' own ReduceLROnPlateau does, else [("", optimizer)]."""
    subs = getattr(optimizer, "optimizers", None)
    if subs is not None:  # empty until a MultiOptimizer with a selector is built
        return [(sub.name, sub) for sub in subs]
    return [("", optimizer)]


def rate_of(optimizer):
    lr = optimizer.learning_rate
    return float(sharding.host(keras.ops.convert_to_tensor(lr)))


def current_learning_rate(optimizer):
    """The learning rate in force now, as a float (schedules evaluated); the
    largest of a MultiOptimizer's."""
    return max(rate_of(sub) for _, sub in lr_optimizers(optimizer))


def lr_logs(optimizer):
    """Keras' log keys: `learning_rate`, or `learning_rate_<name>` per
    sub-optimizer of a MultiOptimizer."""
    named = lr_optimizers(optimizer)
    if named and named[0][0] == "":
        return {"learning_rate": rate_of(optimizer)}
    return {f"learning_rate_{name}": rate_of(sub) for name, sub in named}


def print_message(message):
    """As Keras' callbacks print: to stdout while interactive logging is on
    (`keras.config.disable_interactive_logging()` turns it off), else through
    absl logging."""
    if keras.config.is_interactive_logging_enabled():
        print(message, flush=True)
    else:
        logging.info(message)


def learning_rate_schedule(optimizer):
    """The optimizer's LearningRateSchedule, or None for a plain rate.

    Keras' `learning_rate` getter evaluates a schedule, and no public
    attribute gives it back, so this reads `_learning_rate` of the innermost
    optimizer (wrappers pass `learning_rate` through to it).
    """
    while getattr(optimizer, "inner_optimizer", None) is not None:
        optimizer = optimizer.inner_optimizer
    lr = getattr(optimizer, "_learning_rate", None)
    return lr if isinstance(lr, _Schedule) else None


def scale_learning_rate(model, optimizer, factor, min_lr=0.0):
    """Multiplies `optimizer`'s learning rate by `factor` (not below
    `min_lr`); a schedule is wrapped in a `ScaledSchedule` and `model`'s
    train function retraced. Returns the new rate, or None when the rate was
    already at `min_lr`."""
    old_lr = rate_of(optimizer)
    if old_lr <= float(np.float32(min_lr)):
        return None
    lr = learning_rate_schedule(optimizer)
    if lr is not None:
        if isinstance(lr, ScaledSchedule):
            new = ScaledSchedule(lr.schedule, lr.scale * factor)
        else:
            new = ScaledSchedule(lr, factor)
        optimizer.learning_rate = new
        # The schedule is a Python object read when the step is traced.
        model.make_train_function(force=True)
        return rate_of(optimizer)
    new_lr = max(old_lr * factor, min_lr)
    optimizer.learning_rate = new_lr
    return new_lr


def check_fraction(name, value, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(
        value, (int, float, np.integer, np.floating)
    ):
        raise TypeError(f"`{name}` must be a number. Received: {name}={value!r}")
    if not 0.0 < value < 1.0:
        raise ValueError(
            f"`{name}` must be in the open interval (0, 1). "
            f"Received: {name}={value}"
        )
    return float(value)


def check_count(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(
            f"`{name}` must be an integer >= 0. Received: {name}={value!r}"
        )
    return int(value)
