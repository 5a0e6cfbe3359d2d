"""The training rows: the optimizer (tip 4), gradient clipping (tip 7), the
forget-gate bias (tip 9) and the LR schedule with its stopping rule (tip 4).
"""

import keras

from keras_recipes import build
from keras_recipes import calibration
from keras_recipes import forget_gate
from keras_recipes.decide.task import KEPT_COMPILE
from keras_recipes.forget_gate import FORGET_BIAS
from keras_recipes.forget_gate import FORGET_BIAS_STEPS
from keras_recipes.forget_gate import FORGET_BIAS_WHY
from keras_recipes.modelinfo import dropout_layers
from keras_recipes.modelinfo import recurrent_layers
from keras_recipes.result import Tip


# With no progress for a stretch, the stopping rule's cue: updates an order
# of magnitude below those of the last epoch that improved no longer move the
# weights where progress was last made. A quarter (two halvings) stopped runs
# on small, noisy validation sets too early (BUILD_NOTES.md, issue 24).
STILL_FRACTION = 0.1


# A plateau is judged on the validation loss's own scale: an epoch improves
# when it beats the best by this fraction of it.
MIN_RELATIVE_DELTA = 1e-3

# On each halving, return to the best epoch's weights first: off. On the
# quality benchmark's twelve tasks its validation loss scored 1.094 against
# 1.017 without (BUILD_NOTES.md, issue 36); benchmarks switch it on to measure.
ROLLBACK = False


def forget_bias_changes(model, setting, measured=None):
    """Tip 9 per LSTM-family layer: `[(layer, value or None, setting, why)]`;
    a value is what the forget-gate bias is set to before training.
    `measured` is the data's (mean, longest) real steps per example, read
    where the model leaves the length open (padded sequences)."""
    changes = []
    for layer, reader in forget_gate.lstm_layers(model):
        steps = forget_gate.sequence_length(reader)
        read = f"sequences of {steps} steps"
        if steps is None and measured:
            steps = int(round(measured[0]))
            read = (f"sequences of {measured[0]:.1f} real steps on average (measured, padding "
                    f"left out; the longest {measured[1]})")
        elif steps is None:
            read = "sequences of a length neither the model nor the data states"
        if setting is None:
            changes.append((layer, None, "kept", "forget_bias=None"))
        elif not forget_gate.at_keras_default(layer):
            changes.append((layer, None, "yours, kept", "its bias is not Keras' default "
                            "(unit_forget_bias's 1): set by you, or trained"))
        elif setting != "auto":
            changes.append((layer, float(setting), f"{float(setting):g}", "as passed"))
        elif steps is not None and steps >= FORGET_BIAS_STEPS:
            changes.append((layer, FORGET_BIAS, f"{FORGET_BIAS:g} (Keras' default 1 found in "
                            "its bias)", f"{read}, at least {FORGET_BIAS_STEPS}: {FORGET_BIAS_WHY}"))
        elif steps is None:
            changes.append((layer, None, "Keras' 1, kept", f"{read}: the rule ({FORGET_BIAS_STEPS} "
                            f"steps or more) cannot be read, so the default stays"))
        else:
            changes.append((layer, None, "Keras' 1, kept", f"{read}, fewer than "
                            f"{FORGET_BIAS_STEPS}: {FORGET_BIAS_WHY}"))
    return changes


def decide_forget_bias(model, o, data=None):
    """Tip 9: a large forget-gate bias on LSTMs that read long sequences, set
    now (the calibration and training start from it)."""
    rows = []
    measured = getattr(getattr(data, "features", None), "steps", None)
    for layer, value, setting, why in forget_bias_changes(model, o["forget_bias"], measured):
        if value is not None:
            forget_gate.set_forget_bias(layer, value)
        rows.append(Tip(9, "forget-gate bias", f"{setting} on {type(layer).__name__} "
                        f"{layer.name!r}", why, "forget_bias="))
    return rows


