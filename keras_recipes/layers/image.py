"""Image augmentation for tip 10: random shift and rotation in one resampling
pass, written in `keras.ops` so it compiles with XLA (Keras' RandomRotation
and RandomTranslation turn XLA off for the whole model on TensorFlow)."""

import math

import keras
import numpy as np
from keras import ops

_PACKAGE = "keras_recipes"
FILL_MODES = ("reflect", "wrap", "nearest", "constant")
INTERPOLATIONS = ("bilinear", "nearest")


def _fill_index(index, size, fill_mode):
    """Maps integer pixel indices outside [0, size) as `fill_mode` says.

    Returns the mapped index (clipped into range) and, for "constant", a mask
    of the indices that were inside.
    """
    inside = ops.logical_and(index >= 0, index <= size - 1)
    if fill_mode == "reflect":  # d c b a | a b c d | d c b a
        period = 2 * size
        index = ops.mod(index, period)
        index = ops.where(index >= size, period - 1 - index, index)
    elif fill_mode == "wrap":  # a b c d | a b c d | a b c d
        index = ops.mod(index, size)
    else:  # nearest (a a a a | a b c d | d d d d); constant masks below
        index = ops.clip(index, 0, size - 1)
    return index, inside


def shift_rotate(images, shifts, angles, fill_mode="reflect", interpolation="bilinear",
                 fill_value=0.0, data_format=None):
    """Shifts and rotates each image of a batch with one affine resampling.

    Output pixel `p` takes the input at `c + R(-angle) (p - c - shift)`,
    where `c` is the image centre: the content is rotated counter-clockwise
    by `angle` (radians, as displayed with rows going down) about the centre,
    then moved by `shift`.

    Args:
        images: `(batch, height, width, channels)` (or channels first).
        shifts: `(batch, 2)` float, `(dx, dy)` in pixels; positive moves the
            content right and down.
        angles: `(batch,)` float, radians, counter-clockwise.
        fill_mode: One of "reflect", "wrap", "nearest", "constant".
        interpolation: "bilinear" or "nearest".
        fill_value: Float, used with "constant".
        data_format: "channels_last" or "channels_first"; defaults to
            `keras.config.image_data_format()`.

    Returns:
        The transformed batch, same shape and dtype.
    """
    data_format = data_format or keras.config.image_data_format()
    if data_format == "channels_first":
        images = ops.transpose(images, (0, 2, 3, 1))
    dtype = images.dtype
    batch, height, width, channels = ops.shape(images)
    x = ops.cast(images, "float32")
    cy, cx = (height - 1) / 2.0, (width - 1) / 2.0
    ys, xs = ops.meshgrid(ops.arange(height, dtype="float32"), ops.arange(width, dtype="float32"),
                          indexing="ij")
    # Output coordinates relative to the centre and minus the shift; y is
    # flipped so that the angle turns counter-clockwise on screen.
    u = xs[None] - cx - shifts[:, 0, None, None]
    v = -(ys[None] - cy - shifts[:, 1, None, None])
    cos = ops.cos(angles)[:, None, None]
    sin = ops.sin(angles)[:, None, None]
    src_x = cos * u + sin * v + cx
    src_y = -(-sin * u + cos * v) + cy
    # Snap coordinates within float error of a pixel centre (whole-pixel
    # shifts, right angles) so that those maps are exact.
    src_x = ops.where(ops.abs(src_x - ops.round(src_x)) < 1e-4, ops.round(src_x), src_x)
    src_y = ops.where(ops.abs(src_y - ops.round(src_y)) < 1e-4, ops.round(src_y), src_y)

    flat = ops.reshape(x, (-1, channels))
    base = (ops.arange(batch, dtype="int32") * (height * width))[:, None, None]

    def gather(iy, ix):
        iy, in_y = _fill_index(iy, height, fill_mode)
        ix, in_x = _fill_index(ix, width, fill_mode)
        values = ops.take(flat, ops.reshape(base + iy * width + ix, (-1,)), axis=0)
        values = ops.reshape(values, (batch, height, width, channels))
        if fill_mode == "constant":
            inside = ops.logical_and(in_y, in_x)[..., None]
            values = ops.where(inside, values, ops.cast(fill_value, "float32"))
        return values

    if interpolation == "nearest":
        iy = ops.cast(ops.floor(src_y + 0.5), "int32")
        ix = ops.cast(ops.floor(src_x + 0.5), "int32")
        out = gather(iy, ix)
    else:
        y0f, x0f = ops.floor(src_y), ops.floor(src_x)
        wy, wx = (src_y - y0f)[..., None], (src_x - x0f)[..., None]
        y0, x0 = ops.cast(y0f, "int32"), ops.cast(x0f, "int32")
        out = ((1 - wy) * ((1 - wx) * gather(y0, x0) + wx * gather(y0, x0 + 1))
               + wy * ((1 - wx) * gather(y0 + 1, x0) + wx * gather(y0 + 1, x0 + 1)))
    if "int" in str(dtype):
        out = ops.round(out)
    out = ops.cast(out, dtype)
    if data_format == "channels_first":
        out = ops.transpose(out, (0, 3, 1, 2))
    return out


