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


def stateful_layers(model):
    """Names of the layers that carry state from one batch to the next
    (`stateful=True` recurrent layers)."""
    return [l.name for l in walk_layers(model) if getattr(l, "stateful", False)]


def fixed_batch_size(model):
    """The batch size the model's own inputs fix (`keras.Input(batch_size=N)`,
    a Sequential built with a batch dimension), or a model nested in it
    does, or None. Inputs that fix different sizes are refused."""
    inputs = []
    for layer in walk_layers(model):
        if isinstance(layer, keras.Model):
            try:
                inputs += list(layer.inputs or [])
            except (AttributeError, ValueError):  # subclassed: no symbolic inputs
                pass
    sizes = {int(t.shape[0]) for t in inputs if len(t.shape) and t.shape[0] is not None}
    if len(sizes) > 1:
        raise ValueError("The model's inputs fix different batch sizes; a batch feeds every input "
                         f"at once. Received: batch sizes {sorted(sizes)} on model.inputs")
    return sizes.pop() if sizes else None


# Keras layers that take strings and encode them themselves.
STRING_READERS = tuple(getattr(keras.layers, n) for n in (
    "TextVectorization", "StringLookup", "Hashing") if hasattr(keras.layers, n))


def reads_strings(model):
    """Why the model takes string inputs itself (issue 38 item 4), or None:
    an input declared `dtype="string"` (Keras would fail on strings
    otherwise), or an unbuilt Sequential whose first layer encodes text."""
    try:
        inputs = list(model.inputs or [])
    except (AttributeError, ValueError):
        inputs = []
    named = [getattr(t, "name", None) or "" for t in inputs
             if str(getattr(t, "dtype", "")) == "string"]
    if named:
        shown = [repr(n) for n in named if not n.startswith("keras_tensor")]
        return (f"the model's input {', '.join(shown)} is declared dtype='string'" if shown
                else "its input is declared dtype='string'")
    layers = getattr(model, "layers", None) or []
    if isinstance(model, keras.Sequential) and layers and isinstance(layers[0], STRING_READERS):
        return f"its first layer, {type(layers[0]).__name__} {layers[0].name!r}, encodes strings"
    return None
