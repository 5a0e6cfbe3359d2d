"""Run as a script by test_determinism.py: one seeded fit_with_tips call on an
MLP, optionally with a checkpoint folder and a SIGKILL at a chosen point;
writes the history and the weights.

    python determinism_check.py MODE OUTPUT.npz [CHECKPOINT_DIR]
    The model: 20-512-512-512-2 (537k parameters), 16k examples, dropout and
    a noise augmentation.
    MODE: run | kill-mid-epoch | kill-mid-write | kill-epoch-start

Every process writes OUTPUT.started (the first epoch it trains: where it
resumed); kill-mid-write first writes the checkpoint it was about to write
whole to OUTPUT.dying/, so the test can compare what a killed process had
computed.
"""

import json
import os
import signal
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
if os.environ.get("KERAS_BACKEND") == "jax":
    from no_tensorflow import block

    block()  # the JAX run needs no TensorFlow

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_recipes import fit_with_tips  # noqa: E402
from keras_recipes.checkpoint import Checkpointer  # noqa: E402

mode, output = sys.argv[1:3]
checkpoint_dir = sys.argv[3] if len(sys.argv) > 3 else None
EPOCHS = 3


class Kill(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        if not hasattr(self, "epoch"):
            with open(output + ".started", "w") as f:
                f.write(str(epoch))
        self.epoch = epoch
        if mode == "kill-epoch-start" and epoch == EPOCHS - 1:  # right after a checkpoint
            os.kill(os.getpid(), signal.SIGKILL)

    def on_train_batch_end(self, batch, logs=None):
        if mode == "kill-mid-epoch" and self.epoch == 1 and batch == 20:
            os.kill(os.getpid(), signal.SIGKILL)


if mode == "kill-mid-write":
    original = Checkpointer._write_files

    def write_then_die(self, folder, values, state, arrays):
        if state["epoch"] == EPOCHS - 2:
            os.makedirs(output + ".dying")
            original(self, __import__("pathlib").Path(output + ".dying"), values, state, arrays)
            (folder / "arrays.npz").write_bytes(b"PK\x03\x04 half a checkpoint")
            os.kill(os.getpid(), signal.SIGKILL)
        return original(self, folder, values, state, arrays)

    Checkpointer._write_files = write_then_die

# Two Gaussian blobs with a nonlinear boundary. Nondeterminism shows in each
# step's float sums over a batch's rows and a layer's width, split over
# threads: the widths make the check "at size"; the row count only sets the
# steps (100 an epoch at 16k rows; it was 40k, 250 steps, for the same check).
rng = np.random.default_rng(0)
n = 16_000
x = rng.normal(size=(n, 20)).astype("float32")
y = ((x[:, :5] ** 2).sum(1) > 5).astype("int32")
keras.utils.set_random_seed(0)
width = 512
model = keras.Sequential([keras.Input((20,)), keras.layers.Dense(width, activation="relu"),
                          keras.layers.Dense(width, activation="relu"),
                          keras.layers.Dropout(0.2, seed=1),
                          keras.layers.Dense(width, activation="relu"), keras.layers.Dense(2)])
result = fit_with_tips(model, (x, y), epochs=EPOCHS, seed=0, verbose=0, stop_ratio=None,
                       checkpoint_dir=checkpoint_dir, callbacks=[Kill()],
                       augment=[keras.layers.GaussianNoise(0.05, seed=2)])
np.savez(output, *result.model.get_weights())
with open(output + ".json", "w") as f:
    json.dump({"history": result.history, "params": int(model.count_params()),
               "resumed": [t.setting for t in result.tips if t.name == "resumed"],
               "determinism": [t.setting for t in result.tips if t.name == "determinism"],
               "execution": [t.setting for t in result.tips if t.name == "execution"]}, f)
