"""Runs the colab/ tutorials top to bottom (offline, this machine) and prints
each one's wall time, figures drawn and printed lines.

    python benchmarks/bench_notebooks.py [--fast]     # --fast: KERAS_RECIPES_FAST=1, as in the tests

Without --fast the notebooks run their full settings (the numbers a Colab
user would see offline; on Colab they load TFDS datasets instead).
"""

import argparse
import os
import pathlib
import time

import nbclient
import nbformat

COLAB = pathlib.Path(__file__).resolve().parents[1] / "colab"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--fast", action="store_true")
    parser.add_argument("--print_outputs", action="store_true", help="print what the cells printed")
    args = parser.parse_args()
    os.environ["KERAS_RECIPES_FAST"] = "1" if args.fast else "0"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    print(f"mode: {'fast' if args.fast else 'full'}")
    for path in sorted(COLAB.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        start = time.perf_counter()
        nbclient.NotebookClient(nb, timeout=3600, kernel_name="python3",
                                resources={"metadata": {"path": str(COLAB)}}).execute()
        seconds = time.perf_counter() - start
        outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
        figures = sum("image/png" in o.get("data", {}) for o in outputs)
        printed = [line for o in outputs if o.get("name") == "stdout" for line in o["text"].splitlines()]
        print(f"{path.name:30} {seconds:7.1f} s  {figures} figures", flush=True)
        if args.print_outputs:
            for line in printed:
                print("    " + line)


if __name__ == "__main__":
    main()
