"""Run as a script by test_reliability.py: trains with a checkpoint folder,
optionally killing itself with SIGKILL at a chosen point, and writes the final
history and weights.

    python resume_check.py MODE CHECKPOINT_DIR OUTPUT.npz
    MODE: run | kill-mid-epoch | kill-mid-write | kill-epoch-start
"""

import json
import os
import signal
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_recipes import fit_with_tips  # noqa: E402
from keras_recipes.checkpoint import Checkpointer  # noqa: E402
from keras_recipes.datasets import load_digits  # noqa: E402


class KillMidEpoch(keras.callbacks.Callback):
    """Writes OUTPUT.started (the first epoch this process trains: where it
    resumed), and kills the process at the chosen point."""

    def __init__(self, mode, output):
        super().__init__()
        self.mode, self.output = mode, output

    def on_epoch_begin(self, epoch, logs=None):
        if not hasattr(self, "epoch"):
            with open(self.output + ".started", "w") as f:
                f.write(str(epoch))
        self.epoch = epoch
        if self.mode == "kill-epoch-start" and epoch == 5:  # right after a checkpoint
            os.kill(os.getpid(), signal.SIGKILL)

    def on_train_batch_end(self, batch, logs=None):
        if self.mode == "kill-mid-epoch" and self.epoch == 3 and batch == 2:
            os.kill(os.getpid(), signal.SIGKILL)


def main(mode, checkpoint_dir, output):
    """One run (mode "run", also called in the test's own process for the
    uninterrupted reference) or one run that kills its process."""
    if mode == "kill-mid-write":
        original = Checkpointer._write_files

        def write_then_die(self, folder, values, state, arrays):
            if state["epoch"] == 2:
                (folder / "arrays.npz").write_bytes(b"PK\x03\x04 half a checkpoint")
                os.kill(os.getpid(), signal.SIGKILL)
            return original(self, folder, values, state, arrays)

        Checkpointer._write_files = write_then_die

    x, y = load_digits("train")
    keras.utils.set_random_seed(0)
    # Dropout: its random-number generator's state must resume too.
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(32, activation="relu"),
                              keras.layers.Dropout(0.2, seed=1), keras.layers.Dense(10)])
    result = fit_with_tips(model, (x[:600], y[:600]), epochs=8, patience=1, learning_rate=0.5,
                           stop_ratio=None, seed=0, jit_compile=False, verbose=0,
                           checkpoint_dir=checkpoint_dir, callbacks=[KillMidEpoch(mode, output)])
    np.savez(output, *result.model.get_weights())
    with open(output + ".json", "w") as f:
        json.dump({"history": result.history,
                   "resumed": [t.setting for t in result.tips if t.name == "resumed"]}, f)


if __name__ == "__main__":
    main(*sys.argv[1:4])
