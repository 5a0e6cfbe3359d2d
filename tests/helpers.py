"""Shared helpers for the component tests: one table-driven place for the
round trips every public component goes through (STYLE.md, Tests 1-3)."""

import pathlib
import re

import keras
import numpy as np

# The README's code blocks and the markers before them (tests/test_readme.py).
README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"(<!-- (not run by the tests|slow in the tests|run by (tests/\w+\.py)): "
                   r"([^>]+?) -->\n)?```(\w+)\n(.*?)```", re.S)


def readme_block(test_file):
    """The code of the README block marked `<!-- run by tests/TEST_FILE: ... -->`."""
    found = [m.group(6) for m in BLOCK.finditer(README.read_text()) if m.group(3) == test_file]
    assert len(found) == 1, f"one README block is marked run by {test_file}; found {len(found)}"
    return found[0]


def config_round_trip(obj):
    """get_config -> from_config -> get_config must be equal."""
    config = obj.get_config()
    clone = type(obj).from_config(config)
    assert clone.get_config() == config
    return clone


def serialized_round_trip(obj):
    """Through Keras' own serialization, as a `.keras` file stores it."""
    data = keras.saving.serialize_keras_object(obj)
    clone = keras.saving.deserialize_keras_object(data)
    assert type(clone) is type(obj)
    assert clone.get_config() == obj.get_config()
    return clone


def tiny_classifier(n_features=8, n_classes=3, kernel_initializer="glorot_uniform",
                    seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((n_features,)),
            keras.layers.Dense(16, activation="relu",
                               kernel_initializer=kernel_initializer),
            keras.layers.Dense(n_classes),
        ]
    )


def tiny_data(n=256, n_features=8, n_classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, n_features)).astype("float32")
    y = (np.abs(x[:, 0] * 2).astype("int64") % n_classes).astype("int32")
    return x, y


def save_load_same_outputs(model, x, path):
    """Save as .keras, reload with no custom_objects and safe mode on;
    predictions must be identical. Returns the reloaded model."""
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=0, atol=1e-6
    )
    return loaded


def fit_keeps_xla(model, x, y, **fit_kwargs):
    """Fit with jit_compile=True; Keras silently turns XLA off for a model with
    an unsupported layer, so assert it is still on afterwards."""
    history = model.fit(x, y, verbose=0, **fit_kwargs)
    assert model.jit_compile is True
    return history
