"""Ordinary Keras programs with `model.fit` swapped for `fit_with_tips`.

Each row is a few lines a user would write (a model, real data, a call) on
scikit-learn's bundled datasets or ../shared/data, and either a quality floor
near what a hand-written Keras pipeline reaches or the clear error expected.
"""

import os
import signal

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import shared_data
from keras_recipes import fit_with_tips
from keras_recipes import plan

sklearn_datasets = pytest.importorskip("sklearn.datasets")
pd = pytest.importorskip("pandas")

# Floors near what the hand-written pipeline of benchmarks/bench_programs.py
# (a Normalization layer, Adam, model.fit) reaches on the same 25% test split:
# wine 0.82 accuracy, diabetes R^2 0.26 (BUILD_NOTES.md, issue 13).
WINE_FLOOR = 0.78
DIABETES_FLOOR = 0.25
FAST = dict(seed=0, verbose=0, jit_compile=False, batch_size=16)  # small data, small batches


def _split(x, y, seed=0, test=0.25):
    idx = np.random.default_rng(seed).permutation(len(x))
    cut = int(len(x) * (1 - test))
    return x[idx[:cut]], y[idx[:cut]], x[idx[cut:]], y[idx[cut:]]


def load(name):
    bunch = getattr(sklearn_datasets, f"load_{name}")()
    return _split(bunch.data.astype("float32"), bunch.target)


def dense(n_in, n_out, activation=None, hidden=32):
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((n_in,)), keras.layers.Dense(hidden, activation="relu"),
                             keras.layers.Dense(n_out, activation=activation)])


def accuracy(model, x, y):
    p = np.asarray(model.predict(x, verbose=0))
    if p.shape[-1] == 1:
        probs = p[:, 0]
        threshold = 0.5 if probs.min() >= 0 and probs.max() <= 1 else 0.0
        return float(((probs > threshold).astype(int) == np.asarray(y).reshape(-1)).mean())
    labels = np.asarray(y)
    labels = labels.argmax(-1) if labels.ndim == 2 else labels
    return float((p.argmax(-1) == labels).mean())


def r2(model, x, y):
    p = np.asarray(model.predict(x, verbose=0)).reshape(np.shape(y))
    y = np.asarray(y, "float64")
    return 1 - ((y - p) ** 2).sum(0) / ((y - y.mean(0)) ** 2).sum(0)


def tip(result, name):
    return [t for t in result.tips if t.name == name][0]


# -- classification ------------------------------------------------------------------


def iris_softmax():
    x, y, xt, yt = load("iris")
    r = fit_with_tips(dense(4, 3, "softmax"), (x, y), epochs=30, **FAST)
    assert "from_logits=False" in tip(r, "loss").reason
    return accuracy(r.model, xt, yt), 0.9


def iris_logits():
    x, y, xt, yt = load("iris")
    r = fit_with_tips(dense(4, 3), (x, y), epochs=30, **FAST)
    assert "from_logits=True" in tip(r, "loss").reason
    return accuracy(r.model, xt, yt), 0.9


def iris_onehot_float():
    x, y, xt, yt = load("iris")
    r = fit_with_tips(dense(4, 3), (x, keras.utils.to_categorical(y, 3)), epochs=30, **FAST)
    assert tip(r, "loss").setting == "categorical_crossentropy"
    return accuracy(r.model, xt, yt), 0.9


def iris_onehot_int():
    x, y, xt, yt = load("iris")
    r = fit_with_tips(dense(4, 3), (x, np.eye(3, dtype="int64")[y]), epochs=30, **FAST)
    assert tip(r, "loss").setting == "categorical_crossentropy"
    return accuracy(r.model, xt, yt), 0.9


def iris_onehot_dataset():
    x, y, xt, yt = load("iris")
    ds = tf.data.Dataset.from_tensor_slices((x, np.eye(3, dtype="float32")[y])).batch(16)
    r = fit_with_tips(dense(4, 3), ds, epochs=30, **FAST)
    assert tip(r, "loss").setting == "categorical_crossentropy"
    assert "val_accuracy" in r.history
    return accuracy(r.model, xt, yt), 0.9


def iris_float_class_ids():
    x, y, xt, yt = load("iris")
    r = fit_with_tips(dense(4, 3), (x, y.astype("float32")), epochs=30, **FAST)
    assert tip(r, "loss").setting == "sparse_categorical_crossentropy"
    return accuracy(r.model, xt, yt), 0.9


