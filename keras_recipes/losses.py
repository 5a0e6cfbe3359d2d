"""Tip 3 as decisions: the task and a mean-reduced loss, inferred from the
label values and the model's measured output (never from the labels' dtype
or from layer order); the check that labels fit the output; the conversion
of a sum-reduced loss to the batch mean."""

import dataclasses
import math

import keras
import numpy as np

from keras_recipes.initializers import constant_kernels
from keras_recipes.modelinfo import output_activation

TASKS = ("classification", "binary", "multilabel", "regression")


@dataclasses.dataclass
class OutputProbe:
    """What the model's output does on real inputs and on inputs scaled x100.

    An output that stays in [0, 1] (rows summing to 1) even for inputs far
    outside the data comes from a bounded activation; one that leaves it is
    logits. When only the real batch could be used, [0, 1] is ambiguous."""

    units: int
    low: float
    high: float
    bounded: bool  # every value in [0, 1]
    sums_to_one: bool  # every row sums to 1 (units > 1)
    stressed: bool  # the x100 inputs were used too
    varies: bool = True  # the output changed with the input (or the x100 stress)

    def describe(self):
        shape = f"{self.units} output{'s' if self.units > 1 else ''}"
        where = "a real batch and on it scaled x100" if self.stressed else "a real batch"
        sums = ", rows sum to 1" if self.sums_to_one else ""
        still = "" if self.varies else ", the same for every input (nothing reaches it)"
        return (f"{shape}, measured on {where}: range [{self.low:.3g}, {self.high:.3g}]{sums}"
                f"{still}")

    @property
    def probabilities(self):
        """True (probabilities), False (logits) or None (cannot tell)."""
        if not self.bounded:
            return False
        if not self.varies and not self.sums_to_one:
            return None  # a constant output in [0, 1] (all 0: a dead start) shows nothing
        if self.units > 1:
            return True if self.sums_to_one else (True if self.stressed else None)
        return True if self.stressed else None


def probe_output(model, x, stress=True):
    """Measures each output of `model` on the batch `x` (and on `x * 100 + 1`
    when `stress`). Returns one `OutputProbe` per output."""
    batches = [x]
    if stress:
        batches.append(keras.tree.map_structure(
            lambda a: np.asarray(a, dtype="float32") * 100.0 + 1.0, x))
    runs = [[keras.ops.convert_to_numpy(o) for o in keras.tree.flatten(model(b, training=False))]
            for b in batches]
    dead = bool(constant_kernels(model))
    probes = []
    for i in range(len(runs[0])):
        outputs = [run[i].reshape(len(run[i]), -1).astype("float64") for run in runs]
        values = np.concatenate([o.ravel() for o in outputs])
        units = outputs[0].shape[-1]
        finite = values[np.isfinite(values)]
        low = float(finite.min()) if finite.size else float("nan")
        high = float(finite.max()) if finite.size else float("nan")
        bounded = bool(finite.size == values.size and low >= 0.0 and high <= 1.0)
        sums = units > 1 and all(np.allclose(o.sum(-1), 1.0, atol=1e-3) for o in outputs)
        # Whether the input reaches the output: it differs between examples,
        # or between the real batch and the stressed one. A saturated
        # sigmoid is constant too; only kernels holding one value each (a
        # dead start) make a constant output say nothing.
        varies = any(len(o) > 1 and np.ptp(o, axis=0).max() > 0 for o in outputs) or (
            len(outputs) > 1 and not np.array_equal(outputs[0], outputs[1]))
        varies = varies or not dead
        probes.append(OutputProbe(units, low, high, bounded, bool(sums), stress, bool(varies)))
    return probes


def _from_logits(probe, model, ambiguous_notes):
    """Whether the output is logits, from the probe; the last activation
    breaks a tie and the tie is said."""
    measured = probe.probabilities
    if measured is not None:
        return not measured, ("probabilities" if measured else "logits")
    activation = output_activation(model)
    guess = activation not in ("softmax", "sigmoid")
    why = ("it is the same for every input, so the probe shows nothing" if not probe.varies
           else "it could not be stressed")
    ambiguous_notes.append(
        f"ambiguous: the output stayed in [0, 1] on the probe, but {why}; "
        f"the last activation defined ({activation}) decides from_logits={guess}")
    return guess, ("logits" if guess else "probabilities")


