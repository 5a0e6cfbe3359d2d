"""The decide stage: `plan(model, data, ...)` -> `Plan`.

Every inference the recipe makes lives here, each as a `Tip` with its
evidence and the argument that overrides it. A plan trains nothing: it
summarizes the data (`keras_recipes.data`), measures the model's output on a
real batch, decides, and builds the training model it will fit
(`keras_recipes.build`). `plan.fit()` runs it (`keras_recipes.train`).
"""

import hashlib
import json
import math
import sys
import warnings

import keras
import numpy as np

from keras_recipes import build
from keras_recipes import calibration
from keras_recipes import callbacks
from keras_recipes import data as data_lib
from keras_recipes import determinism
from keras_recipes import distribute
from keras_recipes import forget_gate
from keras_recipes import initializers
from keras_recipes import preprocessing
from keras_recipes import train
from keras_recipes.data import leaves
from keras_recipes.data.core import RAGGED_EVIDENCE
from keras_recipes.data.core import RAGGED_OVERRIDE
from keras_recipes.data.core import SPARSE_EVIDENCE
from keras_recipes.forget_gate import FORGET_BIAS
from keras_recipes.forget_gate import FORGET_BIAS_STEPS
from keras_recipes.forget_gate import FORGET_BIAS_WHY
from keras_recipes.data import target_scale
from keras_recipes.data import target_scale_of
from keras_recipes.diagnostics.audit import audit_data
from keras_recipes.losses import TASKS
from keras_recipes.losses import check_labels
from keras_recipes.losses import constant_predictor_loss
from keras_recipes.losses import infer_loss
from keras_recipes.losses import mean_reduced
from keras_recipes.losses import probe_output
from keras_recipes.modelinfo import augmentation_layers
from keras_recipes.modelinfo import dropout_layers
from keras_recipes.modelinfo import fixed_batch_size
from keras_recipes.modelinfo import output_activation
from keras_recipes.modelinfo import reads_strings
from keras_recipes.modelinfo import recurrent_layers
from keras_recipes.modelinfo import stateful_layers
from keras_recipes.modelinfo import walk_layers
from keras_recipes.result import Tip
from keras_recipes.result import table
from keras_recipes.result import user_stacklevel

DEFAULTS = dict(
    validation_data=None, validation_split=0.2, epochs="auto", batch_size="auto", learning_rate="auto",
    optimizer="auto", momentum=None, clip_norm="auto", patience=None, stop_ratio="auto", preprocess="auto",
    augment=None, noise_bank=None, callbacks=None, jit_compile="auto", strategy=None, seed=None,
    split_seed=None, verbose="auto", data_dir=None, audit=True, checkpoint_dir=None, task=None,
    loss=None, sample_weight=None, class_weight=None, steps_per_epoch=None,
    validation_steps=None, shuffle="auto", deterministic="auto", validation_freq=1, initial_epoch=0,
    forget_bias="auto", read_once=False, reinitialize="auto",
)
# With no progress for a stretch, the stopping rule's cue: updates an order
# of magnitude below those of the last epoch that improved no longer move the
# weights where progress was last made. A quarter (two halvings) stopped runs
# on small, noisy validation sets too early (BUILD_NOTES.md, issue 24).
STILL_FRACTION = 0.1
# A plateau is judged on the validation loss's own scale: an epoch improves
# when it beats the best by this fraction of it.
MIN_RELATIVE_DELTA = 1e-3
# Settings of model.compile that fit_with_tips keeps as they are.
_KEPT_COMPILE = ("loss_weights", "weighted_metrics", "run_eagerly", "steps_per_execution")
_STEP_METHODS = ("train_step", "test_step", "compute_loss")


class Plan:
    """The decisions of one `fit_with_tips` call, before any training.

    `print(plan)` shows the tips table (each decision, its setting, the
    evidence, and the argument that overrides it); `plan.fit()` trains and
    returns a `FitResult`. Two plans are equal when they take the same
    decisions on the same data and model (`plan.fingerprint()`).
    """

    def __init__(self, tips, model, data, options, parts):
        self.tips = tips
        self.model = model
        self.data = data
        self.options = options
        self.parts = parts

    def rows(self):
        return [[t.number, t.name, t.setting, t.reason, t.override] for t in self.tips]

    def __str__(self):
        return table(self.rows(), ["tip", "what", "setting", "why", "override with"])

    def __repr__(self):
        return f"<Plan tips={len(self.tips)} data={self.data.description!r}>"

    def __eq__(self, other):
        return isinstance(other, Plan) and self.fingerprint() == other.fingerprint()

    __hash__ = None

    def fingerprint(self):
        """Hashes of the data, the model and the decisions: a checkpoint
        records them, and resuming with any of them changed is an error."""
        return fingerprint(self.data, self.model, self.tips)

    def fit(self):
        """Trains as planned; returns a `FitResult`."""
        return train.run(self)

    def with_members(self, fused):
        """The same plan, training `fused.members` as one compiled program
        (tip 12); `fused` is a `keras_recipes.ensemble.FusedMembers`."""
        parts = dict(self.parts, fused=fused)
        parts["member_loss"] = self.parts["loss"]
        parts["loss"] = fused.loss(self.parts["loss"])
        parts["metrics"] = fused.metrics(self.parts["loss"])
        # Tip 9 as decided on the first member (plan() set its bias), for the rest.
        for member in fused.members[1:]:
            for layer, value, _, _ in forget_bias_changes(
                    member, self.options["forget_bias"],
                    getattr(self.data.features, "steps", None)):
                if value is not None:
                    forget_gate.set_forget_bias(layer, value)
        # Tip 6 as decided on the first member (plan() redrew it), for the rest.
        if self.parts.get("reinitialized"):
            base = 0 if self.options["seed"] is None else self.options["seed"]
            for i, member in enumerate(fused.members[1:], start=1):
                kernels = [v for v, _ in initializers.constant_kernels(member)]
                initializers.redraw(kernels, seed=base + 1000 * i)
        # The monitored val_loss is the members' sum; the plateau rule judges
        # it relative to its own best (MIN_RELATIVE_DELTA), as one member's.
        make_optimizer = self.parts["make_optimizer"]
        # Each member clipped by its own global norm.
        parts["make_optimizer"] = lambda: fused.configure(make_optimizer())
        tips = [t for t in self.tips if t.name not in ("execution", "determinism")]
        if getattr(self.data, "live", None) is not None:
            # Fused members each read their own order of rows: the batches
            # as read once (each member's order from its own seed).
            tips.append(Tip(12, "PyDataset", "read once for the fused members",
                            "each member reads its own order of the rows, so the batches read "
                            "at the start are shuffled per member; fused=False reads them anew "
                            "every epoch for each member", "fused=False"))
        with distribute.Scope(parts["strategy"]) as scope:
            parts["scope"] = scope
            # The XLA decision is taken on the stacked members; the members
            # are then vectorized where that pays with it (and can be).
            parts.update(build.training_model(parts, self.model, self.data))
            execution = _decide_execution(parts, self.data, self.options)
            fused.choose(parts["jit"], *build.features_shape(parts, self.data),
                         strategy=parts["strategy"])
            if fused.vectorized is not None:
                parts.update(build.training_model(parts, self.model, self.data))
            tips.append(fused.tip(self.options["shuffle"],
                                  fused.shuffle_seeds(self.data.shuffle_seed)))
            tips.append(execution)
            tips.append(_decide_determinism(self.options, parts))
        return Plan(tips, self.model, self.data, self.options, parts)


