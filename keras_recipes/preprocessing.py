"""Tip 1 as decisions: which preprocessing the data needs, from the
statistics of the training split, as Keras layers that become part of the
model (so it predicts on raw inputs and saves as one `.keras` file)."""

import math

import keras
import numpy as np

from keras_recipes.layers.preprocessing import Log1p

# A non-negative feature "spans orders of magnitude" when log10(1 + x) covers
# at least two decades between its minimum and maximum and has a spread of at
# least a quarter decade (so one outlier is not enough).
LOG_DECADES = 2.0
LOG_SPREAD = 0.25
# Data counts as already standardized when every non-constant column has
# |mean| and |std - 1| below this.
STANDARD_TOL = 0.1


# Layers that compute their own features from a raw signal: per-position
# standardization of a waveform in front of them would distort it.
# Embedding and lookup layers read integer ids or strings: shifting and scaling
# those would destroy them.
_OWN_FEATURES = (keras.layers.MelSpectrogram, keras.layers.STFTSpectrogram,
                 keras.layers.Embedding, keras.layers.IntegerLookup, keras.layers.StringLookup,
                 keras.layers.CategoryEncoding, keras.layers.Hashing)


def normalizing_layers(model):
    """Names of the layers that already normalize inputs or compute features."""
    found = []

    def walk(layer):
        if isinstance(layer, (keras.layers.Normalization, keras.layers.Rescaling) + _OWN_FEATURES):
            found.append(layer.name)
        for sub in getattr(layer, "layers", []) or []:
            walk(sub)

    walk(model)
    return found


def consumers(model, name):
    """Names of the layers reading the model input `name` directly, and
    whether one of them normalizes, looks up or embeds it (None when the
    model's graph cannot be read, e.g. a subclassed model)."""
    inputs = {getattr(t, "name", None): t for t in (getattr(model, "inputs", None) or [])}
    if name not in inputs:
        return None
    found = []
    for layer in getattr(model, "layers", []):
        try:
            seen = keras.tree.flatten(layer.input)
        except (AttributeError, ValueError):
            continue
        if any(t is inputs[name] for t in seen):
            found.append(layer)
    own = (keras.layers.Normalization, keras.layers.Rescaling) + _OWN_FEATURES
    return [l.name for l in found if isinstance(l, own)]


def log1p_candidates(stats):
    """Indices of tabular features that are non-negative and span orders of magnitude."""
    if stats.axis != "feature":
        return []
    decades = np.log10(1.0 + np.maximum(stats.max, 0)) - np.log10(1.0 + np.maximum(stats.min, 0))
    keep = (stats.min >= 0) & (decades >= LOG_DECADES) & (stats.log_std >= LOG_SPREAD)
    return [int(i) for i in np.flatnonzero(keep)]


def plan(model, stats, feature_names=None, suffix="", input_name=None):
    """The preprocessing layers and a list of (setting, reason) lines.

    Returns:
        `(layers, applied, skipped)`: Keras layers to put before the model,
        what they do, and why anything was skipped.
    """
    names = feature_names or {}
    per_input = consumers(model, input_name) if input_name is not None else None
    existing = per_input if per_input is not None else normalizing_layers(model)
    if existing:
        return [], None, ("the model already normalizes its inputs, computes its own "
                          f"features or reads ids ({', '.join(existing)})")

    mean, std = stats.mean.copy(), stats.std.copy()
    log_features = log1p_candidates(stats)
    layers = []
    parts = []
    if log_features:
        layers.append(Log1p(log_features, name="log1p" + suffix))
        # Statistics of ln(1 + x) from those of log10(1 + x).
        mean[log_features] = stats.log_mean[log_features] * math.log(10)
        std[log_features] = stats.log_std[log_features] * math.log(10)
        labels = [names.get(i, f"feature {i}") for i in log_features]
        parts.append(f"log1p on {', '.join(labels)}")

    varying = std > 1e-8
    already = (
        not log_features
        and np.all(np.abs(mean[varying]) < STANDARD_TOL)
        and np.all(np.abs(std[varying] - 1) < STANDARD_TOL)
    )
    if already:
        return [], None, "the training data is already standardized (|mean|, |std-1| < 0.1)"

    # A constant column would be divided by ~0; give it unit variance.
    variance = np.where(varying, std**2, 1.0)
    axis = None if stats.axis == "global" else -1
    layers.append(
        keras.layers.Normalization(
            axis=axis,
            mean=mean.astype("float32") if axis is not None else float(mean[0]),
            variance=variance.astype("float32") if axis is not None else float(variance[0]),
            name="standardize" + suffix,
        )
    )
    where = {"feature": f"{len(mean)} features", "channel": f"{len(mean)} channels",
             "global": "all values (one mean/std)"}[stats.axis]
    parts.append(f"zero mean, unit variance over {where}")
    return layers, "; ".join(parts), None
