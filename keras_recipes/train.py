"""The fit stage: runs a `Plan` (compile, resume, `model.fit`) and wraps
what happened in a `FitResult`. A run that diverged or was interrupted says
so, in `result.status`, `str(result)` and a warning."""

import dataclasses
import math
import os
import signal
import tempfile
import threading
import time
import warnings

import keras

from keras_recipes import build
from keras_recipes import calibration
from keras_recipes import determinism
from keras_recipes import distribute
from keras_recipes import losses
from keras_recipes import sharding
from keras_recipes.callbacks import DivergenceGuard
from keras_recipes.callbacks import ReduceLROnPlateau
from keras_recipes.callbacks import ScaledSchedule
from keras_recipes.callbacks import UpdateRatioMonitor
from keras_recipes.callbacks import describe_guard_event
from keras_recipes.callbacks import learning_rate_schedule
from keras_recipes.checkpoint import CheckpointCallback
from keras_recipes.checkpoint import Checkpointer
from keras_recipes.ensemble import MemberBestWeights
from keras_recipes.result import FitResult
from keras_recipes.result import Tip
from keras_recipes.result import tips_table
from keras_recipes.result import user_stacklevel
from keras_recipes.stateful import ResetStates


class GracefulInterrupt(keras.callbacks.Callback):
    """Ctrl-C stops training after the current step (the result is kept and
    marked interrupted); a second Ctrl-C aborts at once."""

    def __init__(self):
        super().__init__()
        self.interrupted = False
        self._previous = None

    def _handler(self, signum, frame):
        if self.interrupted:
            raise KeyboardInterrupt
        self.interrupted = True
        # Keras checks stop_training after every step; setting it here needs
        # no batch hook (a batch hook makes Keras convert the logs of every
        # step to Python numbers, a device sync per step).
        if self.model is not None:
            self.model.stop_training = True
        print("\nInterrupted: stopping after this step (Ctrl-C again to abort).", flush=True)

    def on_train_begin(self, logs=None):
        self.interrupted = False
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)

    def on_train_end(self, logs=None):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None


@dataclasses.dataclass
class _Run:
    """What training finds for itself, kept apart from the plan's decisions
    (which it never rewrites): the checkpointer, the checkpoint being
    resumed, the XLA setting the step runs with, and the rows it adds to
    the plan's in `result.tips`."""

    checkpointer: object = None
    resume: dict = None
    jit: bool = False
    rows: list = dataclasses.field(default_factory=list)


def _resume(plan, run, full, optimizer, plateau):
    """Loads the newest checkpoint; returns (initial epoch, history, layer history)."""
    resume, checkpointer = run.resume, run.checkpointer
    recorded = resume.get("fingerprint")
    if recorded is not None:
        now = plan.fingerprint()
        differ = [k for k in now if recorded.get(k) != now[k]]
        if differ:
            raise ValueError(
                f"`checkpoint_dir` holds a run with other {' and '.join(differ)} than this call "
                f"({checkpointer.directory}); resuming it would mix two runs. Use another "
                "folder, or delete this one to start over. "
                f"Received: checkpoint_dir={str(checkpointer.directory)!r}")
    latest = checkpointer.latest()
    checkpointer.read(latest, full, optimizer)
    if plateau is not None:
        plateau.set_state(resume["plateau"])
        plateau.best_weights = checkpointer.read_arrays(latest, "best_weights")
    if resume.get("schedule_scale") is not None:
        base = learning_rate_schedule(optimizer)
        if base is not None:
            optimizer.learning_rate = ScaledSchedule(base, resume["schedule_scale"])
    return resume["epoch"] + 1, resume["history"], resume["layer_history"]


