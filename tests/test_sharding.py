"""Issue 27: fit_with_tips, plan and fit_ensemble under keras.distribution on
JAX, with two host devices (XLA_FLAGS=--xla_force_host_platform_device_count=2),
each in its own process (tests/sharding_check.py): the device count is fixed
when JAX starts."""

import importlib.util
import json
import os
import subprocess
import sys
import time
import types

import numpy as np
import pytest

CHECK = os.path.join(os.path.dirname(__file__), "sharding_check.py")


def _run(tmp_path, *args):
    if importlib.util.find_spec("jax") is None:
        pytest.skip("keras.distribution runs on JAX: `pip install jax` (not installed here)")
    out = tmp_path / "report.json"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, CHECK, args[0], str(out), *args[1:]], env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(out.read_text())


def test_batches_are_cut_to_the_devices_and_the_row_says_how(tmp_path):
    report = _run(tmp_path, "plan")
    assert report["devices"] == 2
    # 803 training rows at batch 96: eight full batches, the last 35 cut to 34.
    assert report["train_rows"] == [96] * 8 + [34]
    assert "1 of the 803 training examples left out per epoch" in report["row"]
    # 201 validation rows: the last 9 padded to 10 with one row of weight 0;
    # the real rows' weights sum to the rows read (202), none dropped.
    assert report["val_rows"] == [96, 96, 10]
    assert report["val_zero_weights"] == 1
    assert report["val_weight_sum"] == pytest.approx(202, rel=1e-6)
    assert report["shard_cut"] == [1, 1, pytest.approx(202 / 201)]
    assert "those of the 201 validation examples" in report["row"]
    assert report["padded_validation"] is True  # the metrics count weighted rows
    assert "the model was built before the distribution: cloned under it" in report["clone_row"]
    assert report["clone_same_weights"]
    assert report["kept_in_place"]
    # Each process's own prediction of every row (fit_ensemble's scores across
    # processes; the cross-process run is the slow test below).
    assert report["predict_here_shape"] == [37, 10]
    assert report["predict_here_diff"] < 1e-5
    assert report["row"].startswith("DataParallel (keras.distribution), batch split over 2 "
                                    "devices; global batch 96 = 48 per replica")
    # strategy="auto": no accelerators here, then DataParallel over two found.
    assert "fewer than two local accelerators" in report["auto_none"]
    assert report["auto_two"].startswith("DataParallel (keras.distribution), batch split "
                                         "over 2 devices")
    # A LayoutMap key that matches no variable: trained replicated, said so.
    assert report["unmatched_layout"].startswith("no variable split: every one replicated | no "
                                                 "key of the LayoutMap matched a variable")
    assert "'net/hidden/kernel'" in report["unmatched_layout"]
    assert any("ModelParallel splits none of the model's 4 variables" in w
               for w in report["unmatched_warnings"]), report["unmatched_warnings"]
    assert report["one_device_axis_layout"].startswith(
        "the LayoutMap lays out net/hidden/kernel, over mesh axes of one device each ({'batch': "
        "2, 'model': 1}): nothing to split over"), report["one_device_axis_layout"]
    assert "Received: strategy='mirrored'" in report["bad_strategy"]
    assert "with 2 processes" in report["no_seed"] and "Received: seed=None" in report["no_seed"]


