"""`AveragingEnsemble`: a `keras.Model` averaging its members' predictions
(tip 12), saved and loaded as one `.keras` file."""

import keras
from keras import ops

from keras_recipes.modelinfo import output_activation

_PACKAGE = "keras_recipes"  # part of the saved-file format: never rename it
AVERAGES = ("probabilities", "logits", "geometric", "mean")
_EPS = 1e-7


def unique_names(members):
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
        unique_names(members)
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
