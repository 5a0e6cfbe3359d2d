import keras
import numpy as np
import pytest

from helpers import (config_round_trip, fit_keeps_xla, save_load_same_outputs,
                     serialized_round_trip, tiny_classifier, tiny_data)
from keras_recipes.optimizers import ClippedOptimizer


def _apply_once(optimizer, weights, grads):
    variables = [keras.Variable(w) for w in weights]
    grads = [keras.ops.convert_to_tensor(g) for g in grads]
    if keras.backend.backend() == "jax":
        # The JAX trainer's path: stateless_apply, then write the state back.
        optimizer.build(variables)
        new_vars, new_opt = optimizer.stateless_apply(
            [v.value for v in optimizer.variables], grads, [v.value for v in variables])
        for v, value in zip(list(variables) + optimizer.variables, list(new_vars) + list(new_opt)):
            v.assign(value)
    else:
        optimizer.apply(grads, variables)
    return [keras.ops.convert_to_numpy(v) for v in variables]


def _numpy_global_clip(grads, max_norm):
    norm = np.sqrt(sum(float(np.sum(g.astype("float64") ** 2)) for g in grads))
    scale = min(1.0, max_norm / norm)
    return [g * scale for g in grads], norm


@pytest.mark.parametrize("max_norm", [0.5, 3.0, 100.0])
def test_update_equals_numpy_global_norm_clip(rng, max_norm):
    weights = [rng.normal(size=(4, 3)).astype("float32"), rng.normal(size=(3,)).astype("float32")]
    grads = [rng.normal(size=(4, 3)).astype("float32") * 2, rng.normal(size=(3,)).astype("float32")]
    opt = ClippedOptimizer(keras.optimizers.SGD(learning_rate=0.5), max_norm=max_norm)
    new = _apply_once(opt, weights, grads)
    clipped, norm = _numpy_global_clip(grads, max_norm)
    for w, g, n in zip(weights, clipped, new):
        np.testing.assert_allclose(n, w - 0.5 * g, rtol=1e-5, atol=1e-6)
    stats = opt.read_stats()
    np.testing.assert_allclose(stats["grad_norm"], norm, rtol=1e-5)
    assert stats["clip_fraction"] == (1.0 if norm > max_norm else 0.0)
    # The update/weight ratio of tip 5, against numpy.
    dw = np.sqrt(sum(np.sum((0.5 * g) ** 2) for g in clipped))
    w_norm = np.sqrt(sum(np.sum(w.astype("float64") ** 2) for w in weights))
    np.testing.assert_allclose(stats["update_ratio"], dw / w_norm, rtol=1e-4)


def test_max_norm_none_records_without_clipping(rng):
    weights = [rng.normal(size=(5,)).astype("float32")]
    grads = [np.full((5,), 100.0, "float32")]
    opt = ClippedOptimizer(keras.optimizers.SGD(learning_rate=1.0), max_norm=None)
    new = _apply_once(opt, weights, grads)
    np.testing.assert_allclose(new[0], weights[0] - 100.0, rtol=1e-6)
    assert opt.read_stats()["clip_fraction"] == 0.0


def test_works_under_loss_scale_optimizer_unscale_then_clip(rng):
    weights = [rng.normal(size=(6,)).astype("float32")]
    grads = [rng.normal(size=(6,)).astype("float32") * 10]
    scale = 1024.0
    opt = keras.optimizers.LossScaleOptimizer(
        ClippedOptimizer(keras.optimizers.SGD(learning_rate=1.0), max_norm=1.0),
        initial_scale=scale,
    )
    new = _apply_once(opt, weights, [g * scale for g in grads])
    clipped, norm = _numpy_global_clip(grads, 1.0)
    np.testing.assert_allclose(new[0], weights[0] - clipped[0], rtol=1e-5)
    np.testing.assert_allclose(opt.inner_optimizer.read_stats()["grad_norm"], norm, rtol=1e-5)


def test_grad_norm_recorded_in_fit_equals_gradient_of_mean_loss():
    x, y = tiny_data(n=64)
    model = tiny_classifier()
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            value = loss(y, model(x))
        grads = tape.gradient(value, model.trainable_variables)
    else:
        import jax

        def f(params):
            out, _ = model.stateless_call(params, [v.value for v in model.non_trainable_variables], x)
            return loss(y, out)

        grads = jax.grad(f)([v.value for v in model.trainable_variables])
    expected = np.sqrt(sum(np.sum(np.asarray(g, "float64") ** 2) for g in grads))
    opt = ClippedOptimizer(keras.optimizers.SGD(0.1), max_norm=None)
    model.compile(opt, loss, jit_compile=True)
    fit_keeps_xla(model, x, y, batch_size=64, epochs=1, shuffle=False)
    np.testing.assert_allclose(opt.read_stats()["grad_norm"], expected, rtol=1e-4)


