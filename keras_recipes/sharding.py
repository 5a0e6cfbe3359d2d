"""keras.distribution for `fit_with_tips` on JAX: which distribution to train
under, how many parts its batch axis splits a batch into, and the model
inside its scope. `distribute.py` asks here when the strategy is a
`keras.distribution.DataParallel` or `ModelParallel`.

Keras shards every batch over the devices of the mesh's batch axis, and a
batch whose rows do not divide over them stops the step (`IndivisibleError`
from JAX). The recipe's batches are cut to fit (`data.batches`): training
leaves out the last rows of the epoch's last batch (fewer than the device
count, and others every epoch as the order is reshuffled), and validation
pads its last batch with zero-weight rows, every real row weighted so that
Keras' row-weighted means are those of the real rows.

Several processes (`jax.distributed`): every process reads the whole data,
splits and shuffles it alike (a seed), and feeds the rows of each global
batch that its devices hold on the batch axis (`batch_span`, `DeviceSplit`),
so Keras must not shard the data again (`auto_shard_dataset = False`).
Process 0 writes the files. A variable split over several processes'
devices (ModelParallel) is read on the host by gathering it from all of
them (`host`), which every process does alike.
"""

import contextlib

import keras
import numpy as np

KINDS = (keras.distribution.DataParallel, keras.distribution.ModelParallel)


def is_distribution(strategy):
    return isinstance(strategy, KINDS)


def local_accelerators():
    import jax

    return [d for d in jax.local_devices() if d.platform != "cpu"]


def process_count():
    import jax

    return jax.process_count()


def process_index():
    import jax

    return jax.process_index()


def resolve(strategy):
    """The `keras.distribution` to train under on JAX, or None.

    `None` means the active one (`keras.distribution.set_distribution`, or
    the scope the call is in); `"auto"` the same, or `DataParallel` over
    the local accelerators when there are more than one.
    """
    current = keras.distribution.distribution()
    if isinstance(strategy, str) and strategy == "auto":
        if current is None:
            accelerators = local_accelerators()
            if len(accelerators) > 1:
                current = keras.distribution.DataParallel(devices=accelerators)
        strategy = current
    elif strategy is None:
        strategy = current
    elif not is_distribution(strategy):
        raise TypeError(
            f"`strategy` on {keras.backend.backend()} must be None, 'auto' or a "
            "keras.distribution.DataParallel or ModelParallel (a tf.distribute strategy is for "
            f"the TensorFlow backend). Received: strategy={strategy!r}")
    if strategy is not None and process_count() > 1:
        # Every process feeds its own share of each global batch (`batches`),
        # so Keras must not shard the data again.
        strategy.auto_shard_dataset = False
    return strategy


def shards(distribution):
    """How many parts a batch is split into: the devices on the batch axis."""
    mesh = distribution.device_mesh
    return int(mesh.shape[list(mesh.axis_names).index(distribution.batch_dim_name)])


def _process_of(device):
    """The process a mesh's device (a JAX device or Keras' "cpu:3") is on."""
    import jax

    if not isinstance(device, str):
        return device.process_index
    platform, _, number = device.partition(":")
    for candidate in jax.devices():
        if candidate.platform == platform and candidate.id == int(number):
            return candidate.process_index
    raise ValueError(f"No JAX device is named {device!r}. Received: a mesh with {device!r}")


def batch_span(distribution):
    """(first, stop): the positions on the batch axis that this process's
    devices hold, whose rows of every batch it feeds (Keras assembles the
    global batch from each process's rows, `make_array_from_process_local_data`).
    With the batch axis split over the processes, a share each; with it
    inside every process (the mesh's other axis across them), all rows."""
    mesh = distribution.device_mesh
    axis = list(mesh.axis_names).index(distribution.batch_dim_name)
    devices = np.asarray(mesh.devices, dtype=object)
    here = process_index()
    positions = sorted({index[axis] for index in np.ndindex(devices.shape)
                        if _process_of(devices[index]) == here})
    if not positions or positions != list(range(positions[0], positions[-1] + 1)):
        raise ValueError(
            f"This process's devices must hold consecutive positions of the mesh's batch axis "
            f"{distribution.batch_dim_name!r}, to feed consecutive rows of every batch. "
            f"Received: positions {positions} of {devices.shape[axis]} in process {here}")
    return positions[0], positions[-1] + 1