def _digest(value):
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def fingerprint(data, model, tips):
    data_part = [data.description, data.n_train, data.n_validation, str(data.x_shape)]
    for stats in data.input_stats:
        if stats is not None:
            data_part += [np.round(np.atleast_1d(stats.mean), 4).tolist(),
                          np.round(np.atleast_1d(stats.std), 4).tolist()]
    for labels in data.output_labels:
        data_part += [labels.kind, sorted(labels.class_counts.items())]
    model_part = [type(model).__name__, [list(v.shape) for v in model.weights],
                  [type(layer).__name__ for layer in walk_layers(model)]]
    # Rows that differ between the processes or the runs of one training
    # (which worker this is, the resumed epoch) are not decisions about it;
    # nor is the epoch budget: resuming to train longer is what it is for.
    decisions = [[t.number, t.name, t.setting] for t in tips
                 if t.name not in ("execution", "resumed", "audit", "distribution",
                                   "learning rate", "update ratio", "epoch budget")]
    return {"data": _digest(data_part), "model": _digest(model_part),
            "decisions": _digest(decisions)}


# -- argument checks ------------------------------------------------------------


def _positive_int(name, value, allow_none=False):
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
        _positive_int("epochs", o["epochs"])
    if o["batch_size"] != "auto":
        _positive_int("batch_size", o["batch_size"])
    for name in ("patience", "steps_per_epoch", "validation_steps"):
        _positive_int(name, o[name], allow_none=True)
    _positive_int("validation_freq", o["validation_freq"])
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
    _check_fixed_batch(model, o)
    # A compiled model trains with its own optimizer: these would be ignored.
    given = [k for k in ("optimizer", "learning_rate", "momentum") if o[k] not in ("auto", None)]
    compiled = build.users_compile(model, _live_compile(model))
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


def _check_fixed_batch(model, o):
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


def plan(model, data=None, y=None, *, x=None, **options):
    """Decides how `fit_with_tips(model, data, **options)` would train.

    Takes the same arguments as `fit_with_tips` and trains nothing: it takes
    the data's statistics, measures the model's output on a real batch and
    returns a `Plan` (print it to see every decision and its evidence; call
    `.fit()` to train).

    Example:

    ```python
    p = keras_recipes.plan(model, "digits")
    print(p)            # the tips table, before any training
    result = p.fit()    # the same as fit_with_tips(model, "digits")
    ```
    """
    data = fit_data(data, y, x)
    o = check_options(model, options)
    o["batch_size"], batch_note = _decide_batch_size(o)
    # A fixed batch is not split over replicas ("auto" means one device then).
    strategy = distribute.resolve(None if o["fixed_batch"] is not None else o["strategy"])
    distribute.check_outside_scope(strategy)
    if not callable(o["batch_size"]):
        distribute.check_batch_size(o["batch_size"], strategy)
    parts = {"strategy": strategy, "no_xla": distribute.check_jit(o["jit_compile"], strategy),
             "verbose": _verbosity(o["verbose"]), "source": model, "fixed_batch": o["fixed_batch"]}
    if o["seed"] is not None:
        keras.utils.set_random_seed(int(o["seed"]))
    with distribute.Scope(strategy) as scope:
        parts["scope"] = scope
        seed = o["seed"] if o["split_seed"] is None else o["split_seed"]
        data = data_lib.make_data(
            data, o["validation_data"], o["validation_split"], o["batch_size"], seed,
            o["data_dir"], verbose=parts["verbose"], shuffle_seed=o["seed"],
            sample_weight=o["sample_weight"], input_rank=_input_rank(model),
            steps_per_epoch=o["steps_per_epoch"], fixed_batch=o["fixed_batch"] is not None,
            ordered=bool(o["stateful"]), strings=reads_strings(model) is not None,
            read_once=o["read_once"], padding=_padding(model))
        _check_inputs_match(model, data)
        if data.kept_batches:  # shapes vary: the batches as given (issue 38 item 1)
            o["batch_size"], batch_note = data.batch_size, (
                "your first batch's size (tip 2's rule re-batches only batches of one shape)")
        elif getattr(data, "live", None) is not None:  # read as model.fit reads it
            o["batch_size"], batch_note = data.batch_size, (
                f"your {'generator' if data.description == 'generator' else 'PyDataset'}'s "
                "batch size, kept")
        elif callable(o["batch_size"]):  # tip 2's rule, on the examples now read
            o["batch_size"], batch_note = data.batch_size, _batch_rule(data.n_train)[1]
            distribute.check_batch_size(o["batch_size"], strategy)
        tips = _decide_data(data, o, strategy, batch_note)
        tips.append(_decide_epochs(data, o))
        model, cloned = distribute.in_scope(model, strategy)
        if cloned:
            tips.append(Tip(0, "model", "cloned into the strategy's scope",
                            cloned + "; the trained model is result.model"))
        tips += _decide_initialization(model, data, o, parts)
        tips += _decide_task(model, data, o, parts)
        tips += _decide_inputs(model, data, o, parts)
        parts["baseline"] = _baseline(data, parts)
        tips += _decide_training(model, o, parts, data)
        parts.update(build.training_model(parts, model, data))
        tips += _audit(model, data, o, parts)
        tips.append(_decide_execution(parts, data, o))
        tips.append(_decide_determinism(o, parts))
        if parts.get("jit_note"):
            tips = [t for t in tips if t.name != "execution"] + [
                Tip(0, "execution", "jit_compile=False", parts["jit_note"], "jit_compile=")]
        tips += _decide_learning_rate(parts, data, o)
    return Plan(tips, model, data, o, parts)


def _decide_initialization(model, data, o, parts):
    """Tip 6 acting on a model that cannot learn from its start (issue 36
    items 3 and 6): kernels that hold one value each (all 0.0, or all
    equal). When the model's output is also the same for every example of a
    real batch (the inputs do not reach it: all-zero kernels behind a relu
    pass no gradient either), those kernels are redrawn, `randn /
    sqrt(fan_in)`, before anything is measured on the model. Otherwise
    (constant kernels whose output still depends on the input) the row only
    says so. The evidence is the weights and the measured output."""
    found = initializers.constant_kernels(model)
    if not found:
        return []
    x, _ = data.first_batch()
    if isinstance(x, list):
        x = x[0]
    if not model.built and not data.structured:
        model.build((None,) + tuple(data.x_shape))
    outputs = [keras.ops.convert_to_numpy(out) for out in keras.tree.flatten(
        model(x, training=False))]
    rows = min(len(out) for out in outputs)
    spread = max(float(np.ptp(out.reshape(len(out), -1), axis=0).max()) for out in outputs)
    names = [f"{v.path} (all {value:g})" for v, value in found]
    shown = ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
    kernels = f"kernels {shown} hold one value each (every unit computes the same)"
    if spread > 0:
        return [Tip(6, "initialization", "kept as given",
                    f"{kernels}, so their units learn alike; the output still depends on the "
                    f"input (range {spread:.3g} across {rows} examples), so they are left as "
                    "given", "the layers' kernel_initializer")]
    measured = f"the output is the same for every one of {rows} examples of a real batch"
    if o["reinitialize"] is False:
        return [Tip(6, "initialization", "kept as given (reinitialize=False)",
                    f"{kernels}, and {measured}: the inputs do not reach it, and no rate "
                    "fixes that; the run will end 'not learning'", "reinitialize=")]
    initializers.redraw([v for v, _ in found], seed=0 if o["seed"] is None else o["seed"])
    parts["reinitialized"] = True  # fused ensemble members: the same, each its own draw
    return [Tip(6, "initialization", f"redrawn: {shown}",
                f"{kernels}, and {measured}: the inputs do not reach it, and no rate fixes "
                "that (all-zero kernels behind a relu pass no gradient); tip 6: randn / "
                "sqrt(fan_in) (ScaledNormal(1.0)), before anything else is measured",
                "reinitialize=False")]


