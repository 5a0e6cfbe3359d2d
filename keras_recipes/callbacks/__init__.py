"""Callbacks for tips 4 and 5, one concern per module: the plateau rule
(`ReduceLROnPlateau`), the update ratio (`UpdateRatioMonitor`), divergence
(`DivergenceGuard`, `StopOnNaN`) and the learning-rate helpers they share.
"""

from keras_recipes.callbacks.divergence_guard import DivergenceGuard
from keras_recipes.callbacks.divergence_guard import describe_guard_event
from keras_recipes.callbacks.rates import ScaledSchedule
from keras_recipes.callbacks.rates import current_learning_rate
from keras_recipes.callbacks.rates import learning_rate_schedule
from keras_recipes.callbacks.rates import lr_optimizers
from keras_recipes.callbacks.rates import scale_learning_rate
from keras_recipes.callbacks.reduce_lr import ReduceLROnPlateau
from keras_recipes.callbacks.stop_on_nan import StopOnNaN
from keras_recipes.callbacks.update_ratio import UpdateRatioMonitor
from keras_recipes.callbacks.update_ratio import UpdateRatioWarning
from keras_recipes.callbacks.update_ratio import find_clipped_optimizer
from keras_recipes.callbacks.update_ratio import rate_for_ratio
from keras_recipes.stateful import ResetStates  # noqa: F401  (keras_recipes.callbacks.ResetStates)

__all__ = [
    "DivergenceGuard",
    "ReduceLROnPlateau",
    "ResetStates",
    "ScaledSchedule",
    "StopOnNaN",
    "UpdateRatioMonitor",
    "UpdateRatioWarning",
    "current_learning_rate",
    "describe_guard_event",
    "find_clipped_optimizer",
    "learning_rate_schedule",
    "lr_optimizers",
    "rate_for_ratio",
    "scale_learning_rate",
]
