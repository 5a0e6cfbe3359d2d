"""`DivergenceGuard`: a diverged epoch undone, the rate divided; a run at the
constant predictor's loss with tiny steps gets a higher rate.
"""

import math

import keras

from keras_recipes import sharding
from keras_recipes.callbacks.rates import PACKAGE
from keras_recipes.callbacks.rates import check_count
from keras_recipes.callbacks.rates import check_fraction
from keras_recipes.callbacks.rates import current_learning_rate
from keras_recipes.callbacks.rates import learning_rate_schedule
from keras_recipes.callbacks.rates import lr_optimizers
from keras_recipes.callbacks.rates import print_message
from keras_recipes.callbacks.rates import rate_of
from keras_recipes.callbacks.rates import scale_learning_rate


@keras.saving.register_keras_serializable(package=PACKAGE)
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
        self.factor = check_fraction("factor", factor)
        self.max_recoveries = check_count("max_recoveries", max_recoveries)
        for name, value in (("explode", explode), ("high", high)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
                    math.isfinite(value) and value > 0):
                raise ValueError(f"`{name}` must be a finite number > 0. Received: {name}={value!r}")
        if explode <= 1:
            raise ValueError(f"`explode` must be > 1. Received: explode={explode!r}")
        self.explode = float(explode)
        self.high = float(high)
        self.high_epochs = check_count("high_epochs", high_epochs)
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
        return ([sharding.host(v) for v in self.model.weights],
                [sharding.host(v) for v in optimizer.variables])

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
            print_message(f"\nEpoch {epoch + 1}: {describe_guard_event(event)}")

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
            rates = [(opt, rate_of(opt)) for _, opt in lr_optimizers(self.model.optimizer)]
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
