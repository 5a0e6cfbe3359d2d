"""The audit's rules, one function per tip's check: each takes the model, the
`Data` and a context of measurements, and returns `Finding`s.
"""

import dataclasses
import hashlib
import math

import keras
import numpy as np

from keras_recipes import sharding
from keras_recipes.callbacks import find_clipped_optimizer
from keras_recipes.diagnostics.gradients import check_batch_independence
from keras_recipes.forget_gate import FORGET_BIAS_STEPS
from keras_recipes.initializers import compute_fan_in
from keras_recipes.modelinfo import dropout_layers
from keras_recipes.modelinfo import jit_blockers
from keras_recipes.modelinfo import recurrent_layers
from keras_recipes.modelinfo import walk_layers
from keras_recipes.preprocessing import log1p_candidates
from keras_recipes.preprocessing import normalizing_layers
from keras_recipes.stateful import reset_states


STATUSES = ("pass", "warn", "fail")


@dataclasses.dataclass
class Finding:
    """One audit rule's verdict.

    Attributes:
        tip: The tip number (1-12) the rule belongs to.
        rule: Short rule name.
        status: "pass", "warn" or "fail".
        message: What was measured.
        fix: One line of code that addresses it ("" when passing).
    """

    tip: int
    rule: str
    status: str
    message: str
    fix: str = ""


# Relative cross-example gradient from which the batch-independence rule fails.
_STRONG_LEAK = 5e-2


def _names(indices, names=None, limit=6):
    names = names or {}
    shown = [names.get(i, f"feature {i}") for i in indices[:limit]]
    more = f" and {len(indices) - limit} more" if len(indices) > limit else ""
    return ", ".join(shown) + more


def rule_labels_in_range(model, data, ctx):
    labels, units = data.labels, ctx["units"]
    if labels.kind != "integer" or ctx["loss_kind"] not in ("sparse", "binary"):
        return Finding(1, "labels in output range", "pass", "labels are not class indices")
    high = units - 1 if ctx["loss_kind"] == "sparse" else 1
    if labels.min < 0 or labels.max > high:
        return Finding(1, "labels in output range", "fail",
                       f"labels span {int(labels.min)}..{int(labels.max)} but the model has "
                       f"{units} outputs (valid: 0..{high})",
                       f"keras.layers.Dense({int(labels.max) + 1})  # as the last layer")
    return Finding(1, "labels in output range", "pass",
                   f"labels {int(labels.min)}..{int(labels.max)} fit {units} outputs")


def rule_class_balance(model, data, ctx):
    counts = data.labels.class_counts
    if data.labels.kind == "integer" and len(counts) == 1 and ctx["loss_kind"] in ("sparse", "binary"):
        (label, n), = counts.items()
        return Finding(1, "class balance", "warn",
                       f"every one of the {n} training labels is class {label}: a classifier "
                       "cannot learn to tell classes apart from one class",
                       "check how the labels were loaded, filtered or split (all classes present?)")
    if data.labels.kind != "integer" or len(counts) < 2:
        return Finding(1, "class balance", "pass", "not a classification task")
    ratio = max(counts.values()) / max(min(counts.values()), 1)
    text = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())[:12])
    if ratio > 10:
        return Finding(1, "class balance", "warn",
                       f"classes are imbalanced {ratio:.0f}:1 ({text})",
                       "model.fit(..., class_weight={c: n_total / (n_classes * n_c) for c in classes})")
    return Finding(1, "class balance", "pass", f"largest/smallest class {ratio:.1f}:1 ({text})")


def example_hashes(data, split):
    out = []
    for x, y in data.example_batches(split):
        flat = np.ascontiguousarray(x).reshape(len(x), -1)
        labels = np.asarray(y).reshape(len(y), -1)
        for row, label in zip(flat, labels):
            out.append((hashlib.blake2b(row.tobytes(), digest_size=12).digest(),
                        label.tobytes()))
    return out


