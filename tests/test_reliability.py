"""Issue 7 (in part): a matrix of bad calls across the public API, each
rejected with ValueError/TypeError naming what was received (never a raw
backend error), and property tests of the layers' shapes and dtypes."""

import keras
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import keras_recipes as kr
from keras_recipes.audio import NoiseBank, resample
from keras_recipes.callbacks import ReduceLROnPlateau, ScaledSchedule, UpdateRatioMonitor
from keras_recipes.initializers import ForgetGateBias, ScaledNormal, SmallNormal
from keras_recipes.layers import Log1p, NoiseMix, RandomShiftRotate
from keras_recipes.models import preset
from keras_recipes.optimizers import ClippedOptimizer

X = np.random.default_rng(0).normal(size=(40, 4)).astype("float32")
Y = (np.arange(40) % 3).astype("int64")


def mlp():
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])


SGD = keras.optimizers.SGD
BAD_NUMBERS = [0, -1, float("nan"), float("inf")]
BAD_TYPES = ["1", None, [1], object()]

CALLS = []
for name in ("stddev",):
    CALLS += [(f"SmallNormal({name}={v!r})", lambda v=v: SmallNormal(stddev=v)) for v in BAD_NUMBERS + BAD_TYPES[:1] + [True]]
CALLS += [(f"ScaledNormal(init_scale={v!r})", lambda v=v: ScaledNormal(init_scale=v)) for v in BAD_NUMBERS + ["1", True]]
CALLS += [(f"SmallNormal(seed={v!r})", lambda v=v: SmallNormal(seed=v)) for v in (1.5, "1", [1], True)]
CALLS += [(f"ForgetGateBias(value={v!r})", lambda v=v: ForgetGateBias(value=v)) for v in (float("nan"), float("inf"), "1", None, True)]
CALLS += [(f"ForgetGateBias()(shape={s})", lambda s=s: ForgetGateBias()(s)) for s in ((5,), (4, 4), (0,), (2, 4, 4))]
CALLS += [(f"ClippedOptimizer(max_norm={v!r})", lambda v=v: ClippedOptimizer(SGD(), max_norm=v)) for v in BAD_NUMBERS + ["5", True]]
CALLS += [(f"ClippedOptimizer({v!r})", lambda v=v: ClippedOptimizer(v)) for v in ("sgd", None, 0.1, SGD)]
CALLS += [(f"ClippedOptimizer(SGD({k}=1))", lambda k=k: ClippedOptimizer(SGD(**{k: 1.0}))) for k in ("clipnorm", "global_clipnorm", "clipvalue")]
CALLS += [("ClippedOptimizer(track_update_ratio=1)", lambda: ClippedOptimizer(SGD(), track_update_ratio=1))]
CALLS += [(f"ReduceLROnPlateau(factor={v!r})", lambda v=v: ReduceLROnPlateau(factor=v)) for v in (0, 1, 1.5, -0.5, "0.5", float("nan"))]
CALLS += [(f"ReduceLROnPlateau(stop_ratio={v!r})", lambda v=v: ReduceLROnPlateau(stop_ratio=v)) for v in (0, 1, 2.0, "0.1")]
CALLS += [(f"ReduceLROnPlateau(patience={v!r})", lambda v=v: ReduceLROnPlateau(patience=v)) for v in (-1, 1.5, "3")]
CALLS += [(f"ReduceLROnPlateau(cooldown={v!r})", lambda v=v: ReduceLROnPlateau(cooldown=v)) for v in (-2, 0.5)]
CALLS += [(f"ReduceLROnPlateau(mode={v!r})", lambda v=v: ReduceLROnPlateau(mode=v)) for v in ("up", None)]
CALLS += [(f"ReduceLROnPlateau(monitor={v!r})", lambda v=v: ReduceLROnPlateau(monitor=v)) for v in ("", None, 3)]
CALLS += [(f"ReduceLROnPlateau(min_lr={v!r})", lambda v=v: ReduceLROnPlateau(min_lr=v)) for v in (-1.0, "0")]
CALLS += [("ReduceLROnPlateau.fifth(factor=0.5)", lambda: ReduceLROnPlateau.fifth(factor=0.5))]
CALLS += [(f"UpdateRatioMonitor(target={v!r})", lambda v=v: UpdateRatioMonitor(target=v)) for v in (0, -1e-3, float("inf"), "x", 1.0)]
CALLS += [("ScaledSchedule(0.1)", lambda: ScaledSchedule(0.1))]
CALLS += [(f"RandomShiftRotate(max_shift={v!r})", lambda v=v: RandomShiftRotate(max_shift=v)) for v in (-0.1, 1.0, 2, "0.1", float("nan"))]
CALLS += [(f"RandomShiftRotate(max_degrees={v!r})", lambda v=v: RandomShiftRotate(max_degrees=v)) for v in (-1, 181, "10")]
CALLS += [(f"RandomShiftRotate({k}={v!r})", lambda k=k, v=v: RandomShiftRotate(**{k: v}))
          for k, v in (("fill_mode", "mirror"), ("interpolation", "cubic"), ("data_format", "NHWC"), ("seed", 1.5))]
