"""The execution rows: XLA, determinism, and the audit of the model as it
will be trained.
"""

import keras

from keras_recipes import build
from keras_recipes import determinism
from keras_recipes.data import leaves
from keras_recipes.diagnostics.audit import audit_data
from keras_recipes.result import Tip


def decide_audit(model, data, o, parts):
    if not o["audit"]:
        parts["audit"] = None
        return []
    if data.structured:
        parts["audit"] = None
        through = [spec.dtype for (_, spec), stats in zip(leaves(data.x_spec),
                                                          data.input_stats or [])
                   if stats is None]
        if len(leaves(data.x_spec)) == 1 and len(data.output_labels or []) == 1 and through:
            what = {"sparse": "sparse, passed through as given",
                    "ragged": "ragged, passed through as given"}.get(
                through[0], "text it encodes itself")
            why = f"its rules read dense numeric features, and this model's input is {what}"
        else:
            why = ("the audit checks models with one numeric input and one output; run "
                   "keras_recipes.audit on each part")
        return [Tip(0, "audit", "not run", why, "")]
    # Rules whose advice this call applies itself are not reported.
    skip = {"dropout", "gradient clipping", "batch size"}
    if o["preprocess"]:
        skip |= {"inputs standardized", "log1p"}
    # The model as it will be trained: after the preprocessing added here.
    trained = model if parts.get("fused") is not None else parts["full"]
    report = audit_data(trained, data, o["batch_size"], loss=parts["loss"],
                        will_clip=parts["max_norm"] is not None, compile_probe=False, skip=skip)
    parts["audit"] = report
    if report.failures:
        raise ValueError(
            "The audit found problems that would spoil training (fix them, or pass "
            "audit=False to train anyway):\n"
            + "\n".join(f"  tip {f.tip} {f.rule}: {f.message} (fix: {f.fix})"
                        for f in report.failures))
    if report.warnings:
        return [Tip(0, "audit", "; ".join(f"{f.rule}: {f.message}" for f in report.warnings),
                    "warnings only; see result.audit", "audit=False")]
    return []


def decide_determinism(o, parts):
    """Same seed, same numbers: the backend's deterministic kernels for the
    run when a seed is given (`deterministic="auto"`). Keras turns XLA off
    under TensorFlow's op determinism, so on TensorFlow the two exclude each
    other; which one wins is said."""
    wanted = o["deterministic"]
    enabled = o["seed"] is not None if wanted == "auto" else wanted
    conflict = enabled and parts["jit"] and keras.backend.backend() == "tensorflow"
    if conflict and wanted is True and o["jit_compile"] is True:
        raise ValueError(
            "jit_compile=True and deterministic=True exclude each other on TensorFlow: Keras "
            "runs without XLA under op determinism. Choose one. "
            "Received: jit_compile=True, deterministic=True")
    if conflict and wanted is True:
        parts["jit"] = False
        parts["execution"] = dict(parts["execution"], jit_compile=False)
        parts["jit_note"] = ("deterministic=True: Keras runs without XLA under TensorFlow's "
                             "op determinism")
    elif conflict:
        parts["deterministic"] = False
        return Tip(0, "determinism", "off (XLA is on)",
                   "Keras turns XLA off under TensorFlow's op determinism, so with XLA the "
                   "last bits of two runs may differ; deterministic=True gives bitwise repeats "
                   "without XLA", "deterministic=, jit_compile=")
    parts["deterministic"] = bool(enabled)
    setting, reason = determinism.describe(enabled)
    return Tip(0, "determinism", setting, reason, "deterministic=")


def decide_execution(parts, data, o):
    """XLA where it pays. With a seed the choice follows a rule (device,
    blocking layers), so two runs of the same call compile alike."""
    jit, tip, execution = build.choose_jit(o["jit_compile"], parts, data, o["seed"])
    parts.update(jit=jit, execution=execution)
    return tip
