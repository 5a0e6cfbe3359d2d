"""`FusedMembers`: same-architecture members trained as one compiled
program, stacked side by side or vectorized (the rule and its fallback
named), and the averaging ensemble assembled from them afterwards."""

import contextlib
import re

import keras
import numpy as np
from keras import ops

from keras_recipes import sharding
from keras_recipes.ensemble.averaging import AveragingEnsemble
from keras_recipes.ensemble.averaging import unique_names
from keras_recipes.ensemble.member_losses import MemberLoss
from keras_recipes.ensemble.member_losses import MemberwiseLoss
from keras_recipes.ensemble.result import EnsembleResult
from keras_recipes.ensemble.result import evaluate_members
from keras_recipes.ensemble.vectorized import VectorizedMembers
from keras_recipes.ensemble.vectorized import stack_members
from keras_recipes.modelinfo import recurrent_layers
from keras_recipes.modelinfo import walk_layers
from keras_recipes.optimizers import ClippedOptimizer
from keras_recipes.result import Tip

VECTORIZE = ("auto", True, False)


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
        unique_names(self.members)
        if self.vectorize is False:
            self.path, self.why = "stacked", "vectorize=False"
            return
        wanted, why = (True, "vectorize=True") if self.vectorize is True else _vectorize_rule(
            self.members, jit)
        if strategy is not None and self.vectorize == "auto":
            kind = ("keras.distribution" if sharding.is_distribution(strategy)
                    else "a tf.distribute strategy")
            wanted, why = False, (f"under {kind}: the stacked members (the vectorized layer is "
                                  "not tested across devices)")
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
        how = ("vectorized: weights stacked on a member axis, one kernel per layer"
               if self.path == "vectorized" else "stacked: the members side by side")
        order = (f"each member its own data order (shuffle seeds {seeds[0]}..{seeds[-1]})"
                 if shuffle and seeds else "every member the same order (shuffle=False)")
        return Tip(12, "ensemble", f"{self.size} members as one compiled program, {self.path}",
                   f"{how} ({self.why}); {order}; own optimizer state, clipping per member",
                   "fit_ensemble(members=, vectorize=)")

    def assemble(self, decided, result):
        if self.vectorized is not None:
            self.vectorized.write_members()
        return assemble_fused(self.members, decided, result, self.path)


def assemble_fused(members, decided, result, path="stacked"):
    """After a fused fit: the raw-input ensemble and members, and the table.

    Args:
        members: The trained member models (preprocessed inputs in).
        decided: The plan's `Decisions` (`pre_layers`, `target`, ...).
        result: The `FitResult` of the fused fit.
        path: "stacked" or "vectorized", for the result's reason.
    """
    average = "mean" if result.data.labels.kind == "continuous" else "probabilities"
    target = decided.target
    raw = keras.Input(tuple(result.data.x_shape), name="raw_input")
    features = raw
    for layer in decided.pre_layers:
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