def test_learning_rate_and_iterations_pass_through():
    inner = keras.optimizers.SGD(0.1)
    opt = ClippedOptimizer(inner)
    opt.learning_rate = 0.05
    assert float(keras.ops.convert_to_numpy(inner.learning_rate)) == pytest.approx(0.05)
    assert opt.iterations is inner.iterations


def test_keras_plateau_callback_drives_wrapped_lr():
    x, y = tiny_data(n=64)
    model = tiny_classifier()
    opt = ClippedOptimizer(keras.optimizers.SGD(0.1))
    model.compile(opt, keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  jit_compile=True)
    # min_delta huge: after the first epoch every epoch is a plateau.
    cb = keras.callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=1, min_delta=1e9)
    fit_keeps_xla(model, x, y, epochs=3, callbacks=[cb])
    assert float(keras.ops.convert_to_numpy(opt.learning_rate)) == pytest.approx(0.025)


def test_config_round_trip_nests_inner_optimizer():
    opt = ClippedOptimizer(keras.optimizers.Adam(0.003), max_norm=15.0, track_update_ratio=False)
    clone = config_round_trip(opt)
    assert isinstance(clone.inner_optimizer, keras.optimizers.Adam)
    assert clone.max_norm == 15.0 and clone.track_update_ratio is False
    serialized_round_trip(opt)


def test_keras_file_round_trip_keeps_state_and_trains_on(tmp_path):
    x, y = tiny_data()
    model = tiny_classifier()
    model.compile(ClippedOptimizer(keras.optimizers.SGD(0.1, momentum=0.9), max_norm=2.0),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  jit_compile=True)
    fit_keeps_xla(model, x, y, epochs=2)
    loaded = save_load_same_outputs(model, x, tmp_path / "m.keras")
    assert isinstance(loaded.optimizer, ClippedOptimizer)
    assert loaded.optimizer.max_norm == 2.0
    assert int(keras.ops.convert_to_numpy(loaded.optimizer.iterations)) == int(
        keras.ops.convert_to_numpy(model.optimizer.iterations))
    # Momentum buffers came back, so one more step matches the original's.
    model.fit(x, y, epochs=1, shuffle=False, verbose=0)
    loaded.fit(x, y, epochs=1, shuffle=False, verbose=0)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0),
                               atol=1e-5)


