"""The `keras-recipes` command line.

    keras-recipes train [--dataset digits] [--model mlp] [--epochs 60]
                        [--batch_size 128] [--output model.keras]
                        [--jit_compile auto] [--seed 0] [--data_dir DIR]

`train` runs fit_with_tips on the dataset's train split, prints the tips
table, Keras' progress and a summary, then evaluates on the dataset's fixed
test split and prints, as its last line, `test_accuracy: 0.xxxx`.
"""

import sys

from absl import app
from absl import flags

COMMANDS = ("train",)

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


def main(argv):
    if len(argv) < 2 or argv[1] not in COMMANDS:
        raise app.UsageError(_usage() + (f"\nReceived: {argv[1:]}" if len(argv) > 1 else ""))
    if len(argv) > 2:
        raise app.UsageError(f"Unexpected arguments. Received: {argv[2:]}")
    {"train": train}[argv[1]]()


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
