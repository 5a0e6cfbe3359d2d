"""`fit_with_tips(model, data)`: one call that applies the advice.

This module composes the parts (data adapters, preprocessing, initializers,
ClippedOptimizer, ReduceLROnPlateau, UpdateRatioMonitor) and owns no math of
its own. Every decision it takes is recorded as a `Tip` in the result.
"""

import dataclasses
import math
import statistics
import textwrap
import time
import warnings

import keras
import numpy as np

from keras_recipes import distribute
from keras_recipes import preprocessing
from keras_recipes.callbacks import ReduceLROnPlateau
from keras_recipes.callbacks import StopOnNaN
from keras_recipes.callbacks import UpdateRatioMonitor
from keras_recipes.losses import check_labels
from keras_recipes.losses import infer_loss
from keras_recipes.losses import mean_reduced
from keras_recipes.modelinfo import dropout_layers
from keras_recipes.modelinfo import jit_blockers
from keras_recipes.modelinfo import recurrent_layers
from keras_recipes.optimizers import ClippedOptimizer

_JIT_PROBE_STEPS = 6


@dataclasses.dataclass
class Tip:
    """One decision `fit_with_tips` took: which tip, what, and why."""

    number: int
    name: str
    setting: str
    reason: str


def _table(rows, headers, max_width=56):
    """A plain-text table; cells longer than `max_width` wrap onto more lines."""
    widths = [min(max(len(str(r[i])) for r in rows + [headers]), max_width)
              for i in range(len(headers))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()
    lines = [line(headers), line(["-" * w for w in widths])]
    for row in rows:
        cells = [textwrap.wrap(str(c), w) or [""] for c, w in zip(row, widths)]
        for k in range(max(len(c) for c in cells)):
            lines.append(line([c[k] if k < len(c) else "" for c in cells]))
    return "\n".join(lines)


class FitResult:
    """What `fit_with_tips` returns.

    Attributes:
        model: The trained `keras.Model`, preprocessing included: it takes
            raw inputs and saves/loads as one `.keras` file.
        history: Dict of per-epoch lists (`loss`, `val_loss`, metrics,
            `learning_rate`, `update_ratio`, `grad_norm`, `clip_fraction`).
        tips: List of `Tip`: each applied (or skipped) tip, its setting and
            the reason.
        data: The `keras_recipes.data.Data` the model was trained on.
        execution: Dict describing how the step was compiled (`jit_compile`,
            the measured ratio when chosen automatically, blocking layers).
        layer_update_ratios: Per-epoch dicts of the per-layer update ratios.
    """

    def __init__(self, model, history, tips, data, execution, layer_update_ratios,
                 seconds, events=None):
        self.model = model
        self.history = history
        self.tips = tips
        self.data = data
        self.execution = execution
        self.layer_update_ratios = layer_update_ratios
        self.seconds = seconds
        self.events = events or []

    def tips_table(self):
        rows = [[t.number, t.name, t.setting, t.reason] for t in self.tips]
        return _table(rows, ["tip", "what", "setting", "why"])

    def __str__(self):
        lines = ["fit_with_tips", self.tips_table(), ""]
        epochs = len(self.history.get("loss", []))
        summary = [f"epochs run: {epochs}", f"wall time: {self.seconds:.1f} s"]
        for key in ("loss", "val_loss", "accuracy", "val_accuracy", "learning_rate",
                    "update_ratio"):
            if self.history.get(key):
                summary.append(f"final {key}: {self.history[key][-1]:.4g}")
        lines.append(" | ".join(summary))
        lines.extend(self.events)
        return "\n".join(lines)

    def __repr__(self):
        return f"<FitResult epochs={len(self.history.get('loss', []))} tips={len(self.tips)}>"

    def plot(self):
        """A matplotlib figure: losses, learning rate (with its drops) and the
        update/weight ratio against the healthy band of tip 5."""
        import matplotlib

        if matplotlib.get_backend().lower() in ("", "agg") or not _interactive():
            matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        h = self.history
        epochs = np.arange(1, len(h.get("loss", [])) + 1)
        fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
        ax = axes[0]
        for key in ("loss", "val_loss"):
            if h.get(key):
                ax.plot(epochs[: len(h[key])], h[key], label=key)
        ax.set(title="loss", xlabel="epoch")
        ax.legend()
        ax = axes[1]
        if h.get("learning_rate"):
            lr = np.asarray(h["learning_rate"])
            ax.semilogy(epochs, lr, drawstyle="steps-post", label="learning rate")
            drops = np.flatnonzero(np.diff(lr) < 0) + 2
            for d in drops:
                ax.axvline(d, color="0.8", lw=0.8)
        ax.set(title="learning rate (drops marked)", xlabel="epoch")
        ax = axes[2]
        if h.get("update_ratio"):
            ax.semilogy(epochs, h["update_ratio"], label="global")
            for name in (self.layer_update_ratios[0] if self.layer_update_ratios else {}):
                ax.semilogy(epochs[: len(self.layer_update_ratios)],
                            [r[name] for r in self.layer_update_ratios], lw=0.8, alpha=0.6,
                            label=name.split("/")[-1])
            ax.axhspan(1e-4, 1e-2, color="tab:green", alpha=0.1, label="healthy band")
            ax.axhline(1e-3, color="tab:green", lw=0.8)
        ax.set(title="||update|| / ||weights||", xlabel="epoch")
        ax.legend(fontsize=7)
        fig.tight_layout()
        return fig


def _interactive():
    try:
        from IPython import get_ipython

        return get_ipython() is not None
    except ImportError:
        return False


# -- decisions -------------------------------------------------------------


def _fresh(optimizer):
    """An unbuilt copy, so a user's optimizer is never built twice."""
    return type(optimizer).from_config(optimizer.get_config())


def _wrap(optimizer, max_norm):
    if isinstance(optimizer, ClippedOptimizer):
        return ClippedOptimizer(_fresh(optimizer.inner_optimizer), max_norm=optimizer.max_norm)
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        inner = optimizer.inner_optimizer
        return keras.optimizers.LossScaleOptimizer(
            ClippedOptimizer(_fresh(inner), max_norm=max_norm),
            initial_scale=optimizer.initial_scale,
            dynamic_growth_steps=optimizer.dynamic_growth_steps)
    for attr in ("clipnorm", "global_clipnorm", "clipvalue"):
        if getattr(optimizer, attr, None) is not None:
            raise ValueError(
                f"The model's optimizer clips with `{attr}`; fit_with_tips clips the "
                "global norm after aggregation itself. Remove it, or pass clip_norm=. "
                f"Received: {attr}={getattr(optimizer, attr)}"
            )
    return ClippedOptimizer(_fresh(optimizer), max_norm=max_norm)


def _probe_step_seconds(model, make_optimizer, loss, metrics, batch, jit):
    """Median seconds of a train step with or without XLA (weights restored)."""
    weights = model.get_weights()
    model.compile(make_optimizer(), loss, metrics=metrics, jit_compile=jit)
    x, y = batch
    model.train_on_batch(x, y)  # compiles
    times = []
    for _ in range(_JIT_PROBE_STEPS):
        start = time.perf_counter()
        model.train_on_batch(x, y)
        times.append(time.perf_counter() - start)
    model.set_weights(weights)
    return statistics.median(times)


def _choose_jit(jit_compile, model, make_optimizer, loss, metrics, batch, no_xla=None):
    """Tip for the XLA target: returns (jit, Tip, execution dict).

    `no_xla` is the reason XLA is impossible under the strategy, if it is."""
    backend = keras.backend.backend()
    blockers = jit_blockers(model)
    blocked = f"; layers blocking XLA: {', '.join(blockers)}" if blockers else ""
    if no_xla is not None:
        return False, Tip(0, "execution", "jit_compile=False", no_xla), {
            "jit_compile": False, "blocked_by": blockers, "no_xla": no_xla}
    if jit_compile is True or jit_compile is False:
        if jit_compile and blockers:
            warnings.warn(
                f"jit_compile=True was asked, but layer(s) {blockers} do not support XLA; "
                "Keras will run the whole model without XLA.", stacklevel=3)
        return jit_compile, Tip(0, "execution", f"jit_compile={jit_compile}",
                                "as passed" + blocked), {"jit_compile": jit_compile,
                                                         "blocked_by": blockers}
    if backend == "jax":
        return True, Tip(0, "execution", "XLA (jit_compile=True)",
                         "the JAX backend always compiles with XLA"), {"jit_compile": True,
                                                                        "blocked_by": []}
    if blockers:
        return False, Tip(0, "execution", "jit_compile=False",
                          "XLA not possible" + blocked), {"jit_compile": False,
                                                          "blocked_by": blockers}
    if backend == "tensorflow":
        import tensorflow as tf

        accelerators = tf.config.list_logical_devices("GPU") + tf.config.list_logical_devices("TPU")
        if accelerators:
            return True, Tip(0, "execution", "XLA (jit_compile=True)",
                             f"accelerator present ({accelerators[0].device_type})"), {
                "jit_compile": True, "blocked_by": []}
    xla = _probe_step_seconds(model, make_optimizer, loss, metrics, batch, True)
    plain = _probe_step_seconds(model, make_optimizer, loss, metrics, batch, False)
    jit = xla < plain
    ratio = plain / xla
    tip = Tip(0, "execution", f"jit_compile={jit}",
              f"CPU: measured {_JIT_PROBE_STEPS} steps each way, XLA step "
              f"{xla * 1e3:.2f} ms vs plain {plain * 1e3:.2f} ms (plain/XLA = {ratio:.2f})")
    return jit, tip, {"jit_compile": jit, "xla_step_s": xla, "plain_step_s": plain,
                      "plain_over_xla": ratio, "blocked_by": []}


def _augmentation(augment, noise_bank, x_shape, seed):
    """Tip 10: the augmentation layers `augment` asks for."""
    from keras_recipes.audio import NoiseBank
    from keras_recipes.layers import NoiseMix, RandomShiftRotate

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


def _describe_layer(layer):
    config = layer.get_config()
    keys = [k for k in ("max_shift", "max_degrees", "snr_db", "colors", "rate") if k in config]
    inner = ", ".join(f"{k}={config[k]}" for k in keys)
    if getattr(layer, "bank_lengths", None):
        inner += f", noise bank of {len(layer.bank_lengths)} clips"
    return f"{type(layer).__name__}({inner})"


def _first_batch(dataset):
    for x, y in dataset.take(1):
        return keras.ops.convert_to_numpy(x), keras.ops.convert_to_numpy(y)


def _check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"`{name}` must be an integer >= 1. Received: {name}={value!r}")


