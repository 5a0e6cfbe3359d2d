"""Issue 38 item 4: sparse inputs as model.fit takes them. The embedded UCI
digits (1437 train, 360 test; about half the pixels are 0) as a scipy CSR
matrix into Input((64,), sparse=True) + Dense(32, relu) + Dense(10). Before
this change fit_with_tips refused the matrix ("encode text columns").

Arms, seeds 0-2, test accuracy:
  plain         model.fit(csr, y, epochs=30), Adam's defaults, batch 32
  recipe_sparse fit_with_tips(model, (csr, y)): passed through, fed sparse
  recipe_dense  fit_with_tips(the same model with a dense Input, (x, y)):
                the dense pixels, standardized (tip 1: one mean/std)

    python benchmarks/bench_sparse_inputs.py        (KERAS_BACKEND=jax for JAX)
"""

import os
import sys
import time

import keras
import numpy as np
import scipy.sparse

sys.path.insert(0, os.path.dirname(__file__))

from common import device_line  # noqa: E402
from keras_recipes import fit_with_tips  # noqa: E402
from keras_recipes.datasets import load_digits  # noqa: E402


def model(seed, sparse):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((64,), sparse=sparse)
    hidden = keras.layers.Dense(32, activation="relu")(inputs)
    return keras.Model(inputs, keras.layers.Dense(10)(hidden))


def main():
    print(device_line())
    x, y = load_digits("train")
    xt, yt = load_digits("test")
    x, xt = x.astype("float32"), xt.astype("float32")
    csr = scipy.sparse.csr_matrix(x)
    print(f"train {x.shape[0]} rows, {csr.nnz / np.prod(x.shape):.1%} of the values non-zero; "
          f"test {xt.shape[0]}")
    print("arm            seed  test_acc  epochs  seconds  status")
    for seed in (0, 1, 2):
        for arm in ("plain", "recipe_sparse", "recipe_dense"):
            start = time.perf_counter()
            status = "-"
            if arm == "plain":
                m = model(seed, True)
                m.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
                epochs = len(m.fit(csr, y, epochs=30, batch_size=32, verbose=0).history["loss"])
            else:
                result = fit_with_tips(model(seed, arm == "recipe_sparse"),
                                       (csr if arm == "recipe_sparse" else x, y), seed=seed,
                                       verbose=0)
                m, status, epochs = result.model, result.status, len(result.history["loss"])
            seconds = time.perf_counter() - start
            accuracy = float((np.asarray(m.predict(xt, verbose=0)).argmax(-1) == yt).mean())
            print(f"{arm:<14} {seed:>4}  {accuracy:.4f}  {epochs:>6}  {seconds:>7.1f}  {status}",
                  flush=True)


if __name__ == "__main__":
    main()
