"""Issue 38, item 7: model.fit's own signature. `fit_with_tips(model, x, y)`,
`x=`/`y=`, `validation_freq` and `initial_epoch` keep model.fit's meaning
(decisions through `plan(...)`; one short run each where the fit is the point)."""

import keras
import numpy as np
import pytest

from keras_recipes import fit_with_tips
from keras_recipes import plan
from keras_recipes.datasets import load_digits


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits("train")
    return x[:600], y[:600]


def mlp():
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((64,)), keras.layers.Dense(16, activation="relu"),
                             keras.layers.Dense(10)])


def fingerprint(p):
    return p.fingerprint()


def test_x_y_as_model_fit_takes_them_plan_the_same(digits):
    x, y = digits
    pair = plan(mlp(), (x, y), seed=0, verbose=0)
    assert fingerprint(plan(mlp(), x, y, seed=0, verbose=0)) == fingerprint(pair)
    assert fingerprint(plan(mlp(), x=x, y=y, seed=0, verbose=0)) == fingerprint(pair)


@pytest.mark.parametrize("call,match", [
    (lambda x, y: plan(mlp(), (x, y), y), r"`y` goes with array-like inputs only.*tuple"),
    (lambda x, y: plan(mlp(), "digits", y), r"Received: y with data of type str"),
    (lambda x, y: plan(mlp(), x, x=x), r"as `data` .* or as `x=`"),
    (lambda x, y: plan(mlp()), r"Received: data=None"),
    (lambda x, y: plan(mlp(), x, y, validation_freq=0), r"Received: validation_freq=0"),
    (lambda x, y: plan(mlp(), x, y, initial_epoch=-1), r"Received: initial_epoch=-1"),
    (lambda x, y: plan(mlp(), x, y, initial_epoch=5, epochs=5),
     r"Received: initial_epoch=5, epochs=5"),
])
def test_bad_fit_arguments_are_refused_by_name(digits, call, match):
    with pytest.raises((TypeError, ValueError), match=match):
        call(*digits)


def test_validation_freq_and_initial_epoch_mean_what_model_fit_means(digits):
    x, y = digits
    p = plan(mlp(), x, y, seed=0, verbose=0, epochs=8, initial_epoch=2, validation_freq=2)
    rows = {t.name: t for t in p.tips}
    assert rows["validation"].setting == "every 2 epochs"
    assert "initial_epoch=2" in rows["epoch budget"].reason
    result = p.fit()
    # Epochs 2..7 ran (six); validation on epochs 2, 4, 6, 8 in model.fit's
    # 1-based count: three of the six.
    assert len(result.history["loss"]) == 6
    assert len(result.history["val_loss"]) == 3
    auto = plan(mlp(), x, y, seed=0, verbose=0, initial_epoch=3)
    budget = plan(mlp(), x, y, seed=0, verbose=0).options["epochs"]
    assert auto.options["epochs"] == budget + 3  # the budget counts the epochs that run


@pytest.mark.parametrize("form", ["int", "float", "column", "onehot"])
def test_class_labels_are_split_stratified_whatever_their_dtype(form):
    """Issue 38: float 0/1 labels (as pandas gives them) got a random split
    while the table said "stratified"; the positive class in validation
    moved 3..9 over seeds where stratified gives the same count each time."""
    from sklearn.datasets import load_breast_cancer

    from keras_recipes.data.split import split_arrays

    x, y = load_breast_cancer(return_X_y=True)
    labels = {"int": y, "float": y.astype("float64"), "column": y.astype("float32")[:, None],
              "onehot": np.eye(2)[y]}[form]
    counts = set()
    for seed in range(6):
        _, (xv, yv, _), split = split_arrays(x, labels, None, 0.2, seed)
        assert "stratified" in split
        yv = np.asarray(yv)
        counts.add(int((yv.argmax(-1) if form == "onehot" else yv.reshape(-1)).sum()))
    # 357 benign (1) of 569: a fifth is 71 in validation on every seed.
    assert counts == {71}


def test_a_sigmoid_head_with_one_hot_labels_gets_binary_cross_entropy(digits):
    """Issue 38: categorical cross-entropy read the sigmoid head's rows, which
    do not sum to 1, as a distribution (exact-match accuracy 0.34 against
    0.82 with binary cross-entropy in the issue's program)."""
    x, y = digits
    keras.utils.set_random_seed(0)
    sigmoid = keras.Sequential([keras.Input((64,)), keras.layers.Dense(16, activation="relu"),
                                keras.layers.Dense(10, activation="sigmoid")])
    p = plan(sigmoid, x, np.eye(10)[y], seed=0, verbose=0)
    row = next(t for t in p.tips if t.name == "loss")
    assert row.setting == "binary_crossentropy" and "do not sum to 1" in row.reason
    keras.utils.set_random_seed(0)
    softmax = keras.Sequential([keras.Input((64,)), keras.layers.Dense(16, activation="relu"),
                                keras.layers.Dense(10, activation="softmax")])
    p = plan(softmax, x, np.eye(10)[y], seed=0, verbose=0)
    assert next(t for t in p.tips if t.name == "loss").setting == "categorical_crossentropy"


@pytest.mark.parametrize("augment", [None, "image"])
def test_the_models_own_augmentation_is_evidence(digits, augment):
    """Issue 38: augment='image' stacked a second augmentation on a model
    holding RandomRotation and RandomTranslation, and no row said so."""
    x, y = digits
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.RandomRotation(0.05),
                              keras.layers.RandomTranslation(0.1, 0.1), keras.layers.Flatten(),
                              keras.layers.Dense(10)])
    p = plan(model, x.reshape(-1, 8, 8, 1), y, seed=0, verbose=0, augment=augment)
    row = next(t for t in p.tips if t.name == "augmentation")
    assert "RandomRotation" in row.reason and "RandomTranslation" in row.reason
    if augment is None:
        assert row.setting == "the model's own" and not p.decisions.augment
    else:
        assert "BOTH are on" in row.reason and p.decisions.augment