def _checkpoint_callback(plan, checkpointer, monitor, plateau, past, jit, member_best=None):
    run_history = {k: list(v) for k, v in past[0].items()}
    full = plan.decisions.full

    def checkpoint_state(epoch, logs):
        for key, value in logs.items():
            run_history.setdefault(key, []).append(float(value))
        schedule = learning_rate_schedule(full.optimizer)
        state = {
            "epoch": epoch,
            "history": run_history,
            "layer_history": past[1] + monitor.layer_history,
            "plateau": plateau.get_state() if plateau is not None else None,
            "jit_compile": bool(jit),
            "schedule_scale": schedule.scale if isinstance(schedule, ScaledSchedule) else None,
            "fingerprint": plan.fingerprint(),
            "member_best": member_best.get_state() if member_best is not None else None,
        }
        return state, {"best_weights": plateau.best_weights if plateau is not None else None,
                       "member_best": member_best.arrays() if member_best is not None else None}

    return CheckpointCallback(checkpointer, checkpoint_state)


def _prepare(plan):
    """The checkpointer and the checkpoint to resume, if any."""
    decided, o = plan.decisions, plan.options
    run = _Run(jit=decided.jit)
    if o["checkpoint_dir"] is not None:
        run.checkpointer = Checkpointer(o["checkpoint_dir"],
                                        writes=distribute.is_chief(decided.strategy))
        run.resume = run.checkpointer.peek()
    if run.resume is not None:
        run.jit = run.resume["jit_compile"]
        run.rows.append(Tip(0, "execution", f"jit_compile={run.jit}",
                            "as chosen by the run being resumed"))
    return run


def _callbacks(plan, run):
    decided, o = plan.decisions, plan.options
    plateau = (ReduceLROnPlateau.halve(**decided.plateau) if decided.plateau is not None
               else None)
    # The recipe steers the rate it chose (learning_rate="auto"); a rate the
    # user fixed is only rescued from divergence.
    steer = decided.compile is None and plan.options["learning_rate"] == "auto"
    interrupt = GracefulInterrupt()
    # The reference is one model's first loss (the calibration's); a fused
    # ensemble's loss is the members' sum, so the guard judges each member.
    reference = decided.initial_loss
    fused = decided.fused
    low, high = calibration.run_band()
    guard = DivergenceGuard(lower_when_high=steer, verbose=int(decided.verbose > 0),
                            low=low, high=high,
                            reference_loss=reference if reference is not None
                            and math.isfinite(reference) else None,
                            members=fused.size if fused is not None else None,
                            baseline_loss=(decided.baseline[0] if steer and fused is None
                                           and decided.baseline
                                           and decided.baseline[0] > 0 else None))
    # One band (issue 36 item 5), read from the calibration's target: the
    # monitor warns where the guard acts (far above, held for 3 epochs; far
    # below), and its advice aims at the target, so a run at its calibrated
    # rate is not told it is too fast.
    monitor = UpdateRatioMonitor(target=calibration.TARGET, low=low, high=high)
    checkpointer = run.checkpointer
    optimizer = build.compile_model(decided, run.jit)
    past = (o["initial_epoch"], {}, [])  # model.fit's initial_epoch, unless resumed
    if run.resume is not None:
        past = _resume(plan, run, decided.full, optimizer, plateau)
        run.rows.append(Tip(0, "resumed", f"from the checkpoint after epoch {past[0]}",
                            f"found in {checkpointer.directory}", "checkpoint_dir="))
    # Order matters: the monitor logs the update ratio the guard and the
    # plateau rule read; at the end of training the guard restores the last
    # good weights first, then the plateau callback the best ones.
    # Fused ensemble members: each restored from its own best epoch, after
    # the plateau rule's restore (by their summed loss).
    member_best = None
    if decided.fused is not None and plateau is not None and plateau.restore_best_weights:
        member_best = MemberBestWeights(decided.fused)
        if run.resume is not None and run.resume.get("member_best") is not None:
            member_best.set_state(run.resume["member_best"],
                                  checkpointer.read_arrays(checkpointer.latest(), "member_best"))
    callbacks = ([interrupt, monitor, guard] + ([plateau] if plateau else [])
                 + ([ResetStates()] if o.get("stateful") else [])
                 + ([member_best] if member_best else []) + list(o["callbacks"] or []))
    if checkpointer is not None:
        # Last, so that every callback before it has updated its state.
        callbacks.append(_checkpoint_callback(plan, checkpointer, monitor, plateau, past[1:],
                                              run.jit, member_best))
    return callbacks, past, dict(plateau=plateau, monitor=monitor, guard=guard, interrupt=interrupt,
                                 member_best=member_best)


