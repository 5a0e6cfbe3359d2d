"""The decide stage: `plan(model, data, ...)` -> `Plan`.

A plan trains nothing: it summarizes the data (`keras_recipes.data`),
measures the model's output on a real batch, decides, and builds the
training model it will fit (`keras_recipes.build`). `plan.fit()` runs it
(`keras_recipes.train`). Every inference is a `Tip` with its evidence and the
argument that overrides it, made in `keras_recipes.decide`, one module per
concern: `options`, `data_rows`, `task`, `inputs`, `training`,
`learning_rate`, `execution`. This module runs them in order.
"""

import hashlib
import json
import time
import types

import keras
import numpy as np

from keras_recipes import build
from keras_recipes import data as data_lib
from keras_recipes import distribute
from keras_recipes import forget_gate
from keras_recipes import initializers
from keras_recipes import sharding
from keras_recipes import train
from keras_recipes.decide.data_rows import batch_rule
from keras_recipes.decide.data_rows import check_shardable
from keras_recipes.decide.data_rows import check_inputs_match
from keras_recipes.decide.data_rows import decide_batch_size
from keras_recipes.decide.data_rows import decide_data
from keras_recipes.decide.data_rows import decide_epochs
from keras_recipes.decide.data_rows import decide_layout
from keras_recipes.decide.data_rows import model_input_rank
from keras_recipes.decide.data_rows import padding_value
from keras_recipes.decide.execution import decide_audit
from keras_recipes.decide.execution import decide_determinism
from keras_recipes.decide.execution import decide_execution
from keras_recipes.decide.inputs import decide_inputs
from keras_recipes.decide.learning_rate import decide_initialization
from keras_recipes.decide.learning_rate import decide_learning_rate
from keras_recipes.decide.options import check_options
from keras_recipes.decide.options import fit_data
from keras_recipes.decide.options import resolve_verbosity
from keras_recipes.decide.task import constant_baseline
from keras_recipes.decide.task import decide_task
from keras_recipes.decide.training import decide_training
from keras_recipes.decide.training import forget_bias_changes
from keras_recipes.decisions import Decisions
from keras_recipes.modelinfo import reads_strings
from keras_recipes.modelinfo import walk_layers
from keras_recipes.result import Tip
from keras_recipes.result import tips_table