def describe(distribution):
    n = shards(distribution)
    processes = process_count()
    devices = distribution.device_mesh.devices.size
    mesh = distribution.device_mesh
    text = f"{type(distribution).__name__} (keras.distribution), batch split over {n} device"
    text += "s" if n != 1 else ""
    if devices != n:
        text += f" of {devices} in the mesh {dict(zip(mesh.axis_names, mesh.shape))}"
    if processes > 1:
        text += (f", {processes} processes (this is process {process_index()}"
                 + (", which writes the files" if process_index() == 0 else "")
                 + "), each feeding "
                 + ("every batch whole (the batch axis is not split across them)"
                    if batch_span(distribution) == (0, n) else "its share of every batch"))
    return text


def _device_name(device):
    """"cpu:0" for a JAX device or Keras' name for it (a mesh holds either)."""
    return device if isinstance(device, str) else f"{device.platform}:{device.id}"


def _placed(variable, devices):
    value = getattr(variable, "value", variable)
    placed = getattr(value, "devices", None)
    return placed is None or {_device_name(d) for d in placed()} == devices


def in_scope(model, distribution):
    """`model` itself when its variables are laid out over the distribution's
    devices (or it has none yet), else a clone made inside its scope with the
    same weights. Returns (model, note or None)."""
    if not model.variables:
        return model, None
    devices = {_device_name(d) for d in distribution.device_mesh.devices.flatten().tolist()}
    if all(_placed(v, devices) for v in model.variables):
        return model, None
    clone = clone_in_scope(
        model, distribution.scope,
        "The model was built before the distribution and could not be cloned under it",
        "Build it after keras.distribution.set_distribution(...) (or inside "
        "`distribution.scope()`), with a LayoutMap whose layouts fit its variables' shapes, "
        "then call fit_with_tips.")
    return clone, ("the model was built before the distribution: cloned under it with its "
                   "weights")


def clone_in_scope(model, scope, cannot, fix, weights=None):
    """A clone of `model` with its weights (or `weights`), made inside
    `scope()` (a tf.distribute strategy's or a keras.distribution's); a
    ValueError saying `cannot` (and why), then `fix`, when it cannot be cloned."""
    weights = model.get_weights() if weights is None else weights
    try:
        with scope():
            clone = keras.models.clone_model(model)
            if not clone.built:
                clone.build(model.inputs[0].shape if getattr(model, "inputs", None) else None)
            clone.set_weights(weights)
    except Exception as error:
        why = " ".join(str(error).split())[:600]
        raise ValueError(
            f"{cannot} ({type(error).__name__}: {why}). {fix} Received: model={model.name!r} "
            f"({type(model).__name__})") from None
    return clone


def _split(value):
    """True for a JAX array laid out over devices of several processes and
    not whole on any: its host value needs the other processes' parts."""
    return (not getattr(value, "is_fully_addressable", True)
            and not getattr(value, "is_fully_replicated", True))


def host(variable):
    """The whole value of a variable (or array) as numpy, in every process.

    A value split over several processes' devices (a ModelParallel layout
    across `jax.distributed` processes) is gathered from all of them: every
    process must then call this, for the same variables in the same order,
    as the recipe does (it reads weights alike everywhere; only the writes
    are process 0's). Anything else is `keras.ops.convert_to_numpy`'s."""
    value = getattr(variable, "value", variable)
    if keras.backend.backend() == "jax" and _split(value):
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(value, tiled=True))
    if keras.backend.backend() == "tensorflow" and callable(getattr(variable, "numpy", None)):
        # convert_to_numpy's np.array(variable) raises numpy 2's copy-keyword
        # DeprecationWarning on every read of a variable or eager tensor; their
        # own copy does not.
        return np.asarray(variable.numpy())
    return keras.ops.convert_to_numpy(variable)


def host_weights(model):
    """`model.get_weights()`, gathered where a weight is split over
    several processes' devices (`host`)."""
    return [host(v) for v in model.weights]


def host_copy(model):
    """`model` itself, or, where a variable is split over several processes'
    devices, a copy on this process's devices holding the gathered weights,
    compiled alike with the gathered optimizer state: what Keras' saving
    reads on the host. Gathers, so every process calls it."""
    optimizer = getattr(model, "optimizer", None)
    slots = list(optimizer.variables) if optimizer is not None and optimizer.built else []
    if keras.backend.backend() != "jax" or not any(
            _split(getattr(v, "value", v)) for v in list(model.variables) + slots):
        return model
    weights, slot_values = host_weights(model), [host(v) for v in slots]
    return saveable_copy(model, weights, slot_values)