@pytest.mark.parametrize(
    "make,error,match",
    [
        (lambda: ClippedOptimizer(keras.optimizers.SGD(), max_norm=0.0), ValueError, "Received: max_norm=0.0"),
        (lambda: ClippedOptimizer(keras.optimizers.SGD(), max_norm=-5), ValueError, "Received: max_norm=-5"),
        (lambda: ClippedOptimizer(keras.optimizers.SGD(), max_norm=float("inf")), ValueError, "Received: max_norm=inf"),
        (lambda: ClippedOptimizer(keras.optimizers.SGD(), max_norm="5"), TypeError, "Received: max_norm='5'"),
        (lambda: ClippedOptimizer("sgd"), TypeError, "Received: optimizer='sgd'"),
        (lambda: ClippedOptimizer(keras.optimizers.SGD(clipnorm=1.0)), ValueError, "Received: clipnorm=1.0"),
        (lambda: ClippedOptimizer(keras.optimizers.SGD(global_clipnorm=1.0)), ValueError, "Received: global_clipnorm=1.0"),
        (lambda: ClippedOptimizer(keras.optimizers.SGD(clipvalue=1.0)), ValueError, "Received: clipvalue=1.0"),
        (lambda: ClippedOptimizer(ClippedOptimizer(keras.optimizers.SGD())), ValueError, "already a ClippedOptimizer"),
        (lambda: ClippedOptimizer(keras.optimizers.SGD(), track_update_ratio="yes"), TypeError, "Received: track_update_ratio='yes'"),
        (lambda: ClippedOptimizer(keras.optimizers.SGD(), weight_decay=0.1), ValueError, "Received: weight_decay=0.1"),
    ],
)
def test_bad_arguments_rejected(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_clips_the_aggregated_gradient_under_mirrored_strategy():
    """Two logical CPUs: the recorded pre-clip norm equals the single-device
    norm on the same global batch (clipping per replica would not), and the
    weights after three clipped steps match."""
    if keras.backend.backend() != "tensorflow":
        pytest.skip("tf.distribute is TensorFlow's")
    import json
    import os
    import subprocess
    import sys

    script = os.path.join(os.path.dirname(__file__), "distributed_clip_check.py")
    proc = subprocess.run([sys.executable, script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    single, mirrored = result["single"], result["mirrored"]
    assert single["clip_fraction"] == 1.0  # the check exercises clipping
    np.testing.assert_allclose(mirrored["grad_norm"], single["grad_norm"], rtol=1e-5)
    assert result["max_weight_diff"] < 1e-5


# -- Keras' compositions (issue 15): ClippedOptimizer(opt, max_norm) trains
# exactly as opt with global_clipnorm=max_norm, however it is nested ----------

SGD = keras.optimizers.SGD
LSO = keras.optimizers.LossScaleOptimizer


def _train(optimizer, steps=6, dtype_policy=None):
    """A linear model, fixed data and start, a few train_on_batch steps."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 5)).astype("float32") * 3
    y = rng.normal(size=(40, 2)).astype("float32") * 10
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(2)])
    model.set_weights([rng.normal(size=(5, 2)).astype("float32"), np.zeros(2, "float32")])
    model.compile(optimizer, "mse")
    for i in range(steps):
        model.train_on_batch(x[i * 4:i * 4 + 12], y[i * 4:i * 4 + 12])
    return model.get_weights()


def _same(a, b):
    for u, v in zip(a, b):
        np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("make", [
    lambda: ClippedOptimizer(SGD(0.1, loss_scale_factor=128.0), max_norm=1.0),
    lambda: LSO(ClippedOptimizer(SGD(0.1), max_norm=1.0)),
    lambda: LSO(ClippedOptimizer(SGD(0.1, loss_scale_factor=100.0), max_norm=1.0)),
    lambda: ClippedOptimizer(LSO(SGD(0.1)), max_norm=1.0),
    lambda: ClippedOptimizer(LSO(SGD(0.1), initial_scale=2.0**5, dynamic_growth_steps=2),
                             max_norm=1.0),
], ids=["inner_factor", "lso_outside", "lso_outside_inner_factor", "lso_inside",
        "lso_inside_dynamic"])
def test_loss_scaling_clips_the_unscaled_gradient(make):
    reference = _train(SGD(0.1, global_clipnorm=1.0))
    _same(_train(make()), reference)


def test_overflowing_loss_scale_skips_the_step_like_keras():
    # A scale so large that the scaled gradient overflows float32: Keras'
    # LossScaleOptimizer skips those steps and halves the scale.
    keras_way = LSO(SGD(0.1, global_clipnorm=1.0), initial_scale=2.0**127)
    ours = ClippedOptimizer(LSO(SGD(0.1), initial_scale=2.0**127), max_norm=1.0)
    _same(_train(ours), _train(keras_way))
    assert float(ours.inner_optimizer.dynamic_scale) == float(keras_way.dynamic_scale)


def test_gradient_accumulation_steps_reads_through_to_the_inner_optimizer():
    """Issue 37: Keras' trainers and callbacks read it on the optimizer they
    hold; the wrapper read None while the inner optimizer accumulated."""
    ours = ClippedOptimizer(SGD(0.1, gradient_accumulation_steps=3), max_norm=1.0)
    assert ours.gradient_accumulation_steps == 3
    assert ClippedOptimizer(SGD(0.1)).gradient_accumulation_steps is None
    with pytest.raises(ValueError, match="before wrapping it.*Received: gradient_accumulation_steps=2"):
        ours.gradient_accumulation_steps = 2
    # The wrapper builds no accumulators of its own (the inner one has them).
    ours.build([keras.Variable(np.zeros((2, 2), "float32"))])
    assert not hasattr(ours, "_accumulated_gradients")
    assert len(ours.inner_optimizer._accumulated_gradients) == 1


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_gradient_accumulation_clips_the_accumulated_mean(momentum):
    keras_way = SGD(0.1, momentum=momentum, global_clipnorm=1.0, gradient_accumulation_steps=3)
    ours = ClippedOptimizer(SGD(0.1, momentum=momentum, gradient_accumulation_steps=3),
                            max_norm=1.0)
    _same(_train(ours), _train(keras_way))
    # Two update steps in six micro-batches: the statistics count those.
    assert ours.read_stats()["steps"] == 2


def test_no_clipping_gives_the_inner_optimizer():
    _same(_train(ClippedOptimizer(keras.optimizers.Adam(0.01), max_norm=None)),
          _train(keras.optimizers.Adam(0.01)))


def test_overwrite_with_gradient_variables_are_left_out_of_the_norm(rng):
    weights = [rng.normal(size=(4,)).astype("float32"), rng.normal(size=(3,)).astype("float32")]
    grads = [rng.normal(size=(4,)).astype("float32") * 5, rng.normal(size=(3,)).astype("float32") * 50]

    def apply(optimizer):
        variables = [keras.Variable(w) for w in weights]
        variables[1].overwrite_with_gradient = True
        optimizer.build(variables)
        if keras.backend.backend() == "jax":
            new_vars, new_opt = optimizer.stateless_apply(
                [v.value for v in optimizer.variables],
                [keras.ops.convert_to_tensor(g) for g in grads], [v.value for v in variables])
            for v, value in zip(optimizer.variables, new_opt):
                v.assign(value)
            return [keras.ops.convert_to_numpy(v) for v in new_vars]
        optimizer.apply([keras.ops.convert_to_tensor(g) for g in grads], variables)
        return [keras.ops.convert_to_numpy(v) for v in variables]

    ours = ClippedOptimizer(SGD(0.5), max_norm=1.0)
    got = apply(ours)
    _same(got, apply(SGD(0.5, global_clipnorm=1.0)))
    np.testing.assert_allclose(got[1], grads[1])  # overwritten with its gradient
    np.testing.assert_allclose(ours.read_stats()["grad_norm"], np.linalg.norm(grads[0]), rtol=1e-5)


def test_multi_optimizer_inside_clips_globally_and_drives_plateau_callbacks():
    if not hasattr(keras.optimizers, "MultiOptimizer"):
        pytest.skip("keras.optimizers.MultiOptimizer is new in Keras 3.13")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 5)).astype("float32") * 3
    y = rng.normal(size=(16, 2)).astype("float32") * 10
    start = [rng.normal(size=(5, 2)).astype("float32"), np.zeros(2, "float32")]

    def select(variable):
        return kernel_opt if "kernel" in variable.path else bias_opt

    kernel_opt, bias_opt = SGD(0.1), SGD(0.01)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(2)])
    model.set_weights(start)
    model.compile(ClippedOptimizer(keras.optimizers.MultiOptimizer(select), max_norm=1.0), "mse")
    model.fit(x, y, batch_size=16, epochs=2, verbose=0, validation_data=(x, y),
              callbacks=[keras.callbacks.ReduceLROnPlateau(patience=0, min_delta=1e9)])
    # By hand: the global norm over both variables, each with its own rate.
    w, b = start
    for lr_kernel, lr_bias in ((0.1, 0.01), (0.1, 0.01)):
        err = x @ w + b - y
        gw, gb = 2 * x.T @ err / err.size, 2 * err.sum(0) / err.size
        scale = min(1.0, 1.0 / np.sqrt((gw**2).sum() + (gb**2).sum()))
        w, b = w - lr_kernel * scale * gw, b - lr_bias * scale * gb
    _same(model.get_weights(), [w, b])
    # Keras' ReduceLROnPlateau reduced each sub-optimizer through the wrapper.
    assert np.isclose(float(keras.ops.convert_to_numpy(kernel_opt.learning_rate)), 0.01)
    assert np.isclose(float(keras.ops.convert_to_numpy(bias_opt.learning_rate)), 0.001)


def test_a_probe_through_one_fit_reads_the_ratio_of_its_second_half_as_train_on_batch_does():
    """The calibration's probe runs its steps through one `fit` and zeroes the
    statistics between the halves from a callback: on JAX, where `fit` carries
    the state between steps, the zeroing must reach the next step. The ratio
    equals the one `train_on_batch` step by step reads (steps 5-8 of 8)."""
    from keras_recipes.calibration import probe_update_ratio
    from keras_recipes.data.batches import Listed  # the array path's fit_input

    x, y = tiny_data()
    batches = [(x[i:i + 16], y[i:i + 16]) for i in range(0, 64, 16)]

    def measured(fit_input):
        keras.utils.set_random_seed(0)
        model = tiny_classifier()
        model.compile(ClippedOptimizer(keras.optimizers.SGD(0.05, momentum=0.9), max_norm=None),
                      keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        return probe_update_ratio(model, batches, steps=8, fit_input=fit_input)

    by_fit, by_batch = measured(Listed), measured(None)
    assert by_fit[0] > 0 and np.isfinite(by_fit[0])
    np.testing.assert_allclose(by_fit, by_batch, rtol=1e-5)