def _fit(plan, callbacks, initial_epoch, plateau):
    decided, o, data = plan.decisions, plan.options, plan.data
    epochs = o["epochs"]
    # A run that had already stopped (the stopping rule) stays stopped.
    last_epoch = initial_epoch if plateau is not None and plateau.stopped_epoch is not None else epochs
    # All remaining epochs, each shuffled by (seed, epoch): the same orders
    # whether or not the run was interrupted and resumed.
    fused, class_weight = decided.fused, o["class_weight"]
    members = None
    if fused is not None:
        # Members read their own batches; class weights become per-member
        # sample weights (Keras' class_weight cannot read stacked targets).
        members, class_weight = fused.shuffle_seeds(data.shuffle_seed), None
    train, validation = data.fit_inputs(initial_epoch, max(last_epoch, initial_epoch),
                                        o["shuffle"], o["validation_steps"], members=members,
                                        class_weight=o["class_weight"])
    return decided.full.fit(
        train, steps_per_epoch=data.steps_per_epoch, validation_data=validation, epochs=last_epoch,
        callbacks=callbacks, verbose=decided.verbose, shuffle=False, initial_epoch=initial_epoch,
        class_weight=class_weight, validation_freq=o["validation_freq"])


def _events(watch, epochs_run, epochs, baseline=None, train_loss=()):
    guard, plateau, interrupt = watch["guard"], watch["plateau"], watch["interrupt"]
    events, status = [], "finished"
    if guard.failed is not None:
        status = "diverged"
        failed = guard.failed
        events.append(f"training diverged: loss {failed['loss']:.4g} at epoch "
                      f"{failed['epoch'] + 1} with learning rate {failed['learning_rate']:.4g}, "
                      f"after {len(guard.events)} recover{'ies' if len(guard.events) != 1 else 'y'}"
                      "; stopped and restored the last good weights. Lower learning_rate= (or "
                      "clip_norm=) and run again")
    events += [describe_guard_event(e) for e in guard.events]
    if interrupt.interrupted:
        status = "interrupted" if status == "finished" else status
        events.append("interrupted (Ctrl-C): stopped after the current step")
    if plateau is not None and plateau.stopped_epoch is not None:
        status = "stopped" if status == "finished" else status
        events.append(f"stopped at epoch {plateau.stopped_epoch + 1}: {plateau.stop_reason}")
    elif (status == "finished" and plateau is not None and epochs_run >= epochs
          and plateau.improved_epoch is not None
          and epochs - 1 - plateau.improved_epoch < plateau.patience):
        # The cap is a budget: a run it ended before the stopping rule could
        # judge says so, and whether it was still improving at the end.
        status = "capped"
        last = plateau.improved_epoch + 1
        if last == epochs:
            events.append(f"epoch cap reached while still improving: val_loss improved "
                          f"({plateau.threshold_text()}) at epoch {last} of {epochs}; raise "
                          "epochs= to train longer")
        else:
            events.append(f"epoch cap reached before the stopping rule could judge: val_loss "
                          f"last improved ({plateau.threshold_text()}) at epoch {last} of "
                          f"{epochs}, and the plateau rule waits {plateau.patience} epochs "
                          "without improvement; raise epochs= to let it decide")
    learned = losses.not_learning_event(watch["plateau"], baseline, train_loss)
    # A budget shorter than a plateau's patience is too early to tell: said,
    # not the status.
    early = status == "capped" and epochs_run < plateau.patience
    if learned is not None and status in ("finished", "stopped", "capped") and not early:
        status = "not learning"
        events.insert(0, learned)
    elif learned is not None:
        events.append(learned.replace("not learning:", "not learning yet:", 1))
    if plateau is not None and plateau.best_epoch is not None:
        events.append(f"weights restored from epoch {plateau.best_epoch + 1} "
                      f"(val_loss {plateau.best_weights_value:.4g})")
    member_best = watch.get("member_best")
    if member_best is not None and member_best.event() is not None:
        events.append(member_best.event())
    return status, events