def saveable_copy(model, weights, slot_values):
    """A clone of `model` outside any distribution holding `weights`,
    compiled as `model` is (Keras' `clone_model` compiles it from the
    model's compile config) with `slot_values` as its optimizer's state."""
    with paused():
        copy = clone_in_scope(model, contextlib.nullcontext, "The model could not be copied to "
                              "one process to be saved", "Save result.model's weights instead.",
                              weights)
        if slot_values and getattr(copy, "compiled", False):
            copy.optimizer.build(copy.trainable_variables)
            if len(copy.optimizer.variables) != len(slot_values):
                raise ValueError(
                    f"The model's copy for saving rebuilt {len(copy.optimizer.variables)} "
                    f"optimizer variables from its compile config; training has "
                    f"{len(slot_values)}. Save result.model's weights instead. Received: "
                    f"optimizer={type(model.optimizer).__name__}")
            for variable, value in zip(copy.optimizer.variables, slot_values):
                variable.assign(value)
    return copy


def predict(model, x, batch_size):
    """`model.predict(x)` for the recipe's own reads (an ensemble's members on
    the validation set): under a keras.distribution on JAX its rows are
    padded to divide over the batch's devices, and the padding cut from the
    predictions, as training's batches are; across several processes, each
    process predicts all of `x` alone (`predict_here`)."""
    active = keras.distribution.distribution() if keras.backend.backend() == "jax" else None
    if active is not None and process_count() > 1:
        return predict_here(model, x, batch_size)
    n = len(keras.tree.flatten(x)[0])
    parts = shards(active) if active is not None else 1
    if n % parts == 0 and batch_size % parts == 0:
        return model.predict(x, verbose=0, batch_size=batch_size)
    index = np.concatenate([np.arange(n), np.zeros(-n % parts, int)])
    padded = keras.tree.map_structure(lambda a: np.asarray(a)[index], x)
    out = model.predict(padded, verbose=0, batch_size=batch_size + -batch_size % parts)
    return keras.tree.map_structure(lambda a: np.asarray(a)[:n], out)


def _local_copy(variable):
    """The whole value of a variable on this process's first device: its
    own copy when the value is replicated over several processes' devices."""
    value = variable.value
    if getattr(value, "is_fully_addressable", True):
        return value
    if _split(value):
        return host(value)
    return value.addressable_data(0)


def predict_here(model, x, batch_size):
    """Each process predicts all of `x` alone, on its first local device,
    from its own copy of the replicated weights: the recipe's own reads
    (an ensemble's members on the validation rows) under a keras.distribution
    across processes, where `model.predict` would take each process's `x`
    as its share of one global batch and return predictions no process can
    read whole. Every process computes the same numbers; none waits on
    another."""
    import jax

    trainable = [_local_copy(v) for v in model.trainable_variables]
    non_trainable = [_local_copy(v) for v in model.non_trainable_variables]
    device = jax.local_devices()[0]
    trainable, non_trainable = jax.device_put((trainable, non_trainable), device)

    @jax.jit
    def step(trainable, non_trainable, batch):
        return model.stateless_call(trainable, non_trainable, batch, training=False)[0]

    n = len(keras.tree.flatten(x)[0])
    outs = []
    with paused():
        for start in range(0, n, batch_size):
            batch = keras.tree.map_structure(
                lambda a: jax.device_put(np.asarray(a)[start:start + batch_size], device), x)
            outs.append(keras.tree.map_structure(np.asarray, step(trainable, non_trainable,
                                                                   batch)))
    return keras.tree.map_structure(lambda *parts: np.concatenate(parts), *outs)


@contextlib.contextmanager
def paused():
    """No keras.distribution for a moment: for what one process does alone
    (writing `final.keras`), where a new variable would otherwise be laid
    out over every process's devices and wait for the others."""
    if keras.backend.backend() != "jax" or keras.distribution.distribution() is None:
        yield
        return
    current = keras.distribution.distribution()
    keras.distribution.set_distribution(None)
    try:
        yield
    finally:
        keras.distribution.set_distribution(current)
