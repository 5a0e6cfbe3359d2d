"""Tip 12: train about ten networks and average their predictions.

* `AveragingEnsemble`: a `keras.Model` averaging its members' predictions.
* `MemberwiseLoss`: the loss that trains stacked members as one program.
* `fit_ensemble`: trains the members (together when they share an
  architecture) with the whole recipe of `fit_with_tips`.
"""

import contextlib
import re

import keras
import numpy as np
from keras import ops

from keras_recipes.modelinfo import output_activation
from keras_recipes.modelinfo import recurrent_layers
from keras_recipes.modelinfo import walk_layers

_PACKAGE = "keras_recipes"
AVERAGES = ("probabilities", "logits", "geometric", "mean")
_EPS = 1e-7


def _unique_names(members):
    """Renames members whose names repeat (member, member_1, ...)."""
    seen = set()
    for member in members:
        name = member.name
        k = 0
        while name in seen:
            k += 1
            name = f"{member.name}_{k}"
        if name != member.name:
            member.name = name
        seen.add(name)


def _output_shape(member):
    shape = getattr(member, "output_shape", None)
    if shape is None:
        return None
    return tuple(shape[1:]) if isinstance(shape, tuple) else None


@keras.saving.register_keras_serializable(package=_PACKAGE)
class AveragingEnsemble(keras.Model):
    """A model whose output is the average of its members' predictions.

    `average="probabilities"` (the default) averages probabilities: members
    that end in a linear activation are read as logits and converted
    (softmax, or sigmoid for one output) first. `"logits"` averages logits
    (members that output probabilities are converted with a log) and outputs
    logits. `"geometric"` averages log-probabilities and renormalizes: the
    normalized geometric mean of the probabilities. `"mean"` averages the raw
    outputs (regression).

    Member names are made unique on construction, so models built by the same
    function combine; one `.keras` file saves and reloads the whole ensemble,
    and one `predict` call runs every member.

    Example:

    ```python
    members = [build_model() for _ in range(10)]  # trained
    ensemble = AveragingEnsemble(members)
    probabilities = ensemble.predict(x)
    ensemble.save("ensemble.keras")
    ```

    Args:
        members: List of `keras.Model`, with the same input and output
            shapes.
        average: One of "probabilities", "logits", "geometric", "mean".
            Defaults to `"probabilities"`.
    """

    def __init__(self, members, average="probabilities", **kwargs):
        if isinstance(members, keras.Model) or not isinstance(members, (list, tuple)):
            raise TypeError("`members` must be a list of keras.Model. "
                            f"Received: members={members!r}")
        members = list(members)
        if not members:
            raise ValueError("`members` must hold at least one model. Received: members=[]")
        bad = [m for m in members if not isinstance(m, keras.Model)]
        if bad:
            raise TypeError("Every member must be a keras.Model. "
                            f"Received: a member of type {type(bad[0]).__name__}")
        if average not in AVERAGES:
            raise ValueError(f"`average` must be one of {AVERAGES}. Received: average={average!r}")
        shapes = {_output_shape(m) for m in members} - {None}
        if len(shapes) > 1:
            raise ValueError("All members must have the same output shape. "
                             f"Received: output shapes {sorted(shapes)}")
        super().__init__(**kwargs)
        _unique_names(members)
        self.members_ = members
        self.average = average
        self._activations = [output_activation(m) for m in members]

    @property
    def members(self):
        """The member models, in order."""
        return list(self.members_)

    def _as(self, output, activation, kind):
        """A member output as probabilities, logits or log-probabilities."""
        output = ops.cast(output, "float32")
        single = output.shape[-1] == 1
        is_prob = activation in ("softmax", "sigmoid")
        if kind == "probabilities":
            if is_prob:
                return output
            return ops.sigmoid(output) if single else ops.softmax(output, axis=-1)
        if kind == "logits":
            if not is_prob:
                return output
            p = ops.clip(output, _EPS, 1 - _EPS)
            return ops.log(p / (1 - p)) if single else ops.log(p)
        # log-probabilities
        if is_prob:
            return ops.log(ops.clip(output, _EPS, 1.0))
        return ops.log_sigmoid(output) if single else ops.log_softmax(output, axis=-1)

    def call(self, inputs, training=None):
        outputs = [m(inputs, training=training) for m in self.members_]
        if self.average == "mean":
            return ops.mean(ops.stack([ops.cast(o, "float32") for o in outputs]), axis=0)
        kind = {"probabilities": "probabilities", "logits": "logits", "geometric": "log"}[self.average]
        stacked = ops.stack([self._as(o, a, kind) for o, a in zip(outputs, self._activations)])
        mean = ops.mean(stacked, axis=0)
        if self.average != "geometric":
            return mean
        if mean.shape[-1] == 1:
            # Two classes: renormalize p and 1 - p (both geometric means).
            other = ops.mean(ops.stack([
                self._as(-o if a not in ("softmax", "sigmoid") else 1 - o, a, "log")
                for o, a in zip(outputs, self._activations)]), axis=0)
            return ops.exp(mean) / (ops.exp(mean) + ops.exp(other))
        return ops.softmax(mean, axis=-1)

    def get_config(self):
        return {
            "name": self.name,
            "members": [keras.saving.serialize_keras_object(m) for m in self.members_],
            "average": self.average,
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        members = [keras.saving.deserialize_keras_object(m, custom_objects=custom_objects)
                   for m in config.pop("members")]
        return cls(members, **config)


def _member_share(value, index, stacked):
    """Member `index`'s targets or weights: `value[:, index]` when the batch
    holds one share per member (`(batch, members, ...)`), else `value`."""
    return value[:, index] if stacked and value is not None else value


@keras.saving.register_keras_serializable(package=_PACKAGE)
class MemberwiseLoss(keras.losses.Loss):
    """Sum over members of a mean-reduced loss, for stacked member outputs.

    `y_pred` has shape `(batch, members, ...)`; member `i` is scored on
    `y_pred[:, i]` against the shared `y_true`, or with
    `stacked_targets=True` against `y_true[:, i]` (each member's own batch,
    as `fit_ensemble` feeds them); sample weights likewise. Each member's
    gradient comes from its own term only, so training the stack trains
    every member as if alone.

    Args:
        loss: A Keras loss (mean-reduced).
        stacked_targets: Boolean. Whether targets and sample weights are
            `(batch, members, ...)`. Defaults to `False`.
    """

    def __init__(self, loss, stacked_targets=False, name="memberwise_loss", **kwargs):
        # The members' losses reduce themselves (mean); the sum over members
        # needs no further reduction.
        super().__init__(name=name, reduction=None, **kwargs)
        self.loss = keras.losses.get(loss)
        self.stacked_targets = bool(stacked_targets)
        if getattr(self.loss, "reduction", None) == "sum":
            raise ValueError("MemberwiseLoss needs a mean-reduced loss. Received: reduction='sum'")

    def __call__(self, y_true, y_pred, sample_weight=None):
        stacked = self.stacked_targets
        return ops.sum(ops.stack([
            self.loss(_member_share(y_true, i, stacked), y_pred[:, i],
                      _member_share(sample_weight, i, stacked))
            for i in range(y_pred.shape[1])]))

    def call(self, y_true, y_pred):
        return self(y_true, y_pred)

    def get_config(self):
        return {"name": self.name, "loss": keras.saving.serialize_keras_object(self.loss),
                "stacked_targets": self.stacked_targets}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        return cls(keras.saving.deserialize_keras_object(config.pop("loss")), **config)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class MemberLoss(keras.metrics.Mean):
    """Metric: the loss of one member of a stack (`y_pred[:, index]`, against
    `y_true[:, index]` with `stacked_targets=True`)."""

    def __init__(self, loss, index, stacked_targets=False, name=None, **kwargs):
        super().__init__(name=name or f"member_{index}_loss", **kwargs)
        self.loss = keras.losses.get(loss)
        self.index = int(index)
        self.stacked_targets = bool(stacked_targets)

    def update_state(self, y_true, y_pred, sample_weight=None):
        stacked = self.stacked_targets
        return super().update_state(self.loss(
            _member_share(y_true, self.index, stacked), y_pred[:, self.index],
            _member_share(sample_weight, self.index, stacked)))

    def get_config(self):
        return {"name": self.name, "index": self.index, "stacked_targets": self.stacked_targets,
                "loss": keras.saving.serialize_keras_object(self.loss)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        return cls(keras.saving.deserialize_keras_object(config.pop("loss")), **config)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class MemberSlice(keras.layers.Layer):
    """`x[:, index]`: member `index`'s share of a `(batch, members, ...)` batch."""

    def __init__(self, index, **kwargs):
        super().__init__(**kwargs)
        self.index = int(index)

    def call(self, x):
        return x[:, self.index]

    def compute_output_shape(self, shape):
        return (shape[0],) + tuple(shape[2:])

    def get_config(self):
        return {**super().get_config(), "index": self.index}


def _dims(x, first, start):
    """`first` + the shape of x from axis `start`, unknown sizes read at run time."""
    dims = list(first)
    for axis in range(start, len(x.shape)):
        dims.append(x.shape[axis] if x.shape[axis] is not None else ops.shape(x)[axis])
    return dims


@keras.saving.register_keras_serializable(package=_PACKAGE)
class FoldMembers(keras.layers.Layer):
    """`(batch, members, ...)` -> `(batch * members, ...)`, so that
    preprocessing and augmentation see ordinary examples (each member's rows
    get their own augmentation draws)."""

    def call(self, x):
        return ops.reshape(x, _dims(x, [-1], 2))

    def compute_output_shape(self, shape):
        return (None,) + tuple(shape[2:])


@keras.saving.register_keras_serializable(package=_PACKAGE)
class UnfoldMembers(keras.layers.Layer):
    """`(batch * members, ...)` -> `(batch, members, ...)`."""

    def __init__(self, members, **kwargs):
        super().__init__(**kwargs)
        self.members = int(members)

    def call(self, x):
        return ops.reshape(x, _dims(x, [-1, self.members], 1))

    def compute_output_shape(self, shape):
        return (None, self.members) + tuple(shape[1:])

    def get_config(self):
        return {**super().get_config(), "members": self.members}


def _vectorized_map(fn, elements):
    """`keras.ops.vectorized_map`; on TensorFlow without its while-loop
    fallback, so an op pfor cannot vectorize is an error (the fused path
    then stacks the members instead) rather than a silent loop."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.vectorized_map(fn, elements, fallback_to_while_loop=False)
    return ops.vectorized_map(fn, elements)


def _stacked_initializer(values):
    array = np.stack(values)

    def initializer(shape, dtype=None):
        return ops.convert_to_tensor(array, dtype=dtype)

    return initializer


class VectorizedMembers(keras.layers.Layer):
    """Members of one architecture as one layer, for training.

    Every variable of the members is stacked along a leading member axis
    (`(members, *shape)`, initialized from each member's own values), and the
    forward pass is the first member's `stateless_call` vectorized over that
    axis (`jax.vmap`, TensorFlow's pfor, `torch.vmap` through
    `keras.ops.vectorized_map`): one kernel per layer for all members. Input
    and output are `(batch, members, ...)`: member `i` reads `x[:, i]`.
    Non-trainable state (BatchNormalization statistics, each member's seed
    for dropout) is stacked and updated too. `write_members()` copies the
    stacked values back into the member models.

    Args:
        members: List of built `keras.Model` of one architecture.
    """

    def __init__(self, members, **kwargs):
        super().__init__(**kwargs)
        members = list(members)
        # Not tracked as sublayers: their variables are copied, not trained.
        self.__dict__["_member_models"] = members
        self.members = len(members)
        template = members[0]

        def stacked(kind, trainable):
            made = []
            for j, variable in enumerate(getattr(template, kind)):
                values = [ops.convert_to_numpy(getattr(m, kind)[j]) for m in members]
                name = (variable.path or variable.name).replace("/", "__")
                made.append(self.add_weight(
                    shape=(len(members),) + tuple(variable.shape), dtype=variable.dtype,
                    initializer=_stacked_initializer(values), trainable=trainable, name=name))
            return made

        self._stacked_trainable = stacked("trainable_variables", True)
        self._stacked_state = stacked("non_trainable_variables", False)

    def call(self, x, training=None):
        template = self._member_models[0]

        def one_member(args):
            trainable, state, xi = args
            out, new_state = template.stateless_call(trainable, state, xi, training=training)
            return out, new_state

        elements = ([v.value for v in self._stacked_trainable],
                    [v.value for v in self._stacked_state], ops.moveaxis(x, 1, 0))
        out, new_state = _vectorized_map(one_member, elements)
        for variable, value in zip(self._stacked_state, new_state):
            variable.assign(value)
        return keras.tree.map_structure(lambda o: ops.moveaxis(o, 0, 1), out)

    def compute_output_spec(self, x, training=None):
        member_x = keras.KerasTensor((x.shape[0],) + tuple(x.shape[2:]), x.dtype)
        out = self._member_models[0].compute_output_spec(member_x)
        return keras.tree.map_structure(
            lambda o: keras.KerasTensor((o.shape[0], self.members) + tuple(o.shape[1:]), o.dtype),
            out)

    def write_members(self):
        """Copies the trained stacked values into the member models."""
        pairs = [(self._stacked_trainable, "trainable_variables"),
                 (self._stacked_state, "non_trainable_variables")]
        for stacked, kind in pairs:
            for j, variable in enumerate(stacked):
                value = ops.convert_to_numpy(variable)
                for i, member in enumerate(self._member_models):
                    getattr(member, kind)[j].assign(value[i])


def stack_members(members, input_shape, per_member=False):
    """A functional model whose output stacks the members': (batch, n, ...).

    With `per_member=True` its input is `(batch, n, *input_shape)` and
    member `i` reads `x[:, i]` (its own batch); else all read one batch."""
    _unique_names(members)
    n = len(members)
    inputs = keras.Input(((n,) if per_member else ()) + tuple(input_shape))
    outs = []
    for i, member in enumerate(members):
        out = member(MemberSlice(i, name=f"member_{i}_share")(inputs) if per_member else inputs)
        outs.append(keras.layers.Reshape((1,) + tuple(out.shape[1:]))(out))
    stacked = keras.layers.Concatenate(axis=1)(outs) if len(outs) > 1 else outs[0]
    return keras.Model(inputs, stacked, name="stacked_members")


def architecture_signature(model):
    """The model's layers, in order, with their configs minus names and
    seeds: equal for models that differ only in names and weights.
    (Layer configs, not the model's: a functional config refers to layers by
    name, and a build function names them differently on every call.)"""
    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in ("name", "seed")}
        if isinstance(value, (list, tuple)):
            return [strip(v) for v in value]
        return value

    try:
        return repr([(type(layer).__name__, strip(layer.get_config()))
                     for layer in walk_layers(model) if layer is not model])
    except NotImplementedError:
        return None


class EnsembleResult:
    """What `fit_ensemble` returns.

    Attributes:
        model: The `AveragingEnsemble` (preprocessing included: raw inputs in).
        members: The trained member models (raw inputs in).
        member_histories: One history dict per member.
        path: "fused" (one compiled program) or "sequential", and `reason`
            (for "fused": vectorized or stacked, and why).
        table: Rows of the validation metric: each member, the ensemble, and
            the ensemble of the first k members for k = 1..N.
        fit_result: The underlying `FitResult` (fused path) or list of them.
    """

    def __init__(self, model, members, member_histories, path, reason, metric_name,
                 member_scores, prefix_scores, fit_result):
        self.model = model
        self.members = members
        self.member_histories = member_histories
        self.path = path
        self.reason = reason
        self.metric_name = metric_name
        self.member_scores = member_scores
        self.prefix_scores = prefix_scores
        self.ensemble_score = prefix_scores[-1]
        self.fit_result = fit_result

    @property
    def table(self):
        rows = [(f"member {i}", s) for i, s in enumerate(self.member_scores)]
        rows.append(("ensemble", self.ensemble_score))
        rows += [(f"first {k} members", s) for k, s in enumerate(self.prefix_scores, 1)]
        return rows

    def __str__(self):
        lines = [f"fit_ensemble: {len(self.members)} members, {self.path} path ({self.reason})",
                 f"validation {self.metric_name}:"]
        lines += [f"  {name:20} {score:.4f}" for name, score in self.table]
        return "\n".join(lines)

    def plot(self):
        """The marginal-gain curve: the ensemble of the first k members."""
        import matplotlib

        matplotlib.use(matplotlib.get_backend())
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5, 3.4))
        ks = np.arange(1, len(self.prefix_scores) + 1)
        ax.plot(ks, self.prefix_scores, "o-", label="ensemble of first k")
        ax.scatter(np.arange(1, len(self.member_scores) + 1), self.member_scores, color="0.6",
                   s=12, label="member k alone")
        ax.set(xlabel="members k", ylabel=f"validation {self.metric_name}",
               title="marginal gain of each member")
        ax.legend()
        fig.tight_layout()
        return fig


def _member_probabilities(members, activations, x, kind):
    """Member predictions on x, as the ensemble would average them."""
    preds = []
    for member, activation in zip(members, activations):
        out = np.asarray(member.predict(x, verbose=0, batch_size=1024), "float64")
        if kind == "mean":
            preds.append(out)
            continue
        single = out.shape[-1] == 1
        if activation not in ("softmax", "sigmoid"):
            if single:
                out = 1 / (1 + np.exp(-out))
            else:
                out = np.exp(out - out.max(-1, keepdims=True))
                out /= out.sum(-1, keepdims=True)
        preds.append(out)
    return np.stack(preds)


def _score(prob, y, kind):
    """Accuracy for classification, R^2 for regression."""
    y = np.asarray(y)
    if kind == "mean":
        pred = prob.reshape(len(y), -1)[:, 0]
        y = y.reshape(len(y), -1)[:, 0].astype("float64")
        return float(1 - ((y - pred) ** 2).sum() / max(((y - y.mean()) ** 2).sum(), 1e-12))
    if prob.shape[-1] == 1:
        pred = (prob[:, 0] > 0.5).astype(int)
    else:
        pred = prob.argmax(-1)
    if y.ndim > 1 and y.shape[-1] > 1:
        y = y.argmax(-1)
    return float((pred == y.reshape(-1)).mean())


def evaluate_members(members, x, y, average):
    """Validation scores: each member, and the ensemble of the first k."""
    kind = "mean" if average == "mean" else "probabilities"
    activations = [output_activation(m) for m in members]
    preds = _member_probabilities(members, activations, x, kind)
    member_scores = [_score(p, y, kind) for p in preds]
    prefix = [_score(preds[:k].mean(axis=0), y, kind) for k in range(1, len(members) + 1)]
    return ("R^2" if kind == "mean" else "accuracy"), member_scores, prefix


def fit_ensemble(build_model, data, members=10, *, vectorize="auto", fused=True,
                 **fit_kwargs):
    """Trains `members` models from `build_model` and averages them (tip 12).

    Members differ by seed: `seed + i` sets each one's initialization, its
    dropout and augmentation draws, and its data order. When `build_model`
    returns the same architecture every time, the members train together as
    one compiled program (one step updates all members, each with its own
    optimizer state, its own batches and, when gradients are clipped, its own
    global norm), as a vectorized model (weights stacked along a member
    axis, one kernel per layer) where the backend and device make that
    faster, else side by side (stacked). Otherwise they train in turn. The
    tips table and `result.reason` say which path ran and why.

    Example:

    ```python
    def build():
        return keras.Sequential([keras.Input((64,)),
                                 keras.layers.Dense(64, activation="relu"),
                                 keras.layers.Dense(10)])

    result = fit_ensemble(build, "digits", members=10)
    print(result)            # member, ensemble and first-k validation accuracy
    result.plot()            # the marginal-gain curve
    result.model.save("ensemble.keras")
    ```

    Args:
        build_model: Callable returning a new (uncompiled or compiled)
            `keras.Model`.
        data: As for `fit_with_tips`.
        members: Integer >= 1. Defaults to `10`.
        vectorize: "auto" (by backend and device, see BUILD_NOTES.md), True
            (an error when the members cannot be vectorized) or False
            (stacked). Defaults to `"auto"`.
        fused: False trains the members in turn, as independent runs.
            Defaults to `True`.
        **fit_kwargs: Passed to `fit_with_tips` (`seed`, `epochs`,
            `strategy`, ...). Under a `strategy` the members are built in its
            scope and each training step is split over its replicas.

    Returns:
        An `EnsembleResult`.
    """
    from keras_recipes.fit import fit_with_tips
    from keras_recipes.plan import plan

    if not callable(build_model) or isinstance(build_model, keras.Model):
        raise TypeError("`build_model` must be a function returning a new keras.Model. "
                        f"Received: build_model={build_model!r}")
    if isinstance(members, bool) or not isinstance(members, (int, np.integer)) or members < 1:
        raise ValueError(f"`members` must be an integer >= 1. Received: members={members!r}")
    if "ensemble" in fit_kwargs:
        raise TypeError("Pass the number of members as `members`. Received: ensemble=...")
    if not any(vectorize is v for v in VECTORIZE):
        raise ValueError(f"`vectorize` must be one of {VECTORIZE}. Received: vectorize={vectorize!r}")
    if fused not in (True, False) or not isinstance(fused, bool):
        raise ValueError(f"`fused` must be True or False. Received: fused={fused!r}")
    seed = fit_kwargs.pop("seed", None)
    base_seed = 0 if seed is None else int(seed)
    # Members are built under the strategy's scope (no clone needed) and
    # then train data-parallel over its replicas.
    from keras_recipes import distribute

    strategy = distribute.resolve(fit_kwargs.get("strategy"))
    distribute.check_outside_scope(strategy)
    if fit_kwargs.get("strategy") is not None:
        fit_kwargs["strategy"] = strategy
    models = []
    for i in range(members):
        keras.utils.set_random_seed(base_seed + i)
        with distribute.Scope(strategy):
            model = build_model()
        if not isinstance(model, keras.Model):
            raise TypeError(f"`build_model` must return a keras.Model. Received: {type(model).__name__}")
        models.append(model)
    signatures = {architecture_signature(m) for m in models}
    same = len(signatures) == 1 and None not in signatures
    if same and members > 1 and fused is not False:
        fused = FusedMembers(models, vectorize=vectorize)
        return plan(models[0], data, seed=base_seed, **fit_kwargs).with_members(fused).fit().ensemble
    if not same:
        reason = "build_model returned different architectures"
    elif members == 1:
        reason = "one member"
    else:
        reason = "fused=False"
    results = []
    for i, model in enumerate(models):
        # One validation split for all (so the table compares like with
        # like); initialization, data order and dropout differ by member.
        results.append(fit_with_tips(model, data, seed=base_seed + i, split_seed=base_seed,
                                     **fit_kwargs))
    trained = [r.model for r in results]
    average = "mean" if results[0].data.labels.kind == "continuous" else "probabilities"
    ensemble = AveragingEnsemble(trained, average=average, name="averaging_ensemble")
    x_val, y_val = results[0].data.validation_arrays()
    metric, member_scores, prefix = evaluate_members(trained, x_val, y_val, average)
    return EnsembleResult(ensemble, trained, [r.history for r in results], "sequential",
                          reason, metric, member_scores, prefix, results)


VECTORIZE = ("auto", True, False)


class MemberBestWeights(keras.callbacks.Callback):
    """Fused members: each member's weights from its own best epoch (its
    `val_member_i_loss`), as its own run's ReduceLROnPlateau would restore
    them; the plateau rule's restore (by the members' summed loss) runs
    first, this one after it. State and arrays go into checkpoints.

    Args:
        fused: The `FusedMembers` being trained.
    """

    def __init__(self, fused):
        super().__init__()
        self.fused = fused
        size = fused.size
        self.best = [None] * size
        self.best_epoch = [None] * size
        self.weights = [None] * size

    def _read(self, i):
        vectorized = self.fused.vectorized
        if vectorized is not None:
            return [ops.convert_to_numpy(v)[i] for v in vectorized.variables]
        return [ops.convert_to_numpy(v) for v in self.fused.members[i].variables]

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        improved = []
        for i in range(self.fused.size):
            value = logs.get(f"val_member_{i}_loss")
            if value is None or not np.isfinite(float(value)):
                continue
            if self.best[i] is None or float(value) < self.best[i]:
                self.best[i], self.best_epoch[i] = float(value), int(epoch)
                improved.append(i)
        vectorized = self.fused.vectorized
        if vectorized is not None and improved:
            stacked = [ops.convert_to_numpy(v) for v in vectorized.variables]
            for i in improved:
                self.weights[i] = [a[i].copy() for a in stacked]
        else:
            for i in improved:
                self.weights[i] = self._read(i)

    def on_train_end(self, logs=None):
        if all(w is None for w in self.weights):
            return
        vectorized = self.fused.vectorized
        if vectorized is not None:
            for j, variable in enumerate(vectorized.variables):
                value = ops.convert_to_numpy(variable).copy()
                for i, weights in enumerate(self.weights):
                    if weights is not None:
                        value[i] = weights[j]
                variable.assign(value)
            return
        for member, weights in zip(self.fused.members, self.weights):
            if weights is not None:
                for variable, value in zip(member.variables, weights):
                    variable.assign(value)

    def event(self):
        """The line for the result's events, or None."""
        if all(e is None for e in self.best_epoch):
            return None
        epochs = ", ".join("-" if e is None else str(e + 1) for e in self.best_epoch)
        return f"each member restored from its own best epoch (by val_member_i_loss): {epochs}"

    def get_state(self):
        return {"best": self.best, "best_epoch": self.best_epoch,
                "counts": [None if w is None else len(w) for w in self.weights]}

    def arrays(self):
        return [a for w in self.weights if w is not None for a in w]

    def set_state(self, state, arrays):
        self.best, self.best_epoch = list(state["best"]), list(state["best_epoch"])
        arrays, self.weights = list(arrays or []), []
        for count in state["counts"]:
            self.weights.append(None if count is None else arrays[:count])
            arrays = arrays[count or 0:]


def _not_vectorizable(members):
    """Why the members cannot train as one vectorized layer, or None."""
    template = members[0]
    if len(template.inputs or []) > 1 if hasattr(template, "inputs") else False:
        return "the members take several inputs"
    for layer in walk_layers(template):
        for attr in ("kernel_regularizer", "bias_regularizer", "recurrent_regularizer",
                     "embeddings_regularizer"):
            if getattr(layer, attr, None) is not None:
                return (f"{type(layer).__name__} {layer.name!r} has a {attr} (it would read "
                        "the first member's weights)")
        if any(getattr(v, "overwrite_with_gradient", False) for v in layer.variables):
            return f"{type(layer).__name__} {layer.name!r} has overwrite_with_gradient variables"
    return None


def _conv_layers(members):
    return [layer.name for layer in walk_layers(members[0])
            if "Conv" in type(layer).__name__]


def _vectorize_rule(members, jit):
    """(vectorize?, why) by backend, device and layers, from
    benchmarks/bench_vectorize_step.py and bench_ensemble.py (BUILD_NOTES.md,
    issue 17); the vectorized layer is then checked by a compiled step."""
    backend = keras.backend.backend()
    convs, recurrent = _conv_layers(members), recurrent_layers(members[0])
    if backend == "tensorflow" and convs:
        return False, ("TensorFlow's pfor cannot vectorize a convolution whose filter differs "
                       "per member")
    if backend == "tensorflow" and recurrent:
        return False, ("TensorFlow with recurrent layers: stacked measured faster without XLA, "
                       "and pfor's loop does not compile with XLA")
    if backend == "torch" and convs:
        return False, ("torch with conv layers: torch.vmap through Keras' convolution did not "
                       "build here")
    if backend == "jax" and convs and not _accelerator_present():
        return False, ("JAX on CPU with conv layers: XLA's CPU grouped convolution measured "
                       "far slower than stacked members")
    return True, {"tensorflow": "TensorFlow: pfor" + (", with XLA" if jit else ""),
                  "jax": "JAX: jax.vmap", "torch": "torch: torch.vmap"}.get(backend, backend)


def _accelerator_present():
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return jax.default_backend() != "cpu"
    if backend == "torch":
        import torch

        return torch.cuda.is_available()
    import tensorflow as tf

    return bool(tf.config.list_logical_devices("GPU") + tf.config.list_logical_devices("TPU"))


@contextlib.contextmanager
def _quiet_pfor():
    """TensorFlow's pfor logs every op it cannot convert at ERROR level; the
    failure is reported once, in the tips table."""
    if keras.backend.backend() != "tensorflow":
        yield
        return
    import tensorflow as tf

    logger = tf.get_logger()
    level = logger.level
    logger.setLevel("CRITICAL")
    try:
        yield
    finally:
        logger.setLevel(level)


def _first_words(error, limit=120):
    """The telling part of an error, on one line."""
    text = " ".join(re.sub(r"\x1b\[[0-9;]*m", "", str(error)).split())
    if "user code: " in text:  # Keras' wrapper around the layer's own error
        text = text[text.index("user code: ") + len("user code: "):]
    text = re.sub(r"^Exception encountered when calling [\w.]+\(\)\. ", "", text)
    text = text.split(" Arguments received by ")[0]
    for marker in ("No registered", "Detected unsupported operations", "not supported"):
        if marker in text:
            text = text[text.index(marker):]
            break
    name = type(error).__name__
    return (text if text.startswith(name) else f"{name}: {text}")[:limit]


class FusedMembers:
    """Tip 12, fused: members of one architecture trained as one compiled
    program, each scored by its own mean loss on its own batches (its own
    data order); one step updates all of them, clipping (when on) each by
    its own global norm. `plan.with_members(FusedMembers(models))` trains
    them, vectorized (`VectorizedMembers`: stacked weights, one kernel per
    layer) where that measured faster and the members allow it, else as
    members side by side in one functional model (stacked).

    Args:
        members: The member models (one architecture).
        vectorize: "auto" (a rule by backend and device), True or False.
    """

    def __init__(self, members, vectorize="auto"):
        self.members = list(members)
        if not any(vectorize is v for v in VECTORIZE):
            raise ValueError(f"`vectorize` must be one of {VECTORIZE}. Received: vectorize={vectorize!r}")
        self.vectorize = vectorize
        self.path, self.why = "stacked", "not decided yet"
        self.vectorized = None

    @property
    def size(self):
        return len(self.members)

    def shuffle_seeds(self, shuffle_seed):
        """Member i shuffles with `shuffle_seed + i`: the orders of the
        sequential path's member i (its run with seed `seed + i`)."""
        return [int(shuffle_seed) + i for i in range(self.size)]

    def choose(self, jit, features_shape, dtype, strategy=None):
        """Decides vectorized or stacked (before the training model is built)."""
        _unique_names(self.members)
        if self.vectorize is False:
            self.path, self.why = "stacked", "vectorize=False"
            return
        wanted, why = (True, "vectorize=True") if self.vectorize is True else _vectorize_rule(
            self.members, jit)
        if strategy is not None and self.vectorize == "auto":
            wanted, why = False, ("under a tf.distribute strategy: the stacked members (the "
                                  "vectorized layer is not tested across replicas)")
        blocker = _not_vectorizable(self.members)
        if wanted and blocker is None:
            layer, blocker = self._try_vectorized(features_shape, dtype, jit)
            if layer is not None:
                self.vectorized, self.path, self.why = layer, "vectorized", why
                return
        if self.vectorize is True and blocker is not None:
            raise ValueError(f"vectorize=True, but the members cannot be vectorized: {blocker}. "
                             "Received: vectorize=True")
        self.path = "stacked"
        self.why = why if not wanted else f"not vectorizable: {blocker}"

    def _try_vectorized(self, shape, dtype, jit):
        """A `VectorizedMembers`, checked by a compiled training step (as the
        fit will compile it: with XLA when `jit`) on a small batch, with
        every variable restored; or (None, why not)."""
        for member in self.members:
            if not member.built:
                member(keras.Input(tuple(shape)))
        try:
            with _quiet_pfor():
                layer = self._probe_vectorized(shape, dtype, jit)
        except Exception as error:  # noqa: BLE001 - any failure means: stack instead
            return None, _first_words(error)
        return layer, None

    def _probe_vectorized(self, shape, dtype, jit):
        layer = VectorizedMembers(self.members, name="vectorized_members")
        saved = [ops.convert_to_numpy(v) for v in layer.variables]
        inputs = keras.Input((self.size,) + tuple(shape), dtype=dtype)
        probe = keras.Model(inputs, layer(inputs))
        probe.compile(keras.optimizers.SGD(0.0), "mse", jit_compile=bool(jit))
        x = np.zeros((2, self.size) + tuple(shape), dtype)
        probe.train_on_batch(x, np.zeros((2,) + tuple(probe.output.shape[1:]), "float32"))
        probe.predict_on_batch(x)
        for variable, value in zip(layer.variables, saved):
            variable.assign(value)
        return layer

    def output(self, features):
        """The stacked output `(batch, members, ...)` of features `(batch, members, ...)`."""
        if self.vectorized is not None:
            return self.vectorized(features)
        return stack_members(self.members, tuple(features.shape[2:]), per_member=True)(features)

    def loss(self, member_loss):
        return MemberwiseLoss(member_loss, stacked_targets=True)

    def metrics(self, member_loss):
        return [MemberLoss(member_loss, i, stacked_targets=True) for i in range(self.size)]

    def configure(self, optimizer):
        """Per-member clipping on our ClippedOptimizer (inside a loss-scale one too)."""
        from keras_recipes.optimizers import ClippedOptimizer

        inner = optimizer
        while not isinstance(inner, ClippedOptimizer) and hasattr(inner, "inner_optimizer"):
            inner = inner.inner_optimizer
        if isinstance(inner, ClippedOptimizer):
            if self.vectorized is not None:
                inner.clip_per_member(self.size, stacked=self.vectorized.trainable_variables)
            else:
                inner.clip_per_member(self.size, groups=[m.trainable_variables for m in self.members])
        return optimizer

    def tip(self, shuffle=True, seeds=None):
        from keras_recipes.result import Tip

        how = ("vectorized: weights stacked on a member axis, one kernel per layer"
               if self.path == "vectorized" else "stacked: the members side by side")
        order = (f"each member its own data order (shuffle seeds {seeds[0]}..{seeds[-1]})"
                 if shuffle and seeds else "every member the same order (shuffle=False)")
        return Tip(12, "ensemble", f"{self.size} members as one compiled program, {self.path}",
                   f"{how} ({self.why}); {order}; own optimizer state, clipping per member",
                   "fit_ensemble(members=, vectorize=)")

    def assemble(self, parts, result):
        if self.vectorized is not None:
            self.vectorized.write_members()
        return assemble_fused(self.members, parts, result, self.path)


def assemble_fused(members, parts, result, path="stacked"):
    """After a fused fit: the raw-input ensemble and members, and the table.

    Args:
        members: The trained member models (preprocessed inputs in).
        parts: The plan's parts (`pre_layers`, `target`, ...).
        result: The `FitResult` of the fused fit.
        path: "stacked" or "vectorized", for the result's reason.
    """
    average = "mean" if result.data.labels.kind == "continuous" else "probabilities"
    target = parts["target"]
    raw = keras.Input(tuple(result.data.x_shape), name="raw_input")
    features = raw
    for layer in parts["pre_layers"]:
        features = layer(features)

    def raw_model(output, name):
        if target is not None:
            output = keras.layers.Rescaling(scale=[float(v) for v in target[1]],
                                            offset=[float(v) for v in target[0]])(output)
        return keras.Model(raw, output, name=name)

    ensemble = AveragingEnsemble(members, average=average, name="averaging_ensemble")
    model = raw_model(ensemble(features), "ensemble_with_tips")
    member_models = [raw_model(m(features), f"{m.name}_with_tips") for m in members]
    history = result.history
    member_histories = []
    for i in range(len(members)):
        h = {"loss": history.get(f"member_{i}_loss", []),
             "val_loss": history.get(f"val_member_{i}_loss", [])}
        if "learning_rate" in history:
            h["learning_rate"] = history["learning_rate"]
        member_histories.append(h)
    x_val, y_val = result.data.validation_arrays()
    if target is not None:
        y_val = y_val * target[1].reshape(y_val.shape[1:]) + target[0].reshape(y_val.shape[1:])
    metric, member_scores, prefix = evaluate_members(member_models, x_val, y_val, average)
    how = ("vectorized: stacked weights, one kernel per layer" if path == "vectorized"
           else "stacked: members side by side")
    return EnsembleResult(model, member_models, member_histories, "fused",
                          f"same architecture: one compiled program updates every member ({how})",
                          metric, member_scores, prefix, result)
