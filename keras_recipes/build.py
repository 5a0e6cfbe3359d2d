"""The build stage: from a plan's decisions to Keras objects (the training
model, the optimizer, the compile). Owns no decision of its own: the XLA
choice, which times the built training model, is `decide.execution`'s."""

import weakref

import keras

from keras_recipes import distribute
from keras_recipes.audio import NoiseBank
from keras_recipes.data import leaves
from keras_recipes.ensemble import FoldMembers
from keras_recipes.ensemble import UnfoldMembers
from keras_recipes.layers import NoiseMix
from keras_recipes.layers import RandomShiftRotate
from keras_recipes.optimizers import ClippedOptimizer
from keras_recipes.wrapped import Preprocessed


# -- optimizer -----------------------------------------------------------------------


def _fresh(optimizer):
    """An unbuilt copy, so a user's optimizer is never built twice."""
    return type(optimizer).from_config(optimizer.get_config())


def clipped_optimizer(name, learning_rate, momentum, max_norm):
    """The recipe's own optimizer ("sgd" with `momentum`, or "adam") inside a
    `ClippedOptimizer`."""
    if name == "adam":
        inner = keras.optimizers.Adam(learning_rate)
    else:
        inner = keras.optimizers.SGD(learning_rate, momentum=momentum)
    return ClippedOptimizer(inner, max_norm=max_norm)


def wrap_optimizer(optimizer, max_norm):
    """The user's optimizer inside a `ClippedOptimizer` (fresh state)."""
    if isinstance(optimizer, ClippedOptimizer):
        return ClippedOptimizer(_fresh(optimizer.inner_optimizer), max_norm=optimizer.max_norm)
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return keras.optimizers.LossScaleOptimizer(
            ClippedOptimizer(_fresh(optimizer.inner_optimizer), max_norm=max_norm),
            initial_scale=optimizer.initial_scale,
            dynamic_growth_steps=optimizer.dynamic_growth_steps)
    for attr in ("clipnorm", "global_clipnorm", "clipvalue"):
        if getattr(optimizer, attr, None) is not None:
            raise ValueError(
                f"The model's optimizer clips with `{attr}`; fit_with_tips clips the "
                "global norm after aggregation itself. Remove it, or pass clip_norm=. "
                f"Received: {attr}={getattr(optimizer, attr)}")
    return ClippedOptimizer(_fresh(optimizer), max_norm=max_norm)


# -- augmentation ----------------------------------------------------------------------


def augmentation(augment, noise_bank, x_shape, seed):
    """Tip 10: the augmentation layers `augment` asks for."""
    if noise_bank is not None and not isinstance(noise_bank, NoiseBank):
        raise TypeError("`noise_bank` must be a keras_recipes.audio.NoiseBank. "
                        f"Received: noise_bank={noise_bank!r}")
    if augment is None:
        return []
    if augment == "image":
        if len(x_shape) != 3:
            raise ValueError("augment='image' needs image inputs (height, width, channels). "
                             f"Received: inputs of shape {tuple(x_shape)}")
        return [RandomShiftRotate(seed=seed, name="augment_shift_rotate")]
    if augment == "audio":
        if len(x_shape) not in (1, 2):
            raise ValueError("augment='audio' needs waveforms (time,) or (time, channels). "
                             f"Received: inputs of shape {tuple(x_shape)}")
        return [NoiseMix(noise=noise_bank, seed=seed, name="augment_noise_mix")]
    layers = augment if isinstance(augment, (list, tuple)) else [augment]
    if not layers or not all(isinstance(l, keras.layers.Layer) for l in layers):
        raise ValueError("`augment` must be None, 'image', 'audio', a Keras layer or a list of "
                         f"layers. Received: augment={augment!r}")
    return list(layers)


# What the presets' defaults did, measured (benchmarks/bench_augment_sweep.py;
# BUILD_NOTES.md, issue 18): one line for the tips table.
_MEASURED = {
    ("audio", True): "measured on spoken digits with a noise never in the bank: 10/5/0 dB "
                     "accuracy 0.79/0.70/0.49 vs 0.23/0.17/0.13 without, clean 0.91 vs 0.91",
    ("audio", False): "measured on spoken digits (colors only, no bank): 10/5/0 dB unseen noise "
                      "0.73/0.63/0.45 vs 0.23/0.17/0.13 without, clean 0.89 vs 0.91; a NoiseBank "
                      "of real noise does better (noise_bank=)",
    ("image", False): "measured on MNIST: shifted/rotated test digits 0.958 vs 0.611 without, "
                      "clean 0.990 vs 0.987",
}


def measured_effect(augment, noise_bank):
    """The measured effect of a preset (`augment="audio"` / `"image"`), or None."""
    if not isinstance(augment, str):
        return None
    return _MEASURED.get((augment, noise_bank is not None and augment == "audio"))