def cancer_sigmoid_float_labels():
    x, y, xt, yt = load("breast_cancer")
    r = fit_with_tips(dense(30, 1, "sigmoid"), (x, y.astype("float32")), epochs=20, **FAST)
    assert tip(r, "loss").setting == "binary_crossentropy"
    assert "from_logits=False" in tip(r, "loss").reason
    return accuracy(r.model, xt, yt), 0.93


def cancer_logit_int_labels():
    x, y, xt, yt = load("breast_cancer")
    r = fit_with_tips(dense(30, 1), (x, y), epochs=20, **FAST)
    assert "from_logits=True" in tip(r, "loss").reason
    return accuracy(r.model, xt, yt), 0.93


def cancer_two_unit_softmax():
    x, y, xt, yt = load("breast_cancer")
    r = fit_with_tips(dense(30, 2, "softmax"), (x, y), epochs=20, **FAST)
    assert tip(r, "loss").setting == "sparse_categorical_crossentropy"
    return accuracy(r.model, xt, yt), 0.93


def cancer_pandas():
    bunch = sklearn_datasets.load_breast_cancer(as_frame=True)
    frame, target = bunch.data, bunch.target
    r = fit_with_tips(dense(30, 1, "sigmoid"), (frame.iloc[:420], target.iloc[:420]), epochs=20,
                      **FAST)
    return accuracy(r.model, frame.iloc[420:].to_numpy("float32"), target.iloc[420:].to_numpy()), 0.93


class SigmoidLast(keras.Model):
    """The output activation is the first layer defined, used last. (Not named with a
    leading underscore: Keras on TensorFlow cannot train a model named "_sigmoid".)"""

    def __init__(self):
        super().__init__()
        self.squash = keras.layers.Activation("sigmoid")
        self.hidden = keras.layers.Dense(16, activation="relu")
        self.out = keras.layers.Dense(1)

    def call(self, x):
        return self.squash(self.out(self.hidden(x)))


def cancer_subclassed_sigmoid():
    x, y, xt, yt = load("breast_cancer")
    keras.utils.set_random_seed(0)
    # A subclassed call cannot be read to show standardizing is safe (issue
    # 25): left alone by default, and the row names the override.
    p = plan(SigmoidLast(), (x, y), epochs=20, **FAST)
    assert tip(p, "inputs").setting == "unchanged" and "subclassed" in tip(p, "inputs").reason
    assert tip(p, "inputs").override == "preprocess=True"
    r = fit_with_tips(SigmoidLast(), (x, y), epochs=20, preprocess=True, **FAST)
    assert "from_logits=False" in tip(r, "loss").reason
    return accuracy(r.model, xt, yt), 0.93


def cancer_imbalanced_class_weight():
    x, y, xt, yt = load("breast_cancer")
    # 8 malignant (label 0) in ~270 benign: unweighted, nothing is flagged.
    keep = np.flatnonzero(y == 1).tolist() + np.flatnonzero(y == 0)[:8].tolist()
    x, y = x[keep], y[keep]
    r = fit_with_tips(dense(30, 1), (x, y), epochs=30, class_weight={0: 80.0, 1: 1.0}, **FAST)
    predicted = (r.model.predict(xt, verbose=0)[:, 0] > 0).astype(int)
    recall = float((predicted[yt == 0] == 0).mean())
    return recall, 0.5


def wine_sample_weight():
    x, y, xt, yt = load("wine")
    r = fit_with_tips(dense(13, 3), (x, y), sample_weight=np.ones(len(x)), epochs=30, **FAST)
    assert tip(r, "sample weights")
    return accuracy(r.model, xt, yt), WINE_FLOOR


def wine_weighted_dataset():
    x, y, xt, yt = load("wine")
    ds = tf.data.Dataset.from_tensor_slices((x, y, np.ones(len(x), "float32")))
    r = fit_with_tips(dense(13, 3), ds, epochs=30, **FAST)
    return accuracy(r.model, xt, yt), WINE_FLOOR


