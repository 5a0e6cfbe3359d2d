"""Issue 27: what reading a variable split over two processes' devices costs.

The recipe reads weights on the host (the calibration's restore, the
guard's and the plateau rule's best weights, checkpoints, `final.keras`);
under a ModelParallel layout across `jax.distributed` processes every such
read gathers the variable from all of them (`sharding.host`, through
`multihost_utils.process_allgather`). Two processes on 127.0.0.1, one CPU
device each (gloo collectives), read a square kernel split over both along
its columns, and, side by side in the same process, a copy of a
same-sized array whole on the local device (`np.array`, what a read
without a split costs at least on a CPU, where it is a memory copy).
Medians of 7 reads, after one warm-up. On a CPU both processes share the
same cores and memory, so the absolute numbers say more than the ratio.

    python benchmarks/bench_gather.py [--widths 256,1024,2048]
"""

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time


def child(process, port, widths):
    os.environ["KERAS_BACKEND"] = "jax"
    import jax

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}", num_processes=2,
                               process_id=process)
    import keras
    import numpy as np

    from keras_recipes import sharding

    mesh = keras.distribution.DeviceMesh((1, 2), ["batch", "model"], jax.devices())
    layout = keras.distribution.LayoutMap(mesh)
    layout[".*wide/kernel"] = (None, "model")
    keras.distribution.set_distribution(
        keras.distribution.ModelParallel(layout_map=layout, batch_dim_name="batch"))

    def median(read):
        read()
        times = []
        for _ in range(7):
            start = time.perf_counter()
            read()
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    if process == 0:
        print(f"jax {jax.__version__}, {jax.process_count()} processes, "
              f"{len(jax.devices())} CPU devices in all", flush=True)
        print(f"{'kernel':>12} {'MB':>6} {'gathered ms':>12} {'MB/s':>7} {'local copy ms':>14} "
              f"{'ratio':>6}", flush=True)
    for width in widths:
        keras.utils.set_random_seed(width)  # the same initial values in both processes
        layer = keras.layers.Dense(width, name="wide")
        layer.build((None, width))
        split = layer.kernel
        assert not split.value.is_fully_addressable  # really over both processes
        local = jax.device_put(np.ones((width, width), "float32"), jax.local_devices()[0])
        gathered = median(lambda: sharding.host(split))
        whole = median(lambda: np.array(local, copy=True))
        if process == 0:
            mb = width * width * 4 / 1e6
            print(f"{width:>5}x{width:<6} {mb:6.1f} {gathered * 1e3:12.2f} {mb / gathered:7.0f} "
                  f"{whole * 1e3:14.3f} {gathered / whole:6.1f}", flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--widths", default="256,1024,2048")
    parser.add_argument("--child", type=int, default=None)
    parser.add_argument("--port", type=int, default=None)
    args = parser.parse_args()
    widths = [int(w) for w in args.widths.split(",")]
    if args.child is not None:
        return child(args.child, args.port, widths)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    command = [sys.executable, __file__, "--widths", args.widths, "--port", str(port), "--child"]
    other = subprocess.Popen(command + ["1"], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    first = subprocess.run(command + ["0"], env=env, capture_output=True, text=True)
    other.wait(timeout=600)
    print(first.stdout, end="")
    if first.returncode or other.returncode:
        print(first.stderr[-3000:], other.stderr.read()[-3000:])
        sys.exit(1)


if __name__ == "__main__":
    main()
