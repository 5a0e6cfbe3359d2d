"""Same seed, same result (issue 16): two processes running the same seeded
call end with equal histories and bitwise-equal weights, a run killed with
SIGKILL and started again ends where the uninterrupted one does, and the
user's own determinism setting is back after the call."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_recipes import fit_with_tips
from keras_recipes import determinism

HERE = os.path.dirname(os.path.abspath(__file__))


def _run(size, mode, output, checkpoint_dir=None, backend=None):
    env = dict(os.environ)
    if backend:
        env["KERAS_BACKEND"] = backend
    args = [sys.executable, os.path.join(HERE, "determinism_check.py"), size, mode, str(output)]
    if checkpoint_dir is not None:
        args.append(str(checkpoint_dir))
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=900)


def _load(output):
    with open(str(output) + ".json") as f:
        info = json.load(f)
    weights = np.load(output)
    return [weights[k] for k in sorted(weights.files, key=lambda k: int(k.split("_")[1]))], info


def _same_process_pair(tmp_path, size, backend=None):
    results = []
    for i in range(2):
        out = tmp_path / f"{size}-{i}.npz"
        run = _run(size, "run", out, backend=backend)
        assert run.returncode == 0, run.stderr[-3000:]
        results.append(_load(out))
    (wa, a), (wb, b) = results
    assert a["history"] == b["history"]  # exactly, every epoch and metric
    for x, y in zip(wa, wb):
        np.testing.assert_array_equal(x, y)
    return a


@pytest.mark.slow
def test_two_processes_same_seed_same_numbers(tmp_path):
    info = _same_process_pair(tmp_path, "small")
    if keras.backend.backend() == "tensorflow":
        assert info["determinism"] == ["TensorFlow op determinism on for this call"]
    assert info["execution"] == ["jit_compile=False"]  # a rule, not a timing


def _kill_and_resume(tmp_path, size, backend=None):
    """Two uninterrupted runs in two processes (bitwise equal), then three
    runs killed at three points and started again (equal to them)."""
    ref_weights, ref_info = None, None
    for i in range(2):
        ref_out = tmp_path / f"ref{i}.npz"
        ref = _run(size, "run", ref_out, tmp_path / f"ref{i}", backend)
        assert ref.returncode == 0, ref.stderr[-3000:]
        weights, info = _load(ref_out)
        if ref_info is not None:
            assert info["history"] == ref_info["history"]
            for a, b in zip(weights, ref_weights):
                np.testing.assert_array_equal(a, b)
        ref_weights, ref_info = weights, info
    for mode in ("kill-mid-epoch", "kill-mid-write", "kill-epoch-start"):
        folder = tmp_path / mode
        killed = _run(size, mode, tmp_path / f"{mode}.npz", folder, backend)
        assert killed.returncode == -9, killed.stderr[-3000:]
        out = tmp_path / f"{mode}-resumed.npz"
        resumed = _run(size, "run", out, folder, backend)
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        weights, info = _load(out)
        assert info["resumed"], mode
        for key, values in ref_info["history"].items():
            np.testing.assert_allclose(info["history"][key], values, rtol=1e-6, err_msg=key)
        for a, b in zip(weights, ref_weights):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    return ref_info


@pytest.mark.slow
def test_at_size_two_processes_agree_and_three_kills_resume_exactly(tmp_path):
    if keras.backend.backend() != "tensorflow":
        pytest.skip("run under TensorFlow here; the JAX run is its own test")
    info = _kill_and_resume(tmp_path, "large")
    assert info["params"] >= 500_000


@pytest.mark.slow
def test_at_size_under_jax_too(tmp_path):
    pytest.importorskip("jax")
    info = _kill_and_resume(tmp_path, "large", backend="jax")
    assert info["params"] >= 500_000


class _Seen(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.inside = determinism.is_enabled()


@pytest.mark.parametrize("deterministic,expected", [("auto", True), (False, False)])
def test_determinism_is_restored_after_the_call(deterministic, expected):
    if keras.backend.backend() != "tensorflow":
        pytest.skip("TensorFlow's switch; JAX has none to turn")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    assert determinism.is_enabled() is False
    seen = _Seen()
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    result = fit_with_tips(model, (x, y), epochs=1, seed=0, verbose=0, jit_compile=False,
                           deterministic=deterministic, callbacks=[seen])
    assert seen.inside is expected
    assert determinism.is_enabled() is False
    setting = [t.setting for t in result.tips if t.name == "determinism"][0]
    assert setting.startswith("TensorFlow op determinism on") is expected


def test_xla_and_op_determinism_exclude_each_other_visibly():
    if keras.backend.backend() != "tensorflow":
        pytest.skip("Keras turns XLA off under TensorFlow's op determinism only")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(128, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    result = fit_with_tips(model, (x, y), epochs=1, seed=0, verbose=0, jit_compile=True)
    assert result.model.jit_compile is True  # the explicit ask wins, and it says so
    row = [t for t in result.tips if t.name == "determinism"][0]
    assert row.setting == "off (XLA is on)" and "may differ" in row.reason
    with pytest.raises(ValueError, match="exclude each other.*Received: jit_compile=True, "
                                         "deterministic=True"):
        fit_with_tips(model, (x, y), epochs=1, seed=0, verbose=0, jit_compile=True,
                      deterministic=True)
