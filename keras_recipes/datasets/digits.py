"""UCI digits as a TFDS `GeneratorBasedBuilder` over the packaged csv.

Fixed splits: row i goes to "test" when i % 5 == 0 (360 rows), else to
"train" (1,437 rows). Features are the 64 raw pixel values (0-16) as float32,
labels 0-9.
"""

import contextlib
import gzip
import io
import os
import pathlib

import numpy as np
from absl import logging

DIGITS_NAME = "keras_recipes_digits"
CSV = pathlib.Path(__file__).with_name("digits.csv.gz")
HOMEPAGE = "https://archive.ics.uci.edu/dataset/80"
CITATION = (
    "E. Alpaydin, C. Kaynak. Optical Recognition of Handwritten Digits. "
    "UCI Machine Learning Repository, 1998."
)


def _rows():
    with gzip.open(CSV, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype="float32")
    return table[:, :64], table[:, 64].astype("int64")


def load_digits(split="train"):
    """The digits split as numpy arrays `(x, y)`: x float32 (n, 64), y int64."""
    if split not in ("train", "test"):
        raise ValueError(f"`split` must be 'train' or 'test'. Received: split={split!r}")
    x, y = _rows()
    test = np.arange(len(y)) % 5 == 0
    keep = test if split == "test" else ~test
    return x[keep], y[keep]


def default_data_dir():
    return os.environ.get(
        "KERAS_RECIPES_TFDS_DIR",
        os.path.join(os.path.expanduser("~"), ".cache", "keras_recipes", "tensorflow_datasets"),
    )


_BUILDER_CLASS = None


def _builder_class():
    # Defined on first use so that importing keras_recipes does not import
    # tensorflow_datasets; registering it makes tfds.load(DIGITS_NAME) work.
    global _BUILDER_CLASS
    if _BUILDER_CLASS is not None:
        return _BUILDER_CLASS
    import tensorflow_datasets as tfds

    class KerasRecipesDigits(tfds.core.GeneratorBasedBuilder):
        """UCI handwritten digits, 8x8, embedded in keras_recipes."""

        VERSION = tfds.core.Version("1.0.0")
        RELEASE_NOTES = {"1.0.0": "Fixed train/test split: test is every 5th row."}

        def _info(self):
            return self.dataset_info_from_configs(
                features=tfds.features.FeaturesDict(
                    {
                        "features": tfds.features.Tensor(shape=(64,), dtype=np.float32),
                        "label": tfds.features.ClassLabel(num_classes=10),
                    }
                ),
                supervised_keys=("features", "label"),
                homepage=HOMEPAGE,
                citation=CITATION,
            )

        def _split_generators(self, dl_manager):
            return {
                "train": self._generate_examples("train"),
                "test": self._generate_examples("test"),
            }

        def _generate_examples(self, split):
            x, y = load_digits(split)
            for i, (features, label) in enumerate(zip(x, y)):
                yield i, {"features": features, "label": int(label)}

    _BUILDER_CLASS = KerasRecipesDigits
    return _BUILDER_CLASS


def digits_builder(data_dir=None):
    """The prepared TFDS builder of the embedded digits (built on first use)."""
    import tensorflow_datasets as tfds

    builder = _builder_class()(data_dir=data_dir or default_data_dir())
    if builder.is_prepared():
        return builder
    # Embedded data, built offline in a few seconds: TFDS' progress bars, its
    # "Downloading and preparing" lines and its INFO logs would only alarm.
    verbosity = logging.get_verbosity()
    logging.set_verbosity(logging.WARNING)
    tfds.display_progress_bar(False)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            builder.download_and_prepare()
    finally:
        tfds.display_progress_bar(True)
        logging.set_verbosity(verbosity)
    return builder
