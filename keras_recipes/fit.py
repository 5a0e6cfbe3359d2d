"""The front doors: `fit_with_tips(model, data)`, one call that applies the
advice, and `fit_ensemble(build_model, data)`, the same for tip 12's members.

`fit_with_tips` is `plan(model, data, ...).fit()`: `keras_recipes.plan`
decides (each decision a `Tip` with its evidence), `keras_recipes.build`
makes the Keras objects, `keras_recipes.train` runs them and returns a
`FitResult`. `fit_ensemble` builds the members and trains them fused (one
plan `with_members`) or in turn (one `fit_with_tips` each).
"""

import keras
import numpy as np

from keras_recipes import distribute
from keras_recipes.decide.options import fit_data
from keras_recipes.ensemble import VECTORIZE
from keras_recipes.ensemble import AveragingEnsemble
from keras_recipes.ensemble import EnsembleResult
from keras_recipes.ensemble import FusedMembers
from keras_recipes.ensemble import architecture_signature
from keras_recipes.ensemble import evaluate_members
from keras_recipes.modelinfo import fixed_batch_size
from keras_recipes.modelinfo import stateful_layers
from keras_recipes.plan import plan
from keras_recipes.result import FitResult  # noqa: F401 (public here before)
from keras_recipes.result import Tip  # noqa: F401


