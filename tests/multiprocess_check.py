"""One process of a keras.distribution run on JAX: two processes on loopback
(`jax.distributed`, one CPU device each, collectives through gloo), or one
process with two host devices for comparison: DataParallel (killed and
resumed), fit_ensemble, then ModelParallel with a kernel split over the
processes' devices (resumed from a checkpoint). Used by tests/test_sharding.py.

    python tests/multiprocess_check.py PROCESS PROCESSES PORT OUT.json CHECKPOINT_DIR EPOCHS PAUSE

PAUSE: seconds of sleep after each epoch (a run to be killed), 0 for none.
"""

import os
import sys

PROCESS, PROCESSES, PORT, OUT, CHECKPOINTS, EPOCHS, PAUSE = sys.argv[1:8]
os.environ["KERAS_BACKEND"] = "jax"
if PROCESSES == "1":
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"

import json  # noqa: E402
import time  # noqa: E402

from no_tensorflow import block  # noqa: E402

block()  # the JAX run needs no TensorFlow

import jax  # noqa: E402
from jax.experimental import multihost_utils  # noqa: E402

if PROCESSES != "1":
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=f"127.0.0.1:{PORT}",
                               num_processes=int(PROCESSES), process_id=int(PROCESS))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_recipes import fit_with_tips  # noqa: E402
from keras_recipes.datasets import load_digits  # noqa: E402


class SlowEpochs(keras.callbacks.Callback):
    """A pause after each epoch, so that a kill lands between checkpoints."""

    def on_epoch_end(self, epoch, logs=None):
        time.sleep(float(PAUSE))


keras.distribution.set_distribution(keras.distribution.DataParallel(devices=jax.devices()))
x, y = load_digits("train")
xt, yt = load_digits("test")
keras.utils.set_random_seed(0)  # the same initial weights in every process
model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(32, activation="relu"),
                          keras.layers.Dense(10)])
result = fit_with_tips(model, (x[:1004], y[:1004]), epochs=int(EPOCHS), seed=0, verbose=0,
                       checkpoint_dir=CHECKPOINTS, callbacks=[SlowEpochs()])
weights = result.model.get_weights()  # replicated: every process holds them whole
keras.distribution.set_distribution(None)
plain = keras.models.clone_model(result.model)
plain.set_weights(weights)
accuracy = float((np.asarray(plain.predict(xt, verbose=0)).argmax(-1) == yt).mean())
# fit_ensemble over the same devices: one process with two, or two with one
# each, train the same members (each process scores them alone).
from keras_recipes import fit_ensemble  # noqa: E402

two = keras.distribution.DataParallel(devices=jax.devices())
ensemble = fit_ensemble(lambda: keras.Sequential([keras.Input((64,)), keras.layers.Dense(10)]),
                        (x[:1004], y[:1004]), members=2, seed=0, strategy=two, verbose=0,
                        epochs=2)
ensemble_report = {"path": ensemble.path, "member_scores": ensemble.member_scores,
                   "prefix_scores": ensemble.prefix_scores,
                   "weight_sums": [float(sum(np.sum(w) for w in m.get_weights()))
                                   for m in ensemble.members],
                   "row": next(t.setting for t in ensemble.fit_result.tips
                               if t.name == "distribution")}
# ModelParallel with the hidden kernel split over the mesh's model axis: in
# two processes, over both (each holds half of it, and of its Adam moments);
# in one, over its two devices. The two-process run trains 1 epoch, then
# resumes from its checkpoint to 2; the one-process run trains 2 at once.
mesh = keras.distribution.DeviceMesh((1, 2), ["batch", "model"], jax.devices())
layout = keras.distribution.LayoutMap(mesh)
layout[".*hidden/kernel"] = (None, "model")
parallel = keras.distribution.ModelParallel(layout_map=layout, batch_dim_name="batch")
keras.utils.set_random_seed(0)
with parallel.scope():
    split = keras.Sequential([keras.Input((64,)), keras.layers.Dense(
        32, activation="relu", name="hidden"), keras.layers.Dense(10)])
for epochs in ((1, 2) if PROCESSES != "1" else (2,)):
    parallel_result = fit_with_tips(split, (x[:1004], y[:1004]), seed=0, strategy=parallel,
                                    verbose=0, epochs=epochs, checkpoint_dir=CHECKPOINTS + "-mp")
kernel = split.get_layer("hidden").kernel.value
gathered = np.asarray(multihost_utils.process_allgather(kernel, tiled=True)) if (
    PROCESSES != "1") else np.asarray(kernel)
model_parallel = {
    "split_across_processes": not kernel.is_fully_addressable,
    "kernel_sum": float(gathered.sum()),
    "val_loss": [float(v) for v in parallel_result.history["val_loss"]],
    "rows": {t.name: t.setting for t in parallel_result.tips
             if t.name in ("distribution", "resumed")}}
if PROCESS == "0":  # the file process 0 wrote, read back without the distribution
    keras.distribution.set_distribution(None)
    saved = keras.saving.load_model(CHECKPOINTS + "-mp/final.keras")
    inner = saved.get_layer(split.name)  # inside the file's standardizing wrapper
    model_parallel["final_kernel_sum"] = float(inner.get_layer("hidden").kernel.numpy().sum())
    model_parallel["final_optimizer_variables"] = len(saved.optimizer.variables)
json.dump({"status": result.status, "accuracy": accuracy, "model_parallel": model_parallel,
           "ensemble": ensemble_report,
           "weight_sum": float(sum(np.sum(w) for w in weights)),
           "val_loss": [float(v) for v in result.history["val_loss"]],
           "rows": {t.name: t.setting for t in result.tips
                    if t.name in ("distribution", "resumed")}}, open(OUT, "w"))
