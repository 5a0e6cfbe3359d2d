"""`MemberBestWeights`: each fused member restored from its own best epoch."""

import keras
import numpy as np

from keras_recipes import sharding


class MemberBestWeights(keras.callbacks.Callback):
    """Fused members: each member's weights from its own best epoch (its
    `val_member_i_loss`), as its own run's ReduceLROnPlateau would restore
    them; the plateau rule's restore (by the members' summed loss) runs
    first, this one after it. State and arrays go into checkpoints.

    Args:
        fused: The `FusedMembers` being trained.
    """

    def __init__(self, fused):
        super().__init__()
        self.fused = fused
        size = fused.size
        self.best = [None] * size
        self.best_epoch = [None] * size
        self.weights = [None] * size

    def _read(self, i):
        vectorized = self.fused.vectorized
        if vectorized is not None:
            return [sharding.host(v)[i] for v in vectorized.variables]
        return [sharding.host(v) for v in self.fused.members[i].variables]

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        improved = []
        for i in range(self.fused.size):
            value = logs.get(f"val_member_{i}_loss")
            if value is None or not np.isfinite(float(value)):
                continue
            if self.best[i] is None or float(value) < self.best[i]:
                self.best[i], self.best_epoch[i] = float(value), int(epoch)
                improved.append(i)
        vectorized = self.fused.vectorized
        if vectorized is not None and improved:
            stacked = [sharding.host(v) for v in vectorized.variables]
            for i in improved:
                self.weights[i] = [a[i].copy() for a in stacked]
        else:
            for i in improved:
                self.weights[i] = self._read(i)

    def on_train_end(self, logs=None):
        if all(w is None for w in self.weights):
            return
        vectorized = self.fused.vectorized
        if vectorized is not None:
            for j, variable in enumerate(vectorized.variables):
                value = sharding.host(variable).copy()
                for i, weights in enumerate(self.weights):
                    if weights is not None:
                        value[i] = weights[j]
                variable.assign(value)
            return
        for member, weights in zip(self.fused.members, self.weights):
            if weights is not None:
                for variable, value in zip(member.variables, weights):
                    variable.assign(value)

    def event(self):
        """The line for the result's events, or None."""
        if all(e is None for e in self.best_epoch):
            return None
        epochs = ", ".join("-" if e is None else str(e + 1) for e in self.best_epoch)
        return f"each member restored from its own best epoch (by val_member_i_loss): {epochs}"

    def get_state(self):
        return {"best": self.best, "best_epoch": self.best_epoch,
                "counts": [None if w is None else len(w) for w in self.weights]}

    def arrays(self):
        return [a for w in self.weights if w is not None for a in w]

    def set_state(self, state, arrays):
        self.best, self.best_epoch = list(state["best"]), list(state["best_epoch"])
        arrays, self.weights = list(arrays or []), []
        for count in state["counts"]:
            self.weights.append(None if count is None else arrays[:count])
            arrays = arrays[count or 0:]