CALLS += [(f"RandomShiftRotate()(rank {r})", lambda r=r: RandomShiftRotate()(np.zeros((2,) * r, "float32"), training=True)) for r in (1, 2, 5)]
CALLS += [(f"NoiseMix(snr_db={v!r})", lambda v=v: NoiseMix(snr_db=v)) for v in ((10, 0), "x", (1, 2, 3), (float("nan"), 1))]
CALLS += [(f"NoiseMix(rate={v!r})", lambda v=v: NoiseMix(rate=v)) for v in (-0.1, 1.1, "1", float("nan"))]
CALLS += [(f"NoiseMix(colors={v!r})", lambda v=v: NoiseMix(colors=v)) for v in (("red",), ("white", "blue"))]
CALLS += [("NoiseMix(noise=None, colors=())", lambda: NoiseMix(noise=None, colors=())),
          ("NoiseMix(noise=[])", lambda: NoiseMix(noise=[])),
          ("NoiseMix(seed='x')", lambda: NoiseMix(seed="x"))]
CALLS += [(f"NoiseMix()(rank {r})", lambda r=r: NoiseMix()(np.zeros((2,) * r, "float32"), training=True)) for r in (1, 4)]
CALLS += [(f"NoiseBank({c!r}, {r!r})", lambda c=c, r=r: NoiseBank(c, r))
          for c, r in (([], 8000), ([np.ones(4)], 0), ([np.ones(4)], 8000.5), ([np.zeros((2, 2))], 8000),
                       ([np.array([np.nan])], 8000), ([np.array([])], 8000))]
CALLS += [(f"resample(rates {a}, {b})", lambda a=a, b=b: resample(np.ones(100), a, b)) for a, b in ((0, 8000), (8000, -1), ("8k", 8000))]
CALLS += [(f"Log1p(features={v!r})", lambda v=v: Log1p(features=v)) for v in (3, "a", [-1], [1, 1])]
CALLS += [("Log1p([5]) on 4 features", lambda: Log1p(features=[5])(np.ones((2, 4), "float32")))]
CALLS += [(f"preset({n!r})", lambda n=n: preset(n, (4,), 3)) for n in ("resnet", None)]
CALLS += [("preset('cnn', (5,))", lambda: preset("cnn", (5,), 3))]
CALLS += [(f"fit_with_tips(data={d!r})", lambda d=d: kr.fit_with_tips(mlp(), d, verbose=0))
          for d in (None, 3, [1, 2, 3], {"x": X}, (X,), "no_such_dataset_abc")]
CALLS += [(f"fit_with_tips({k}={v!r})", lambda k=k, v=v: kr.fit_with_tips(mlp(), (X, Y), **{"verbose": 0, k: v}))
          for k, v in (("epochs", 0), ("epochs", 1.5), ("batch_size", 0), ("batch_size", "128"),
                       ("validation_split", 0.0), ("validation_split", 1.0), ("jit_compile", "yes"),
                       ("verbose", 3), ("clip_norm", 0), ("clip_norm", "5"), ("learning_rate", -0.1),
                       ("learning_rate", "0.1"), ("patience", 0), ("callbacks", ["cb"]),
                       ("augment", "video"), ("augment", "image"), ("noise_bank", "bank"))]
CALLS += [(f"fit_with_tips(bad arrays {i})", lambda d=d: kr.fit_with_tips(mlp(), d, verbose=0))
          for i, d in enumerate(((X[:0], Y[:0]), (X, Y[:5]), (X.astype(str), Y), (X, Y.astype(str)),
                                 (np.where(X > 2, np.nan, X), Y), (X, Y + 3), (X, Y - 1),
                                 (np.where(X > 2, np.inf, X), Y)))]
