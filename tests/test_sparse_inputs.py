"""Issue 38 item 4: sparse inputs, as model.fit takes them. A scipy.sparse
matrix (or, on TensorFlow, a tf.SparseTensor) was read with np.asarray into
an object array and told to "encode text columns". Now it passes through:
kept sparse from the split to the batches Keras feeds (a tf.SparseTensor on
TensorFlow, scipy rows that Keras' adapter turns into a sparse array on JAX;
torch's adapter, like Keras' own fit there, gets dense batches), with no
statistics (centering would fill in every zero) and a row that says so.
Data: the embedded UCI digits as a CSR matrix (about half the pixels are 0).
"""

import keras
import numpy as np
import pytest
import scipy.sparse

from keras_recipes import fit_with_tips
from keras_recipes import plan
from keras_recipes.data.checks import SPARSE_EVIDENCE
from keras_recipes.data.nests import is_sparse
from keras_recipes.datasets import load_digits

SPARSE_INPUTS = keras.backend.backend() != "torch"  # Keras refuses Input(sparse=True) on torch


def digits_csr(n=900):
    x, y = load_digits("train")
    return scipy.sparse.csr_matrix(x[:n].astype("float32")), y[:n]


def model(sparse):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((64,), sparse=sparse)
    hidden = keras.layers.Dense(32, activation="relu")(inputs)
    return keras.Model(inputs, keras.layers.Dense(10)(hidden))


def inputs_row(p):
    return next(t for t in p.tips if t.name == "inputs")


@pytest.mark.parametrize("sparse_input", [True, False] if SPARSE_INPUTS else [False])
def test_a_sparse_matrix_passes_through_sparse(sparse_input):
    x, y = digits_csr()
    p = plan(model(sparse_input), (x, y), seed=0, verbose=0, audit=False, learning_rate=0.01)
    row = inputs_row(p)
    assert (row.setting, row.reason) == ("passed through", SPARSE_EVIDENCE)
    assert row.override == "x.toarray() to have it standardized"
    assert p.data.x_spec.dtype == "sparse" and p.data.x_shape == (64,)
    assert "stratified" in p.data.split or "of each class" in p.data.split
    train, _ = p.data.fit_inputs(0, 1, True, None)
    first = next(iter(train)) if hasattr(train, "element_spec") else train[0]
    # Sparse where Keras feeds sparse batches; torch's adapter takes dense ones.
    assert is_sparse(first[0]) is (keras.backend.backend() != "torch"), type(first[0])


def test_bad_sparse_values_and_lengths_are_refused_by_name():
    x, y = digits_csr(100)
    bad = x.copy()
    bad.data[3] = np.nan
    with pytest.raises(ValueError, match=r"`data` x holds 1 NaN/Inf values.*Received: x with 1 "):
        plan(model(False), (bad, y), verbose=0)
    with pytest.raises(ValueError, match=r"(same number of examples|one row per example).*"
                                         r"Received: .*\b99\b"):
        plan(model(False), (x, y[:99]), verbose=0)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="tf.SparseTensor: TensorFlow")
def test_a_tf_sparse_tensor_passes_through_as_well():
    import tensorflow as tf

    x, y = digits_csr(300)
    coo = x.tocoo()
    tensor = tf.sparse.reorder(tf.SparseTensor(np.stack([coo.row, coo.col], 1).astype("int64"),
                                               coo.data, coo.shape))
    p = plan(model(True), (tensor, y), seed=0, verbose=0, learning_rate=0.01)
    assert inputs_row(p).setting == "passed through"
    audit = next(t for t in p.tips if t.name == "audit")
    assert audit.reason.endswith("this model's input is sparse, passed through as given")
    assert p.data.n_train + p.data.n_validation == 300


@pytest.mark.slow
def test_sparse_digits_match_the_dense_form_and_fit_ensemble_takes_them():
    """The same rows, sparse (passed through, fed sparse) or dense (left alone
    too: preprocess=False), both train (on TensorFlow the sparse form is split
    streaming, every 5th example of each class, the dense one at random, so the
    validation sets differ); an ensemble of two members takes the sparse form
    (its stacked members get dense rows)."""
    from keras_recipes import fit_ensemble

    x, y = digits_csr()
    sparse = fit_with_tips(model(SPARSE_INPUTS), (x, y), seed=0, verbose=0, epochs=8)
    dense = fit_with_tips(model(False), (x.toarray(), y), seed=0, verbose=0, epochs=8,
                          preprocess=False)
    best = [max(r.history["val_accuracy"]) for r in (sparse, dense)]
    assert min(best) > 0.9, best
    ensemble = fit_ensemble(lambda: model(False), (x, y), members=2, seed=0, verbose=0, epochs=2)
    assert len(ensemble.member_scores) == 2