def _check_range(name, value, low, high):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"`{name}` must be a number. Received: {name}={value!r}")
    if not (math.isfinite(value) and low <= value <= high):
        raise ValueError(f"`{name}` must be in [{low}, {high}]. Received: {name}={value!r}")
    return float(value)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class RandomShiftRotate(keras.layers.Layer):
    """Random shift and rotation per example, in one resampling pass (tip 10).

    Each image gets its own shift, drawn uniformly in
    `[-max_shift, max_shift]` times its width (x) and height (y), and its own
    rotation in `[-max_degrees, max_degrees]`; the two are composed into one
    affine map and the image is resampled once (not interpolated twice).
    Identity when `training=False` (inference). Written in `keras.ops`: a
    model containing it keeps `jit_compile=True` on TensorFlow and runs on
    JAX. It also works on single images inside a `tf.data` map (TensorFlow
    backend).

    Example:

    ```python
    model = keras.Sequential([
        keras.Input((28, 28, 1)),
        RandomShiftRotate(max_shift=0.1, max_degrees=10, seed=0),
        keras.layers.Conv2D(32, 3, activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(10),
    ])
    ```

    Args:
        max_shift: Float in [0, 1). Largest shift as a fraction of the image
            size. Defaults to `0.1`.
        max_degrees: Float in [0, 180]. Largest rotation in degrees.
            Defaults to `10.0`.
        fill_mode: One of "reflect", "wrap", "nearest", "constant".
            Defaults to `"reflect"`.
        interpolation: "bilinear" or "nearest". Defaults to `"bilinear"`.
        fill_value: Float, the value outside the image with "constant".
            Defaults to `0.0`.
        seed: Integer or `None`. Defaults to `None`.
        data_format: "channels_last", "channels_first" or `None`
            (`keras.config.image_data_format()`).
    """

    def __init__(self, max_shift=0.1, max_degrees=10.0, fill_mode="reflect",
                 interpolation="bilinear", fill_value=0.0, seed=None, data_format=None,
                 **kwargs):
        super().__init__(**kwargs)
        self.max_shift = _check_range("max_shift", max_shift, 0.0, 0.999)
        self.max_degrees = _check_range("max_degrees", max_degrees, 0.0, 180.0)
        if fill_mode not in FILL_MODES:
            raise ValueError(f"`fill_mode` must be one of {FILL_MODES}. Received: fill_mode={fill_mode!r}")
        if interpolation not in INTERPOLATIONS:
            raise ValueError(f"`interpolation` must be one of {INTERPOLATIONS}. "
                             f"Received: interpolation={interpolation!r}")
        if data_format not in (None, "channels_last", "channels_first"):
            raise ValueError("`data_format` must be 'channels_last', 'channels_first' or None. "
                             f"Received: data_format={data_format!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
            raise TypeError(f"`seed` must be an integer or None. Received: seed={seed!r}")
        self.fill_mode = fill_mode
        self.interpolation = interpolation
        self.fill_value = float(fill_value)
        self.seed = seed
        self.data_format = data_format or keras.config.image_data_format()
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = False

    def _check_rank(self, shape):
        if len(shape) not in (3, 4):
            raise ValueError(
                "RandomShiftRotate takes images (height, width, channels) or batches "
                "(batch, height, width, channels) (or channels first). "
                f"Received: input of rank {len(shape)}, shape {tuple(shape)}"
            )

    def build(self, input_shape):
        self._check_rank(input_shape)

    def call(self, inputs, training=None):
        self._check_rank(inputs.shape)
        if not training or (self.max_shift == 0 and self.max_degrees == 0):
            return inputs
        single = len(inputs.shape) == 3
        images = inputs[None] if single else inputs
        shape = ops.shape(images)
        batch = shape[0]
        if self.data_format == "channels_first":
            height, width = shape[2], shape[3]
        else:
            height, width = shape[1], shape[2]
        size = ops.cast(ops.stack([width, height]), "float32")
        shifts = keras.random.uniform((batch, 2), -self.max_shift, self.max_shift,
                                      seed=self.seed_generator) * size
        limit = math.radians(self.max_degrees)
        angles = keras.random.uniform((batch,), -limit, limit, seed=self.seed_generator)
        out = shift_rotate(images, shifts, angles, self.fill_mode, self.interpolation,
                           self.fill_value, self.data_format)
        return out[0] if single else out

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "max_shift": self.max_shift,
            "max_degrees": self.max_degrees,
            "fill_mode": self.fill_mode,
            "interpolation": self.interpolation,
            "fill_value": self.fill_value,
            "seed": self.seed,
            "data_format": self.data_format,
        }
