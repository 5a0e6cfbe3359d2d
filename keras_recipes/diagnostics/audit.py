"""`audit(model, data)`: a report card on every tip, before any training.

Each rule (`keras_recipes.diagnostics.rules`) is a small function that
looks at the model and at what the data adapters measured on the training
split, and returns findings with the numbers it saw and one line of code
that fixes the problem. This module runs them and holds the report.
"""

import dataclasses
import json
import time

import keras
import numpy as np

from keras_recipes.data import make_data
from keras_recipes.diagnostics.rules import Finding
from keras_recipes.diagnostics.rules import RULES
from keras_recipes.diagnostics.rules import example_hashes
from keras_recipes.losses import infer_loss
from keras_recipes.modelinfo import fixed_batch_size
from keras_recipes.stateful import reset_states


class AuditReport:
    """The findings of `audit`, worst first."""

    def __init__(self, findings, seconds):
        order = {"fail": 0, "warn": 1, "pass": 2}
        self.findings = sorted(findings, key=lambda f: (order[f.status], f.tip))
        self.seconds = seconds

    @property
    def failures(self):
        return [f for f in self.findings if f.status == "fail"]

    @property
    def warnings(self):
        return [f for f in self.findings if f.status == "warn"]

    @property
    def ok(self):
        return not self.failures

    def rule(self, name):
        """The finding of one rule (None when the rule did not apply)."""
        for finding in self.findings:
            if finding.rule == name:
                return finding
        return None

    def to_dict(self):
        return {"ok": self.ok, "seconds": self.seconds,
                "findings": [dataclasses.asdict(f) for f in self.findings]}

    def __str__(self):
        lines = [f"audit: {len(self.failures)} fail, {len(self.warnings)} warn, "
                 f"{len(self.findings) - len(self.failures) - len(self.warnings)} pass "
                 f"({self.seconds:.1f} s)"]
        for f in self.findings:
            lines.append(f"[{f.status:4}] tip {f.tip:2d} {f.rule}: {f.message}")
            if f.fix:
                lines.append(f"       fix: {f.fix}")
        return "\n".join(lines)


def _loss_kind(loss):
    if isinstance(loss, keras.losses.SparseCategoricalCrossentropy):
        return "sparse"
    if isinstance(loss, keras.losses.BinaryCrossentropy):
        return "binary"
    name = getattr(loss, "name", str(loss))
    if "sparse_categorical" in str(name):
        return "sparse"
    return "other"


def audit_data(model, data, batch_size=128, loss=None, will_clip=False, compile_probe=True,
               skip=(), nonfinite=None):
    """Runs every rule on a model and an already resolved `Data`.

    `fit_with_tips` calls it with `compile_probe=False`: it measures XLA
    itself, and the probe's compile would cost more than the rest, and with
    `skip` holding the titles (`Finding.rule`) of the rules whose advice it
    applies by itself."""
    start = time.perf_counter()
    if not model.built:
        model.build((None,) + tuple(data.x_shape))
    # A model whose inputs fix the batch size is called at that size only.
    fixed = fixed_batch_size(model)
    x, y = data.first_batch(min(batch_size, 256))
    # The output's width, on real rows (a sequence's length may vary).
    output = model(keras.tree.map_structure(lambda a: a[:fixed or 1], x), training=False)
    units = int(output.shape[-1]) if len(output.shape) > 1 else 1
    if isinstance(loss, str):
        loss = keras.losses.get(loss)
    if loss is None:
        compiled = getattr(model, "compiled", False) and getattr(model, "loss", None) is not None
        loss = keras.losses.get(model.loss) if compiled else infer_loss(model, data.labels, units)[0]
    ctx = {
        "units": units, "loss": loss, "loss_kind": _loss_kind(loss), "batch_size": batch_size,
        "batch": (x, y), "will_clip": will_clip, "compile_probe": compile_probe,
        "train_hashes": example_hashes(data, "train"), "val_hashes": example_hashes(data, "validation"),
        "nonfinite": nonfinite, "fixed": fixed,
    }
    findings = []
    for rule in RULES:
        try:
            finding = rule(model, data, ctx)
        except Exception as error:  # a rule must never hide the others
            finding = Finding(0, rule.__name__[5:], "warn",
                              f"the rule could not run: {type(error).__name__}: {error}")
        # Skipped by the title its findings carry (what `report.rule()` takes);
        # the rules fit_with_tips skips are cheap, so they run and are dropped.
        if finding.rule not in skip:
            findings.append(finding)
    reset_states(model)  # training starts from zero states, as without the audit
    return AuditReport(findings, time.perf_counter() - start)


def audit(model, data, batch_size=128, validation_data=None, validation_split=0.2, seed=None,
          data_dir=None):
    """A report card on every tip, before any training.

    Checks the data (NaN/Inf, labels against the output, class balance,
    duplicates with conflicting labels, examples shared by the training and
    validation sets, centring and scale, log1p candidates), the setup (batch
    size, loss reduction, loss at initialization against log(K), kernel scales
    against `init_scale / sqrt(fan_in)`, clipping for recurrent layers, the
    LSTM forget-gate bias on long sequences, dropout) and the model's
    behaviour (inference deterministic, XLA compile probe, batch
    independence). NaN/Inf in the data is refused by the data adapters with
    counts and positions before anything else runs.

    Example:

    ```python
    report = audit(model, (x, y))
    print(report)
    for finding in report.findings:
        print(finding.tip, finding.status, finding.message, finding.fix)
    ```

    Args:
        model: A `keras.Model`.
        data: As for `fit_with_tips`.
        batch_size: Integer. The batch size you plan to use. Defaults to 128.
        validation_data, validation_split, seed, data_dir: As for
            `fit_with_tips`.

    Returns:
        An `AuditReport` (`.findings`, `.ok`, `str()`, `.to_dict()`).
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"`model` must be a keras.Model. Received: model={model!r}")
    nonfinite = None
    try:
        resolved = make_data(data, validation_data, validation_split, batch_size, seed, data_dir)
    except ValueError as error:
        if "NaN/Inf" not in str(error):
            raise
        # The finite-data rule fails with the adapter's counts; every other
        # rule still runs, on the examples that are finite.
        data, dropped = _finite_examples(data)
        if data is None:
            raise
        nonfinite = (f"{str(error).split(' Received:')[0].rstrip('.')}; the other rules measured the "
                     f"data without those {dropped} examples")
        resolved = make_data(data, validation_data, validation_split, batch_size, seed, data_dir)
    return audit_data(model, resolved, batch_size, nonfinite=nonfinite)


def _finite_examples(data):
    """(x, y) arrays without the examples holding NaN/Inf, and how many were
    dropped; (None, 0) for other forms of data."""
    if not (isinstance(data, (tuple, list)) and len(data) == 2):
        return None, 0
    x, y = (np.asarray(v.to_numpy() if hasattr(v, "to_numpy") else v) for v in data)
    if x.dtype.kind not in "biuf" or y.dtype.kind not in "biuf" or len(x) != len(y):
        return None, 0
    keep = np.ones(len(x), bool)
    for array in (x, y):
        if array.dtype.kind == "f":
            keep &= np.isfinite(array.reshape(len(array), -1)).all(axis=1)
    if not keep.any():
        return None, 0
    return (x[keep], y[keep]), int((~keep).sum())


def report_json(report):
    return json.dumps(report.to_dict(), indent=2)
