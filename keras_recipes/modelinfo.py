"""Reading a Keras model's structure: its layers (nested models included)
and the activation that produces its output. Used by fit_with_tips, the
ensemble and the audit to take decisions from the model alone."""

import keras

from keras_recipes.layers import NoiseMix
from keras_recipes.layers import RandomShiftRotate


def walk_layers(layer):
    """Yields `layer` and every layer nested in it (models, wrappers)."""
    yield layer
    for sub in getattr(layer, "layers", None) or []:
        yield from walk_layers(sub)
    for sub in (getattr(layer, "forward_layer", None), getattr(layer, "backward_layer", None),
                getattr(layer, "layer", None), getattr(layer, "cell", None)):
        if isinstance(sub, keras.layers.Layer):
            yield from walk_layers(sub)


def output_activation(model):
    """Name of the activation that produces the model's output, if known
    ("linear" when the last layer with an activation has none)."""
    layers = [l for l in walk_layers(model) if not isinstance(l, keras.Model)]
    for layer in reversed(layers):
        if isinstance(layer, keras.layers.Softmax):
            return "softmax"
        activation = getattr(layer, "activation", None)
        if activation is not None:
            return getattr(activation, "__name__", str(activation))
    return "linear"


RECURRENT = (keras.layers.RNN, keras.layers.LSTM, keras.layers.GRU, keras.layers.SimpleRNN)
DROPOUT = (keras.layers.Dropout, keras.layers.SpatialDropout1D, keras.layers.SpatialDropout2D,
           keras.layers.SpatialDropout3D, keras.layers.AlphaDropout, keras.layers.GaussianDropout)


def recurrent_layers(model):
    """Names of the recurrent layers in the model."""
    return [l.name for l in walk_layers(model) if isinstance(l, RECURRENT)]


def jit_blockers(model):
    """Names of the layers that declare they cannot be compiled with XLA
    (Keras then turns jit_compile off for the whole model)."""
    return sorted({l.name for l in walk_layers(model) if getattr(l, "supports_jit", True) is False})


def dropout_layers(model):
    """Names of the dropout layers in the model."""
    return [l.name for l in walk_layers(model) if isinstance(l, DROPOUT)]


# Keras' own augmentation layers (random at training, identity at inference).
AUGMENTATION = tuple(getattr(keras.layers, n) for n in (
    "RandomFlip", "RandomRotation", "RandomTranslation", "RandomZoom", "RandomContrast",
    "RandomCrop", "RandomBrightness", "RandomShear", "RandomColorJitter", "RandomGrayscale",
    "RandomHue", "RandomSaturation", "RandomSharpness", "RandomPosterization",
    "RandomColorDegeneration", "RandomInvert", "RandomErasing", "RandomGaussianBlur",
    "RandomPerspective", "RandomElasticTransform", "AugMix", "RandAugment", "CutMix", "MixUp",
    "Solarization", "GaussianNoise") if hasattr(keras.layers, n))


def augmentation_layers(model):
    """Names of the augmentation layers the model holds itself (Keras' own
    and tip 10's)."""
    found = AUGMENTATION + (NoiseMix, RandomShiftRotate)
    return [f"{type(l).__name__} {l.name!r}" for l in walk_layers(model) if isinstance(l, found)]