def wine_drop_remainder():
    x, y, xt, yt = load("wine")
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(32, drop_remainder=True)
    r = fit_with_tips(dense(13, 3), ds, epochs=30, **FAST)
    assert r.data.n_train + r.data.n_validation == 32 * (len(x) // 32)
    return accuracy(r.model, xt, yt), WINE_FLOOR


def wine_dataset_with_validation_dataset():
    x, y, xt, yt = load("wine")
    train = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    val = tf.data.Dataset.from_tensor_slices((xt, yt)).batch(16)
    r = fit_with_tips(dense(13, 3), train, validation_data=val, epochs=30, **FAST)
    assert r.data.n_validation == len(xt)
    return accuracy(r.model, xt, yt), WINE_FLOOR


def wine_shuffle_false():
    x, y, xt, yt = load("wine")
    r = fit_with_tips(dense(13, 3), (x, y), validation_data=(xt, yt), shuffle=False, epochs=30,
                      **FAST)
    return accuracy(r.model, xt, yt), WINE_FLOOR


# -- regression ------------------------------------------------------------------------


def diabetes_float():
    x, y, xt, yt = load("diabetes")
    r = fit_with_tips(dense(10, 1), (x, y.astype("float32")), epochs=40, **FAST)
    return float(r2(r.model, xt, yt)), DIABETES_FLOOR


def diabetes_int64_targets():
    x, y, xt, yt = load("diabetes")
    r = fit_with_tips(dense(10, 1), (x, y.astype("int64")), epochs=40, **FAST)
    assert tip(r, "loss").setting == "mean_squared_error"
    assert "read as a quantity" in tip(r, "loss").reason
    assert r.status != "diverged"
    return float(r2(r.model, xt, yt)), DIABETES_FLOOR


def diabetes_two_columns():
    x, y, xt, yt = load("diabetes")
    # A second target on another scale: body mass index in raw units x 1000.
    bunch = sklearn_datasets.load_diabetes(scaled=False)
    idx = np.random.default_rng(0).permutation(len(bunch.data))
    bmi = bunch.data[idx, 2] * 1000
    cut = len(x)
    y2, yt2 = np.stack([y, bmi[:cut]], 1), np.stack([yt, bmi[cut:]], 1)
    r = fit_with_tips(dense(10, 2), (x, y2.astype("float32")), epochs=40, **FAST)
    assert "per column" in tip(r, "targets").setting
    return float(r2(r.model, xt, yt2).min()), DIABETES_FLOOR


def diabetes_dataset_int_targets():
    x, y, xt, yt = load("diabetes")
    ds = tf.data.Dataset.from_tensor_slices((x, y.astype("int32"))).batch(32)
    r = fit_with_tips(dense(10, 1), ds, epochs=40, **FAST)
    return float(r2(r.model, xt, yt)), DIABETES_FLOOR


def diabetes_task_override():
    x, y, xt, yt = load("diabetes")
    p = plan(dense(10, 1), (x, y), task="regression", **FAST)
    assert "task='regression' as passed" in tip(p, "loss").reason
    r = p.fit()
    return float(r2(r.model, xt, yt)), DIABETES_FLOOR


# -- the user's compile, step and callbacks win ---------------------------------------


def _top2(y_true, y_pred):  # an unregistered metric function
    return keras.metrics.sparse_top_k_categorical_accuracy(y_true, y_pred, k=2)


def wine_compiled_settings_kept():
    x, y, xt, yt = load("wine")
    model = dense(13, 3, "softmax")
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy",
                  metrics=["accuracy", _top2], steps_per_execution=2, jit_compile=False)
    r = fit_with_tips(model, (x, y), epochs=30, seed=0, verbose=0)
    assert "val__top2" in r.history
    assert "steps_per_execution=2" in tip(r, "compile settings").setting
    assert tip(r, "execution").reason.startswith("from model.compile")
    return accuracy(r.model, xt, yt), WINE_FLOOR


class CountingModel(keras.Model):
    calls = 0

    def train_step(self, data):
        CountingModel.calls += 1
        return super().train_step(data)


def wine_custom_train_step():
    x, y, xt, yt = load("wine")
    keras.utils.set_random_seed(0)
    inputs = keras.Input((13,))
    hidden = keras.layers.Dense(32, activation="relu")(inputs)
    model = CountingModel(inputs, keras.layers.Dense(3)(hidden))
    CountingModel.calls = 0
    r = fit_with_tips(model, (x, y), epochs=30, **FAST)
    assert CountingModel.calls > 0
    assert "train_step runs as written" in tip(r, "model").setting
    return accuracy(r.model, xt, yt), WINE_FLOOR  # r.model standardizes raw inputs itself


def wine_user_reduce_lr():
    x, y, xt, yt = load("wine")
    mine = keras.callbacks.ReduceLROnPlateau(factor=0.2, patience=2)
    r = fit_with_tips(dense(13, 3), (x, y), epochs=30, callbacks=[mine], **FAST)
    assert tip(r, "LR schedule").setting.startswith("yours (ReduceLROnPlateau)")
    return accuracy(r.model, xt, yt), WINE_FLOOR


