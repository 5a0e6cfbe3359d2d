"""Tip 1 as decisions: which preprocessing the data needs, from the
statistics of the training split, as Keras layers that become part of the
model (so it predicts on raw inputs and saves as one `.keras` file)."""

import math

import keras
import numpy as np

from keras_recipes.layers.preprocessing import Log1p
from keras_recipes.layers.preprocessing import PaddingAwareNormalization

# A non-negative feature "spans orders of magnitude" when log10(1 + x) covers
# at least two decades between its minimum and maximum and has a spread of at
# least a quarter decade (so one outlier is not enough).
LOG_DECADES = 2.0
LOG_SPREAD = 0.25
# ... and its largest value is at least this many decades above its typical
# non-zero value (the mean of log10(1 + x) over x > 0): a bounded,
# zero-inflated feature such as a pixel (0, or near 255) is not heavy-tailed
# (issue 25), while income or population columns are.
LOG_TAIL = 1.0
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


# Tip 1 is safe in front of these: they read their input as continuous
# magnitudes, and a shift and scale of it is what their own weights absorb.
# An allowlist (issue 25): a layer not named here, a custom layer, a lookup,
# an embedding, masking or discretization leaves the input alone.
_MAGNITUDE_READERS = tuple(getattr(keras.layers, n) for n in (
    "Dense", "EinsumDense", "Conv1D", "Conv2D", "Conv3D", "SeparableConv1D", "SeparableConv2D",
    "DepthwiseConv1D", "DepthwiseConv2D", "Conv1DTranspose", "Conv2DTranspose",
    "Conv3DTranspose", "LSTM", "GRU", "SimpleRNN", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D",
    "BatchNormalization", "LayerNormalization") if hasattr(keras.layers, n))
# Seen through: they only move, select or pool values (max and mean commute
# with a per-feature shift and positive scale), so what reads their output
# decides.
_SEEN_THROUGH = tuple(getattr(keras.layers, n) for n in (
    "InputLayer", "Reshape", "Flatten", "Permute", "RepeatVector", "Concatenate", "Dropout",
    "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "MaxPooling1D", "MaxPooling2D",
    "MaxPooling3D", "AveragePooling1D", "AveragePooling2D", "AveragePooling3D",
    "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D", "GlobalAveragePooling1D",
    "GlobalAveragePooling2D", "GlobalAveragePooling3D", "Cropping1D", "Cropping2D",
    "Cropping3D") if hasattr(keras.layers, n))


def _graph(model):
    """The nodes of `model`'s own graph (a Sequential's functional one), or
    None where there is no graph to read (a subclassed model)."""
    graph = model if hasattr(model, "_nodes_by_depth") else getattr(model, "_functional", None)
    if graph is None or not hasattr(graph, "_nodes_by_depth"):
        return None, None
    nodes = [n for depth in graph._nodes_by_depth.values() for n in depth]
    return graph, nodes


def _judge(layer, padding=None):
    """(verdict, why) for a layer reading values: "safe", "through" or
    "unsure". With `padding` (the standardization keeps steps of that value
    as they are), a `Masking` layer of that `mask_value` is seen through:
    its mask is unchanged."""
    inner = getattr(layer, "layer", None) or getattr(layer, "forward_layer", None)
    if isinstance(layer, (keras.layers.TimeDistributed, keras.layers.Bidirectional)) and inner:
        return _judge(inner, padding)
    if isinstance(layer, _SEEN_THROUGH):
        return "through", None
    if (isinstance(layer, keras.layers.Masking) and padding is not None
            and float(layer.mask_value) == float(padding)):
        return "through", None
    if isinstance(layer, _MAGNITUDE_READERS):
        if not layer.trainable:
            return "unsure", (f"{type(layer).__name__} {layer.name!r} is frozen: its weights "
                              "expect the values as they are")
        return "safe", None
    kind = type(layer).__name__
    return "unsure", (f"{kind} {layer.name!r} reads the values as they are (not a layer shown "
                      "to treat them as continuous magnitudes)")


def _readers(model, index, visit):
    """Follows model input `index` through the model's own graph: `visit(layer)`
    for each layer reading it returns "through" (go on to its outputs) or
    anything else (stop there); returns the first value other than "through"
    or None that `visit` gave, or None."""
    graph, nodes = _graph(model)
    inputs = list(graph.inputs)
    frontier, seen = [inputs[index]], set()
    while frontier:
        tensor = frontier.pop()
        if id(tensor) in seen:
            continue
        seen.add(id(tensor))
        for node in [n for n in nodes
                     if any(t is tensor for t in keras.tree.flatten(n.input_tensors))]:
            found = visit(node, tensor)
            if found == "through":
                frontier.extend(keras.tree.flatten(node.output_tensors))
            elif found is not None:
                return found
    return None


