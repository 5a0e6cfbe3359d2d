"""Tip 8: check gradients numerically, in float64, without false alarms at
kinks; and check that a model does not mix examples of a batch."""

import dataclasses

import keras
import numpy as np

from keras_recipes.modelinfo import walk_layers

# The one-sided slopes of a smooth function differ by about f'' * h; a jump
# larger than this fraction of the slope marks a kink (ReLU, abs, max).
KINK_TOLERANCE = 1e-2
KINK_FLOOR = 1e-9


@dataclasses.dataclass
class GradientRow:
    """One variable's (or the input's) worst checked entry."""

    name: str
    checked: int
    kinks_skipped: int
    max_relative_error: float
    worst_index: tuple
    autodiff: float
    numerical: float


class GradientCheckReport:
    """What `check_gradients` found.

    Attributes:
        ok: True when every checked entry agrees within `tolerance`.
        max_relative_error: The largest relative error over all entries.
        rows: One `GradientRow` per variable (and one for the input).
        dtype: The dtype the check ran in ("float64", or "float32" with the
            reason in `note` when the model could not be cloned in float64).
    """

    def __init__(self, rows, tolerance, dtype, note=""):
        self.rows = rows
        self.tolerance = tolerance
        self.dtype = dtype
        self.note = note
        errors = [r.max_relative_error for r in rows if r.checked]
        self.max_relative_error = max(errors) if errors else 0.0
        self.ok = bool(errors) and bool(self.max_relative_error <= tolerance)

    def __bool__(self):
        return self.ok

    def __str__(self):
        head = (f"gradient check ({self.dtype}): {'OK' if self.ok else 'FAILED'}, max relative "
                f"error {self.max_relative_error:.2e} (tolerance {self.tolerance:.0e})")
        lines = [head] + ([self.note] if self.note else [])
        lines.append(f"{'variable':40} {'checked':>7} {'kinks':>5} {'max rel err':>11} "
                     f"{'autodiff':>12} {'numerical':>12}")
        for r in self.rows:
            lines.append(f"{r.name[:40]:40} {r.checked:7d} {r.kinks_skipped:5d} "
                         f"{r.max_relative_error:11.2e} {r.autodiff:12.5g} {r.numerical:12.5g}")
        return "\n".join(lines)


def _float64_clone(model):
    """The model rebuilt with every layer in float64, weights copied."""
    def retype(value):
        if isinstance(value, dict):
            out = {}
            for k, v in value.items():
                if k == "dtype" and "float" in str(v):
                    out[k] = "float64"
                else:
                    out[k] = retype(v)
            return out
        if isinstance(value, list):
            return [retype(v) for v in value]
        return value

    config = keras.saving.serialize_keras_object(model)
    # The model's own classes resolve its layers, registered or not (a layer
    # defined in a notebook or a script is usually not registered).
    own = {type(layer).__name__: type(layer) for layer in walk_layers(model)}
    with keras.saving.custom_object_scope(own):
        clone = keras.saving.deserialize_keras_object(retype(config))
    if not clone.built:
        clone.build(model.inputs[0].shape if getattr(model, "inputs", None) else None)
    clone.set_weights([np.asarray(w, "float64") if np.asarray(w).dtype.kind == "f" else w
                       for w in model.get_weights()])
    return clone


