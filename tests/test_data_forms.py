"""Issue 38 item 3: the same rows get the same decisions whatever the form
`model.fit` reads them in. The batch size was decided on the array length
before the data was read: a dataset or a PyDataset of 138 rows got batch 128
(1 update an epoch), the same rows as arrays batch 16. Through `plan` only:
nothing trains. Data: the first 600 (and 138) of the embedded UCI digits.
"""

import keras
import numpy as np
import pytest

from keras_recipes import plan
from keras_recipes.datasets import load_digits


class Batches(keras.utils.PyDataset):
    def __init__(self, x, y, size):
        super().__init__()
        self.x, self.y, self.size = x, y, size

    def __len__(self):
        return -(-len(self.x) // self.size)

    def __getitem__(self, i):
        part = slice(i * self.size, (i + 1) * self.size)
        return self.x[part], self.y[part]


def mlp():
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((64,)), keras.layers.Dense(16, activation="relu"),
                             keras.layers.Dense(10)])


def _forms(x, y):
    forms = {"arrays": (x, y), "PyDataset read once": Batches(x, y, 50)}
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        forms["batched tf.data"] = tf.data.Dataset.from_tensor_slices((x, y)).batch(50)
    return forms


@pytest.mark.parametrize("n", [138, 600])
def test_the_same_rows_get_the_same_batch_and_budget_in_every_form(n):
    x, y = load_digits("train")
    x, y = x[:n].astype("float32"), y[:n]
    rows = {}
    for form, data in _forms(x, y).items():
        p = plan(mlp(), data, seed=0, verbose=0, audit=False, learning_rate=1e-3,
                 read_once=form == "PyDataset read once")
        minibatch = next(t for t in p.tips if t.name == "minibatch")
        budget = next(t for t in p.tips if t.name == "epoch budget")
        rows[form] = (p.options["batch_size"], budget.setting, p.data.n_train)
        assert minibatch.setting.startswith(f"batch_size={p.options['batch_size']} (")
    # The splits differ a little by form (stratified in memory, every 5th
    # streaming); the rule's input, the training examples, is each form's own.
    batches = {form: r[0] for form, r in rows.items()}
    assert len(set(batches.values())) == 1, rows
    assert batches["arrays"] == (16 if n == 138 else 32), rows
    # Read as model.fit reads it (the default), a PyDataset keeps its own
    # batches, and the row says so.
    p = plan(mlp(), Batches(x, y, 50), seed=0, verbose=0, audit=False, learning_rate=1e-3)
    minibatch = next(t for t in p.tips if t.name == "minibatch")
    assert minibatch.setting.startswith("batch_size=50 (")
    assert minibatch.reason.startswith("your PyDataset's batch size, kept; its batches are read "
                                       "anew every epoch")


