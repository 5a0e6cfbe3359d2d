import math

import keras
import numpy as np
import pytest

from helpers import config_round_trip, fit_keeps_xla, save_load_same_outputs
from keras_recipes.layers import RandomShiftRotate
from keras_recipes.layers.image import shift_rotate


def _np(x):
    return keras.ops.convert_to_numpy(x)


def grid(n=5, batch=1, channels=1):
    g = np.arange(n * n, dtype="float32").reshape(1, n, n, 1)
    return np.tile(g, (batch, 1, 1, channels))


def test_90_degree_rotation_matches_hand_computed():
    g = grid()
    out = _np(shift_rotate(g, np.zeros((1, 2), "float32"), np.array([math.pi / 2], "float32")))
    # Counter-clockwise on screen, as numpy's rot90.
    np.testing.assert_allclose(out[0, :, :, 0], np.rot90(g[0, :, :, 0]), atol=1e-5)


def test_whole_pixel_shift_matches_hand_computed():
    g = grid()
    out = _np(shift_rotate(g, np.array([[1.0, 2.0]], "float32"), np.zeros(1, "float32"),
                           fill_mode="constant", fill_value=-1.0))
    expected = np.full((5, 5), -1.0, "float32")
    expected[2:, 1:] = g[0, :3, :4, 0]  # content moves right by 1 and down by 2
    np.testing.assert_array_equal(out[0, :, :, 0], expected)


@pytest.mark.parametrize("mode,expected_row", [
    ("reflect", [1, 0, 0, 1, 2]),   # d c b a | a b c d: index -2 -> 1, -1 -> 0
    ("wrap", [3, 4, 0, 1, 2]),      # a b c d | a b c d
    ("nearest", [0, 0, 0, 1, 2]),   # a a a a | a b c d
    ("constant", [0, 0, 0, 1, 2]),  # fill_value 0 (and the grid starts at 0)
])
def test_fill_modes_on_a_two_pixel_shift(mode, expected_row):
    g = grid() + 1.0  # so that the constant fill (0) differs from the content
    out = _np(shift_rotate(g, np.array([[2.0, 0.0]], "float32"), np.zeros(1, "float32"), fill_mode=mode))
    expected = np.array(expected_row, "float32") + 1.0
    if mode == "constant":
        expected[:2] = 0.0
    np.testing.assert_array_equal(out[0, 0, :, 0], expected)


def test_half_pixel_shift_is_bilinear_average():
    g = grid()
    out = _np(shift_rotate(g, np.array([[0.5, 0.0]], "float32"), np.zeros(1, "float32"), fill_mode="nearest"))
    np.testing.assert_allclose(out[0, 0, 1:, 0], (g[0, 0, 1:, 0] + g[0, 0, :-1, 0]) / 2)


def test_channels_first_equals_channels_last():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 6, 7, 2)).astype("float32")
    shifts = rng.uniform(-1, 1, (3, 2)).astype("float32")
    angles = rng.uniform(-0.5, 0.5, 3).astype("float32")
    last = _np(shift_rotate(x, shifts, angles, data_format="channels_last"))
    first = _np(shift_rotate(x.transpose(0, 3, 1, 2), shifts, angles, data_format="channels_first"))
    np.testing.assert_allclose(first.transpose(0, 2, 3, 1), last, atol=1e-5)


def test_identity_at_inference_and_random_in_training():
    x = np.random.default_rng(0).normal(size=(4, 12, 12, 1)).astype("float32")
    layer = RandomShiftRotate(max_shift=0.2, max_degrees=30, seed=1)
    np.testing.assert_array_equal(_np(layer(x, training=False)), x)
    out = _np(layer(x, training=True))
    assert out.shape == x.shape and not np.allclose(out, x)
    # Per-example parameters: two identical images get different transforms.
    same = np.repeat(x[:1], 2, axis=0)
    pair = _np(layer(same, training=True))
    assert not np.allclose(pair[0], pair[1])


def test_same_seed_same_result():
    x = np.random.default_rng(1).normal(size=(4, 10, 10, 3)).astype("float32")
    a = _np(RandomShiftRotate(seed=7)(x, training=True))
    b = _np(RandomShiftRotate(seed=7)(x, training=True))
    np.testing.assert_array_equal(a, b)


def test_inside_a_model_keeps_xla_and_saves(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((12, 12, 1)), RandomShiftRotate(seed=0),
                              keras.layers.Conv2D(4, 3), keras.layers.Flatten(), keras.layers.Dense(2)])
    model.compile("sgd", "mse", jit_compile=True)
    x = np.random.default_rng(0).normal(size=(16, 12, 12, 1)).astype("float32")
    fit_keeps_xla(model, x, np.zeros((16, 2), "float32"), epochs=1)
    save_load_same_outputs(model, x, tmp_path / "aug.keras")


def test_works_in_a_tf_data_map():
    if keras.backend.backend() != "tensorflow":
        pytest.skip("tf.data maps run TensorFlow ops: TensorFlow backend only")
    import tensorflow as tf

    layer = RandomShiftRotate(seed=0)
    x = np.random.default_rng(0).normal(size=(6, 9, 9, 1)).astype("float32")
    single = tf.data.Dataset.from_tensor_slices(x).map(lambda im: layer(im, training=True))
    batched = tf.data.Dataset.from_tensor_slices(x).batch(3).map(lambda im: layer(im, training=True))
    assert next(iter(single)).shape == (9, 9, 1)
    assert next(iter(batched)).shape == (3, 9, 9, 1)


def test_uint8_images_keep_dtype():
    x = (np.random.default_rng(0).uniform(0, 255, size=(2, 8, 8, 1))).astype("uint8")
    out = _np(RandomShiftRotate(seed=0)(x, training=True))
    assert out.dtype == np.uint8


def test_config_round_trip():
    config_round_trip(RandomShiftRotate(max_shift=0.2, max_degrees=15, fill_mode="wrap",
                                        interpolation="nearest", seed=3, data_format="channels_first"))


@pytest.mark.parametrize("make,error,match", [
    (lambda: RandomShiftRotate(max_shift=1.5), ValueError, "Received: max_shift=1.5"),
    (lambda: RandomShiftRotate(max_shift=-0.1), ValueError, "Received: max_shift=-0.1"),
    (lambda: RandomShiftRotate(max_degrees=270), ValueError, "Received: max_degrees=270"),
    (lambda: RandomShiftRotate(fill_mode="mirror"), ValueError, "Received: fill_mode='mirror'"),
    (lambda: RandomShiftRotate(interpolation="cubic"), ValueError, "Received: interpolation='cubic'"),
    (lambda: RandomShiftRotate(data_format="nhwc"), ValueError, "Received: data_format='nhwc'"),
    (lambda: RandomShiftRotate(seed="x"), TypeError, "Received: seed='x'"),
    (lambda: RandomShiftRotate()(np.zeros((4, 4), "float32"), training=True), ValueError, "Received: input of rank 2"),
    (lambda: RandomShiftRotate()(np.zeros((1, 2, 4, 4, 1), "float32"), training=True), ValueError, "Received: input of rank 5"),
])
def test_bad_input_rejected(make, error, match):
    with pytest.raises(error, match=match):
        make()
