"""`Decisions`: what `plan()` decided, as named fields, read by build and train.

The decide steps fill it in order while a plan is made (`update`, or one
field at a time); `Plan` then freezes it, and nothing downstream changes it:
training keeps what it finds in its own state (`train._Run`). A fused plan
takes a copy with its own fields changed (`replace`). A misspelt field is an
error, when set and when read.
"""

import dataclasses
from typing import Any
from typing import Callable


@dataclasses.dataclass(eq=False, repr=False)
class Decisions:
    # -- where and how it runs (plan) --
    strategy: Any = None  # the tf.distribute strategy, or None for one device
    no_xla: Any = None  # why the strategy rules XLA out, or None
    verbose: int = 1  # the resolved verbosity
    source: Any = None  # the model as the user gave it (before any clone)
    fixed_batch: Any = None  # a batch size the model's inputs fix, or None
    scope: Any = None  # the strategy's entered `distribute.Scope`
    plan_seconds: float = 0.0  # plan()'s own wall time (statistics, probes, calibration)

    # -- the task (decide/task) --
    units: Any = None  # output units per output
    compile: Any = None  # the user's own compile arguments, or None
    probes: Any = None  # the model's measured outputs on a real batch
    loss: Any = None  # the loss trained (a fused plan: the members' sum)
    metrics: Any = None
    label_losses: Any = None  # per label, in the data's order
    member_loss: Any = None  # a fused plan: one member's loss
    baseline: Any = None  # (loss, metric) of the constant predictor on validation

    # -- the inputs (decide/inputs) --
    pre_layers: list = dataclasses.field(default_factory=list)  # tip 1's layers
    augment: list = dataclasses.field(default_factory=list)  # tip 10's layers
    target: Any = None  # the standardized target's statistics, or None
    targets: Any = None  # several outputs: each one's, or None
    input_layers: Any = None  # several inputs: each one's preprocessing layers
    custom_step: bool = False  # preprocessing runs in the input pipeline
    own_steps: Any = None  # the user's own train_step / test_step / compute_loss
    structured: bool = False  # several inputs or outputs
    mapped: bool = False  # the input pipeline carries the preprocessing

    # -- training (decide/training, decide/learning_rate) --
    make_optimizer: Callable = None  # a fresh optimizer at the decided rate
    compile_kwargs: dict = dataclasses.field(default_factory=dict)  # the user's, kept
    optimizer_name: Any = None  # "sgd" or "adam" when the recipe chose it
    learning_rate: Any = None  # the start rate (calibrated, or as passed)
    max_norm: Any = None  # tip 7's clipping norm, or None
    plateau: Any = None  # ReduceLROnPlateau.halve's arguments, or None
    reinitialized: bool = False  # tip 6 redrew a dead start
    calibration: Any = None  # the calibration's `Calibration`, or None
    initial_loss: Any = None  # the first batch's loss before training
    compiled: Any = None  # (the optimizer the training model was compiled with, jit)

    # -- the built training model (build) --
    full: Any = None  # the model `fit` trains
    raw: Any = None  # its raw input
    features: Any = None  # the tensor after augmentation and preprocessing
    trained_output: Any = None

    # -- execution (decide/execution) --
    audit: Any = None  # the audit's report, or None
    jit: bool = False  # XLA on
    execution: Any = None  # what the execution row reports
    jit_note: Any = None  # why XLA was turned off after it was chosen
    deterministic: bool = False  # deterministic kernels for the run

    padded_validation: bool = False  # validation rows of weight 0 for the devices (sharding)

    # -- ensembles --
    fused: Any = None  # `FusedMembers`, for a plan `with_members`

    def update(self, values=(), **more):
        """Sets several fields: `update(mapping)` or `update(name=value, ...)`."""
        for name, value in dict(values, **more).items():
            setattr(self, name, value)

    def frozen(self):
        """This object, read-only from now on; returns it."""
        object.__setattr__(self, "_frozen", True)
        return self

    def replace(self, **changes):
        """A copy, not frozen, with `changes` applied."""
        copy = Decisions(**{f.name: getattr(self, f.name) for f in dataclasses.fields(self)})
        copy.update(changes)
        return copy

    def __setattr__(self, name, value):
        if self.__dict__.get("_frozen"):
            raise dataclasses.FrozenInstanceError(
                f"a plan's decisions are read-only; cannot set {name!r}")
        if name not in _FIELDS:
            raise AttributeError(f"Decisions has no field {name!r}")
        object.__setattr__(self, name, value)

    def __repr__(self):
        shown = ", ".join(f"{f.name}={type(getattr(self, f.name)).__name__}"
                          for f in dataclasses.fields(self) if getattr(self, f.name) is not None)
        return f"Decisions({shown})"


_FIELDS = frozenset(f.name for f in dataclasses.fields(Decisions))
