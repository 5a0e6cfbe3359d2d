"""The options of `fit_with_tips` and `plan`: their defaults and the checks run
on them before any work, and the data arguments read as `model.fit` reads them.
"""

import math
import sys

import keras
import numpy as np

from keras_recipes import build
from keras_recipes.decide.task import live_compile
from keras_recipes.decide.training import OPTIMIZERS
from keras_recipes.losses import TASKS
from keras_recipes.modelinfo import fixed_batch_size
from keras_recipes.modelinfo import stateful_layers


DEFAULTS = dict(
    validation_data=None, validation_split=0.2, epochs="auto", batch_size="auto", learning_rate="auto",
    optimizer="auto", momentum=None, clip_norm="auto", patience=None, stop_ratio="auto", preprocess="auto",
    augment=None, noise_bank=None, callbacks=None, jit_compile="auto", strategy=None, seed=None,
    split_seed=None, verbose="auto", data_dir=None, audit=True, checkpoint_dir=None, task=None,
    loss=None, sample_weight=None, class_weight=None, steps_per_epoch=None,
    validation_steps=None, shuffle="auto", deterministic="auto", validation_freq=1, initial_epoch=0,
    forget_bias="auto", read_once=False, reinitialize="auto",
)


# -- argument checks ------------------------------------------------------------


def check_positive_int(name, value, allow_none=False):
    if allow_none and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"`{name}` must be an integer >= 1. Received: {name}={value!r}")


def check_options(model, options):
    """Bad arguments are rejected before any work, naming the value."""
    unknown = sorted(set(options) - set(DEFAULTS))
    if unknown:
        raise TypeError(f"Unknown argument(s) {unknown}; fit_with_tips takes "
                        f"{sorted(DEFAULTS)}. Received: {unknown[0]}={options[unknown[0]]!r}")
    o = dict(DEFAULTS, **options)
    if not isinstance(model, keras.Model):
        raise TypeError(f"`model` must be a keras.Model. Received: model={model!r}")
    if o["epochs"] != "auto":
        check_positive_int("epochs", o["epochs"])
    if o["batch_size"] != "auto":
        check_positive_int("batch_size", o["batch_size"])
    for name in ("patience", "steps_per_epoch", "validation_steps"):
        check_positive_int(name, o[name], allow_none=True)
    check_positive_int("validation_freq", o["validation_freq"])
    start = o["initial_epoch"]
    if isinstance(start, bool) or not isinstance(start, (int, np.integer)) or start < 0:
        raise ValueError(f"`initial_epoch` must be an integer >= 0. Received: initial_epoch={start!r}")
    if o["epochs"] != "auto" and start >= o["epochs"]:
        raise ValueError("`initial_epoch` must be below `epochs` (model.fit trains epochs "
                         f"initial_epoch..epochs-1). Received: initial_epoch={start}, "
                         f"epochs={o['epochs']}")
    clip = o["clip_norm"]
    if clip != "auto" and clip is not None and (
            isinstance(clip, bool) or not isinstance(clip, (int, float))
            or not clip > 0 or not math.isfinite(clip)):
        raise ValueError(f"`clip_norm` must be 'auto', None or a number > 0. Received: clip_norm={clip!r}")
    lr = o["learning_rate"]
    if lr != "auto" and (isinstance(lr, bool) or not isinstance(lr, (int, float))
                         or not (lr > 0 and math.isfinite(lr))):
        raise ValueError("`learning_rate` must be 'auto' or a number > 0. "
                         f"Received: learning_rate={lr!r}")
    momentum = o["momentum"]
    if momentum is not None and (isinstance(momentum, bool) or not isinstance(
            momentum, (int, float)) or not 0 <= momentum < 1):
        raise ValueError("`momentum` must be None or a number in [0, 1). "
                         f"Received: momentum={momentum!r}")
    if momentum is not None and o["optimizer"] == "adam":
        raise ValueError("`momentum` is the SGD optimizer's; Adam keeps its own moments. Use "
                         "optimizer='sgd' (or 'auto') with momentum=, or leave momentum out. "
                         f"Received: optimizer='adam', momentum={momentum!r}")
    stop = o["stop_ratio"]
    if stop not in ("auto", None) and (isinstance(stop, bool) or not isinstance(stop, (int, float))
                                       or not 0 < stop < 1):
        raise ValueError("`stop_ratio` must be 'auto', None or a number in (0, 1). "
                         f"Received: stop_ratio={stop!r}")
    choices = {"jit_compile": ("auto", True, False), "verbose": ("auto", 0, 1, 2),
               "task": (None,) + TASKS, "shuffle": ("auto", True, False), "read_once": (True, False),
               "deterministic": ("auto", True, False), "optimizer": ("auto",) + OPTIMIZERS,
               "preprocess": ("auto", True, False), "reinitialize": ("auto", False)}
    for name, allowed in choices.items():
        if not any(o[name] is a or (type(o[name]) is type(a) and o[name] == a) for a in allowed):
            raise ValueError(f"`{name}` must be one of {allowed}. Received: {name}={o[name]!r}")
    fb = o["forget_bias"]
    if fb not in ("auto", None) and (isinstance(fb, bool) or not isinstance(fb, (int, float))
                                     or not math.isfinite(fb)):
        raise ValueError("`forget_bias` must be 'auto', None or a number. "
                         f"Received: forget_bias={fb!r}")
    check_fixed_batch(model, o)
    # A compiled model trains with its own optimizer: these would be ignored.
    given = [k for k in ("optimizer", "learning_rate", "momentum") if o[k] not in ("auto", None)]
    compiled = build.users_compile(model, live_compile(model))
    if given and compiled is not None:
        optimizer = compiled["optimizer"]
        shown = optimizer if isinstance(optimizer, str) else type(optimizer).__name__
        raise ValueError(
            f"The model is compiled (optimizer {shown} from model.compile), which fit_with_tips "
            f"trains with as it is, so `{given[0]}=` would be ignored. Set it in model.compile, "
            "or pass the model uncompiled for the recipe's optimizer. Received: "
            + ", ".join(f"{k}={o[k]!r}" for k in given))
    callbacks = o["callbacks"]
    if callbacks is not None and not all(isinstance(c, keras.callbacks.Callback) for c in callbacks):
        raise TypeError(f"`callbacks` must be a list of keras.callbacks.Callback. "
                        f"Received: callbacks={callbacks!r}")
    cw = o["class_weight"]
    if cw is not None and (not isinstance(cw, dict) or not all(
            isinstance(v, (int, float)) and v >= 0 for v in cw.values())):
        raise ValueError("`class_weight` must be a dict {class id: weight >= 0}. "
                         f"Received: class_weight={cw!r}")
    return o


