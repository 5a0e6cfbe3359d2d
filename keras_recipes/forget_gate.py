"""Tip 9 as a decision: which LSTM layers still hold Keras' default
forget-gate bias (read from their weights), how long the sequences they read
are, and setting the bias before training."""

import keras
import numpy as np

from keras_recipes import sharding
from keras_recipes.modelinfo import walk_layers

# The decision, measured (benchmarks/bench_forget_bias_length.py, BUILD_NOTES.md,
# issue 36): LSTMs reading at least FORGET_BIAS_STEPS steps get FORGET_BIAS.
FORGET_BIAS = 3.0
FORGET_BIAS_STEPS = 32
FORGET_BIAS_WHY = ("measured on the digits read as sequences, validation accuracy over 3 "
                   "seeds, 3 against Keras' 1: +1.6 points at 32 steps, +5.2 at 64, +0.1 at 16, "
                   "-0.5 at 8 (BUILD_NOTES.md, issue 36)")

# LSTM-family cells keep their gates in the order (input, forget, cell,
# output): the forget slice of a bias of 4 * units is [units:2 * units].
_LSTM_FAMILY = tuple(getattr(keras.layers, n) for n in (
    "LSTM", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D") if hasattr(keras.layers, n))


def lstm_layers(model):
    """The LSTM-family layers of `model`, each once (inside Bidirectional
    too), as `(layer, reader)`: `reader` is the layer whose input is the
    sequence (a Bidirectional wrapper, or the layer itself)."""
    found, seen = [], set()
    for layer in walk_layers(model):
        pairs = ([(layer.forward_layer, layer), (layer.backward_layer, layer)]
                 if isinstance(layer, keras.layers.Bidirectional) else [(layer, layer)])
        for lstm, reader in pairs:
            if isinstance(lstm, _LSTM_FAMILY) and id(lstm) not in seen:
                seen.add(id(lstm))
                found.append((lstm, reader))
    return found


def _bias(layer):
    cell = getattr(layer, "cell", layer)
    return getattr(cell, "bias", None)


def at_keras_default(layer):
    """True when the layer's bias is what `unit_forget_bias=True` leaves: 1
    on the forget slice, 0 elsewhere (measured on the weights, so a bias the
    user set, or trained, is never taken for the default)."""
    bias = _bias(layer)
    if bias is None:
        return False
    values = sharding.host(bias)
    units = len(values) // 4
    default = np.zeros_like(values)
    default[units:2 * units] = 1.0
    return bool(np.array_equal(values, default))


def sequence_length(layer):
    """The number of time steps the layer reads, or None when unknown."""
    try:
        shape = layer.input.shape
    except (AttributeError, ValueError):
        return None
    return int(shape[1]) if len(shape) > 2 and shape[1] is not None else None


def set_forget_bias(layer, value):
    """Sets the forget slice of the layer's bias to `value` (the rest kept)."""
    bias = _bias(layer)
    values = sharding.host(bias).copy()
    units = len(values) // 4
    values[units:2 * units] = value
    bias.assign(values)
