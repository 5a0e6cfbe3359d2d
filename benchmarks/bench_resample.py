"""Resampling the real noise recordings to 8 kHz, side by side in one run:
the kernels tabulated once per phase (now; whole rates repeat their kernels
every p outputs, target / source = p / q) against one Kaiser-windowed sinc
computed per output sample (before; the same function with the table turned
off). Both give the same samples (the largest difference is printed).

    python benchmarks/bench_resample.py [--rounds 3]

Needs ../shared/data (noise/, noise-eval/).
"""

import argparse
import pathlib
import time

import numpy as np

from common import device_line
from keras_recipes import audio

DATA = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(device_line())
    files = sorted((DATA / "noise").glob("*.wav")) + sorted((DATA / "noise-eval").glob("*.wav"))
    if not files:
        raise SystemExit(f"no recordings under {DATA}: the real data comes with the checkout")
    tabulate = audio._phases
    print(f"{'file':>24} {'rate':>6} {'samples':>8} {'per sample s':>13} {'table s':>8} "
          f"{'ratio':>6} {'max diff':>9}")
    totals = [0.0, 0.0]
    for path in files:
        wave, rate = audio.read_wav(path)
        mono = wave.mean(axis=1)
        times = [[], []]
        for _ in range(args.rounds):
            for i, table in enumerate((False, True)):
                audio._phases = tabulate if table else (lambda *rates: None)
                began = time.perf_counter()
                out = audio.resample(mono, rate, 8000)
                times[i].append(time.perf_counter() - began)
                if table:
                    now = out
                else:
                    before = out
        audio._phases = tabulate
        before_s, now_s = (float(np.median(t)) for t in times)
        totals[0] += before_s
        totals[1] += now_s
        print(f"{path.name:>24} {rate:>6} {len(mono):>8} {before_s:13.3f} {now_s:8.3f} "
              f"{now_s / before_s:6.3f} {float(np.abs(now - before).max()):9.1e}")
    print(f"{'all':>24} {'':>6} {'':>8} {totals[0]:13.3f} {totals[1]:8.3f} "
          f"{totals[1] / totals[0]:6.3f}  (medians of {args.rounds} rounds)")


if __name__ == "__main__":
    main()