class _Function:
    """f(params, x) -> scalar and its autodiff gradient, per backend."""

    def __init__(self, model, x, y, loss, projection):
        self.model = model
        self.x = x
        self.y = y
        self.loss = loss
        self.projection = projection
        self.backend = keras.backend.backend()

    def _scalar(self, output):
        if self.loss is not None:
            return self.loss(self.y, output)
        return keras.ops.sum(keras.ops.cast(output, self.projection.dtype) * self.projection)

    def value(self, x=None):
        out = self.model(self.x if x is None else x, training=False)
        return float(keras.ops.convert_to_numpy(self._scalar(out)))

    def gradients(self):
        """(grads of trainable variables, grad of the input) as numpy."""
        variables = self.model.trainable_variables
        if self.backend == "tensorflow":
            import tensorflow as tf

            x = tf.convert_to_tensor(self.x)
            with tf.GradientTape() as tape:
                tape.watch(x)
                value = self._scalar(self.model(x, training=False))
            grads = tape.gradient(value, [v.value for v in variables] + [x])
        elif self.backend == "jax":
            import jax

            non_trainable = [v.value for v in self.model.non_trainable_variables]

            def f(params, x):
                out, _ = self.model.stateless_call(params, non_trainable, x, training=False)
                return self._scalar(out)

            g_params, g_x = jax.grad(f, argnums=(0, 1))([v.value for v in variables],
                                                       keras.ops.convert_to_tensor(self.x))
            grads = list(g_params) + [g_x]
        elif self.backend == "torch":
            import torch

            x = keras.ops.convert_to_tensor(self.x)
            differentiable = torch.is_floating_point(x)
            if differentiable:
                x = x.detach().requires_grad_(True)
            value = self._scalar(self.model(x, training=False))
            targets = [v.value for v in variables] + ([x] if differentiable else [])
            grads = list(torch.autograd.grad(value, targets, allow_unused=True))
            if not differentiable:
                grads.append(None)
        else:
            raise ValueError("check_gradients supports the tensorflow, jax and torch backends. "
                             f"Received: backend={self.backend!r}")
        return [None if g is None else np.asarray(keras.ops.convert_to_numpy(g), "float64")
                for g in grads]


def _central(f_plus, f_minus, f_zero, h):
    """Central difference, and whether the one-sided slopes jump (a kink)."""
    right = (f_plus - f_zero) / h
    left = (f_zero - f_minus) / h
    central = (f_plus - f_minus) / (2 * h)
    kink = abs(right - left) > KINK_TOLERANCE * max(abs(right), abs(left)) + KINK_FLOOR
    return central, kink


def _relative(a, n, floor):
    return abs(a - n) / max(abs(a), abs(n), floor)


def check_gradients(model, x, y=None, loss=None, num_params=200, seed=None, tolerance=1e-5,
                    epsilon=1e-6, check_inputs=True):
    """Compares autodiff gradients with central differences in float64.

    Tip 8: hand-written gradients (custom layers, `keras.ops.custom_gradient`,
    custom losses) must be checked numerically. The model is cloned in float64
    (weights copied), a random sample of `num_params` parameter entries (and
    input entries) is perturbed by `+-epsilon`, and the central difference of
    the loss (or, without a loss, of a fixed random projection of the output)
    is compared with the autodiff gradient. A perturbation that crosses a kink
    (ReLU, abs, max: the two one-sided slopes differ) is detected and another
    entry is drawn instead, so kinks raise no false alarm.

    Example:

    ```python
    report = check_gradients(model, x[:16], y[:16],
                             loss=keras.losses.SparseCategoricalCrossentropy())
    print(report)
    assert report.ok
    ```

    Args:
        model: A built `keras.Model` (or layer-based model) with one input.
        x: A small batch of inputs (numpy).
        y: Targets for `loss`, or `None`.
        loss: A Keras loss (or callable `loss(y, y_pred)`), or `None` to
            differentiate a random projection of the output.
        num_params: Integer >= 1. Parameter entries to check. Defaults to 200.
        seed: Integer or `None`, for the sample and the projection.
        tolerance: Float. Largest acceptable relative error. Defaults to 1e-5.
        epsilon: Float. Perturbation size (scaled by max(1, |value|)).
        check_inputs: Boolean. Also check up to `num_params // 4` input
            entries (float inputs only). Defaults to `True`.

    Returns:
        A `GradientCheckReport`.
    """
    return _check_gradients(model, x, y, loss, num_params, seed, tolerance, epsilon, check_inputs)


def _checked_arguments(model, x, y, loss, num_params):
    """(x, loss), refused before any work when unusable; a Keras loss is
    rebuilt to compute in float64."""
    if not isinstance(model, keras.Model):
        raise TypeError(f"`model` must be a keras.Model. Received: model={model!r}")
    if isinstance(num_params, bool) or not isinstance(num_params, (int, np.integer)) or num_params < 1:
        raise ValueError(f"`num_params` must be an integer >= 1. Received: num_params={num_params!r}")
    x = np.asarray(x)
    if x.dtype.kind not in "biuf" or x.ndim == 0 or len(x) == 0:
        raise ValueError(f"`x` must be a non-empty numeric batch. Received: x of dtype {x.dtype} "
                         f"and shape {x.shape}")
    if loss is not None and y is None:
        raise ValueError("`loss` needs targets `y`. Received: y=None")
    if loss is not None and isinstance(loss, str):
        loss = keras.losses.get(loss)
    if isinstance(loss, keras.losses.Loss):
        # Keras losses compute in float32 by default, which would quantize
        # the differences; the check needs the loss in float64 too.
        try:
            loss = type(loss).from_config({**loss.get_config(), "dtype": "float64"})
        except (TypeError, ValueError):
            pass
    return x, loss


