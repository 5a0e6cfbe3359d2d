"""Small model presets for the command line, the tutorials and benchmarks.

They are deliberately untuned: the point of fit_with_tips is that an
ordinary model trains well without hand tuning.
"""

import math

import keras

PRESETS = ("mlp", "cnn")


def _image_shape(input_shape):
    """(H, W, C) for a conv net: flat square inputs are reshaped."""
    if len(input_shape) == 3:
        return tuple(input_shape)
    if len(input_shape) == 2:
        return tuple(input_shape) + (1,)
    side = int(round(math.sqrt(input_shape[0])))
    if len(input_shape) == 1 and side * side == input_shape[0]:
        return (side, side, 1)
    raise ValueError(
        "The cnn preset needs image inputs (H, W[, C]) or flat square images. "
        f"Received: input_shape={tuple(input_shape)}"
    )


def preset(name, input_shape, num_classes):
    """An uncompiled classifier preset.

    Args:
        name: `"mlp"` (two hidden layers of 128) or `"cnn"` (two 3x3 conv
            layers and a dense head).
        input_shape: Per-example input shape.
        num_classes: Integer, the number of output logits.
    """
    if name not in PRESETS:
        raise ValueError(f"`model` must be one of {PRESETS}. Received: model={name!r}")
    inputs = keras.Input(tuple(input_shape))
    if name == "mlp":
        z = keras.layers.Flatten()(inputs) if len(input_shape) > 1 else inputs
        z = keras.layers.Dense(128, activation="relu")(z)
        z = keras.layers.Dense(128, activation="relu")(z)
    else:
        shape = _image_shape(input_shape)
        z = keras.layers.Reshape(shape)(inputs) if tuple(input_shape) != shape else inputs
        z = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(z)
        if shape[0] >= 16:
            z = keras.layers.MaxPooling2D()(z)
        z = keras.layers.Conv2D(64, 3, padding="same", activation="relu")(z)
        z = keras.layers.MaxPooling2D()(z)
        z = keras.layers.Flatten()(z)
        z = keras.layers.Dense(128, activation="relu")(z)
    outputs = keras.layers.Dense(num_classes, name="logits")(z)
    return keras.Model(inputs, outputs, name=f"{name}_preset")