def _outcome_rows(watch, status, events):
    """Rows for what the run did on its own: each rate the guard changed,
    and a cap that ended a run still improving."""
    rows = [Tip(5 if e["kind"] in ("ratio high", "not learning") else 4, "learning rate",
                f"{'raised' if e['kind'] == 'not learning' else 'lowered'} at epoch "
                f"{e['epoch'] + 1}", describe_guard_event(e), "learning_rate=")
            for e in watch["guard"].events]
    if status == "capped":
        headline = _headline(status, events)
        rows.append(Tip(4, "epochs", "cap reached while still improving"
                        if "while still improving" in headline else
                        "cap reached before the stopping rule could judge", headline, "epochs="))
    if status == "not learning":
        headline = _headline(status, events)
        rows.append(Tip(5, "learning", "not learning", headline,
                        losses.not_learning_override(headline)))
    return rows


# Issue 36's budget for the calibration and the step's first tracing, as a
# share of the whole call (plan and training).
CALIBRATION_BUDGET = 0.05


def _calibration_cost(decided, train_seconds):
    """The calibration's cost as a share of the whole call (plan and
    training), with the reason when it is over its 5% budget: a row, known
    only once training ended."""
    found = decided.calibration
    if found is None:
        return []
    total = decided.plan_seconds + train_seconds
    cost = found.seconds + found.trace_seconds
    share = cost / total if total > 0 else 0.0
    probes = f"{100 * found.seconds / total:.1f}%" if total > 0 else "0%"
    setting = (f"{cost:.1f} s of the whole call's {total:.1f} s ({100 * share:.1f}%): the probes "
               f"{found.seconds:.1f} s ({probes}) and the step's first tracing "
               f"{found.trace_seconds:.1f} s, " + ("which training reuses" if found.trace_reused
                  else "(training traces its own: the probes ran train_on_batch, on a live "
                  "generator or under a distribution strategy)"))
    budget = f"{100 * CALIBRATION_BUDGET:g}%"
    if share <= CALIBRATION_BUDGET:
        why = f"within the {budget} budget"
    else:
        why = (f"over the {budget} budget because the run is short ({train_seconds:.1f} s of "
               "training against the calibration's fixed cost; the share falls as runs get "
               "longer)" + (": most of it is the tracing, which any first step pays"
                             if found.trace_seconds >= found.seconds else "")
               + "; a learning_rate= number skips the probes")
    return [Tip(5, "calibration cost", setting, why, "learning_rate=")]


def _headline(status, events):
    """The event that gave the run its status."""
    starts = {"diverged": "training diverged", "interrupted": "interrupted",
              "capped": "epoch cap reached", "not learning": "not learning"}[status]
    return next(e for e in events if e.startswith(starts))


class _KeepTrained:
    """Nothing trained is lost: when a step after the training loop fails
    (assembling result.model, the ensemble, the final file), the trained
    weights are written to a named file first and the error says what
    failed and where they are."""

    def __init__(self, plan, checkpointer):
        self.plan, self.checkpointer, self.stage = plan, checkpointer, None

    def __enter__(self):
        return self

    def __exit__(self, kind, error, tb):
        if error is None or not isinstance(error, Exception):
            return False
        decided = self.plan.decisions
        # The user's own model holds the trained weights (the training model
        # wraps it); a fused ensemble's are in its training model.
        model = decided.full if decided.fused is not None else self.plan.model
        folder = (self.checkpointer.directory if self.checkpointer is not None
                  else tempfile.mkdtemp(prefix="keras_recipes_"))
        path = os.path.join(str(folder), f"{model.name.lstrip('_') or 'model'}_trained.weights.h5")
        try:
            model.save_weights(path)
        except Exception as save_error:  # noqa: BLE001 - report both failures
            raise RuntimeError(
                f"fit_with_tips trained, then failed while {self.stage} ({type(error).__name__}: "
                f"{error}); writing the trained weights to {path} failed too "
                f"({type(save_error).__name__}: {save_error}). They are still in the model "
                "object you passed.") from error
        raise RuntimeError(
            f"fit_with_tips trained, then failed while {self.stage} ({type(error).__name__}: "
            f"{error}). The trained weights are saved in {path}: "
            f"`{'training_model' if decided.fused is not None else 'model'}.load_weights("
            f"{path!r})` restores them (the model object you passed holds them too).") from error


