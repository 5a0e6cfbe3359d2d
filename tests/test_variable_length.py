"""Issue 38 item 1: batches whose shapes vary are read as model.fit reads
them. A `padded_batch` dataset, a generator and a PyDataset of spoken-digit
clips padded per batch to their longest clip (Free Spoken Digit Dataset,
../shared/data/fsdd: clips of their natural lengths, 11 to 137 log-mel
frames) are kept as given: split by whole batches, statistics over one pass
with the padding steps left out, standardized with the padding kept (so a
Masking layer still finds it). These forms were refused (tf.data's "Cannot
batch tensors with different shapes" and numpy's concatenate error before
that). The decisions are checked through `plan`; one small run trains.
"""

import pathlib
import tempfile

import keras
import numpy as np
import pytest

from conftest import shared_data
from keras_recipes import plan
from keras_recipes import preprocessing
from keras_recipes.audio import read_wav
from keras_recipes.layers import PaddingAwareNormalization

BANDS = 40
# Test accuracy floor of the small end-to-end run (it measured 0.9375 on TensorFlow).
FLOOR = 0.8


def spoken_frames():
    """Every FSDD clip at its natural length as log-mel frames `(frames, 40)`
    in dB (floored 80 dB below the clip's peak), its digit and speaker.
    Computed once, cached in the temporary folder."""
    root = shared_data("fsdd", "recordings")
    cache = pathlib.Path(tempfile.gettempdir()) / "keras_recipes_fsdd_frames_v1.npz"
    if cache.exists():
        with np.load(cache) as f:
            return np.split(f["flat"], f["ends"][:-1]), f["y"], f["speaker"]
    waves, labels, speakers = [], [], []
    for path in sorted(root.glob("*.wav")):
        digit, speaker, _ = path.stem.split("_")
        wav, _ = read_wav(path)
        waves.append(wav[:, 0])
        labels.append(int(digit))
        speakers.append(speaker)
    padded = np.zeros((len(waves), max(len(w) for w in waves)), "float32")
    for i, w in enumerate(waves):
        padded[i, :len(w)] = w
    mel = keras.layers.MelSpectrogram(num_mel_bins=BANDS, sampling_rate=8000, fft_length=256,
                                      sequence_stride=128, min_freq=50.0, max_freq=4000.0,
                                      power_to_db=False)
    power = np.concatenate([keras.ops.convert_to_numpy(mel(padded[i:i + 250]))
                            for i in range(0, len(padded), 250)]).transpose(0, 2, 1)
    clips = []
    for i, w in enumerate(waves):
        db = 10 * np.log10(np.maximum(power[i, :1 + (len(w) - 256) // 128], 1e-10))
        clips.append(np.maximum(db, db.max() - 80.0).astype("float32"))
    np.savez(cache, flat=np.concatenate(clips), ends=np.cumsum([len(c) for c in clips]),
             y=np.array(labels, "int32"), speaker=np.array(speakers))
    return clips, np.array(labels, "int32"), np.array(speakers)


def pad_batch(clips):
    """Clips padded with zeros after their end to the longest one's length."""
    batch = np.zeros((len(clips), max(len(c) for c in clips), BANDS), "float32")
    for i, clip in enumerate(clips):
        batch[i, :len(clip)] = clip
    return batch


class PaddedClips(keras.utils.PyDataset):
    """Clips in batches of `size`, each padded to its longest clip."""

    def __init__(self, clips, labels, size=32):
        super().__init__()
        self.clips, self.labels, self.size = clips, labels, size

    def __len__(self):
        return -(-len(self.clips) // self.size)

    def __getitem__(self, i):
        part = slice(i * self.size, (i + 1) * self.size)
        return pad_batch(self.clips[part]), self.labels[part]


def forms(clips, labels, size=32):
    """The same batches as a PyDataset, a generator and (TensorFlow) a
    padded_batch dataset."""
    made = {"PyDataset": lambda: PaddedClips(clips, labels, size),
            "generator": lambda: (PaddedClips(clips, labels, size)[i]
                                  for i in range(len(PaddedClips(clips, labels, size))))}
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        made["padded_batch"] = lambda: tf.data.Dataset.from_generator(
            lambda: zip(clips, labels), output_signature=(
                tf.TensorSpec((None, BANDS), tf.float32), tf.TensorSpec((), tf.int32))
        ).padded_batch(size)
    return made


def sample(n=480, seed=0):
    """`n` clips in a seeded order (as a user shuffles before batching)."""
    clips, labels, speakers = spoken_frames()
    order = np.random.default_rng(seed).permutation(len(clips))[:n]
    return [clips[i] for i in order], labels[order], speakers[order]


def masked_gru(units=32):
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((None, BANDS)), keras.layers.Masking(0.0),
                             keras.layers.GRU(units), keras.layers.Dense(10, activation="softmax")])


def row(p, name):
    return next(t for t in p.tips if t.name == name)


def test_every_form_of_varying_batches_is_kept_and_decided_alike():
    clips, labels, _ = sample()
    seen = {}
    for form, make in forms(clips, labels).items():
        p = plan(masked_gru(), make(), seed=0, verbose=0, audit=False, learning_rate=0.05,
                 steps_per_epoch=15 if form == "generator" else None)
        minibatch, inputs = row(p, "minibatch"), row(p, "inputs")
        # Kept: the batches' own size, 12 of 15 batches train, 3 held out whole.
        assert p.data.kept_batches == (12, 3), form
        assert minibatch.setting == "batch_size=32 (12 steps per epoch)", form
        assert "batches of varying shapes (batch 0 (32, " in minibatch.reason, form
        if form == "generator":
            assert ("steps_per_epoch=15: the generator's batches read, 3 of them held out"
                    in minibatch.reason)
        assert p.data.split.startswith("held out 3 of its 15 batches whole (seed 0)"), form
        assert p.data.x_shape == (None, BANDS), form
        # Statistics over real steps only: the padding is left out, and kept.
        assert "steps are padding (every feature 0.0) and were left out" in inputs.reason, form
        assert "padded_batch's default" not in inputs.reason, form  # Masking names 0.0
        assert "padding steps (every feature 0.0) kept as given" in inputs.setting, form
        layer = p.decisions.pre_layers[0]
        assert isinstance(layer, PaddingAwareNormalization), form
        seen[form] = (p.data.n_train, round(float(p.data.features.mean[0]), 4))
    # The same batches, held out alike: the same examples and statistics.
    assert len(set(seen.values())) == 1, seen
    # Real log-mel values in dB, not the padding's 0: the mean is far below it.
    assert next(iter(seen.values()))[1] < -10


def test_the_statistics_leave_out_exactly_the_padding_steps():
    clips, labels, _ = sample(96)
    p = plan(masked_gru(), PaddedClips(clips, labels), seed=0, verbose=0, audit=False,
             learning_rate=0.05)
    # The training batches' real frames, by hand.
    batches = [PaddedClips(clips, labels)[i] for i in p.data.live[1]]
    real = np.concatenate([b[0][np.any(b[0] != 0.0, axis=-1)] for b in batches])
    padded = sum(b[0].shape[0] * b[0].shape[1] for b in batches) - len(real)
    assert np.isclose(p.data.features.mean[0], real.mean(), rtol=1e-5)
    assert np.isclose(p.data.features.std[0], real.std(), rtol=1e-4)
    assert f"{padded} of {padded + len(real)} steps are padding" in row(p, "inputs").reason


def test_without_masking_the_padding_is_the_default_and_the_row_says_so():
    clips, labels, _ = sample(96)
    keras.utils.set_random_seed(0)
    gru = keras.Sequential([keras.Input((None, BANDS)), keras.layers.GRU(8),
                            keras.layers.Dense(10, activation="softmax")])
    p = plan(gru, PaddedClips(clips, labels), seed=0, verbose=0, audit=False, learning_rate=0.05)
    assert p.data.features.padding == 0.0
    assert ("steps are padding (every feature 0.0) and were left out (0.0: padded_batch's "
            "default; a Masking layer's mask_value reading the input names another)") in row(
        p, "inputs").reason


def test_masking_is_seen_through_only_when_the_padding_is_kept():
    """Issue 25's Masking case on real padded sequences (fixed shapes, as
    keras.utils.pad_sequences gives): with the mask value as the padding,
    the standardization keeps it, so Masking no longer leaves the input
    alone. The model's own mask value is the padding: with Masking(-1.0)
    no step is padding here, and it is -1.0 that is kept. Without a kept
    padding, Masking is not shown safe."""
    clips, labels, _ = sample(192)
    x = pad_batch(clips)
    p = plan(masked_gru(), (x, labels), seed=0, verbose=0, audit=False, learning_rate=0.05)
    assert isinstance(p.decisions.pre_layers[0], PaddingAwareNormalization)
    assert "steps are padding (every feature 0.0) and were left out" in row(p, "inputs").reason
    keras.utils.set_random_seed(0)
    other = keras.Sequential([keras.Input((None, BANDS)), keras.layers.Masking(-1.0),
                              keras.layers.GRU(8), keras.layers.Dense(10, activation="softmax")])
    p = plan(other, (x, labels), seed=0, verbose=0, audit=False, learning_rate=0.05)
    assert f"; 0 of {p.data.n_train * x.shape[1]} steps are padding (every feature -1.0)" in row(
        p, "inputs").reason
    assert p.decisions.pre_layers[0].padding_value == -1.0
    assert preprocessing.padding_of(other) == -1.0
    assert preprocessing.raw_reader(other, 0, padding=-1.0) is None
    assert "reads the values as they are" in preprocessing.raw_reader(other, 0)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="tf.data (TensorFlow)")
def test_padded_batches_with_sample_weights_and_validation_data_are_kept():
    import tensorflow as tf

    clips, labels, _ = sample(192)
    weights = np.where(labels % 2 == 0, 2.0, 1.0).astype("float32")
    spec = (tf.TensorSpec((None, BANDS), tf.float32), tf.TensorSpec((), tf.int32),
            tf.TensorSpec((), tf.float32))
    train = tf.data.Dataset.from_generator(
        lambda: zip(clips[:160], labels[:160], weights[:160]), output_signature=spec)
    p = plan(masked_gru(), train.padded_batch(32), seed=0, verbose=0, audit=False,
             learning_rate=0.05, validation_data=(pad_batch(clips[160:]), labels[160:]))
    assert p.data.weighted and p.data.kept_batches == (5, 1)
    assert p.data.split == "validation_data given"
    assert (p.data.n_train, p.data.n_validation) == (160, 32)
    x, y, w = next(iter(p.data.fit_inputs(0, 1, True, None)[1]))
    assert x.shape[0] == 32 and np.all(np.asarray(w) == 1.0)


def test_varying_batches_into_a_fixed_batch_model_are_refused_by_name():
    clips, labels, _ = sample(96)
    fixed = keras.Sequential([keras.Input((None, BANDS), batch_size=32), keras.layers.GRU(8),
                              keras.layers.Dense(10, activation="softmax")])
    with pytest.raises(ValueError, match=r"batches of different shapes, and the model's inputs "
                                         r"fix the batch size.*pad every example"):
        plan(fixed, PaddedClips(clips, labels), verbose=0)


def test_padding_aware_normalization_keeps_padding_and_saves(tmp_path):
    layer = PaddingAwareNormalization(mean=[10.0, 0.0], variance=[4.0, 1.0], padding_value=0.0)
    x = np.array([[[12.0, 1.0], [0.0, 0.0], [10.0, 0.0]]], "float32")
    out = keras.ops.convert_to_numpy(layer(x))
    np.testing.assert_allclose(out, [[[1.0, 1.0], [0.0, 0.0], [0.0, 0.0]]])
    model = keras.Sequential([keras.Input((None, 2)), layer])
    model.save(tmp_path / "m.keras")
    again = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(again(x)), out)
    with pytest.raises(ValueError, match=r"one value per feature, variances > 0.*variance=\[0.0\]"):
        PaddingAwareNormalization(mean=[1.0], variance=[0.0])


