"""Callbacks for tips 4 and 5: plateau presets with a stopping rule, and the
update/weight-ratio monitor."""

import math
import warnings

import keras
import numpy as np
from absl import logging

from keras_recipes.optimizers import ClippedOptimizer
from keras_recipes.stateful import ResetStates  # noqa: F401  (keras_recipes.callbacks.ResetStates)

_PACKAGE = "keras_recipes"
_Schedule = keras.optimizers.schedules.LearningRateSchedule


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ScaledSchedule(_Schedule):
    """A learning-rate schedule multiplied by a constant `scale`.

    `ReduceLROnPlateau` uses it to lower a schedule's learning rate without
    replacing the schedule's shape.

    Args:
        schedule: A `LearningRateSchedule`.
        scale: Float. Multiplier of the schedule's value.
    """

    def __init__(self, schedule, scale=1.0):
        if not isinstance(schedule, _Schedule):
            raise TypeError(
                "`schedule` must be a LearningRateSchedule. "
                f"Received: schedule={schedule!r}"
            )
        self.schedule = schedule
        self.scale = float(scale)

    def __call__(self, step):
        return self.schedule(step) * self.scale

    def get_config(self):
        return {
            "schedule": keras.saving.serialize_keras_object(self.schedule),
            "scale": self.scale,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        schedule = keras.saving.deserialize_keras_object(config.pop("schedule"))
        return cls(schedule, **config)


def lr_optimizers(optimizer):
    """[(name, optimizer)] whose learning rates an LR callback drives: the
    sub-optimizers of a `MultiOptimizer` (also inside a ClippedOptimizer), as
    Keras' own ReduceLROnPlateau does, else [("", optimizer)]."""
    subs = getattr(optimizer, "optimizers", None)
    if subs is not None:  # empty until a MultiOptimizer with a selector is built
        return [(sub.name, sub) for sub in subs]
    return [("", optimizer)]


def _rate(optimizer):
    lr = optimizer.learning_rate
    return float(keras.ops.convert_to_numpy(keras.ops.convert_to_tensor(lr)))


def current_learning_rate(optimizer):
    """The learning rate in force now, as a float (schedules evaluated); the
    largest of a MultiOptimizer's."""
    return max(_rate(sub) for _, sub in lr_optimizers(optimizer))


def _lr_logs(optimizer):
    """Keras' log keys: `learning_rate`, or `learning_rate_<name>` per
    sub-optimizer of a MultiOptimizer."""
    named = lr_optimizers(optimizer)
    if named and named[0][0] == "":
        return {"learning_rate": _rate(optimizer)}
    return {f"learning_rate_{name}": _rate(sub) for name, sub in named}


def _print_msg(message):
    """As Keras' callbacks print: to stdout while interactive logging is on
    (`keras.config.disable_interactive_logging()` turns it off), else through
    absl logging."""
    if keras.config.is_interactive_logging_enabled():
        print(message, flush=True)
    else:
        logging.info(message)


def learning_rate_schedule(optimizer):
    """The optimizer's LearningRateSchedule, or None for a plain rate.

    Keras' `learning_rate` getter evaluates a schedule, and no public
    attribute gives it back, so this reads `_learning_rate` of the innermost
    optimizer (wrappers pass `learning_rate` through to it).
    """
    while getattr(optimizer, "inner_optimizer", None) is not None:
        optimizer = optimizer.inner_optimizer
    lr = getattr(optimizer, "_learning_rate", None)
    return lr if isinstance(lr, _Schedule) else None


def scale_learning_rate(model, optimizer, factor, min_lr=0.0):
    """Multiplies `optimizer`'s learning rate by `factor` (not below
    `min_lr`); a schedule is wrapped in a `ScaledSchedule` and `model`'s
    train function retraced. Returns the new rate, or None when the rate was
    already at `min_lr`."""
    old_lr = _rate(optimizer)
    if old_lr <= float(np.float32(min_lr)):
        return None
    lr = learning_rate_schedule(optimizer)
    if lr is not None:
        if isinstance(lr, ScaledSchedule):
            new = ScaledSchedule(lr.schedule, lr.scale * factor)
        else:
            new = ScaledSchedule(lr, factor)
        optimizer.learning_rate = new
        # The schedule is a Python object read when the step is traced.
        model.make_train_function(force=True)
        return _rate(optimizer)
    new_lr = max(old_lr * factor, min_lr)
    optimizer.learning_rate = new_lr
    return new_lr


def _check_fraction(name, value, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(
        value, (int, float, np.integer, np.floating)
    ):
        raise TypeError(f"`{name}` must be a number. Received: {name}={value!r}")
    if not 0.0 < value < 1.0:
        raise ValueError(
            f"`{name}` must be in the open interval (0, 1). "
            f"Received: {name}={value}"
        )
    return float(value)


def _check_count(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(
            f"`{name}` must be an integer >= 0. Received: {name}={value!r}"
        )
    return int(value)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ReduceLROnPlateau(keras.callbacks.ReduceLROnPlateau):
    """Divide the learning rate when the validation metric plateaus; stop
    when it is tiny (tip 4).

    Keras' `ReduceLROnPlateau`, with Keras' defaults and behaviour when given
    Keras' arguments, plus three opt-in additions that the presets turn on.
    Presets: `halve()` (factor 0.5) and `fifth()` (factor 0.2), the two
    divisors of the advice, with patience 5, `stop_ratio=1e-3` and
    `restore_best_weights=True` unless overridden. A stopping rule: once the
    learning rate falls below `stop_ratio` times its value at the start of
    training, training stops. Best weights: the weights of the best epoch by
    `monitor` are restored when training ends (however it ends) if
    `restore_best_weights=True`.

    It also works when the optimizer's learning rate is a
    `LearningRateSchedule`: the schedule is multiplied by `factor` (wrapped in
    a `ScaledSchedule`) instead of crashing, and the train function is
    retraced once per reduction. With `validation_freq > 1`, epochs without
    validation do not count towards `patience` or `cooldown`.

    The learning rate in force is added to the epoch logs as `learning_rate`.

    Example:

    ```python
    model.fit(
        x, y, validation_split=0.1, epochs=100,
        callbacks=[ReduceLROnPlateau.halve(patience=3)],
    )
    ```

    Args:
        monitor: String. Quantity to be monitored. Defaults to `"val_loss"`.
        factor: Float in (0, 1). `new_lr = lr * factor`. Defaults to `0.1`
            (Keras' default; the presets use 0.5 and 0.2).
        patience: Integer. Validated epochs with no improvement after which
            the learning rate is reduced. Defaults to `10` (Keras'; the
            presets use 5).
        verbose: Integer. 0: quiet, 1: a message per reduction and at the
            stop. Defaults to `0`.
        mode: String. One of `"auto"`, `"min"`, `"max"`. Defaults to
            `"auto"`.
        min_delta: Float. Threshold for measuring a new optimum. Defaults to
            `1e-4`.
        cooldown: Integer. Validated epochs to wait after a reduction before
            counting patience again. Defaults to `0`.
        min_lr: Float. Lower bound on the learning rate. Defaults to `0.0`.
        stop_ratio: Float in (0, 1) or `None`. Training stops once the learning
            rate is below `stop_ratio` times the initial one; `None` never
            stops. Defaults to `None` (the presets: `1e-3`).
        restore_best_weights: Boolean. Restore the weights of the best epoch
            by `monitor` at the end of training. Defaults to `False` (the
            presets: `True`).
        stop_patience: Integer or `None`. A stopping rule read from the
            run rather than a fixed tail: stop once `monitor` has not
            improved for this many epochs (further reductions did not help)
            and, with `stop_update_fraction`, the epoch's `update_ratio` log
            (`UpdateRatioMonitor`, placed before this callback) has fallen
            below that fraction of its value at the last epoch that improved
            by `min_delta`: the updates are too small to move the weights
            where progress was last made.
            Defaults to `None`.
        stop_update_fraction: Float in (0, 1) or `None`. See
            `stop_patience`. Defaults to `None`.
        min_relative_delta: Float in (0, 1) or `None`. An improvement must
            also beat the best value by this fraction of it, so the rule
            reads the loss on its own scale: a loss of 2e-3 improving slowly
            is not a plateau because 1e-4 is 5% of it, and a loss summed over
            many outputs is not held to a finer standard. `None`: `min_delta`
            alone, as Keras. Defaults to `None`.
    """

    def __init__(
        self,
        monitor="val_loss",
        factor=0.1,
        patience=10,
        verbose=0,
        mode="auto",
        min_delta=1e-4,
        cooldown=0,
        min_lr=0.0,
        stop_ratio=None,
        restore_best_weights=False,
        stop_patience=None,
        stop_update_fraction=None,
        min_relative_delta=None,
        **kwargs,
    ):
        factor = _check_fraction("factor", factor)
        self.min_relative_delta = _check_fraction("min_relative_delta", min_relative_delta,
                                                  allow_none=True)
        stop_ratio = _check_fraction("stop_ratio", stop_ratio, allow_none=True)
        if stop_patience is not None:
            stop_patience = _check_count("stop_patience", stop_patience)
            if stop_patience < 1:
                raise ValueError("`stop_patience` must be an integer >= 1 or None. "
                                 f"Received: stop_patience={stop_patience!r}")
        stop_update_fraction = _check_fraction("stop_update_fraction", stop_update_fraction,
                                               allow_none=True)
        if stop_update_fraction is not None and stop_patience is None:
            raise ValueError("`stop_update_fraction` needs `stop_patience` (the stretch without "
                             f"improvement it completes). Received: stop_update_fraction="
                             f"{stop_update_fraction}, stop_patience=None")
        patience = _check_count("patience", patience)
        cooldown = _check_count("cooldown", cooldown)
        if not isinstance(monitor, str) or not monitor:
            raise TypeError(
                f"`monitor` must be a metric name. Received: monitor={monitor!r}"
            )
        if mode not in ("auto", "min", "max"):
            raise ValueError(
                "`mode` must be one of 'auto', 'min', 'max'. "
                f"Received: mode={mode!r}"
            )
        if isinstance(min_lr, bool) or not isinstance(min_lr, (int, float)) or min_lr < 0:
            raise ValueError(f"`min_lr` must be a number >= 0. Received: min_lr={min_lr!r}")
        super().__init__(
            monitor=monitor,
            factor=factor,
            patience=patience,
            verbose=verbose,
            mode=mode,
            min_delta=min_delta,
            cooldown=cooldown,
            min_lr=min_lr,
            **kwargs,
        )
        self.mode = mode
        self.stop_ratio = stop_ratio
        self.stop_patience = stop_patience
        self.stop_update_fraction = stop_update_fraction
        self.restore_best_weights = bool(restore_best_weights)
        self._reset_state()

    # -- presets ---------------------------------------------------------------

    @classmethod
    def _preset(cls, factor, preset, overrides):
        if "factor" in overrides:
            raise TypeError(
                f"ReduceLROnPlateau.{preset}() fixes factor={factor}; use the "
                "constructor for another factor. "
                f"Received: factor={overrides['factor']}"
            )
        options = dict(patience=5, stop_ratio=1e-3, restore_best_weights=True)
        options.update(overrides)
        return cls(factor=factor, **options)

    @classmethod
    def halve(cls, **overrides):
        """Divide the learning rate by 2 on a plateau (factor 0.5)."""
        return cls._preset(0.5, "halve", overrides)

    @classmethod
    def fifth(cls, **overrides):
        """Divide the learning rate by 5 on a plateau (factor 0.2)."""
        return cls._preset(0.2, "fifth", overrides)

    # -- state -------------------------------------------------------------------

    def _reset_state(self):
        self._reset()
        self.initial_lr = None
        self.best_weights = None
        self.best_weights_value = None
        self.best_epoch = None
        self.best_update_ratio = None
        self.improved_epoch = None
        self.stopped_epoch = None
        self.stop_reason = None
        self.reductions = []  # (epoch, new_lr)
        self._seen_monitor = False
        self._last_logs = {}

    def get_state(self):
        """The counters that shape the rest of training, as JSON values."""
        return {
            "best": None if self.best is None else float(self.best),
            "wait": int(self.wait),
            "cooldown_counter": int(self.cooldown_counter),
            "initial_lr": self.initial_lr,
            "best_weights_value": self.best_weights_value,
            "best_epoch": self.best_epoch,
            "stopped_epoch": self.stopped_epoch,
            "stop_reason": self.stop_reason,
            "best_update_ratio": self.best_update_ratio,
            "improved_epoch": self.improved_epoch,
            "reductions": [list(r) for r in self.reductions],
        }

    def set_state(self, state):
        """Restores what `get_state` returned (weights are restored apart)."""
        self.best = state["best"]
        self.wait = state["wait"]
        self.cooldown_counter = state["cooldown_counter"]
        self.initial_lr = state["initial_lr"]
        self.best_weights_value = state["best_weights_value"]
        self.best_epoch = state["best_epoch"]
        self.stopped_epoch = state["stopped_epoch"]
        self.stop_reason = state.get("stop_reason")
        self.best_update_ratio = state.get("best_update_ratio")
        self.improved_epoch = state.get("improved_epoch")
        self.reductions = [tuple(r) for r in state["reductions"]]
        self._resumed = True

    def on_train_begin(self, logs=None):
        if getattr(self, "_resumed", False):
            # Keep the counters restored by set_state (a resumed run).
            self._resumed = False
        else:
            self._reset_state()
        self._set_initial_lr()

    def _set_initial_lr(self):
        named = lr_optimizers(self.model.optimizer)
        if self.initial_lr is None and named:
            self.initial_lr = (_rate(named[0][1]) if named[0][0] == "" else
                               {name: _rate(sub) for name, sub in named})

    # -- the rule ------------------------------------------------------------------

    def _is_improvement(self, monitor_value, reference_value):
        if self.min_relative_delta is None or reference_value is None:
            return super()._is_improvement(monitor_value, reference_value)
        # Keras' min_delta carries the direction's sign once the op is set.
        delta = max(abs(self.min_delta), self.min_relative_delta * abs(reference_value))
        delta = -delta if self.min_delta < 0 or self.monitor_op == keras.ops.less else delta
        return bool(self.monitor_op(monitor_value - delta, reference_value))

    def threshold_text(self):
        """The improvement the rule counts, in words (for rows and messages)."""
        if self.min_relative_delta is None:
            return f"by more than {abs(self.min_delta):g}"
        return (f"by more than {self.min_relative_delta:g} of its best value"
                + (f" and {abs(self.min_delta):g}" if self.min_delta else ""))

    def _better(self, current, reference):
        if reference is None:
            return True
        return bool(self.monitor_op(current, reference))

    def _reduce(self, epoch):
        """Reduces every learning rate above `min_lr` (each sub-optimizer of a
        MultiOptimizer); True when one was reduced."""
        reduced = []
        for name, optimizer in lr_optimizers(self.model.optimizer):
            new_lr = self._reduce_one(optimizer)
            if new_lr is not None:
                reduced.append(new_lr)
                if self.verbose > 0:
                    which = f" {name}" if name else ""
                    _print_msg(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing{which} "
                               f"learning rate to {new_lr:.4g}.")
        if reduced:
            self.reductions.append((epoch, max(reduced)))
        return bool(reduced)

    def _reduce_one(self, optimizer):
        return scale_learning_rate(self.model, optimizer, self.factor, self.min_lr)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        self._last_logs = dict(logs)
        self._set_initial_lr()
        # As Keras: the rate this epoch trained with (a reduction below shows
        # in the next epoch's logs).
        logs.update(_lr_logs(self.model.optimizer))
        current = logs.get(self.monitor)
        if current is None:
            has_val = any(k.startswith("val_") for k in logs)
            if has_val or not self.monitor.startswith("val_"):
                warnings.warn(
                    f"ReduceLROnPlateau monitors `{self.monitor}`, which is not "
                    f"in the logs. Available metrics are: {sorted(logs)}.",
                    stacklevel=2,
                )
            # Otherwise this epoch was not validated (validation_freq > 1):
            # it does not count towards patience or cooldown.
            return
        if self.monitor_op is None:
            # Deferred until the metric exists, so its direction can be found.
            self._set_monitor_op()
        current = float(current)
        self._seen_monitor = True
        if not math.isfinite(current):
            return  # a diverged epoch is never "best"; StopOnNaN handles it
        if self._better(current, self.best_weights_value):
            self.best_weights_value = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()

        if self.in_cooldown():
            self.cooldown_counter -= 1
            self.wait = 0
        if self._is_improvement(current, self.best):
            self.best = current
            self.wait = 0
            # By min_delta, as the plateau rule counts: the stopping rule and
            # "still improving" ignore improvements too small to reduce on.
            self.improved_epoch = epoch
            ratio = logs.get("update_ratio")
            self.best_update_ratio = None if ratio is None else float(ratio)
        elif not self.in_cooldown():
            self.wait += 1
            if self.wait >= self.patience and self._reduce(epoch):
                self.cooldown_counter = self.cooldown
                self.wait = 0
                self._maybe_stop(epoch)
        self._maybe_stop_still(epoch, logs.get("update_ratio"))

    def _maybe_stop_still(self, epoch, update_ratio):
        """Stops when `stop_patience` epochs brought no improvement and the
        updates no longer move the weights (`stop_update_fraction`)."""
        if self.stop_patience is None or self.improved_epoch is None or self.model.stop_training:
            return
        flat = epoch - self.improved_epoch
        best = getattr(self, "best_update_ratio", None)
        measured = self.stop_update_fraction is not None and update_ratio is not None and best
        still = not measured or float(update_ratio) < self.stop_update_fraction * best
        if flat >= self.stop_patience and still:
            self.model.stop_training = True
            self.stopped_epoch = epoch
            self.stop_reason = (
                f"{flat} epochs without a better {self.monitor} ({self.threshold_text()}) "
                f"since epoch {self.improved_epoch + 1}" + (f", update ratio {float(update_ratio):.2g} below "
                                            f"{self.stop_update_fraction:g} x its {best:.2g} "
                                            "there" if measured else ""))
            if self.verbose > 0:
                _print_msg(f"\nEpoch {epoch + 1}: stopping: {self.stop_reason}.")

    def _maybe_stop(self, epoch):
        """Stops once every learning rate is below stop_ratio x its initial value."""
        if self.stop_ratio is None or self.initial_lr is None:
            return
        named = lr_optimizers(self.model.optimizer)
        initial = (self.initial_lr if isinstance(self.initial_lr, dict)
                   else {named[0][0]: self.initial_lr})
        rates = {name: _rate(sub) for name, sub in named}
        if all(rates[name] < self.stop_ratio * initial.get(name, rates[name] * 2)
               for name in rates):
            self.model.stop_training = True
            self.stopped_epoch = epoch
            self.stop_reason = (f"the learning rate fell below {self.stop_ratio:g} x its "
                                "initial value")
            if self.verbose > 0:
                lr, first = max(rates.values()), max(initial.values())
                _print_msg(f"\nEpoch {epoch + 1}: learning rate {lr:.3g} fell below "
                           f"stop_ratio={self.stop_ratio} x initial {first:.3g}; stopping.")

    def on_train_end(self, logs=None):
        if not self._seen_monitor:
            warnings.warn(
                f"ReduceLROnPlateau never saw `{self.monitor}`, so the learning "
                "rate was never reduced. Pass validation data, or monitor one "
                f"of: {sorted(self._last_logs)}.",
                stacklevel=2,
            )
        if self.restore_best_weights and self.best_weights is not None:
            self.model.set_weights(self.best_weights)
            if self.verbose > 0:
                _print_msg(f"Restoring weights from the best epoch ({self.best_epoch + 1}, "
                           f"{self.monitor}={self.best_weights_value:.4g}).")

    def get_config(self):
        return {
            "monitor": self.monitor,
            "factor": self.factor,
            "patience": self.patience,
            "verbose": self.verbose,
            "mode": self.mode,
            "min_delta": abs(float(self.min_delta)),
            "cooldown": self.cooldown,
            "min_lr": self.min_lr,
            "stop_ratio": self.stop_ratio,
            "restore_best_weights": self.restore_best_weights,
            "stop_patience": self.stop_patience,
            "stop_update_fraction": self.stop_update_fraction,
            "min_relative_delta": self.min_relative_delta,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def find_clipped_optimizer(optimizer):
    """The ClippedOptimizer in `optimizer` (itself or under a LossScaleOptimizer)."""
    while optimizer is not None:
        if isinstance(optimizer, ClippedOptimizer):
            return optimizer
        optimizer = getattr(optimizer, "inner_optimizer", None)
    return None


def rate_for_ratio(rate, ratio, target=1e-3):
    """The learning rate that would bring a measured update ratio to
    `target`: for small steps the ratio grows in proportion to the rate.
    None when the weights did not move at all (ratio 0: no gradient reaches
    them, which no rate can fix)."""
    if not ratio > 0:
        return None
    return rate * target / ratio


# Epochs in a row above the band before the monitor calls the ratio too high.
_HIGH_EPOCHS = 3


@keras.saving.register_keras_serializable(package=_PACKAGE)
class UpdateRatioMonitor(keras.callbacks.Callback):
    """Logs ||update|| / ||weights|| per epoch and warns when it is off (tip 5).

    The advice: the ratio of the update norm to the weight norm should be
    about 1e-3; far below, learning is slow; far above, it is unstable. The
    numbers are recorded inside the compiled train step by
    `keras_recipes.optimizers.ClippedOptimizer` (use `max_norm=None` to record
    without clipping); this callback adds their epoch means to the logs as
    `update_ratio`, `grad_norm` and `clip_fraction` (so they appear in
    `History`, TensorBoard and the progress bar when this callback comes
    before them), keeps the per-layer ratios in `layer_history`, and warns
    (an `UpdateRatioWarning`) once per side when the ratio leaves
    `[low, high]`, naming the layers out of the band and what to do. The
    first epoch is not judged (steps away from the initialization are
    large), and "too high" needs three epochs in a row above the band: the
    early epochs of a healthy run often are, an unstable run stays there.

    Example:

    ```python
    model.compile(optimizer=ClippedOptimizer(keras.optimizers.SGD(0.1),
                                             max_norm=None), loss="mse")
    model.fit(x, y, callbacks=[UpdateRatioMonitor()])
    ```

    Args:
        target: Float. The healthy ratio. Defaults to `1e-3`.
        low: Float. Below this a layer learns too slowly. Defaults to `1e-4`.
        high: Float. Above this a layer is unstable. Defaults to `1e-2`.
        warn: Boolean. Whether to warn when the ratio leaves the range.
            Defaults to `True`.
    """

    def __init__(self, target=1e-3, low=1e-4, high=1e-2, warn=True):
        super().__init__()
        for name, value in (("target", target), ("low", low), ("high", high)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
                math.isfinite(value) and value > 0
            ):
                raise ValueError(
                    f"`{name}` must be a finite number > 0. Received: {name}={value!r}"
                )
        if not low < target < high:
            raise ValueError(
                "`low`, `target` and `high` must satisfy low < target < high. "
                f"Received: low={low}, target={target}, high={high}"
            )
        self.target = float(target)
        self.low = float(low)
        self.high = float(high)
        self.warn = bool(warn)
        self.layer_history = []
        self.warned_sides = set()
        self._high_run = 0

    def _optimizer(self):
        optimizer = find_clipped_optimizer(self.model.optimizer)
        if optimizer is None:
            raise ValueError(
                "UpdateRatioMonitor reads statistics that ClippedOptimizer "
                "records inside the train step. Compile with "
                "`keras_recipes.optimizers.ClippedOptimizer(opt, max_norm=None)` "
                "to record without clipping. "
                f"Received: optimizer={type(self.model.optimizer).__name__}"
            )
        return optimizer

    def on_train_begin(self, logs=None):
        optimizer = self._optimizer()
        optimizer.reset_stats()
        self.layer_history = []
        self.warned_sides = set()
        self._high_run = 0

    def on_epoch_end(self, epoch, logs=None):
        stats = self._optimizer().read_stats(reset=True)
        if not stats or logs is None:
            return
        logs["grad_norm"] = stats["grad_norm"]
        logs["clip_fraction"] = stats["clip_fraction"]
        if "update_ratio" not in stats:
            return
        logs["update_ratio"] = stats["update_ratio"]
        layers = stats["layer_update_ratio"]
        self.layer_history.append(layers)
        if not self.warn or epoch == 0:
            # The first epoch moves weights away from their initialization by
            # far more than later ones: a high ratio there is not a symptom.
            return
        ratio = stats["update_ratio"]
        side = "low" if ratio < self.low else "high" if ratio > self.high else None
        self._high_run = self._high_run + 1 if side == "high" else 0
        if side is None or side in self.warned_sides:
            return
        if side == "high" and self._high_run < _HIGH_EPOCHS:
            return  # early epochs of a healthy run are often above; an unstable one stays
        self.warned_sides.add(side)
        out = sorted(name.split("/")[-1] for name, r in layers.items()
                     if (r < self.low if side == "low" else r > self.high))
        lr = current_learning_rate(self.model.optimizer)
        wanted = rate_for_ratio(lr, ratio, self.target)
        aim = (f"about {wanted:.2g} would bring it near {self.target:g}" if wanted is not None
               else "no rate moves weights that receive no gradient: check the initialization "
               "(all-zero or constant weights) and dead activations")
        advice = ("the weights barely move: the learning rate is too low for progress (after "
                  f"the plateau rule's drops this is how training ends; from the start, raise "
                  f"learning_rate {lr:.3g}: {aim})" if side == "low" else
                  f"the steps are large against the weights: lower learning_rate {lr:.3g} "
                  f"({aim}), or clip (ClippedOptimizer max_norm / fit_with_tips clip_norm=)")
        # stacklevel=1: the warning names this file, not Keras' callback list.
        warnings.warn(
            f"Epoch {epoch + 1}: update/weight ratio {ratio:.2e} left the healthy band "
            f"[{self.low:g}, {self.high:g}] (target {self.target:g}) on the {side} side"
            + (f" (layers: {', '.join(out)})" if out else "") + f": {advice}.",
            UpdateRatioWarning, stacklevel=1)

    def get_config(self):
        return {
            "target": self.target,
            "low": self.low,
            "high": self.high,
            "warn": self.warn,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class UpdateRatioWarning(UserWarning):
    """The update/weight ratio left its healthy band (tip 5)."""


@keras.saving.register_keras_serializable(package=_PACKAGE)
class StopOnNaN(keras.callbacks.Callback):
    """Stops training when the epoch loss turns NaN/Inf and restores the
    weights of the last epoch whose loss was finite.

    Unlike Keras' `TerminateOnNaN`, it never leaves NaN weights behind, and
    it records what happened in `event` (epoch and the learning rate in
    force). It checks once per epoch (the epoch loss is a mean, so any NaN
    step shows there), which costs no synchronisation per step.

    Example:

    ```python
    guard = StopOnNaN()
    model.fit(x, y, epochs=50, callbacks=[guard])
    if guard.event:
        print(guard.event)
    ```
    """

    def __init__(self):
        super().__init__()
        self.event = None
        self._good = None

    def on_train_begin(self, logs=None):
        self.event = None
        self._good = self.model.get_weights()

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None:
            return
        if math.isfinite(float(loss)):
            self._good = self.model.get_weights()
            return
        self.event = {
            "epoch": epoch,
            "loss": float(loss),
            "learning_rate": current_learning_rate(self.model.optimizer),
        }
        self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.event is not None and self._good is not None:
            self.model.set_weights(self._good)

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class DivergenceGuard(keras.callbacks.Callback):
    """Recovers a diverging run instead of only stopping it (tips 4 and 5).

    Once per epoch it checks the training loss. When it is NaN/Inf, or has
    exploded (above `explode` times the best epoch loss so far and above the
    first epoch's), the weights and the optimizer state of the end of the
    last good epoch are restored and the learning rate is divided by
    `1 / factor` (tip 4's "divide by 5"), up to `max_recoveries` times; after
    that it stops training on the last good weights and records `failed`.
    With `lower_when_high=True` it also acts on the update/weight ratio
    before anything diverges: when the epoch's `update_ratio` (logged by an
    `UpdateRatioMonitor` placed before it) stays above `high` for
    `high_epochs` epochs in a row, the rate is halved. Every action is an
    entry of `events` (a dict with `epoch`, `kind`, `loss`, the old and new
    rate); `describe_guard_event` puts one in words.

    For a fused ensemble (`members=N`), whose `loss` is the sum of the
    members' losses, each member's own loss (`member_{i}_loss`, logged by
    `keras_recipes.ensemble.MemberLoss` metrics) is judged against its own
    history: the scale of "exploded" is one member's whatever the count,
    and one member that diverges is seen among many.

    Example:

    ```python
    guard = DivergenceGuard()
    model.fit(x, y, epochs=50, callbacks=[UpdateRatioMonitor(), guard])
    print(guard.events, guard.failed)
    ```

    Args:
        factor: Float in (0, 1). The rate is multiplied by it on each
            recovery. Defaults to `0.2`.
        max_recoveries: Integer >= 0. Defaults to `4`.
        explode: Float > 1. A finite loss this many times the best epoch
            loss (and above the first epoch's) counts as diverged. Defaults
            to `10.0`.
        reference_loss: Float or `None`. The loss before training (on a
            batch), the scale "exploded" starts from, so that a first epoch
            that already blew up is undone too. `None`: the first epoch's
            loss. Defaults to `None`.
        lower_when_high: Boolean. Halve the rate when the update ratio stays
            above `high`. Defaults to `False`.
        high: Float. Defaults to `3e-2`: three times the band's top (tip 5),
            "far above". A calibrated start reads about 2e-2 in its first
            steps and less after, so this acts only on a run going wrong.
        high_epochs: Integer >= 1. Defaults to `3`.
        members: Integer >= 1 or `None`. The member count of a fused
            ensemble: each `member_{i}_loss` log is judged on its own
            (`reference_loss` is then one member's). `None`: the `loss` log.
            Defaults to `None`.
        baseline_loss: Float or `None`. The validation loss of a constant
            prediction (the plan's). With it, a run whose `val_loss` stays
            within 2% of it for `high_epochs` validated epochs while the
            update ratio is far below the band (under `low`, above 0) is not
            learning because its steps are too small: the rate is raised
            10x (tip 5), at most twice. Defaults to `None`.
        low: Float. "Far below the band". Defaults to `1e-4`.
        verbose: Integer. 1 prints each action. Defaults to `0`.
    """

    def __init__(self, factor=0.2, max_recoveries=4, explode=10.0, lower_when_high=False,
                 high=3e-2, high_epochs=3, reference_loss=None, members=None,
                 baseline_loss=None, low=1e-4, verbose=0):
        super().__init__()
        for name, value in (("baseline_loss", baseline_loss),):
            if value is not None and (isinstance(value, bool) or not isinstance(
                    value, (int, float)) or not (math.isfinite(value) and value > 0)):
                raise ValueError(f"`{name}` must be a finite number > 0 or None. "
                                 f"Received: {name}={value!r}")
        self.baseline_loss = None if baseline_loss is None else float(baseline_loss)
        if isinstance(low, bool) or not isinstance(low, (int, float)) or not low > 0:
            raise ValueError(f"`low` must be a number > 0. Received: low={low!r}")
        self.low = float(low)
        if members is not None and (isinstance(members, bool) or not isinstance(members, int)
                                    or members < 1):
            raise ValueError(f"`members` must be an integer >= 1 or None. Received: members={members!r}")
        self.members = members
        if reference_loss is not None and (
                isinstance(reference_loss, bool) or not isinstance(reference_loss, (int, float))
                or not math.isfinite(reference_loss)):
            raise ValueError("`reference_loss` must be a finite number or None. "
                             f"Received: reference_loss={reference_loss!r}")
        self.reference_loss = None if reference_loss is None else float(reference_loss)
        self.factor = _check_fraction("factor", factor)
        self.max_recoveries = _check_count("max_recoveries", max_recoveries)
        for name, value in (("explode", explode), ("high", high)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
                    math.isfinite(value) and value > 0):
                raise ValueError(f"`{name}` must be a finite number > 0. Received: {name}={value!r}")
        if explode <= 1:
            raise ValueError(f"`explode` must be > 1. Received: explode={explode!r}")
        self.explode = float(explode)
        self.high = float(high)
        self.high_epochs = _check_count("high_epochs", high_epochs)
        if self.high_epochs < 1:
            raise ValueError(f"`high_epochs` must be >= 1. Received: high_epochs={high_epochs!r}")
        self.lower_when_high = bool(lower_when_high)
        self.verbose = verbose
        self._start()

    def _start(self):
        self.events = []
        self.failed = None
        self._good = None
        # Without a reference, the first epoch sets the scale of "exploded".
        # One (first, best) pair per loss judged: the run's, or each member's.
        reference = getattr(self, "reference_loss", None)
        self._first = [reference] * (getattr(self, "members", None) or 1)
        self._best = list(self._first)
        self._high_run = 0
        self._stuck_run = 0

    def _losses(self, logs):
        """The losses judged this epoch: `[loss]`, or each member's own."""
        if self.members is None:
            return [logs.get("loss")]
        keys = [f"member_{i}_loss" for i in range(self.members)]
        missing = [k for k in keys if k not in logs]
        if missing:
            raise ValueError(
                f"DivergenceGuard(members={self.members}) reads each member's loss, but the "
                f"logs have no {missing[0]!r} (compile with keras_recipes.ensemble.MemberLoss "
                f"metrics). Logs: {sorted(logs)}")
        return [logs[k] for k in keys]

    def _exploded(self, losses):
        return any(math.isfinite(loss) and best is not None and loss > self.explode * best
                   and loss > first for loss, first, best in zip(losses, self._first, self._best))

    def _state(self):
        optimizer = self.model.optimizer
        return ([keras.ops.convert_to_numpy(v) for v in self.model.weights],
                [keras.ops.convert_to_numpy(v) for v in optimizer.variables])

    def _restore(self):
        weights, slots = self._good
        for variable, value in zip(self.model.weights, weights):
            variable.assign(value)
        variables = self.model.optimizer.variables
        if len(variables) == len(slots):  # built after the snapshot: keep its fresh state
            for variable, value in zip(variables, slots):
                variable.assign(value)

    def on_train_begin(self, logs=None):
        self._start()
        self._good = self._state()

    def _scale(self, factor):
        """Scales every learning rate (each sub-optimizer); returns (old, new)."""
        old = current_learning_rate(self.model.optimizer)
        for _, optimizer in lr_optimizers(self.model.optimizer):
            scale_learning_rate(self.model, optimizer, factor)
        return old, current_learning_rate(self.model.optimizer)

    def _record(self, epoch, kind, loss, old, new, **extra):
        event = {"epoch": epoch, "kind": kind, "loss": loss, "from_lr": old, "to_lr": new,
                 **extra}
        self.events.append(event)
        if self.verbose > 0:
            _print_msg(f"\nEpoch {epoch + 1}: {describe_guard_event(event)}")

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        if logs.get("loss") is None:
            return
        loss = float(logs["loss"])
        losses = [float(v) for v in self._losses(logs)]
        exploded = self._exploded(losses)
        if not all(math.isfinite(v) for v in losses + [loss]) or exploded:
            # The rate in force now (after any reduction this epoch), then
            # the last good state, then the lower rate.
            rates = [(opt, _rate(opt)) for _, opt in lr_optimizers(self.model.optimizer)]
            kind = "exploded" if exploded else "not finite"
            if len([e for e in self.events if e["kind"] not in ("ratio high", "not learning")]
                   ) >= self.max_recoveries:
                self._restore()
                self.failed = {"epoch": epoch, "loss": loss, "kind": kind,
                               "learning_rate": max(r for _, r in rates)}
                self.model.stop_training = True
                return
            self._restore()
            for optimizer, rate in rates:
                if learning_rate_schedule(optimizer) is None:
                    optimizer.learning_rate = rate
            old, new = self._scale(self.factor)
            self._record(epoch, kind, loss, old, new)
            self._high_run = 0
            return
        self._first = [v if first is None else first for v, first in zip(losses, self._first)]
        self._best = [v if best is None else min(best, v) for v, best in zip(losses, self._best)]
        ratio = logs.get("update_ratio")
        if self.lower_when_high and ratio is not None:
            self._high_run = self._high_run + 1 if float(ratio) > self.high else 0
            if self._high_run >= self.high_epochs:
                old, new = self._scale(0.5)
                self._record(epoch, "ratio high", loss, old, new, update_ratio=float(ratio))
                self._high_run = 0
        self._raise_when_stuck(epoch, loss, logs.get("val_loss"), ratio)
        self._good = self._state()

    def _raise_when_stuck(self, epoch, loss, val_loss, ratio):
        """Tip 5 acting on a run that is not learning because its steps are
        too small: the validation loss at the constant predictor's and the
        ratio far below the band."""
        if self.baseline_loss is None or val_loss is None or ratio is None:
            return
        stuck = (float(val_loss) >= 0.98 * self.baseline_loss and 0 < float(ratio) < self.low)
        self._stuck_run = self._stuck_run + 1 if stuck else 0
        raised = sum(e["kind"] == "not learning" for e in self.events)
        if self._stuck_run >= self.high_epochs and raised < 2:
            old, new = self._scale(10.0)
            self._record(epoch, "not learning", loss, old, new, update_ratio=float(ratio),
                         val_loss=float(val_loss), baseline=self.baseline_loss)
            self._stuck_run = 0

    def get_config(self):
        return {"factor": self.factor, "max_recoveries": self.max_recoveries,
                "explode": self.explode, "lower_when_high": self.lower_when_high,
                "high": self.high, "high_epochs": self.high_epochs,
                "reference_loss": self.reference_loss, "members": self.members,
                "baseline_loss": self.baseline_loss, "low": self.low, "verbose": self.verbose}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def describe_guard_event(event):
    """One line for a `DivergenceGuard` event."""
    if event["kind"] == "ratio high":
        return (f"update ratio {event['update_ratio']:.2g} stayed above the band: learning "
                f"rate lowered {event['from_lr']:.3g} -> {event['to_lr']:.3g}")
    if event["kind"] == "not learning":
        return (f"not learning at epoch {event['epoch'] + 1}: val_loss {event['val_loss']:.4g} "
                f"at the constant predictor's {event['baseline']:.4g}, update ratio "
                f"{event['update_ratio']:.2g} far below the band: learning rate raised "
                f"{event['from_lr']:.3g} -> {event['to_lr']:.3g}")
    return (f"loss {event['kind']} ({event['loss']:.4g}) at epoch {event['epoch'] + 1}: "
            f"restored the last good epoch's weights and optimizer state, learning rate "
            f"{event['from_lr']:.3g} -> {event['to_lr']:.3g}")