def check_fixed_batch(model, o):
    """A model whose inputs fix the batch size (issue 37 item 4) trains at
    that size, every batch whole; a stateful one needs it. Sets
    o["fixed_batch"] and o["stateful"]."""
    stateful = stateful_layers(model)
    fixed = fixed_batch_size(model)
    if stateful and fixed is None:
        raise ValueError(
            f"The model has stateful layers ({', '.join(stateful)}), which need a fixed batch "
            "size, and its inputs do not fix one: build it on keras.Input(shape, batch_size=N). "
            f"Received: stateful=True on {stateful[0]!r} and model inputs with batch size None")
    if stateful and keras.backend.backend() == "torch":
        raise ValueError(
            "Keras' torch backend cannot train a stateful recurrent layer: model.fit itself "
            "fails in the backward pass ('modified by an inplace operation', Keras 3.15). Use "
            "the TensorFlow or JAX backend. Received: stateful=True on "
            f"{stateful[0]!r} with KERAS_BACKEND=torch")
    if fixed is not None and o["batch_size"] not in ("auto", fixed):
        raise ValueError(
            f"The model's inputs fix the batch size at {fixed} (keras.Input(batch_size={fixed})), "
            "so every batch must hold exactly that many examples. Leave batch_size='auto' or "
            f"pass {fixed}. Received: batch_size={o['batch_size']!r}")
    if fixed is not None and o["strategy"] not in (None, "auto"):
        raise ValueError(
            "A model whose inputs fix the batch size cannot be split over replicas (each would "
            f"get a part of the batch of {fixed}). Received: strategy={o['strategy']!r}")
    o["fixed_batch"], o["stateful"] = fixed, stateful
    if o["shuffle"] == "auto":
        o["shuffle"] = not stateful


# -- the call ---------------------------------------------------------------------


def fit_data(data=None, y=None, x=None):
    """`model.fit`'s ways of passing the data as fit_with_tips' one `data`:
    `(model, data)`, `(model, x, y)`, or `x=` / `y=` by keyword."""
    if x is not None:
        if data is not None:
            raise TypeError("Pass the inputs once: as `data` (the second argument) or as `x=`. "
                            "Received: both")
        data = x
    if data is None:
        raise TypeError("fit_with_tips needs data: `fit_with_tips(model, x, y)`, "
                        "`fit_with_tips(model, (x, y))`, a tf.data.Dataset, a PyDataset or a "
                        "dataset name. Received: data=None")
    if y is None:
        return data
    if isinstance(data, (str, tuple)) or hasattr(data, "element_spec") or isinstance(
            data, keras.utils.PyDataset):
        raise ValueError("`y` goes with array-like inputs only; a dataset, a PyDataset, a "
                         "dataset name or an (x, y) pair already holds its labels (as in "
                         f"model.fit). Received: y with data of type {type(data).__name__}")
    return (data, y)


def resolve_verbosity(verbose):
    """`"auto"`: Keras' progress bar on a terminal, one plain line per epoch
    when the output goes to a file or a pipe (no cursor codes in logs)."""
    if verbose != "auto":
        return verbose
    isatty = getattr(sys.stdout, "isatty", None)
    return 1 if isatty is not None and isatty() else 2