def _checked_model(model, x, tolerance, epsilon):
    """(model, x, dtype, note, tolerance, epsilon): a float64 clone where
    the backend computes float64, else the model itself in float32 with a
    looser tolerance, and why."""
    try:
        if keras.backend.backend() != "tensorflow":
            # keras.backend.result_type maps float64 to float32 on JAX and
            # torch (to match JAX's default), so Keras' matmul there computes a
            # float64 model in float32.
            raise TypeError(f"Keras computes float64 as float32 on {keras.backend.backend()}")
        return (_float64_clone(model), x.astype("float64") if x.dtype.kind == "f" else x,
                "float64", "", tolerance, epsilon)
    except Exception as error:  # also subclassed models without a config
        reason = str(error) if isinstance(error, TypeError) and "float32 on" in str(error) else (
            f"the model could not be cloned in float64 ({type(error).__name__})")
        return (model, x, "float32", f"note: {reason}; checked in float32 with a looser tolerance",
                max(tolerance, 1e-2), max(epsilon, 1e-3))


class _Sampler:
    """Checks `count` smooth entries of one value against central
    differences; `evaluate(index, delta)` gives f with that entry moved."""

    def __init__(self, rng, f0, epsilon, floor):
        self.rng, self.f0, self.epsilon, self.floor = rng, f0, epsilon, floor

    def check(self, name, value, grad, count, evaluate):
        worst = (0.0, (), 0.0, 0.0)
        checked = kinks = tries = 0
        while checked < count and tries < count * 5:
            tries += 1
            index = tuple(int(self.rng.integers(0, d)) for d in value.shape)
            h = self.epsilon * max(1.0, abs(value[index]))
            numerical, kink = _central(evaluate(index, h), evaluate(index, -h), self.f0, h)
            if kink:
                kinks += 1
                continue
            checked += 1
            err = _relative(grad[index], numerical, self.floor)
            if err >= worst[0]:
                worst = (err, index, float(grad[index]), float(numerical))
        return GradientRow(name, checked, kinks, *worst)


def _perturb_variable(f, variable, value):
    def evaluate(index, delta):
        shifted = value.copy()
        shifted[index] += delta
        variable.assign(shifted.astype(variable.dtype))
        result = f.value()
        variable.assign(value.astype(variable.dtype))
        return result

    return evaluate


def _perturb_input(f, x):
    def evaluate(index, delta):
        shifted = x.copy()
        shifted[index] += delta
        return f.value(shifted)

    return evaluate