def infer_task(labels, units):
    """The task the labels and the output width show, with the evidence."""
    evidence = labels.evidence()
    if labels.kind == "onehot":
        return "classification", evidence
    if labels.kind == "multilabel":
        return ("multilabel", evidence) if labels.shape[-1] == units else ("regression", evidence)
    if labels.kind == "integer":
        if units == 1:
            if labels.distinct <= 2 and labels.min >= 0 and labels.max <= 1:
                return "binary", evidence + ", one output"
            return "regression", evidence + f", one output: read as a quantity, not {labels.distinct} classes"
        if labels.shape in ((), (1,)):
            return "classification", evidence + f", {units} outputs"
    return "regression", evidence


def infer_loss(model, labels, units, probe=None, task=None):
    """Tip 3: `(loss, metrics, evidence)` from the labels and the measured output.

    Args:
        model: The model whose output the loss reads.
        labels: `LabelStats` of the training labels.
        units: Width of the model's output.
        probe: `OutputProbe`, or `None` to use the last activation defined.
        task: One of `TASKS` to override the inference, or `None`.
    """
    inferred, evidence = infer_task(labels, units)
    if task is not None:
        evidence = f"task={task!r} as passed ({evidence.split(':')[0]} suggested {inferred})"
    task = task or inferred
    notes = []
    if probe is None:
        activation = output_activation(model)
        from_logits = activation not in ("softmax", "sigmoid")
        output = f"last activation {activation}"
    else:
        from_logits, output = _from_logits(probe, model, notes)
        output = f"{probe.describe()} -> {output}"
    independent = (inferred == task == "classification" and labels.kind == "onehot"
                   and probe is not None and probe.units > 1 and probe.stressed
                   and probe.bounded and not probe.sums_to_one)
    if independent:
        # One-hot labels, but each output unit its own probability (a sigmoid
        # head): categorical cross-entropy would read rows that do not sum to
        # 1 as a distribution (issue 38).
        loss = keras.losses.BinaryCrossentropy(from_logits=False)
        metrics = [keras.metrics.CategoricalAccuracy(name="accuracy"),
                   keras.metrics.BinaryAccuracy(name="binary_accuracy")]
        return loss, metrics, (
            f"{evidence}; {output}, but its rows do not sum to 1 (each unit an independent "
            "probability, as a sigmoid gives) -> binary_crossentropy per unit (from_logits="
            "False); task='classification' (with a softmax output) for categorical")
    if task == "classification":
        sparse = labels.kind != "onehot"
        loss = (keras.losses.SparseCategoricalCrossentropy if sparse
                else keras.losses.CategoricalCrossentropy)(from_logits=from_logits)
        metrics = ["accuracy"]
    elif task in ("binary", "multilabel"):
        loss = keras.losses.BinaryCrossentropy(from_logits=from_logits)
        metrics = [keras.metrics.BinaryAccuracy(threshold=0.0 if from_logits else 0.5)]
    else:
        loss = keras.losses.MeanSquaredError()
        metrics = [keras.metrics.R2Score()] if units == 1 and labels.shape in ((), (1,)) else []
        return loss, metrics, f"{evidence} -> {task}: mean squared error"
    why = f"{evidence}; {output} -> {task}: {loss.name} (from_logits={from_logits})"
    return loss, metrics, "; ".join([why] + notes)


def check_labels(loss, labels, units, name="data"):
    """Labels that cannot fit the output are an error before training."""
    if labels is None or labels.kind not in ("integer", "onehot"):
        return
    if labels.kind == "onehot" and labels.shape[-1] != units and not isinstance(
            loss, keras.losses.MeanSquaredError):
        raise ValueError(
            f"`{name}` has one-hot labels of width {labels.shape[-1]} for a model with "
            f"{units} outputs. Received: labels of shape {labels.shape}")
    if labels.kind != "integer":
        return
    sparse = isinstance(loss, keras.losses.SparseCategoricalCrossentropy) or (
        isinstance(loss, str) and "sparse_categorical" in loss)
    if sparse and (labels.min < 0 or labels.max >= units):
        raise ValueError(
            f"Labels must lie in [0, {units - 1}] for a model with {units} outputs "
            f"(checked in `{name}`). "
            f"Received: labels from {int(labels.min)} to {int(labels.max)}"
        )
    binary = isinstance(loss, keras.losses.BinaryCrossentropy)
    if binary and (labels.min < 0 or labels.max > 1):
        raise ValueError(
            f"Binary cross-entropy needs 0/1 labels (checked in `{name}`). "
            f"Received: labels from {int(labels.min)} to {int(labels.max)}"
        )


