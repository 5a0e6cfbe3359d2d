"""The `keras-recipes` command line: flags, help and errors.

Kept out of the `keras_recipes` package on purpose: importing the package
imports Keras and TensorFlow (seconds, and a screenful of start-up logs),
which `--help` and a mistyped flag never need. TensorFlow is imported only
when a command runs, with its start-up logs off unless `--verbosity` is given.
"""

import os
import sys

from absl import flags

USAGE = "usage: keras-recipes COMMAND [flags]"
COMMANDS = {
    "train": ("Train a preset model on a dataset with fit_with_tips; the last line printed is "
              "`test_accuracy: 0.xxxx` on the dataset's test split.",
              ["dataset", "model", "epochs", "batch_size", "output", "plot", "jit_compile",
               "seed", "data_dir", "verbose", "verbosity"]),
    "audit": ("Audit a saved .keras model on the arrays of an .npz file (exit status 1 when a "
              "rule fails).", ["keras_file", "npz", "batch_size", "json", "verbosity"]),
}

FLAGS = flags.FlagValues()
flags.DEFINE_string("dataset", "digits",
                    "'digits' (embedded, offline) or a prepared TFDS name such as 'mnist'.",
                    flag_values=FLAGS)
flags.DEFINE_enum("model", "mlp", ["mlp", "cnn"], "Model preset: a small MLP or CNN.",
                  flag_values=FLAGS)
flags.DEFINE_integer("epochs", 60, "Upper bound on epochs (the stopping rule usually ends "
                     "earlier).", lower_bound=1, flag_values=FLAGS)
flags.DEFINE_integer("batch_size", None, "Minibatch size. train: fit_with_tips' own choice "
                     "when not given (32, smaller on small data; 128 is tip 2's letter); audit: "
                     "the batch you plan to use, 128 when not given.", lower_bound=1,
                     flag_values=FLAGS)
flags.DEFINE_string("output", None, "Where to save the trained model (.keras), preprocessing "
                    "included.", flag_values=FLAGS)
flags.DEFINE_string("plot", None, "Where to save the training plot (.png): losses with the "
                    "best epoch, LR drops, update/weight ratio.", flag_values=FLAGS)
flags.DEFINE_enum("jit_compile", "auto", ["auto", "true", "false"],
                  "XLA: 'auto' measures on CPU (a fixed rule with a seed) and uses it on "
                  "GPU/TPU.", flag_values=FLAGS)
flags.DEFINE_integer("seed", 0, "Seed for the split, initialization and shuffling.",
                     flag_values=FLAGS)
flags.DEFINE_string("data_dir", None, "TFDS data directory for named datasets.",
                    flag_values=FLAGS)
flags.DEFINE_enum("verbose", "auto", ["auto", "0", "1", "2"],
                  "Keras verbosity; auto: a progress bar on a terminal, one line per epoch "
                  "in a log.", flag_values=FLAGS)
flags.DEFINE_integer("verbosity", None, "Show TensorFlow's and absl's start-up and INFO logs "
                     "(0 = INFO). Off by default.", flag_values=FLAGS)
flags.DEFINE_string("keras_file", None, "The saved .keras model.", flag_values=FLAGS)
flags.DEFINE_string("npz", None, "An .npz with arrays x and y (optionally x_val, y_val).",
                    flag_values=FLAGS)
flags.DEFINE_boolean("json", False, "Print the report as JSON.", flag_values=FLAGS)


def _overview():
    lines = [USAGE, "", "commands:"]
    lines += [f"  {name:6} {text}" for name, (text, _) in COMMANDS.items()]
    lines += ["", "`keras-recipes COMMAND --help` lists the flags of that command."]
    return "\n".join(lines)


def command_help(name):
    text, names = COMMANDS[name]
    lines = [f"usage: keras-recipes {name} [flags]", "", text, "", "flags:"]
    for flag_name in names:
        flag = FLAGS[flag_name]
        default = "" if flag.default is None else f" (default: {flag.default!s})"
        lines.append(f"  --{flag_name}: {flag.help}{default}")
    return "\n".join(lines)


def fail(message, command=None):
    """One line on stderr and exit status 2, as a usage error."""
    prefix = f"keras-recipes {command}" if command else "keras-recipes"
    print(f"{prefix}: error: {message}", file=sys.stderr)
    sys.exit(2)


def _check_paths(command):
    """The files a command reads, checked before TensorFlow is imported: a
    mistyped path is told in well under a second, not after the imports."""
    if command != "audit":
        return
    for name in ("keras_file", "npz"):
        path = FLAGS[name].value
        if path and not os.path.isfile(path):
            fail(f"--{name} is not a file{' (no such path)' if not os.path.exists(path) else ''}. "
                 f"Received: --{name}={path}", command)


def _quiet_start(verbosity):
    """TensorFlow's C++ start-up lines (absl InitializeLog, CUDA probing,
    CPU-feature notices) go to file descriptor 2 while it loads: silence it
    for the import only, and absl's Python INFO and WARNING logs (TFDS) after it."""
    if verbosity is not None:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    try:
        import tensorflow as tf  # noqa: F401

        tf.config.list_logical_devices()  # device probing logs at first use
        import keras  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)
    from absl import logging

    logging.set_verbosity(logging.ERROR)


def run(argv=None):
    argv = list(sys.argv if argv is None else argv)
    args = argv[1:]
    if not args or args[0] in ("-h", "--help", "help", "--helpshort", "--helpfull"):
        print(_overview())
        return 0
    command = args[0]
    if command not in COMMANDS:
        fail(f"unknown command. Commands: {', '.join(COMMANDS)}. Received: {args[:1]}")
    if any(a in ("-h", "--help", "--helpshort", "--helpfull") for a in args[1:]):
        print(command_help(command))
        return 0
    try:
        rest = FLAGS([argv[0]] + args[1:])
    except flags.Error as error:
        fail(str(error).splitlines()[0], command)
    if len(rest) > 1:
        fail(f"unexpected arguments. Received: {rest[1:]}", command)
    allowed = set(COMMANDS[command][1])
    stray = [name for name in FLAGS if FLAGS[name].present and name not in allowed
             and name in {n for _, names in COMMANDS.values() for n in names}]
    if stray:
        fail(f"--{stray[0]} is not a flag of `{command}` (see `keras-recipes {command} --help`). "
             f"Received: --{stray[0]}={FLAGS[stray[0]].value}", command)
    _check_paths(command)
    _quiet_start(FLAGS.verbosity)
    from keras_recipes import cli

    try:
        return getattr(cli, command)(FLAGS)
    except cli.UsageError as error:
        fail(str(error), command)


def main():
    sys.exit(run() or 0)


if __name__ == "__main__":
    main()