def _check_gradients(model, x, y, loss, num_params, seed, tolerance, epsilon, check_inputs):
    x, loss = _checked_arguments(model, x, y, loss, num_params)
    rng = np.random.default_rng(seed)
    checked_model, x, dtype, note, tolerance, epsilon = _checked_model(model, x, tolerance,
                                                                       epsilon)
    out = np.asarray(keras.ops.convert_to_numpy(checked_model(x[:1], training=False)))
    projection = rng.normal(size=(len(x),) + out.shape[1:]) / np.sqrt(out.size)
    f = _Function(checked_model, x, None if y is None else np.asarray(y), loss,
                  keras.ops.convert_to_tensor(projection, dtype))
    grads = f.gradients()
    variables = checked_model.trainable_variables
    f0 = f.value()
    # Gradients at the level of the differences' round-off noise
    # (~eps * |f| / h) cannot be judged relatively: below this floor the
    # error is measured against the floor instead.
    machine_eps = float(np.finfo(dtype).eps)
    sampler = _Sampler(rng, f0, epsilon,
                       max(1e-7, 2 * machine_eps * max(1.0, abs(f0)) / (epsilon * tolerance)))
    sizes = np.array([int(np.prod(v.shape)) for v in variables], dtype=float)
    counts = np.zeros(len(variables), int)
    if len(variables):
        # Spread the sample over variables in proportion to size, at least one each.
        counts = np.maximum(1, np.round(num_params * sizes / sizes.sum()).astype(int))
    rows = []
    for variable, grad, count in zip(variables, grads[:-1], counts):
        if grad is None:
            rows.append(GradientRow(variable.path, 0, 0, 0.0, (), 0.0, 0.0))
            continue
        # A copy: on torch, convert_to_numpy shares the variable's memory,
        # which `assign` overwrites.
        value = np.array(keras.ops.convert_to_numpy(variable), "float64", copy=True)
        rows.append(sampler.check(variable.path, value, grad, count,
                                  _perturb_variable(f, variable, value)))
    if check_inputs and x.dtype.kind == "f" and grads[-1] is not None:
        rows.append(sampler.check("input", x, grads[-1], max(1, num_params // 4),
                                  _perturb_input(f, x)))
    return GradientCheckReport(rows, tolerance, dtype, note)


@dataclasses.dataclass
class BatchIndependenceReport:
    """What `check_batch_independence` found.

    Attributes:
        ok: True when no example's output depends on another's input.
        leaks: List of `(i, j, size)`: output of example i moved with the
            input of example j (i != j) by a gradient of this size, relative
            to i's own.
    """

    ok: bool
    leaks: list
    checked: int

    def __bool__(self):
        return self.ok

    def __str__(self):
        if self.ok:
            return f"batch independence: OK ({self.checked} examples checked)"
        pairs = ", ".join(f"out[{i}] <- in[{j}] ({s:.2e})" for i, j, s in self.leaks[:5])
        return f"batch independence: FAILED, examples mix: {pairs}"


def check_batch_independence(model, x, examples=4, training=False, tolerance=1e-6):
    """Checks that example i's output does not depend on example j's input.

    The gradient of the sum of example i's outputs with respect to the whole
    input batch must be zero on every other example. Layers that mix the batch
    (batch statistics in training mode, a reduction over the batch axis, a
    reshape across it) fail this check.

    Example:

    ```python
    assert check_batch_independence(model, x[:8]).ok
    ```

    Args:
        model: A `keras.Model`.
        x: A batch of at least 2 inputs.
        examples: Integer. How many examples i to check. Defaults to 4.
        training: Boolean. Run the model in training mode. Defaults to False.
        tolerance: Float. Relative gradient size that counts as a leak.

    Returns:
        A `BatchIndependenceReport`.
    """
    x = np.asarray(x, "float32")
    if x.ndim == 0 or len(x) < 2:
        raise ValueError("`x` must be a batch of at least 2 examples. "
                         f"Received: x of shape {x.shape}")
    backend = keras.backend.backend()
    leaks = []
    n = min(int(examples), len(x))
    for i in range(n):
        if backend == "tensorflow":
            import tensorflow as tf

            xt = tf.convert_to_tensor(x)
            with tf.GradientTape() as tape:
                tape.watch(xt)
                out = model(xt, training=training)
                target = tf.reduce_sum(out[i])
            g = tape.gradient(target, xt)
        elif backend == "jax":
            import jax

            trainable = [v.value for v in model.trainable_variables]
            non_trainable = [v.value for v in model.non_trainable_variables]

            def f(xv, i=i):
                # Stateless: a layer that updates state in training
                # (BatchNormalization) must not leak tracers into it.
                out, _ = model.stateless_call(trainable, non_trainable, xv, training=training)
                return keras.ops.sum(out[i])

            g = jax.grad(f)(keras.ops.convert_to_tensor(x))
        elif backend == "torch":
            import torch

            xt = keras.ops.convert_to_tensor(x).detach().requires_grad_(True)
            out = model(xt, training=training)
            g = torch.autograd.grad(keras.ops.sum(out[i]), xt)[0]
        else:
            raise ValueError(f"Unsupported backend. Received: backend={backend!r}")
        g = np.abs(np.asarray(keras.ops.convert_to_numpy(g))).reshape(len(x), -1).max(axis=1)
        own = max(g[i], 1e-30)
        for j in range(len(x)):
            if j != i and g[j] > tolerance * own:
                leaks.append((i, j, float(g[j] / own)))
    return BatchIndependenceReport(not leaks, leaks, n)