def _compares_with(node, value):
    """Whether `node` is `not_equal(x, value)` or `equal(x, value)`: a mask
    of the steps equal to `value` (what a Masking layer's compute_mask
    records in a functional graph), unchanged while those steps are kept."""
    if type(node.operation).__name__ not in ("NotEqual", "Equal"):
        return False
    constants = [a for a in node.arguments.args if isinstance(a, (int, float))]
    return any(float(a) == float(value) for a in constants)


def padding_of(model, index=0):
    """The `mask_value` of a `Masking` layer that reads model input `index`
    (shape-only layers seen through), or None: the value whose steps are
    padding, as the model itself reads it."""
    graph, _ = _graph(model)
    if graph is None or index >= len(graph.inputs):
        return None

    def visit(node, tensor):
        layer = node.operation
        if isinstance(layer, keras.layers.Masking):
            return ("mask", float(layer.mask_value))
        return "through" if isinstance(layer, _SEEN_THROUGH) else None

    found = _readers(model, index, visit)
    return found[1] if found else None


def raw_reader(model, index=0, padding=None):
    """Why model input `index` must stay as it is, or None when every layer
    that reads its values, followed through the model's own graph, treats
    them as continuous magnitudes (Dense, Conv*, the RNNs, ...; shape-only
    layers seen through, nested models followed). The allowlist decides:
    anything it cannot show safe is named."""
    graph, _ = _graph(model)
    if graph is None:
        return (f"{type(model).__name__} is subclassed: its call cannot be read to show the "
                "inputs are used as magnitudes")
    if index >= len(graph.inputs):
        return "the model's inputs cannot be matched to the data"

    def visit(node, tensor):
        layer = node.operation
        if isinstance(layer, keras.Model):
            position = [i for i, t in enumerate(keras.tree.flatten(node.input_tensors))
                        if t is tensor]
            return raw_reader(layer, position[0], padding)
        if padding is not None and _compares_with(node, padding):
            return None  # a mask of the padding (Masking's compute_mask): unchanged
        verdict, why = _judge(layer, padding)
        return why if verdict == "unsure" else verdict if verdict == "through" else None

    return _readers(model, index, visit)


def log1p_candidates(stats):
    """Indices of tabular features that are non-negative and span orders of magnitude."""
    return log1p_decision(stats)[0]


def log1p_decision(stats):
    """(indices of the tabular features that get log1p, [(index, why)] of
    those that span the decades but were left out: their spread or their
    tail does not show a heavy tail, as a bounded zero-inflated feature such
    as a pixel does not). When unsure, a feature is left out, and said."""
    if stats.axis == "channel":  # an image's or a sequence's: not a table's columns
        return [], []
    if stats.axis == "global":  # columns pooled into one scale (a flattened image)
        top = np.log10(1.0 + np.maximum(stats.max, 0))
        decades = top - np.log10(1.0 + np.maximum(stats.min, 0))
        wide = np.flatnonzero((stats.min >= 0) & (decades >= LOG_DECADES))
        return [], [(int(i), f"(all values) spans {decades[i]:.1f} decades, but log1p is "
                     "decided per table column, and these values are read on one scale")
                    for i in wide[:1]]
    top = np.log10(1.0 + np.maximum(stats.max, 0))
    decades = top - np.log10(1.0 + np.maximum(stats.min, 0))
    spans = (stats.min >= 0) & (decades >= LOG_DECADES)
    spread = stats.log_std >= LOG_SPREAD
    tail = (top - stats.log_positive_mean if stats.log_positive_mean is not None
            else np.full_like(top, np.inf))
    keep = spans & spread & (tail >= LOG_TAIL)
    left = []
    for i in np.flatnonzero(spans & ~keep):
        why = (f"its largest value is {tail[i]:.2g} decades above its typical non-zero one "
               f"(< {LOG_TAIL:g}: bounded, zero-inflated)" if spread[i] else
               f"the spread of log10(1 + x) is {stats.log_std[i]:.2g} (< {LOG_SPREAD:g}: a few "
               "outliers, not a heavy tail)")
        left.append((int(i), f"spans {decades[i]:.1f} decades, but {why}"))
    return [int(i) for i in np.flatnonzero(keep)], left


def linear_r2(x_train, y_train, x_val, y_val):
    """Validation R^2 of a least-squares linear fit (ridge 1e-3 on
    standardized columns) of `y` (one column per output) on `x`: how well the
    inputs, as given, explain the targets linearly."""
    mean, std = x_train.mean(0), x_train.std(0)
    std = np.where(std > 0, std, 1.0)

    def design(x):
        return np.c_[(x - mean) / std, np.ones(len(x))]

    a = design(x_train)
    w = np.linalg.solve(a.T @ a + 1e-3 * np.eye(a.shape[1]), a.T @ y_train)
    residual = ((design(x_val) @ w - y_val) ** 2).sum()
    total = ((y_val - y_train.mean(0)) ** 2).sum()
    return float(1.0 - residual / total) if total > 0 else float("nan")


