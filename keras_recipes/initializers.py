"""Weight initializers from the advice (tips 6 and 9).

* `SmallNormal`: the "lazy" initialization, `0.02 * randn`.
* `ScaledNormal`: `init_scale / sqrt(fan_in) * randn`, untruncated.
* `ForgetGateBias`: an LSTM bias with a large forget-gate slice, for long-range
  dependencies.
"""

import math
import random as _pyrandom
import sys

import keras
import numpy as np

_PACKAGE = "keras_recipes"


def _check_seed(seed):
    if seed is not None and (
        isinstance(seed, bool) or not isinstance(seed, (int, np.integer))
    ):
        raise TypeError(
            "`seed` must be an integer or None. " f"Received: seed={seed!r}"
        )
    return None if seed is None else int(seed)


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


class _SeededNormal(keras.initializers.Initializer):
    """Shared seed handling, the way Keras' random initializers do it.

    An integer seed (or None, which draws one integer now) gives the same
    values on every call, so a model rebuilt from its config starts the same.
    The raw `seed` is what `get_config` returns.
    """

    def __init__(self, seed=None):
        self.seed = _check_seed(seed)
        self._draw_seed = (
            self.seed if self.seed is not None else _pyrandom.randint(1, 10**9)
        )

    def _normal(self, shape, stddev, dtype):
        return keras.random.normal(
            shape, mean=0.0, stddev=stddev, dtype=dtype, seed=self._draw_seed
        )

    def get_config(self):
        return {"seed": self.seed}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SmallNormal(_SeededNormal):
    """The "lazy" initialization of tip 6: `stddev * randn`, stddev 0.02.

    Untruncated normal noise with a fixed, small standard deviation. It works
    for most networks of moderate depth and width without any thought about
    fan-in; for very wide or deep networks prefer `ScaledNormal`.

    Example:

    ```python
    layer = keras.layers.Dense(64, kernel_initializer=SmallNormal(seed=0))
    ```

    Args:
        stddev: Float. Standard deviation of the normal draw. Defaults to
            `0.02`.
        seed: Integer or `None`. Seed for the draw; an integer gives the same
            values on every call. Defaults to `None`.
    """

    def __init__(self, stddev=0.02, seed=None):
        self.stddev = _check_positive("stddev", stddev)
        super().__init__(seed=seed)

    def __call__(self, shape, dtype=None):
        return self._normal(shape, self.stddev, dtype)

    def get_config(self):
        return {"stddev": self.stddev, **super().get_config()}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ScaledNormal(_SeededNormal):
    """`init_scale / sqrt(fan_in) * randn`, untruncated (tip 6).

    `fan_in` is computed as Keras does for Dense and convolution kernels:
    the receptive field size times the number of input channels. With
    `init_scale=1` each unit's pre-activation has roughly the variance of its
    inputs; the advice suggests trying 0.1 and 1.

    Example:

    ```python
    conv = keras.layers.Conv2D(
        32, 3, kernel_initializer=ScaledNormal(init_scale=1.0, seed=0)
    )
    ```

    Args:
        init_scale: Float. Multiplier of `1 / sqrt(fan_in)`. Defaults to
            `1.0`.
        seed: Integer or `None`. Seed for the draw. Defaults to `None`.
    """

    def __init__(self, init_scale=1.0, seed=None):
        self.init_scale = _check_positive("init_scale", init_scale)
        super().__init__(seed=seed)

    def __call__(self, shape, dtype=None):
        stddev = self.init_scale / math.sqrt(max(compute_fan_in(shape), 1))
        return self._normal(shape, stddev, dtype)

    def get_config(self):
        return {"init_scale": self.init_scale, **super().get_config()}


def _calling_lstm_cell():
    """The LSTMCell whose `unit_forget_bias` closure is calling us, if any.

    With `unit_forget_bias=True`, Keras' LSTMCell calls the bias initializer
    on slices of the bias and forces the forget slice to ones, so the value of
    `ForgetGateBias` would be silently replaced. The closure that does this
    holds the cell as `self`; we look one frame up (ours -> closure).
    """
    frame = sys._getframe(2)
    owner = frame.f_locals.get("self")
    if isinstance(owner, keras.layers.LSTMCell) and owner.unit_forget_bias:
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