def wine_user_early_stopping():
    x, y, xt, yt = load("wine")
    stop = keras.callbacks.EarlyStopping(patience=3, restore_best_weights=True)
    r = fit_with_tips(dense(13, 3), (x, y), epochs=40, callbacks=[stop], **FAST)
    assert "never stop early" in tip(r, "LR schedule").setting
    assert "your EarlyStopping decides" in tip(r, "LR schedule").reason
    return accuracy(r.model, xt, yt), WINE_FLOOR


def wine_lr_scheduler():
    x, y, xt, yt = load("wine")
    schedule = keras.callbacks.LearningRateScheduler(lambda epoch, lr: 0.05 if epoch < 10 else 0.01)
    r = fit_with_tips(dense(13, 3), (x, y), epochs=20, callbacks=[schedule], **FAST)
    assert r.history["learning_rate"][-1] == pytest.approx(0.01)
    return accuracy(r.model, xt, yt), WINE_FLOOR


# -- keras-io style scripts ----------------------------------------------------------------


def _mnist(n):
    import gzip

    folder = shared_data("mnist_test")
    with gzip.open(folder / "t10k-images-idx3-ubyte.gz") as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28, 1)
    with gzip.open(folder / "t10k-labels-idx1-ubyte.gz") as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8)
    return x[:n], y[:n], x[n : n + 1000], y[n : n + 1000]


def as_written_and_swapped(build, compile_kwargs, fit_kwargs, data, test):
    """Runs a keras-io script twice from the same initial weights: with
    `model.fit` as written, and with `fit_with_tips` swapped in."""
    scores = []
    for fit in ("model.fit", "fit_with_tips"):
        keras.utils.set_random_seed(0)
        model = build()
        model.compile(**compile_kwargs)
        if fit == "model.fit":
            model.fit(*data, verbose=0, **fit_kwargs)
            scores.append(accuracy(model, *test))
        else:
            result = fit_with_tips(model, data, verbose=0, **fit_kwargs)
            scores.append(accuracy(result.model, *test))
    return scores


def keras_io_mnist_convnet():
    # keras.io/examples/vision/mnist_convnet, smaller; model.fit swapped.
    x, y, xt, yt = _mnist(3000)
    x, xt = x.astype("float32") / 255, xt.astype("float32") / 255

    def build():
        return keras.Sequential([
            keras.Input(shape=(28, 28, 1)),
            keras.layers.Conv2D(16, kernel_size=(3, 3), activation="relu"),
            keras.layers.MaxPooling2D(pool_size=(2, 2)),
            keras.layers.Flatten(),
            keras.layers.Dropout(0.5),
            keras.layers.Dense(10, activation="softmax"),
        ])

    written, swapped = as_written_and_swapped(
        build, dict(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"]),
        dict(batch_size=128, epochs=3, validation_split=0.1),
        (x, keras.utils.to_categorical(y, 10)), (xt, yt))
    return swapped, written - 0.03


def _acsf1(part):
    path = shared_data("sequences", "acsf1", f"ACSF1_{part}.ts")
    xs, ys = [], []
    data = False
    for line in path.read_text().splitlines():
        if line.lower().startswith("@data"):
            data = True
            continue
        if data and line.strip():
            series, label = line.rsplit(":", 1)
            xs.append(np.array(series.split(","), "float32"))
            ys.append(int(label))
    return np.stack(xs)[..., None], np.array(ys)


def keras_io_timeseries_with_callbacks(tmp_path):
    # keras.io/examples/timeseries/timeseries_classification_from_scratch, on ACSF1.
    x, y = _acsf1("TRAIN")
    xt, yt = _acsf1("TEST")
    x, xt = x[:, ::10], xt[:, ::10]  # 146 steps

    def build():
        inputs = keras.layers.Input(x.shape[1:])
        z = keras.layers.Conv1D(32, 3, padding="same", activation="relu")(inputs)
        z = keras.layers.GlobalAveragePooling1D()(z)
        return keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(z))

    callbacks = [
        keras.callbacks.ModelCheckpoint(str(tmp_path / "best.keras"), save_best_only=True,
                                        monitor="val_loss"),
        keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=20, min_lr=1e-4),
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=50),
    ]
    written, swapped = as_written_and_swapped(
        build, dict(optimizer="adam", loss="sparse_categorical_crossentropy",
                    metrics=["sparse_categorical_accuracy"]),
        dict(batch_size=32, epochs=60, callbacks=callbacks, validation_split=0.2), (x, y), (xt, yt))
    assert (tmp_path / "best.keras").exists()
    return swapped, written - 0.05


# -- several inputs or outputs, PyDataset, generators ------------------------------------