def decide_training(model, o, decided, data):
    """Tips 4, 5, 7, 11: optimizer, clipping, LR schedule, stopping."""
    tips = decide_forget_bias(model, o, data)
    recurrent, dropout = recurrent_layers(model), dropout_layers(model)
    if o["clip_norm"] == "auto":
        max_norm = 5.0 if recurrent else None
        why = (f"recurrent layers ({', '.join(recurrent)})" if recurrent
               else "no recurrent layers: norms are recorded, not clipped")
    else:
        max_norm, why = o["clip_norm"], "as passed"
    tips.append(Tip(7, "gradient clipping", f"global norm {max_norm:g}" if max_norm else "off",
                    why, "clip_norm="))
    compiled = decided.compile
    if compiled is not None:
        user = compiled["optimizer"]
        user = keras.optimizers.get(user) if isinstance(user, str) else user
        decided.make_optimizer = lambda: build.wrap_optimizer(user, max_norm)
        tips.append(Tip(4, "optimizer", f"{type(user).__name__} (from model.compile)",
                        "the user's choice, with its settings, inside a ClippedOptimizer that "
                        "records the update/weight ratio (it clips only as the clipping row says)",
                        "model.compile(optimizer=...)"))
        kept = {k: compiled.get(k) for k in KEPT_COMPILE if compiled.get(k) not in (None, False, 1)}
        if kept:
            tips.append(Tip(0, "compile settings", ", ".join(f"{k}={v!r}" for k, v in kept.items()),
                            "kept from model.compile", "model.compile(...)"))
        decided.compile_kwargs = kept
    else:
        name, why = choose_optimizer(o)
        decided.optimizer_name = name
        momentum = 0.9 if o["momentum"] is None else o["momentum"]
        auto = o["learning_rate"] == "auto"
        # The rate is read when the optimizer is made: the calibration
        # (decide_learning_rate) sets it after the training model is built.
        decided.learning_rate = START_RATES[name] if auto else float(o["learning_rate"])
        decided.make_optimizer = lambda: build.clipped_optimizer(
            name, decided.learning_rate, momentum, max_norm)
        shown = f"SGD(momentum={momentum:g})" if name == "sgd" else "Adam()"
        tips.append(Tip(4, "optimizer", shown, why + "; its rate is the next row's",
                        "optimizer=, momentum=, or compile the model"))
        decided.compile_kwargs = {}
    tips += decide_schedule(o, decided, dropout, data.steps_per_epoch)
    decided.max_norm = max_norm
    return tips


# The default optimizers, and where the calibration starts for each: tip 4's
# "normal" 0.1 for SGD, Adam's own default 1e-3 for Adam.
OPTIMIZERS = ("sgd", "adam")


START_RATES = {"sgd": calibration.START, "adam": 1e-3}
# Where the search may go, in factors of 2 from the start: SGD up to 0.8;
# Adam up to 6.4e-2. Adam's top was 8e-3 (the SGD grid's k <= 3 from 1e-3),
# and on the long-range digit_pixels it held the 2e-2 target's rate below
# where the ratio pointed: with room, validation loss 0.245 against 0.257
# (three seeds; benchmarks/results/target_sweep_wide_cpu.log).
GRIDS = {"sgd": (-13, 3), "adam": (-13, 6)}


def choose_optimizer(o):
    """The recipe's own optimizer, and why (`optimizer="auto"`)."""
    if o["optimizer"] != "auto":
        return o["optimizer"], "as passed"
    if o["momentum"] is not None:
        return "sgd", "momentum= given: tip 4's SGD with momentum"
    why = ("Adam matched or beat SGD(momentum=0.9) at the calibrated rate on seven of the "
           "quality benchmark's eight real tasks (BUILD_NOTES.md, issue 24)")
    if o["learning_rate"] != "auto":
        # The given rate applies to the optimizer the recipe chose (issue 36
        # item 5): giving a rate does not change the optimizer.
        return "adam", (f"{why}; the given learning_rate applies to it (optimizer='sgd' for "
                        "tip 4's SGD with momentum at that rate)")
    return "adam", f"the rate is read from the update ratio: {why}"


