"""Issue 38 item 1 (and issue 25's Masking case on real padded sequences):
spoken digits at their natural lengths (FSDD, ../shared/data/fsdd; log-mel
frames, 11 to 137 per clip) in batches of 32 padded to their longest clip,
into Masking(0.0) + GRU(64) + softmax. Before this change fit_with_tips
refused every such form; tf.data's own error was "Cannot batch tensors with
different shapes".

Two test splits, each with seeds 0-2: "speaker" holds out speaker "theo" (an
unseen voice, 500 clips; training: the other 2500), "takes" is FSDD's own
split (takes 0-4 of every speaker and digit, 300 clips; training: the other
2700). Arms, on the padded_batch dataset (TensorFlow; on seed 0 also the
same batches as a generator, which must give the same result):
  plain      model.fit(dataset, epochs=30), Adam's defaults (the issue's arm)
  defaults   Adam + EarlyStopping(patience=5, restore_best_weights) on the
             same held-out batches, up to 100 epochs (no Normalization layer:
             Keras' Normalization would move the padding, and Masking with it)
  recipe     fit_with_tips(model, dataset)
  recipe_raw fit_with_tips(model, dataset, preprocess=False)

    python benchmarks/bench_variable_length.py
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
from test_variable_length import pad_batch  # noqa: E402
from test_variable_length import spoken_frames  # noqa: E402


def model(seed):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((None, BANDS)), keras.layers.Masking(0.0),
                             keras.layers.GRU(64), keras.layers.Dense(10, activation="softmax")])


def dataset(clips, labels):
    return tf.data.Dataset.from_generator(
        lambda: zip(clips, labels), output_signature=(
            tf.TensorSpec((None, BANDS), tf.float32), tf.TensorSpec((), tf.int32))
    ).cache().padded_batch(32)


def accuracy(trained, clips, labels):
    probabilities = np.concatenate([trained.predict_on_batch(pad_batch(clips[i:i + 100]))
                                    for i in range(0, len(clips), 100)])
    return float((probabilities.argmax(-1) == labels).mean())


def main(seeds):
    print(device_line())
    for split in ("speaker", "takes"):
        run(split, seeds)


def run(split, seeds):
    clips, labels, speakers = spoken_frames()
    takes = np.array([int(take) for take in _takes()])
    test = speakers == "theo" if split == "speaker" else takes < 5
    order = np.random.default_rng(0).permutation(np.flatnonzero(~test))  # shuffled once
    train_clips, train_labels = [clips[i] for i in order], labels[order]
    test_clips, test_labels = [clips[i] for i in np.flatnonzero(test)], labels[test]
    # The held-out batches for the plain arms: the recipe's own split (seed 0).
    batches = list(dataset(train_clips, train_labels).as_numpy_iterator())
    held = set(np.random.default_rng(0).permutation(len(batches))[:round(len(batches) * 0.2)])
    fit_part = [b for i, b in enumerate(batches) if i not in held]
    val_part = [b for i, b in enumerate(batches) if i in held]
    as_data = lambda part: tf.data.Dataset.from_generator(lambda: iter(part), output_signature=(
        tf.TensorSpec((None, None, BANDS), tf.float32), tf.TensorSpec((None,), tf.int32)))
    print(f"\nsplit {split}: train {len(train_clips)} clips in {len(batches)} batches of 32; "
          f"test {len(test_clips)} clips")
    print("arm         form          seed  test_acc  epochs  seconds  status")
    for seed in seeds:
        for arm in ("plain", "defaults", "recipe", "recipe_raw"):
            forms = ("padded_batch", "generator") if arm == "recipe" and seed == seeds[0] else (
                "padded_batch",)
            for form in forms:
                m = model(seed)
                start = time.perf_counter()
                status = "-"
                if arm == "plain":
                    m.compile("adam", "sparse_categorical_crossentropy")
                    history = m.fit(as_data(fit_part).shuffle(64, seed=seed), epochs=30, verbose=0)
                    epochs = len(history.history["loss"])
                elif arm == "defaults":
                    m.compile("adam", "sparse_categorical_crossentropy")
                    stop = keras.callbacks.EarlyStopping(patience=5, restore_best_weights=True)
                    history = m.fit(as_data(fit_part).shuffle(64, seed=seed), epochs=100, verbose=0,
                                    validation_data=as_data(val_part), callbacks=[stop])
                    epochs = len(history.history["loss"])
                else:
                    data = dataset(train_clips, train_labels)
                    if form == "generator":
                        data = iter([b for b in batches])
                    result = fit_with_tips(m, data, seed=seed, verbose=0,
                                           preprocess=False if arm == "recipe_raw" else "auto",
                                           steps_per_epoch=len(batches) if form == "generator"
                                           else None)
                    m, status = result.model, result.status
                    epochs = len(result.history.history["loss"]) if hasattr(
                        result.history, "history") else len(result.history["loss"])
                seconds = time.perf_counter() - start
                print(f"{arm:<11} {form:<13} {seed:>4}  {accuracy(m, test_clips, test_labels):.4f}"
                      f"  {epochs:>6}  {seconds:>7.1f}  {status}", flush=True)


def _takes():
    """Each clip's take number, in the order spoken_frames reads them."""
    from conftest import shared_data

    return [p.stem.split("_")[2] for p in sorted(shared_data("fsdd", "recordings").glob("*.wav"))]


if __name__ == "__main__":
    main([int(s) for s in sys.argv[1:]] or [0, 1, 2])
