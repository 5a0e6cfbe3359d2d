"""The rows decided from the data: the validation set, the minibatch (tip 2)
and the epoch budget (tip 4), and the checks of the data against the model's
inputs.
"""

import warnings

import keras

from keras_recipes import distribute
from keras_recipes import sharding
from keras_recipes import preprocessing
from keras_recipes.data import leaves
from keras_recipes.result import Tip
from keras_recipes.result import user_stacklevel


def check_shardable(data, distribution, seed):
    """Batches the recipe can cut to keras.distribution's devices: its own,
    from arrays or a PyDataset's rows, not batches kept as given; with
    several processes, split and shuffled alike in each (a seed)."""
    if sharding.process_count() > 1 and seed is None:
        raise ValueError(
            f"Under keras.distribution with {sharding.process_count()} processes every process "
            "must split and shuffle the data alike, to feed its share of the same batches: "
            "pass the same seed= in each. Received: seed=None")
    if data.kept_batches:
        raise ValueError(
            "Under keras.distribution every batch is split over the devices, and batches whose "
            "shapes vary are kept as given, so one that does not divide over them would stop "
            "the step. Pad them to one shape (the recipe then re-batches them), or train "
            f"without the distribution. Received: {data.description} with varying shapes under "
            f"{type(distribution).__name__}")


def check_inputs_match(model, data):
    inputs = getattr(model, "inputs", None) or []
    given = leaves(data.x_spec)
    if len(inputs) > 1 and len(given) != len(inputs):
        names = [getattr(i, "name", "?") for i in inputs]
        raise ValueError(
            f"The model has {len(inputs)} inputs ({', '.join(names)}); give one array per input, "
            "as a dict keyed by input name or a list in the model's order. "
            f"Received: a model with {len(inputs)} inputs and data with {len(given)} input array(s)")


def padding_value(model):
    """The value whose steps the model reads as padding (a `Masking` layer's
    `mask_value` on its one input), or None."""
    if len(getattr(model, "inputs", None) or []) != 1:
        return None
    return preprocessing.padding_of(model)


def model_input_rank(model):
    """The rank (with the batch axis) of the model's input, or of each input
    by name ({name: rank}) when it has several; None when unknown."""
    inputs = getattr(model, "inputs", None)
    try:
        if inputs and len(inputs) == 1:
            return len(inputs[0].shape)
        if inputs:
            return {t.name: len(t.shape) for t in inputs}
    except (AttributeError, TypeError, ValueError):
        pass
    return None


# Tip 2 says "about 128". Measured on validation only (BUILD_NOTES.md, issue
# 36: benchmarks/bench_target_sweep.py --arms), 32 beat 128 on 7 of the 8
# real tasks where the two differ (geometric mean of the best val_loss over
# each task's best: 1.02 against 1.18, standard error 0.06), and on a
# validation set of a new voice; Keras' own default is 32 too.
# `batch_size=128` keeps the tip's letter.
DEFAULT_BATCH = 32
# A batch assumes many batches per epoch: below this many, a smaller one.
MIN_STEPS = 8


def decide_batch_size(o):
    """Tip 2: the model's fixed batch size, the user's, or `batch_rule`.
    Returns (batch, or the rule as a function of the training examples
    for `make_data` to apply once they are read; why or None)."""
    if o["fixed_batch"] is not None:
        return o["fixed_batch"], (f"fixed by the model's inputs (keras.Input(batch_size="
                                  f"{o['fixed_batch']})): every batch holds exactly that many, "
                                  "a last partial batch is dropped")
    if o["batch_size"] != "auto":
        return o["batch_size"], None
    # Decided on the training examples once read, the same rule whatever the
    # form (arrays, a dataset, a PyDataset, a generator: issue 38 item 3).
    return (lambda n_train: batch_rule(n_train)[0]), None