def keras_io_structured_data():
    # keras.io/examples/structured_data (one input per column, a string column
    # looked up inside the model), on diabetes with sex as text.
    bunch = sklearn_datasets.load_diabetes(as_frame=True, scaled=False)
    frame = bunch.frame.copy()
    frame["sex"] = np.where(frame["sex"] > 1.5, "male", "female")
    target = frame.pop("target").to_numpy()
    keras.utils.set_random_seed(0)
    inputs = {c: keras.Input((1,), name=c, dtype="string" if c == "sex" else "float32")
              for c in frame.columns}
    sex = keras.layers.StringLookup(vocabulary=["male", "female"], output_mode="one_hot")
    z = keras.layers.Concatenate()([sex(inputs["sex"])] + [inputs[c] for c in frame.columns
                                                              if c != "sex"])
    z = keras.layers.Dense(32, activation="relu")(z)
    model = keras.Model(inputs, keras.layers.Dense(1)(z))
    columns = lambda rows: {c: frame[c].to_numpy()[rows, None] for c in frame.columns}
    r = fit_with_tips(model, (columns(slice(0, 350)), target[:350]), epochs=40, **FAST)
    assert tip(r, "input sex").setting == "passed through"
    assert "zero mean" in tip(r, "input bmi").setting
    test = {c: tf.constant(v.astype(str) if c == "sex" else v.astype("float32"))
            for c, v in columns(slice(350, None)).items()}
    return float(r2(r.model, test, target[350:])), DIABETES_FLOOR


def cancer_two_outputs():
    # One input, two named outputs: a class and a quantity, one loss each.
    x, y, xt, yt = load("breast_cancer")
    keras.utils.set_random_seed(0)
    inputs = keras.Input((30,))
    hidden = keras.layers.Dense(16, activation="relu")(inputs)
    model = keras.Model(inputs, {"malignant": keras.layers.Dense(1, name="malignant")(hidden),
                                 "area": keras.layers.Dense(1, name="area")(hidden)})
    # The recipe's LR 0.1 with momentum diverges here (plain Keras too).
    r = fit_with_tips(model, (x, {"malignant": y, "area": x[:, 3]}), epochs=20,
                      **dict(FAST, learning_rate=0.01))
    assert tip(r, "loss (malignant)").setting == "binary_crossentropy"
    assert tip(r, "loss (area)").setting == "mean_squared_error"
    out = r.model.predict(xt, verbose=0)
    area_r2 = r2(keras.Sequential([keras.Input((30,)), keras.layers.Lambda(
        lambda v: r.model(v)["area"])]), xt, xt[:, 3:4])
    assert float(area_r2[0]) > 0.8
    return float(((out["malignant"][:, 0] > 0) == yt).mean()), 0.9