def _decide_learning_rate(parts, data, o):
    """Tips 4 and 5: the rate read from the update ratio (`"auto"`), or the
    given rate with its measured ratio, and a warning when it is far from
    the band. The training model is compiled here, once: training reuses it."""
    user = parts["compile"] is not None
    with determinism.deterministic(parts["deterministic"]):
        optimizer = build.compile_model(parts, parts["jit"])
        parts["compiled"] = (optimizer, parts["jit"])
        batches = list(data.training_batches(calibration.STEPS))
        if not user and o["learning_rate"] == "auto":
            found = calibration.calibrate_learning_rate(
                parts["full"], batches, start=START_RATES[parts["optimizer_name"]])
            parts["learning_rate"] = found.rate
            parts["calibration"] = found
            parts["initial_loss"] = found.initial_loss
            return [Tip(4, "learning rate", f"{found.rate:.3g} (calibrated)", found.evidence(),
                        "learning_rate="),
                    Tip(5, "update ratio", "kept in view every epoch",
                        "logged per epoch and per layer; warned and acted on outside [1e-4, 3e-2]: "
                        "held above 3e-2 (far above the band) for 3 epochs, the rate is halved; "
                        "a diverged epoch is undone and the rate divided by 5",
                        "learning_rate=")]
        ratio, parts["initial_loss"] = calibration.probe_update_ratio(parts["full"], batches)
    rate = callbacks.current_learning_rate(optimizer)
    whose = "your optimizer's" if user else "the given"
    rows = [] if user else [Tip(4, "learning rate", f"{rate:.3g} (as passed)",
                                "a fixed start; the plateau rule divides it",
                                "learning_rate='auto'")]
    measured = (f"measured {calibration.ratio_text(ratio)} over {calibration.STEPS} steps at "
                f"{whose} rate {rate:.3g}")
    low, high = calibration.PROBE_BAND
    target = calibration.TARGET
    scale = (f"the first steps' ratio, where learning_rate='auto' aims for {target:g} (later "
             "epochs then read near tip 5's 1e-3)")
    if math.isfinite(ratio) and low <= ratio <= high:
        rows.append(Tip(5, "update ratio", "in the healthy band", f"{measured}: {scale}; logged "
                        "per epoch and per layer; a diverged epoch is undone and the rate divided "
                        "by 5", ""))
        return rows
    wanted = callbacks.rate_for_ratio(rate, ratio, target) if math.isfinite(ratio) else None
    aim = (f"about {wanted:.2g} would bring it to {target:g}" if wanted is not None
           else "a much lower rate is needed" if not math.isfinite(ratio)
           else "the weights did not move at all: no gradient reaches them (all-zero or "
           "constant initial weights, dead activations), which no rate fixes")
    text = (f"WARNING: {measured}, outside [{low:g}, {high:g}] ({scale}): {aim}. Kept, as you "
            "chose it; a diverged epoch is undone and the rate divided by 5")
    warnings.warn(f"fit_with_tips: update/weight ratio {text}", callbacks.UpdateRatioWarning,
                  stacklevel=user_stacklevel())
    rows.append(Tip(5, "update ratio", "too high" if ratio > high else "too low", text,
                    "model.compile(optimizer=...)" if user else "learning_rate="))
    return rows


def _check_inputs_match(model, data):
    inputs = getattr(model, "inputs", None) or []
    given = leaves(data.x_spec)
    if len(inputs) > 1 and len(given) != len(inputs):
        names = [getattr(i, "name", "?") for i in inputs]
        raise ValueError(
            f"The model has {len(inputs)} inputs ({', '.join(names)}); give one array per input, "
            "as a dict keyed by input name or a list in the model's order. "
            f"Received: a model with {len(inputs)} inputs and data with {len(given)} input array(s)")


def _call_on_ragged(model, x, data):
    """`model(x)` on a real batch holding ragged inputs (issue 38 item 4).
    They pass through as given, as model.fit feeds them: into a model that
    reads them (`keras.Input(..., ragged=True)`, or layers that take them)
    it trains; into one whose layers fail on them (a GRU: "Cannot index into
    an inner ragged dimension"), model.fit fails too. That failure is
    refused by name here, before any training."""
    try:
        return model(x, training=False)
    except Exception as error:
        ragged = [name or "x" for name, spec in leaves(data.x_spec) if spec.dtype == "ragged"]
        inputs = getattr(model, "inputs", None) or []
        declared = [t.name for t in inputs if getattr(t, "ragged", None) is False]
        hint = (f" (the model's input {declared[0]!r} is not declared ragged=True)"
                if len(inputs) == 1 and declared else "")
        raise TypeError(
            f"`data` {', '.join(ragged)} is ragged (a tf.RaggedTensor: its lengths vary per "
            f"example), and the model fails on a real batch of it{hint}; model.fit fails on it "
            "too. Declare keras.Input(..., ragged=True) with layers that read ragged "
            "tensors, or pad it (x.to_tensor(), or padded_batch for a dataset) and put "
            "keras.layers.Masking(0.0) first in the model. Received: "
            f"{type(error).__name__}: {str(error).strip().splitlines()[0][:200]}") from error


def _verbosity(verbose):
    """`"auto"`: Keras' progress bar on a terminal, one plain line per epoch
    when the output goes to a file or a pipe (no cursor codes in logs)."""
    if verbose != "auto":
        return verbose
    isatty = getattr(sys.stdout, "isatty", None)
    return 1 if isatty is not None and isatty() else 2


def _padding(model):
    """The value whose steps the model reads as padding (a `Masking` layer's
    `mask_value` on its one input), or None."""
    if len(getattr(model, "inputs", None) or []) != 1:
        return None
    return preprocessing.padding_of(model)


def _input_rank(model):
    """The rank (with the batch axis) of the model's input, or of each input
    by name ({name: rank}) when it has several; None when unknown."""
    inputs = getattr(model, "inputs", None)
    try:
        if inputs and len(inputs) == 1:
            return len(inputs[0].shape)
        if inputs:
            return {t.name: len(t.shape) for t in inputs}
    except (AttributeError, TypeError, ValueError):
        pass
    return None


# Tip 2's 128 assumes many batches per epoch: below this many, a smaller one.
MIN_STEPS = 8


