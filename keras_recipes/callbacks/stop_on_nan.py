"""`StopOnNaN`: stops a run whose loss is no longer finite.
"""

import math

import keras

from keras_recipes import sharding
from keras_recipes.callbacks.rates import PACKAGE
from keras_recipes.callbacks.rates import current_learning_rate


@keras.saving.register_keras_serializable(package=PACKAGE)
class StopOnNaN(keras.callbacks.Callback):
    """Stops training when the epoch loss turns NaN/Inf and restores the
    weights of the last epoch whose loss was finite.

    Unlike Keras' `TerminateOnNaN`, it never leaves NaN weights behind, and
    it records what happened in `event` (epoch and the learning rate in
    force). It checks once per epoch (the epoch loss is a mean, so any NaN
    step shows there), which costs no synchronisation per step.

    Example:

    ```python
    guard = StopOnNaN()
    model.fit(x, y, epochs=50, callbacks=[guard])
    if guard.event:
        print(guard.event)
    ```
    """

    def __init__(self):
        super().__init__()
        self.event = None
        self._good = None

    def on_train_begin(self, logs=None):
        self.event = None
        self._good = sharding.host_weights(self.model)

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None:
            return
        if math.isfinite(float(loss)):
            self._good = sharding.host_weights(self.model)
            return
        self.event = {
            "epoch": epoch,
            "loss": float(loss),
            "learning_rate": current_learning_rate(self.model.optimizer),
        }
        self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.event is not None and self._good is not None:
            self.model.set_weights(self._good)

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