def run(plan):
    """Trains as `plan` says; returns a `FitResult` (for a plan with fused
    members, the `EnsembleResult`, whose `fit_result` is the fused fit's)."""
    start = time.perf_counter()
    decided = plan.decisions
    with distribute.Scope(decided.strategy), determinism.deterministic(decided.deterministic):
        run_state = _prepare(plan)
        callbacks, past, watch = _callbacks(plan, run_state)
        if decided.verbose:
            print(tips_table(_tips(plan, run_state)), flush=True)
        history = _fit(plan, callbacks, past[0], watch["plateau"])
        with _KeepTrained(plan, run_state.checkpointer) as keep:
            keep.stage = "building the result"
            return _result(plan, run_state, history, past, watch, start, keep)


def _tips(plan, run_state):
    """The plan's rows, then what training found (a resumed run's execution
    replaces the planned one)."""
    replaced = {t.name for t in run_state.rows}
    return [t for t in plan.tips if t.name not in replaced] + run_state.rows


def _result(plan, run_state, history, past, watch, start, keep):
    """The result of a finished fit (inside `_KeepTrained`), built whole."""
    decided = plan.decisions
    merged = {k: list(v) for k, v in past[1].items()}
    for key, values in history.history.items():
        merged[key] = merged.get(key, []) + list(values)
    full = decided.full
    fused = decided.fused
    execution = dict(decided.execution, jit_compile_after_fit=bool(full.jit_compile),
                     replicas=distribute.replicas(decided.strategy),
                     workers=distribute.workers(decided.strategy),
                     **({"ensemble_path": "fused"} if fused is not None else {}))
    # Epochs before a user's initial_epoch count as run (model.fit's numbering).
    ran = len(merged.get("loss", [])) + (plan.options["initial_epoch"] if run_state.resume is None
                                         else 0)
    status, events = _events(watch, ran, plan.options["epochs"],
                             decided.baseline if fused is None else None,
                             merged.get("loss", ()))
    keep.stage = "assembling result.model"
    model = full if fused is not None else build.result_model(decided, full, plan.model, plan.data)
    wrapper = build.unwrap_optimizer(decided, model, full) if fused is None else None
    keep.stage = "building the result"
    plateau = watch["plateau"]
    seconds = time.perf_counter() - start
    result = FitResult(model, merged, _tips(plan, run_state) + _outcome_rows(watch, status, events)
                       + _calibration_cost(decided, seconds),
                       plan.data, execution,
                       past[2] + watch["monitor"].layer_history,
                       seconds, events, status,
                       optimizer=wrapper or getattr(full, "optimizer", None),
                       audit=decided.audit, table_shown=bool(decided.verbose), plan=plan,
                       best_epoch=plateau.best_epoch if plateau is not None else None)
    if status in ("diverged", "interrupted", "capped", "not learning"):
        headline = _headline(status, events)  # "not learning: ..." says its status once
        warnings.warn(f"fit_with_tips {status}: {headline.removeprefix(status + ': ')}",
                      RuntimeWarning, stacklevel=user_stacklevel())
    if fused is not None:
        keep.stage = "assembling the ensemble"
        result = fused.assemble(decided, result)
        # The file is the averaging ensemble on raw inputs (the training
        # model only exists to train the members).
        model = result.model
    if run_state.checkpointer is not None and status != "interrupted":
        keep.stage = "saving the final model"
        # One process writes: Keras' saving makes throwaway variables, which
        # under a distribution of several processes would wait for the others.
        with sharding.paused():
            run_state.checkpointer.save_final(model)
    return result