# A plateau is judged over at least this many updates: with a few updates an
# epoch (small data), a patience of 3 epochs halves the rate on validation
# noise long before the loss has settled (BUILD_NOTES.md, issue 24).
PATIENCE_UPDATES = 100


def plateau_patience(o, dropout, steps):
    """Epochs without improvement before halving, and why: 3 (6 with
    dropout), or more when that many epochs hold fewer than PATIENCE_UPDATES
    updates."""
    if o["patience"]:
        return o["patience"], None
    base = 6 if dropout else 3
    if not steps or steps * base >= PATIENCE_UPDATES:
        return base, None
    patience = -(-PATIENCE_UPDATES // steps)
    return patience, (f"{base} epochs would be {steps * base} updates at {steps} per epoch; "
                      f"{patience} epochs give the {PATIENCE_UPDATES} updates a plateau is "
                      "judged over")


def decide_schedule(o, decided, dropout, steps=None):
    """Tip 4: our plateau rule, unless the user's callbacks own the LR or stopping."""
    user = list(o["callbacks"] or [])
    lr_owners = [type(c).__name__ for c in user if isinstance(
        c, (keras.callbacks.ReduceLROnPlateau, keras.callbacks.LearningRateScheduler))]
    stoppers = [type(c).__name__ for c in user if isinstance(c, keras.callbacks.EarlyStopping)]
    patience, longer = plateau_patience(o, dropout, steps)
    tips = []
    if lr_owners:
        decided.plateau = None
        tips.append(Tip(4, "LR schedule", f"yours ({', '.join(lr_owners)})",
                        "your callback takes precedence: ours (halve on plateau, stop when tiny, "
                        "restore best) is not added", "callbacks="))
        return tips
    restore = not stoppers
    # Improvement on the loss's own scale (issue 36): 1e-3 of the best value
    # is the absolute 1e-4 it replaces at a loss of 0.1.
    plateau = dict(patience=patience, stop_ratio=None, restore_best_weights=restore,
                   verbose=int(decided.verbose > 0), min_delta=0.0,
                   min_relative_delta=MIN_RELATIVE_DELTA, rollback=ROLLBACK)
    if stoppers or o["stop_ratio"] is None:
        stop_text = "never stop early"
    elif o["stop_ratio"] == "auto":
        # Two halvings that brought nothing, and updates that no longer move
        # the weights: more halvings cannot help (BUILD_NOTES.md, issue 24).
        plateau.update(stop_patience=2 * patience, stop_update_fraction=STILL_FRACTION)
        stop_text = (f"stop after {2 * patience} epochs without a better val_loss once the "
                     f"update ratio is below {STILL_FRACTION:g} x that of the last epoch that "
                     "improved")
    else:
        plateau["stop_ratio"] = o["stop_ratio"]
        stop_text = f"stop below {o['stop_ratio']:g} x initial"
    decided.plateau = plateau
    tips.append(Tip(4, "LR schedule", f"halve after {patience} validated epochs without a "
                    f"{MIN_RELATIVE_DELTA:g} relative improvement; {stop_text}"
                    + ("; restore best weights" if restore else ""),
                    "divide by 2 on plateau, stop when tiny" + (f"; {longer}" if longer else "")
                    + (f"; your {', '.join(stoppers)} decides stopping and best weights"
                       if stoppers else ""), "patience=, stop_ratio=, callbacks="))
    if dropout:
        tips.append(Tip(11, "dropout", f"patience {patience} (not 3)",
                        f"dropout layers ({', '.join(dropout)}) need longer training: 6 epochs"
                        + (", raised to the updates a plateau is judged over" if longer else ""),
                        "patience="))
    return tips
