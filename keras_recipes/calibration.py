"""Tip 5 steering tip 4: the learning rate read from the update/weight ratio.

`calibrate_learning_rate` measures ||update|| / ||weights|| over a few
training steps at a handful of rates and returns the rate whose ratio over
those first steps is closest to TARGET (2e-2; the run then settles near tip
5's 1e-3 over its epochs); `measure_update_ratio` measures it at the rate
the optimizer already has. Both leave the model, its optimizer state and its
random-seed state exactly as they found them.
"""

import dataclasses
import math
import time

import keras
import numpy as np

from keras_recipes import sharding
from keras_recipes.callbacks import find_clipped_optimizer

# The advice's "normal" starting rate; the search moves from it by factors
# of 2 (tip 4's divisor).
START = 0.1
FACTOR = 2.0
# Steps per probe: the ratio is read over the second half, once the momentum
# has built up.
STEPS = 8
MAX_PROBES = 5
# What the probe aims for. Tip 5's 1e-3 is the ratio of the bulk of training;
# the first steps away from the initialization move the weights further for
# the same rate. Chosen on validation results only (issue 36 item 5,
# benchmarks/bench_target_sweep.py, BUILD_NOTES.md): targets 5e-3 to 8e-2 on
# eight real tasks, three seeds; 2e-2, 4e-2 and 8e-2 are tied within the
# seeds' standard error, 5e-3 and 1e-2 are worse, and the lowest tied target
# (the lower rate) is kept. Over a run the ratio then falls to near 1e-3.
TARGET = 2e-2
# Inside fit_with_tips the run is held to one band read from TARGET (issue
# 36 item 5): an epoch ratio held above HIGH_OVER_TARGET * TARGET is far
# above it (the rate is halved, and the monitor warns there), below FAR_BELOW
# far below. A calibrated start reads about TARGET in its first steps and less
# after, so the top acts only on a run going wrong.
HIGH_OVER_TARGET = 1.5
FAR_BELOW = 1e-4


def run_band(target=None):
    """`(low, high)`: where a run aiming at `target` (default TARGET) is
    warned and acted on, per epoch."""
    target = TARGET if target is None else target
    return FAR_BELOW, HIGH_OVER_TARGET * target


# A given rate's probe reading, judged on the same scale: the measured good
# rates read within 2.5x of TARGET; 5e-2 and above trained badly, and below
# 5e-3 the budget ran out (BUILD_NOTES.md, issue 24).
PROBE_BAND = (TARGET / 4, TARGET * 2.5)
# The search never leaves start * 2**k for k in this range (from tip 4's 0.1:
# about 1.2e-5 .. 0.8).
_GRID = (-13, 3)


def ratio_text(ratio):
    """A measured ratio as the tips table shows it (a blow-up is not a number)."""
    return "a blow-up" if not math.isfinite(ratio) else f"{ratio:.2g}"


@dataclasses.dataclass(frozen=True)
class Calibration:
    """What the calibration measured and chose.

    Attributes:
        rate: The chosen learning rate.
        measured: Tuple of `(rate, update_ratio)` in the order probed; the
            ratio is `inf` where the loss or the ratio was not finite.
        target: The ratio aimed at.
        steps: Training steps per probe (the ratio is their second half's).
        seconds: Wall time of the calibration, without `trace_seconds`.
        initial_loss: The loss of the first step, before any update.
        trace_seconds: Time spent tracing the train step (the first step
            of an untraced model).
        trace_reused: Whether `fit` runs that traced step as it is: the
            probes went through `fit` on batches in training's own form
            (`fit_input=`), so training does not trace (or, under XLA,
            compile) the step again.
    """

    rate: float
    measured: tuple
    target: float
    steps: int
    seconds: float
    initial_loss: float = None
    trace_seconds: float = 0.0
    trace_reused: bool = False

    @property
    def ratio(self):
        """The measured ratio at the chosen rate."""
        return dict(self.measured)[self.rate]

    def evidence(self):
        probes = ", ".join(f"{r:.3g} -> {ratio_text(q)}" for r, q in self.measured)
        still = all(q == 0 for _, q in self.measured)
        choice = (f"the weights did not move at any rate (no gradient reaches them: all-zero "
                  f"or constant initial weights, dead activations), so {self.rate:.3g}, the "
                  "start, is no measured choice" if still else
                  f"{self.rate:.3g} is closest to {self.target:g}")
        return (f"update/weight ratio over {self.steps} training steps per rate: {probes}; "
                f"{choice} ({self.seconds:.1f} s, and "
                f"{self.trace_seconds:.1f} s tracing the step"
                f"{' training reuses' if self.trace_reused else ''}; weights and "
                "optimizer state restored)")


