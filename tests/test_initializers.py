import keras
import numpy as np
import pytest

from helpers import (config_round_trip, fit_keeps_xla, save_load_same_outputs,
                     serialized_round_trip, tiny_classifier, tiny_data)
from keras_recipes.initializers import (ForgetGateBias, ScaledNormal,
                                        SmallNormal, compute_fan_in)

COMPONENTS = [
    ("small_normal", lambda: SmallNormal(stddev=0.03, seed=3)),
    ("scaled_normal", lambda: ScaledNormal(init_scale=0.1, seed=4)),
    ("forget_gate_bias", lambda: ForgetGateBias(value=2.5)),
]


@pytest.mark.parametrize("name,make", COMPONENTS, ids=[c[0] for c in COMPONENTS])
def test_config_round_trip(name, make):
    config_round_trip(make())
    serialized_round_trip(make())


@pytest.mark.parametrize("name,make", COMPONENTS[:2], ids=[c[0] for c in COMPONENTS[:2]])
def test_keras_file_and_xla(name, make, tmp_path):
    model = tiny_classifier(kernel_initializer=make())
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  jit_compile=True)
    x, y = tiny_data()
    fit_keeps_xla(model, x, y, epochs=1)
    loaded = save_load_same_outputs(model, x, tmp_path / "m.keras")
    init = loaded.layers[0].kernel_initializer
    assert init.get_config() == make().get_config()


def test_lstm_with_forget_gate_bias_keeps_xla_and_saves(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((5, 3)),
        keras.layers.LSTM(4, unit_forget_bias=False, bias_initializer=ForgetGateBias(2.0)),
        keras.layers.Dense(1),
    ])
    model.compile("sgd", "mse", jit_compile=True)
    x = np.random.default_rng(0).normal(size=(32, 5, 3)).astype("float32")
    fit_keeps_xla(model, x, x[:, 0, :1], epochs=1)
    loaded = save_load_same_outputs(model, x, tmp_path / "lstm.keras")
    assert loaded.layers[0].cell.bias_initializer.value == 2.0


@pytest.mark.parametrize(
    "shape,expected",
    [((300, 200), 300), ((3, 3, 64, 128), 576), ((5, 16, 8), 80), ((7,), 7), ((), 1)],
)
def test_fan_in_matches_keras_definition(shape, expected):
    assert compute_fan_in(shape) == expected


def test_small_normal_sample_std_within_3_percent():
    w = keras.ops.convert_to_numpy(SmallNormal(seed=1)((1000, 1000)))
    assert abs(w.std() / 0.02 - 1) < 0.03
    assert abs(w.mean()) < 0.02 * 0.01


@pytest.mark.parametrize("init_scale", [0.1, 1.0])
@pytest.mark.parametrize("shape", [(1024, 512), (3, 3, 128, 256)])
def test_scaled_normal_sample_std_within_3_percent(init_scale, shape):
    w = keras.ops.convert_to_numpy(ScaledNormal(init_scale, seed=2)(shape))
    expected = init_scale / np.sqrt(compute_fan_in(shape))
    assert abs(w.std() / expected - 1) < 0.03
    # Untruncated: a normal sample of this size has values beyond 2 sigma.
    assert np.abs(w).max() > 3 * expected


def test_same_seed_same_values_other_seed_other_values():
    a = keras.ops.convert_to_numpy(SmallNormal(seed=5)((64, 64)))
    b = keras.ops.convert_to_numpy(SmallNormal(seed=5)((64, 64)))
    c = keras.ops.convert_to_numpy(SmallNormal(seed=6)((64, 64)))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_forget_gate_bias_sets_only_forget_slice():
    bias = keras.ops.convert_to_numpy(ForgetGateBias(4.0)((4 * 5,)))
    np.testing.assert_array_equal(bias[5:10], 4.0)
    np.testing.assert_array_equal(np.delete(bias, range(5, 10)), 0.0)


def test_forget_gate_bias_in_lstm_with_unit_forget_bias_false():
    layer = keras.layers.LSTM(6, unit_forget_bias=False,
                              bias_initializer=ForgetGateBias(3.0))
    layer.build((None, 4, 2))
    bias = keras.ops.convert_to_numpy(layer.cell.bias)
    expected = np.zeros(24)
    expected[6:12] = 3.0
    np.testing.assert_array_equal(bias, expected)


