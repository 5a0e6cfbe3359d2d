"""Issue 38 item 4: ragged inputs as model.fit takes them (TensorFlow only:
Keras feeds ragged tensors on that backend alone). Spoken digits at their
natural lengths (FSDD, ../shared/data/fsdd; log-mel frames, 11 to 137 per
clip) as one tf.RaggedTensor, into keras.Input((None, 40), ragged=True) +
a layer pooling each clip's mean and max over its own frames + Dense(64,
relu) + softmax. Before this change fit_with_tips refused ragged inputs by
name ("does not read ragged inputs yet").

The test split holds out speaker "theo" (an unseen voice, 500 clips;
training: the other 2500). Arms, seeds 0-2, test accuracy:
  plain     model.fit(rt, y, epochs=30), Adam's defaults, batch 32
  defaults  Adam + EarlyStopping(patience=5, restore_best_weights) on a
            seeded fifth of the training clips, up to 100 epochs
  recipe    fit_with_tips(model, (rt, y))

Then the XLA decision's evidence: plain model.fit, 3 epochs, batch 32, the
same model with jit_compile=False and with jit_compile=True, side by side
(seed 0): XLA compiles the step anew for every batch's shape.

    python benchmarks/bench_ragged_inputs.py
"""

import os
import sys
import time

import keras
import numpy as np
import tensorflow as tf

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
sys.path.insert(0, os.path.dirname(__file__))

from common import device_line  # noqa: E402
from keras_recipes import fit_with_tips  # noqa: E402
from test_variable_length import BANDS  # noqa: E402
from test_variable_length import spoken_frames  # noqa: E402


class MeanMaxPool(keras.layers.Layer):
    """Each clip's mean and max over its own frames (a ragged time axis)."""

    def call(self, x):
        return tf.concat([tf.reduce_mean(x, axis=1), tf.reduce_max(x, axis=1)], axis=-1)


def model(seed):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((None, BANDS), ragged=True)
    hidden = keras.layers.Dense(64, activation="relu")(MeanMaxPool()(inputs))
    return keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(hidden))


def ragged(clips):
    return tf.RaggedTensor.from_row_lengths(np.concatenate(clips), [len(c) for c in clips])


def accuracy(trained, x, labels):
    return float((np.asarray(trained.predict(x, verbose=0)).argmax(-1) == labels).mean())


def main(seeds):
    print(device_line())
    clips, labels, speakers = spoken_frames()
    test = speakers == "theo"
    order = np.random.default_rng(0).permutation(np.flatnonzero(~test))
    x, y = ragged([clips[i] for i in order]), labels[order]
    xt, yt = ragged([clips[i] for i in np.flatnonzero(test)]), labels[test]
    print(f"train {len(y)} clips, test {len(yt)} clips (speaker theo); frames per clip "
          f"{min(len(c) for c in clips)}-{max(len(c) for c in clips)}")
    print("arm       seed  test_acc  epochs  seconds  status  jit_compile")
    for seed in seeds:
        for arm in ("plain", "defaults", "recipe"):
            m = model(seed)
            start = time.perf_counter()
            status = "-"
            if arm == "plain":
                m.compile("adam", "sparse_categorical_crossentropy")
                epochs = len(m.fit(x, y, epochs=30, batch_size=32, verbose=0).history["loss"])
            elif arm == "defaults":
                held = np.random.default_rng(seed).permutation(len(y))
                val, fit_rows = np.sort(held[:len(y) // 5]), np.sort(held[len(y) // 5:])
                m.compile("adam", "sparse_categorical_crossentropy")
                stop = keras.callbacks.EarlyStopping(patience=5, restore_best_weights=True)
                epochs = len(m.fit(tf.gather(x, fit_rows), y[fit_rows], epochs=100, batch_size=32,
                                   validation_data=(tf.gather(x, val), y[val]), callbacks=[stop],
                                   verbose=0).history["loss"])
            else:
                result = fit_with_tips(m, (x, y), seed=seed, verbose=0)
                m, status, epochs = result.model, result.status, len(result.history["loss"])
            seconds = time.perf_counter() - start
            print(f"{arm:<9} {seed:>4}  {accuracy(m, xt, yt):.4f}  {epochs:>6}  {seconds:>7.1f}  "
                  f"{status:<7} {m.jit_compile}", flush=True)
    print("\nXLA on ragged batches: plain model.fit, 3 epochs, batch 32, seed 0")
    print("jit_compile  seconds")
    times = {}
    for jit in (False, True):
        m = model(0)
        m.compile("adam", "sparse_categorical_crossentropy", jit_compile=jit)
        start = time.perf_counter()
        m.fit(x, y, epochs=3, batch_size=32, verbose=0)
        times[jit] = time.perf_counter() - start
        print(f"{str(jit):<11}  {times[jit]:7.1f}", flush=True)
    print(f"XLA / plain = {times[True] / times[False]:.1f}")


if __name__ == "__main__":
    main([int(s) for s in sys.argv[1:]] or [0, 1, 2])
