"""Real noise for tip 10: reading wav files, band-limited resampling, and the
`NoiseBank` that `keras_recipes.layers.NoiseMix` mixes into clean audio."""

import fractions
import math
import os
import pathlib
import struct

import numpy as np


def read_wav(path):
    """Reads a RIFF/WAVE file: PCM 8/16/24/32-bit or IEEE float 32/64-bit.

    Returns:
        `(samples, sample_rate)`: float32 array `(frames, channels)` in
        [-1, 1], and the rate in Hz.
    """
    path = os.fspath(path)
    try:
        data = pathlib.Path(path).read_bytes()
    except OSError as error:
        raise ValueError(f"Cannot read the wav file: {error.strerror}. Received: path={path!r}") from None
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError(f"Not a RIFF/WAVE file. Received: path={path!r}")
    fmt = None
    pos = 12
    while pos + 8 <= len(data):
        chunk, size = data[pos:pos + 4], struct.unpack("<I", data[pos + 4:pos + 8])[0]
        body = data[pos + 8:pos + 8 + size]
        if chunk == b"fmt ":
            tag, channels, rate = struct.unpack("<HHI", body[:8])
            bits = struct.unpack("<H", body[14:16])[0]
            if tag == 0xFFFE and len(body) >= 26:  # WAVE_FORMAT_EXTENSIBLE
                tag = struct.unpack("<H", body[24:26])[0]
            fmt = (tag, channels, rate, bits)
        elif chunk == b"data":
            if fmt is None:
                break
            return _decode(body, fmt, path)
        pos += 8 + size + (size & 1)
    raise ValueError(f"The wav file has no fmt/data chunks. Received: path={path!r}")


def _decode(body, fmt, path):
    tag, channels, rate, bits = fmt
    if channels < 1 or rate < 1:
        raise ValueError(f"Invalid wav header (channels={channels}, rate={rate}). Received: path={path!r}")
    width = bits // 8
    body = body[: len(body) - len(body) % (width * channels)]
    if tag == 1 and bits == 8:
        x = (np.frombuffer(body, np.uint8).astype("float32") - 128.0) / 128.0
    elif tag == 1 and bits == 16:
        x = np.frombuffer(body, "<i2").astype("float32") / 32768.0
    elif tag == 1 and bits == 24:
        raw = np.frombuffer(body, np.uint8).reshape(-1, 3).astype(np.int32)
        value = raw[:, 0] | (raw[:, 1] << 8) | (raw[:, 2] << 16)
        x = (np.where(value >= 1 << 23, value - (1 << 24), value) / float(1 << 23)).astype("float32")
    elif tag == 1 and bits == 32:
        x = (np.frombuffer(body, "<i4") / 2147483648.0).astype("float32")
    elif tag == 3 and bits in (32, 64):
        x = np.frombuffer(body, "<f4" if bits == 32 else "<f8").astype("float32")
    else:
        raise ValueError(f"Unsupported wav encoding (format tag {tag}, {bits} bits). "
                         f"Received: path={path!r}")
    return x.reshape(-1, channels), rate


def resample(signal, source_rate, target_rate, half_width=16, beta=8.6):
    """Band-limited resampling of a 1-D signal by windowed-sinc interpolation.

    The low-pass cutoff is the lower of the two Nyquist frequencies, so
    content above the target's Nyquist is removed rather than aliased. The
    filter is a Kaiser-windowed sinc with `half_width` zero crossings on each
    side (at the lower rate).

    Args:
        signal: 1-D float array.
        source_rate: Positive number, Hz.
        target_rate: Positive number, Hz.

    Returns:
        float32 array of `round(len(signal) * target_rate / source_rate)` samples.
    """
    for name, rate in (("source_rate", source_rate), ("target_rate", target_rate)):
        if isinstance(rate, bool) or not isinstance(rate, (int, float, np.integer, np.floating)) \
                or not math.isfinite(rate) or rate <= 0:
            raise ValueError(f"`{name}` must be a positive number of Hz. Received: {name}={rate!r}")
    signal = np.asarray(signal, dtype="float64")
    if signal.ndim != 1 or len(signal) == 0:
        raise ValueError(f"`signal` must be a non-empty 1-D array. Received: shape {signal.shape}")
    if source_rate == target_rate:
        return signal.astype("float32")
    ratio = target_rate / source_rate
    n_out = int(round(len(signal) * ratio))
    if n_out < 1:
        raise ValueError(f"Resampling {len(signal)} samples from {source_rate} Hz to {target_rate} Hz "
                         f"leaves no sample. Received: {len(signal)} samples")
    cutoff = min(1.0, ratio)  # relative to the source Nyquist
    reach = half_width / cutoff  # filter half-length in source samples
    taps = np.arange(-int(math.ceil(reach)), int(math.ceil(reach)) + 1)
    out = np.empty(n_out, dtype="float64")
    padded = np.concatenate([np.zeros(len(taps)), signal, np.zeros(len(taps))])
    phases = _phases(source_rate, target_rate)
    if phases:  # whole rates: the kernels repeat every p outputs (polyphase)
        p, q = phases
        table = _kernel(np.arange(p)[:, None] / p - taps[None, :], cutoff, reach, beta)
    for start in range(0, n_out, 8192):
        n = np.arange(start, min(start + 8192, n_out))
        if phases:  # output n sits at source position n * q / p
            base, phase = np.divmod(n * q, p)
            kernel = table[phase]
        else:
            t = n / ratio  # source positions
            base = np.floor(t).astype(np.int64)
            kernel = _kernel(t[:, None] - (base[:, None] + taps[None, :]), cutoff, reach, beta)
        offsets = base[:, None] + taps[None, :]
        out[start:start + len(n)] = (padded[offsets + len(taps)] * kernel).sum(axis=1)
    return out.astype("float32")