class Plan:
    """The decisions of one `fit_with_tips` call, before any training.

    `print(plan)` shows the tips table (each decision, its setting, the
    evidence, and the argument that overrides it); `plan.fit()` trains and
    returns a `FitResult`. Two plans are equal when they take the same
    decisions on the same data and model (`plan.fingerprint()`).
    """

    def __init__(self, tips, model, data, options, decided):
        # The decisions are read-only from here on (`plan.decisions`, a
        # frozen `Decisions`): training reads them and keeps what it finds
        # itself (a resumed checkpoint, its rows) apart.
        self.tips = tuple(tips)
        self.model = model
        self.data = data
        self.options = types.MappingProxyType(dict(options))
        self.decisions = decided.frozen()

    def rows(self):
        return [[t.number, t.name, t.setting, t.reason, t.override] for t in self.tips]

    def __str__(self):
        return tips_table(self.tips)

    def __repr__(self):
        return f"<Plan tips={len(self.tips)} data={self.data.description!r}>"

    def __eq__(self, other):
        return isinstance(other, Plan) and self.fingerprint() == other.fingerprint()

    __hash__ = None

    def fingerprint(self):
        """Hashes of the data, the model and the decisions: a checkpoint
        records them, and resuming with any of them changed is an error."""
        return fingerprint(self.data, self.model, self.tips)

    def fit(self):
        """Trains as planned; returns a `FitResult` (an `EnsembleResult` for
        a plan `with_members`)."""
        return train.run(self)

    def with_members(self, fused):
        """The same plan, training `fused.members` as one compiled program
        (tip 12); `fused` is a `keras_recipes.ensemble.FusedMembers`."""
        loss = self.decisions.loss
        with distribute.Scope(self.decisions.strategy):  # the metrics' variables, laid out
            decided = self.decisions.replace(fused=fused, member_loss=loss,
                                             loss=fused.loss(loss), metrics=fused.metrics(loss))
        # Tip 9 as decided on the first member (plan() set its bias), for the rest.
        for member in fused.members[1:]:
            for layer, value, _, _ in forget_bias_changes(
                    member, self.options["forget_bias"],
                    getattr(self.data.features, "steps", None)):
                if value is not None:
                    forget_gate.set_forget_bias(layer, value)
        # Tip 6 as decided on the first member (plan() redrew it), for the rest.
        if self.decisions.reinitialized:
            base = 0 if self.options["seed"] is None else self.options["seed"]
            for i, member in enumerate(fused.members[1:], start=1):
                kernels = [v for v, _ in initializers.constant_kernels(member)]
                initializers.redraw(kernels, seed=base + 1000 * i)
        # The monitored val_loss is the members' sum; the plateau rule judges
        # it relative to its own best (MIN_RELATIVE_DELTA), as one member's.
        make_optimizer = self.decisions.make_optimizer
        # Each member clipped by its own global norm.
        decided.make_optimizer = lambda: fused.configure(make_optimizer())
        tips = [t for t in self.tips if t.name not in ("execution", "determinism")]
        if getattr(self.data, "live", None) is not None:
            # Fused members each read their own order of rows: the batches
            # as read once (each member's order from its own seed).
            tips.append(Tip(12, "PyDataset", "read once for the fused members",
                            "each member reads its own order of the rows, so the batches read "
                            "at the start are shuffled per member; fused=False reads them anew "
                            "every epoch for each member", "fused=False"))
        with distribute.Scope(decided.strategy) as scope:
            decided.scope = scope
            # The XLA decision is taken on the stacked members; the members
            # are then vectorized where that pays with it (and can be).
            decided.update(build.training_model(decided, self.model, self.data))
            execution = decide_execution(decided, self.data, self.options)
            fused.choose(decided.jit, *build.features_shape(decided, self.data),
                         strategy=decided.strategy)
            if fused.vectorized is not None:
                decided.update(build.training_model(decided, self.model, self.data))
            tips.append(fused.tip(self.options["shuffle"],
                                  fused.shuffle_seeds(self.data.shuffle_seed)))
            tips.append(execution)
            tips.append(decide_determinism(self.options, decided))
        return Plan(tips, self.model, self.data, self.options, decided)


def _digest(value):
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def fingerprint(data, model, tips):
    data_part = [data.description, data.n_train, data.n_validation, str(data.x_shape)]
    for stats in data.input_stats:
        if stats is not None:
            data_part += [np.round(np.atleast_1d(stats.mean), 4).tolist(),
                          np.round(np.atleast_1d(stats.std), 4).tolist()]
    for labels in data.output_labels:
        data_part += [labels.kind, sorted(labels.class_counts.items())]
    model_part = [type(model).__name__, [list(v.shape) for v in model.weights],
                  [type(layer).__name__ for layer in walk_layers(model)]]
    # Rows that differ between the processes or the runs of one training
    # (which worker this is, the resumed epoch) are not decisions about it;
    # nor is the epoch budget: resuming to train longer is what it is for.
    decisions = [[t.number, t.name, t.setting] for t in tips
                 if t.name not in ("execution", "resumed", "audit", "distribution",
                                   "learning rate", "update ratio", "epoch budget")]
    return {"data": _digest(data_part), "model": _digest(model_part),
            "decisions": _digest(decisions)}


