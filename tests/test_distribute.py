"""fit_with_tips and fit_ensemble under tf.distribute.

Logical devices and TF_CONFIG must be set before TensorFlow starts, so the
distributed runs happen in fresh processes (tests/distributed_fit_check.py,
tests/multiworker_check.py) and the tests assert on what they print.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

from keras_recipes import fit_with_tips
from keras_recipes import distribute

pytestmark = pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                                reason="tf.distribute is TensorFlow's")

HERE = os.path.dirname(os.path.abspath(__file__))


def _json_of(proc):
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def mirrored():
    proc = subprocess.run([sys.executable, os.path.join(HERE, "distributed_fit_check.py"), "6"],
                          capture_output=True, text=True, timeout=600)
    return _json_of(proc)


@pytest.mark.slow
def test_fit_with_tips_under_mirrored_strategy_matches_one_device(mirrored):
    single, two = mirrored["single"], mirrored["mirrored"]
    assert two["execution"]["replicas"] == 2 and single["execution"]["replicas"] == 1
    # Same global batch, same data order, mean loss over the global batch:
    # the runs agree up to the order of float sums, and so does the accuracy.
    np.testing.assert_allclose(two["history"]["loss"], single["history"]["loss"], rtol=1e-4)
    assert abs(two["test_accuracy"] - single["test_accuracy"]) <= 0.01
    assert two["test_accuracy"] > 0.9
    rows = {name: (setting, why) for name, setting, why in two["tips"]}
    assert "MirroredStrategy, 2 replicas; global batch 128 = 64 per replica" in rows["distribution"][0]
    assert "no LR rule applied" in rows["distribution"][1]
    assert rows["model"][0] == "cloned into the strategy's scope"  # built outside it
    assert rows["execution"][0] == "jit_compile=False"
    assert "keras-team/keras#19005" in rows["execution"][1]
    assert two["execution"]["jit_compile_after_fit"] is False


@pytest.mark.slow
def test_call_inside_the_scope_uses_that_strategy_without_cloning(mirrored):
    assert mirrored["inside_scope"] == {"replicas": 2, "rows": []}


@pytest.mark.slow
def test_validation_partial_batch_under_mirrored_strategy(mirrored):
    # 129 examples in batches of 32: the last batch has one example for two
    # replicas. The reported val_loss is the mean over all 129.
    part = mirrored["partial_validation"]
    assert part["n"] == 129
    np.testing.assert_allclose(part["val_loss"], part["numpy_loss"], rtol=1e-5)
    split = mirrored["split_validation"]
    assert split["n_validation"] % 32 and np.isfinite(split["val_loss"])


@pytest.mark.slow
def test_bad_input_under_a_strategy_is_refused(mirrored):
    assert "Use 126 or 128. Received: batch_size=127" in mirrored["errors"]["batch_size"]
    assert "Received: jit_compile=True" in mirrored["errors"]["jit_compile"]


@pytest.mark.slow
def test_model_built_outside_the_scope_is_cloned_or_refused(mirrored):
    clone = mirrored["clone"]
    assert clone["same_weights"] and clone["in_scope"] and not clone["original_in_scope"]
    assert "cloned into it with its weights" in clone["note"]
    error = mirrored["subclassed_error"]
    assert "Create it inside: `with strategy.scope(): model = ...`" in error
    assert "Received: model='subclassed' (Subclassed)" in error


@pytest.mark.slow
def test_fit_ensemble_under_mirrored_strategy(mirrored):
    single, two = mirrored["ensemble"]["single"], mirrored["ensemble"]["mirrored"]
    assert two["path"] == "fused" and two["members_in_scope"]
    assert abs(two["test_accuracy"] - single["test_accuracy"]) <= 0.01


def test_strategy_of_the_wrong_type_is_refused():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    with pytest.raises(TypeError, match=r"Received: strategy='mirrored'"):
        fit_with_tips(model, (np.zeros((8, 4)), np.zeros(8)), strategy="mirrored")
    with pytest.raises(TypeError, match=r"Received: strategy=2"):
        distribute.resolve(2)


def test_auto_strategy_without_several_gpus_is_one_device_and_says_so():
    import tensorflow as tf

    if len(tf.config.list_logical_devices("GPU")) > 1:
        pytest.skip("this machine has several GPUs")
    assert distribute.resolve("auto") is None
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 4)).astype("float32"), rng.integers(0, 2, 64)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    result = fit_with_tips(model, (x, y), strategy="auto", epochs=1, verbose=0, jit_compile=False)
    rows = {t.name: (t.setting, t.reason) for t in result.tips}
    assert rows["distribution"] == ("none (one device), 1 replica", "strategy='auto': fewer than two GPUs")
    assert result.execution["replicas"] == 1


# -- two workers on loopback -------------------------------------------------

EPOCHS = 6
WORKER_TIMEOUT = 240


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _start_workers(tmp_path, checkpoint_dirs, tag, pause):
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = []
    for i, directory in enumerate(checkpoint_dirs):
        env = dict(os.environ, TF_CONFIG=json.dumps({"cluster": cluster,
                                                     "task": {"type": "worker", "index": i}}))
        log = open(tmp_path / f"{tag}-worker{i}.log", "w")
        procs.append(subprocess.Popen(
            [sys.executable, os.path.join(HERE, "multiworker_check.py"), str(directory),
             str(tmp_path / f"{tag}-worker{i}.json"), str(EPOCHS), str(pause)],
            env=env, stdout=log, stderr=subprocess.STDOUT))
    return procs


def _finish(procs, tmp_path, tag):
    deadline = time.monotonic() + WORKER_TIMEOUT
    try:
        for proc in procs:
            proc.wait(timeout=max(deadline - time.monotonic(), 1))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    results = []
    for i, proc in enumerate(procs):
        log = (tmp_path / f"{tag}-worker{i}.log").read_text()
        assert proc.returncode == 0, f"worker {i} failed:\n{log[-4000:]}"
        results.append(json.loads((tmp_path / f"{tag}-worker{i}.json").read_text()))
    return results


def _max_diff(a, b):
    return max(float(np.max(np.abs(np.asarray(p) - np.asarray(q)))) for p, q in zip(a, b))


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """Two workers to the end, each told a checkpoint folder of its own, so
    what each one wrote can be told apart."""
    tmp_path = tmp_path_factory.mktemp("multiworker")
    dirs = [tmp_path / "chief-dir", tmp_path / "worker1-dir"]
    results = _finish(_start_workers(tmp_path, dirs, "full", pause=0.0), tmp_path, "full")
    return results, dirs


@pytest.mark.slow
def test_two_workers_finish_with_identical_weights(uninterrupted):
    (chief, other), _ = uninterrupted
    assert chief["task"] == ["worker", 0] and other["task"] == ["worker", 1]
    assert chief["execution"]["replicas"] == 2 and chief["execution"]["workers"] == 2
    assert _max_diff(chief["weights"], other["weights"]) == 0.0
    assert chief["history"] == other["history"]
    assert len(chief["history"]["loss"]) == EPOCHS
    assert chief["history"]["val_accuracy"][-1] > 0.85
    rows = dict((name, setting) for name, setting in chief["tips"])
    assert rows["distribution"].startswith("MultiWorkerMirroredStrategy, 2 replicas on 2 workers")


@pytest.mark.slow
def test_only_the_chief_writes_checkpoints_and_the_final_model(uninterrupted):
    _, (chief_dir, other_dir) = uninterrupted
    written = sorted(p.name for p in chief_dir.iterdir())
    assert written == [f"epoch-{EPOCHS - 1:05d}", "final.keras"]
    assert not other_dir.exists() or not any(other_dir.iterdir())


@pytest.mark.slow
def test_killed_worker_restarts_and_resumes_from_the_checkpoint(uninterrupted, tmp_path):
    """Worker 1 is SIGKILLed after the second epoch's checkpoint; the other,
    which cannot go on without it, is stopped at once (as a cluster manager
    would); both restart with the same command, resume from the chief's
    checkpoint, and end where the uninterrupted run ended."""
    shared = tmp_path / "shared"
    procs = _start_workers(tmp_path, [shared, shared], "killed", pause=1.0)
    deadline = time.monotonic() + WORKER_TIMEOUT
    try:
        while not (shared / "epoch-00001" / "state.json").exists():
            assert time.monotonic() < deadline, "no checkpoint appeared in time"
            assert all(p.poll() is None for p in procs), "a worker ended before the kill"
            time.sleep(0.05)
        procs[1].send_signal(signal.SIGKILL)
        procs[1].wait()
        procs[0].kill()
        procs[0].wait()
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    assert not (shared / "final.keras").exists()
    resumed = _finish(_start_workers(tmp_path, [shared, shared], "resumed", pause=0.0),
                      tmp_path, "resumed")
    (reference, _), _ = uninterrupted
    for result in resumed:
        rows = dict((name, setting) for name, setting in result["tips"])
        assert rows["resumed"].startswith("from the checkpoint after epoch")
        assert int(rows["resumed"].split()[-1]) >= 2
        assert len(result["history"]["loss"]) == EPOCHS
        np.testing.assert_allclose(result["history"]["val_loss"],
                                   reference["history"]["val_loss"], rtol=1e-5)
        assert _max_diff(result["weights"], reference["weights"]) < 1e-5
    assert _max_diff(resumed[0]["weights"], resumed[1]["weights"]) == 0.0
    assert (shared / "final.keras").exists()
