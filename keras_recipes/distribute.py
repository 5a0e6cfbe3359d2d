"""tf.distribute for `fit_with_tips`: which strategy, the model inside its
scope, the batch it splits, and which worker writes files. On JAX the same
questions are answered for `keras.distribution` (`sharding.py`): a
`DataParallel` or `ModelParallel` is the "strategy" there.

TensorFlow's own engine does the distributing; this module only takes the
decisions around it and works around two Keras 3 gaps measured here:

- XLA under a multi-replica strategy fails: MirroredStrategy with
  `jit_compile=True` reads variables across devices inside one XLA cluster
  (keras-team/keras#19005), and TensorFlow has no XLA collectives on CPU
  ("Collectives are not yet implemented for CPU devices when compiling with
  XLA"). Training under such a strategy runs without XLA, and says so.
- `model.fit` under MultiWorkerMirroredStrategy fails in Keras 3.15
  (keras-team/keras#20585): the symbolic build reduces a nested batch, which
  that strategy cannot, and the step outputs are reduced with `axis=0`,
  which fails for scalars. `Scope.training_model` returns a model whose
  train and test steps return shape-(1,) values, created outside the scope
  so that Keras builds it while tracing the step instead.
"""

import contextlib
import warnings

import keras

from keras_recipes import sharding


def _tf():
    import tensorflow as tf

    return tf


def resolve(strategy):
    """The `tf.distribute.Strategy` to train under, or None for none.

    `None` means the strategy whose scope the call is in (None outside any);
    `"auto"` the same, or a MirroredStrategy over all local GPUs when there
    are more than one and no scope is entered.
    """
    if keras.backend.backend() == "jax":
        return sharding.resolve(strategy)
    if keras.backend.backend() != "tensorflow":
        if strategy is None or strategy == "auto":
            return None
        raise ValueError(
            "`strategy` needs the TensorFlow backend (tf.distribute), or JAX "
            f"(keras.distribution). Received: strategy={strategy!r} under "
            f"{keras.backend.backend()}")
    tf = _tf()
    current = tf.distribute.get_strategy() if tf.distribute.has_strategy() else None
    if strategy is None:
        return current
    if isinstance(strategy, str) and strategy == "auto":
        gpus = tf.config.list_logical_devices("GPU")
        if len(gpus) > 1 and current is None:
            return tf.distribute.MirroredStrategy([g.name for g in gpus])
        return current
    if not isinstance(strategy, tf.distribute.Strategy):
        raise TypeError("`strategy` must be None, 'auto' or a tf.distribute.Strategy "
                        f"(MirroredStrategy, MultiWorkerMirroredStrategy, TPUStrategy). "
                        f"Received: strategy={strategy!r}")
    return strategy


def strategy_name(strategy):
    """The public name (TensorFlow's MultiWorkerMirroredStrategy class is
    called CollectiveAllReduceStrategy)."""
    if strategy is None:
        return "none (one device)"
    if sharding.is_distribution(strategy):
        return type(strategy).__name__
    if isinstance(strategy, _tf().distribute.MultiWorkerMirroredStrategy):
        return "MultiWorkerMirroredStrategy"
    return type(strategy).__name__


def replicas(strategy):
    """The parts a global batch is split into."""
    if strategy is None:
        return 1
    if sharding.is_distribution(strategy):
        return sharding.shards(strategy)
    return int(strategy.num_replicas_in_sync)


def _cluster(strategy):
    if sharding.is_distribution(strategy):  # jax.distributed's processes
        return ("worker", sharding.process_index(),
                {"worker": list(range(sharding.process_count()))})
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None:
        return None, None, {}
    spec = resolver.cluster_spec().as_dict() if resolver.cluster_spec() else {}
    return resolver.task_type, resolver.task_id, spec


def workers(strategy):
    """Number of worker processes training together (1 without a cluster)."""
    _, _, spec = _cluster(strategy)
    count = sum(len(spec.get(job, [])) for job in ("chief", "worker"))
    return max(count, 1)


def is_multi_worker(strategy):
    """tf.distribute with several workers (the workarounds below are for it;
    keras.distribution's processes need none of them)."""
    return (strategy is not None and not sharding.is_distribution(strategy)
            and workers(strategy) > 1)


def is_chief(strategy):
    """Whether this process writes checkpoints and the final model: the
    "chief" task, or worker 0 when the cluster has no chief."""
    task_type, task_id, spec = _cluster(strategy)
    if task_type is None or not spec:
        return True
    if task_type == "chief":
        return True
    return task_type == "worker" and task_id == 0 and "chief" not in spec


def is_tpu(strategy):
    return (strategy is not None and not sharding.is_distribution(strategy)
            and isinstance(strategy, _tf().distribute.TPUStrategy))