class WineBatches(keras.utils.PyDataset):
    def __init__(self, x, y, batch_size=16, **kwargs):
        super().__init__(**kwargs)
        self.x, self.y, self.batch_size = x, y, batch_size

    def __len__(self):
        return -(-len(self.x) // self.batch_size)

    def __getitem__(self, i):
        rows = slice(i * self.batch_size, (i + 1) * self.batch_size)
        return self.x[rows], self.y[rows]


def wine_pydataset():
    x, y, xt, yt = load("wine")
    r = fit_with_tips(dense(13, 3), WineBatches(x, y), epochs=30, **FAST)
    assert r.data.n_train + r.data.n_validation == len(x)
    return accuracy(r.model, xt, yt), WINE_FLOOR


def wine_generator():
    x, y, xt, yt = load("wine")

    def batches():
        while True:  # endless, as generators for model.fit often are
            for i in range(0, len(x), 16):
                yield x[i : i + 16], y[i : i + 16]

    r = fit_with_tips(dense(13, 3), batches(), steps_per_epoch=9, epochs=30, **FAST)
    assert "generator" in " ".join(r.data.notes)
    return accuracy(r.model, xt, yt), WINE_FLOOR


def _csv(*parts):
    path = shared_data(*parts)
    return pd.read_csv(path)


def california_housing_regression():
    # The user drops the rows with NaN and the text column, then fits.
    frame = _csv("tabular", "california_housing.csv").dropna().drop(columns="ocean_proximity")
    frame = frame.sample(frac=1.0, random_state=0).iloc[:6000]
    y = frame.pop("median_house_value").to_numpy("float32")
    x = frame.to_numpy("float32")
    r = fit_with_tips(dense(8, 1, hidden=64), (x[:5000], y[:5000]), epochs=20,
                      **dict(FAST, batch_size=128))
    assert "log1p on" in tip(r, "inputs").setting  # rooms, population, households
    return float(r2(r.model, x[5000:], y[5000:])), 0.6


def california_housing_nan_is_refused():
    frame = _csv("tabular", "california_housing.csv").drop(columns="ocean_proximity")
    y = frame.pop("median_house_value")
    with pytest.raises(ValueError, match="NaN/Inf values"):
        fit_with_tips(dense(8, 1), (frame, y), **FAST)
    return 1.0, 1.0


def grunfeld_investment():
    frame = _csv("tabular", "grunfeld.csv")
    y = frame.pop("invest").to_numpy("float32")
    x = frame[["value", "capital", "year"]].to_numpy("float32")
    idx = np.random.default_rng(0).permutation(len(x))
    r = fit_with_tips(dense(3, 1), (x[idx[:170]], y[idx[:170]]), epochs=60,
                      **dict(FAST, batch_size=128))
    # Hand-written (Normalization, Adam 1e-2, batch 16, 60 epochs) reaches 0.59
    # on this split. The recipe's 60 epochs of 2 updates here are capped, and a
    # 34-example validation set decides: the benchmark's grunfeld is the quality
    # measure (BUILD_NOTES, issue 36). value and capital span the decades, but
    # investment follows them raw, so tip 1's log1p is checked and left out.
    assert "the targets follow them raw" in tip(r, "inputs").setting
    return float(r2(r.model, x[idx[170:]], y[idx[170:]])), 0.4


def mnist_uint8_batched_dataset():
    x, y, xt, yt = _mnist(4000)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Conv2D(8, 3, activation="relu"),
                              keras.layers.MaxPooling2D(2), keras.layers.Flatten(),
                              keras.layers.Dense(10)])
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(64)
    # The data path is under test here, in 3 epochs: a fixed rate. The calibrated rate's
    # quality on MNIST is benchmarks/bench_quality.py's (slower in the first epochs).
    r = fit_with_tips(model, ds, epochs=3, optimizer="sgd", learning_rate=0.1,
                      **dict(FAST, batch_size=128))
    assert "channels" in tip(r, "inputs").setting
    return accuracy(r.model, xt, yt), 0.9


def digits_pandas_float_ids():
    from keras_recipes.datasets import load_digits

    x, y = load_digits("train")
    xt, yt = load_digits("test")
    frame = pd.DataFrame(x)
    r = fit_with_tips(dense(64, 10), (frame, pd.Series(y.astype("float64"))), epochs=20,
                      **dict(FAST, batch_size=128))
    assert tip(r, "loss").setting == "sparse_categorical_crossentropy"
    return accuracy(r.model, xt, yt), 0.94


def digits_embedding_ids():
    from keras_recipes.datasets import load_digits

    x, y = load_digits("train")
    xt, yt = load_digits("test")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((64,), dtype="int32"), keras.layers.Embedding(17, 4),
                              keras.layers.Flatten(), keras.layers.Dense(10)])
    r = fit_with_tips(model, (x.astype("int32"), y), epochs=20, **dict(FAST, batch_size=128))
    assert tip(r, "inputs").setting == "unchanged"  # ids are not standardized
    return accuracy(r.model, xt.astype("int32"), yt), 0.9


def cancer_multilabel():
    # Two yes/no labels per example (malignant; large area), two sigmoid outputs.
    x, y, xt, yt = load("breast_cancer")
    labels = lambda xs, ys: np.stack([ys, xs[:, 3] > 700], 1).astype("float32")
    r = fit_with_tips(dense(30, 2, "sigmoid"), (x, labels(x, y)), epochs=20, **FAST)
    assert "multilabel" in tip(r, "loss").reason
    p = r.model.predict(xt, verbose=0) > 0.5
    return float((p == labels(xt, yt).astype(bool)).mean()), 0.9


def cancer_weights_in_tuple():
    x, y, xt, yt = load("breast_cancer")
    r = fit_with_tips(dense(30, 1), (x, y, np.where(y == 0, 2.0, 1.0)), epochs=20, **FAST)
    assert tip(r, "sample weights")
    return accuracy(r.model, xt, yt), 0.93


def wine_steps_limits():
    x, y, xt, yt = load("wine")
    r = fit_with_tips(dense(13, 3), (x, y), steps_per_epoch=4, validation_steps=1, epochs=40,
                      **FAST)
    return accuracy(r.model, xt, yt), WINE_FLOOR


def diabetes_two_column_dataset():
    x, y, xt, yt = load("diabetes")
    y2 = np.stack([y, y * 100.0], 1).astype("float32")
    ds = tf.data.Dataset.from_tensor_slices((x, y2))
    r = fit_with_tips(dense(10, 2), ds, epochs=40, **FAST)
    return float(r2(r.model, xt, np.stack([yt, yt * 100.0], 1)).min()), DIABETES_FLOOR


