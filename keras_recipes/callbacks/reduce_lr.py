"""`ReduceLROnPlateau`: tip 4's plateau rule, with the stopping rule read from
the update ratio.
"""

import math
import warnings

import keras

from keras_recipes import sharding
from keras_recipes.callbacks.rates import PACKAGE
from keras_recipes.callbacks.rates import check_count
from keras_recipes.callbacks.rates import check_fraction
from keras_recipes.callbacks.rates import lr_logs
from keras_recipes.callbacks.rates import lr_optimizers
from keras_recipes.callbacks.rates import print_message
from keras_recipes.callbacks.rates import rate_of
from keras_recipes.callbacks.rates import scale_learning_rate


@keras.saving.register_keras_serializable(package=PACKAGE)
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
        rollback: Boolean. On each reduction, first return to the weights of
            the best epoch by `monitor`, so the lower rate starts from the
            best point found rather than from the epochs that did not
            improve on it. Defaults to `False` (Keras' behaviour).
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
        rollback=False,
        **kwargs,
    ):
        factor = check_fraction("factor", factor)
        self.min_relative_delta = check_fraction("min_relative_delta", min_relative_delta,
                                                  allow_none=True)
        stop_ratio = check_fraction("stop_ratio", stop_ratio, allow_none=True)
        if stop_patience is not None:
            stop_patience = check_count("stop_patience", stop_patience)
            if stop_patience < 1:
                raise ValueError("`stop_patience` must be an integer >= 1 or None. "
                                 f"Received: stop_patience={stop_patience!r}")
        stop_update_fraction = check_fraction("stop_update_fraction", stop_update_fraction,
                                               allow_none=True)
        if stop_update_fraction is not None and stop_patience is None:
            raise ValueError("`stop_update_fraction` needs `stop_patience` (the stretch without "
                             f"improvement it completes). Received: stop_update_fraction="
                             f"{stop_update_fraction}, stop_patience=None")
        patience = check_count("patience", patience)
        cooldown = check_count("cooldown", cooldown)
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
        if not isinstance(rollback, bool):
            raise TypeError(f"`rollback` must be True or False. Received: rollback={rollback!r}")
        self.rollback = rollback
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
        self.rollbacks = []  # (epoch, the best epoch returned to)
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
            "rollbacks": [list(r) for r in self.rollbacks],
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
        self.rollbacks = [tuple(r) for r in state.get("rollbacks", [])]
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
            self.initial_lr = (rate_of(named[0][1]) if named[0][0] == "" else
                               {name: rate_of(sub) for name, sub in named})

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
                    print_message(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing{which} "
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
        logs.update(lr_logs(self.model.optimizer))
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
            if self.restore_best_weights or self.rollback:
                self.best_weights = sharding.host_weights(self.model)

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
                self._roll_back(epoch)
                self._maybe_stop(epoch)
        self._maybe_stop_still(epoch, logs.get("update_ratio"))

    def _roll_back(self, epoch):
        """With `rollback`: the reduced rate starts from the best epoch's weights."""
        if not self.rollback or self.best_weights is None or self.best_epoch == epoch:
            return
        self.model.set_weights(self.best_weights)
        self.rollbacks.append((epoch, self.best_epoch))
        if self.verbose > 0:
            print_message(f"\nEpoch {epoch + 1}: back to the weights of epoch "
                          f"{self.best_epoch + 1} ({self.monitor}={self.best_weights_value:.4g}) "
                          "at the reduced rate.")

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
                print_message(f"\nEpoch {epoch + 1}: stopping: {self.stop_reason}.")

    def _maybe_stop(self, epoch):
        """Stops once every learning rate is below stop_ratio x its initial value."""
        if self.stop_ratio is None or self.initial_lr is None:
            return
        named = lr_optimizers(self.model.optimizer)
        initial = (self.initial_lr if isinstance(self.initial_lr, dict)
                   else {named[0][0]: self.initial_lr})
        rates = {name: rate_of(sub) for name, sub in named}
        if all(rates[name] < self.stop_ratio * initial.get(name, rates[name] * 2)
               for name in rates):
            self.model.stop_training = True
            self.stopped_epoch = epoch
            self.stop_reason = (f"the learning rate fell below {self.stop_ratio:g} x its "
                                "initial value")
            if self.verbose > 0:
                lr, first = max(rates.values()), max(initial.values())
                print_message(f"\nEpoch {epoch + 1}: learning rate {lr:.3g} fell below "
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
                print_message(f"Restoring weights from the best epoch ({self.best_epoch + 1}, "
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
            "rollback": self.rollback,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
