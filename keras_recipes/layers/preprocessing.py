"""Input preprocessing layers for tip 1."""

import keras
from keras import ops

_PACKAGE = "keras_recipes"


@keras.saving.register_keras_serializable(package=_PACKAGE)
class Log1p(keras.layers.Layer):
    """Applies `log(1 + x)` to the chosen features of a `(batch, features)` input.

    Tip 1: dimensions that span orders of magnitude are better seen on a log
    scale. Other features pass through unchanged. Negative values of a chosen
    feature are clipped at 0 first, so the output is always finite.

    Example:

    ```python
    layer = Log1p(features=[0, 2])
    layer(np.array([[999.0, -1.0, 0.0]]))  # [[6.9078, -1.0, 0.0]]
    ```

    Args:
        features: List of integers. Indices of the last axis to transform.
    """

    def __init__(self, features, **kwargs):
        super().__init__(**kwargs)
        if isinstance(features, (str, bytes)) or not hasattr(features, "__iter__"):
            raise TypeError(
                f"`features` must be a list of feature indices. Received: features={features!r}"
            )
        features = [int(i) for i in features]
        if any(i < 0 for i in features) or len(set(features)) != len(features):
            raise ValueError(
                "`features` must be distinct indices >= 0. "
                f"Received: features={features}"
            )
        self.features = sorted(features)
        self._mask = None

    def build(self, input_shape):
        width = input_shape[-1]
        if width is None or (self.features and max(self.features) >= width):
            raise ValueError(
                f"Log1p features {self.features} do not fit an input with "
                f"{width} features. Received: input_shape={input_shape}"
            )
        mask = [0.0] * width
        for i in self.features:
            mask[i] = 1.0
        self._mask = mask

    def call(self, inputs):
        mask = ops.cast(ops.convert_to_tensor(self._mask), inputs.dtype) > 0
        return ops.where(mask, ops.log1p(ops.maximum(inputs, 0.0)), inputs)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "features": self.features}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class PaddingAwareNormalization(keras.layers.Layer):
    """`(x - mean) / sqrt(variance)` on the steps of a sequence, keeping its
    padding steps (every feature equal to `padding_value`) as they are.

    Tip 1 for padded sequences: a `Masking` layer behind it still finds the
    padding (its `mask_value` is kept), and a model without one still sees
    the padding value it was given, while the real steps are standardized.

    Example:

    ```python
    layer = PaddingAwareNormalization(mean=[10.0], variance=[4.0], padding_value=0.0)
    layer(np.array([[[12.0], [0.0]]]))  # [[[1.0], [0.0]]]
    ```

    Args:
        mean: Float or list of floats (one per feature, the last axis).
        variance: Float or list of floats, > 0, of the same length.
        padding_value: Float. A step whose features all equal it is padding.
    """

    def __init__(self, mean, variance, padding_value=0.0, **kwargs):
        super().__init__(**kwargs)
        mean, variance = _floats("mean", mean), _floats("variance", variance)
        if len(mean) != len(variance) or min(variance) <= 0:
            raise ValueError("`mean` and `variance` must have one value per feature, variances "
                             f"> 0. Received: mean={mean}, variance={variance}")
        self.mean, self.variance = mean, variance
        self.padding_value = float(padding_value)

    def call(self, inputs):
        mean = ops.cast(ops.convert_to_tensor(self.mean), inputs.dtype)
        std = ops.sqrt(ops.cast(ops.convert_to_tensor(self.variance), inputs.dtype))
        padding = ops.all(ops.equal(inputs, self.padding_value), axis=-1, keepdims=True)
        return ops.where(padding, ops.cast(self.padding_value, inputs.dtype),
                         (inputs - mean) / std)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "mean": self.mean, "variance": self.variance,
                "padding_value": self.padding_value}


def _floats(name, value):
    try:
        values = [float(v) for v in (value if hasattr(value, "__iter__") else [value])]
    except (TypeError, ValueError):
        raise TypeError(f"`{name}` must be a float or a list of floats. Received: "
                        f"{name}={value!r}") from None
    if not values:
        raise ValueError(f"`{name}` must not be empty. Received: {name}={value!r}")
    return values