def wine_compiled_two_outputs_loss_weights():
    x, y, xt, yt = load("wine")
    keras.utils.set_random_seed(0)
    inputs = keras.Input((13,))
    norm = keras.layers.Normalization()
    norm.adapt(x)
    hidden = keras.layers.Dense(32, activation="relu")(norm(inputs))
    model = keras.Model(inputs, [keras.layers.Dense(3, name="cls")(hidden),
                                 keras.layers.Dense(1, name="alcohol")(hidden)])
    model.compile("adam", [keras.losses.SparseCategoricalCrossentropy(from_logits=True), "mse"],
                  loss_weights=[1.0, 0.1])
    r = fit_with_tips(model, (x, [y, x[:, 0]]), epochs=30, **FAST)
    assert "loss_weights=[1.0, 0.1]" in tip(r, "compile settings").setting
    return accuracy(keras.Model(r.model.inputs, r.model.outputs[0]), xt, yt), WINE_FLOOR


def iris_one_hot_int_dataset_with_validation_arrays():
    x, y, xt, yt = load("iris")
    ds = tf.data.Dataset.from_tensor_slices((x, np.eye(3, dtype="int32")[y]))
    r = fit_with_tips(dense(4, 3), ds, validation_data=(xt, np.eye(3, dtype="int32")[yt]),
                      epochs=30, **FAST)
    assert tip(r, "loss").setting == "categorical_crossentropy"
    return accuracy(r.model, xt, yt), 0.9


PROGRAMS = [california_housing_regression, california_housing_nan_is_refused, grunfeld_investment,
            mnist_uint8_batched_dataset, digits_pandas_float_ids, digits_embedding_ids,
            cancer_multilabel, cancer_weights_in_tuple, wine_steps_limits,
            diabetes_two_column_dataset, wine_compiled_two_outputs_loss_weights,
            iris_one_hot_int_dataset_with_validation_arrays, keras_io_structured_data, cancer_two_outputs, wine_pydataset, wine_generator,
            iris_softmax, iris_logits, iris_onehot_float, iris_onehot_int, iris_onehot_dataset,
            iris_float_class_ids, cancer_sigmoid_float_labels, cancer_logit_int_labels,
            cancer_two_unit_softmax, cancer_pandas, cancer_subclassed_sigmoid,
            cancer_imbalanced_class_weight, wine_sample_weight, wine_weighted_dataset,
            wine_drop_remainder, wine_dataset_with_validation_dataset, wine_shuffle_false,
            diabetes_float, diabetes_int64_targets, diabetes_two_columns,
            diabetes_dataset_int_targets, diabetes_task_override, wine_compiled_settings_kept,
            wine_custom_train_step, wine_user_reduce_lr, wine_user_early_stopping,
            wine_lr_scheduler, keras_io_mnist_convnet]


# The programs that take 10 s or more here run in CI only (slow-marked).
SLOW_PROGRAMS = (keras_io_structured_data, diabetes_dataset_int_targets)


@pytest.mark.parametrize("program", [
    pytest.param(p, marks=pytest.mark.slow) if p in SLOW_PROGRAMS else p for p in PROGRAMS],
    ids=lambda p: p.__name__)
def test_program_reaches_its_floor(program):
    score, floor = program()
    assert score >= floor, (program.__name__, score, floor)


@pytest.mark.slow
def test_keras_io_timeseries_with_users_callbacks(tmp_path):
    score, floor = keras_io_timeseries_with_callbacks(tmp_path)
    assert score >= floor, score


# -- clear errors, before any training ------------------------------------------------------


class _Started(keras.callbacks.Callback):
    started = False

    def on_train_begin(self, logs=None):
        _Started.started = True


def _wine():
    return load("wine")