class Augmenting(keras.utils.PyDataset):
    """A keras.io-style PyDataset that adds fresh noise to every read and
    reshuffles its batches at each epoch's end (what the README advises for
    data that changes every epoch). Counts its reads."""

    def __init__(self, x, y, size=50):
        super().__init__()
        self.x, self.y, self.size = x, y, size
        self.reads = self.ends = 0
        self.order = np.arange(len(x))

    def __len__(self):
        return -(-len(self.x) // self.size)

    def __getitem__(self, i):
        self.reads += 1
        rows = self.order[i * self.size:(i + 1) * self.size]
        noise = np.random.default_rng(self.reads).normal(0, 0.1, (len(rows), 64))
        return (self.x[rows] + noise).astype("float32"), self.y[rows]

    def on_epoch_end(self):
        self.ends += 1
        self.order = np.random.default_rng(self.ends).permutation(len(self.x))


def test_a_pydataset_is_read_anew_every_epoch_as_model_fit_reads_it():
    """Issue 38 item 3: on JAX and torch a PyDataset was read into memory
    once (its per-epoch augmentation frozen: 18 reads in 8 epochs against
    model.fit's 149). Its batches are now kept and read anew every epoch,
    on every backend; read_once=True is the named alternative."""
    from keras_recipes import fit_with_tips

    x, y = load_digits("train")
    data = Augmenting(x[:1000].astype("float32"), y[:1000])
    result = fit_with_tips(mlp(), data, epochs=3, seed=0, verbose=0)
    train_batches = result.data.steps_per_epoch
    assert train_batches == 16  # 20 batches, 4 held out whole for validation
    assert data.reads >= len(data) + 3 * train_batches
    assert data.ends == 2  # between the three epochs, as model.fit calls it
    assert "read anew every epoch" in result.data.split
    minibatch = next(t for t in result.tips if t.name == "minibatch")
    assert minibatch.setting == "batch_size=50 (16 steps per epoch)"
    assert "read anew every epoch, as model.fit reads them" in minibatch.reason

    once = Augmenting(x[:1000].astype("float32"), y[:1000])
    p = plan(mlp(), once, seed=0, verbose=0, read_once=True, audit=False, learning_rate=1e-3)
    assert once.reads == len(once)
    assert "stratified" in p.data.split


def endless(data):
    """A keras.io-style generator over a PyDataset's batches, epoch after
    epoch without end (what model.fit reads with steps_per_epoch)."""
    while True:
        for i in range(len(data)):
            yield data[i]
        data.on_epoch_end()


def test_a_generator_that_yields_more_is_read_anew_as_model_fit_reads_it():
    """Issue 38 item 3: a generator's first steps_per_epoch batches were read
    once and reshuffled, its fresh batches (augmentation) never read. Now,
    when it yields more, training reads fresh batches every step; its first
    batches give the statistics and the validation batches (held out whole)."""
    from keras_recipes import fit_with_tips

    x, y = load_digits("train")
    data = Augmenting(x[:1000].astype("float32"), y[:1000])
    result = fit_with_tips(mlp(), endless(data), steps_per_epoch=20, epochs=3, seed=0,
                           verbose=0)
    # steps_per_epoch fresh batches an epoch, as model.fit reads them; the 4
    # held out whole came from the first read.
    assert result.data.steps_per_epoch == 20
    assert result.data.split == ("held out 4 of its first 20 batches whole (seed 0); training "
                                 "reads fresh batches")
    # The first read, a peek past it, the calibration's 8 steps, then 20
    # fresh batches an epoch; the rate's row counts the calibration's.
    assert data.reads >= 20 + 1 + 8 + 3 * 20, data.reads
    assert "these 8 steps read 8 fresh batches from your generator" in next(
        t for t in result.tips if t.name == "learning rate").reason
    minibatch = next(t for t in result.tips if t.name == "minibatch")
    assert minibatch.setting == "batch_size=50 (20 steps per epoch)"
    assert minibatch.reason.startswith("your generator's batch size, kept; generator: read anew "
                                       "every epoch, as model.fit reads it (20 fresh batches")
    assert result.history["val_accuracy"][-1] > 0.5, result.history["val_accuracy"]
    # read_once=True: the first steps_per_epoch batches, and not one more.
    once = Augmenting(x[:1000].astype("float32"), y[:1000])
    p = plan(mlp(), endless(once), steps_per_epoch=20, seed=0, verbose=0, read_once=True,
             audit=False, learning_rate=1e-3)
    assert once.reads == 20
    assert "were read once and are reshuffled every epoch (read_once=True" in next(
        t for t in p.tips if t.name == "minibatch").reason


def test_a_generator_that_ends_is_read_once_and_one_that_ends_later_warns():
    from keras_recipes import fit_with_tips

    x, y = load_digits("train")
    x = x.astype("float32")
    batches = [(x[i:i + 50], y[i:i + 50]) for i in range(0, 1000, 50)]
    p = plan(mlp(), iter(batches), steps_per_epoch=20, seed=0, verbose=0, audit=False,
             learning_rate=1e-3)
    minibatch = next(t for t in p.tips if t.name == "minibatch")
    assert minibatch.reason.endswith("generator: it ended after 20 batches (steps_per_epoch), so "
                                     "they were read once and are reshuffled every epoch")
    assert "of each class" in p.data.split or "stratified" in p.data.split  # split by example
    # 40 batches for 20 a step: it ends in the second epoch; the later
    # steps reread its first batches, and a warning says when.
    with pytest.warns(RuntimeWarning, match=r"The generator ended after 40 batches, in "
                                             r"training: the later steps reread"):
        result = fit_with_tips(mlp(), iter(batches + batches), steps_per_epoch=20, epochs=4,
                               seed=0, verbose=0, learning_rate=1e-3)
    assert len(result.history["loss"]) == 4


@pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                    reason="image_dataset_from_directory yields tf.data (TensorFlow)")
def test_image_dataset_from_directory_of_mnist_pngs(tmp_path):
    """Issue 38 item 2: the datasets Keras' utilities make. 400 MNIST test
    images written as PNGs into one folder per class, read back by
    keras.utils.image_dataset_from_directory (batched float32 images)."""
    import gzip

    import tensorflow as tf

    from conftest import shared_data
    from keras_recipes import fit_with_tips

    folder = shared_data("mnist_test")
    with gzip.open(folder / "t10k-images-idx3-ubyte.gz") as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28, 1)[:400]
    with gzip.open(folder / "t10k-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)[:400]
    for i, (image, label) in enumerate(zip(images, labels)):
        path = tmp_path / "digits" / str(label)
        path.mkdir(parents=True, exist_ok=True)
        tf.io.write_file(str(path / f"{i}.png"), tf.io.encode_png(image))
    read = dict(color_mode="grayscale", image_size=(28, 28), batch_size=32, seed=0)
    # Its default reshuffles on every pass: a split taken from it would
    # overlap training, so it is refused with what to do (model.fit refuses
    # validation_split for any dataset).
    with pytest.raises(ValueError, match="different order on each pass.*validation_data="):
        plan(mlp(), keras.utils.image_dataset_from_directory(str(tmp_path / "digits"), **read),
             verbose=0)
    # keras.io's pattern: the utility's own split, validation_data= given.
    train, validation = keras.utils.image_dataset_from_directory(
        str(tmp_path / "digits"), validation_split=0.2, subset="both", **read)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Conv2D(8, 3, activation="relu"),
                              keras.layers.MaxPooling2D(), keras.layers.Flatten(),
                              keras.layers.Dense(10)])
    result = fit_with_tips(model, train, validation_data=validation, epochs=8, seed=0, verbose=0)
    assert result.data.n_train + result.data.n_validation == 400
    row = next(t for t in result.tips if t.name == "inputs")
    assert row.setting == "zero mean, unit variance over 1 channels" and "per channel" in row.reason
    # 320 training images, 8 epochs: it learned (chance 0.1).
    assert max(result.history["val_accuracy"]) > 0.6, result.history


@pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                    reason="timeseries_dataset_from_array yields tf.data (TensorFlow)")
def test_timeseries_dataset_from_array_is_read_as_model_fit_reads_it():
    """Issue 38 item 2: Keras' windowing utility (elements (None, None, 10):
    the window length is not in the spec) crashed in tip 1's planning. The
    rows of scikit-learn's diabetes table, read in order as a 10-feature
    series, windows of 5 predicting the next target."""
    from sklearn.datasets import load_diabetes

    x, y = load_diabetes(return_X_y=True)
    series, target = x.astype("float32"), y.astype("float32")
    dataset = keras.utils.timeseries_dataset_from_array(series, target[5:], sequence_length=5,
                                                        batch_size=16)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((5, 10)), keras.layers.LSTM(8), keras.layers.Dense(1)])
    p = plan(model, dataset, epochs=1, seed=0, verbose=0, audit=False, learning_rate=1e-3)
    assert p.data.n_train + p.data.n_validation == len(series) - 5
    assert p.data.x_shape[-1] == 10  # (None, 10): the spec does not hold the window length
    inputs = next(t for t in p.tips if t.name == "inputs")
    # scikit-learn's scaled columns share one range: one mean/std, with the evidence.
    assert inputs.setting == "zero mean, unit variance over all values (one mean/std)", inputs
    assert "the 10 varying columns share one range" in inputs.reason
    loss = next(t for t in p.tips if t.name == "loss")
    assert loss.setting == "mean_squared_error"
    # The metric the recipe compiles alongside is named in the row.
    assert "metrics: r2_score (compile the model for your own)" in loss.reason, loss.reason


