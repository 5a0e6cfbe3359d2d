"""Weight initializers from the advice (tips 6 and 9).

* `SmallNormal`: the "lazy" initialization, `0.02 * randn`.
* `ScaledNormal`: `init_scale / sqrt(fan_in) * randn`, untruncated.
* `ForgetGateBias`: an LSTM bias with a large forget-gate slice, for long-range
  dependencies.
"""

import math
import sys

import keras
import numpy as np

from keras_recipes import sharding

_PACKAGE = "keras_recipes"


def _check_seed(seed):
    """Every seed form Keras' random initializers take: None, an integer, a
    `keras.random.SeedGenerator` (or its serialized dict, from a config)."""
    if seed is None or isinstance(seed, (keras.random.SeedGenerator, dict)):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(
            "`seed` must be an integer, a keras.random.SeedGenerator or None. "
            f"Received: seed={seed!r}"
        )
    return int(seed)


def _check_positive(name, value):
    if isinstance(value, bool) or not isinstance(
        value, (int, float, np.integer, np.floating)
    ):
        raise TypeError(f"`{name}` must be a number. Received: {name}={value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(
            f"`{name}` must be a finite number > 0. Received: {name}={value!r}"
        )
    return float(value)


def compute_fan_in(shape):
    """Fan-in as Keras computes it: receptive field size x input channels.

    Dense kernels `(in, out)` give `in`; convolution kernels
    `(*spatial, in, out)` give `prod(spatial) * in`.
    """
    shape = tuple(int(d) for d in shape)
    if len(shape) == 0:
        return 1
    if len(shape) == 1:
        return shape[0]
    return int(np.prod(shape[:-2], dtype=np.int64)) * shape[-2]


def _seed_config(initializer):
    """The seed as Keras' random initializers save it (the raw argument)."""
    return keras.saving.serialize_keras_object(initializer._recipes_seed)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SmallNormal(keras.initializers.RandomNormal):
    """The "lazy" initialization of tip 6: `stddev * randn`, stddev 0.02.

    Untruncated normal noise with a fixed, small standard deviation. It works
    for most networks of moderate depth and width without any thought about
    fan-in; for very wide or deep networks prefer `ScaledNormal`. It is
    Keras' `RandomNormal(mean=0.0, stddev=stddev)`, with its seed handling.

    Example:

    ```python
    layer = keras.layers.Dense(64, kernel_initializer=SmallNormal(seed=0))
    ```

    Args:
        stddev: Float. Standard deviation of the normal draw. Defaults to
            `0.02`.
        seed: Integer, `keras.random.SeedGenerator` or `None`, as for Keras'
            random initializers: an integer or `None` gives the same values on
            every call, a `SeedGenerator` new values on each. Defaults to
            `None`.
    """

    def __init__(self, stddev=0.02, seed=None):
        self._recipes_seed = _check_seed(seed)
        super().__init__(mean=0.0, stddev=_check_positive("stddev", stddev), seed=seed)

    def get_config(self):
        return {"stddev": self.stddev, "seed": _seed_config(self)}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ScaledNormal(keras.initializers.VarianceScaling):
    """`init_scale / sqrt(fan_in) * randn`, untruncated (tip 6).

    Keras' `VarianceScaling(scale=init_scale**2, mode="fan_in",
    distribution="untruncated_normal")`, so `fan_in` is Keras' own for every
    kernel layout: Dense `(in, out)` gives `in`, convolutions
    `(*spatial, in, out)` give `prod(spatial) * in`, and the kernels of
    `EinsumDense` and `MultiHeadAttention` the product of their input axes
    (those layers pass `input_axes` / `output_axes`). With `init_scale=1`
    each unit's pre-activation has roughly the variance of its inputs; the
    advice suggests trying 0.1 and 1.

    Example:

    ```python
    conv = keras.layers.Conv2D(
        32, 3, kernel_initializer=ScaledNormal(init_scale=1.0, seed=0)
    )
    ```

    Args:
        init_scale: Float. Multiplier of `1 / sqrt(fan_in)`. Defaults to
            `1.0`.
        seed: Integer, `keras.random.SeedGenerator` or `None`, as for Keras'
            random initializers. Defaults to `None`.
        input_axes, output_axes: Lists of axes of the kernel that count as
            input / output units, as for `VarianceScaling` (set by
            `EinsumDense`). Default to `None` (Keras' rule from the shape).
    """

    def __init__(self, init_scale=1.0, seed=None, input_axes=None, output_axes=None):
        self.init_scale = _check_positive("init_scale", init_scale)
        self._recipes_seed = _check_seed(seed)
        super().__init__(scale=self.init_scale**2, mode="fan_in",
                         distribution="untruncated_normal", seed=seed,
                         input_axes=input_axes, output_axes=output_axes)

    def get_config(self):
        config = {"init_scale": self.init_scale, "seed": _seed_config(self)}
        if self.input_axes is not None or self.output_axes is not None:
            config.update(input_axes=self.input_axes, output_axes=self.output_axes)
        return config


