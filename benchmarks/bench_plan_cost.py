"""Two fixed costs of a fit_with_tips call, side by side in one run (issue 28;
issue 36's calibration-cost row):

1. The calibration's probes through `model.fit` on training's own elements,
   one `fit` per probe (now), two per probe (one per half, the session
   before), and `train_on_batch` (before that): how many times the train
   step is traced during training after the plan traced it, the whole
   call's seconds and the calibration's own. Arms alternate call by call,
   several rounds, so the machine's noise falls on all.
2. The feature statistics of a wide array (2700 clips of 8000 samples, the
   size of the spoken digits' waveforms; synthetic, waveform-like values in
   [-1, 1], half of them zero padding): in blocks of about 2**20 values
   with log1p (now) against one pass over the whole array in float64 with
   log10(1 + x) (before; that code is kept here for the comparison).

    python benchmarks/bench_plan_cost.py [--rounds 5]
    KERAS_BACKEND=jax python benchmarks/bench_plan_cost.py
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import argparse
import math
import time
import warnings

import keras
import numpy as np

from common import device_line
from keras_recipes import calibration
from keras_recipes import plan as make_plan
from keras_recipes.data import core as data_core
from keras_recipes.data.stats import array_feature_stats

warnings.simplefilter("ignore")


def step_counter():
    """A counter of train-step traces (each trace calls train_step once)."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        from keras.src.backend.tensorflow.trainer import TensorFlowTrainer as Trainer
    elif backend == "jax":
        from keras.src.backend.jax.trainer import JAXTrainer as Trainer
    else:
        return None, None
    original = Trainer.train_step
    seen = []

    def counted(self, *args):
        seen.append(1)
        return original(self, *args)

    Trainer.train_step = counted
    return seen, lambda: setattr(Trainer, "train_step", original)


def two_fit_probe(model, clipped, batches, fit_input=None):
    """The probe before: one `fit` per half (kept here for the comparison)."""
    warm = len(batches) // 2
    clipped.reset_stats()
    losses = calibration._fit_steps(model, fit_input, batches[:warm])
    first, loss = losses[0], losses[-1]
    if math.isfinite(loss):
        clipped.reset_stats()
        loss = calibration._fit_steps(model, fit_input, batches[warm:])[-1]
    ratio = clipped.read_stats(reset=True).get("update_ratio", math.inf)
    finite = math.isfinite(loss) and math.isfinite(ratio) and ratio >= 0
    return (ratio if finite else math.inf), first


ARMS = ("train_on_batch", "fit x2", "fit x1 (now)")


def one_call(x, y, jit, arm):
    """Seconds of one call, of its calibration, and the train-step traces
    during its training."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(64, activation="relu"),
                              keras.layers.Dense(10)])
    through_fit = data_core.Data.calibration_batches
    originals = {}
    old = arm == "train_on_batch"
    probe = calibration._probe
    if arm == "fit x2":
        calibration._probe = two_fit_probe
    if old:  # the probes as before: train_on_batch on (x, y) pairs
        import keras_recipes.data.arraydata as arraydata
        import keras_recipes.data.tfdata as tfdata_module

        for cls in (getattr(tfdata_module, "TFData", None), arraydata.ArrayData):
            if cls is not None:
                originals[cls] = cls.calibration_batches
                cls.calibration_batches = through_fit  # the base class: pairs, no fit_input
    try:
        seen, restore = step_counter()
        began = time.perf_counter()
        plan = make_plan(model, (x, y), epochs=3, seed=0, verbose=0, jit_compile=jit)
        planned = len(seen) if seen is not None else 0
        result = plan.fit()
        seconds = time.perf_counter() - began
        retraced = (len(seen) - planned) if seen is not None else None
        if restore:
            restore()
    finally:
        calibration._probe = probe
        for cls, method in originals.items():
            cls.calibration_batches = method
    found = result.plan.decisions.calibration
    assert found.trace_reused is (not old)
    return seconds, found.seconds, retraced


def old_stats(x):
    """The statistics' inner loop before: float64 copies of the whole array."""
    x = np.asarray(x, dtype="float64").reshape(len(x), -1)
    logx = np.log10(1.0 + np.maximum(x, 0.0))
    return dict(s=x.sum(0), ss=(x * x).sum(0), mn=x.min(0), mx=x.max(0), ls=logx.sum(0),
                lss=(logx * logx).sum(0), pn=(x > 0).sum(0))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(device_line())
    from keras_recipes.datasets import load_digits

    x, y = load_digits("train")
    backend = keras.backend.backend()
    jits = [False, True] if backend == "tensorflow" else ["auto"]
    print(f"1. the calibration's probes, {backend}: digits (1437 rows), MLP 64, 3 epochs; "
          f"{args.rounds} rounds, arms alternating (the first call of each arm is warm-up, "
          "not counted)")
    print(f"{'jit_compile':>12} {'probes':>15} {'median s':>9} {'min s':>7} "
          f"{'calibration s':>14} {'train-step traces in training':>30}")
    for jit in jits:
        times = {arm: [] for arm in ARMS}
        probes = {arm: [] for arm in ARMS}
        traces = {}
        for arm in ARMS:
            one_call(x, y, jit, arm)  # warm-up: imports and first compiles
        for _ in range(args.rounds):
            for arm in ARMS:
                seconds, probing, retraced = one_call(x, y, jit, arm)
                times[arm].append(seconds)
                probes[arm].append(probing)
                traces[arm] = retraced
        for arm in ARMS:
            print(f"{str(jit):>12} {arm:>15} {np.median(times[arm]):9.2f} "
                  f"{min(times[arm]):7.2f} {np.median(probes[arm]):14.2f} {str(traces[arm]):>30}")
        now = ARMS[-1]
        for arm in ARMS[:-1]:
            print(f"{'':>12} {'now / ' + arm:>15} {np.median(times[now]) / np.median(times[arm]):9.2f}"
                  f" {'':>7} {np.median(probes[now]) / np.median(probes[arm]):14.2f}  (medians)")

    print("2. feature statistics of a 2700 x 8000 array (waveform-like, half zeros)")
    rng = np.random.default_rng(0)
    wave = (rng.normal(size=(2700, 8000)) * 0.05).clip(-1, 1).astype("float32")
    wave[:, 4000:] = 0.0
    rows = []
    for _ in range(3):
        began = time.perf_counter()
        old_stats(wave)
        before = time.perf_counter() - began
        began = time.perf_counter()
        array_feature_stats(wave)
        now = time.perf_counter() - began
        rows.append((before, now))
    for before, now in rows:
        print(f"   whole array, log10: {before:6.2f} s   blocks, log1p (now): {now:6.2f} s   "
              f"ratio {now / before:.3f}")


if __name__ == "__main__":
    main()