def describe_layer(layer):
    config = layer.get_config()
    keys = [k for k in ("max_shift", "max_degrees", "snr_db", "colors", "rate") if k in config]
    inner = ", ".join(f"{k}={config[k]}" for k in keys)
    if getattr(layer, "bank_lengths", None):
        inner += f", noise bank of {len(layer.bank_lengths)} clips"
    return f"{type(layer).__name__}({inner})"


# -- the training model ------------------------------------------------------------------


def _name(model):
    """A functional model's name from the user's (a leading '_' is not allowed)."""
    return (model.name.lstrip("_") or "model") + "_with_tips"


def _unstandardize(target, name="unstandardize_targets"):
    mean, std = target
    return keras.layers.Rescaling(scale=[float(s) for s in std], offset=[float(m) for m in mean],
                                  name=name)


def _pipeline_map(decided, data):
    """With the user's own train_step, or several inputs or outputs:
    preprocessing, augmentation and the target scales applied in the input
    pipeline (the model's step sees them as data)."""
    if decided.structured:
        input_layers, targets = decided.input_layers, decided.targets
    else:
        input_layers = [decided.augment + decided.pre_layers]
        targets = [decided.target]
    data.preprocess_in_pipeline(input_layers, decided.augment, targets)


def _model_input_order(model, x_spec):
    """The data's input keys in the order of the model's own inputs, when the
    data is a dict and the model a functional one whose inputs carry those
    names (Keras pairs a dict with `model.inputs` by name); else None (the
    data's structure is the model's)."""
    inputs = getattr(model, "_inputs_struct", None)
    if not isinstance(x_spec, dict) or not isinstance(inputs, (list, tuple)):
        return None
    names = [getattr(i, "name", None) for i in inputs]
    return names if set(names) <= set(x_spec) and len(names) == len(x_spec) else None


def output_keys(model, y_spec, outputs):
    """Per output of `model(...)` (flattened), the key of its labels in a dict
    `y_spec`, by name: a dict output's key, or a list output's name in
    `model.output_names` (as Keras pairs dict labels in `fit`). None where the
    labels are not a dict (then outputs and labels pair by position)."""
    if not isinstance(y_spec, dict):
        return None
    if isinstance(outputs, dict):
        return sorted(outputs)  # keras.tree.flatten's order
    names = list(getattr(model, "output_names", None) or [])
    if len(names) == len(keras.tree.flatten(outputs)) and set(names) == set(y_spec):
        return names
    return sorted(y_spec)  # unnamed: the order Keras' data adapters flatten them in


def _structured_result(decided, model, data):
    """`result.model` for several inputs or outputs: raw inputs in, each
    standardized, raw-unit outputs out, with the user's model's interface:
    its input names and order, its output names and structure. Targets are
    joined to outputs by name wherever the labels have names, never by
    sorting one side against the other."""
    raws, features = {}, {}
    for (name, spec), layers in zip(leaves(data.x_spec), decided.input_layers):
        # float64 columns (pandas) are read as floatx, as the training did.
        dtype = keras.backend.floatx() if spec.dtype == "float64" else spec.dtype
        raw = keras.Input(tuple(spec.shape), dtype=dtype, name=name or None,
                          batch_size=decided.fixed_batch)
        z = raw
        for layer in layers:
            z = layer(z)
        raws[name], features[name] = raw, z
    order = _model_input_order(model, data.x_spec)
    if order is not None:  # the model's own input list, by name
        inputs = [raws[k] for k in order]
        called = model([features[k] for k in order])
    else:
        keys = [k for k, _ in leaves(data.x_spec)]
        inputs = keras.tree.pack_sequence_as(data.x_spec, [raws[k] for k in keys])
        called = model(keras.tree.pack_sequence_as(data.x_spec, [features[k] for k in keys]))
    label_keys = [k for k, _ in leaves(data.y_spec)]
    by_key = dict(zip(label_keys, decided.targets))
    keys = output_keys(model, data.y_spec, called)
    flat = keras.tree.flatten(called)
    targets = [by_key[k] for k in keys] if keys is not None else list(decided.targets)
    names = (sorted(called) if isinstance(called, dict)
             else list(getattr(model, "output_names", None) or []))
    outputs = []
    for i, (output, target) in enumerate(zip(flat, targets)):
        if target is not None:
            output = _unstandardize(target, f"unstandardize_{i}")(output)
        # Named as the user's output, so result.model.output_names match.
        name = names[i] if len(names) == len(flat) else None
        outputs.append(keras.layers.Identity(name=name)(output) if name else output)
    outputs = keras.tree.pack_sequence_as(called, outputs)
    return keras.Model(inputs, outputs, name=_name(model))


