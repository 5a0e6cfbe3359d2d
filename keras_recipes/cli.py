"""The `keras-recipes` command line.

    keras-recipes train [--dataset digits] [--model mlp] [--epochs 60]
                        [--batch_size 128] [--output model.keras]
                        [--jit_compile auto] [--seed 0] [--data_dir DIR]
    keras-recipes audit --keras_file model.keras --npz data.npz [--json]

`train` runs fit_with_tips on the dataset's train split, prints the tips
table, Keras' progress and a summary, then evaluates on the dataset's fixed
test split and prints, as its last line, `test_accuracy: 0.xxxx`.

`audit` loads a saved model (import keras_recipes first is done for you) and
an .npz holding arrays `x` and `y` (and optionally `x_val`, `y_val`), and
prints the audit report card; it exits with status 1 when a rule fails.
"""

import sys

from absl import app
from absl import flags

COMMANDS = ("train", "audit")

FLAGS = flags.FLAGS
flags.DEFINE_string("dataset", "digits",
                    "'digits' (embedded, offline) or a prepared TFDS name such as 'mnist'.")
flags.DEFINE_enum("model", "mlp", ["mlp", "cnn"], "Model preset: a small MLP or CNN.")
flags.DEFINE_integer("epochs", 60, "Upper bound on epochs (the stopping rule usually ends earlier).",
                     lower_bound=1)
flags.DEFINE_integer("batch_size", 128, "Minibatch size.", lower_bound=1)
flags.DEFINE_string("output", None, "Where to save the trained model (.keras), preprocessing included.")
flags.DEFINE_enum("jit_compile", "auto", ["auto", "true", "false"],
                  "XLA: 'auto' measures on CPU and uses it on GPU/TPU.")
flags.DEFINE_integer("seed", 0, "Seed for the split, initialization and shuffling.")
flags.DEFINE_string("data_dir", None, "TFDS data directory for named datasets.")
flags.DEFINE_enum("verbose", "2", ["0", "1", "2"], "Keras verbosity (2: one line per epoch).")
flags.DEFINE_string("keras_file", None, "audit: the saved .keras model.")
flags.DEFINE_string("npz", None, "audit: an .npz with arrays x and y (optionally x_val, y_val).")
flags.DEFINE_boolean("json", False, "audit: print the report as JSON.")


def _usage():
    return (f"usage: keras-recipes COMMAND [flags]\ncommands: {', '.join(COMMANDS)}\n"
            "Run `keras-recipes --helpfull` for every flag.")


def train():
    import keras
    import numpy as np

    from keras_recipes import fit_with_tips
    from keras_recipes.data import load_named
    from keras_recipes.models import preset

    if FLAGS.output and not FLAGS.output.endswith(".keras"):
        raise app.UsageError(f"--output must end in .keras. Received: --output={FLAGS.output}")
    test = load_named(FLAGS.dataset, FLAGS.data_dir, split="test")
    x_spec, y_spec = test.element_spec
    # Number of classes from the train split's labels is found by fit; the
    # preset needs it up front, so read it from the test split and TFDS info.
    labels = np.concatenate([y for _, y in test.batch(4096).as_numpy_iterator()])
    num_classes = int(labels.max()) + 1
    train_ds = load_named(FLAGS.dataset, FLAGS.data_dir, split="train")
    train_max = int(train_ds.map(lambda x, y: y).reduce(np.int64(0),
                    lambda a, b: keras.ops.maximum(a, keras.ops.cast(b, "int64"))))
    num_classes = max(num_classes, train_max + 1)
    model = preset(FLAGS.model, tuple(x_spec.shape), num_classes)
    jit = {"auto": "auto", "true": True, "false": False}[FLAGS.jit_compile]
    result = fit_with_tips(model, FLAGS.dataset, epochs=FLAGS.epochs, batch_size=FLAGS.batch_size,
                           jit_compile=jit, seed=FLAGS.seed, verbose=int(FLAGS.verbose),
                           data_dir=FLAGS.data_dir)
    print(result)
    if FLAGS.output:
        result.model.save(FLAGS.output)
        print(f"saved: {FLAGS.output}")
    correct = total = 0
    for x, y in test.batch(512).as_numpy_iterator():
        pred = result.model.predict(x, verbose=0).argmax(-1)
        correct += int((pred == y).sum())
        total += len(y)
    print(f"test_accuracy: {correct / total:.4f}")


def audit():
    import keras
    import numpy as np

    import keras_recipes  # noqa: F401  (registers the package's objects for loading)
    from keras_recipes.diagnostics.audit import audit as run_audit
    from keras_recipes.diagnostics.audit import report_json

    if not FLAGS.keras_file or not FLAGS.npz:
        raise app.UsageError("audit needs --keras_file and --npz. "
                             f"Received: --keras_file={FLAGS.keras_file} --npz={FLAGS.npz}")
    try:
        model = keras.saving.load_model(FLAGS.keras_file)
    except Exception as error:
        raise app.UsageError(f"Cannot load the model: {error}. Received: --keras_file={FLAGS.keras_file}")
    try:
        arrays = np.load(FLAGS.npz)
        x, y = arrays["x"], arrays["y"]
    except Exception as error:
        raise app.UsageError(f"Cannot read arrays x and y from the npz: {error}. "
                             f"Received: --npz={FLAGS.npz}")
    validation = (arrays["x_val"], arrays["y_val"]) if "x_val" in arrays else None
    report = run_audit(model, (x, y), batch_size=FLAGS.batch_size, validation_data=validation)
    print(report_json(report) if FLAGS.json else report)
    if not report.ok:
        sys.exit(1)


def main(argv):
    if len(argv) < 2 or argv[1] not in COMMANDS:
        raise app.UsageError(_usage() + (f"\nReceived: {argv[1:]}" if len(argv) > 1 else ""))
    if len(argv) > 2:
        raise app.UsageError(f"Unexpected arguments. Received: {argv[2:]}")
    {"train": train, "audit": audit}[argv[1]]()


def _help():
    return __doc__ + "\nflags:\n" + FLAGS.module_help(sys.modules[__name__])


def run(argv=None):
    argv = list(sys.argv if argv is None else argv)
    if any(a in ("-h", "--help", "help") for a in argv[1:]):
        print(_help())
        return
    app.run(main, argv=argv)


if __name__ == "__main__":
    run()
