"""Issue 36, item 4: tip 9 as a decision. An LSTM left at Keras' default
forget-gate bias (1, read from its weights) that reads sequences of at least
`FORGET_BIAS_STEPS` steps gets `FORGET_BIAS` before training; shorter
sequences keep 1; the user's own bias is kept; `forget_bias=` overrides.
Decisions through `plan(...)` alone (the embedded digits as sequences)."""

import keras
import numpy as np
import pytest

from keras_recipes import plan
from keras_recipes.datasets import load_digits
from keras_recipes.forget_gate import lstm_layers
from keras_recipes.initializers import ForgetGateBias
from keras_recipes.forget_gate import FORGET_BIAS
from keras_recipes.forget_gate import FORGET_BIAS_STEPS


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits("train")
    return x[:400], y[:400]


def model(steps, recurrent=None):
    keras.utils.set_random_seed(0)
    recurrent = recurrent or keras.layers.LSTM(8, name="lstm")
    return keras.Sequential([keras.Input((steps, 64 // steps)), recurrent, keras.layers.Dense(10)])


def forget_slices(m):
    out = []
    for layer, _ in lstm_layers(m):
        bias = keras.ops.convert_to_numpy(layer.cell.bias)
        units = len(bias) // 4
        out.append(np.unique(bias[units:2 * units]).tolist())
    return out


def rows(p):
    return [t for t in p.tips if t.name == "forget-gate bias"]


@pytest.mark.parametrize("steps,expected", [(64, FORGET_BIAS), (8, 1.0)])
def test_long_sequences_get_the_larger_bias_short_ones_keep_kerass(digits, steps, expected):
    x, y = digits
    m = model(steps)
    p = plan(m, (x.reshape(-1, steps, 64 // steps), y), seed=0, verbose=0)
    [row] = rows(p)
    assert forget_slices(m) == [[expected]]
    assert f"sequences of {steps} steps" in row.reason and row.override == "forget_bias="
    assert row.setting.startswith(f"{FORGET_BIAS:g}" if expected != 1.0 else "Keras' 1, kept")


def test_the_threshold_is_where_the_rows_change(digits):
    x, y = digits
    below = FORGET_BIAS_STEPS // 2
    m = model(below)
    plan(m, (x.reshape(-1, below, 64 // below), y), seed=0, verbose=0)
    assert forget_slices(m) == [[1.0]]


@pytest.mark.parametrize("build,kwargs,expected,setting", [
    (lambda: model(8), {"forget_bias": 2.0}, [[2.0]], "2 on"),
    (lambda: model(64), {"forget_bias": None}, [[1.0]], "kept on"),
    (lambda: model(64, keras.layers.LSTM(8, name="lstm", unit_forget_bias=False,
                                         bias_initializer=ForgetGateBias(5.0))), {}, [[5.0]],
     "yours, kept"),
    (lambda: model(64, keras.layers.Bidirectional(keras.layers.LSTM(8))), {},
     [[FORGET_BIAS], [FORGET_BIAS]], f"{FORGET_BIAS:g}"),
])
def test_overrides_and_the_users_own_bias(digits, build, kwargs, expected, setting):
    x, y = digits
    m = build()
    steps = m.inputs[0].shape[1]
    p = plan(m, (x.reshape(-1, steps, 64 // steps), y), seed=0, verbose=0, **kwargs)
    assert forget_slices(m) == expected
    assert all(r.setting.startswith(setting) for r in rows(p))


def test_bad_forget_bias_is_refused():
    with pytest.raises(ValueError, match="Received: forget_bias='big'"):
        plan(model(8), "digits", forget_bias="big")