def test_forget_gate_bias_rejects_unit_forget_bias_true():
    layer = keras.layers.LSTM(8, bias_initializer=ForgetGateBias(3.0))
    with pytest.raises(ValueError, match="unit_forget_bias=False.*Received: unit_forget_bias=True"):
        layer.build((None, 4, 2))


@pytest.mark.parametrize("shape", [(6,), (4, 4), (0,)])
def test_forget_gate_bias_rejects_wrong_shape(shape):
    with pytest.raises(ValueError, match=r"4 \* units.*Received: shape="):
        ForgetGateBias(1.0)(shape)


@pytest.mark.parametrize(
    "make,error,match",
    [
        (lambda: SmallNormal(stddev=0.0), ValueError, "Received: stddev=0.0"),
        (lambda: SmallNormal(stddev=-1), ValueError, "Received: stddev=-1"),
        (lambda: SmallNormal(stddev="big"), TypeError, "Received: stddev='big'"),
        (lambda: ScaledNormal(init_scale=float("nan")), ValueError, "Received: init_scale=nan"),
        (lambda: ScaledNormal(seed=1.5), TypeError, "Received: seed=1.5"),
        (lambda: ForgetGateBias(value=float("inf")), ValueError, "Received: value=inf"),
        (lambda: ForgetGateBias(value="1"), TypeError, "Received: value='1'"),
    ],
)
def test_bad_arguments_rejected(make, error, match):
    with pytest.raises(error, match=match):
        make()


# -- Keras' own contracts (issue 15): every seed form, Keras' fans -------------


def test_seed_generator_seed_gives_new_values_per_call_and_saves():
    init = SmallNormal(seed=keras.random.SeedGenerator(3))
    a, b = (keras.ops.convert_to_numpy(init((32, 32))) for _ in range(2))
    assert not np.allclose(a, b)
    config = ScaledNormal(seed=keras.random.SeedGenerator(3)).get_config()
    assert config["seed"]["class_name"] == "SeedGenerator"
    again = ScaledNormal.from_config(config)
    assert isinstance(again.seed, keras.random.SeedGenerator)


@pytest.mark.parametrize("init_scale", [0.1, 1.0])
def test_scaled_normal_is_keras_variance_scaling(init_scale):
    ours = keras.ops.convert_to_numpy(ScaledNormal(init_scale, seed=9)((300, 200)))
    theirs = keras.ops.convert_to_numpy(keras.initializers.VarianceScaling(
        init_scale**2, "fan_in", "untruncated_normal", seed=9)((300, 200)))
    np.testing.assert_array_equal(ours, theirs)


def test_scaled_normal_uses_the_input_axes_of_einsum_and_attention_kernels():
    dense = keras.layers.EinsumDense("ab,bcd->acd", output_shape=(16, 32),
                                     kernel_initializer=ScaledNormal(1.0, seed=0))
    dense.build((None, 64))
    std = keras.ops.convert_to_numpy(dense.kernel).std()
    assert abs(std * np.sqrt(64) - 1) < 0.03  # fan-in 64 (the contracted axis), not 64 * 16
    mha = keras.layers.MultiHeadAttention(num_heads=4, key_dim=16,
                                          kernel_initializer=ScaledNormal(1.0, seed=0))
    x = np.zeros((1, 3, 64), "float32")
    mha(x, x)
    out = [w for w in mha.weights if w.path.endswith("attention_output/kernel")][0]
    assert tuple(out.shape) == (4, 16, 64)
    assert abs(keras.ops.convert_to_numpy(out).std() * np.sqrt(4 * 16) - 1) < 0.05


def test_forget_gate_bias_rejects_unit_forget_bias_on_conv_lstm():
    layer = keras.layers.ConvLSTM2D(4, 3, bias_initializer=ForgetGateBias(3.0))
    with pytest.raises(ValueError, match="unit_forget_bias=False.*Received: unit_forget_bias=True"):
        layer.build((None, 3, 8, 8, 2))
