"""Deterministic kernels for one run, and the user's setting back afterwards.

TensorFlow's CPU kernels (large matmuls, reductions over threads) are not
bitwise deterministic unless op determinism is on; with it, two runs of the
same seeded call give the same numbers. JAX on CPU is deterministic already,
and its GPU flag must be set before JAX starts, so it is reported, not set.
torch has a switch like TensorFlow's.
"""

import contextlib

import keras


def _tf_config():
    # `disable_op_determinism` and `is_op_determinism_enabled` are not in
    # tf.config's public namespace; only `enable_op_determinism` is.
    from tensorflow.python.framework import config

    return config


def describe(enabled):
    """(setting, reason) for the tips table."""
    backend = keras.backend.backend()
    if not enabled:
        return "off", "no seed: kernels may sum in any order (faster)"
    if backend == "tensorflow":
        return ("TensorFlow op determinism on for this call",
                "seed given: the same call on the same initial weights repeats bit for bit "
                "(build the model after keras.utils.set_random_seed for those); your previous "
                "setting is "
                "restored afterwards (cost measured on a 2-core CPU: 1.12x per epoch, "
                "BUILD_NOTES.md)")
    if backend == "torch":
        return ("torch deterministic algorithms on for this call",
                "seed given; your previous setting is restored afterwards")
    return ("JAX: deterministic on CPU; on GPU set XLA_FLAGS=--xla_gpu_deterministic_ops=true "
            "before JAX starts", "seed given; JAX reads the flag only at start")


@contextlib.contextmanager
def deterministic(enabled):
    """Turns the backend's deterministic mode on inside the block (when
    `enabled`) and restores the previous setting on the way out."""
    backend = keras.backend.backend()
    if not enabled or backend not in ("tensorflow", "torch"):
        yield
        return
    if backend == "tensorflow":
        config = _tf_config()
        before = config.is_op_determinism_enabled()
        config.enable_op_determinism()
        try:
            yield
        finally:
            if not before:
                config.disable_op_determinism()
        return
    import torch

    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before)


def is_enabled():
    """Whether the backend's deterministic mode is on now."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        return bool(_tf_config().is_op_determinism_enabled())
    if backend == "torch":
        import torch

        return bool(torch.are_deterministic_algorithms_enabled())
    return True
