"""Same seed, same result (issue 16): two processes running the same seeded
call end with equal histories and bitwise-equal weights, a run killed with
SIGKILL at three points in a row and started again each time ends where the
uninterrupted one does, and the user's own determinism setting is back
after the call."""

import json
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_recipes import fit_with_tips
from keras_recipes import determinism

HERE = os.path.dirname(os.path.abspath(__file__))


def _run(mode, output, checkpoint_dir=None, backend=None):
    env = dict(os.environ)
    if backend:
        env["KERAS_BACKEND"] = backend
    args = [sys.executable, os.path.join(HERE, "determinism_check.py"), mode, str(output)]
    if checkpoint_dir is not None:
        args.append(str(checkpoint_dir))
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=900)


def _arrays(path):
    arrays = np.load(path)
    keys = sorted(arrays.files, key=lambda k: (k.rsplit("_", 1)[0], int(k.rsplit("_", 1)[1])))
    return [arrays[k] for k in keys]


def _load(output):
    with open(str(output) + ".json") as f:
        info = json.load(f)
    return _arrays(output), info


def _started(output):
    """The first epoch the process at `output` trained (where it resumed)."""
    return int(pathlib.Path(str(output) + ".started").read_text())


def _kill_and_resume(tmp_path, backend=None):
    """One uninterrupted run, then the same seeded call killed three times in
    a row, at three points, each process started again on the same
    checkpoint folder: the last one ends with the uninterrupted run's
    history and weights bitwise. Five processes that agree exactly: the
    same seed gives the same numbers in every process, and a resume loses
    nothing (a difference would not say which of the two failed).

    The chain (epochs 0-2; a checkpoint after each epoch):
    1. killed mid-epoch 1 (checkpoint 0 written);
    2. resumes at epoch 1, killed while writing checkpoint 1 (half a file left;
       what it was writing is kept aside);
    3. resumes at epoch 1 again (the half-written one ignored), writes
       checkpoint 1, killed as epoch 2 begins;
    4. resumes at epoch 2 and finishes.
    Every process's work reaches the end: 2's aside copy equals 3's
    checkpoint 1, which 4 resumes from."""
    ref_out = tmp_path / "ref.npz"
    ref = _run("run", ref_out, tmp_path / "ref", backend)
    assert ref.returncode == 0, ref.stderr[-3000:]
    ref_weights, ref_info = _load(ref_out)
    folder = tmp_path / "chain"
    for mode, resumed_at in (("kill-mid-epoch", 0), ("kill-mid-write", 1),
                             ("kill-epoch-start", 1)):
        out = tmp_path / f"{mode}.npz"
        killed = _run(mode, out, folder, backend)
        assert killed.returncode == -9, killed.stderr[-3000:]
        assert _started(out) == resumed_at, mode
        if mode == "kill-mid-write":
            assert list(folder.glob(".tmp-*")), "no half-written checkpoint was left"
            assert sorted(p.name for p in folder.glob("epoch-*")) == ["epoch-00000"]
    # What process 2 computed for checkpoint 1 is what process 3 wrote.
    for a, b in zip(_arrays(folder / "epoch-00001" / "arrays.npz"),
                    _arrays(tmp_path / "kill-mid-write.npz.dying" / "arrays.npz")):
        np.testing.assert_array_equal(a, b)
    out = tmp_path / "resumed.npz"
    resumed = _run("run", out, folder, backend)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert _started(out) == 2
    weights, info = _load(out)
    assert info["resumed"]
    assert info["history"] == ref_info["history"]  # exactly, every epoch and metric
    for a, b in zip(weights, ref_weights):
        np.testing.assert_array_equal(a, b)
    return ref_info


@pytest.mark.slow
def test_at_size_processes_agree_and_three_kills_resume_exactly(tmp_path):
    if keras.backend.backend() != "tensorflow":
        pytest.skip("run under TensorFlow here; the JAX run is its own test")
    info = _kill_and_resume(tmp_path)
    assert info["params"] >= 500_000
    assert info["determinism"] == ["TensorFlow op determinism on for this call"]
    assert info["execution"] == ["jit_compile=False"]  # a rule, not a timing


@pytest.mark.slow
def test_at_size_under_jax_too(tmp_path):
    pytest.importorskip("jax")
    info = _kill_and_resume(tmp_path, backend="jax")
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