def test_each_process_feeds_the_rows_its_devices_hold_on_the_batch_axis(monkeypatch):
    """Several processes: a process feeds the rows of every batch at its
    devices' positions on the mesh's batch axis (Keras builds the global
    batch from them), half each under DataParallel over two processes, all
    when the batch axis lies within each process (ModelParallel's model axis
    across them); devices interleaved over the batch axis are refused."""
    from keras_recipes import sharding
    from keras_recipes.data.core import DeviceSplit

    def on(process):  # a device as the mesh holds it: its process is what counts
        return types.SimpleNamespace(process_index=process)

    def mesh(devices, names):
        return types.SimpleNamespace(batch_dim_name="batch", device_mesh=types.SimpleNamespace(
            devices=np.array(devices, dtype=object), axis_names=names))

    data_parallel = mesh([on(0), on(0), on(1), on(1)], ["batch"])
    model_across = mesh([[on(0), on(1)], [on(0), on(1)]], ["batch", "model"])
    interleaved = mesh([on(0), on(1), on(0), on(1)], ["batch"])
    spans = {}
    for process in (0, 1):
        monkeypatch.setattr(sharding, "process_index", lambda: process)
        spans[process] = (sharding.batch_span(data_parallel), sharding.batch_span(model_across))
        with pytest.raises(ValueError, match=rf"positions \[{process}, {process + 2}\] of 4"):
            sharding.batch_span(interleaved)
    assert spans == {0: ((0, 2), (0, 2)), 1: ((2, 4), (0, 2))}
    assert DeviceSplit(4, 2, 4, 2).share(96) == slice(48, 96)
    assert DeviceSplit(2, 0, 2, 2).share(96) == slice(0, 96)
    assert DeviceSplit().share(7) == slice(0, 7)


@pytest.mark.slow
def test_trains_where_plain_fit_stops_exactly_and_alike_on_one_and_two_devices(tmp_path):
    report = _run(tmp_path, "train", str(tmp_path / "run"))
    # Plain model.fit stops at its 33-row last batch; the recipe trains.
    assert report["plain_fit"].startswith("IndivisibleError"), report["plain_fit"]
    # The global (aggregated) gradient norm and update ratio, one device
    # against two, from the same weights and batches.
    for key in ("grad_norm", "update_ratio", "val_loss"):
        assert report[f"two_{key}"] == pytest.approx(report[f"one_{key}"], rel=1e-5), key
    # The padded validation pass reports the real rows' loss and accuracy.
    assert report["best_val_loss"] == pytest.approx(report["reference_val_loss"], rel=1e-5)
    assert report["best_val_accuracy"] == pytest.approx(report["reference_val_accuracy"],
                                                        abs=1e-6)
    # A two-output model compiled with metrics= and a dict of weighted_metrics:
    # both heads' accuracies (and losses) are the real validation rows'.
    assert report["heads_padded"]
    shown, reference = report["heads_shown"], report["heads_reference"]
    for key in ("val_a_accuracy", "val_b_accuracy", "val_a_loss", "val_b_loss", "val_loss"):
        assert shown[key] == pytest.approx(reference[key], rel=1e-5, abs=1e-6), (key, shown,
                                                                                reference)
    # A checkpoint of laid-out variables resumes, and only then trains on.
    assert report["first_status"] in ("capped", "stopped")
    assert report["resumed_rows"] == ["from the checkpoint after epoch 4"]
    assert report["final_keras"]
    assert report["resumed_accuracy"] >= 0.93
    # ModelParallel: the user's LayoutMap is kept (the kernel split over "model").
    assert report["model_parallel_spec"] == "P(None, 'model')"
    assert report["model_parallel_accuracy"] >= 0.9
    assert "batch split over 1 device of 2" in report["model_parallel_row"]
    assert report["model_parallel_layout"].startswith("1 of 4 variables split over the mesh | "
                                                      "as laid out by the LayoutMap: ")
    assert "/hidden/kernel (None, 'model')" in report["model_parallel_layout"]
    assert report["ensemble_path"] == "fused" and report["ensemble_accuracy"] >= 0.9


MULTI = os.path.join(os.path.dirname(__file__), "multiprocess_check.py")