# -- the call ----------------------------------------------------------------


def fit_with_tips(
    model,
    data,
    *,
    validation_data=None,
    validation_split=0.2,
    epochs=60,
    batch_size=128,
    learning_rate=0.1,
    momentum=0.9,
    clip_norm="auto",
    patience=None,
    stop_ratio=1e-2,
    preprocess=True,
    augment=None,
    noise_bank=None,
    callbacks=None,
    jit_compile="auto",
    strategy=None,
    seed=None,
    split_seed=None,
    verbose="auto",
    data_dir=None,
    ensemble=None,
    audit=True,
    checkpoint_dir=None,
    _members=None,
):
    """Trains `model` on `data` with Sutskever's advice applied, visibly.

    What it does (each decision is a row of `result.tips`):
    inputs standardized on the training split, with `log1p` on non-negative
    features spanning orders of magnitude (tip 1); minibatches of 128 (2); a
    mean-reduced loss (3), the model's own if it was compiled; SGD at 0.1 with
    momentum 0.9 unless the model was compiled with an optimizer, halved on a
    validation plateau and stopped when the rate is 1/100 of its start, best
    weights restored (4); the update/weight ratio logged and checked (5);
    gradient-norm clipping at 5 for recurrent models (7); longer patience for
    models with dropout (11); XLA where it is faster.

    Example:

    ```python
    model = keras.Sequential([keras.Input((64,)),
                              keras.layers.Dense(64, activation="relu"),
                              keras.layers.Dense(10)])
    result = fit_with_tips(model, "digits", epochs=30)
    print(result)
    result.model.save("digits.keras")
    ```

    Args:
        model: A `keras.Model` with one input (Sequential, functional or
            subclassed). Compiled or not.
        data: `(x, y)` arrays, a `tf.data.Dataset` of `(x, y)` (batched or
            not), `"digits"` (embedded) or a TFDS name (`"mnist"`).
        validation_data: `(x, y)` or a dataset. If `None`, a seeded,
            stratified `validation_split` of `data` is held out.
        validation_split: Float in (0, 1). Defaults to `0.2`.
        epochs: Integer. Upper bound on epochs; the stopping rule usually ends
            training earlier. Defaults to `60`.
        batch_size: Integer. Defaults to `128`.
        learning_rate: Float. Initial learning rate of the default optimizer
            (ignored when the model was compiled with one). Defaults to `0.1`.
        momentum: Float. Momentum of the default SGD. Defaults to `0.9`.
        clip_norm: `"auto"` (5.0 for recurrent models, else no clipping),
            `None` or a float. Defaults to `"auto"`.
        patience: Integer or `None` (3, or 6 with dropout). Validated epochs
            without improvement before the learning rate is halved.
        stop_ratio: Float. Stop once the learning rate is below this fraction
            of its initial value. Defaults to `1e-2`.
        preprocess: Boolean. Apply tip 1's preprocessing. Defaults to `True`.
        augment: Tip 10. `None`, `"image"` (`RandomShiftRotate`), `"audio"`
            (`NoiseMix`, with `noise_bank` when given), a Keras layer or a list
            of layers. Applied to the raw inputs, in training only.
        noise_bank: A `keras_recipes.audio.NoiseBank` for `augment="audio"`.
        callbacks: List of extra Keras callbacks, run after ours.
        jit_compile: `"auto"`, `True` or `False`. `"auto"` uses XLA on
            GPU/TPU and on JAX; on CPU it times a few steps both ways and keeps
            the faster. Under a multi-replica strategy XLA fails in Keras 3
            (see `keras_recipes.distribute`): `"auto"` turns it off, `True`
            is refused. Defaults to `"auto"`.
        strategy: `None` (the strategy whose scope the call is in, if any),
            `"auto"` (MirroredStrategy over all local GPUs when there are
            several) or a `tf.distribute.Strategy`. The model and optimizer
            are built under its scope (a model built outside it is cloned in
            with its weights); `batch_size` is the global batch, split over
            the replicas, and the loss is its mean, so the learning rate is
            not changed. Under MultiWorkerMirroredStrategy only the chief
            writes checkpoints and `final.keras`; every worker reads them.
        seed: Integer or `None`. Seeds Keras (initialization, dropout,
            augmentation), the data order and, unless `split_seed` is given,
            the validation split.
        split_seed: Integer or `None`. Seed of the validation split only;
            defaults to `seed`.
        verbose: `"auto"`, 0, 1 or 2. Prints the tips table first when not 0.
        data_dir: TFDS data directory for named datasets.
        audit: Boolean. Run `keras_recipes.audit` first: a failing rule stops
            with an error listing the findings, warnings go into the tips
            table and `result.audit`. Defaults to `True`.
        checkpoint_dir: Path or `None`. Write a checkpoint after every epoch
            (atomically: written, then renamed) and, when the folder already
            holds one, resume from it: weights, optimizer state, learning rate,
            the plateau callback's counters and best weights, the history and
            the data order. The finished model is saved there as
            `final.keras`. Start the same call again after a kill.
        ensemble: Integer or `None`. Shortcut for tip 12: train this many
            copies of `model` (re-initialized, seeds `seed + i`) with
            `keras_recipes.fit_ensemble` and return its `EnsembleResult`.

    Returns:
        A `FitResult` (an `EnsembleResult` with `ensemble=`).
    """
    if ensemble is not None:
        from keras_recipes.ensemble import fit_ensemble

        if not isinstance(model, keras.Model):
            raise TypeError(f"`model` must be a keras.Model. Received: model={model!r}")
        first = [model]

        def build():
            return first.pop() if first else keras.models.clone_model(model)

        return fit_ensemble(build, data, members=ensemble, validation_data=validation_data,
                            validation_split=validation_split, epochs=epochs,
                            batch_size=batch_size, learning_rate=learning_rate, momentum=momentum,
                            clip_norm=clip_norm, patience=patience, stop_ratio=stop_ratio,
                            preprocess=preprocess, augment=augment, noise_bank=noise_bank,
                            callbacks=callbacks, jit_compile=jit_compile, strategy=strategy,
                            seed=seed,
                            split_seed=split_seed, verbose=verbose, data_dir=data_dir,
                            audit=audit, checkpoint_dir=checkpoint_dir)
    start = time.perf_counter()
    if not isinstance(model, keras.Model):
        raise TypeError(f"`model` must be a keras.Model. Received: model={model!r}")
    inputs = getattr(model, "inputs", None)
    if isinstance(inputs, (list, tuple)) and len(inputs) > 1:
        raise ValueError(
            "fit_with_tips supports models with one input; merge the inputs or call "
            f"model.fit. Received: a model with {len(inputs)} inputs"
        )
    _check_positive_int("epochs", epochs)
    _check_positive_int("batch_size", batch_size)
    if patience is not None:
        _check_positive_int("patience", patience)
    if clip_norm != "auto" and clip_norm is not None and (
        isinstance(clip_norm, bool) or not isinstance(clip_norm, (int, float))
        or not clip_norm > 0 or not math.isfinite(clip_norm)):
        raise ValueError(f"`clip_norm` must be 'auto', None or a number > 0. "
                         f"Received: clip_norm={clip_norm!r}")
    if jit_compile not in ("auto", True, False):
        raise ValueError(f"`jit_compile` must be 'auto', True or False. "
                         f"Received: jit_compile={jit_compile!r}")
    if verbose not in ("auto", 0, 1, 2):
        raise ValueError(f"`verbose` must be 'auto', 0, 1 or 2. Received: verbose={verbose!r}")
    if callbacks is not None and not all(isinstance(c, keras.callbacks.Callback) for c in callbacks):
        raise TypeError(f"`callbacks` must be a list of keras.callbacks.Callback. "
                        f"Received: callbacks={callbacks!r}")
    keras_verbose = 1 if verbose == "auto" else verbose
    strategy_arg = strategy
    strategy = distribute.resolve(strategy)
    distribute.check_outside_scope(strategy)
    distribute.check_batch_size(batch_size, strategy)
    no_xla = distribute.check_jit(jit_compile, strategy)
    if seed is not None:
        keras.utils.set_random_seed(int(seed))
    # Everything that creates variables (the model, preprocessing,
    # optimizer, metrics) and the fit itself run inside the strategy's scope.
    with distribute.Scope(strategy) as scope:

        # Imported here: the data adapters need TensorFlow (tf.data), while the
        # rest of the package also runs where only JAX is installed.
        from keras_recipes import data as data_lib

        tips = []
        data = data_lib.make_data(data, validation_data, validation_split, batch_size,
                                  seed if split_seed is None else split_seed, data_dir,
                                  verbose=keras_verbose, shuffle_seed=seed)
        tips.append(Tip(4, "validation set", f"{data.n_validation} examples ({data.split})",
                        "decides LR drops, stopping and the best weights"))

        if strategy is None and strategy_arg == "auto":
            tips.append(Tip(0, "distribution", distribute.describe(None),
                            "strategy='auto': " + ("fewer than two GPUs"
                                                   if keras.backend.backend() == "tensorflow" else
                                                   "tf.distribute needs the TensorFlow backend")))
        elif strategy is not None:
            tips.append(Tip(0, "distribution", distribute.describe(strategy) + (
                f"; global batch {batch_size} = {batch_size // distribute.replicas(strategy)} "
                "per replica" if distribute.replicas(strategy) > 1 else ""),
                "batch_size is the global batch and the loss its mean: the gradient, and so "
                "the LR, do not change with the replica count (no LR rule applied)"))
        # Compile settings are read from the user's model; training uses it,
        # or its clone inside the strategy's scope.
        source = model
        model, cloned = distribute.in_scope(model, strategy)
        if cloned:
            tips.append(Tip(0, "model", "cloned into the strategy's scope", cloned
                            + "; the trained model is result.model"))
        # The user's model, built on the input shape, and its output width.
        if not model.built:
            model.build((None,) + tuple(data.x_shape))
        output = model(keras.ops.zeros((1,) + tuple(data.x_shape)))
        if isinstance(output, (list, tuple, dict)):
            raise ValueError("fit_with_tips supports models with one output. "
                             f"Received: a model with {len(output)} outputs")
        units = int(output.shape[-1]) if len(output.shape) > 1 else 1

        # Tip 3: the loss, mean-reduced; the user's compile settings respected.
        compiled = (bool(getattr(source, "compiled", False)) and source.optimizer is not None
                    and source.loss is not None)
        if compiled:
            loss, converted = mean_reduced(source.loss)
            config = source.get_compile_config() or {}
            metrics = keras.saving.deserialize_keras_object(config.get("metrics")) or []
            user_optimizer = source.optimizer
            why = "from model.compile"
            if converted:
                why += "; it summed over the batch, converted to the batch mean so the LR does not depend on the batch size"
            tips.append(Tip(3, "loss", getattr(loss, "name", str(loss)), why))
        else:
            loss, metrics, why = infer_loss(model, data.labels, units)
            user_optimizer = None
            tips.append(Tip(3, "loss", loss.name, why + "; mean over the batch"))
        check_labels(loss, data.labels, units)

        tips.append(Tip(2, "minibatch", f"batch_size={batch_size}", "about 128, as advised"
                        + (f"; {data.notes[0]}" if data.notes else "")))

        # Tip 1: preprocessing that becomes part of the model.
        pre_layers, applied, skipped = ([], None, "preprocess=False") if not preprocess else \
            preprocessing.plan(model, data.features)
        if pre_layers:
            tips.append(Tip(1, "inputs", applied, f"statistics of {data.n_train} training examples; "
                            "saved inside the model"))
        else:
            tips.append(Tip(1, "inputs", "unchanged", skipped))
        # Regression targets on a large scale make the MSE gradient (and so the
        # right LR) scale with them: train on standardized targets, and put the
        # inverse map after the model so `result.model` predicts in raw units.
        target = None
        if (not compiled and preprocess and isinstance(loss, keras.losses.MeanSquaredError)
                and data.labels.kind == "continuous"):
            target = data_lib.target_scale(data)
            if target is not None:
                mean_y, std_y = target
                data.map_pairs(lambda x, y: (x, (y - mean_y) / std_y))
                tips.append(Tip(1, "targets", f"standardized (mean {mean_y:.4g}, std {std_y:.4g}), "
                                "inverted inside result.model",
                                "the MSE gradient, and so the right LR, scale with the targets"))
        augment_layers = _augmentation(augment, noise_bank, data.x_shape, seed)
        if augment_layers:
            tips.append(Tip(10, "augmentation", ", ".join(_describe_layer(l) for l in augment_layers),
                            "training only (identity at inference), on the raw inputs"))
        raw = keras.Input(tuple(data.x_shape), name="raw_input")
        z = raw
        for layer in augment_layers + pre_layers:
            z = layer(z)
        if _members:
            # Tip 12, fused: every member in one compiled program, each scored
            # by its own mean loss; one step updates all of them.
            from keras_recipes.ensemble import MemberLoss, MemberwiseLoss, stack_members

            stacked = stack_members(_members, tuple(z.shape[1:]))
            trained_output = stacked(z)
            full = scope.training_model(raw, trained_output, "ensemble_training")
            member_loss = loss
            loss = MemberwiseLoss(member_loss)
            metrics = [MemberLoss(member_loss, i) for i in range(len(_members))]
            tips.append(Tip(12, "ensemble", f"{len(_members)} members trained as one compiled program",
                            "same architecture: one step updates every member (own optimizer state)"))
        elif (pre_layers or augment_layers or target is not None
              or distribute.is_multi_worker(strategy)):
            trained_output = model(z)
            full = scope.training_model(raw, trained_output, f"{model.name}_with_tips")
        else:
            full = model

        # Tips 4-7: optimizer, clipping.
        recurrent = recurrent_layers(model)
        dropout = dropout_layers(model)
        if clip_norm == "auto":
            max_norm = 5.0 if recurrent else None
            clip_why = (f"recurrent layers ({', '.join(recurrent)})" if recurrent
                        else "no recurrent layers: norms are recorded, not clipped")
        else:
            max_norm = clip_norm
            clip_why = "as passed"
        tips.append(Tip(7, "gradient clipping",
                        f"global norm {max_norm:g}" if max_norm else "off", clip_why))

        report = None
        if audit:
            from keras_recipes.diagnostics.audit import audit_data

            # Rules whose advice this call applies itself are not reported.
            skip = {"dropout", "gradient clipping", "batch size"}
            if preprocess:
                skip |= {"inputs standardized", "log1p"}
            report = audit_data(model, data, batch_size, loss=loss, will_clip=max_norm is not None,
                                compile_probe=False, skip=skip)
            if report.failures:
                raise ValueError(
                    "The audit found problems that would spoil training (fix them, or pass "
                    "audit=False to train anyway):\n"
                    + "\n".join(f"  tip {f.tip} {f.rule}: {f.message} (fix: {f.fix})"
                                 for f in report.failures))
            if report.warnings:
                tips.append(Tip(0, "audit", "; ".join(f"{f.rule}: {f.message}" for f in report.warnings),
                                "warnings only; see result.audit"))

        if user_optimizer is not None:
            make_optimizer = lambda: _wrap(user_optimizer, max_norm)
            tips.append(Tip(4, "optimizer", f"{type(user_optimizer).__name__} (from model.compile)",
                            "the user's choice is respected"))
        else:
            if isinstance(learning_rate, bool) or not isinstance(learning_rate, (int, float)) \
                    or not learning_rate > 0:
                raise ValueError(f"`learning_rate` must be a number > 0. "
                                 f"Received: learning_rate={learning_rate!r}")
            make_optimizer = lambda: ClippedOptimizer(
                keras.optimizers.SGD(float(learning_rate), momentum=momentum), max_norm=max_norm)
            tips.append(Tip(4, "optimizer", f"SGD(learning_rate={learning_rate:g}, momentum={momentum:g})",
                            "a normal starting LR; see BUILD_NOTES.md for the measured choice"))

        patience = patience or (6 if dropout else 3)
        plateau = ReduceLROnPlateau.halve(patience=patience, stop_ratio=stop_ratio,
                                          restore_best_weights=True, verbose=int(keras_verbose > 0))
        stop_text = "never stop early" if stop_ratio is None else f"stop below {stop_ratio:g} x initial"
        tips.append(Tip(4, "LR schedule", f"halve after {patience} flat validated epochs; "
                        f"{stop_text}; restore best weights",
                        "divide by 2 on plateau, stop when tiny"))
        if dropout:
            tips.append(Tip(11, "dropout", f"patience {patience} (not 3)",
                            f"dropout layers ({', '.join(dropout)}) need longer training"))
        monitor = UpdateRatioMonitor()
        tips.append(Tip(5, "update ratio", "logged per epoch and per layer",
                        "||update||/||weights|| near 1e-3 is healthy; warns outside [1e-4, 1e-2]"))

        checkpointer = resume = None
        if checkpoint_dir is not None:
            from keras_recipes.checkpoint import Checkpointer

            checkpointer = Checkpointer(checkpoint_dir, writes=distribute.is_chief(strategy))
            resume = checkpointer.peek()

        # Execution: XLA where it pays (a resumed run keeps the first run's choice).
        first_batch = _first_batch(data.train)
        if resume is not None:
            jit = resume["jit_compile"]
            exec_tip = Tip(0, "execution", f"jit_compile={jit}", "as chosen by the run being resumed")
            execution = {"jit_compile": jit, "blocked_by": jit_blockers(full)}
        else:
            jit, exec_tip, execution = _choose_jit(jit_compile, full, make_optimizer, loss, metrics,
                                                   first_batch, no_xla)
        tips.append(exec_tip)
        optimizer = make_optimizer()
        full.compile(optimizer, loss, metrics=metrics, jit_compile=jit)

        initial_epoch, past_history, past_layers = 0, {}, []
        if resume is not None:
            latest = checkpointer.latest()
            checkpointer.read(latest, full, optimizer)
            initial_epoch = resume["epoch"] + 1
            past_history, past_layers = resume["history"], resume["layer_history"]
            plateau.set_state(resume["plateau"])
            plateau.best_weights = checkpointer.read_arrays(latest, "best_weights")
            if resume.get("schedule_scale") is not None:
                from keras_recipes.callbacks import ScaledSchedule, learning_rate_schedule

                base = learning_rate_schedule(optimizer)
                if base is not None:
                    optimizer.learning_rate = ScaledSchedule(base, resume["schedule_scale"])
            tips.append(Tip(0, "resumed", f"from the checkpoint after epoch {initial_epoch}",
                            f"found in {checkpointer.directory}"))

        if keras_verbose:
            print(_table([[t.number, t.name, t.setting, t.reason] for t in tips],
                         ["tip", "what", "setting", "why"]))
        guard = StopOnNaN()
        # Order matters at the end of training: the guard restores the last
        # finite weights first, then the plateau callback the best ones.
        callback_list = [monitor, guard, plateau] + list(callbacks or [])
        run_history = {k: list(v) for k, v in past_history.items()}
        if checkpointer is not None:
            from keras_recipes.callbacks import ScaledSchedule, learning_rate_schedule
            from keras_recipes.checkpoint import CheckpointCallback

            def checkpoint_state(epoch, logs):
                for key, value in logs.items():
                    run_history.setdefault(key, []).append(float(value))
                schedule = learning_rate_schedule(full.optimizer)
                state = {
                    "epoch": epoch,
                    "history": run_history,
                    "layer_history": past_layers + monitor.layer_history,
                    "plateau": plateau.get_state(),
                    "jit_compile": bool(jit),
                    "schedule_scale": schedule.scale if isinstance(schedule, ScaledSchedule) else None,
                }
                return state, {"best_weights": plateau.best_weights}

            # Last, so that every callback before it has updated its state.
            callback_list.append(CheckpointCallback(checkpointer, checkpoint_state))
        # The dataset is already shuffled (seeded); Keras' own flag would only warn.
        # A run that had already stopped (the stopping rule) stays stopped.
        last_epoch = initial_epoch if plateau.stopped_epoch is not None else epochs
        # One dataset of all remaining epochs, each shuffled by (seed, epoch):
        # the same orders whether or not the run was interrupted and resumed.
        history = full.fit(data.epochs(initial_epoch, max(last_epoch, initial_epoch)),
                           steps_per_epoch=data.steps_per_epoch,
                           validation_data=data.validation, epochs=last_epoch,
                           callbacks=callback_list, verbose=keras_verbose, shuffle=False,
                           initial_epoch=initial_epoch)
        merged = {k: list(v) for k, v in past_history.items()}
        for key, values in history.history.items():
            merged[key] = merged.get(key, []) + list(values)
        execution["jit_compile_after_fit"] = bool(full.jit_compile)
        events = []
        if guard.event is not None:
            events.append(f"training diverged: loss {guard.event['loss']} at epoch "
                          f"{guard.event['epoch'] + 1} with learning rate "
                          f"{guard.event['learning_rate']:.4g}; stopped and restored the last "
                          "finite weights")
        if plateau.stopped_epoch is not None:
            events.append(f"stopped at epoch {plateau.stopped_epoch + 1}: the learning rate fell "
                          f"below {stop_ratio:g} x its initial value")
        if plateau.best_epoch is not None:
            events.append(f"weights restored from epoch {plateau.best_epoch + 1} "
                          f"(val_loss {plateau.best_weights_value:.4g})")
        execution["replicas"] = distribute.replicas(strategy)
        execution["workers"] = distribute.workers(strategy)
        if target is not None and not _members:
            mean_y, std_y = target
            outputs = keras.layers.Rescaling(scale=std_y, offset=mean_y, name="unstandardize_targets")(
                trained_output)
            full = keras.Model(raw, outputs, name=full.name)
        elif distribute.is_multi_worker(strategy):
            # A plain functional model for the user (the training one only
            # exists to get through Keras' multi-worker reductions).
            full = keras.Model(raw, trained_output, name=full.name)
        result = FitResult(full, merged, tips, data, execution,
                         past_layers + monitor.layer_history, time.perf_counter() - start, events)
        result.audit = report
        if checkpointer is not None:
            checkpointer.save_final(full)
        if _members:
            from keras_recipes.ensemble import assemble_fused

            result.execution["ensemble_path"] = "fused"
            result.ensemble = assemble_fused(_members, raw, z, target, result)
        return result