def batch_rule(n_train):
    """(batch, why) for `n_train` training examples: DEFAULT_BATCH, unless
    that leaves fewer than MIN_STEPS updates an epoch; then the largest power
    of two (at least 16) that gives that many."""
    batch = DEFAULT_BATCH
    while batch > 16 and -(-n_train // batch) < MIN_STEPS:
        batch //= 2
    chosen = (f"{DEFAULT_BATCH}, not tip 2's 128: 32 had the lower validation loss on 7 of 8 "
              "real tasks (BUILD_NOTES.md, issue 36); batch_size=128 keeps the tip")
    if batch == DEFAULT_BATCH:
        return batch, chosen
    return batch, (f"{chosen}; {DEFAULT_BATCH} would give {-(-n_train // DEFAULT_BATCH)} "
                   f"update(s) per epoch on {n_train} training examples; {batch} gives at least "
                   f"{min(MIN_STEPS, -(-n_train // batch))}")


# The epoch budget ("auto"): 100 epochs, or more when 100 hold fewer than
# this many updates (small data). Keras' usual
# 100 epochs at batch 32 give a 1,000-example set about 3,000 updates.
BUDGET_EPOCHS, BUDGET_UPDATES = 100, 3000


def decide_epochs(data, o):
    """Tip 4's "stop when it is tiny" ends most runs; the cap is a budget.
    Sets o["epochs"] to a number and says where it came from."""
    start = o["initial_epoch"]
    counted = (f"; numbered from initial_epoch={start}, as model.fit numbers them (epochs "
               f"{start}..{o['epochs'] if o['epochs'] != 'auto' else 'the budget'} - 1 run)"
               if start else "")
    if o["epochs"] != "auto":
        return Tip(4, "epoch budget", f"{o['epochs']}", "as passed; the stopping rule usually "
                   "ends training earlier, a run still improving at the cap ends 'capped'"
                   + counted, "epochs=")
    steps = data.steps_per_epoch
    epochs = BUDGET_EPOCHS
    if steps and steps * BUDGET_EPOCHS < BUDGET_UPDATES:
        epochs = -(-BUDGET_UPDATES // steps)
    # The budget counts the epochs that run, after the user's initial_epoch.
    epochs += start
    o["epochs"] = epochs
    why = (f"{BUDGET_EPOCHS} epochs, or at least {BUDGET_UPDATES} updates ({steps} per epoch)"
           if steps else f"{BUDGET_EPOCHS} epochs")
    return Tip(4, "epoch budget", f"{epochs} (auto)", why + "; the stopping rule usually ends "
               "training earlier, a run still improving at the cap ends 'capped'" + counted,
               "epochs=")


def decide_data(data, o, strategy, batch_note=None):
    tips = [Tip(4, "validation set", f"{data.n_validation} examples ({data.split})",
                "decides LR drops, stopping and the best weights", "validation_data=, validation_split=")]
    if o["validation_freq"] > 1:
        tips.append(Tip(4, "validation", f"every {o['validation_freq']} epochs",
                        "validation_freq as model.fit reads it: LR drops, stopping and the best "
                        "weights are judged on the validated epochs only, patience counts them",
                        "validation_freq="))
    if data.weighted:
        tips.append(Tip(3, "sample weights", "per-example weights in the loss and weighted metrics",
                        "given with the data", "sample_weight="))
    if o["class_weight"] is not None:
        tips.append(Tip(3, "class weights", str(o["class_weight"]), "as passed", "class_weight="))
    batch = o["batch_size"]
    steps = data.steps_per_epoch
    few = (f"; only {steps} update{'s' if steps > 1 else ''} per epoch on {data.n_train} "
           "training examples: a smaller batch gives more" if steps < 4 else "")
    stream = data.description == "generator" and getattr(data, "live", None) is not None
    if stream:
        few = ""  # the generator's note says how it is read
    elif o["steps_per_epoch"] is not None and data.kept_batches:
        few = (f"; steps_per_epoch={o['steps_per_epoch']}: the generator's batches read, "
               f"{data.kept_batches[1]} of them held out" if data.description == "generator"
               else f"; steps_per_epoch={o['steps_per_epoch']} limits each epoch (of "
               f"{data.kept_batches[0]} training batches)")
    elif o["steps_per_epoch"] is not None and data.description == "generator":
        few = (f"; steps_per_epoch={o['steps_per_epoch']}: the generator's batches read; "
               f"{-(-data.n_train // batch)} batches hold the {data.n_train} training examples")
    elif o["steps_per_epoch"] is not None:
        few = (f"; steps_per_epoch={o['steps_per_epoch']} limits each epoch "
               f"({-(-data.n_train // batch)} batches hold the {data.n_train} training examples)")
    elif batch_note:
        few = ""
    if data.drop_remainder:
        few += (f"; {data.n_train % batch} training and {data.n_validation % batch} validation "
                "examples left over")
    tips.append(Tip(2, "minibatch", f"batch_size={batch} ({steps} steps per epoch)",
                    (batch_note if batch_note else "as passed") + few
                    + (f"; {data.notes[0]}" if data.notes else ""), "batch_size="))
    if o["stateful"]:
        shuffled = ("shuffle=True as passed: the states then carry between unrelated batches"
                    if o["shuffle"] else "batches in order (shuffle off)")
        tips.append(Tip(0, "stateful", f"states of {', '.join(o['stateful'])} reset at each "
                        "epoch's start and before each validation pass",
                        f"the batches of an epoch are one stream; {shuffled}; the validation "
                        "set is read from reset states too", "shuffle="))
    if strategy is None and o["strategy"] == "auto":
        why = {"tensorflow": "fewer than two GPUs",
               "jax": "fewer than two local accelerators (keras.distribution)"}.get(
                   keras.backend.backend(), "tf.distribute needs TensorFlow")
        tips.append(Tip(0, "distribution", distribute.describe(None), "strategy='auto': " + why,
                        "strategy="))
    elif strategy is not None:
        n = distribute.replicas(strategy)
        tips.append(Tip(0, "distribution", distribute.describe(strategy) + (
            f"; global batch {batch} = {batch // n} per replica" if n > 1 else ""),
            "batch_size is the global batch and the loss its mean: the gradient, and so "
            "the LR, do not change with the replica count (no LR rule applied)"
            + shard_note(data), "strategy="))
    return tips


def decide_layout(model, strategy):
    """Under ModelParallel, the row that says which of the model's variables
    its LayoutMap split, read from the variables themselves; none split (no
    key matched a variable's whole path) trains replicated, with a warning."""
    if not isinstance(strategy, keras.distribution.ModelParallel) or not model.variables:
        return []  # (a model not built yet is laid out when it is, as Keras does)
    placed = [(v, getattr(v.value, "sharding", None)) for v in model.variables]
    split = [(v.path, tuple(getattr(where, "spec", ()))) for v, where in placed
             if where is not None and not where.is_fully_replicated]
    override = "strategy= (its LayoutMap)"
    if not split:
        laid_out = [v.path for v in model.variables
                    if any(strategy.get_variable_layout(v).axes)]
        mesh = strategy.device_mesh
        if laid_out:  # keys matched, over mesh axes of one device each
            reason = (f"the LayoutMap lays out {', '.join(laid_out[:3])}, over mesh axes of one "
                      f"device each ({dict(zip(mesh.axis_names, mesh.shape))}): nothing to split "
                      "over, so every device holds every variable whole")
        else:
            example = next((v.path for v in model.trainable_variables if len(v.shape) > 1),
                           model.variables[0].path)
            reason = (f"no key of the LayoutMap matched a variable: keys match the whole path "
                      f"(this model's look like {example!r}), so every device holds every "
                      "variable whole")
        warnings.warn(f"ModelParallel splits none of the model's {len(model.variables)} "
                      f"variables: {reason}.", RuntimeWarning, stacklevel=user_stacklevel())
        return [Tip(0, "layout", "no variable split: every one replicated", reason, override)]
    shown = ", ".join(f"{path} {spec}" for path, spec in split[:3])
    return [Tip(0, "layout", f"{len(split)} of {len(model.variables)} variables split over the "
                "mesh", f"as laid out by the LayoutMap: {shown}"
                + (f" and {len(split) - 3} more" if len(split) > 3 else ""), override)]


def shard_note(data):
    """How batches that do not divide over keras.distribution's devices are cut."""
    left, pad, scale = data.shard_cut()
    note = ""
    if left:
        note += (f"; each epoch's last batch is cut to a multiple of {data.shards}: {left} of "
                 f"the {data.n_train} training examples left out per epoch (different ones "
                 "each epoch: the order is reshuffled)")
    if pad:
        note += (f"; validation's last batch is padded with {pad} row{'s' if pad > 1 else ''} "
                 f"of weight 0 and every real row weighted {scale:.4g}, so val_loss and the "
                 + (f"metrics are those of the {data.n_validation} validation examples"
                    if not data.weighted else f"weighted metrics are those of the "
                    f"{data.n_validation} validation examples; the unweighted metrics (as "
                    "model.fit's metrics= are with sample weights) count the padding rows"))
    return note