CALLS += [("fit_with_tips(model='mlp')", lambda: kr.fit_with_tips("mlp", (X, Y), verbose=0))]
CALLS += [(f"AveragingEnsemble({m!r})", lambda m=m: kr.AveragingEnsemble(m)) for m in ([], "m", None, [mlp(), 3])]
CALLS += [("AveragingEnsemble(average='max')", lambda: kr.AveragingEnsemble([mlp()], average="max"))]
CALLS += [(f"fit_ensemble(members={v!r})", lambda v=v: kr.fit_ensemble(mlp, (X, Y), members=v)) for v in (0, -1, 2.5, "3")]
CALLS += [("fit_ensemble(build_model=model)", lambda: kr.fit_ensemble(mlp(), (X, Y)))]
CALLS += [("check_gradients(model='m')", lambda: kr.check_gradients("m", X)),
          ("check_gradients(num_params=0)", lambda: kr.check_gradients(mlp(), X, num_params=0)),
          ("check_gradients(loss, y=None)", lambda: kr.check_gradients(mlp(), X, loss="mse")),
          ("check_gradients(x=strings)", lambda: kr.check_gradients(mlp(), np.array(["a", "b"]))),
          ("check_batch_independence(1 example)", lambda: kr.check_batch_independence(mlp(), X[:1])),
          ("audit(model='m')", lambda: kr.audit("m", (X, Y)))]


def test_matrix_holds_at_least_100_calls():
    assert len(CALLS) >= 100, len(CALLS)


@pytest.mark.parametrize("label,call", CALLS, ids=[c[0] for c in CALLS])
def test_bad_call_rejected_with_a_clear_message(label, call):
    with pytest.raises((ValueError, TypeError)) as info:
        call()
    message = str(info.value)
    assert "Received" in message, f"{label}: {message[:300]}"
    # A raw backend error would carry TensorFlow's or JAX's own vocabulary.
    assert "tensorflow/core" not in message and "Traceback" not in message


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=st.integers(1, 3), height=st.integers(1, 9), width=st.integers(1, 9),
       channels=st.integers(1, 4), dtype=st.sampled_from(["float32", "float16", "uint8", "int32"]),
       fill_mode=st.sampled_from(["reflect", "wrap", "nearest", "constant"]))
def test_random_shift_rotate_shapes_and_dtypes(batch, height, width, channels, dtype, fill_mode):
    x = (np.random.default_rng(0).uniform(0, 100, (batch, height, width, channels))).astype(dtype)
    layer = RandomShiftRotate(seed=0, fill_mode=fill_mode)
    out = keras.ops.convert_to_numpy(layer(x, training=True))
    # Integer images keep their dtype; float inputs are autocast to the
    # layer's compute dtype, as every Keras layer does.
    expected = x.dtype if x.dtype.kind in "iu" else np.dtype(layer.compute_dtype)
    assert out.shape == x.shape and out.dtype == expected
    assert np.isfinite(out.astype("float64")).all()
    # Values stay within the input's range (bilinear weights are convex).
    assert out.astype("float64").min() >= min(x.min(), 0) - 1e-2
    assert out.astype("float64").max() <= x.max() + 1e-2


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=st.integers(1, 4), length=st.integers(1, 300), channels=st.sampled_from([None, 1, 2]),
       dtype=st.sampled_from(["float32", "float16"]), scale=st.sampled_from([0.0, 1e-6, 1.0, 1e3]))
def test_noise_mix_shapes_dtypes_and_finiteness(batch, length, channels, dtype, scale):
    shape = (batch, length) if channels is None else (batch, length, channels)
    x = (np.random.default_rng(1).normal(size=shape) * scale).astype(dtype)
    bank = NoiseBank([np.random.default_rng(2).normal(size=17).astype("float32")], 8000)
    layer = NoiseMix(noise=bank, seed=0)
    out = keras.ops.convert_to_numpy(layer(x, training=True))
    assert out.shape == x.shape and out.dtype == np.dtype(layer.compute_dtype)
    assert np.isfinite(out.astype("float64")).all()
    if scale == 0.0:
        np.testing.assert_array_equal(out, x.astype(out.dtype))  # silence stays silence


def _run_resume_check(mode, checkpoint_dir, output):
    import os
    import subprocess
    import sys

    script = os.path.join(os.path.dirname(__file__), "resume_check.py")
    return subprocess.run([sys.executable, script, mode, str(checkpoint_dir), str(output)],
                          capture_output=True, text=True, timeout=600)


