"""What a fit returns: the decisions taken (`Tip`s), the trained model, the
history and how the run ended; a plain-text table and a plot of it."""

import dataclasses
import os
import sys
import textwrap

import numpy as np

from keras_recipes import calibration


@dataclasses.dataclass
class Tip:
    """One decision `fit_with_tips` took: which tip, what, and why."""

    number: int
    name: str
    setting: str
    reason: str
    override: str = ""  # the argument that changes this decision


def table(rows, headers, max_width=56):
    """A plain-text table; cells longer than `max_width` wrap onto more lines."""
    widths = [min(max(len(str(r[i])) for r in rows + [headers]), max_width)
              for i in range(len(headers))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()
    lines = [line(headers), line(["-" * w for w in widths])]
    for row in rows:
        cells = [textwrap.wrap(str(c), w) or [""] for c, w in zip(row, widths)]
        for k in range(max(len(c) for c in cells)):
            lines.append(line([c[k] if k < len(c) else "" for c in cells]))
    return "\n".join(lines)


def tips_table(tips):
    """The tips table: each decision, its setting, the evidence and the
    argument that overrides it."""
    return table([[t.number, t.name, t.setting, t.reason, t.override] for t in tips],
                 ["tip", "what", "setting", "why", "override with"])


class FitResult:
    """What `fit_with_tips` returns.

    Attributes:
        model: The trained `keras.Model`, preprocessing included: it takes
            raw inputs and saves/loads as one `.keras` file. It is compiled
            with the optimizer the recipe trained inside its
            `ClippedOptimizer` (the same object, with its state), so a file
            of Keras layers loads without importing keras_recipes.
        optimizer: The `ClippedOptimizer` training ran with (clipping,
            `read_stats()`); wrap `model.optimizer` in one again to keep
            clipping in further training.
        history: Dict of per-epoch lists (`loss`, `val_loss`, metrics,
            `learning_rate`, `update_ratio`, `grad_norm`, `clip_fraction`).
        tips: List of `Tip`: each applied (or skipped) tip, its setting and
            the reason.
        data: The `keras_recipes.data.Data` the model was trained on.
        execution: Dict describing how the step was compiled (`jit_compile`,
            the measured ratio when chosen automatically, blocking layers).
        layer_update_ratios: Per-epoch dicts of the per-layer update ratios.
        status: `"finished"`, `"stopped"` (the stopping rule), `"capped"`
            (the `epochs` cap ended a run whose validation loss was still
            improving), `"diverged"` (NaN or exploding loss that the
            recoveries, each undoing the epoch and dividing the rate by 5,
            could not cure; the last good weights are kept),
            `"interrupted"` (Ctrl-C; best weights and preprocessing kept) or
            `"not learning"` (the best validation loss is no better than a
            constant prediction from the training labels: their class
            frequencies or mean).
        events: What happened during training, in words.
        audit: The pre-training `Audit` (`audit=True`), or `None`.
        plan: The `Plan` that was trained (its decisions, read-only).
        best_epoch: The epoch (0-based) whose weights `model` holds, when
            the plateau rule restored the best ones; else `None`.
        table_shown: Whether the tips table was printed before training
            (`str(result)` then does not print it again).

    Every attribute is set when the result is built.
    """

    def __init__(self, model, history, tips, data, execution, layer_update_ratios,
                 seconds, events=None, status="finished", *, optimizer=None, audit=None,
                 table_shown=False, plan=None, best_epoch=None):
        self.status = status
        self.model = model
        self.history = history
        self.tips = tips
        self.data = data
        self.execution = execution
        self.layer_update_ratios = layer_update_ratios
        self.seconds = seconds
        self.events = events or []
        self.optimizer = optimizer
        self.audit = audit
        self.table_shown = table_shown
        self.plan = plan
        self.best_epoch = best_epoch

    def tips_table(self):
        return tips_table(self.tips)

    def __str__(self):
        head = (f"fit_with_tips: {self.status.upper()}"
                if self.status in ("diverged", "interrupted", "capped", "not learning")
                else "fit_with_tips")
        # The table was printed before training (verbose): not twice.
        table_text = ("tips: the table printed before training (result.tips_table())"
                      if self.table_shown else self.tips_table())
        lines = [head, table_text, ""]
        epochs = len(self.history.get("loss", []))
        summary = [f"status: {self.status}", f"epochs run: {epochs}",
                   f"training time: {self.seconds:.1f} s"]
        for key in ("loss", "val_loss", "accuracy", "val_accuracy", "learning_rate",
                    "update_ratio"):
            if self.history.get(key):
                summary.append(f"final {key}: {self.history[key][-1]:.4g}")
        if self.plan is not None and self.plan.decisions.target is not None:
            # The model trained on standardized targets; result.model predicts
            # in their units, the logged losses stay in the standardized ones.
            summary.append("losses in standardized target units (result.model predicts in "
                           "yours)")
        lines.append(" | ".join(summary))
        lines.extend(self.events)
        return "\n".join(lines)

    def summary(self):
        """`str(result)` without the tips table."""
        return "\n".join(str(self).splitlines()[-(1 + len(self.events)):])

    def __repr__(self):
        return (f"<FitResult {self.status} epochs={len(self.history.get('loss', []))} "
                f"tips={len(self.tips)}>")

    def plot(self, path=None):
        """A matplotlib figure: losses (best epoch marked), learning rate (its
        drops marked) and the update/weight ratio against the healthy band of
        tip 5. Saved to `path` when one is given (a script shows nothing)."""
        import matplotlib

        if matplotlib.get_backend().lower() in ("", "agg") or not _interactive():
            matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        h = self.history
        epochs = np.arange(1, len(h.get("loss", [])) + 1)
        marker = "o" if len(epochs) < 5 else None  # a line of one point is invisible
        lr = np.asarray(h.get("learning_rate", []), dtype="float64")
        # An LR drop at the end of epoch e shows from epoch e + 1 on.
        drops = np.flatnonzero(np.diff(lr) < 0) + 2 if lr.size else []
        fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
        ax = axes[0]
        for key in ("loss", "val_loss"):
            if h.get(key):
                ax.plot(epochs[: len(h[key])], h[key], label=key, marker=marker)
        best = getattr(self, "best_epoch", None)
        if best is not None and h.get("val_loss"):
            ax.plot([best + 1], [h["val_loss"][best]], "k*", ms=10, label=f"best (epoch {best + 1})")
        for i, d in enumerate(drops):
            ax.axvline(d, color="0.6", lw=0.8, ls="--", label="LR drop" if i == 0 else None)
        ax.set(title=f"loss ({self.status})", xlabel="epoch")
        ax.legend(fontsize=8)
        ax = axes[1]
        if lr.size:
            ax.semilogy(epochs, lr, drawstyle="steps-post", label="learning rate", marker=marker)
            for d in drops:
                ax.axvline(d, color="0.6", lw=0.8, ls="--")
        ax.set(title="learning rate (drops marked)", xlabel="epoch")
        ax = axes[2]
        if h.get("update_ratio"):
            ax.semilogy(epochs, h["update_ratio"], label="global", marker=marker)
            for name in (self.layer_update_ratios[0] if self.layer_update_ratios else {}):
                ax.semilogy(epochs[: len(self.layer_update_ratios)],
                            [r[name] for r in self.layer_update_ratios], lw=0.8, alpha=0.6,
                            label=name.split("/")[-1])
            # The band fit_with_tips warns and acts outside of, and the first
            # steps' target (the rows and UpdateRatioMonitor use the same).
            ax.axhspan(*calibration.run_band(), color="tab:green", alpha=0.1, label="healthy band")
            ax.axhline(calibration.TARGET, color="tab:green", lw=0.8, ls="--",
                       label="first steps' target")
            ax.axhline(1e-3, color="tab:green", lw=0.8, label="tip 5's 1e-3")
        ax.set(title="||update|| / ||weights||", xlabel="epoch")
        ax.legend(fontsize=7)
        fig.tight_layout()
        if path is not None:
            fig.savefig(path, dpi=110)
        return fig


def _interactive():
    try:
        from IPython import get_ipython

        return get_ipython() is not None
    except ImportError:
        return False




_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def user_stacklevel():
    """The `stacklevel` that makes a warning issued by the caller point at
    the first line outside keras_recipes (the user's call), however deep
    the package's own calls go."""
    frame, level = sys._getframe(1), 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE_DIR):
        frame, level = frame.f_back, level + 1
    return level
