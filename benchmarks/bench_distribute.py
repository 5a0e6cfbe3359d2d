"""Step time of fit_with_tips on the MNIST MLP under tf.distribute: one vs
two logical CPU devices (MirroredStrategy, one process), and one vs two
loopback workers (MultiWorkerMirroredStrategy, one process per worker).

    python benchmarks/bench_distribute.py [--epochs 3] [--repeats 2]

Same global batch (128), same model, XLA off everywhere (it is off under a
multi-replica strategy, see keras_recipes/distribute.py). The median step
time of epochs 2.. is compared. Runs alternate (A B A B) so machine noise
hits both alike. On this 2-core machine the logical devices and workers
share the same cores: the ratios show the overhead of distributing, not a
speed-up.
"""

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def child(args):
    """One measurement in this process: prints JSON of the step times."""
    import tensorflow as tf

    if args.role == "logical":
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras

    from common import load_mnist_split
    from keras_recipes import fit_with_tips

    (x, y), _ = load_mnist_split()
    x = x.reshape(-1, 784)

    class StepTimes(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.times, self.epoch = [], 0

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_begin(self, batch, logs=None):
            self.start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            if self.epoch > 0:  # epoch 1 includes tracing
                self.times.append(time.perf_counter() - self.start)

    def build():
        return keras.Sequential([keras.Input((784,)), keras.layers.Dense(256, activation="relu"),
                                 keras.layers.Dense(256, activation="relu"), keras.layers.Dense(10)])

    def run(strategy):
        keras.utils.set_random_seed(0)
        if strategy is None:
            model = build()
        else:
            with strategy.scope():  # built in the scope: nothing to clone
                model = build()
        timer = StepTimes()
        result = fit_with_tips(model, (x, y), epochs=args.epochs, stop_ratio=None, seed=0,
                               verbose=0, jit_compile=False, strategy=strategy, callbacks=[timer])
        return {"median_step_s": statistics.median(timer.times), "steps": len(timer.times),
                "replicas": result.execution["replicas"],
                "val_accuracy": result.history["val_accuracy"][-1]}

    if args.role == "logical":
        out = {"one device": [], "two logical devices": []}
        mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        for _ in range(args.repeats):
            out["one device"].append(run(None))
            out["two logical devices"].append(run(mirrored))
    else:
        out = run(tf.distribute.MultiWorkerMirroredStrategy())
    print(json.dumps(out))


def spawn(args, role, env=None):
    return subprocess.Popen([sys.executable, __file__, "--role", role, "--epochs", str(args.epochs),
                             "--repeats", str(args.repeats)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, cwd=HERE)


def result_of(proc):
    out, _ = proc.communicate(timeout=1200)
    if proc.returncode != 0:
        sys.exit(f"a benchmark process failed (exit {proc.returncode})")
    return json.loads(out.strip().splitlines()[-1])


def workers(args, n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    cluster = {"worker": [f"127.0.0.1:{s.getsockname()[1]}" for s in sockets]}
    for s in sockets:
        s.close()
    procs = [spawn(args, "worker", dict(os.environ, TF_CONFIG=json.dumps(
        {"cluster": cluster, "task": {"type": "worker", "index": i}}))) for i in range(n)]
    results = [result_of(p) for p in procs]
    return results[0]


def line(name, runs):
    median = statistics.median(r["median_step_s"] for r in runs)
    print(f"{name:<22} median step {median * 1e3:7.2f} ms  (runs: "
          + ", ".join(f"{r['median_step_s'] * 1e3:.2f}" for r in runs)
          + f"; {runs[0]['steps']} steps each; replicas {runs[0]['replicas']}; "
          f"val_accuracy {runs[-1]['val_accuracy']:.4f})")
    return median


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--role", default="driver", choices=["driver", "logical", "worker"])
    args = parser.parse_args()
    if args.role != "driver":
        return child(args)
    sys.path.insert(0, HERE)
    from common import device_line

    print(device_line())
    print(f"\n## MirroredStrategy, one process (MNIST MLP 784-256-256-10, global batch 128, "
          f"{args.epochs} epochs, XLA off)")
    logical = result_of(spawn(args, "logical"))
    one = line("one device", logical["one device"])
    two = line("two logical devices", logical["two logical devices"])
    print(f"two / one logical device step time = {two / one:.3f}")

    print("\n## MultiWorkerMirroredStrategy, one process per worker on 127.0.0.1")
    single, double = [], []
    for _ in range(args.repeats):
        single.append(workers(args, 1))
        double.append(workers(args, 2))
    one = line("one worker", single)
    two = line("two workers", double)
    print(f"two / one worker step time = {two / one:.3f}")
    print("\n(2 cores shared by every device and worker: these ratios are overhead, not speed-up)")


if __name__ == "__main__":
    main()