def _free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(process, processes, port, out, checkpoints, epochs, pause=0.0):
    """One process of the run; `pause` seconds after each epoch (a run to be
    killed between checkpoints)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.Popen([sys.executable, MULTI, str(process), str(processes), str(port),
                             str(out), str(checkpoints), str(epochs), str(pause)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _finish(procs):
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-4000:]


@pytest.mark.slow
def test_two_processes_train_as_one_and_a_killed_one_is_resumed_by_restarting_both(tmp_path):
    """Issue 27 item 6: two JAX processes on loopback feed their shares of
    every batch and end with one process's two-device result; process 0 alone
    writes the files; a killed process is survived by starting both again;
    fit_ensemble across the processes trains the one-process run's members;
    ModelParallel with a kernel split over both processes trains, resumes
    from its checkpoint and is saved as the one-process run."""
    if importlib.util.find_spec("jax") is None:
        pytest.skip("keras.distribution runs on JAX: `pip install jax` (not installed here)")
    epochs = 6
    _finish([_start(0, 1, 0, tmp_path / "one.json", tmp_path / "one", epochs)])
    one = json.loads((tmp_path / "one.json").read_text())

    run = tmp_path / "two"
    port = _free_port()
    procs = [_start(i, 2, port, tmp_path / f"p{i}.json", run, epochs, pause=0.5) for i in (0, 1)]
    # Kill process 1 once the checkpoint after epoch 2 is written, then the
    # other (waiting on its peer), as a scheduler would.
    deadline = time.time() + 600
    while not (run / "epoch-00002").exists() and time.time() < deadline:
        assert procs[1].poll() is None, procs[1].communicate()[1][-4000:]
        time.sleep(0.1)
    procs[1].kill()
    procs[0].kill()
    for proc in procs:
        proc.wait(timeout=60)
    assert not (tmp_path / "p0.json").exists()  # the run did not finish
    port = _free_port()
    _finish([_start(i, 2, port, tmp_path / f"p{i}.json", run, epochs) for i in (0, 1)])
    reports = [json.loads((tmp_path / f"p{i}.json").read_text()) for i in (0, 1)]
    for i, report in enumerate(reports):
        assert report["rows"]["resumed"].startswith("from the checkpoint after epoch"), report
        assert f"2 processes (this is process {i}" in report["rows"]["distribution"]
        # The same global batches, in shares: process 0's and 1's result is
        # the one-process, two-device run's, through a kill and a resume.
        assert report["val_loss"] == pytest.approx(one["val_loss"], rel=1e-4)
        assert report["weight_sum"] == pytest.approx(one["weight_sum"], rel=1e-4)
        # ModelParallel with the hidden kernel split over both processes'
        # devices: 1 epoch, then resumed to 2 from the checkpoint (its split
        # Adam moments gathered and put back), as the one-process run's 2.
        parallel, single = report["model_parallel"], one["model_parallel"]
        assert parallel["split_across_processes"] and not single["split_across_processes"]
        assert parallel["rows"]["resumed"] == "from the checkpoint after epoch 1", parallel
        assert "every batch whole" in parallel["rows"]["distribution"], parallel
        assert parallel["val_loss"] == pytest.approx(single["val_loss"], rel=1e-4)
        assert parallel["kernel_sum"] == pytest.approx(single["kernel_sum"], rel=1e-4)
        assert single["val_loss"][-1] < 0.7 * single["val_loss"][0], single
        # fit_ensemble across the processes trains the one-process run's
        # members, and every process scores them alone, alike.
        ensemble, reference = report["ensemble"], one["ensemble"]
        assert ensemble["path"] == reference["path"] == "fused", ensemble
        assert "2 processes" in ensemble["row"] and "2 processes" not in reference["row"]
        assert ensemble["weight_sums"] == pytest.approx(reference["weight_sums"], rel=1e-4)
        assert ensemble["member_scores"] == pytest.approx(reference["member_scores"], abs=1e-6)
        assert ensemble["prefix_scores"] == pytest.approx(reference["prefix_scores"], abs=1e-6)
        # Linear members after 2 epochs: 0.71 and 0.73 measured (chance 0.1).
        assert min(ensemble["member_scores"]) >= 0.6, ensemble
    assert "which writes the files" in reports[0]["rows"]["distribution"]
    assert "which writes" not in reports[1]["rows"]["distribution"]
    assert (run / "final.keras").exists()
    # Process 0 wrote final.keras from the gathered kernel and Adam state.
    parallel = reports[0]["model_parallel"]
    assert parallel["final_kernel_sum"] == pytest.approx(parallel["kernel_sum"], rel=1e-6)
    assert parallel["final_optimizer_variables"] == one["model_parallel"][
        "final_optimizer_variables"] > 0
    assert one["accuracy"] >= 0.85 and reports[0]["accuracy"] == pytest.approx(one["accuracy"],
                                                                               abs=0.01)


def test_the_recipes_metrics_join_the_users_weighted_metrics_in_every_compile_form():
    """Padded validation compiles the recipe's metrics as weighted_metrics;
    the user's own weighted_metrics are joined to them output by output, in
    whichever of compile's forms either came (issue 27: a dict was dropped)."""
    from types import SimpleNamespace

    from keras_recipes.build import _metric_args
    from keras_recipes.build import join_metrics

    one, two = ["out"], ["a", "b"]
    assert join_metrics(["accuracy"], None, one) == ["accuracy"]
    assert join_metrics(["accuracy"], ["auc"], one) == ["accuracy", "auc"]
    assert join_metrics(["accuracy"], "auc", one) == ["accuracy", "auc"]
    assert join_metrics(["accuracy"], {"whatever_name": ["auc"]}, one) == ["accuracy", "auc"]
    assert join_metrics([["mae"], ["accuracy"]], [None, ["auc"]], two) == [["mae"],
                                                                           ["accuracy", "auc"]]
    assert join_metrics({"a": ["mae"], "b": ["accuracy"]}, {"b": "auc"}, two) == {
        "a": ["mae"], "b": ["accuracy", "auc"]}
    assert join_metrics([["mae"], ["accuracy"]], {"b": ["auc"]}, two) == {
        "a": ["mae"], "b": ["accuracy", "auc"]}
    # Not a form for two outputs: a flat list, a wrong count, an unknown name.
    assert join_metrics([["mae"], ["accuracy"]], ["auc"], two) is None
    assert join_metrics([["mae"], ["accuracy"]], [["auc"]], two) is None
    assert join_metrics({"a": ["mae"]}, {"c": ["auc"]}, two) is None

    def decided(theirs):
        return SimpleNamespace(compile_kwargs={"weighted_metrics": theirs}, metrics=[["mae"], []],
                               padded_validation=True,
                               full=SimpleNamespace(output_names=["a", "b"]))

    assert _metric_args(decided({"b": ["auc"]})) == {
        "metrics": None, "weighted_metrics": {"a": ["mae"], "b": ["auc"]}}
    with pytest.raises(ValueError, match=r"Received: weighted_metrics=\['auc'\]"):
        _metric_args(decided(["auc"]))


