"""Keras layers of keras_recipes."""

from keras_recipes.layers.audio import NoiseMix
from keras_recipes.layers.image import RandomShiftRotate
from keras_recipes.layers.preprocessing import Log1p
from keras_recipes.layers.preprocessing import PaddingAwareNormalization

__all__ = ["Log1p", "NoiseMix", "PaddingAwareNormalization", "RandomShiftRotate"]