ERRORS = [
    ("endless dataset",
     lambda x, y, xt, yt: (tf.data.Dataset.from_tensor_slices((x, y)).repeat(), {}),
     ValueError, "endless dataset.*Received: data with infinite cardinality"),
    ("reshuffling dataset split",
     lambda x, y, xt, yt: (tf.data.Dataset.from_tensor_slices((x, y)).shuffle(200), {}),
     ValueError, "different order on each pass"),
    ("validation labels out of range",
     lambda x, y, xt, yt: ((x, y), {"validation_data": (xt, yt + 3)}),
     ValueError, r"checked in `validation_data`.*Received: labels from 3 to 5"),
    ("one-hot width mismatch",
     lambda x, y, xt, yt: ((x, np.eye(4, dtype="float32")[y]), {}),
     ValueError, "one-hot labels of width 4 for a model with 3 outputs"),
    ("text features",
     lambda x, y, xt, yt: ((x.astype(str), y), {}), TypeError, "must be numeric"),
    ("sample_weight length",
     lambda x, y, xt, yt: ((x, y), {"sample_weight": np.ones(3)}),
     ValueError, r"Received: sample_weight of shape \(3,\)"),
    ("class_weight type",
     lambda x, y, xt, yt: ((x, y), {"class_weight": [1, 2, 3]}),
     ValueError, r"Received: class_weight=\[1, 2, 3\]"),
    ("unknown argument",
     lambda x, y, xt, yt: ((x, y), {"epochz": 3}), TypeError, "Received: epochz=3"),
    ("task value",
     lambda x, y, xt, yt: ((x, y), {"task": "clustering"}), ValueError, "Received: task='clustering'"),
    ("dataset with sample_weight=",
     lambda x, y, xt, yt: (tf.data.Dataset.from_tensor_slices((x, y)), {"sample_weight": np.ones(len(x))}),
     ValueError, "a dataset carries its weights"),
    ("generator without steps_per_epoch",
     lambda x, y, xt, yt: ((b for b in [(x, y)]), {}), ValueError, "Received: steps_per_epoch=None"),
    ("continuous labels, several outputs",
     lambda x, y, xt, yt: ((x, y + 0.5), {}), ValueError, "1 label column.*3 outputs"),
]


@pytest.mark.parametrize("name,make,error,match", ERRORS, ids=[e[0] for e in ERRORS])
def test_bad_programs_get_a_clear_error_before_training(name, make, error, match):
    data, kwargs = make(*_wine())
    _Started.started = False
    with pytest.raises(error, match=match):
        fit_with_tips(dense(13, 3), data, callbacks=[_Started()], **dict(FAST, **kwargs))
    assert not _Started.started


def test_checkpoint_of_another_run_is_refused(tmp_path):
    x, y, xt, yt = _wine()
    fit_with_tips(dense(13, 3), (x, y), epochs=1, checkpoint_dir=tmp_path, **FAST)
    with pytest.raises(ValueError, match="holds a run with other data"):
        fit_with_tips(dense(13, 3), (x * 2 + 1, y), epochs=2, checkpoint_dir=tmp_path, **FAST)


# -- how a run ends -------------------------------------------------------------------------


class _CtrlC(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        if batch == 1:
            os.kill(os.getpid(), signal.SIGINT)


def test_ctrl_c_returns_an_interrupted_result_with_preprocessing():
    x, y, xt, yt = _wine()
    with pytest.warns(RuntimeWarning, match="interrupted"):
        r = fit_with_tips(dense(13, 3), (x, y), epochs=50, callbacks=[_CtrlC()], **FAST)
    assert r.status == "interrupted"
    assert len(r.history["loss"]) == 1  # stopped in the first epoch
    assert "INTERRUPTED" in str(r).splitlines()[0]
    assert r.model.get_layer("standardize") is not None  # raw inputs in
    assert np.isfinite(r.model.predict(xt, verbose=0)).all()


def test_divergence_is_loud():
    x, y, xt, yt = _wine()
    with pytest.warns(RuntimeWarning, match="diverged"):
        r = fit_with_tips(dense(13, 3), (x, y), epochs=5, learning_rate=1e9, **FAST)
    assert r.status == "diverged"
    assert str(r).startswith("fit_with_tips: DIVERGED")
    assert "status: diverged" in str(r)


def test_plan_prints_the_table_the_fit_prints(capsys):
    x, y, xt, yt = _wine()
    p = plan(dense(13, 3), (x, y), **dict(FAST, verbose=1))
    table = str(p)
    assert p == plan(dense(13, 3), (x, y), **FAST)
    r = p.fit()
    assert table in capsys.readouterr().out
    assert r.plan is p


def test_compiled_regression_on_raw_targets_is_said():
    # The user's loss wins, so the targets stay raw; the table says what that costs.
    x, y, xt, yt = load("diabetes")
    model = dense(10, 1)
    model.compile(keras.optimizers.Adam(1e-2), "mse", metrics=["mae"])
    p = plan(model, (x, y.astype("float32")), epochs=2, **FAST)
    row = tip(p, "targets")
    assert row.setting.startswith("unchanged (mean 1") and "standardize y" in row.reason
    assert "inside a ClippedOptimizer" in tip(p, "optimizer").reason
    assert tip(p, "minibatch").setting == "batch_size=16 (17 steps per epoch)"