def fit_with_tips(model, data=None, y=None, *, x=None, ensemble=None, **options):
    """Trains `model` on `data` with Sutskever's advice applied, visibly.

    What it does (each decision is a row of `result.tips`):
    inputs standardized on the training split, with `log1p` on non-negative
    features spanning orders of magnitude (tip 1); minibatches of 32 (2: the
    tip says about 128; 32 validated better); a
    mean-reduced loss (3), the model's own if it was compiled; Adam (SGD
    with momentum 0.9 at a given rate) unless the model was compiled with an
    optimizer, at the rate whose measured update/weight ratio is healthy
    (4, 5), halved on a
    validation plateau, lowered when the ratio stays far above the band, a
    diverged epoch undone, stopped when neither a better validation loss nor
    moving weights are left, best weights restored; the ratio logged (5);
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
        model: A `keras.Model` (Sequential, functional or subclassed),
            compiled or not; several inputs or outputs as `model.fit`
            takes them (lists or dicts keyed by name).
        data: `(x, y)` arrays, a `tf.data.Dataset` of `(x, y)` (batched or
            not), `"digits"` (embedded) or a TFDS name (`"mnist"`); or the
            inputs `x`, with the labels as `y` (`fit_with_tips(model, x, y)`,
            as `model.fit(x, y)`).
        y: The labels, when `data` is the inputs alone. Defaults to `None`.
        x: The inputs by keyword (`model.fit(x=..., y=...)`). Defaults to
            `None`.
        validation_data: `(x, y)` or a dataset. If `None`, a seeded,
            stratified `validation_split` of `data` is held out.
        validation_split: Float in (0, 1). Defaults to `0.2`.
        epochs: `"auto"` or an integer. Upper bound on epochs (a budget); the
            stopping rule usually ends training earlier; a run still
            improving when it runs out ends as `"capped"`. `"auto"`: 100,
            or enough epochs for 3000 updates when epochs are short (small
            data). Defaults to `"auto"`.
        batch_size: `"auto"` or an integer. `"auto"`: 32 (tip 2 says about
            128; 32 had the lower validation loss on 7 of 8 real tasks, see
            BUILD_NOTES.md, issue 36), or a smaller power of two (at least
            16) when 32 would give fewer than 8 updates an epoch. 128 keeps
            the tip. Defaults to `"auto"`.
        learning_rate: `"auto"` or a float. The default optimizer's initial
            rate (ignored when the model was compiled with one). `"auto"`
            measures the update/weight ratio over a few training steps at
            rates by factors of 2 from the optimizer's usual rate (0.1 for
            SGD, 1e-3 for Adam) and takes the one closest to the
            healthy band (`keras_recipes.calibration`; weights, optimizer
            and seed states restored), then keeps the ratio in view: held far
            above the band, the rate is halved. A float is a fixed start.
            Either way a diverged epoch (NaN or an exploded loss) is undone
            and the rate divided by 5, up to 4 times. Defaults to `"auto"`.
        optimizer: `"auto"`, `"adam"` or `"sgd"`. The optimizer of a model
            that was not compiled with one. `"auto"`: Adam, whether its
            rate is read from the update ratio or given as
            `learning_rate=`; SGD with momentum when `momentum` is given.
            `"sgd"` is the literal tips (SGD with momentum 0.9). Defaults
            to `"auto"`.
        momentum: `None` or a float in [0, 1). Momentum of SGD (0.9 when
            `None`); giving one chooses SGD. Defaults to `None`.
        clip_norm: `"auto"` (5.0 for recurrent models, else no clipping),
            `None` or a float. Defaults to `"auto"`.
        patience: Integer or `None`. Validated epochs without improvement
            before the learning rate is halved. `None`: 3 (6 with dropout),
            raised until those epochs hold 100 updates (with few updates an
            epoch, a few epochs are validation noise, not a plateau).
        stop_ratio: `"auto"`, a float or `None`. `"auto"` stops once
            `2 * patience` epochs brought no better validation loss and the
            update ratio is below a tenth of that of the last epoch that
            improved (the updates no longer move the weights: more halvings
            cannot help). A float stops once the learning rate is
            below that fraction of its initial value; `None` never stops
            early. `epochs` is then a budget: a run still improving when it
            runs out ends with status `"capped"`. Defaults to `"auto"`.
        forget_bias: "auto", a number or None. Tip 9: "auto" sets the
            forget-gate bias of an LSTM (or ConvLSTM) still at Keras' default
            1 (read from its weights) to 3 when it reads sequences of 32
            steps or more (measured, BUILD_NOTES.md); a number sets that
            value on every LSTM at the default; None never changes it.
            Defaults to `"auto"`.
        reinitialize: "auto" or False. Tip 6 acting on a model no rate can
            train: when the update ratio measures 0 at every rate tried (no
            gradient reaches the weights) and kernels hold one value each
            (all 0.0, or all equal), "auto" redraws those kernels,
            `randn / sqrt(fan_in)`, before training, with a row saying so;
            False leaves them (the run then ends "not learning"). Defaults
            to `"auto"`.
        preprocess: "auto", True or False. Tip 1's preprocessing: "auto"
            standardizes an input only where that is shown safe (every layer
            reading it, through the model's own graph, treats its values as
            magnitudes: Dense, Conv*, the RNNs; not a model trained before);
            True standardizes every numeric input; False none. Defaults to
            `"auto"`.
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
            several) or a `tf.distribute.Strategy`. On JAX: `None` (the active
            `keras.distribution`), `"auto"` (the same, or `DataParallel` over
            the local accelerators when there are several) or a
            `keras.distribution.DataParallel` / `ModelParallel`; batches that
            do not divide over the devices are cut to fit (the distribution
            row says how). The model and optimizer
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
        task: `None` (inferred from the label values and the model's measured
            output), or one of "classification", "binary", "multilabel",
            "regression" to override the inference.
        loss: A Keras loss to use instead of the inferred one (converted to
            the batch mean if it sums).
        deterministic: `"auto"` (on when `seed` is given), True or False.
            The backend's deterministic kernels for this call (TensorFlow op
            determinism, torch deterministic algorithms); the previous
            setting is restored afterwards.
        sample_weight, class_weight, steps_per_epoch, validation_steps,
            shuffle: As for `model.fit` (`shuffle=False` keeps the data's
            order; with `True` each epoch is shuffled by `(seed, epoch)`;
            `"auto"`, the default, is `True` except for a stateful model).
        read_once: Boolean. A `keras.utils.PyDataset` is read anew every
            epoch, its batches kept, as `model.fit` reads it, and so is a
            generator that yields more than `steps_per_epoch` batches;
            `True` reads the PyDataset, or the generator's first
            `steps_per_epoch` batches, once into memory and re-batches
            them. Defaults to `False`.
        ensemble: Integer or `None`. Shortcut for tip 12: train this many
            copies of `model` (re-initialized, seeds `seed + i`) with
            `keras_recipes.fit_ensemble` and return its `EnsembleResult`.

    Returns:
        A `FitResult` (an `EnsembleResult` with `ensemble=`).
    """
    data = fit_data(data, y, x)
    if ensemble is not None:
        if not isinstance(model, keras.Model):
            raise TypeError(f"`model` must be a keras.Model. Received: model={model!r}")
        first = [model]

        def build():
            return first.pop() if first else keras.models.clone_model(model)

        return fit_ensemble(build, data, members=ensemble, **options)
    return plan(model, data, **options).fit()


