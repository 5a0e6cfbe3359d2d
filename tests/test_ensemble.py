import keras
import numpy as np
import pytest

from helpers import save_load_same_outputs
from keras_recipes import AveragingEnsemble, fit_ensemble, fit_with_tips
from keras_recipes.datasets import load_digits


def _np(x):
    return keras.ops.convert_to_numpy(x)


def member(seed, activation=None, units=3, name="member"):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(units, activation=activation)],
                            name=name)


def softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


X = np.random.default_rng(0).normal(size=(16, 4)).astype("float32")


def test_output_is_numpy_mean_of_member_probabilities_and_logits_converted():
    members = [member(0), member(1, "softmax"), member(2)]
    ensemble = AveragingEnsemble(members)
    outs = [_np(m(X)) for m in members]
    probs = [softmax(outs[0]), outs[1], softmax(outs[2])]
    np.testing.assert_allclose(_np(ensemble(X)), np.mean(probs, axis=0), atol=1e-6)
    # One predict call runs every member.
    np.testing.assert_allclose(ensemble.predict(X, verbose=0), np.mean(probs, axis=0), atol=1e-6)


def test_logits_and_geometric_averages():
    members = [member(0), member(1)]
    outs = [_np(m(X)) for m in members]
    np.testing.assert_allclose(_np(AveragingEnsemble(members, average="logits")(X)),
                               np.mean(outs, axis=0), atol=1e-5)
    log_p = np.mean([np.log(softmax(o)) for o in outs], axis=0)
    np.testing.assert_allclose(_np(AveragingEnsemble(members, average="geometric")(X)),
                               softmax(log_p), atol=1e-5)
    mean = AveragingEnsemble([member(0, units=1), member(1, units=1)], average="mean")
    np.testing.assert_allclose(_np(mean(X)), np.mean([_np(m(X)) for m in mean.members], 0), atol=1e-6)


def test_duplicate_names_made_unique_and_keras_file_round_trip(tmp_path):
    members = [member(i, name="net") for i in range(3)]
    ensemble = AveragingEnsemble(members)
    assert len({m.name for m in ensemble.members}) == 3
    ensemble(X)
    loaded = save_load_same_outputs(ensemble, X, tmp_path / "ens.keras")
    assert isinstance(loaded, AveragingEnsemble) and len(loaded.members) == 3


def test_xla_kept_when_training_the_ensemble_model():
    ensemble = AveragingEnsemble([member(0), member(1)])
    ensemble.compile("sgd", "sparse_categorical_crossentropy", jit_compile=True)
    ensemble.fit(X, np.zeros(16, "int32"), epochs=1, verbose=0)
    assert ensemble.jit_compile is True


@pytest.mark.parametrize("make,error,match", [
    (lambda: AveragingEnsemble([]), ValueError, r"Received: members=\[\]"),
    (lambda: AveragingEnsemble(member(0)), TypeError, "Received: members=<Sequential"),
    (lambda: AveragingEnsemble([member(0), "x"]), TypeError, "Received: a member of type str"),
    (lambda: AveragingEnsemble([member(0), member(1, units=5)]), ValueError, r"Received: output shapes \[\(3,\), \(5,\)\]"),
    (lambda: AveragingEnsemble([member(0)], average="median"), ValueError, "Received: average='median'"),
    (lambda: fit_ensemble(lambda: member(0), (X, np.zeros(16)), members=0), ValueError, "Received: members=0"),
    (lambda: fit_ensemble(member(0), (X, np.zeros(16)), members=2), TypeError, "Received: build_model=<Sequential"),
])
def test_bad_input_rejected(make, error, match):
    with pytest.raises(error, match=match):
        make()


def build_mlp():
    return keras.Sequential([keras.Input((64,)), keras.layers.Dense(32, activation="relu"),
                             keras.layers.Dense(10)])


@pytest.mark.slow
def test_fused_and_sequential_paths_give_comparable_members(tmp_path):
    x, y = load_digits("train")
    kwargs = dict(members=2, seed=0, epochs=8, stop_ratio=None, jit_compile=True, verbose=0)
    fused = fit_ensemble(build_mlp, (x, y), **kwargs)
    assert fused.path == "fused" and "one compiled program" in fused.reason
    assert fused.fit_result.model.jit_compile is True

    calls = []

    def varying():  # a different width per call: no fusing possible
        calls.append(1)
        return keras.Sequential([keras.Input((64,)), keras.layers.Dense(32 + len(calls), activation="relu"),
                                 keras.layers.Dense(10)])

    sequential = fit_ensemble(varying, (x, y), **kwargs)
    assert sequential.path == "sequential" and "different architectures" in sequential.reason
    for result in (fused, sequential):
        assert len(result.member_histories) == 2
        assert len(result.member_histories[0]["val_loss"]) == 8
        assert min(result.member_scores) > 0.9
        assert result.ensemble_score >= np.mean(result.member_scores) - 0.01
        assert len(result.table) == 2 + 1 + 2
    assert abs(np.mean(fused.member_scores) - np.mean(sequential.member_scores)) < 0.03
    # The ensemble model is the average of the members on raw inputs.
    xt, _ = load_digits("test")
    probs = [softmax(m.predict(xt, verbose=0)) for m in fused.members]
    np.testing.assert_allclose(fused.model.predict(xt, verbose=0), np.mean(probs, axis=0), atol=1e-5)
    path = tmp_path / "fused.keras"
    fused.model.save(path)
    np.testing.assert_allclose(keras.saving.load_model(path).predict(xt, verbose=0),
                               fused.model.predict(xt, verbose=0), atol=1e-6)
    assert len(fused.plot().axes[0].lines) == 1


def test_fit_with_tips_ensemble_shortcut():
    x, y = load_digits("train")
    result = fit_with_tips(build_mlp(), (x[:600], y[:600]), ensemble=2, epochs=2, seed=0, verbose=0,
                           jit_compile=True)
    assert result.path == "fused" and len(result.members) == 2


def test_architecture_signature_ignores_names_but_not_structure():
    from keras_recipes.ensemble import architecture_signature
    from keras_recipes.models import preset

    a, b = preset("mlp", (8,), 3), preset("mlp", (8,), 3)
    assert architecture_signature(a) == architecture_signature(b)
    assert architecture_signature(a) != architecture_signature(preset("mlp", (8,), 4))
