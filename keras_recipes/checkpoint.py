"""Epoch checkpoints that survive a kill at any point.

A checkpoint is a folder `epoch-NNNNN` holding the model's weights, the
optimizer's variables and a JSON state (the epoch, the history so far and the
callbacks' counters). It is written under a temporary name and renamed into
place, so a kill during a write leaves no folder that looks complete; on
start, temporary folders are removed and the newest complete one is loaded.
Files are not fsynced: that protects against power loss, not against a
killed process, and would cost more than the rest of the write.
"""

import json
import os
import pathlib
import shutil

import keras
import numpy as np

from keras_recipes import sharding

_PREFIX = "epoch-"
_TMP = ".tmp-"


class Checkpointer:
    """Reads and writes the checkpoints of one training run in `directory`.

    Args:
        directory: Path of the run's folder (created if missing).
        writes: Boolean. Whether this process writes. Under multi-worker
            training every worker reads the checkpoints, only the chief
            writes them. Defaults to `True`.
    """

    def __init__(self, directory, writes=True):
        if not isinstance(directory, (str, os.PathLike)) or not str(directory):
            raise TypeError(f"`checkpoint_dir` must be a path. Received: checkpoint_dir={directory!r}")
        self.directory = pathlib.Path(directory)
        if self.directory.exists() and not self.directory.is_dir():
            raise ValueError(f"`checkpoint_dir` is a file, not a folder. Received: checkpoint_dir={str(directory)!r}")
        self.writes = bool(writes)
        if not self.writes:
            return
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

        `arrays` maps names to lists of numpy arrays (e.g. best weights).
        Writes nothing in a process that does not write (a non-chief worker),
        but reads the variables in every process: a variable split over
        several processes' devices is gathered from all of them.
        """
        values = self._values(model, optimizer)
        if not self.writes:
            return
        final = self.directory / f"{_PREFIX}{epoch:05d}"
        tmp = self.directory / f"{_TMP}{epoch:05d}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        # No fsync: a killed process loses nothing the kernel already has;
        # only the rename must be the last step (and it is atomic).
        self._write_files(tmp, values, state, arrays or {})
        if final.exists():
            shutil.rmtree(final)
        os.rename(tmp, final)
        for old in self.directory.glob(_PREFIX + "*"):
            if old != final:
                shutil.rmtree(old, ignore_errors=True)

    @staticmethod
    def _values(model, optimizer):
        # model.variables, not get_weights(): it also holds the random-number
        # generators' states (dropout, augmentation), so those draws resume too.
        values = {f"model_{i}": sharding.host(v) for i, v in enumerate(model.variables)}
        values.update({f"optimizer_{i}": sharding.host(v)
                       for i, v in enumerate(optimizer.variables)})
        return values

    def _write_files(self, folder, values, state, arrays):
        # One uncompressed .npz for every array (model weights, optimizer
        # variables, extra lists): the cheapest write, which matters when it
        # happens every epoch.
        for name, items in arrays.items():
            if items is not None:
                values.update({f"{name}_{i}": a for i, a in enumerate(items)})
        with open(folder / "arrays.npz", "wb") as f:
            np.savez(f, **values)
        with open(folder / "state.json", "w") as f:
            json.dump(state, f)

    @staticmethod
    def _group(values, prefix):
        keys = sorted((k for k in values.files if k.startswith(prefix + "_")),
                      key=lambda k: int(k.rsplit("_", 1)[1]))
        return [values[k] for k in keys]

    def read(self, folder, model, optimizer):
        """Loads weights and optimizer variables; returns the JSON state."""
        try:
            state = json.loads((folder / "state.json").read_text())
            if not optimizer.built:
                optimizer.build(model.trainable_variables)
            with np.load(folder / "arrays.npz") as values:
                for name, variables in (("model", model.variables),
                                        ("optimizer", optimizer.variables)):
                    saved = self._group(values, name)
                    if len(saved) != len(variables):
                        raise ValueError(
                            f"{len(saved)} {name} variables saved, {len(variables)} now")
                    for variable, value in zip(variables, saved):
                        variable.assign(value)
        except Exception as error:
            raise ValueError(
                f"The checkpoint in {folder} does not match this run or is damaged "
                f"({type(error).__name__}: {error}). Use another checkpoint_dir or delete it. "
                f"Received: checkpoint_dir={str(self.directory)!r}") from None
        return state

    def read_arrays(self, folder, name):
        """A list of arrays written with `arrays={name: ...}`, or None."""
        with np.load(folder / "arrays.npz") as values:
            items = self._group(values, name)
        return items or None

    def save_final(self, model):
        """The finished model as `final.keras` (written, then renamed); only
        in the process that writes (gathered in all, where a variable is
        split over several processes' devices)."""
        model = sharding.host_copy(model)
        if not self.writes:
            return
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