class _Restorer:
    """The model's variables (weights, seed states) and the optimizer's, as
    numpy copies, put back with `restore()`."""

    def __init__(self, model, optimizer):
        self.pairs = [(v, sharding.host(v)) for v in
                      list(model.variables) + list(optimizer.variables)]

    def restore(self):
        for variable, value in self.pairs:
            variable.assign(value)


def _check_model(model):
    if not getattr(model, "compiled", False) or model.optimizer is None:
        raise ValueError("calibrate_learning_rate needs a compiled model (model.compile(...) "
                         f"with an optimizer). Received: model={model.name!r}, not compiled")
    clipped = find_clipped_optimizer(model.optimizer)
    if clipped is None or not clipped.track_update_ratio:
        raise ValueError(
            "The update ratio is recorded by keras_recipes.optimizers.ClippedOptimizer "
            "(track_update_ratio=True) inside the train step: compile with "
            "ClippedOptimizer(opt, max_norm=None). "
            f"Received: optimizer={type(model.optimizer).__name__}")
    return clipped


def _build(model, clipped):
    """Builds the optimizer before the first step, so that its initial
    values are part of what is restored (a built one is left as it is: its
    variables are the ones the traced step updates)."""
    if not clipped.built:
        clipped.build(model.trainable_variables)


def _cycle(batches, steps):
    batches = list(batches)
    if not batches:
        raise ValueError("calibrate_learning_rate needs at least one training batch. "
                         "Received: batches=[]")
    return [batches[i % len(batches)] for i in range(steps)]


def _probe(model, clipped, batches, fit_input=None):
    """(mean update ratio over the second half of `batches`' steps, the
    first step's loss); the ratio is inf when the loss or the ratio stops
    being finite. The first loss is the model's before any update.

    With `fit_input`, the steps run through `model.fit` on
    `fit_input(batches[a:b])`, so the step traced is the one training runs."""
    warm = len(batches) // 2
    loss = first = 0.0
    clipped.reset_stats()
    if fit_input is not None and getattr(model, "steps_per_execution", 1) == 1:
        # One `fit` call, not one per half (each call has its own setup):
        # a callback zeroes the statistics between the halves.
        losses = _fit_steps(model, fit_input, batches, reset_after=(warm, clipped))
        first, loss = losses[0], losses[-1]
    elif fit_input is not None:  # steps run in groups: a `fit` per half
        losses = _fit_steps(model, fit_input, batches[:warm])
        first, loss = losses[0], losses[-1]
        if math.isfinite(loss):
            clipped.reset_stats()
            loss = _fit_steps(model, fit_input, batches[warm:])[-1]
    else:
        for i, (x, y) in enumerate(batches):
            if i == warm:
                clipped.reset_stats()
            logs = model.train_on_batch(x, y, return_dict=True)
            loss = float(logs["loss"])
            first = loss if i == 0 else first
            if not math.isfinite(loss):
                break
    ratio = clipped.read_stats(reset=True).get("update_ratio", math.inf)
    # A ratio of 0 is a measurement (nothing moved), not a blow-up.
    finite = math.isfinite(loss) and math.isfinite(ratio) and ratio >= 0
    return (ratio if finite else math.inf), first


class _StepLosses(keras.callbacks.Callback):
    """The loss after each step of a `fit` (the epoch's running mean: the
    first is the first step's); stops at a non-finite one. With
    `reset_after=(n, clipped)`, zeroes `clipped`'s statistics after step n."""

    def __init__(self, reset_after=None):
        super().__init__()
        self.losses = []
        self.reset_after = reset_after

    def on_train_batch_end(self, batch, logs=None):
        self.losses.append(float((logs or {}).get("loss", math.nan)))
        if not math.isfinite(self.losses[-1]):
            self.model.stop_training = True
        elif self.reset_after and len(self.losses) == self.reset_after[0]:
            # On JAX, fit carries the state between steps outside the
            # variables; synced, the next step reads them (zeroed) back.
            getattr(self.model, "jax_state_sync", lambda: None)()
            self.reset_after[1].reset_stats()