def test_a_live_pydataset_is_shuffled_by_batch_as_model_fit_shuffles_it():
    """model.fit(shuffle=True) reads a PyDataset's batches in a new order every
    epoch; so does the live path, seeded by (seed, epoch); shuffle=False keeps
    the order."""
    from keras_recipes.data import make_data

    x, y = load_digits("train")
    source = Batches(x[:1000].astype("float32"), y[:1000], 50)
    data = make_data(source, seed=0, shuffle_seed=0)
    train_idx = data.live[1]
    orders = []
    for shuffle in (True, False):
        train, _ = data.fit_inputs(0, 2, shuffle, None)
        firsts = [np.asarray(train[i][1]) for i in range(len(train))]
        # Which of the user's batches each step read, by its labels.
        read = [next(j for j in train_idx if np.array_equal(y[j * 50:(j + 1) * 50], f))
                for f in firsts]
        orders.append(read)
    shuffled, kept = orders
    steps = len(train_idx)
    assert sorted(shuffled[:steps]) == sorted(train_idx) == sorted(shuffled[steps:])
    assert shuffled[:steps] != shuffled[steps:] and shuffled[:steps] != train_idx
    assert kept == train_idx * 2


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="tf.data (TensorFlow)")
def test_dict_features_batched_with_drop_remainder_are_read_as_batched():
    """Issue 38: a dict-feature dataset batched with drop_remainder=True has
    no unknown leading axis, and was read as unbatched ("expected shape=(None,
    32), found shape=(8, 50, 32)"). Each named input's rank tells now."""
    import tensorflow as tf

    x, y = load_digits("train")
    x, y = x[:600].astype("float32"), y[:600]
    a, b = keras.Input((32,), name="a"), keras.Input((32,), name="b")
    keras.utils.set_random_seed(0)
    hidden = keras.layers.Dense(16, activation="relu")(keras.layers.Concatenate()([a, b]))
    model = keras.Model({"a": a, "b": b}, keras.layers.Dense(10)(hidden))
    dataset = tf.data.Dataset.from_tensor_slices(({"a": x[:, :32], "b": x[:, 32:]}, y)).batch(
        50, drop_remainder=True)
    p = plan(model, dataset, seed=0, verbose=0, audit=False, learning_rate=0.01)
    assert p.data.n_train + p.data.n_validation == 600
    assert p.data.x_shape == {"a": (32,), "b": (32,)}


def test_too_few_batches_to_hold_out_whole_is_refused_by_name():
    x, y = load_digits("train")
    one = Batches(x[:50].astype("float32"), y[:50], 50)
    with pytest.raises(ValueError, match=r"too few batches \(1\) to hold out 0.2 of them whole.*"
                                         r"validation_data=.*Received: 1 batches"):
        plan(mlp(), one, verbose=0)


def test_a_fused_ensemble_with_class_weight_on_a_pydataset_trains():
    """Fused members read a PyDataset once, and weighed each batch by its
    class ids through `data.core.class_ids(y)`, which a second function of
    the same name (the split's, taking label statistics too) shadowed: a
    TypeError ("missing 1 required positional argument: 'stats'")."""
    from keras_recipes import fit_ensemble

    x, y = load_digits("train")
    weights = {c: 3.0 if c == 3 else 1.0 for c in range(10)}
    result = fit_ensemble(mlp, Batches(x[:600].astype("float32"), y[:600], 50), members=2,
                          epochs=2, seed=0, verbose=0, class_weight=weights)
    assert len(result.member_scores) == 2


