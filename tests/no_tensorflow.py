"""`block()`: from here on, `import tensorflow` (and TFDS) fail in this
process, as on a machine that has only JAX or torch. The check scripts that
run on JAX call it first: the JAX path must not need TensorFlow, and Keras'
`set_random_seed` would otherwise import it (seconds per process) only to
seed it."""

import importlib.abc
import importlib.machinery
import sys


class _Blocked(importlib.abc.Loader):
    def create_module(self, spec):
        raise ModuleNotFoundError(f"No module named {spec.name!r}", name=spec.name)

    def exec_module(self, module):
        pass


class _NoTensorFlow(importlib.abc.MetaPathFinder):
    """A finder, not `sys.modules["tensorflow"] = None`: Keras reads
    `"tensorflow" in sys.modules` as "a TF graph may be running"."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow", "tensorflow_datasets"):
            return importlib.machinery.ModuleSpec(name, _Blocked())
        return None


def block():
    if "tensorflow" in sys.modules:
        raise RuntimeError("block() must run before anything imports TensorFlow")
    if not any(isinstance(f, _NoTensorFlow) for f in sys.meta_path):
        sys.meta_path.insert(0, _NoTensorFlow())
