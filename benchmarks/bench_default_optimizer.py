"""Which default optimizer should fit_with_tips use? Same models and data as
bench_fit.py, the whole recipe each time, only the optimizer changes.

    python benchmarks/bench_default_optimizer.py [--seeds 0,1]

Candidates: SGD(0.1) without momentum (the advice's literal "0.1"),
SGD(0.1, momentum=0.9) (the current default), SGD(0.01, momentum=0.9)
(the same effective step as 0.1 without momentum), and Adam(1e-3) (passed
through model.compile). Prints the test metric (accuracy, R^2 for grunfeld)
and the epochs the stopping rule ran, per seed.
"""

import argparse

import keras

from bench_fit import datasets, model_for, score
from common import Timer, device_line
from keras_recipes import fit_with_tips

CANDIDATES = {
    "SGD(0.1)": dict(learning_rate=0.1, momentum=0.0),
    "SGD(0.1, m=0.9)": dict(learning_rate=0.1, momentum=0.9),
    "SGD(0.01, m=0.9)": dict(learning_rate=0.01, momentum=0.9),
    "Adam(1e-3)": "adam",
}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", default="0,1")
    args = parser.parse_args()
    print(device_line())
    data = datasets()
    print(f"{'dataset':9} {'optimizer':17} {'seed':>4} {'metric':>7} {'epochs':>6} {'seconds':>8}")
    for name, ((x, y), (xt, yt), n_out) in data.items():
        for label, setting in CANDIDATES.items():
            for seed in [int(s) for s in args.seeds.split(",")]:
                model = model_for(name, x.shape[1], n_out)
                kwargs = {}
                if setting == "adam":
                    loss = "mse" if n_out is None else keras.losses.SparseCategoricalCrossentropy(from_logits=True)
                    model.compile(keras.optimizers.Adam(1e-3), loss)
                else:
                    kwargs = setting
                with Timer() as t:
                    res = fit_with_tips(model, (x, y), seed=seed, verbose=0, jit_compile=False, **kwargs)
                print(f"{name:9} {label:17} {seed:4d} {score(res.model, xt, yt, n_out):7.4f} "
                      f"{len(res.history['loss']):6d} {t.seconds:8.1f}", flush=True)


if __name__ == "__main__":
    main()