def _calling_lstm_cell():
    """The LSTMCell whose `unit_forget_bias` closure is calling us, if any.

    With `unit_forget_bias=True`, Keras' LSTMCell calls the bias initializer
    on slices of the bias and forces the forget slice to ones, so the value of
    `ForgetGateBias` would be silently replaced. The closure that does this
    holds the cell as `self`; we look one frame up (ours -> closure).
    """
    frame = sys._getframe(2)
    owner = frame.f_locals.get("self")
    # LSTMCell and the ConvLSTM cells build their bias the same way.
    if isinstance(owner, keras.layers.Layer) and getattr(owner, "unit_forget_bias", False):
        return owner
    return None


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ForgetGateBias(keras.initializers.Initializer):
    """LSTM bias with the forget-gate slice set to `value`, the rest zero.

    Tip 9: a large forget-gate bias keeps the cell state (and its gradient)
    alive over many steps, which helps long-range dependencies. Keras orders
    the LSTM gates `(input, forget, cell, output)`, so for `units` cells the
    bias has `4 * units` entries and the forget slice is `[units:2 * units]`.

    Keras' `LSTM(unit_forget_bias=True)` (its default) overwrites the forget
    slice with ones; using this initializer with it raises an error instead of
    silently losing `value`. Pass `unit_forget_bias=False`.

    The default of 3.0 was chosen by the row-by-row MNIST experiment in
    `benchmarks/bench_lstm_forget_bias.py` (see BUILD_NOTES.md).

    Example:

    ```python
    lstm = keras.layers.LSTM(
        64, unit_forget_bias=False, bias_initializer=ForgetGateBias(3.0)
    )
    ```

    Args:
        value: Float. The forget-gate bias. Defaults to `3.0`.
    """

    def __init__(self, value=3.0):
        if isinstance(value, bool) or not isinstance(
            value, (int, float, np.integer, np.floating)
        ):
            raise TypeError(
                f"`value` must be a number. Received: value={value!r}"
            )
        if not math.isfinite(value):
            raise ValueError(
                f"`value` must be finite. Received: value={value!r}"
            )
        self.value = float(value)

    def __call__(self, shape, dtype=None):
        cell = _calling_lstm_cell()
        if cell is not None:
            raise ValueError(
                "ForgetGateBias cannot be combined with "
                "`unit_forget_bias=True`: Keras would overwrite the forget-gate "
                f"bias with 1.0 instead of {self.value}. Create the LSTM with "
                "`unit_forget_bias=False`. Received: unit_forget_bias=True on "
                f"layer '{cell.name}'."
            )
        shape = tuple(shape)
        if len(shape) != 1 or shape[0] % 4 != 0 or shape[0] == 0:
            raise ValueError(
                "ForgetGateBias initializes an LSTM bias, a vector of "
                "4 * units entries (gates i, f, c, o). "
                f"Received: shape={shape}"
            )
        units = shape[0] // 4
        dtype = dtype or keras.backend.floatx()
        bias = np.zeros(shape, dtype="float64")
        bias[units : 2 * units] = self.value
        return keras.ops.convert_to_tensor(bias, dtype=dtype)

    def get_config(self):
        return {"value": self.value}


def constant_kernels(model):
    """The trainable weights of `model` with two or more axes (kernels) that
    hold one value each (all 0.0, or all equal): `[(variable, value)]`.
    Every unit of such a layer computes the same thing, so no two can learn
    differently; all 0.0 behind a relu passes no gradient at all."""
    # A layer's own bias (a GRU's is (2, 3 * units)) starts at 0 by design:
    # read from the layers' `bias` attributes, not from a variable's name.
    biases = {id(getattr(layer, "bias", None)) for layer in model._flatten_layers()}
    found = []
    for variable in model.trainable_weights:
        if len(variable.shape) < 2 or int(np.prod(variable.shape)) < 2:
            continue
        if id(variable) in biases:
            continue
        values = sharding.host(variable)
        if np.all(values == values.flat[0]):
            found.append((variable, float(values.flat[0])))
    return found


def redraw(variables, seed=0):
    """Tip 6 on `variables` (kernels): `ScaledNormal(init_scale=1.0)`, that
    is `randn / sqrt(fan_in)`, seeded `seed + i` for the i-th."""
    for i, variable in enumerate(variables):
        value = ScaledNormal(init_scale=1.0, seed=int(seed) + i)(tuple(variable.shape),
                                                                 dtype=variable.dtype)
        variable.assign(value)