# Up to this many distinct kernels are tabulated (44.1 kHz to 8 kHz needs 80).
_MAX_PHASES = 4096


def _phases(source_rate, target_rate):
    """`(p, q)` with target / source = p / q in lowest terms when both rates
    are whole numbers and p is small enough to tabulate; else None."""
    if not (float(source_rate).is_integer() and float(target_rate).is_integer()):
        return None
    ratio = fractions.Fraction(int(target_rate), int(source_rate))
    if ratio.numerator > _MAX_PHASES:
        return None
    return ratio.numerator, ratio.denominator


def _kernel(distance, cutoff, reach, beta):
    """The Kaiser-windowed sinc at `distance` source samples."""
    return cutoff * np.sinc(cutoff * distance) * _kaiser(distance, reach, beta)


def _kaiser(distance, reach, beta):
    ratio = np.clip(distance / reach, -1.0, 1.0)
    return np.i0(beta * np.sqrt(1.0 - ratio**2)) / np.i0(beta)


class NoiseBank:
    """Real noise recordings at one sample rate, for `NoiseMix`.

    Files are mixed down to mono and resampled to `sample_rate` with a
    band-limited resampler, so a recording made at another rate is never
    mixed at the wrong rate. `NoiseMix` takes random crops of the clips
    (looping clips shorter than the audio it mixes into).

    Example:

    ```python
    bank = NoiseBank.from_files("noise/", sample_rate=8000)
    mix = keras_recipes.layers.NoiseMix(noise=bank, snr_db=(0, 20))
    ```

    Args:
        clips: List of 1-D float arrays at `sample_rate`.
        sample_rate: Positive integer, Hz.
        names: Optional list of names (file names), one per clip.
    """

    def __init__(self, clips, sample_rate, names=None):
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) \
                or sample_rate <= 0:
            raise ValueError(f"`sample_rate` must be a positive integer. Received: sample_rate={sample_rate!r}")
        if isinstance(clips, np.ndarray) and clips.ndim == 1:
            clips = [clips]
        clips = [np.asarray(c, dtype="float32") for c in clips]
        if not clips:
            raise ValueError("A NoiseBank needs at least one clip. Received: clips=[]")
        for i, clip in enumerate(clips):
            if clip.ndim != 1 or len(clip) == 0:
                raise ValueError(f"Each clip must be a non-empty 1-D array. Received: clip {i} of shape {clip.shape}")
            if not np.isfinite(clip).all():
                raise ValueError(f"Clip {i} holds NaN/Inf samples. Received: clip {i} with non-finite values")
        self.clips = clips
        self.sample_rate = int(sample_rate)
        self.names = list(names) if names is not None else [f"clip{i}" for i in range(len(clips))]

    @classmethod
    def from_files(cls, paths, sample_rate):
        """Loads wav files (a list of paths, or a folder searched recursively)."""
        if isinstance(paths, (str, os.PathLike)):
            root = pathlib.Path(paths)
            if root.is_dir():
                paths = sorted(p for p in root.rglob("*") if p.suffix.lower() == ".wav")
                if not paths:
                    raise ValueError(f"No .wav files under the folder. Received: paths={str(root)!r}")
            else:
                paths = [root]
        paths = list(paths)
        if not paths:
            raise ValueError("`paths` is empty. Received: paths=[]")
        clips, names = [], []
        for path in paths:
            samples, rate = read_wav(path)
            mono = samples.mean(axis=1)
            clips.append(resample(mono, rate, sample_rate))
            names.append(pathlib.Path(path).name)
        return cls(clips, sample_rate, names)

    @property
    def lengths(self):
        return [len(c) for c in self.clips]

    def concatenated(self):
        return np.concatenate(self.clips)

    def __len__(self):
        return len(self.clips)

    def __repr__(self):
        seconds = sum(self.lengths) / self.sample_rate
        return f"<NoiseBank {len(self)} clips, {seconds:.1f} s at {self.sample_rate} Hz>"
