"""The task and the loss (tip 3): inferred from the labels and the model's
output measured on a real batch, or the user's own; the constant
predictor's loss every run must beat.
"""

import re

import keras
import numpy as np

from keras_recipes import build
from keras_recipes.data import leaves
from keras_recipes.losses import check_labels
from keras_recipes.losses import constant_predictor_loss
from keras_recipes.losses import infer_loss
from keras_recipes.losses import mean_reduced
from keras_recipes.losses import probe_output
from keras_recipes.result import Tip


# Settings of model.compile that fit_with_tips keeps as they are.
KEPT_COMPILE = ("loss_weights", "weighted_metrics", "run_eagerly", "steps_per_execution")


STEP_METHODS = ("train_step", "test_step", "compute_loss")


def live_compile(source):
    """The arguments the user gave `model.compile`, as the live objects
    (never a serialize/deserialize round trip); None when not compiled."""
    if not (getattr(source, "compiled", False) and source.optimizer is not None
            and source.loss is not None):
        return None
    config = getattr(getattr(source, "_compile_config", None), "config", None)
    if config is None:  # not a Keras 3 Trainer: the public attributes only
        config = {"optimizer": source.optimizer, "loss": source.loss}
    return dict(config)


def measure_outputs(model, data):
    """Per output: its width and an `OutputProbe` on a real batch."""
    x, _ = data.first_batch()
    if not data.drop_remainder:  # else the batch is the model's fixed size
        x = keras.tree.map_structure(lambda a: a[:64], x)
    if not model.built and not data.structured:
        model.build((None,) + tuple(data.x_shape))
    if getattr(data, "ragged", False):
        called = call_on_ragged(model, x, data)
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


def call_on_ragged(model, x, data):
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
        undeclared = len(inputs) == 1 and getattr(inputs[0], "ragged", None) is False
        # Keras wraps the layer's own message ("Exception encountered when
        # calling GRU.call()" and, a line below, the reason): keep both.
        lines = [line.strip() for line in str(error).replace("\x1b[1m", "").replace(
            "\x1b[0m", "").splitlines() if line.strip()]
        where = next((line for line in lines if line.startswith("Exception encountered")), "")
        reason = next((line for line in lines if not line.startswith(("Exception encountered",
                                                                      "Arguments received",
                                                                      "\u2022"))), "")
        reason = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", reason)
        said = "; ".join(part for part in (where, reason[:200]) if part) or type(error).__name__
        advice = ("the model's input is not declared ragged=True: declare keras.Input(..., "
                  "ragged=True) with layers that read ragged tensors" if undeclared else
                  "a layer of the model does not take ragged tensors: use layers that read them "
                  "(tf.ragged.map_flat_values inside a custom layer, pooling over the ragged "
                  "axis)")
        raise TypeError(
            f"The data's {', '.join(ragged)} is ragged (a tf.RaggedTensor: its lengths vary per "
            f"example), and the model fails on a real batch of it; model.fit fails on it too. "
            f"Either {advice}, or pad it (x.to_tensor(), or padded_batch for a dataset) and put "
            f"keras.layers.Masking(0.0) first in the model. Received: {type(error).__name__}: "
            f"{said}") from error


def output_names(model, data, count, keys=None):
    """Names of the outputs in the model's output order: the labels' dict keys
    paired with them by name (`keys`), else the model's output names."""
    if keys is not None:
        return list(keys)
    names = list(getattr(model, "output_names", None) or [])
    return names if len(names) == count else [f"output {i}" for i in range(count)]


def in_output_order(keys, data, labels):
    """Per-label values (in the data's order: sorted dict keys) reordered to
    the model's outputs, joined by name where the labels are a dict."""
    if keys is None:
        return list(labels)
    order = [k for k, _ in leaves(data.y_spec)]
    return [labels[order.index(k)] for k in keys]


def label_checks(loss, labels, val_labels, units):
    width = int(np.prod(labels.shape)) if labels.shape else 1
    if isinstance(loss, keras.losses.MeanSquaredError) and width != units:
        raise ValueError(
            f"Regression needs one output per label column: the labels have {width} label "
            f"column{'s' if width > 1 else ''} ({labels.evidence()}), the model has "
            f"{units} outputs. Pass task= if the labels are class ids. "
            f"Received: labels of shape {labels.shape}, {units} outputs")
    check_labels(loss, labels, units, "data")
    check_labels(loss, val_labels, units, "validation_data")


def given_loss(o, compiled):
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


def decide_task(model, data, o, decided):
    """Tip 3: the loss, from the labels and the measured output, or the user's;
    one loss per output."""
    units, probes, keys = measure_outputs(model, data)
    if not model.trainable_weights:
        frozen = len(model.non_trainable_weights)
        raise ValueError(
            "The model has no trainable weights, so there is nothing to train (every layer is "
            "frozen, or it has no weights). Set `layer.trainable = True` on the layers to train. "
            f"Received: model={model.name!r} with 0 trainable and {frozen} frozen weights")
    # A model the recipe compiled (an earlier call) counts as the user left it.
    compiled = build.users_compile(decided.source, live_compile(decided.source))
    decided.update(units=units[0] if len(units) == 1 else units, compile=compiled, probes=probes)
    if len(data.output_labels) != len(units):
        raise ValueError(f"The model has {len(units)} output(s) and the data "
                         f"{len(data.output_labels)} label array(s); give one label array per "
                         "output. "
                         f"Received: {len(data.output_labels)} label arrays")
    # Labels joined to outputs by name (a dict's keys), by position otherwise.
    labels = in_output_order(keys, data, data.output_labels)
    val_labels = in_output_order(keys, data, data.output_val_labels)
    names = output_names(model, data, len(units), keys)
    if o["loss"] is not None or compiled is not None:
        loss, metrics, tip = given_loss(o, compiled)
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
            if overrides_method(model, "compute_loss"):
                # The user's compute_loss decides the training loss; the
                # inferred one is what it finds in self.loss, and the metrics'.
                tips.append(Tip(3, name, f"your compute_loss (compiled with {loss_i.name})",
                                "your compute_loss computes the loss trained on; "
                                f"{loss_i.name} is compiled for it to read as self.loss and for "
                                f"the metrics, inferred from: {why}", "task=, loss="))
                continue
            shown = ", ".join(m if isinstance(m, str) else m.name for m in metrics_i)
            tips.append(Tip(3, name, loss_i.name, why + "; mean over the batch"
                            + (f"; metrics: {shown} (compile the model for your own)"
                               if shown else ""), "task=, loss="))
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
            label_checks(loss_i, label, val_label, width)
    # Per label in the data's order (as the label statistics and targets are).
    by_name = dict(zip(names, losses))
    decided.update(loss=loss, metrics=metrics, label_losses=(
        [by_name[k] for k, _ in leaves(data.y_spec)] if keys is not None else losses))
    return tips


def overrides_method(model, method):
    """Whether the model's class defines its own `method` (a Keras step method)."""
    return getattr(type(model), method, None) is not getattr(keras.Model, method, None)


def constant_baseline(data, decided):
    """(loss, how) of the constant predictor on the validation split, the
    floor a run must beat to count as having learned (issue 36); None where
    it cannot be computed (several outputs, a loss without one)."""
    if data.structured or not data.output_val_labels:
        return None
    target = decided.target
    value, how = constant_predictor_loss(decided.loss, data.labels, data.output_val_labels[0],
                                         None if target is None else target[1])
    return None if value is None else (value, how)
