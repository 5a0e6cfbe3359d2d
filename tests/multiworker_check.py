"""One worker of a MultiWorkerMirroredStrategy run (TF_CONFIG set by the
caller, tests/test_distribute.py): fit_with_tips on the embedded digits with
checkpoints, then one JSON file of what this worker ended with.

Usage: multiworker_check.py CHECKPOINT_DIR OUT_JSON EPOCHS SECONDS_PER_EPOCH
(the pause at each epoch end gives the caller time to kill a worker
between checkpoints; it changes no number).
"""

import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import tensorflow as tf  # noqa: E402

import keras  # noqa: E402

from keras_recipes import fit_with_tips  # noqa: E402
from keras_recipes.datasets import load_digits  # noqa: E402

checkpoint_dir, out_path, epochs, pause = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
strategy = tf.distribute.MultiWorkerMirroredStrategy()


class Pause(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        time.sleep(pause)


x, y = load_digits("train")
keras.utils.set_random_seed(0)
with strategy.scope():
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(32, activation="relu"),
                              keras.layers.Dropout(0.1), keras.layers.Dense(10)])
result = fit_with_tips(model, (x, y), epochs=epochs, patience=1, seed=0, verbose=0,
                       strategy=strategy, checkpoint_dir=checkpoint_dir, callbacks=[Pause()])
task = strategy.cluster_resolver
with open(out_path + ".tmp", "w") as f:
    json.dump({"task": [task.task_type, task.task_id],
               "history": result.history,
               "weights": [w.tolist() for w in result.model.get_weights()],
               "tips": [[t.name, t.setting] for t in result.tips],
               "execution": {k: v for k, v in result.execution.items()
                             if isinstance(v, (bool, int, float, str))}}, f)
os.replace(out_path + ".tmp", out_path)
