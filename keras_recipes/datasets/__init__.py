"""The embedded default data: UCI handwritten digits (8x8), shipped in the
package and exposed as a TFDS dataset so the TFDS path runs for real offline.

See ATTRIBUTION.txt beside this file for the source and licence.
"""

from keras_recipes.datasets.digits import DIGITS_NAME
from keras_recipes.datasets.digits import load_digits
from keras_recipes.datasets.digits import digits_builder

__all__ = ["DIGITS_NAME", "digits_builder", "load_digits"]
