"""Issue 25: each "leave it alone" case of tip 1, end to end. The models of
tests/test_tip1_safety.py's table whose inputs the recipe now leaves as
they are, trained on the embedded UCI digits (pixel values 0..16, also the
token ids of the lookup and embedding cases; the given train/test split)
three ways, 20 epochs, seeds 0-2:

- fit_with_tips as it is (preprocess="auto": the check leaves them alone);
- fit_with_tips(preprocess=True): standardized anyway, as before the check;
- plain model.fit: Adam(1e-3), batch 32, 20% validation, EarlyStopping
  (patience 5, best weights restored).

Mean test accuracy over the seeds (and per seed). Validation decides
nothing here: the arms are fixed beforehand.

With `--epochs auto` each arm has its own budget instead of 20 epochs:
fit_with_tips its "auto" budget (it stops on its plateau rule), plain
model.fit up to 200 epochs with EarlyStopping(patience 10, best weights).

    python benchmarks/bench_tip1_cases.py [--seeds 3] [--epochs 20|auto]
"""

import argparse
import os
import sys
import warnings

import keras
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
sys.path.insert(0, os.path.dirname(__file__))

from common import device_line  # noqa: E402
from keras_recipes import fit_with_tips  # noqa: E402
from keras_recipes.datasets import load_digits  # noqa: E402
from test_tip1_safety import CASES  # noqa: E402

NAMES = ("embedding_in_custom_layer", "masking", "discretization", "relu_on_raw_values",
         "frozen_pretrained_base", "trained_before", "shared_lookup", "subclassed")


def accuracy(model, x, y):
    return float((np.asarray(model.predict(x, verbose=0)).argmax(-1) == y).mean())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", default="20")
    args = parser.parse_args()
    auto = args.epochs == "auto"
    epochs = "auto" if auto else int(args.epochs)
    plain_epochs, patience = (200, 10) if auto else (epochs, 5)
    print(f"budget: fit_with_tips epochs={epochs!r}; plain model.fit up to {plain_epochs} epochs, "
          f"EarlyStopping(patience={patience})")
    print(device_line())
    x, y = load_digits("train")
    xt, yt = load_digits("test")
    x, xt = x.astype("float32"), xt.astype("float32")
    builders = {name: build for name, build, _, _ in CASES}
    print(f"{'case':28} {'auto (left alone)':>18} {'preprocess=True':>16} {'plain fit':>10}")
    for name in NAMES:
        build = builders[name]
        scores = {"auto": [], "forced": [], "plain": []}
        for seed in range(args.seeds):
            for arm, options in (("auto", {}), ("forced", {"preprocess": True})):
                keras.utils.set_random_seed(seed)
                model = build((x[:400], y[:400]))
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    result = fit_with_tips(model, (x, y), epochs=epochs, seed=seed, verbose=0,
                                           **options)
                scores[arm].append(accuracy(result.model, xt, yt))
            keras.utils.set_random_seed(seed)
            model = build((x[:400], y[:400]))
            model.compile(keras.optimizers.Adam(1e-3),
                          keras.losses.SparseCategoricalCrossentropy(from_logits=True))
            model.fit(x, y, batch_size=32, epochs=plain_epochs, validation_split=0.2, verbose=0,
                      callbacks=[keras.callbacks.EarlyStopping(patience=patience,
                                                               restore_best_weights=True)])
            scores["plain"].append(accuracy(model, xt, yt))
        cells = [f"{np.mean(v):.4f}" for v in scores.values()]
        print(f"{name:28} {cells[0]:>18} {cells[1]:>16} {cells[2]:>10}   per seed "
              + " | ".join(",".join(f"{s:.3f}" for s in v) for v in scores.values()), flush=True)


if __name__ == "__main__":
    main()