def mean_reduced(loss):
    """Tip 3: converts a sum-reduced Keras loss to the batch mean."""
    if isinstance(loss, keras.losses.Loss) and getattr(loss, "reduction", None) == "sum":
        config = dict(loss.get_config(), reduction="sum_over_batch_size")
        return type(loss).from_config(config), True
    return loss, False


def constant_predictor_loss(loss, labels, val_labels, target_std=None):
    """The validation loss of the best constant prediction learned from the
    training labels (their class frequencies, or their mean), and how it was
    computed; `(None, why not)` for a loss it cannot be computed for. A model
    whose validation loss is no better has learned nothing usable (issue 36).

    Args:
        loss: The loss trained with (a Keras loss object).
        labels: `LabelStats` of the training split.
        val_labels: `LabelStats` of the validation split.
        target_std: Per-column std the targets were divided by, or None.
    """
    classes = (keras.losses.SparseCategoricalCrossentropy, keras.losses.CategoricalCrossentropy,
               keras.losses.BinaryCrossentropy)
    if isinstance(loss, classes) and labels.class_counts and val_labels.class_counts:
        if isinstance(loss, keras.losses.BinaryCrossentropy) and not labels.binary:
            return None, "multilabel"
        total = sum(labels.class_counts.values())
        seen = sum(val_labels.class_counts.values())
        # Training frequencies, with half a count for a class it never saw.
        known = set(labels.class_counts) | set(val_labels.class_counts)
        unseen = len(known - set(labels.class_counts))
        p = {c: labels.class_counts.get(c, 0.5) / (total + 0.5 * unseen) for c in known}
        if isinstance(loss, keras.losses.BinaryCrossentropy):
            p1 = p.get(1, p.get(1.0, 0.5))
            q1 = (val_labels.class_counts.get(1, 0) + val_labels.class_counts.get(1.0, 0)) / seen
            value = -(q1 * np.log(p1) + (1 - q1) * np.log(1 - p1))
        else:
            value = -sum(n / seen * np.log(p[c]) for c, n in val_labels.class_counts.items())
        return float(value), "predicting the training split's class frequencies"
    if (isinstance(loss, keras.losses.MeanSquaredError) and labels.mean is not None
            and val_labels.mean is not None):
        scale = np.ones_like(labels.mean) if target_std is None else np.asarray(target_std)
        spread = (val_labels.std ** 2 + (val_labels.mean - labels.mean) ** 2) / scale ** 2
        return float(np.mean(spread)), "predicting the training split's mean"
    return None, f"no constant-predictor baseline for {type(loss).__name__}"


# A run whose best validation loss is not at least this much below the
# constant predictor's has learned nothing usable.
LEARNED_FRACTION = 0.98


# ... and one whose training loss fell to at most this share of it fits its
# training data: it learned, but nothing that holds on the validation data.
FITTED_FRACTION = 0.5
FITTED = "the model fits its training data"


def not_learning_override(event):
    """The arguments a 'not learning' event points at."""
    return "validation_data=" if FITTED in event else "learning_rate=, optimizer="


def not_learning_event(plateau, baseline, train_loss=()):
    """The 'not learning' event of a finished run, or None: the best
    validation loss (the plateau rule's) against the constant predictor's on
    the same split (`baseline`, from `constant_predictor_loss`). The training
    loss tells the two cases apart: nothing learned at all, or the training
    data fitted and nothing of it holding on the validation data."""
    if baseline is None or plateau is None or plateau.best_weights_value is None:
        return None
    value, how = baseline
    best = plateau.best_weights_value
    if not (math.isfinite(best) and best >= LEARNED_FRACTION * value):
        return None
    head = (f"not learning: the best val_loss {best:.4g} (epoch {plateau.best_epoch + 1}) is no "
            f"better than {value:.4g}, {how}")
    fitted = [v for v in train_loss if math.isfinite(v)]
    if fitted and min(fitted) <= FITTED_FRACTION * value:
        return (f"{head}, while the training loss fell to {min(fitted):.4g}: {FITTED}, but "
                "nothing it learned holds on the validation data. Check that "
                "validation_data is the same kind of data as the training set (a new speaker, "
                "site or period is a harder test than new examples of the same ones), or give "
                "the model more varied data or regularization; a higher learning rate will not "
                "help")
    return (f"{head}: the model learned nothing usable. Raise "
            "learning_rate= (or leave it 'auto'), check the labels and the model's output, or "
            "try optimizer='adam'")