@pytest.mark.parametrize("form", ["arrays", "pydataset"])
def test_validation_arrays_keep_dict_labels_and_inputs(form):
    """The validation rows as arrays (what the recipe scores and the JAX check
    evaluates) for a model with named inputs and outputs: dicts stay dicts,
    row for row (np.concatenate of dicts failed here)."""
    x, y = load_digits("train")
    x, y = x[:300], y[:300]
    inputs = {"l": keras.Input((32,), name="l"), "r": keras.Input((32,), name="r")}
    hidden = keras.layers.Dense(8)(keras.layers.Concatenate()([inputs["l"], inputs["r"]]))
    model = keras.Model(inputs, {"a": keras.layers.Dense(10, name="a")(hidden),
                                 "b": keras.layers.Dense(10, name="b")(hidden)})
    features, labels = {"l": x[:, :32], "r": x[:, 32:]}, {"a": y, "b": 9 - y}

    class Rows(keras.utils.PyDataset):
        def __len__(self):
            return 3

        def __getitem__(self, i):
            part = slice(100 * i, 100 * (i + 1))
            return ({k: v[part] for k, v in features.items()},
                    {k: v[part] for k, v in labels.items()})

    data = (features, labels) if form == "arrays" else Rows()
    p = plan(model, data, seed=0, verbose=0, epochs=1, learning_rate=1e-3, audit=False,
             preprocess=False)  # the rows as given, to find them in x
    xv, yv = p.data.validation_arrays()
    assert set(xv) == {"l", "r"} and set(yv) == {"a", "b"}
    n = p.data.n_validation
    assert xv["l"].shape == (n, 32) and yv["a"].shape == (n,)
    # Rows stay together: the "b" label is 9 - "a" on every row, and each
    # row's features are a digit's pixels (left and right halves of one row).
    np.testing.assert_array_equal(yv["b"], 9 - yv["a"])
    rows = {tuple(r) for r in x}
    assert all(tuple(np.concatenate([a, b])) in rows for a, b in zip(xv["l"], xv["r"]))


@pytest.mark.parametrize("shape", [(300, 4000), (100, 64, 64, 3)])
def test_feature_statistics_of_a_wide_array_in_blocks_equal_numpys(shape):
    """The statistics are gathered in blocks of about 2**20 values (no
    whole-array float64 temporaries): the same numbers as numpy's over the
    whole array, per column of the view, log10(1 + x) included."""
    from keras_recipes.data.stats import array_feature_stats

    rng = np.random.default_rng(0)
    x = (rng.lognormal(0, 2, size=shape) * (rng.random(shape) > 0.3)).astype("float32")
    x.reshape(-1)[:5] = [-1.0, 0.0, 1e-7, 3e4, 2.5]  # below zero, zero, tiny, large
    stats = array_feature_stats(x)
    columns = x.reshape(len(x), -1) if len(shape) == 2 else x.reshape(-1, shape[-1])
    columns = columns.astype("float64")
    if stats.axis == "global":
        columns = columns.reshape(-1, 1)
    assert x.size > 1 << 20 and stats.count == len(x)
    np.testing.assert_allclose(stats.mean, columns.mean(0), rtol=1e-9)
    np.testing.assert_allclose(stats.std, columns.std(0), rtol=1e-7)
    np.testing.assert_array_equal(stats.min, columns.min(0))
    np.testing.assert_array_equal(stats.max, columns.max(0))
    logs = np.log10(1.0 + np.maximum(columns, 0.0))
    np.testing.assert_allclose(stats.log_mean, logs.mean(0), rtol=1e-9)
    np.testing.assert_allclose(stats.log_std, logs.std(0), rtol=1e-7)