def describe(strategy):
    """One line for the tips table."""
    if sharding.is_distribution(strategy):
        return sharding.describe(strategy)
    n = replicas(strategy)
    text = f"{strategy_name(strategy)}, {n} replica{'s' if n != 1 else ''}"
    if is_multi_worker(strategy):
        task_type, task_id, _ = _cluster(strategy)
        text += f" on {workers(strategy)} workers (this is {task_type} {task_id}" + \
            (", the chief" if is_chief(strategy) else "") + ")"
    return text


def check_outside_scope(strategy):
    """MultiWorkerMirroredStrategy needs the call made outside its scope
    (the training model is created outside it; see the module docstring)."""
    if is_multi_worker(strategy) and _tf().distribute.has_strategy():
        raise ValueError(
            "Under MultiWorkerMirroredStrategy call fit_with_tips outside `strategy.scope()` "
            "and pass the strategy: fit_with_tips(model, data, strategy=strategy). "
            f"Received: a call inside the scope of {strategy_name(strategy)}")


def check_batch_size(batch_size, strategy):
    """Every replica gets `batch_size / replicas` examples of a global batch."""
    n = replicas(strategy)
    if n > 1 and batch_size % n:
        raise ValueError(
            f"`batch_size` is the global batch and must divide evenly over the "
            f"{n} replicas of {strategy_name(strategy)} (each replica gets batch_size / {n} "
            f"examples). Use {batch_size - batch_size % n} or {batch_size + n - batch_size % n}. "
            f"Received: batch_size={batch_size}")


def check_jit(jit_compile, strategy):
    """XLA under a multi-replica strategy (not a TPU) fails in Keras 3 /
    TensorFlow: returns the reason `"auto"` resolves to False (None when XLA
    remains possible), and refuses `True` where the failure was measured."""
    if replicas(strategy) <= 1 or is_tpu(strategy) or sharding.is_distribution(strategy):
        return None  # keras.distribution's steps are XLA programs
    name = strategy_name(strategy)
    if is_multi_worker(strategy):
        reason = (f"{name} with {replicas(strategy)} replicas: XLA would compile the "
                  "all-reduce, which TensorFlow does not implement on CPU; on GPUs untested here")
        refuse = not _tf().config.list_logical_devices("GPU")
    else:
        reason = (f"{name} with {replicas(strategy)} replicas: Keras compiles the cross-replica "
                  "step as one XLA cluster, which fails reading variables on other devices "
                  "(keras-team/keras#19005)")
        refuse = True
    if jit_compile is True:
        if refuse:
            raise ValueError(f"jit_compile=True is not possible under {reason}. Pass "
                             f"jit_compile='auto' or False. Received: jit_compile=True")
        warnings.warn(f"jit_compile=True under {reason}.", stacklevel=3)
        return None
    return reason


def _created_in_scope(variable, strategy):
    value = getattr(variable, "value", variable)
    return strategy.extended.variable_created_in_scope(value)


def in_scope(model, strategy):
    """`model` itself when its variables live under `strategy` (or it has
    none yet), else a clone built inside the scope with the same weights.
    Returns (model, note or None)."""
    if strategy is None or not model.variables:
        return model, None
    if sharding.is_distribution(strategy):
        return sharding.in_scope(model, strategy)
    if all(_created_in_scope(v, strategy) for v in model.variables):
        return model, None
    clone = sharding.clone_in_scope(
        model, strategy.scope,
        "The model was built outside the strategy's scope and could not be cloned into it",
        "Create it inside: `with strategy.scope(): model = ...`, then call fit_with_tips.")
    return clone, "the model was built outside the scope: cloned into it with its weights"


class Scope:
    """`with Scope(strategy):` enters `strategy.scope()` (nothing without a
    strategy); `with scope.paused():` steps out of it for a moment."""

    def __init__(self, strategy):
        self.strategy = strategy
        self._context = None

    def __enter__(self):
        if self.strategy is not None:
            self._context = self.strategy.scope()
            self._context.__enter__()
        return self

    def __exit__(self, *exc_info):
        if self._context is not None:
            context, self._context = self._context, None
            return context.__exit__(*exc_info)
        return False

    def training_model(self, inputs, outputs, name):
        """The functional model `fit` trains. Under MultiWorkerMirroredStrategy
        it returns shape-(1,) step values and is created outside the scope
        (see the module docstring); compile and fit it inside."""
        if not is_multi_worker(self.strategy):
            return keras.Model(inputs, outputs, name=name)
        with self.paused():
            return _MultiWorkerSteps(inputs, outputs, name=name)

    @contextlib.contextmanager
    def paused(self):
        entered = self._context is not None
        if entered:
            self.__exit__(None, None, None)
        try:
            yield
        finally:
            if entered:
                self.__enter__()


class _MultiWorkerSteps(keras.Model):
    """A functional model whose steps return shape-(1,) values, which
    MultiWorkerMirroredStrategy's `reduce(..., axis=0)` in Keras 3 accepts."""

    def train_step(self, data):
        return {k: keras.ops.reshape(v, (1,)) for k, v in super().train_step(data).items()}

    def test_step(self, data):
        return {k: keras.ops.reshape(v, (1,)) for k, v in super().test_step(data).items()}