def rule_duplicates(model, data, ctx):
    train = ctx["train_hashes"]
    labels_of = {}
    for h, label in train:
        labels_of.setdefault(h, set()).add(label)
    conflicting = sum(1 for v in labels_of.values() if len(v) > 1)
    duplicates = len(train) - len(labels_of)
    if conflicting:
        return Finding(1, "duplicates", "warn",
                       f"{conflicting} inputs appear with different labels ({duplicates} exact "
                       "duplicate rows in all)",
                       "drop or relabel the conflicting rows before training")
    return Finding(1, "duplicates", "pass", f"{duplicates} exact duplicates, none with conflicting labels")


def rule_train_validation_overlap(model, data, ctx):
    train = {h for h, _ in ctx["train_hashes"]}
    shared = sum(1 for h, _ in ctx["val_hashes"] if h in train)
    if shared:
        return Finding(4, "train/validation overlap", "warn",
                       f"{shared} of {len(ctx['val_hashes'])} validation examples also appear in "
                       "the training set: the validation metric is optimistic",
                       "deduplicate before splitting: x, idx = np.unique(x, axis=0, return_index=True)")
    return Finding(4, "train/validation overlap", "pass", "no validation example is in the training set")


def rule_standardized(model, data, ctx):
    stats = data.features
    existing = normalizing_layers(model)
    if existing:
        return Finding(1, "inputs standardized", "pass", f"the model normalizes ({', '.join(existing)})")
    varying = stats.std > 1e-8
    off = np.flatnonzero(varying & ((np.abs(stats.mean) > 0.5) | (np.abs(np.log(np.maximum(stats.std, 1e-12))) > math.log(3))))
    if len(off):
        where = {"feature": "features", "channel": "channels", "global": "values"}[stats.axis]
        worst = off[np.argmax(np.abs(stats.mean[off]) + stats.std[off])]
        # The axis the statistics were taken on, and why (issue 25 item 3):
        # one scalar for columns that share a range, else per column.
        fix = ("norm = keras.layers.Normalization(axis=None); norm.adapt(x_train)  # first layer"
               if stats.axis == "global" else
               "norm = keras.layers.Normalization(); norm.adapt(x_train)  # first layer")
        return Finding(1, "inputs standardized", "warn",
                       f"{len(off)} {where} are not centred/scaled ({_names(list(off))}; e.g. "
                       f"mean {stats.mean[worst]:.3g}, std {stats.std[worst]:.3g}) and the model has "
                       f"no normalization layer; statistics taken {stats.evidence}", fix)
    return Finding(1, "inputs standardized", "pass", "inputs have mean ~0 and std ~1")


def rule_log1p(model, data, ctx):
    candidates = log1p_candidates(data.features)
    if candidates:
        spans = [data.features.max[i] / max(data.features.min[i], 1.0) for i in candidates]
        return Finding(1, "log1p", "warn",
                       f"non-negative {_names(candidates)} span orders of magnitude "
                       f"(max/min up to {max(spans):.0f}x)",
                       f"keras_recipes.layers.Log1p(features={candidates})  # before normalization")
    return Finding(1, "log1p", "pass", "no non-negative feature spans orders of magnitude")


def rule_batch_size(model, data, ctx):
    b = ctx["batch_size"]
    if b < 16 or b > 1024:
        return Finding(2, "batch size", "warn", f"batch size {b} is far from about 128",
                       "batch_size=128")
    return Finding(2, "batch size", "pass", f"batch size {b}")


def rule_loss_reduction(model, data, ctx):
    loss = ctx["loss"]
    reduction = getattr(loss, "reduction", None)
    if reduction == "sum":
        return Finding(3, "mean loss", "fail",
                       "the loss sums over the batch, so the gradient (and the right LR) grows "
                       "with the batch size",
                       'loss = type(loss).from_config({**loss.get_config(), "reduction": "sum_over_batch_size"})')
    return Finding(3, "mean loss", "pass", f"loss reduction: {reduction or 'mean'}")


