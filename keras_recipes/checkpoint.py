"""Epoch checkpoints that survive a kill at any point.

A checkpoint is a folder `epoch-NNNNN` holding the model's weights, the
optimizer's variables and a JSON state (the epoch, the history so far and the
callbacks' counters). It is written under a temporary name and renamed into
place, so a kill during a write leaves no folder that looks complete; on
start, temporary folders are removed and the newest complete one is loaded.
"""

import json
import os
import pathlib
import shutil

import keras
import numpy as np

_PREFIX = "epoch-"
_TMP = ".tmp-"


def _fsync_dir(path):
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Checkpointer:
    """Reads and writes the checkpoints of one training run in `directory`."""

    def __init__(self, directory):
        if not isinstance(directory, (str, os.PathLike)) or not str(directory):
            raise TypeError(f"`checkpoint_dir` must be a path. Received: checkpoint_dir={directory!r}")
        self.directory = pathlib.Path(directory)
        if self.directory.exists() and not self.directory.is_dir():
            raise ValueError(f"`checkpoint_dir` is a file, not a folder. Received: checkpoint_dir={str(directory)!r}")
        self.directory.mkdir(parents=True, exist_ok=True)
        for leftover in self.directory.glob(_TMP + "*"):
            shutil.rmtree(leftover, ignore_errors=True)

    def latest(self):
        """The newest complete checkpoint folder, or None."""
        done = sorted(p for p in self.directory.glob(_PREFIX + "*")
                      if p.is_dir() and (p / "state.json").exists())
        return done[-1] if done else None

    def peek(self):
        """The JSON state of the newest checkpoint (None when there is none)."""
        latest = self.latest()
        if latest is None:
            return None
        try:
            return json.loads((latest / "state.json").read_text())
        except ValueError as error:
            raise ValueError(f"The checkpoint state in {latest} is damaged ({error}). "
                             f"Received: checkpoint_dir={str(self.directory)!r}") from None

    def write(self, epoch, model, optimizer, state, arrays=None):
        """Writes checkpoint `epoch` atomically and removes older ones.

        `arrays` maps names to lists of numpy arrays (e.g. best weights)."""
        final = self.directory / f"{_PREFIX}{epoch:05d}"
        tmp = self.directory / f"{_TMP}{epoch:05d}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        self._write_files(tmp, model, optimizer, state, arrays or {})
        _fsync_dir(tmp)
        if final.exists():
            shutil.rmtree(final)
        os.rename(tmp, final)
        _fsync_dir(self.directory)
        for old in self.directory.glob(_PREFIX + "*"):
            if old != final:
                shutil.rmtree(old, ignore_errors=True)

    def _write_files(self, folder, model, optimizer, state, arrays):
        model.save_weights(folder / "model.weights.h5")
        for name, values in arrays.items():
            if values is not None:
                np.savez(folder / f"{name}.npz", *values)
        values = {str(i): keras.ops.convert_to_numpy(v) for i, v in enumerate(optimizer.variables)}
        np.savez(folder / "optimizer.npz", **values)
        with open(folder / "state.json", "w") as f:
            json.dump(state, f)
            f.flush()
            os.fsync(f.fileno())

    def read(self, folder, model, optimizer):
        """Loads weights and optimizer variables; returns the JSON state."""
        try:
            state = json.loads((folder / "state.json").read_text())
            model.load_weights(folder / "model.weights.h5")
            if not optimizer.built:
                optimizer.build(model.trainable_variables)
            with np.load(folder / "optimizer.npz") as values:
                if len(values.files) != len(optimizer.variables):
                    raise ValueError(
                        f"{len(values.files)} optimizer variables saved, {len(optimizer.variables)} now")
                for i, variable in enumerate(optimizer.variables):
                    variable.assign(values[str(i)])
        except Exception as error:
            raise ValueError(
                f"The checkpoint in {folder} does not match this run or is damaged "
                f"({type(error).__name__}: {error}). Use another checkpoint_dir or delete it. "
                f"Received: checkpoint_dir={str(self.directory)!r}") from None
        return state

    def read_arrays(self, folder, name):
        """A list of arrays written with `arrays={name: ...}`, or None."""
        path = folder / f"{name}.npz"
        if not path.exists():
            return None
        with np.load(path) as values:
            return [values[f"arr_{i}"] for i in range(len(values.files))]

    def save_final(self, model):
        """The finished model as `final.keras` (written, then renamed)."""
        tmp = self.directory / f"{_TMP}final.keras"
        model.save(tmp)
        os.replace(tmp, self.directory / "final.keras")


class CheckpointCallback(keras.callbacks.Callback):
    """Writes a checkpoint at the end of every epoch, after the callbacks
    before it in the list have updated their state.

    Args:
        checkpointer: A `Checkpointer`.
        get_state: Callable `(epoch, logs) -> (dict of JSON values, dict of
            named lists of arrays)`.
    """

    def __init__(self, checkpointer, get_state):
        super().__init__()
        self.checkpointer = checkpointer
        self.get_state = get_state

    def on_epoch_end(self, epoch, logs=None):
        state, arrays = self.get_state(epoch, dict(logs or {}))
        self.checkpointer.write(epoch, self.model, self.model.optimizer, state, arrays)
