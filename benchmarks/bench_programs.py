"""Ordinary Keras programs side by side: `model.fit` as written vs the same
program with `fit_with_tips` swapped in (issue 13). Prints the test metric and
the wall time of each, one run each, seed 0, on the same 25% test split.

"as written" is what a Keras user writes for these data: the model, a
`Normalization` layer adapted on the training inputs, Adam, `model.fit` with
`validation_split=0.2`, `batch_size=16`, the same epoch budget; swapped, the
same compiled model goes to `fit_with_tips`. "recipe decides" rows hand
fit_with_tips the bare, uncompiled model. The keras-io row runs the example's
own compile and fit arguments.

    python benchmarks/bench_programs.py
"""

import sys
import time

import keras
import numpy as np

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from common import DATA, need  # noqa: E402

from keras_recipes import fit_with_tips  # noqa: E402


def split(x, y, seed=0, test=0.25):
    idx = np.random.default_rng(seed).permutation(len(x))
    cut = int(len(x) * (1 - test))
    return x[idx[:cut]], y[idx[:cut]], x[idx[cut:]], y[idx[cut:]]


def score(model, x, y, regression):
    p = np.asarray(model.predict(x, verbose=0))
    if regression:
        p = p.reshape(np.shape(y))
        return 1 - ((y - p) ** 2).sum() / ((y - y.mean()) ** 2).sum()
    if p.shape[-1] == 1:
        threshold = 0.5 if p.min() >= 0 and p.max() <= 1 else 0.0
        return ((p[:, 0] > threshold) == y).mean()
    return (p.argmax(-1) == (y.argmax(-1) if y.ndim == 2 else y)).mean()


def sklearn_program(name, y_dtype, n_out, activation, loss, epochs, recipe_decides=False):
    """`recipe_decides`: the swapped run gets the model uncompiled and without
    its Normalization layer, so fit_with_tips infers loss and preprocessing."""
    from sklearn import datasets

    bunch = getattr(datasets, f"load_{name}")()
    x, y, xt, yt = split(bunch.data.astype("float32"), bunch.target.astype(y_dtype))

    def build(normalize):
        keras.utils.set_random_seed(0)
        layers = [keras.Input((x.shape[1],))]
        if normalize:
            norm = keras.layers.Normalization()
            norm.adapt(x)
            layers.append(norm)
        layers += [keras.layers.Dense(32, activation="relu"),
                   keras.layers.Dense(n_out, activation=activation)]
        return keras.Sequential(layers)

    def written():
        model = build(True)
        model.compile("adam", loss)
        model.fit(x, y, epochs=epochs, batch_size=16, validation_split=0.2, verbose=0)
        return model

    def swapped():
        model = build(not recipe_decides)
        if not recipe_decides:
            model.compile("adam", loss)
        return fit_with_tips(model, (x, y), epochs=epochs, batch_size=16, seed=0,
                             verbose=0).model

    return written, swapped, (xt, yt), loss == "mse"


def mnist_convnet():
    import gzip

    folder = need(DATA / "mnist_test")
    with gzip.open(folder / "t10k-images-idx3-ubyte.gz") as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28, 1)
    with gzip.open(folder / "t10k-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)
    x, y = images[:8000].astype("float32") / 255, keras.utils.to_categorical(labels[:8000], 10)
    xt, yt = images[8000:].astype("float32") / 255, labels[8000:]

    def build():
        keras.utils.set_random_seed(0)
        model = keras.Sequential([
            keras.Input(shape=(28, 28, 1)),
            keras.layers.Conv2D(32, kernel_size=(3, 3), activation="relu"),
            keras.layers.MaxPooling2D(pool_size=(2, 2)),
            keras.layers.Conv2D(64, kernel_size=(3, 3), activation="relu"),
            keras.layers.MaxPooling2D(pool_size=(2, 2)),
            keras.layers.Flatten(),
            keras.layers.Dropout(0.5),
            keras.layers.Dense(10, activation="softmax"),
        ])
        model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
        return model

    def written():
        model = build()
        model.fit(x, y, batch_size=128, epochs=5, validation_split=0.1, verbose=0)
        return model

    def swapped():
        return fit_with_tips(build(), (x, y), batch_size=128, epochs=5, validation_split=0.1,
                             verbose=0).model

    return written, swapped, (xt, yt), False


def main():
    programs = {
        "iris, softmax, int labels": sklearn_program("iris", "int64", 3, "softmax",
                                                     "sparse_categorical_crossentropy", 60),
        "wine, logits, int labels": sklearn_program(
            "wine", "int64", 3, None,
            keras.losses.SparseCategoricalCrossentropy(from_logits=True), 60),
        "breast_cancer, sigmoid, float 0/1": sklearn_program("breast_cancer", "float32", 1,
                                                             "sigmoid", "binary_crossentropy", 40),
        "diabetes, float targets": sklearn_program("diabetes", "float32", 1, None, "mse", 100),
        "diabetes, int64 targets": sklearn_program("diabetes", "int64", 1, None, "mse", 100),
        "breast_cancer, recipe decides": sklearn_program(
            "breast_cancer", "float32", 1, "sigmoid", "binary_crossentropy", 40, True),
        "diabetes int64, recipe decides": sklearn_program("diabetes", "int64", 1, None, "mse",
                                                          100, True),
        "keras-io mnist_convnet (MNIST 8k/2k)": mnist_convnet(),
    }
    print(f"{'program':40s} {'metric':8s} {'model.fit':>10s} {'fit_with_tips':>14s} "
          f"{'time fit':>9s} {'time tips':>10s}")
    for name, (written, swapped, test, regression) in programs.items():
        row = []
        for run in (written, swapped):
            start = time.perf_counter()
            model = run()
            row += [score(model, *test, regression), time.perf_counter() - start]
        metric = "R^2" if regression else "accuracy"
        print(f"{name:40s} {metric:8s} {row[0]:10.4f} {row[2]:14.4f} {row[1]:8.1f}s {row[3]:9.1f}s",
              flush=True)


if __name__ == "__main__":
    main()