def rule_initial_loss(model, data, ctx):
    if ctx["loss_kind"] != "sparse" or ctx["units"] < 2:
        return Finding(6, "loss at initialization", "pass", "not a softmax classifier")
    x, y = ctx["batch"]
    labels = np.asarray(y)
    if labels.size and (labels.min() < 0 or labels.max() >= ctx["units"]):
        return Finding(6, "loss at initialization", "warn",
                       "not measured: labels outside 0..K-1 (see the labels rule)",
                       "fix the labels first")
    # The mean: a loss function (not a Loss object) gives one value per example.
    value = float(keras.ops.convert_to_numpy(keras.ops.mean(ctx["loss"](y, model(x, training=False)))))
    expected = math.log(ctx["units"])
    if not math.isfinite(value) or value > 3 * expected:
        return Finding(6, "loss at initialization", "warn",
                       f"initial loss {value:.3g} vs log(K) = {expected:.3g} for K={ctx['units']} "
                       "classes: the initial predictions are overconfident (weights too large)",
                       "kernel_initializer=keras_recipes.initializers.ScaledNormal(1.0)")
    return Finding(6, "loss at initialization", "pass",
                   f"initial loss {value:.3g} vs log(K) = {expected:.3g}")


def rule_init_scale(model, data, ctx):
    bad = []
    for layer in walk_layers(model):
        kernel = getattr(layer, "kernel", None)
        if kernel is None or isinstance(layer, keras.Model) or len(kernel.shape) < 2:
            continue
        fan_in = compute_fan_in(kernel.shape)
        std = float(np.std(sharding.host(kernel)))
        low, high = 0.1 / math.sqrt(fan_in) / 2, 1.0 / math.sqrt(fan_in) * 2
        if not (low <= std <= high or 0.01 <= std <= 0.04):
            bad.append(f"{layer.name} (std {std:.3g}, fan_in {fan_in}, expected "
                       f"{0.1 / math.sqrt(fan_in):.3g}..{1 / math.sqrt(fan_in):.3g} or 0.02)")
    if bad:
        return Finding(6, "initialization scale", "warn", "kernels off the advised scale: " + "; ".join(bad[:4]),
                       "kernel_initializer=keras_recipes.initializers.ScaledNormal(init_scale=1.0)")
    return Finding(6, "initialization scale", "pass",
                   "kernel stds within init_scale/sqrt(fan_in), init_scale 0.1-1, or near 0.02")


def _clips(optimizer):
    clipped = find_clipped_optimizer(optimizer)
    if clipped is not None and clipped.max_norm is not None:
        return True
    return any(getattr(optimizer, a, None) is not None for a in ("clipnorm", "global_clipnorm"))


def rule_rnn_clipping(model, data, ctx):
    recurrent = recurrent_layers(model)
    if not recurrent:
        return Finding(7, "gradient clipping", "pass", "no recurrent layers")
    if ctx["will_clip"] or (getattr(model, "optimizer", None) is not None and _clips(model.optimizer)):
        return Finding(7, "gradient clipping", "pass", f"recurrent layers ({', '.join(recurrent)}) are clipped")
    return Finding(7, "gradient clipping", "warn",
                   f"recurrent layers ({', '.join(recurrent)}) train without gradient-norm clipping",
                   "optimizer = keras_recipes.optimizers.ClippedOptimizer(optimizer, max_norm=5.0)")


def rule_forget_bias(model, data, ctx):
    lstms = [l for l in walk_layers(model) if isinstance(l, keras.layers.LSTM)]
    steps = data.x_shape[0] if len(data.x_shape) >= 2 and data.x_shape[0] else 0
    if not lstms:
        return Finding(9, "forget-gate bias", "pass", "no LSTM")
    small = []
    for layer in lstms:
        bias = getattr(layer.cell, "bias", None)
        if bias is None:
            continue
        units = layer.cell.units
        forget = float(np.mean(sharding.host(bias)[units:2 * units]))
        # The threshold fit_with_tips acts on (tip 9's measured decision).
        if steps >= FORGET_BIAS_STEPS and forget < 2.0:
            small.append(f"{layer.name} (forget bias {forget:.2g})")
    if small:
        return Finding(9, "forget-gate bias", "warn",
                       f"sequences of {steps} steps (at least {FORGET_BIAS_STEPS}) but small "
                       f"forget-gate bias: {', '.join(small)}",
                       "keras.layers.LSTM(units, unit_forget_bias=False, "
                       "bias_initializer=keras_recipes.initializers.ForgetGateBias(3.0))")
    return Finding(9, "forget-gate bias", "pass", f"LSTM forget bias fine for {steps}-step sequences")