def plan(model, data=None, y=None, *, x=None, **options):
    """Decides how `fit_with_tips(model, data, **options)` would train.

    Takes the same arguments as `fit_with_tips` and trains nothing: it takes
    the data's statistics, measures the model's output on a real batch and
    returns a `Plan` (print it to see every decision and its evidence; call
    `.fit()` to train).

    Example:

    ```python
    p = keras_recipes.plan(model, "digits")
    print(p)            # the tips table, before any training
    result = p.fit()    # the same as fit_with_tips(model, "digits")
    ```
    """
    began = time.perf_counter()
    data = fit_data(data, y, x)
    o = check_options(model, options)
    o["batch_size"], batch_note = decide_batch_size(o)
    # A fixed batch is not split over replicas ("auto" means one device then).
    strategy = distribute.resolve(None if o["fixed_batch"] is not None else o["strategy"])
    distribute.check_outside_scope(strategy)
    if not callable(o["batch_size"]):
        distribute.check_batch_size(o["batch_size"], strategy)
    decided = Decisions(strategy=strategy, no_xla=distribute.check_jit(o["jit_compile"], strategy),
                        verbose=resolve_verbosity(o["verbose"]), source=model,
                        fixed_batch=o["fixed_batch"])
    if o["seed"] is not None:
        keras.utils.set_random_seed(int(o["seed"]))
    with distribute.Scope(strategy) as scope:
        decided.scope = scope
        seed = o["seed"] if o["split_seed"] is None else o["split_seed"]
        data = data_lib.make_data(
            data, o["validation_data"], o["validation_split"], o["batch_size"], seed,
            o["data_dir"], verbose=decided.verbose, shuffle_seed=o["seed"],
            sample_weight=o["sample_weight"], input_rank=model_input_rank(model),
            steps_per_epoch=o["steps_per_epoch"], fixed_batch=o["fixed_batch"] is not None,
            ordered=bool(o["stateful"]), strings=reads_strings(model) is not None,
            read_once=o["read_once"], padding=padding_value(model))
        check_inputs_match(model, data)
        if sharding.is_distribution(strategy):
            check_shardable(data, strategy, o["seed"])
            data.split_over(distribute.replicas(strategy), sharding.batch_span(strategy),
                            sharding.process_count())
            decided.padded_validation = data.shard_cut()[1] > 0 and not data.weighted
        if data.kept_batches:  # shapes vary: the batches as given (issue 38 item 1)
            o["batch_size"], batch_note = data.batch_size, (
                "your first batch's size (tip 2's rule re-batches only batches of one shape)")
        elif getattr(data, "live", None) is not None:  # read as model.fit reads it
            o["batch_size"], batch_note = data.batch_size, (
                f"your {'generator' if data.description == 'generator' else 'PyDataset'}'s "
                "batch size, kept")
        elif callable(o["batch_size"]):  # tip 2's rule, on the examples now read
            o["batch_size"], batch_note = data.batch_size, batch_rule(data.n_train)[1]
            distribute.check_batch_size(o["batch_size"], strategy)
        tips = decide_data(data, o, strategy, batch_note)
        tips.append(decide_epochs(data, o))
        model, cloned = distribute.in_scope(model, strategy)
        if cloned:
            tips.append(Tip(0, "model", "cloned into the strategy's scope",
                            cloned + "; the trained model is result.model"))
        tips += decide_layout(model, strategy)
        tips += decide_initialization(model, data, o, decided)
        tips += decide_task(model, data, o, decided)
        tips += decide_inputs(model, data, o, decided)
        decided.baseline = constant_baseline(data, decided)
        tips += decide_training(model, o, decided, data)
        decided.update(build.training_model(decided, model, data))
        tips += decide_audit(model, data, o, decided)
        tips.append(decide_execution(decided, data, o))
        tips.append(decide_determinism(o, decided))
        if decided.jit_note:
            tips = [t for t in tips if t.name != "execution"] + [
                Tip(0, "execution", "jit_compile=False", decided.jit_note, "jit_compile=")]
        tips += decide_learning_rate(decided, data, o)
    decided.plan_seconds = time.perf_counter() - began
    return Plan(tips, model, data, o, decided)
