"""Stateful recurrent layers under `model.fit` (issue 37 item 4).

A layer built with `stateful=True` carries its last state into the next
batch: the batches of an epoch are read as one stream, and sample i of a
batch continues sample i of the one before. Keras 3's `fit` never resets
those states; its guide resets them by hand between epochs. `ResetStates`
does it as a callback, also before each evaluation and prediction pass, so
validation reads the held-out stretch from the same zero state each epoch.
"""

import keras

from keras_recipes.modelinfo import walk_layers

__all__ = ["ResetStates"]


def reset_states(model):
    """Resets every stateful layer in `model` (nested models included);
    returns their names."""
    names = []
    for layer in walk_layers(model):
        if getattr(layer, "stateful", False) and hasattr(layer, "reset_state"):
            layer.reset_state()
            names.append(layer.name)
    return names


class ResetStates(keras.callbacks.Callback):
    """Resets the model's stateful layers at the start of every epoch and
    before every evaluation and prediction pass.

    Example:

    ```python
    model.fit(x, y, batch_size=32, shuffle=False, callbacks=[ResetStates()])
    ```
    """

    def on_epoch_begin(self, epoch, logs=None):
        reset_states(self.model)

    def on_test_begin(self, logs=None):
        reset_states(self.model)

    def on_predict_begin(self, logs=None):
        reset_states(self.model)
