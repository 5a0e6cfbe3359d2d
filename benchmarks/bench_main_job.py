"""The README's main job (`keras-recipes train`: the embedded digits, the
untuned `mlp` preset, fit_with_tips with nothing else) over several seeds,
with each default optimizer: what the first command a user runs prints.

    python benchmarks/bench_main_job.py [--seeds 0,1,2] [--optimizers auto,sgd]
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before TensorFlow is imported

import argparse
import time
import warnings

import numpy as np

from keras_recipes import fit_with_tips
from keras_recipes.callbacks import UpdateRatioWarning
from keras_recipes.datasets import load_digits
from keras_recipes.models import preset


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--optimizers", default="auto,sgd")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=UpdateRatioWarning)
    xt, yt = load_digits("test")
    print(f"{'optimizer':9} {'seed':>4} {'test_acc':>8} {'epochs':>6} {'best':>4} {'rate':>8} {'s':>6}")
    scores = {}
    for name in args.optimizers.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            began = time.perf_counter()
            result = fit_with_tips(preset("mlp", (64,), 10), "digits", seed=seed, verbose=0,
                                   optimizer=name)
            seconds = time.perf_counter() - began
            acc = float((result.model.predict(xt, verbose=0).argmax(-1) == yt).mean())
            scores.setdefault(name, []).append(acc)
            rate = result.history["learning_rate"][0]
            print(f"{name:9} {seed:4d} {acc:8.4f} {len(result.history['loss']):6d} "
                  f"{result.best_epoch + 1:4d} {rate:8.3g} {seconds:6.1f}", flush=True)
    for name, values in scores.items():
        print(f"{name}: mean test accuracy {np.mean(values):.4f} over {len(values)} seeds")


if __name__ == "__main__":
    main()