def _decide_batch_size(o):
    """Tip 2: the model's fixed batch size, the user's, or `_batch_rule`.
    Returns (batch, or the rule as a function of the training examples
    for `make_data` to apply once they are read; why or None)."""
    if o["fixed_batch"] is not None:
        return o["fixed_batch"], (f"fixed by the model's inputs (keras.Input(batch_size="
                                  f"{o['fixed_batch']})): every batch holds exactly that many, "
                                  "a last partial batch is dropped")
    if o["batch_size"] != "auto":
        return o["batch_size"], None
    # Decided on the training examples once read, the same rule whatever the
    # form (arrays, a dataset, a PyDataset, a generator: issue 38 item 3).
    return (lambda n_train: _batch_rule(n_train)[0]), None


def _batch_rule(n_train):
    """(batch, why or None) for `n_train` training examples: 128, unless 128
    leaves fewer than MIN_STEPS updates an epoch; then the largest power of
    two (at least 16) that gives that many."""
    batch = 128
    while batch > 16 and -(-n_train // batch) < MIN_STEPS:
        batch //= 2
    if batch == 128:
        return 128, None
    return batch, (f"128 would give {-(-n_train // 128)} update(s) per epoch on {n_train} "
                   f"training examples; {batch} gives at least {min(MIN_STEPS, -(-n_train // batch))}")


# The epoch budget ("auto"): 100 epochs, or more when 100 hold fewer than
# this many updates (small data at tip 2's batch of 128). Keras' usual
# 100 epochs at batch 32 give a 1,000-example set about 3,000 updates.
BUDGET_EPOCHS, BUDGET_UPDATES = 100, 3000


def _decide_epochs(data, o):
    """Tip 4's "stop when it is tiny" ends most runs; the cap is a budget.
    Sets o["epochs"] to a number and says where it came from."""
    start = o["initial_epoch"]
    counted = (f"; numbered from initial_epoch={start}, as model.fit numbers them (epochs "
               f"{start}..{o['epochs'] if o['epochs'] != 'auto' else 'the budget'} - 1 run)"
               if start else "")
    if o["epochs"] != "auto":
        return Tip(4, "epoch budget", f"{o['epochs']}", "as passed; the stopping rule usually "
                   "ends training earlier, a run still improving at the cap ends 'capped'"
                   + counted, "epochs=")
    steps = data.steps_per_epoch
    epochs = BUDGET_EPOCHS
    if steps and steps * BUDGET_EPOCHS < BUDGET_UPDATES:
        epochs = -(-BUDGET_UPDATES // steps)
    # The budget counts the epochs that run, after the user's initial_epoch.
    epochs += start
    o["epochs"] = epochs
    why = (f"{BUDGET_EPOCHS} epochs, or at least {BUDGET_UPDATES} updates ({steps} per epoch)"
           if steps else f"{BUDGET_EPOCHS} epochs")
    return Tip(4, "epoch budget", f"{epochs} (auto)", why + "; the stopping rule usually ends "
               "training earlier, a run still improving at the cap ends 'capped'" + counted,
               "epochs=")


def _decide_data(data, o, strategy, batch_note=None):
    tips = [Tip(4, "validation set", f"{data.n_validation} examples ({data.split})",
                "decides LR drops, stopping and the best weights", "validation_data=, validation_split=")]
    if o["validation_freq"] > 1:
        tips.append(Tip(4, "validation", f"every {o['validation_freq']} epochs",
                        "validation_freq as model.fit reads it: LR drops, stopping and the best "
                        "weights are judged on the validated epochs only, patience counts them",
                        "validation_freq="))
    if data.weighted:
        tips.append(Tip(3, "sample weights", "per-example weights in the loss and weighted metrics",
                        "given with the data", "sample_weight="))
    if o["class_weight"] is not None:
        tips.append(Tip(3, "class weights", str(o["class_weight"]), "as passed", "class_weight="))
    batch = o["batch_size"]
    steps = data.steps_per_epoch
    few = (f"; only {steps} update{'s' if steps > 1 else ''} per epoch on {data.n_train} "
           "training examples: a smaller batch gives more" if steps < 4 else "")
    stream = data.description == "generator" and getattr(data, "live", None) is not None
    if stream:
        few = ""  # the generator's note says how it is read
    elif o["steps_per_epoch"] is not None and data.kept_batches:
        few = (f"; steps_per_epoch={o['steps_per_epoch']}: the generator's batches read, "
               f"{data.kept_batches[1]} of them held out" if data.description == "generator"
               else f"; steps_per_epoch={o['steps_per_epoch']} limits each epoch (of "
               f"{data.kept_batches[0]} training batches)")
    elif o["steps_per_epoch"] is not None:
        few = (f"; steps_per_epoch={o['steps_per_epoch']} limits each epoch "
               f"({-(-data.n_train // batch)} batches hold the {data.n_train} training examples)")
    elif batch_note:
        few = ""
    if data.drop_remainder:
        few += (f"; {data.n_train % batch} training and {data.n_validation % batch} validation "
                "examples left over")
    tips.append(Tip(2, "minibatch", f"batch_size={batch} ({steps} steps per epoch)",
                    (batch_note if batch_note else "about 128, as advised") + few
                    + (f"; {data.notes[0]}" if data.notes else ""), "batch_size="))
    if o["stateful"]:
        shuffled = ("shuffle=True as passed: the states then carry between unrelated batches"
                    if o["shuffle"] else "batches in order (shuffle off)")
        tips.append(Tip(0, "stateful", f"states of {', '.join(o['stateful'])} reset at each "
                        "epoch's start and before each validation pass",
                        f"the batches of an epoch are one stream; {shuffled}; the validation "
                        "set is read from reset states too", "shuffle="))
    if strategy is None and o["strategy"] == "auto":
        tips.append(Tip(0, "distribution", distribute.describe(None),
                        "strategy='auto': " + ("fewer than two GPUs" if keras.backend.backend()
                                               == "tensorflow" else "tf.distribute needs TensorFlow"),
                        "strategy="))
    elif strategy is not None:
        n = distribute.replicas(strategy)
        tips.append(Tip(0, "distribution", distribute.describe(strategy) + (
            f"; global batch {batch} = {batch // n} per replica" if n > 1 else ""),
            "batch_size is the global batch and the loss its mean: the gradient, and so "
            "the LR, do not change with the replica count (no LR rule applied)", "strategy="))
    return tips


def _live_compile(source):
    """The arguments the user gave `model.compile`, as the live objects
    (never a serialize/deserialize round trip); None when not compiled."""
    if not (getattr(source, "compiled", False) and source.optimizer is not None
            and source.loss is not None):
        return None
    config = getattr(getattr(source, "_compile_config", None), "config", None)
    if config is None:  # not a Keras 3 Trainer: the public attributes only
        config = {"optimizer": source.optimizer, "loss": source.loss}
    return dict(config)


def _measure(model, data):
    """Per output: its width and an `OutputProbe` on a real batch."""
    x, _ = data.first_batch()
    if not data.drop_remainder:  # else the batch is the model's fixed size
        x = keras.tree.map_structure(lambda a: a[:64], x)
    if not model.built and not data.structured:
        model.build((None,) + tuple(data.x_shape))
    if getattr(data, "ragged", False):
        called = _call_on_ragged(model, x, data)
    else:
        called = model(x, training=False)
    outputs = keras.tree.flatten(called)
    numeric = [a for a in keras.tree.flatten(x) if np.asarray(a).dtype.kind in "biuf"]
    stress = len(numeric) == len(keras.tree.flatten(x)) and all(
        np.asarray(a).dtype.kind == "f" for a in numeric)
    try:
        probes = probe_output(model, x, stress=stress)
    except Exception:  # an input range the model refuses (indices): real batch only
        probes = probe_output(model, x, stress=False)
    units = [int(o.shape[-1]) if len(o.shape) > 1 else 1 for o in outputs]
    return units, probes, build.output_keys(model, data.y_spec, called)


def _output_names(model, data, count, keys=None):
    """Names of the outputs in the model's output order: the labels' dict keys
    paired with them by name (`keys`), else the model's output names."""
    if keys is not None:
        return list(keys)
    names = list(getattr(model, "output_names", None) or [])
    return names if len(names) == count else [f"output {i}" for i in range(count)]


def _in_output_order(keys, data, labels):
    """Per-label values (in the data's order: sorted dict keys) reordered to
    the model's outputs, joined by name where the labels are a dict."""
    if keys is None:
        return list(labels)
    order = [k for k, _ in leaves(data.y_spec)]
    return [labels[order.index(k)] for k in keys]


def _label_checks(loss, labels, val_labels, units):
    width = int(np.prod(labels.shape)) if labels.shape else 1
    if isinstance(loss, keras.losses.MeanSquaredError) and width != units:
        raise ValueError(
            f"Regression needs one output per label column: the labels have {width} label "
            f"column{'s' if width > 1 else ''} ({labels.evidence()}), the model has "
            f"{units} outputs. Pass task= if the labels are class ids. "
            f"Received: labels of shape {labels.shape}, {units} outputs")
    check_labels(loss, labels, units, "data")
    check_labels(loss, val_labels, units, "validation_data")


def _given_loss(o, compiled):
    given = o["loss"] if o["loss"] is not None else compiled["loss"]
    converted = False
    if isinstance(given, dict):
        pairs = {k: mean_reduced(v) for k, v in given.items()}
        loss = {k: v[0] for k, v in pairs.items()}
        converted = any(v[1] for v in pairs.values())
    elif isinstance(given, (list, tuple)):
        pairs = [mean_reduced(v) for v in given]
        loss, converted = [v[0] for v in pairs], any(v[1] for v in pairs)
    else:
        loss, converted = mean_reduced(given)
    why = "as passed" if o["loss"] is not None else "from model.compile"
    if converted:
        why += ("; it summed over the batch, converted to the batch mean so the LR does "
                "not depend on the batch size")
    name = (", ".join(f"{k}: {getattr(v, 'name', v)}" for k, v in loss.items())
            if isinstance(loss, dict) else getattr(loss, "name", str(loss)))
    return loss, (compiled or {}).get("metrics") or [], Tip(3, "loss", name, why, "loss=")


def _decide_task(model, data, o, parts):
    """Tip 3: the loss, from the labels and the measured output, or the user's;
    one loss per output."""
    units, probes, keys = _measure(model, data)
    if not model.trainable_weights:
        frozen = len(model.non_trainable_weights)
        raise ValueError(
            "The model has no trainable weights, so there is nothing to train (every layer is "
            "frozen, or it has no weights). Set `layer.trainable = True` on the layers to train. "
            f"Received: model={model.name!r} with 0 trainable and {frozen} frozen weights")
    # A model the recipe compiled (an earlier call) counts as the user left it.
    compiled = build.users_compile(parts["source"], _live_compile(parts["source"]))
    parts.update(units=units[0] if len(units) == 1 else units, compile=compiled, probes=probes)
    if len(data.output_labels) != len(units):
        raise ValueError(f"The model has {len(units)} output(s) and the data "
                         f"{len(data.output_labels)} label array(s); give one label array per "
                         "output. "
                         f"Received: {len(data.output_labels)} label arrays")
    # Labels joined to outputs by name (a dict's keys), by position otherwise.
    labels = _in_output_order(keys, data, data.output_labels)
    val_labels = _in_output_order(keys, data, data.output_val_labels)
    names = _output_names(model, data, len(units), keys)
    if o["loss"] is not None or compiled is not None:
        loss, metrics, tip = _given_loss(o, compiled)
        tips = [tip]
        losses = loss if isinstance(loss, (list, tuple)) else (
            [loss.get(n) for n in names]
            if isinstance(loss, dict) else [loss] * len(units))
    else:
        losses, metrics, tips = [], [], []
        for i, (label, width, probe) in enumerate(zip(labels, units, probes)):
            loss_i, metrics_i, why = infer_loss(model, label, width, probe, o["task"])
            losses.append(loss_i)
            metrics.append(metrics_i)
            name = "loss" if len(units) == 1 else f"loss ({names[i]})"
            if _overrides(model, "compute_loss"):
                # The user's compute_loss decides the training loss; the
                # inferred one is what it finds in self.loss, and the metrics'.
                tips.append(Tip(3, name, f"your compute_loss (compiled with {loss_i.name})",
                                "your compute_loss computes the loss trained on; "
                                f"{loss_i.name} is compiled for it to read as self.loss and for "
                                f"the metrics, inferred from: {why}", "task=, loss="))
                continue
            tips.append(Tip(3, name, loss_i.name, why + "; mean over the batch", "task=, loss="))
        if len(units) == 1:
            loss, metrics = losses[0], metrics[0]
        elif isinstance(data.y_spec, dict):
            loss, metrics = dict(zip(names, losses)), dict(zip(names, metrics))
        else:
            loss = losses
    for loss_i, label, val_label, width in zip(losses, labels, val_labels, units):
        if isinstance(loss_i, keras.losses.MeanSquaredError) or loss_i in ("mse", "mean_squared_error"):
            label.kind = "continuous"
        if loss_i is not None:
            _label_checks(loss_i, label, val_label, width)
    # Per label in the data's order (as the label statistics and targets are).
    by_name = dict(zip(names, losses))
    parts.update(loss=loss, metrics=metrics, label_losses=(
        [by_name[k] for k, _ in leaves(data.y_spec)] if keys is not None else losses))
    return tips


def _overrides(model, method):
    """Whether the model's class defines its own `method` (a Keras step method)."""
    return getattr(type(model), method, None) is not getattr(keras.Model, method, None)


def _baseline(data, parts):
    """(loss, how) of the constant predictor on the validation split, the
    floor a run must beat to count as having learned (issue 36); None where
    it cannot be computed (several outputs, a loss without one)."""
    if data.structured or not data.output_val_labels:
        return None
    target = parts.get("target")
    value, how = constant_predictor_loss(parts["loss"], data.labels, data.output_val_labels[0],
                                         None if target is None else target[1])
    return None if value is None else (value, how)


def _decide_inputs(model, data, o, parts):
    """Tip 1 (inputs and regression targets) and tip 10 (augmentation)."""
    tips = []
    custom = [m for m in _STEP_METHODS if _overrides(model, m)]
    if custom:
        tips.append(Tip(0, "model", f"your {', '.join(custom)} runs as written",
                        "preprocessing and augmentation run in the input pipeline instead of "
                        "wrapping the model; result.model is your model with the preprocessing "
                        "in front, its fit and evaluate run your steps", ""))
    if data.structured:
        return tips + _decide_structured(model, data, o, parts, custom)
    if o["preprocess"]:
        pre_layers, applied, skipped = preprocessing.plan(model, data.features,
                                                          force=o["preprocess"] is True)
    else:
        pre_layers, applied, skipped = [], None, "preprocess=False"
    if pre_layers:
        tips.append(Tip(1, "inputs", applied, _axis_evidence(data.features)
                        + f"statistics of {data.n_train} training examples; saved inside the "
                        "model", "preprocess=False"))
    else:
        tips.append(Tip(1, "inputs", "unchanged", skipped,
                        "preprocess=True" if o["preprocess"] == "auto" else "preprocess="))
    target = None
    tips += _kept_targets(data, o, parts)
    if (parts["compile"] is None and o["loss"] is None and o["preprocess"]
            and isinstance(parts["loss"], keras.losses.MeanSquaredError)):
        if custom:
            tips.append(_targets_read_by(custom))
        else:
            target, row = _target_scale_for_output(data, parts["probes"][0], model)
            if target is not None:
                data.standardize_targets(*target)
            if row is not None:
                tips.append(row)
    augment = build.augmentation(o["augment"], o["noise_bank"], data.x_shape, o["seed"])
    own = augmentation_layers(model)
    if augment:
        measured = build.measured_effect(o["augment"], o["noise_bank"])
        both = (f"; BOTH are on: the model augments itself too ({', '.join(own)}), and "
                "augment= adds this in front" if own else "")
        tips.append(Tip(10, "augmentation", ", ".join(build.describe_layer(l) for l in augment),
                        "training only (identity at inference), on the raw inputs"
                        + (f"; {measured}" if measured else "") + both, "augment="))
    elif own:
        tips.append(Tip(10, "augmentation", "the model's own", f"{', '.join(own)} inside the "
                        "model; no second one added (augment= would stack one in front)",
                        "augment="))
    parts.update(pre_layers=pre_layers, target=target, augment=augment, custom_step=bool(custom),
                 own_steps=custom)
    return tips


def _axis_evidence(stats):
    """The statistics axis and the evidence it was chosen on (issue 25 item 3)."""
    return f"{stats.evidence}; " if getattr(stats, "evidence", "") else ""


def _targets_read_by(custom, name=None):
    """The targets row for a model whose own steps read the labels: they
    stay as given (standardizing them would change what the user's code
    computes, and result.model's loss would be in other units)."""
    return Tip(1, "targets" if name is None else f"targets ({name})", "unchanged",
               f"your {', '.join(custom)} reads them: standardizing would change the values "
               "your code computes with", "standardize y yourself")


def _target_scale_for_output(data, probe, model):
    """Tip 1 for regression targets, only as far as the output can express
    the result (issue 25): `(mean, std)` or None, and the row. A centered
    target needs an output that goes below 0: a non-negative output (relu,
    softplus, or measured never below 0) gets the targets scaled without
    centering; a bounded one (sigmoid: [0, 1]) keeps them as they are."""
    target = target_scale(data)
    if target is None:
        return None, None
    mean, std = target
    # The measured range decides; the last activation only breaks a tie
    # between "bounded" and "non-negative" (a relu output that stayed below 1).
    activation = output_activation(model)
    measured = f"the output measured on a real batch and on it x100: [{probe.low:.3g}, {probe.high:.3g}]"
    nonnegative = activation in ("relu", "softplus", "exponential", "relu6")
    bounded = activation in ("sigmoid", "softmax", "tanh", "hard_sigmoid")
    if probe.low < 0 and not bounded:
        nonnegative = False  # measured below 0: centered targets are expressible
    elif bounded or (probe.bounded and probe.stressed and not nonnegative):
        return None, Tip(1, "targets", "unchanged",
                         f"the output is bounded ({activation}; {measured}): scaled targets "
                         "could leave its range", "preprocess=False / your own scaling")
    if probe.low >= 0 and (nonnegative or probe.stressed):
        if np.any(np.asarray(data.labels.min) < 0):
            return None, Tip(1, "targets", "unchanged",
                             f"the output never goes below 0 ({activation}; {measured}) but "
                             "the targets do: neither centering nor scaling helps it; check the "
                             "output activation", "preprocess=False")
        shown = ", ".join(f"{s:.4g}" for s in std[:4]) + (
            f" (+{len(std) - 4} more)" if len(std) > 4 else "")
        return (np.zeros_like(mean), std), Tip(
            1, "targets", f"scaled per column, not centered (std {shown}), inverted inside "
            "result.model", f"the output never goes below 0 ({activation}; {measured}), so "
            "centered targets would ask for values it cannot give; the MSE gradient, and so the "
            "right LR, scale with the targets", "preprocess=False")
    shown = ", ".join(f"{m:.4g}/{s:.4g}" for m, s in zip(mean[:4], std[:4]))
    more = f" (+{len(mean) - 4} more)" if len(mean) > 4 else ""
    return target, Tip(1, "targets", f"standardized per column (mean/std {shown}{more}), "
                       "inverted inside result.model",
                       f"the MSE gradient, and so the right LR, scale with the targets; the "
                       f"output can go below 0 ({measured})", "preprocess=False")


def _kept_targets(data, o, parts):
    """A compiled (or `loss=`) regression keeps its targets as they are: say
    so when their scale makes the loss, and so the right LR, large."""
    given = parts["compile"] is not None or o["loss"] is not None
    if not given or data.structured or data.labels.kind != "continuous":
        return []
    scale = target_scale(data)
    if scale is None:
        return []
    mean, std = scale
    return [Tip(1, "targets", f"unchanged (mean {mean[0]:.4g}, std {std[0]:.4g})",
                "your loss is used as is, so the targets are not standardized; at this scale "
                "the MSE gradient, and so the right LR, scale with them: standardize y "
                "yourself, or pass the model uncompiled", "model.compile / loss=")]


def _decide_structured(model, data, o, parts, custom):
    """Tip 1 for several inputs (each numeric one on its own statistics, text
    passed through) and several outputs (each regression target on its own)."""
    tips, input_layers = [], []
    model_inputs = [getattr(t, "name", None) for t in (getattr(model, "inputs", None) or [])]
    for position, ((name, spec), stats) in enumerate(zip(leaves(data.x_spec), data.input_stats)):
        # The model's own input this data leaf feeds: by name for a dict.
        index = (model_inputs.index(name) if isinstance(data.x_spec, dict) and name in model_inputs
                 else position)
        label = "".join(c if c.isalnum() or c == "_" else "_" for c in name) or "input"
        if stats is None:
            input_layers.append([])
            own = reads_strings(model) if spec.dtype == "string" else None
            why = {"sparse": SPARSE_EVIDENCE, "ragged": RAGGED_EVIDENCE}.get(
                spec.dtype, f"{spec.dtype} values: not numeric"
                + (f"; the model encodes them itself ({own})" if own else ""))
            override = {"sparse": "x.toarray() to have it standardized",
                        "ragged": RAGGED_OVERRIDE}.get(spec.dtype, "")
            tips.append(Tip(1, "inputs" if not name else f"input {label}", "passed through",
                            why, override))
            continue
        layers, applied, skipped = ((preprocessing.plan(model, stats, suffix=f"_{label}",
                                                        input_name=name or None, index=index,
                                                        force=o["preprocess"] is True))
                                    if o["preprocess"] else ([], None, "preprocess=False"))
        input_layers.append(layers)
        tips.append(Tip(1, f"input {label}", applied or "unchanged",
                        _axis_evidence(stats) + f"statistics of {data.n_train} training examples"
                        if layers else skipped,
                        "preprocess="))
    targets = []
    names = ([k for k, _ in leaves(data.y_spec)] if isinstance(data.y_spec, dict)
             else _output_names(model, data, len(data.output_labels)))
    for name, loss, labels in zip(names, parts["label_losses"], data.output_labels):
        scale = None
        if (parts["compile"] is None and o["loss"] is None and o["preprocess"]
                and isinstance(loss, keras.losses.MeanSquaredError)):
            if custom:
                tips.append(_targets_read_by(custom, name))
            else:
                scale = target_scale_of(labels)
        targets.append(scale)
        if scale is not None:
            tips.append(Tip(1, f"targets ({name})", "standardized per column, inverted inside "
                            "result.model", "the MSE gradient, and so the right LR, scale with "
                            "the targets", "preprocess=False"))
    if o["augment"] is not None:
        raise ValueError("`augment` needs a model with one input. Received: augment="
                         f"{o['augment']!r} with several inputs")
    parts.update(pre_layers=[], input_layers=input_layers, target=None, targets=targets,
                 augment=[], custom_step=True, structured=True, own_steps=custom)
    if not custom and (any(input_layers) or any(t is not None for t in targets)):
        tips.append(Tip(0, "model", "trained as it is, preprocessing in the input pipeline",
                        "several inputs or outputs; result.model includes the preprocessing", ""))
    return tips


def forget_bias_changes(model, setting, measured=None):
    """Tip 9 per LSTM-family layer: `[(layer, value or None, setting, why)]`;
    a value is what the forget-gate bias is set to before training.
    `measured` is the data's (mean, longest) real steps per example, read
    where the model leaves the length open (padded sequences)."""
    changes = []
    for layer, reader in forget_gate.lstm_layers(model):
        steps = forget_gate.sequence_length(reader)
        read = f"sequences of {steps} steps"
        if steps is None and measured:
            steps = int(round(measured[0]))
            read = (f"sequences of {measured[0]:.1f} real steps on average (measured, padding "
                    f"left out; the longest {measured[1]})")
        elif steps is None:
            read = "sequences of a length neither the model nor the data states"
        if setting is None:
            changes.append((layer, None, "kept", "forget_bias=None"))
        elif not forget_gate.at_keras_default(layer):
            changes.append((layer, None, "yours, kept", "its bias is not Keras' default "
                            "(unit_forget_bias's 1): set by you, or trained"))
        elif setting != "auto":
            changes.append((layer, float(setting), f"{float(setting):g}", "as passed"))
        elif steps is not None and steps >= FORGET_BIAS_STEPS:
            changes.append((layer, FORGET_BIAS, f"{FORGET_BIAS:g} (Keras' default 1 found in "
                            "its bias)", f"{read}, at least {FORGET_BIAS_STEPS}: {FORGET_BIAS_WHY}"))
        elif steps is None:
            changes.append((layer, None, "Keras' 1, kept", f"{read}: the rule ({FORGET_BIAS_STEPS} "
                            f"steps or more) cannot be read, so the default stays"))
        else:
            changes.append((layer, None, "Keras' 1, kept", f"{read}, fewer than "
                            f"{FORGET_BIAS_STEPS}: {FORGET_BIAS_WHY}"))
    return changes


def _decide_forget_bias(model, o, data=None):
    """Tip 9: a large forget-gate bias on LSTMs that read long sequences, set
    now (the calibration and training start from it)."""
    rows = []
    measured = getattr(getattr(data, "features", None), "steps", None)
    for layer, value, setting, why in forget_bias_changes(model, o["forget_bias"], measured):
        if value is not None:
            forget_gate.set_forget_bias(layer, value)
        rows.append(Tip(9, "forget-gate bias", f"{setting} on {type(layer).__name__} "
                        f"{layer.name!r}", why, "forget_bias="))
    return rows


def _decide_training(model, o, parts, data):
    """Tips 4, 5, 7, 11: optimizer, clipping, LR schedule, stopping."""
    tips = _decide_forget_bias(model, o, data)
    recurrent, dropout = recurrent_layers(model), dropout_layers(model)
    if o["clip_norm"] == "auto":
        max_norm = 5.0 if recurrent else None
        why = (f"recurrent layers ({', '.join(recurrent)})" if recurrent
               else "no recurrent layers: norms are recorded, not clipped")
    else:
        max_norm, why = o["clip_norm"], "as passed"
    tips.append(Tip(7, "gradient clipping", f"global norm {max_norm:g}" if max_norm else "off",
                    why, "clip_norm="))
    compiled = parts["compile"]
    if compiled is not None:
        user = compiled["optimizer"]
        user = keras.optimizers.get(user) if isinstance(user, str) else user
        parts["make_optimizer"] = lambda: build.wrap_optimizer(user, max_norm)
        tips.append(Tip(4, "optimizer", f"{type(user).__name__} (from model.compile)",
                        "the user's choice, with its settings, inside a ClippedOptimizer that "
                        "records the update/weight ratio (it clips only as the clipping row says)",
                        "model.compile(optimizer=...)"))
        kept = {k: compiled.get(k) for k in _KEPT_COMPILE if compiled.get(k) not in (None, False, 1)}
        if kept:
            tips.append(Tip(0, "compile settings", ", ".join(f"{k}={v!r}" for k, v in kept.items()),
                            "kept from model.compile", "model.compile(...)"))
        parts["compile_kwargs"] = kept
    else:
        name, why = _choose_optimizer(o)
        parts["optimizer_name"] = name
        momentum = 0.9 if o["momentum"] is None else o["momentum"]
        auto = o["learning_rate"] == "auto"
        # The rate is read when the optimizer is made: the calibration
        # (_decide_learning_rate) sets it after the training model is built.
        parts["learning_rate"] = START_RATES[name] if auto else float(o["learning_rate"])
        parts["make_optimizer"] = lambda: build.clipped_optimizer(
            name, parts["learning_rate"], momentum, max_norm)
        shown = f"SGD(momentum={momentum:g})" if name == "sgd" else "Adam()"
        tips.append(Tip(4, "optimizer", shown, why + "; its rate is the next row's",
                        "optimizer=, momentum=, or compile the model"))
        parts["compile_kwargs"] = {}
    tips += _decide_schedule(o, parts, dropout, data.steps_per_epoch)
    parts["max_norm"] = max_norm
    return tips


# The default optimizers, and where the calibration starts for each: tip 4's
# "normal" 0.1 for SGD, Adam's own default 1e-3 for Adam.
OPTIMIZERS = ("sgd", "adam")
START_RATES = {"sgd": calibration.START, "adam": 1e-3}


def _choose_optimizer(o):
    """The recipe's own optimizer, and why (`optimizer="auto"`)."""
    if o["optimizer"] != "auto":
        return o["optimizer"], "as passed"
    if o["momentum"] is not None:
        return "sgd", "momentum= given: tip 4's SGD with momentum"
    if o["learning_rate"] != "auto":
        return "sgd", ("a given learning_rate keeps tip 4's SGD(momentum=0.9) start "
                       "(optimizer='adam' for Adam at that rate)")
    return "adam", ("the rate is read from the update ratio: with it, Adam matched or beat "
                    "SGD(momentum=0.9) on seven of the quality benchmark's eight real tasks "
                    "(BUILD_NOTES.md, issue 24)")


# A plateau is judged over at least this many updates: with a few updates an
# epoch (small data), a patience of 3 epochs halves the rate on validation
# noise long before the loss has settled (BUILD_NOTES.md, issue 24).
PATIENCE_UPDATES = 100


def _patience(o, dropout, steps):
    """Epochs without improvement before halving, and why: 3 (6 with
    dropout), or more when that many epochs hold fewer than PATIENCE_UPDATES
    updates."""
    if o["patience"]:
        return o["patience"], None
    base = 6 if dropout else 3
    if not steps or steps * base >= PATIENCE_UPDATES:
        return base, None
    patience = -(-PATIENCE_UPDATES // steps)
    return patience, (f"{base} epochs would be {steps * base} updates at {steps} per epoch; "
                      f"{patience} epochs give the {PATIENCE_UPDATES} updates a plateau is "
                      "judged over")


def _decide_schedule(o, parts, dropout, steps=None):
    """Tip 4: our plateau rule, unless the user's callbacks own the LR or stopping."""
    user = list(o["callbacks"] or [])
    lr_owners = [type(c).__name__ for c in user if isinstance(
        c, (keras.callbacks.ReduceLROnPlateau, keras.callbacks.LearningRateScheduler))]
    stoppers = [type(c).__name__ for c in user if isinstance(c, keras.callbacks.EarlyStopping)]
    patience, longer = _patience(o, dropout, steps)
    tips = []
    if lr_owners:
        parts["plateau"] = None
        tips.append(Tip(4, "LR schedule", f"yours ({', '.join(lr_owners)})",
                        "your callback takes precedence: ours (halve on plateau, stop when tiny, "
                        "restore best) is not added", "callbacks="))
        return tips
    restore = not stoppers
    # Improvement on the loss's own scale (issue 36): 1e-3 of the best value
    # is the absolute 1e-4 it replaces at a loss of 0.1.
    plateau = dict(patience=patience, stop_ratio=None, restore_best_weights=restore,
                   verbose=int(parts["verbose"] > 0), min_delta=0.0,
                   min_relative_delta=MIN_RELATIVE_DELTA)
    if stoppers or o["stop_ratio"] is None:
        stop_text = "never stop early"
    elif o["stop_ratio"] == "auto":
        # Two halvings that brought nothing, and updates that no longer move
        # the weights: more halvings cannot help (BUILD_NOTES.md, issue 24).
        plateau.update(stop_patience=2 * patience, stop_update_fraction=STILL_FRACTION)
        stop_text = (f"stop after {2 * patience} epochs without a better val_loss once the "
                     f"update ratio is below {STILL_FRACTION:g} x that of the last epoch that "
                     "improved")
    else:
        plateau["stop_ratio"] = o["stop_ratio"]
        stop_text = f"stop below {o['stop_ratio']:g} x initial"
    parts["plateau"] = plateau
    tips.append(Tip(4, "LR schedule", f"halve after {patience} validated epochs without a "
                    f"{MIN_RELATIVE_DELTA:g} relative improvement; {stop_text}"
                    + ("; restore best weights" if restore else ""),
                    "divide by 2 on plateau, stop when tiny" + (f"; {longer}" if longer else "")
                    + (f"; your {', '.join(stoppers)} decides stopping and best weights"
                       if stoppers else ""), "patience=, stop_ratio=, callbacks="))
    if dropout:
        tips.append(Tip(11, "dropout", f"patience {patience} (not 3)",
                        f"dropout layers ({', '.join(dropout)}) need longer training: 6 epochs"
                        + (", raised to the updates a plateau is judged over" if longer else ""),
                        "patience="))
    return tips


def _audit(model, data, o, parts):
    if not o["audit"]:
        parts["audit"] = None
        return []
    if data.structured:
        parts["audit"] = None
        through = [spec.dtype for (_, spec), stats in zip(leaves(data.x_spec),
                                                          data.input_stats or [])
                   if stats is None]
        if len(leaves(data.x_spec)) == 1 and len(data.output_labels or []) == 1 and through:
            what = {"sparse": "sparse, passed through as given",
                    "ragged": "ragged, passed through as given"}.get(
                through[0], "text it encodes itself")
            why = f"its rules read dense numeric features, and this model's input is {what}"
        else:
            why = ("the audit checks models with one numeric input and one output; run "
                   "keras_recipes.audit on each part")
        return [Tip(0, "audit", "not run", why, "")]
    # Rules whose advice this call applies itself are not reported.
    skip = {"dropout", "gradient clipping", "batch size"}
    if o["preprocess"]:
        skip |= {"inputs standardized", "log1p"}
    # The model as it will be trained: after the preprocessing added here.
    trained = model if parts.get("fused") is not None else parts["full"]
    report = audit_data(trained, data, o["batch_size"], loss=parts["loss"],
                        will_clip=parts["max_norm"] is not None, compile_probe=False, skip=skip)
    parts["audit"] = report
    if report.failures:
        raise ValueError(
            "The audit found problems that would spoil training (fix them, or pass "
            "audit=False to train anyway):\n"
            + "\n".join(f"  tip {f.tip} {f.rule}: {f.message} (fix: {f.fix})"
                        for f in report.failures))
    if report.warnings:
        return [Tip(0, "audit", "; ".join(f"{f.rule}: {f.message}" for f in report.warnings),
                    "warnings only; see result.audit", "audit=False")]
    return []


def _decide_determinism(o, parts):
    """Same seed, same numbers: the backend's deterministic kernels for the
    run when a seed is given (`deterministic="auto"`). Keras turns XLA off
    under TensorFlow's op determinism, so on TensorFlow the two exclude each
    other; which one wins is said."""
    wanted = o["deterministic"]
    enabled = o["seed"] is not None if wanted == "auto" else wanted
    conflict = enabled and parts["jit"] and keras.backend.backend() == "tensorflow"
    if conflict and wanted is True and o["jit_compile"] is True:
        raise ValueError(
            "jit_compile=True and deterministic=True exclude each other on TensorFlow: Keras "
            "runs without XLA under op determinism. Choose one. "
            "Received: jit_compile=True, deterministic=True")
    if conflict and wanted is True:
        parts["jit"] = False
        parts["execution"] = dict(parts["execution"], jit_compile=False)
        parts["jit_note"] = ("deterministic=True: Keras runs without XLA under TensorFlow's "
                             "op determinism")
    elif conflict:
        parts["deterministic"] = False
        return Tip(0, "determinism", "off (XLA is on)",
                   "Keras turns XLA off under TensorFlow's op determinism, so with XLA the "
                   "last bits of two runs may differ; deterministic=True gives bitwise repeats "
                   "without XLA", "deterministic=, jit_compile=")
    parts["deterministic"] = bool(enabled)
    setting, reason = determinism.describe(enabled)
    return Tip(0, "determinism", setting, reason, "deterministic=")


def _decide_execution(parts, data, o):
    """XLA where it pays. With a seed the choice follows a rule (device,
    blocking layers), so two runs of the same call compile alike."""
    jit, tip, execution = build.choose_jit(o["jit_compile"], parts, data, o["seed"])
    parts.update(jit=jit, execution=execution)
    return tip

