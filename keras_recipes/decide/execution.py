"""The execution rows: XLA, determinism, and the audit of the model as it
will be trained.
"""

import statistics
import time
import warnings

import keras
import numpy as np

from keras_recipes import build
from keras_recipes import determinism
from keras_recipes import sharding
from keras_recipes.data import leaves
from keras_recipes.diagnostics.audit import audit_data
from keras_recipes.modelinfo import jit_blockers
from keras_recipes.result import Tip
from keras_recipes.result import user_stacklevel

_JIT_PROBE_STEPS = 6


def decide_audit(model, data, o, decided):
    if not o["audit"]:
        decided.audit = None
        return []
    if data.structured:
        decided.audit = None
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
    trained = model if decided.fused is not None else decided.full
    report = audit_data(trained, data, o["batch_size"], loss=decided.loss,
                        will_clip=decided.max_norm is not None, compile_probe=False, skip=skip)
    decided.audit = report
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


def decide_determinism(o, decided):
    """Same seed, same numbers: the backend's deterministic kernels for the
    run when a seed is given (`deterministic="auto"`). Keras turns XLA off
    under TensorFlow's op determinism, so on TensorFlow the two exclude each
    other; which one wins is said."""
    wanted = o["deterministic"]
    enabled = o["seed"] is not None if wanted == "auto" else wanted
    conflict = enabled and decided.jit and keras.backend.backend() == "tensorflow"
    if conflict and wanted is True and o["jit_compile"] is True:
        raise ValueError(
            "jit_compile=True and deterministic=True exclude each other on TensorFlow: Keras "
            "runs without XLA under op determinism. Choose one. "
            "Received: jit_compile=True, deterministic=True")
    if conflict and wanted is True:
        decided.jit = False
        decided.execution = dict(decided.execution, jit_compile=False)
        decided.jit_note = ("deterministic=True: Keras runs without XLA under TensorFlow's "
                             "op determinism")
    elif conflict:
        decided.deterministic = False
        return Tip(0, "determinism", "off (XLA is on)",
                   "Keras turns XLA off under TensorFlow's op determinism, so with XLA the "
                   "last bits of two runs may differ; deterministic=True gives bitwise repeats "
                   "without XLA", "deterministic=, jit_compile=")
    decided.deterministic = bool(enabled)
    setting, reason = determinism.describe(enabled)
    return Tip(0, "determinism", setting, reason, "deterministic=")


def decide_execution(decided, data, o):
    """XLA where it pays. With a seed the choice follows a rule (device,
    blocking layers), so two runs of the same call compile alike."""
    jit, tip, execution = choose_jit(o["jit_compile"], decided, data, o["seed"])
    decided.update(jit=jit, execution=execution)
    return tip


def _probe_step_seconds(decided, batch, jit):
    """Median seconds of a train step with or without XLA (weights restored)."""
    full = decided.full
    if decided.fused is not None:  # a batch for every member
        members = decided.fused.size
        batch = tuple(keras.tree.map_structure(
            lambda v: np.repeat(np.asarray(v)[:, None], members, axis=1), b) for b in batch)
    weights = sharding.host_weights(full)
    build.compile_model(decided, jit)
    full.train_on_batch(*batch)  # compiles
    times = []
    for _ in range(_JIT_PROBE_STEPS):
        start = time.perf_counter()
        full.train_on_batch(*batch)
        times.append(time.perf_counter() - start)
    full.set_weights(weights)
    return statistics.median(times)


def _accelerator():
    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf

    found = tf.config.list_logical_devices("GPU") + tf.config.list_logical_devices("TPU")
    return found[0].device_type if found else None


RAGGED_JIT = ("ragged input: its values change shape every batch, so XLA compiles the step "
              "anew for each batch (measured 62x slower than without: bench_ragged_inputs)")


def choose_jit(jit_compile, decided, data, seed):
    """The XLA decision: returns (jit, Tip, execution dict)."""
    full, no_xla = decided.full, decided.no_xla
    blockers = jit_blockers(full)
    blocked = f"; layers blocking XLA: {', '.join(blockers)}" if blockers else ""
    base = {"blocked_by": blockers}
    user = (decided.compile or {}).get("jit_compile")
    if jit_compile == "auto" and user in (True, False):
        jit_compile, why = user, "from model.compile"
    else:
        why = "as passed"
    if no_xla is not None:
        return False, Tip(0, "execution", "jit_compile=False", no_xla, "strategy="), {
            **base, "jit_compile": False, "no_xla": no_xla}
    if jit_compile in (True, False):
        if jit_compile and blockers:
            warnings.warn(f"jit_compile=True was asked, but layer(s) {blockers} do not support "
                          "XLA; Keras will run the whole model without XLA.",
                          stacklevel=user_stacklevel())
        return jit_compile, Tip(0, "execution", f"jit_compile={jit_compile}", why + blocked,
                                "jit_compile="), {**base, "jit_compile": jit_compile}
    rule = _jit_rule(blockers, blocked, getattr(data, "ragged", False))
    if rule is not None or seed is not None:
        jit, reason = rule or (False, "seed given: a fixed rule, not a timing, so runs repeat "
                                      "(CPU with TensorFlow: plain steps, measured faster here "
                                      "for conv nets; see BUILD_NOTES.md)")
        return jit, Tip(0, "execution", f"jit_compile={jit}", reason, "jit_compile="), {
            **base, "jit_compile": jit, "rule": reason}
    batch = data.first_batch()
    xla = _probe_step_seconds(decided, batch, True)
    plain = _probe_step_seconds(decided, batch, False)
    jit, ratio = xla < plain, plain / xla
    tip = Tip(0, "execution", f"jit_compile={jit}",
              f"CPU: measured {_JIT_PROBE_STEPS} steps each way, XLA step {xla * 1e3:.2f} ms vs "
              f"plain {plain * 1e3:.2f} ms (plain/XLA = {ratio:.2f})", "jit_compile=")
    return jit, tip, {**base, "jit_compile": jit, "xla_step_s": xla, "plain_step_s": plain,
                      "plain_over_xla": ratio}


def _jit_rule(blockers, blocked, ragged=False):
    """(jit, reason) where no measurement is needed, else None."""
    if ragged:
        return False, RAGGED_JIT
    if keras.backend.backend() == "jax":
        return True, "the JAX backend always compiles with XLA"
    if keras.backend.backend() == "torch":
        return False, "torch: Keras' own 'auto' (no torch.compile unless asked)"
    if blockers:
        return False, "XLA not possible" + blocked
    device = _accelerator()
    if device:
        return True, f"accelerator present ({device})"
    return None