def rule_dropout(model, data, ctx):
    dropout = dropout_layers(model)
    if dropout:
        return Finding(11, "dropout", "warn",
                       f"dropout ({', '.join(dropout)}): plan to train longer; rates are worth tuning",
                       "fit_with_tips(..., patience=6)  # fit_with_tips does this by itself")
    return Finding(11, "dropout", "pass", "no dropout")


def rule_inference_deterministic(model, data, ctx):
    x, _ = ctx["batch"]
    reset_states(model)  # a stateful model's second call would continue the first
    a = keras.ops.convert_to_numpy(model(x, training=False))
    reset_states(model)
    b = keras.ops.convert_to_numpy(model(x, training=False))
    if not np.allclose(a, b, rtol=1e-5, atol=1e-6, equal_nan=True):
        return Finding(11, "inference deterministic", "fail",
                       f"two training=False calls differ (max |diff| {np.nanmax(np.abs(a - b)):.3g}): "
                       "dropout, noise or augmentation is active at inference",
                       "in custom layers: `if training: ...` around the random op")
    return Finding(11, "inference deterministic", "pass",
                   "dropout and augmentation are off at inference (two calls equal)")


def rule_finite(model, data, ctx):
    dropped = ctx.get("nonfinite")
    if dropped:
        return Finding(1, "finite data", "fail", dropped,
                       "x = x[np.isfinite(x).all(axis=1)]  # or impute")
    return Finding(1, "finite data", "pass", "no NaN/Inf in features or labels")


def rule_xla(model, data, ctx):
    backend = keras.backend.backend()
    if backend != "tensorflow":
        # Layers that block XLA do so on TensorFlow; JAX always compiles with
        # XLA, torch runs without it unless torch.compile is asked for.
        return Finding(0, "XLA", "pass", "the JAX backend compiles every step with XLA"
                       if backend == "jax" else f"not checked: {backend} runs without XLA")
    blockers = jit_blockers(model)
    if blockers:
        return Finding(0, "XLA", "warn",
                       f"layers {', '.join(blockers)} do not support XLA: Keras turns jit_compile "
                       "off for the whole model",
                       "keras_recipes.layers.RandomShiftRotate(...)  # an XLA-compatible replacement")
    x, _ = ctx["batch"]
    if ctx["compile_probe"] and keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        try:
            tf.function(lambda v: model(v, training=False), jit_compile=True)(
                x if ctx["fixed"] else x[:2])
        except Exception as error:  # a TF op without an XLA kernel
            return Finding(0, "XLA", "warn",
                           f"the compile probe failed: {str(error).splitlines()[0][:200]}",
                           "jit_compile=False  # or replace the op named above")
    return Finding(0, "XLA", "pass", "the forward pass compiles with XLA")


def rule_batch_independence(model, data, ctx):
    x, _ = ctx["batch"]
    if ctx["fixed"]:
        return Finding(0, "batch independence", "pass", "not checked: the model's inputs fix the "
                       f"batch size at {ctx['fixed']}, so no smaller batch can be formed")
    if x.dtype.kind != "f" or len(x) < 2:
        return Finding(0, "batch independence", "pass", "not checked (integer inputs)")
    report = check_batch_independence(model, x[:8], examples=2)
    if not report.ok:
        # A strong leak (a batch mean over these 8 examples moves each output
        # by about 1/8 of its own input's effect) spoils training; a faint one
        # (Keras' MelSpectrogram clips at top_db below the batch-wide maximum:
        # about 1e-2 on spoken digits) is worth knowing but not fatal.
        worst = max(size for _, _, size in report.leaks)
        return Finding(0, "batch independence", "fail" if worst >= _STRONG_LEAK else "warn",
                       f"{report} (largest relative leak {worst:.1e})",
                       "find the layer that reduces or reshapes over the batch axis")
    return Finding(0, "batch independence", "pass", "no example's output depends on another's input")


RULES = (rule_finite, rule_labels_in_range, rule_class_balance, rule_duplicates, rule_train_validation_overlap,
         rule_standardized, rule_log1p, rule_batch_size, rule_loss_reduction, rule_initial_loss,
         rule_init_scale, rule_rnn_clipping, rule_forget_bias, rule_dropout,
         rule_inference_deterministic, rule_xla, rule_batch_independence)
