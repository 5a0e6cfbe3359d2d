"""Tip 1's rows: the inputs' preprocessing where it is shown safe, and the
regression targets' scale as far as the output can express it.
"""

import keras
import numpy as np

from keras_recipes import build
from keras_recipes import preprocessing
from keras_recipes.data import leaves
from keras_recipes.data import target_scale
from keras_recipes.data import target_scale_of
from keras_recipes.data.checks import RAGGED_EVIDENCE
from keras_recipes.data.checks import RAGGED_OVERRIDE
from keras_recipes.data.checks import SPARSE_EVIDENCE
from keras_recipes.decide.task import STEP_METHODS
from keras_recipes.decide.task import output_names
from keras_recipes.decide.task import overrides_method
from keras_recipes.modelinfo import augmentation_layers
from keras_recipes.modelinfo import output_activation
from keras_recipes.modelinfo import reads_strings
from keras_recipes.result import Tip


def decide_inputs(model, data, o, decided):
    """Tip 1 (inputs and regression targets) and tip 10 (augmentation)."""
    tips = []
    custom = [m for m in STEP_METHODS if overrides_method(model, m)]
    if custom:
        tips.append(Tip(0, "model", f"your {', '.join(custom)} runs as written",
                        "preprocessing and augmentation run in the input pipeline instead of "
                        "wrapping the model; result.model is your model with the preprocessing "
                        "in front, its fit and evaluate run your steps", ""))
    if data.structured:
        return tips + decide_structured(model, data, o, decided, custom)
    if o["preprocess"]:
        pre_layers, applied, skipped = preprocessing.plan(
            model, data.features, force=o["preprocess"] is True,
            log1p_check=log1p_check(data, decided))
    else:
        pre_layers, applied, skipped = [], None, "preprocess=False"
    if pre_layers:
        tips.append(Tip(1, "inputs", applied, axis_evidence(data.features)
                        + f"statistics of {data.n_train} training examples; saved inside the "
                        "model", "preprocess=False"))
    else:
        tips.append(Tip(1, "inputs", "unchanged", skipped,
                        "preprocess=True" if o["preprocess"] == "auto" else "preprocess="))
    target = None
    tips += kept_targets(data, o, decided)
    if (decided.compile is None and o["loss"] is None and o["preprocess"]
            and isinstance(decided.loss, keras.losses.MeanSquaredError)):
        if custom:
            tips.append(targets_read_by(custom))
        else:
            target, row = target_scale_for_output(data, decided.probes[0], model)
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
    decided.update(pre_layers=pre_layers, target=target, augment=augment, custom_step=bool(custom),
                 own_steps=custom)
    return tips


CHECK_ROWS = 20000  # per split, for log1p's linear check


def log1p_check(data, decided):
    """`preprocessing.log1p_linear_check` on the recipe's own training and
    validation splits (up to CHECK_ROWS rows each), read only when the
    spread rule chose a column; class ids become one column per class."""
    def rows(split):
        xs, ys, n = [], [], 0
        for x, y in data.example_batches(split):
            if not all(isinstance(a, np.ndarray) for a in (x, y)):
                return None, None  # several inputs or outputs: not one table against one target
            xs.append(np.asarray(x, "float64"))
            ys.append(np.asarray(y))
            n += len(xs[-1])
            if n >= CHECK_ROWS:
                break
        if not xs:
            return None, None
        x, y = np.concatenate(xs)[:CHECK_ROWS], np.concatenate(ys)[:CHECK_ROWS]
        if isinstance(decided.loss, keras.losses.SparseCategoricalCrossentropy):
            return x, np.eye(int(y.max()) + 1)[y.astype(int).ravel()]
        return x, y.astype("float64").reshape(len(y), -1)

    def check(columns):
        (x_train, y_train), (x_val, y_val) = rows("train"), rows("validation")
        if x_val is None or x_train is None or x_train.ndim != 2:
            return True, None  # nothing to check against: the tip as it stands
        if y_val.shape[1] != y_train.shape[1]:  # a class missing from one split
            width = max(y_val.shape[1], y_train.shape[1])
            y_train, y_val = (np.pad(a, ((0, 0), (0, width - a.shape[1]))) for a in
                              (y_train, y_val))
        return preprocessing.log1p_linear_check(x_train, y_train, x_val, y_val)(columns)

    return check


def axis_evidence(stats):
    """The statistics axis and the evidence it was chosen on (issue 25 item 3)."""
    return f"{stats.evidence}; " if getattr(stats, "evidence", "") else ""


def targets_read_by(custom, name=None):
    """The targets row for a model whose own steps read the labels: they
    stay as given (standardizing them would change what the user's code
    computes, and result.model's loss would be in other units)."""
    return Tip(1, "targets" if name is None else f"targets ({name})", "unchanged",
               f"your {', '.join(custom)} reads them: standardizing would change the values "
               "your code computes with", "standardize y yourself")


def target_scale_for_output(data, probe, model):
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


def kept_targets(data, o, decided):
    """A compiled (or `loss=`) regression keeps its targets as they are: say
    so when their scale makes the loss, and so the right LR, large."""
    given = decided.compile is not None or o["loss"] is not None
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


def decide_structured(model, data, o, decided, custom):
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
                        axis_evidence(stats) + f"statistics of {data.n_train} training examples"
                        if layers else skipped,
                        "preprocess="))
    targets = []
    names = ([k for k, _ in leaves(data.y_spec)] if isinstance(data.y_spec, dict)
             else output_names(model, data, len(data.output_labels)))
    for name, loss, labels in zip(names, decided.label_losses, data.output_labels):
        scale = None
        if (decided.compile is None and o["loss"] is None and o["preprocess"]
                and isinstance(loss, keras.losses.MeanSquaredError)):
            if custom:
                tips.append(targets_read_by(custom, name))
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
    decided.update(pre_layers=[], input_layers=input_layers, target=None, targets=targets,
                 augment=[], custom_step=True, structured=True, own_steps=custom)
    if not custom and (any(input_layers) or any(t is not None for t in targets)):
        tips.append(Tip(0, "model", "trained as it is, preprocessing in the input pipeline",
                        "several inputs or outputs; result.model includes the preprocessing", ""))
    return tips
