"""How long `keras_recipes.plan(model, "digits")` takes (statistics, the
measured output, the audit and, without a seed on a TensorFlow CPU, the XLA
timing probe), on the backend in KERAS_BACKEND; no training.

    python benchmarks/bench_plan.py [--repeats 3]
"""

import argparse
import statistics
import time

import keras

from keras_recipes import plan


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    times = []
    for _ in range(args.repeats):
        model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(128, activation="relu"),
                                  keras.layers.Dense(10)])
        start = time.perf_counter()
        p = plan(model, "digits", verbose=0)
        times.append(time.perf_counter() - start)
    print(f"backend={keras.backend.backend()} plan('digits'): median {statistics.median(times):.2f} s "
          f"over {args.repeats} (first {times[0]:.2f} s), {len(p.tips)} rows; "
          f"execution row: {[t.setting for t in p.tips if t.name == 'execution'][0]}")


if __name__ == "__main__":
    main()