def fit_ensemble(build_model, data=None, members=10, *, x=None, y=None, vectorize="auto",
                 fused=True, **fit_kwargs):
    """Trains `members` models from `build_model` and averages them (tip 12).

    Members differ by seed: `seed + i` sets each one's initialization, its
    dropout and augmentation draws, and its data order. When `build_model`
    returns the same architecture every time, the members train together as
    one compiled program (one step updates all members, each with its own
    optimizer state, its own batches and, when gradients are clipped, its own
    global norm), as a vectorized model (weights stacked along a member
    axis, one kernel per layer) where the backend and device make that
    faster, else side by side (stacked). Otherwise they train in turn. The
    tips table and `result.reason` say which path ran and why.

    Example:

    ```python
    def build():
        return keras.Sequential([keras.Input((64,)),
                                 keras.layers.Dense(64, activation="relu"),
                                 keras.layers.Dense(10)])

    result = fit_ensemble(build, "digits", members=10)
    print(result)            # member, ensemble and first-k validation accuracy
    result.plot()            # the marginal-gain curve
    result.model.save("ensemble.keras")
    ```

    Args:
        build_model: Callable returning a new (uncompiled or compiled)
            `keras.Model`.
        data: As for `fit_with_tips`.
        members: Integer >= 1. Defaults to `10`.
        x, y: The inputs and labels by keyword, as `model.fit(x=, y=)`
            (`members` keeps the third place). Defaults to `None`.
        vectorize: "auto" (by backend and device, see BUILD_NOTES.md), True
            (an error when the members cannot be vectorized) or False
            (stacked). Defaults to `"auto"`.
        fused: False trains the members in turn, as independent runs.
            Defaults to `True`.
        **fit_kwargs: Passed to `fit_with_tips` (`seed`, `epochs`,
            `strategy`, ...). Under a `strategy` the members are built in its
            scope and each training step is split over its replicas.

    Returns:
        An `EnsembleResult`.
    """
    data = fit_data(data, y, x)
    if not callable(build_model) or isinstance(build_model, keras.Model):
        raise TypeError("`build_model` must be a function returning a new keras.Model. "
                        f"Received: build_model={build_model!r}")
    if isinstance(members, bool) or not isinstance(members, (int, np.integer)) or members < 1:
        raise ValueError(f"`members` must be an integer >= 1. Received: members={members!r}")
    if "ensemble" in fit_kwargs:
        raise TypeError("Pass the number of members as `members`. Received: ensemble=...")
    if not any(vectorize is v for v in VECTORIZE):
        raise ValueError(f"`vectorize` must be one of {VECTORIZE}. Received: vectorize={vectorize!r}")
    if fused not in (True, False) or not isinstance(fused, bool):
        raise ValueError(f"`fused` must be True or False. Received: fused={fused!r}")
    seed = fit_kwargs.pop("seed", None)
    base_seed = 0 if seed is None else int(seed)
    # Members are built under the strategy's scope (no clone needed) and
    # then train data-parallel over its replicas.
    strategy = distribute.resolve(fit_kwargs.get("strategy"))
    distribute.check_outside_scope(strategy)
    if fit_kwargs.get("strategy") is not None:
        fit_kwargs["strategy"] = strategy
    models = []
    for i in range(members):
        keras.utils.set_random_seed(base_seed + i)
        with distribute.Scope(strategy):
            model = build_model()
        if not isinstance(model, keras.Model):
            raise TypeError(f"`build_model` must return a keras.Model. Received: {type(model).__name__}")
        models.append(model)
    stateful = stateful_layers(models[0])
    if stateful:
        raise ValueError(
            "An ensemble of stateful models is not supported: each member's states follow its "
            "own stream of batches, and averaging needs every prediction at the fixed batch "
            "size. Train the members with fit_with_tips and average them with "
            f"keras_recipes.AveragingEnsemble. Received: stateful=True on {stateful[0]!r}")
    fixed = fixed_batch_size(models[0])
    signatures = {architecture_signature(m) for m in models}
    same = len(signatures) == 1 and None not in signatures
    first = None
    if same and members > 1 and fused is not False and fixed is None:
        first = plan(models[0], data, seed=base_seed, **fit_kwargs)
        if not (first.data.kept_batches or first.decisions.structured):
            fused = FusedMembers(models, vectorize=vectorize)
            return first.with_members(fused).fit()
    if first is not None and first.data.kept_batches:
        reason = ("the batches are kept as given (their shapes vary), so the members cannot "
                  "stack their own orders of one batch")
    elif first is not None:
        reason = ("several inputs or outputs, or an input passed through as given (text, "
                  "sparse, ragged): the members' stacked model reads one numeric input")
    elif not same:
        reason = "build_model returned different architectures"
    elif fixed is not None and members > 1 and fused is not False:
        reason = (f"the model's inputs fix the batch size at {fixed}, so the members cannot "
                  "share one batch")
    elif members == 1:
        reason = "one member"
    else:
        reason = "fused=False"
    results = []
    for i, model in enumerate(models):
        # One validation split for all (so the table compares like with
        # like); initialization, data order and dropout differ by member.
        results.append(first.fit() if i == 0 and first is not None else fit_with_tips(
            model, data, seed=base_seed + i, split_seed=base_seed, **fit_kwargs))
    trained = [r.model for r in results]
    average = "mean" if results[0].data.labels.kind == "continuous" else "probabilities"
    ensemble = AveragingEnsemble(trained, average=average, name="averaging_ensemble")
    x_val, y_val = results[0].data.validation_arrays()
    metric, member_scores, prefix = evaluate_members(trained, x_val, y_val, average)
    return EnsembleResult(ensemble, trained, [r.history for r in results], "sequential",
                          reason, metric, member_scores, prefix, results)