def _load(output):
    import json

    with np.load(output) as arrays:
        weights = [arrays[f"arr_{i}"] for i in range(len(arrays.files))]
    with open(str(output) + ".json") as f:
        return weights, json.load(f)


@pytest.mark.slow
def test_killed_runs_resume_to_the_uninterrupted_result(tmp_path):
    """One run killed with SIGKILL three times in a row, each process started
    again on the same checkpoint folder: mid-checkpoint-write (after
    epoch 2), mid-epoch (epoch 3) and right after a checkpoint (as epoch 5
    begins). Each process resumes where the last checkpoint says, and the
    last ends with the uninterrupted run's history (LR drops included,
    dropout draws included) and weights."""
    if keras.backend.backend() != "tensorflow":
        pytest.skip("the data pipeline and its replayed shuffle are tf.data's")
    # The uninterrupted reference runs the same script's code in this process
    # (a process fewer to start); the chain runs it in fresh processes.
    from resume_check import main as run_here

    run_here("run", str(tmp_path / "ref"), str(tmp_path / "ref.npz"))
    ref_weights, ref_info = _load(tmp_path / "ref.npz")
    assert (tmp_path / "ref" / "final.keras").exists()
    assert min(ref_info["history"]["learning_rate"]) < 0.5  # the plateau rule acted
    folder = tmp_path / "chain"
    for mode, resumed_at in (("kill-mid-write", 0), ("kill-mid-epoch", 2),
                             ("kill-epoch-start", 3), ("run", 5)):
        out = tmp_path / f"{mode}.npz"
        proc = _run_resume_check(mode, folder, out)
        assert proc.returncode == (0 if mode == "run" else -9), proc.stderr[-3000:]
        assert int((tmp_path / f"{mode}.npz.started").read_text()) == resumed_at, mode
        if mode == "kill-mid-write":
            assert list(folder.glob(".tmp-*"))  # the half-written checkpoint
            assert sorted(p.name for p in folder.glob("epoch-*")) == ["epoch-00001"]
    weights, info = _load(tmp_path / "run.npz")
    assert info["resumed"], "the last run did not resume"
    assert set(info["history"]) == set(ref_info["history"])
    for key, values in ref_info["history"].items():
        np.testing.assert_allclose(info["history"][key], values, rtol=1e-5, atol=1e-7, err_msg=key)
    for a, b in zip(weights, ref_weights):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert keras.saving.load_model(folder / "final.keras") is not None


def test_damaged_or_foreign_checkpoint_gives_a_clear_error(tmp_path):
    kr.fit_with_tips(mlp(), (X, Y), epochs=1, seed=0, verbose=0, jit_compile=False,
                     checkpoint_dir=tmp_path / "a")
    weights = next((tmp_path / "a").glob("epoch-*")) / "arrays.npz"
    weights.write_bytes(weights.read_bytes()[:200])  # truncated
    with pytest.raises(ValueError, match="damaged.*Received: checkpoint_dir="):
        kr.fit_with_tips(mlp(), (X, Y), epochs=2, seed=0, verbose=0, jit_compile=False,
                         checkpoint_dir=tmp_path / "a")
    kr.fit_with_tips(mlp(), (X, Y), epochs=1, seed=0, verbose=0, jit_compile=False,
                     checkpoint_dir=tmp_path / "b")
    wider = keras.Sequential([keras.Input((4,)), keras.layers.Dense(7), keras.layers.Dense(3)])
    with pytest.raises(ValueError, match="holds a run with other model"):
        kr.fit_with_tips(wider, (X, Y), epochs=2, seed=0, verbose=0, jit_compile=False,
                         checkpoint_dir=tmp_path / "b")
    with pytest.raises(ValueError, match="is a file.*Received: checkpoint_dir="):
        kr.fit_with_tips(mlp(), (X, Y), epochs=1, verbose=0, checkpoint_dir=weights)


def test_truncated_keras_file_gives_a_clear_error_in_the_cli(tmp_path):
    import os
    import subprocess
    import sys

    model = mlp()
    model.save(tmp_path / "m.keras")
    data = (tmp_path / "m.keras").read_bytes()
    (tmp_path / "cut.keras").write_bytes(data[: len(data) // 2])
    np.savez(tmp_path / "d.npz", x=X, y=Y)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run([sys.executable, "-m", "keras_recipes", "audit", "--keras_file",
                           str(tmp_path / "cut.keras"), "--npz", str(tmp_path / "d.npz")],
                          cwd=root, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "Cannot load the model" in proc.stderr and "Received: --keras_file=" in proc.stderr
