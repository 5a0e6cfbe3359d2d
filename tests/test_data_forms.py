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
    forms = {"arrays": (x, y), "PyDataset": Batches(x, y, 50)}
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
        p = plan(mlp(), data, seed=0, verbose=0, audit=False, learning_rate=1e-3)
        minibatch = next(t for t in p.tips if t.name == "minibatch")
        budget = next(t for t in p.tips if t.name == "epoch budget")
        rows[form] = (p.options["batch_size"], budget.setting, p.data.n_train)
        assert minibatch.setting.startswith(f"batch_size={p.options['batch_size']} (")
    # The splits differ a little by form (stratified in memory, every 5th
    # streaming); the rule's input, the training examples, is each form's own.
    batches = {form: r[0] for form, r in rows.items()}
    assert len(set(batches.values())) == 1, rows
    assert batches["arrays"] == (16 if n == 138 else 64), rows