def _fit_steps(model, fit_input, batches, reset_after=None):
    """One step per batch through `model.fit`; the losses after each."""
    seen = _StepLosses(reset_after)
    model.fit(fit_input(list(batches)), epochs=1, verbose=0, shuffle=False, callbacks=[seen])
    return seen.losses or [math.nan]


def measure_update_ratio(model, batches, steps=STEPS):
    """The update/weight ratio the compiled `model` takes at its optimizer's
    current rate, over `steps` training steps of `batches` (cycled) from its
    current state.

    The model, its optimizer state and seed states are restored afterwards.

    Example:

    ```python
    model.compile(ClippedOptimizer(keras.optimizers.Adam(), max_norm=None), "mse")
    ratio = measure_update_ratio(model, [(x[:128], y[:128])])
    ```

    Args:
        model: A `keras.Model` compiled with a `ClippedOptimizer`.
        batches: Iterable of `(x, y)` training batches.
        steps: Integer. Steps to take (the ratio is the second half's mean).
            Defaults to `8`.

    Returns:
        Float: the mean ratio (`inf` if the loss blew up).
    """
    return probe_update_ratio(model, batches, steps)[0]


def probe_update_ratio(model, batches, steps=STEPS, fit_input=None):
    """`measure_update_ratio`, and the loss of the first step (before any
    update): returns `(ratio, initial_loss)`. With `fit_input` (see
    `calibrate_learning_rate`), the steps run through `model.fit`."""
    clipped = _check_model(model)
    batches = _cycle(batches, _check_steps(steps))
    _build(model, clipped)
    saved = _Restorer(model, model.optimizer)
    try:
        return _probe(model, clipped, batches, fit_input)
    finally:
        saved.restore()
        clipped.reset_stats()


def _check_steps(steps):
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 2:
        raise ValueError(f"`steps` must be an integer >= 2. Received: steps={steps!r}")
    return int(steps)


