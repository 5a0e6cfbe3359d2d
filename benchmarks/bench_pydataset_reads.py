"""Issue 38, item 3: a PyDataset read as model.fit reads it. A keras.io-style
PyDataset over the embedded UCI digits (train split) that adds fresh noise
to every read and reshuffles at each epoch's end (tests/test_data_forms.py's
`Augmenting`, batches of 50), 8 epochs: its reads and on_epoch_end calls
under plain model.fit, fit_with_tips (the default: read anew every epoch)
and fit_with_tips(read_once=True); test accuracy on the digits test split.
On the backend in KERAS_BACKEND (the previous behaviour on JAX and torch was
the read_once one).

Then the same PyDataset through an endless generator (its batches, epoch
after epoch: tests/test_data_forms.py's `endless`), steps_per_epoch=29:
plain model.fit, fit_with_tips (a generator that yields more is read anew,
as model.fit reads it) and fit_with_tips(read_once=True) (the previous
behaviour for every generator: its first 29 batches read once).

    python benchmarks/bench_pydataset_reads.py
"""

import os
import sys

import keras
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
sys.path.insert(0, os.path.dirname(__file__))

from common import device_line  # noqa: E402
from keras_recipes import fit_with_tips  # noqa: E402
from keras_recipes.datasets import load_digits  # noqa: E402
from test_data_forms import Augmenting  # noqa: E402
from test_data_forms import endless  # noqa: E402
from test_data_forms import mlp  # noqa: E402

EPOCHS = 8


def main():
    print(device_line())
    x, y = load_digits("train")
    xt, yt = load_digits("test")
    x = x.astype("float32")
    # (title, how the PyDataset is given, model.fit's extra arguments)
    forms = (("", lambda data: data, lambda data: {}),
             ("\nThe same batches from an endless generator, steps_per_epoch=29",
              endless, lambda data: {"steps_per_epoch": len(data)}))
    for title, given, extra in forms:
        if title:
            print(title)
        print(f"{'arm':34} {'seed':>4} {'reads':>6} {'epoch ends':>10} {'test_acc':>8}")
        for seed in range(3):
            data = Augmenting(x, y)
            keras.utils.set_random_seed(seed)
            model = mlp()
            model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                          metrics=["accuracy"])
            model.fit(given(data), epochs=EPOCHS, verbose=0, **extra(data))
            acc = float((model.predict(xt, verbose=0).argmax(-1) == yt).mean())
            print(f"{'plain model.fit':34} {seed:>4} {data.reads:>6} {data.ends:>10} {acc:8.4f}")
            for label, once in (("fit_with_tips", False), ("fit_with_tips(read_once=True)", True)):
                data = Augmenting(x, y)
                keras.utils.set_random_seed(seed)
                result = fit_with_tips(mlp(), given(data), epochs=EPOCHS, seed=seed, verbose=0,
                                       read_once=once, **extra(data))
                acc = float((np.asarray(result.model.predict(xt, verbose=0)).argmax(-1)
                             == yt).mean())
                print(f"{label:34} {seed:>4} {data.reads:>6} {data.ends:>10} {acc:8.4f}",
                      flush=True)


if __name__ == "__main__":
    main()
