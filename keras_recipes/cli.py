"""The `keras-recipes` commands (the flags, help and errors are in the
light top-level module `keras_recipes_cli`, which imports this one only when
a command runs).

    keras-recipes train [--dataset digits] [--model mlp] [--epochs 60]
                        [--batch_size N] [--output model.keras] [--plot out.png]
                        [--jit_compile auto] [--seed 0] [--data_dir DIR]
    keras-recipes audit --keras_file model.keras --npz data.npz [--json]

`train` runs fit_with_tips on the dataset's train split, prints the tips
table, Keras' progress and a summary, then evaluates on the dataset's fixed
test split and prints, as its last line, `test_accuracy: 0.xxxx`.

`audit` loads a saved model (import keras_recipes first is done for you) and
an .npz holding arrays `x` and `y` (and optionally `x_val`, `y_val`), and
prints the audit report card; it exits with status 1 when a rule fails.
"""

import re

import keras
import numpy as np

from keras_recipes.data import load_named
from keras_recipes.diagnostics.audit import audit as run_audit
from keras_recipes.diagnostics.audit import report_json
from keras_recipes.fit import fit_with_tips
from keras_recipes.models import preset


class UsageError(Exception):
    """A bad flag value: `keras_recipes_cli` prints it as one line naming
    the flag, and exits with status 2."""


def _flag_names(message):
    """Python argument names in a message, as the command's flags."""
    return re.sub(r"`?\b(data_dir|batch_size|epochs|seed|jit_compile)=`?", r"--\1=", message)


def train(FLAGS):
    if FLAGS.output and not FLAGS.output.endswith(".keras"):
        raise UsageError(f"--output must end in .keras. Received: --output={FLAGS.output}")
    if FLAGS.plot and not FLAGS.plot.lower().endswith((".png", ".pdf", ".svg")):
        raise UsageError(f"--plot must end in .png, .pdf or .svg. Received: --plot={FLAGS.plot}")
    try:
        test = load_named(FLAGS.dataset, FLAGS.data_dir, split="test")
    except (ValueError, TypeError) as error:
        raise UsageError(_flag_names(str(error)).replace("Received: data=", "Received: --dataset="))
    x_spec, y_spec = test.element_spec
    # The preset needs the number of classes up front: the largest label of
    # either split.
    labels = np.concatenate([y for _, y in test.batch(4096).as_numpy_iterator()])
    num_classes = int(labels.max()) + 1
    train_ds = load_named(FLAGS.dataset, FLAGS.data_dir, split="train")
    train_max = int(train_ds.map(lambda x, y: y).reduce(np.int64(0),
                    lambda a, b: keras.ops.maximum(a, keras.ops.cast(b, "int64"))))
    num_classes = max(num_classes, train_max + 1)
    model = preset(FLAGS.model, tuple(x_spec.shape), num_classes)
    jit = {"auto": "auto", "true": True, "false": False}[FLAGS.jit_compile]
    verbose = "auto" if FLAGS.verbose == "auto" else int(FLAGS.verbose)
    try:
        result = fit_with_tips(model, FLAGS.dataset, epochs=FLAGS.epochs,
                               batch_size=FLAGS.batch_size or "auto", jit_compile=jit,
                               seed=FLAGS.seed,
                               verbose=verbose, data_dir=FLAGS.data_dir)
    except (ValueError, TypeError) as error:
        raise UsageError(_flag_names(str(error)))
    print(result.summary() if getattr(result, "table_shown", False) else result)
    if FLAGS.output:
        result.model.save(FLAGS.output)
        print(f"saved: {FLAGS.output}")
    if FLAGS.plot:
        result.plot(FLAGS.plot)
        print(f"plot: {FLAGS.plot}")
    correct = total = 0
    for x, y in test.batch(512).as_numpy_iterator():
        pred = result.model.predict(x, verbose=0).argmax(-1)
        correct += int((pred == y).sum())
        total += len(y)
    print(f"test_accuracy: {correct / total:.4f}")
    return 0


def audit(FLAGS):
    if not FLAGS.keras_file or not FLAGS.npz:
        raise UsageError("audit needs --keras_file and --npz. "
                         f"Received: --keras_file={FLAGS.keras_file} --npz={FLAGS.npz}")
    try:
        model = keras.saving.load_model(FLAGS.keras_file)
    except Exception as error:
        raise UsageError(f"Cannot load the model: {' '.join(str(error).split())[:300]}. "
                         f"Received: --keras_file={FLAGS.keras_file}") from None
    try:
        arrays = np.load(FLAGS.npz)
        x, y = arrays["x"], arrays["y"]
    except Exception as error:
        raise UsageError(f"Cannot read arrays x and y from the npz: {error}. "
                         f"Received: --npz={FLAGS.npz}") from None
    validation = (arrays["x_val"], arrays["y_val"]) if "x_val" in arrays else None
    report = run_audit(model, (x, y), batch_size=FLAGS.batch_size or 128,
                       validation_data=validation)
    print(report_json(report) if FLAGS.json else report)
    return 0 if report.ok else 1
