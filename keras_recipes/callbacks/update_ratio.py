"""`UpdateRatioMonitor`: tip 5's update/weight ratio, read every epoch, warned
and advised on outside the band.
"""

import math
import warnings

import keras

from keras_recipes.callbacks.rates import PACKAGE
from keras_recipes.callbacks.rates import current_learning_rate
from keras_recipes.optimizers import ClippedOptimizer


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
HIGH_EPOCHS = 3


@keras.saving.register_keras_serializable(package=PACKAGE)
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
    "Too low" is not said once the rate is below its value when `fit` began
    (lowered by a plateau rule or a schedule): small steps are then how the
    run ends.

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
        self._start_rate = current_learning_rate(self.model.optimizer)

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
        lr = current_learning_rate(self.model.optimizer)
        side = "low" if ratio < self.low else "high" if ratio > self.high else None
        if side == "low" and lr < 0.999 * getattr(self, "_start_rate", lr):
            # The rate was lowered during this fit (a plateau rule, a
            # schedule): small steps are how such a run ends, not a symptom;
            # the per-epoch ratio stays in the logs.
            side = None
        self._high_run = self._high_run + 1 if side == "high" else 0
        if side is None or side in self.warned_sides:
            return
        if side == "high" and self._high_run < HIGH_EPOCHS:
            return  # early epochs of a healthy run are often above; an unstable one stays
        self.warned_sides.add(side)
        out = sorted(name.split("/")[-1] for name, r in layers.items()
                     if (r < self.low if side == "low" else r > self.high))
        wanted = rate_for_ratio(lr, ratio, self.target)
        aim = (f"about {wanted:.2g} would bring it near {self.target:g}" if wanted is not None
               else "no rate moves weights that receive no gradient: check the initialization "
               "(all-zero or constant weights) and dead activations")
        advice = ("the weights barely move: the learning rate is too low for progress (raise "
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