@pytest.mark.slow
def test_a_padded_clips_program_trains_and_an_ensemble_trains_in_turn():
    """keras.io style: padded clips into Masking + GRU, model.fit swapped
    for fit_with_tips (other takes of the same voices for test); the
    ensemble of two members trains in turn (the members cannot stack their
    own orders of batches that vary)."""
    from keras_recipes import fit_ensemble

    clips, labels, _ = sample(800, seed=1)
    form = forms(clips[:640], labels[:640])["PyDataset"]
    result = plan(masked_gru(), form(), seed=0, verbose=0, epochs=12).fit()
    assert result.model.jit_compile is not None
    probabilities = np.concatenate([result.model.predict_on_batch(pad_batch(clips[i:i + 80]))
                                    for i in range(640, 800, 80)])
    accuracy = float((probabilities.argmax(-1) == labels[640:]).mean())
    print("test accuracy", accuracy)
    assert accuracy > FLOOR, accuracy
    ensemble = fit_ensemble(lambda: keras.Sequential([
        keras.Input((None, BANDS)), keras.layers.Masking(0.0), keras.layers.GRU(16),
        keras.layers.Dense(10, activation="softmax")]), form(), members=2, seed=0, verbose=0,
        epochs=2)
    assert ensemble.path == "sequential"
    assert "kept as given" in ensemble.reason
    assert len(ensemble.member_scores) == 2


def test_tip_9_reads_the_measured_length_of_padded_sequences():
    """An LSTM on padded clips: the model leaves the length open, so tip 9
    reads the real steps per example the statistics pass measured (padding
    left out), not "unknown, fewer than 32" as it said before."""
    clips, labels, _ = sample(192)
    keras.utils.set_random_seed(0)
    lstm = keras.Sequential([keras.Input((None, BANDS)), keras.layers.Masking(0.0),
                             keras.layers.LSTM(8), keras.layers.Dense(10, activation="softmax")])
    p = plan(lstm, PaddedClips(clips, labels), seed=0, verbose=0, audit=False,
             learning_rate=0.05)
    batches = [PaddedClips(clips, labels)[i] for i in p.data.live[1]]
    lengths = np.concatenate([np.any(b[0] != 0.0, axis=-1).sum(1) for b in batches])
    assert p.data.features.steps == (pytest.approx(lengths.mean()), int(lengths.max()))
    row = next(t for t in p.tips if t.name == "forget-gate bias")
    assert f"sequences of {lengths.mean():.1f} real steps on average (measured" in row.reason
    expected = "3 (Keras' default 1 found" if lengths.mean() >= 32 else "Keras' 1, kept"
    assert row.setting.startswith(expected), row