def test_the_saved_copy_keeps_the_weights_and_the_optimizer_state():
    """`final.keras` under a layout split across processes is saved from a
    copy holding the gathered values (`saveable_copy`): the weights, and the
    compile state with the optimizer's moments and step count; a model whose
    compile state Keras cannot rebuild (a lambda loss) is refused by name."""
    import keras

    from keras_recipes import sharding

    x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
    y = x.sum(axis=1, keepdims=True)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(1)])
    model.compile(keras.optimizers.Adam(0.01), "mse")
    model.fit(x, y, epochs=2, verbose=0)
    slots = [keras.ops.convert_to_numpy(v) for v in model.optimizer.variables]
    copy = sharding.saveable_copy(model, model.get_weights(), slots)
    assert copy is not model and copy.compiled and copy.loss == "mse"
    assert all(np.array_equal(a, b) for a, b in zip(copy.get_weights(), model.get_weights()))
    assert len(copy.optimizer.variables) == len(slots) > 2
    assert all(np.array_equal(keras.ops.convert_to_numpy(v), s)
               for v, s in zip(copy.optimizer.variables, slots))
    assert int(keras.ops.convert_to_numpy(copy.optimizer.iterations)) == 2

    model.compile(keras.optimizers.Adam(0.01), lambda t, p: keras.ops.mean(keras.ops.abs(t - p)))
    with pytest.raises(ValueError, match="could not be copied to one process to be saved"):
        sharding.saveable_copy(model, model.get_weights(), slots)
