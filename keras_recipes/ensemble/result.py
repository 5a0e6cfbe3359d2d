"""`EnsembleResult` and the members' scores on held-out data."""

import numpy as np

from keras_recipes import sharding
from keras_recipes.modelinfo import output_activation


class EnsembleResult:
    """What `fit_ensemble` returns.

    Attributes:
        model: The `AveragingEnsemble` (preprocessing included: raw inputs in).
        members: The trained member models (raw inputs in).
        member_histories: One history dict per member.
        path: "fused" (one compiled program) or "sequential", and `reason`
            (for "fused": vectorized or stacked, and why).
        table: Rows of the validation metric: each member, the ensemble, and
            the ensemble of the first k members for k = 1..N.
        fit_result: The underlying `FitResult` (fused path) or list of them.
    """

    def __init__(self, model, members, member_histories, path, reason, metric_name,
                 member_scores, prefix_scores, fit_result):
        self.model = model
        self.members = members
        self.member_histories = member_histories
        self.path = path
        self.reason = reason
        self.metric_name = metric_name
        self.member_scores = member_scores
        self.prefix_scores = prefix_scores
        self.ensemble_score = prefix_scores[-1]
        self.fit_result = fit_result

    @property
    def table(self):
        rows = [(f"member {i}", s) for i, s in enumerate(self.member_scores)]
        rows.append(("ensemble", self.ensemble_score))
        rows += [(f"first {k} members", s) for k, s in enumerate(self.prefix_scores, 1)]
        return rows

    def __str__(self):
        lines = [f"fit_ensemble: {len(self.members)} members, {self.path} path ({self.reason})",
                 f"validation {self.metric_name}:"]
        lines += [f"  {name:20} {score:.4f}" for name, score in self.table]
        return "\n".join(lines)

    def plot(self):
        """The marginal-gain curve: the ensemble of the first k members."""
        import matplotlib

        matplotlib.use(matplotlib.get_backend())
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5, 3.4))
        ks = np.arange(1, len(self.prefix_scores) + 1)
        ax.plot(ks, self.prefix_scores, "o-", label="ensemble of first k")
        ax.scatter(np.arange(1, len(self.member_scores) + 1), self.member_scores, color="0.6",
                   s=12, label="member k alone")
        ax.set(xlabel="members k", ylabel=f"validation {self.metric_name}",
               title="marginal gain of each member")
        ax.legend()
        fig.tight_layout()
        return fig


def _member_probabilities(members, activations, x, kind):
    """Member predictions on x (an array, or a list of batches whose shapes
    vary), as the ensemble would average them."""
    preds = []
    for member, activation in zip(members, activations):
        if isinstance(x, list):
            out = np.concatenate([np.asarray(member.predict_on_batch(b), "float64") for b in x])
        else:
            out = np.asarray(sharding.predict(member, x, batch_size=1024), "float64")
        if kind == "mean":
            preds.append(out)
            continue
        single = out.shape[-1] == 1
        if activation not in ("softmax", "sigmoid"):
            if single:
                out = 1 / (1 + np.exp(-out))
            else:
                out = np.exp(out - out.max(-1, keepdims=True))
                out /= out.sum(-1, keepdims=True)
        preds.append(out)
    return np.stack(preds)


def _score(prob, y, kind):
    """Accuracy for classification, R^2 for regression."""
    y = np.asarray(y)
    if kind == "mean":
        pred = prob.reshape(len(y), -1)[:, 0]
        y = y.reshape(len(y), -1)[:, 0].astype("float64")
        return float(1 - ((y - pred) ** 2).sum() / max(((y - y.mean()) ** 2).sum(), 1e-12))
    if prob.shape[-1] == 1:
        pred = (prob[:, 0] > 0.5).astype(int)
    else:
        pred = prob.argmax(-1)
    if y.ndim > 1 and y.shape[-1] > 1:
        y = y.argmax(-1)
    return float((pred == y.reshape(-1)).mean())


def evaluate_members(members, x, y, average):
    """Validation scores: each member, and the ensemble of the first k."""
    kind = "mean" if average == "mean" else "probabilities"
    activations = [output_activation(m) for m in members]
    preds = _member_probabilities(members, activations, x, kind)
    member_scores = [_score(p, y, kind) for p in preds]
    prefix = [_score(preds[:k].mean(axis=0), y, kind) for k in range(1, len(members) + 1)]
    return ("R^2" if kind == "mean" else "accuracy"), member_scores, prefix