def training_model(decided, model, data):
    """The model `fit` trains, and the pieces to turn it into `result.model`.

    Call it inside `decided.scope` (the strategy's entered `Scope`).
    Returns a dict: `full` (trained), `raw` (its input), `features` (the
    tensor after augmentation and preprocessing) and `trained_output`.
    """
    scope = decided.scope
    if decided.structured:
        if not decided.mapped:
            _pipeline_map(decided, data)
            decided.mapped = True
        return {"full": model, "raw": None, "features": None, "trained_output": None}
    fused = decided.fused
    if fused is not None:
        return _members_training_model(decided, fused, data)
    raw = keras.Input(tuple(data.x_shape), name="raw_input", batch_size=decided.fixed_batch)
    z = raw
    for layer in decided.augment + decided.pre_layers:
        z = layer(z)
    if decided.custom_step:
        if not decided.mapped:
            _pipeline_map(decided, data)
            decided.mapped = True
        output, full = None, model
    elif (decided.pre_layers or decided.augment or decided.target is not None
          or distribute.is_multi_worker(decided.strategy)):
        output = model(z)
        full = scope.training_model(raw, output, _name(model))
    else:
        output, full = None, model
    return {"full": full, "raw": raw, "features": z, "trained_output": output}


def _members_training_model(decided, fused, data):
    """The ensemble's training model: `(batch, members, ...)` in, each
    member's share preprocessed and augmented as ordinary examples, the
    members' stacked outputs out."""
    raw = keras.Input((fused.size,) + tuple(data.x_shape), name="raw_input")
    z = FoldMembers(name="fold_members")(raw)
    for layer in decided.augment + decided.pre_layers:
        z = layer(z)
    z = UnfoldMembers(fused.size, name="unfold_members")(z)
    output = fused.output(z)
    full = decided.scope.training_model(raw, output, "ensemble_training")
    return {"full": full, "raw": raw, "features": z, "trained_output": output}


def features_shape(decided, data):
    """The per-example shape and dtype after augmentation and preprocessing."""
    raw = keras.Input(tuple(data.x_shape))
    z = raw
    for layer in decided.augment + decided.pre_layers:
        z = layer(z)
    return tuple(z.shape[1:]), z.dtype


def _with_own_steps(decided, model, data):
    """`result.model` for a model with its own train_step, test_step or
    compute_loss: the user's model itself when nothing was added, else
    `Preprocessed` (its fit and evaluate run the user's steps). The targets
    were left as given (the user's code reads them)."""
    if decided.structured:
        pipelines = [list(layers) for layers in decided.input_layers]
        spec = data.x_spec
        keys = ([k for k, _ in leaves(spec)] if isinstance(spec, dict)
                else len(pipelines) if isinstance(spec, (list, tuple)) else None)
    else:
        pipelines, keys = [list(decided.pre_layers)], None
    if not any(pipelines):
        return model
    return Preprocessed(model, pipelines[0] if keys is None else pipelines, keys,
                        name=_name(model))


def result_model(decided, full, model, data):
    """`result.model`: raw inputs in, raw-unit predictions out."""
    if decided.own_steps:
        return _with_own_steps(decided, model, data)
    if decided.structured:
        if all(not layers for layers in decided.input_layers) and not any(
                t is not None for t in decided.targets):
            return model
        return _structured_result(decided, model, data)
    raw, target = decided.raw, decided.target
    if target is not None:
        return keras.Model(raw, _unstandardize(target)(decided.trained_output), name=full.name)
    if distribute.is_multi_worker(decided.strategy):
        # A plain functional model for the user (the training one only exists
        # to get through Keras' multi-worker reductions).
        return keras.Model(raw, decided.trained_output, name=full.name)
    return full


# -- execution -----------------------------------------------------------------------------

# Models the recipe compiled: model -> (the optimizer it set, the user's own
# compile arguments or None). The user's model object may be compiled in
# place (trained as it is, or returned as result.model); a later call must
# read what the user chose, not the recipe's compile.
_OWN_COMPILES = weakref.WeakKeyDictionary()


def _mark_own_compile(model, users):
    _OWN_COMPILES[model] = (weakref.ref(model.optimizer), users)


def users_compile(model, live):
    """What the user compiled `model` with: `live` (its compile arguments,
    or None), unless the recipe compiled it last, then the user's own
    arguments from before that (None when the user never compiled it)."""
    own = _OWN_COMPILES.get(model)
    if own is not None and own[0]() is getattr(model, "optimizer", None):
        return own[1]
    return live