def log1p_linear_check(x_train, y_train, x_val, y_val):
    """Tip 1's log1p checked against the targets: a function of the columns
    the spread rule chose, returning (keep, evidence). log1p stays when a
    linear fit explains the validation split's targets at least as well with
    it on those columns as with them raw (a tie keeps the tip); else they
    stay raw, as when the targets follow the raw values (investment from a
    firm's value: the Grunfeld table)."""
    x_train, x_val = (np.asarray(a, "float64") for a in (x_train, x_val))

    def check(columns):
        logged = []
        for a in (x_train, x_val):
            a = a.copy()
            a[:, columns] = np.log1p(np.maximum(a[:, columns], 0))
            logged.append(a)
        raw = linear_r2(x_train, y_train, x_val, y_val)
        log = linear_r2(logged[0], y_train, logged[1], y_val)
        keep = not log < raw  # nan (constant targets) keeps the tip
        return keep, (f"a linear fit of the targets on the validation split: R^2 {log:.3f} with "
                      f"log1p, {raw:.3f} raw")

    return check


def trained_before(model):
    """Why the model's weights already expect raw inputs, or None: its
    optimizer has taken steps (a model continued from training)."""
    optimizer = getattr(model, "optimizer", None)
    steps = getattr(optimizer, "iterations", None)
    if steps is None:
        return None
    taken = int(keras.ops.convert_to_numpy(steps))
    return (f"the model was trained before ({taken} optimizer steps): its weights expect the "
            "inputs as they were") if taken else None


def plan(model, stats, feature_names=None, suffix="", input_name=None, index=0, force=False,
         log1p_check=None):
    """The preprocessing layers and a list of (setting, reason) lines.

    An input is standardized only where that is shown safe (`raw_reader`:
    every layer reading it treats values as magnitudes, through the model's
    own graph; the model was not trained before); `force=True` skips that
    check (`fit_with_tips(preprocess=True)`). `log1p_check`
    (`log1p_linear_check`) confirms the spread rule's log1p columns against
    the targets.

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
    padding = getattr(stats, "padding", None)
    unsafe = None if force else (trained_before(model) or raw_reader(model, index, padding))
    if unsafe is not None:
        return [], None, f"left as it is: {unsafe} (preprocess=True standardizes anyway)"

    mean, std = stats.mean.copy(), stats.std.copy()
    log_features, log_left = log1p_decision(stats)
    layers = []
    parts = []
    evidence, raw_note = None, None
    if log_features and log1p_check is not None:
        keep, evidence = log1p_check(log_features)
        if not keep:
            labels = ", ".join(names.get(i, f"feature {i}") for i in log_features)
            raw_note = (f"no log1p on {labels}: they span the decades, but the targets follow "
                        f"them raw ({evidence})")
            log_features = []
    if log_features:
        layers.append(Log1p(log_features, name="log1p" + suffix))
        # Statistics of ln(1 + x) from those of log10(1 + x).
        mean[log_features] = stats.log_mean[log_features] * math.log(10)
        std[log_features] = stats.log_std[log_features] * math.log(10)
        labels = [names.get(i, f"feature {i}") for i in log_features]
        parts.append(f"log1p on {', '.join(labels)}" + (f" ({evidence})" if evidence else ""))

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
    if padding is not None:  # a sequence with padding steps: they stay as given
        layers.append(PaddingAwareNormalization(
            mean.astype("float32").tolist(), variance.astype("float32").tolist(),
            padding_value=padding, name="standardize" + suffix))
    else:
        layers.append(keras.layers.Normalization(
            axis=axis,
            mean=mean.astype("float32") if axis is not None else float(mean[0]),
            variance=variance.astype("float32") if axis is not None else float(variance[0]),
            name="standardize" + suffix))
    where = {"feature": f"{len(mean)} features", "channel": f"{len(mean)} channels",
             "global": "all values (one mean/std)"}[stats.axis]
    if stats.axis == "channel" and len(mean) > 4:
        where = f"{len(mean)} features over batch and time"
    parts.append(f"zero mean, unit variance over {where}")
    if padding is not None:
        parts.append(f"padding steps (every feature {padding!r}) kept as given (a Masking "
                     "layer still finds them)")
    if raw_note:
        parts.append(raw_note)
    if log_left:
        shown = [(f"{names.get(i, f'feature {i}')} " if stats.axis == "feature" else "")
                 + why for i, why in log_left[:3]]
        more = f" (and {len(log_left) - 3} more)" if len(log_left) > 3 else ""
        parts.append(f"no log1p on {'; '.join(shown)}{more}")
    return layers, "; ".join(parts), None
