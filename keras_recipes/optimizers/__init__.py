"""Optimizers: `ClippedOptimizer` (tips 3, 5 and 7), and the arithmetic of
its step (`clipping`)."""

from keras_recipes.optimizers.clipped import ClippedOptimizer

__all__ = ["ClippedOptimizer"]