def _metric_args(decided):
    """The metrics as compiled for training. With validation padded for
    keras.distribution's devices (rows of weight 0) and no sample weights of
    the user's, they count weighted rows only (`weighted_metrics`: the same
    names and, unweighted, the same values), joined with the user's own
    `weighted_metrics` output by output."""
    kwargs = dict(decided.compile_kwargs, metrics=decided.metrics)
    if not decided.padded_validation or not decided.metrics:
        return kwargs
    theirs = kwargs.get("weighted_metrics")
    names = list(getattr(decided.full, "output_names", None) or []) or [None]
    joined = join_metrics(decided.metrics, theirs, names)
    if joined is None:
        raise ValueError(
            "Under keras.distribution the validation's padding rows have weight 0, so "
            "fit_with_tips compiles its metrics as weighted_metrics, joined with yours; yours "
            f"are not one of Keras' forms for this model's outputs {names}: a list for one "
            "output, a list per output, or a dict keyed by output name. Give them in one of "
            "those, or a validation set whose size divides over the devices. Received: "
            f"weighted_metrics={theirs!r}")
    return dict(kwargs, metrics=None, weighted_metrics=joined)


def _as_list(metrics):
    return [] if metrics is None else list(metrics) if isinstance(metrics, (list, tuple)) else [
        metrics]


def _per_output(spec, names):
    """Metrics given in any of compile's forms, as one list per output in
    `names`' order; None when `spec` is not a form for that many outputs."""
    if spec is None:
        return [[] for _ in names]
    if isinstance(spec, dict):
        if len(names) == 1 and len(spec) == 1:  # one output, whatever its name
            return [_as_list(next(iter(spec.values())))]
        return [_as_list(spec.get(n)) for n in names] if set(spec) <= set(names) else None
    if isinstance(spec, (list, tuple)):
        nested = all(m is None or isinstance(m, (list, tuple)) for m in spec)
        if len(names) > 1 or (spec and nested):
            return [_as_list(m) for m in spec] if nested and len(spec) == len(names) else None
        return [list(spec)]
    return [[spec]] if len(names) == 1 else None


def join_metrics(ours, theirs, names):
    """`ours` then `theirs`, output by output, in compile's form (a list for
    one output, a dict when either was keyed by name, a list per output
    otherwise); None when either is not a form for the outputs `names`."""
    a, b = _per_output(ours, names), _per_output(theirs, names)
    if a is None or b is None:
        return None
    joined = [x + y for x, y in zip(a, b)]
    if len(names) == 1:
        return joined[0]
    if isinstance(ours, dict) or isinstance(theirs, dict):
        return dict(zip(names, joined))
    return joined


def compile_model(decided, jit):
    """Compiles the training model; returns its optimizer. The model the plan
    compiled to measure the update ratio is used as it is (its step is
    already traced) when nothing changed since."""
    ready = decided.compiled
    if ready is not None and ready[1] == jit and getattr(decided.full, "optimizer",
                                                          None) is ready[0]:
        return ready[0]
    optimizer = decided.make_optimizer()
    decided.full.compile(optimizer, decided.loss, jit_compile=jit, **_metric_args(decided))
    _mark_own_compile(decided.full, decided.compile)
    return optimizer


def unwrap_optimizer(decided, model, full):
    """After training: `model` (result.model) compiled with the optimizer our
    ClippedOptimizer wrapped, the same object with its state, so that a file
    saved from it holds only Keras' objects and loads without keras_recipes
    when its layers are Keras' own. A result model built around the trained
    one (raw-unit regression outputs) is compiled the same way, so
    `evaluate` works and reports in the targets' units. Returns the wrapper
    (its statistics), or None when training did not use one."""
    wrapper = getattr(full, "optimizer", None) if getattr(full, "compiled", False) else None
    if not isinstance(wrapper, ClippedOptimizer):
        return None
    # Under several workers result.model is a plain model for the user (the
    # training one exists to get through Keras' multi-worker reductions);
    # compiling it there would take part in the workers' collectives.
    # A Preprocessed result trains through the user's model: that one is
    # compiled, the wrapper mirrors it.
    target = model.wrapped if isinstance(model, Preprocessed) else model
    if target is full or not (getattr(target, "compiled", False)
                              or distribute.is_multi_worker(decided.strategy)):
        # The user's own metric objects (a clone from get_config can differ:
        # a Metric whose __init__ arguments its config omits), their state
        # from training cleared.
        for metric in keras.tree.flatten(decided.metrics):
            if isinstance(metric, keras.metrics.Metric):
                metric.reset_state()
        target.compile(wrapper.inner_optimizer, decided.loss, metrics=decided.metrics,
                       jit_compile=full.jit_compile, **decided.compile_kwargs)
        _mark_own_compile(target, decided.compile)
    if target is not model:
        model._adopt_compile()
    return wrapper
