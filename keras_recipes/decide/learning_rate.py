"""Tips 4, 5 and 6 measured on the model: a dead start redrawn, the learning
rate read from the update ratio (or the given one's ratio checked).
"""

import math
import warnings

import keras
import numpy as np

from keras_recipes import build
from keras_recipes import calibration
from keras_recipes import callbacks
from keras_recipes import determinism
from keras_recipes import initializers
from keras_recipes.data.batches import GeneratorStream
from keras_recipes.decide.training import GRIDS
from keras_recipes.decide.training import START_RATES
from keras_recipes.result import Tip
from keras_recipes.result import user_stacklevel


def decide_initialization(model, data, o, decided):
    """Tip 6 acting on a model that cannot learn from its start (issue 36
    items 3 and 6): kernels that hold one value each (all 0.0, or all
    equal). When the model's output is also the same for every example of a
    real batch (the inputs do not reach it: all-zero kernels behind a relu
    pass no gradient either), those kernels are redrawn, `randn /
    sqrt(fan_in)`, before anything is measured on the model. Otherwise
    (constant kernels whose output still depends on the input) the row only
    says so. The evidence is the weights and the measured output."""
    found = initializers.constant_kernels(model)
    if not found:
        return []
    x, _ = data.first_batch()
    if not model.built and not data.structured:
        model.build((None,) + tuple(data.x_shape))
    try:
        called = model(x, training=False)
    except Exception:  # noqa: BLE001 - the output probe that follows says why, by name
        return []
    outputs = [keras.ops.convert_to_numpy(out) for out in keras.tree.flatten(called)]
    rows = min(len(out) for out in outputs)
    spread = max(float(np.ptp(out.reshape(len(out), -1), axis=0).max()) for out in outputs)
    names = [f"{v.path} (all {value:g})" for v, value in found]
    shown = ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
    kernels = f"kernels {shown} hold one value each (every unit computes the same)"
    if spread > 0:
        return [Tip(6, "initialization", "kept as given",
                    f"{kernels}, so their units learn alike; the output still depends on the "
                    f"input (range {spread:.3g} across {rows} examples), so they are left as "
                    "given", "the layers' kernel_initializer")]
    measured = f"the output is the same for every one of {rows} examples of a real batch"
    if o["reinitialize"] is False:
        return [Tip(6, "initialization", "kept as given (reinitialize=False)",
                    f"{kernels}, and {measured}: the inputs do not reach it, and no rate "
                    "fixes that; the run will end 'not learning'", "reinitialize=")]
    initializers.redraw([v for v, _ in found], seed=0 if o["seed"] is None else o["seed"])
    decided.reinitialized = True  # fused ensemble members: the same, each its own draw
    return [Tip(6, "initialization", f"redrawn: {shown}",
                f"{kernels}, and {measured}: the inputs do not reach it, and no rate fixes "
                "that (all-zero kernels behind a relu pass no gradient); tip 6: randn / "
                "sqrt(fan_in) (ScaledNormal(1.0)), before anything else is measured",
                "reinitialize=False")]


def _generator_reads(data, steps):
    """A generator read anew gives these steps fresh batches: the row says
    so (they are read before training's own)."""
    live = getattr(data, "live", None)
    if live is None or not isinstance(live[0], GeneratorStream):
        return ""
    return (f"; these {steps} steps read {steps} fresh batches from your generator, before "
            "training's")


def decide_learning_rate(decided, data, o):
    """Tips 4 and 5: the rate read from the update ratio (`"auto"`), or the
    given rate with its measured ratio, and a warning when it is far from
    the band. The training model is compiled here, once: training reuses it."""
    user = decided.compile is not None
    with determinism.deterministic(decided.deterministic):
        optimizer = build.compile_model(decided, decided.jit)
        decided.compiled = (optimizer, decided.jit)
        # Through fit on training's own elements, so the step traced (and
        # compiled) here is the one training runs; under a distribution
        # strategy the probes stay train_on_batch's.
        batches, fit_input = data.calibration_batches(calibration.STEPS,
                                                      through_fit=decided.strategy is None)
        if not user and o["learning_rate"] == "auto":
            name = decided.optimizer_name
            found = calibration.calibrate_learning_rate(
                decided.full, batches, start=START_RATES[name], grid=GRIDS[name],
                fit_input=fit_input)
            decided.learning_rate = found.rate
            decided.calibration = found
            decided.initial_loss = found.initial_loss
            low, high = calibration.run_band()
            return [Tip(4, "learning rate", f"{found.rate:.3g} (calibrated)",
                        found.evidence() + _generator_reads(data, len(batches)), "learning_rate="),
                    Tip(5, "update ratio", "kept in view every epoch",
                        f"logged per epoch and per layer; warned and acted on outside [{low:g}, "
                        f"{high:g}]: held above {high:g} (far above the band) for 3 epochs, the "
                        "rate is halved; a diverged epoch is undone and the rate divided by 5",
                        "learning_rate=")]
        ratio, decided.initial_loss = calibration.probe_update_ratio(decided.full, batches,
                                                                     fit_input=fit_input)
    rate = callbacks.current_learning_rate(optimizer)
    whose = "your optimizer's" if user else "the given"
    rows = [] if user else [Tip(4, "learning rate", f"{rate:.3g} (as passed)",
                                "a fixed start; the plateau rule divides it",
                                "learning_rate='auto'")]
    measured = (f"measured {calibration.ratio_text(ratio)} over {calibration.STEPS} steps at "
                f"{whose} rate {rate:.3g}" + _generator_reads(data, len(batches)))
    low, high = calibration.PROBE_BAND
    target = calibration.TARGET
    scale = (f"the first steps' ratio, where learning_rate='auto' aims for {target:g} (later "
             "epochs then read near tip 5's 1e-3)")
    if math.isfinite(ratio) and low <= ratio <= high:
        rows.append(Tip(5, "update ratio", "in the healthy band", f"{measured}: {scale}; logged "
                        "per epoch and per layer; a diverged epoch is undone and the rate divided "
                        "by 5", ""))
        return rows
    wanted = callbacks.rate_for_ratio(rate, ratio, target) if math.isfinite(ratio) else None
    aim = (f"about {wanted:.2g} would bring it to {target:g}" if wanted is not None
           else "a much lower rate is needed" if not math.isfinite(ratio)
           else "the weights did not move at all: no gradient reaches them (all-zero or "
           "constant initial weights, dead activations), which no rate fixes")
    text = (f"WARNING: {measured}, outside [{low:g}, {high:g}] ({scale}): {aim}. Kept, as you "
            "chose it; a diverged epoch is undone and the rate divided by 5")
    warnings.warn(f"fit_with_tips: update/weight ratio {text}", callbacks.UpdateRatioWarning,
                  stacklevel=user_stacklevel())
    rows.append(Tip(5, "update ratio", "too high" if ratio > high else "too low", text,
                    "model.compile(optimizer=...)" if user else "learning_rate="))
    return rows