def calibrate_learning_rate(model, batches, target=TARGET, start=START, factor=FACTOR,
                            steps=STEPS, max_probes=MAX_PROBES, grid=_GRID, fit_input=None):
    """Finds the learning rate whose update/weight ratio over the first
    steps is closest to `target`, by measuring it (tips 4 and 5).

    Starting at `start`, each probe restores the model and its optimizer,
    sets the rate, takes `steps` training steps and reads the mean ratio of
    the second half (the momentum has built up by then). The next rate is
    `start * factor**k` nearest to where the measured ratio says the target
    lies (a ratio grows about in proportion to the rate); a probe whose loss
    blows up counts as too high. The search stops when the nearest grid rate
    was measured, or after `max_probes` probes, and returns the measured
    rate closest to the target (on a log scale). Everything, the random
    seed states included, is restored afterwards, and the rate is left at the
    choice. Call it before training: an optimizer that has taken steps keeps
    velocities scaled by its old rate, which would blur every probe.

    Example:

    ```python
    model.compile(ClippedOptimizer(keras.optimizers.SGD(0.1, momentum=0.9),
                                   max_norm=None), "mse")
    calibration = calibrate_learning_rate(model, [(x[:128], y[:128])])
    print(calibration.rate, calibration.evidence())
    ```

    Args:
        model: A `keras.Model` compiled with a `ClippedOptimizer` that
            tracks the update ratio, whose learning rate is a plain number.
        batches: Iterable of `(x, y)` training batches (cycled to `steps`).
        target: Float. The ratio to aim for over the first steps. Defaults
            to `2e-2`, chosen on validation loss over the quality
            benchmark's tasks (BUILD_NOTES.md, issue 36, item 5). Over a
            run the ratio falls toward tip 5's 1e-3
            (`benchmarks/bench_ratio_over_run.py`).
        start: Float. The first rate probed. Defaults to `0.1`.
        factor: Float > 1. The grid's step between rates. Defaults to `2.0`.
        steps: Integer >= 2. Training steps per probe. Defaults to `8`.
        max_probes: Integer >= 1. Defaults to `5`.
        grid: `(lowest, highest)` integers k: the rates probed are
            `start * factor**k` within them. Defaults to `(-13, 3)`.
        fit_input: Optional callable: a list of `batches`' elements in, the
            input `model.fit` reads them from out, in the form training
            will give `fit` (the same element structure and types). The
            steps then run through `model.fit`, so the step traced here
            (and, under XLA, compiled) is the one training runs: training
            does not trace it again. `batches` are then training's
            elements. Defaults to `None`: `train_on_batch`, whose step
            `fit` traces anew.

    Returns:
        A `Calibration` (`.rate`, `.measured`, `.evidence()`).
    """
    for name, value in (("target", target), ("start", start), ("factor", factor)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
                math.isfinite(value) and value > 0):
            raise ValueError(f"`{name}` must be a finite number > 0. Received: {name}={value!r}")
    if factor <= 1:
        raise ValueError(f"`factor` must be > 1. Received: factor={factor!r}")
    if isinstance(max_probes, bool) or not isinstance(max_probes, int) or max_probes < 1:
        raise ValueError(f"`max_probes` must be an integer >= 1. Received: max_probes={max_probes!r}")
    if (not isinstance(grid, (tuple, list)) or len(grid) != 2
            or not all(isinstance(k, int) and not isinstance(k, bool) for k in grid)
            or not grid[0] <= 0 <= grid[1]):
        raise ValueError("`grid` must be two integers (lowest, highest) around 0 (the start). "
                         f"Received: grid={grid!r}")
    began = time.perf_counter()
    clipped = _check_model(model)
    taken = int(sharding.host(model.optimizer.iterations))
    if taken:
        raise ValueError("calibrate_learning_rate runs before training: this optimizer has "
                         "taken steps, and its state (momentum) carries the old rate into every "
                         f"probe. Compile a fresh optimizer first. Received: {taken} steps taken")
    batches = _cycle(batches, _check_steps(steps))
    _build(model, clipped)
    saved = _Restorer(model, model.optimizer)
    measured = {}
    k = 0
    trace = 0.0
    if getattr(model, "train_function", None) is None:
        # Traces the train step: with `fit_input`, the one `fit` then runs
        # as it is. (Undone with the rest below.)
        began_trace = time.perf_counter()
        if fit_input is not None:
            _fit_steps(model, fit_input, batches[:1])
        else:
            model.train_on_batch(*batches[0])
        trace = time.perf_counter() - began_trace
    try:
        for _ in range(max_probes):
            rate = float(start * factor ** k)
            saved.restore()
            model.optimizer.learning_rate = rate
            ratio, first = _probe(model, clipped, batches, fit_input)
            initial_loss = first if not measured else initial_loss
            measured[k] = (rate, ratio)
            # Where the target lies if the ratio grows with the rate; a
            # blow-up says only "lower", by two grid steps.
            if ratio == 0:
                break  # nothing moved: no gradient reaches the weights, at any rate
            jump = -2 if not math.isfinite(ratio) else round(
                math.log(target / ratio) / math.log(factor))
            nxt = min(max(k + jump, grid[0]), grid[1])
            if nxt in measured:
                break
            k = nxt
    finally:
        saved.restore()
        clipped.reset_stats()
    finite = [(r, q) for r, q in measured.values() if math.isfinite(q) and q > 0]
    if not finite and any(math.isfinite(q) for _, q in measured.values()):
        rate = float(start)  # nothing moved at any rate: no evidence, the usual start
    elif finite:
        rate = min(finite, key=lambda p: abs(math.log(p[1] / target)))[0]
    else:  # every probe blew up: the smallest rate tried, and the guard for the rest
        rate = min(r for r, _ in measured.values())
    model.optimizer.learning_rate = rate
    return Calibration(rate=rate, measured=tuple(measured.values()), target=float(target),
                       steps=len(batches), seconds=time.perf_counter() - began - trace,
                       initial_loss=initial_loss, trace_seconds=trace,
                       trace_reused=fit_input is not None)
