"""`result.model` for a model with its own training steps (issue 37 item 2).

A model that overrides `train_step`, `test_step` or `compute_loss` is trained
as it is, with the recipe's input preprocessing in the input pipeline. The
model handed back must read raw inputs (the preprocessing in front) and still
train and evaluate through the user's own steps, with the user's optimizer,
loss and metric objects. A functional model built around it would lose all of
that (`Model.fit` on it runs Keras' default step). `Preprocessed` is the user's
model with the preprocessing in front of its call, whose `compile`, `fit`,
`evaluate`, `train_on_batch` and `test_on_batch` go through the user's model:
its steps receive the preprocessed inputs and the labels as given.
"""

import keras

__all__ = ["Preprocessed"]


def _apply(layers, x):
    for layer in layers:
        x = layer(x)
    return x


@keras.saving.register_keras_serializable(package="keras_recipes")
class Preprocessed(keras.Model):
    """The user's `model` with per-input preprocessing layers in front.

    Args:
        model: the user's (trained) model; its own `train_step`,
            `test_step`, `compute_loss`, optimizer, loss and metrics are the
            ones `fit` and `evaluate` run.
        preprocessing: one list of layers per input leaf, in the order of
            `keys` (or a single list for a single input).
        keys: the input structure: None (one tensor), a list of names (a
            dict of inputs), or an int (a list of that many inputs).
    """

    def __init__(self, model, preprocessing, keys=None, **kwargs):
        super().__init__(**kwargs)
        self.wrapped = model  # first: its variables come first, in its own order
        if keys is None:
            preprocessing = [list(preprocessing)]
        self.keys = list(keys) if isinstance(keys, (list, tuple)) else keys
        self.pipelines = [list(layers) for layers in preprocessing]
        count = len(self.keys) if isinstance(self.keys, list) else (self.keys or 1)
        if len(self.pipelines) != count:
            raise ValueError(f"`preprocessing` needs one list of layers per input ({count}). "
                             f"Received: {len(self.pipelines)} lists")
        if getattr(model, "built", False):
            self.built = True
        if getattr(model, "compiled", False):
            self._adopt_compile()

    # -- inference ---------------------------------------------------------------------

    def preprocess(self, inputs):
        """Raw inputs, in the user's structure, to what the user's model reads."""
        if self.keys is None:
            return _apply(self.pipelines[0], inputs)
        if isinstance(self.keys, list):
            return {k: _apply(p, inputs[k]) for k, p in zip(self.keys, self.pipelines)}
        return [_apply(p, x) for p, x in zip(self.pipelines, inputs)]

    def call(self, inputs, training=None):
        return self.wrapped(self.preprocess(inputs), training=training)

    # -- training goes through the user's model ----------------------------------------

    def compile(self, *args, **kwargs):
        """Compiles the user's model with these arguments (its steps read
        its own optimizer, loss and metrics) and mirrors them here."""
        self.wrapped.compile(*args, **kwargs)
        self._adopt_compile()

    def _adopt_compile(self):
        inner = self.wrapped
        optimizer = inner.optimizer
        if not optimizer.built and inner.built:
            # Built on the user's model's own variable order, the order its
            # train_step passes them in.
            optimizer.build(inner.trainable_variables)
        keras.Model.compile(self, optimizer=optimizer, loss=None, jit_compile=inner.jit_compile,
                            steps_per_execution=inner.steps_per_execution,
                            run_eagerly=inner.run_eagerly)
        self._compile_config = getattr(inner, "_compile_config", None)

    def get_compile_config(self):
        return self.wrapped.get_compile_config() if self.wrapped.compiled else None

    def compile_from_config(self, config):
        self.wrapped.compile_from_config(config)
        if self.wrapped.compiled:
            self._adopt_compile()

    @property
    def metrics(self):
        # The user's model's metrics are the ones its steps update and report
        # (Keras skips a nested model's metrics).
        return self.wrapped.metrics if self.compiled else []

    def _model_data(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        return keras.utils.pack_x_y_sample_weight(self.preprocess(x), y, sample_weight)

    def train_step(self, *args):
        if keras.backend.backend() == "jax":
            return self._stateless_step(self.wrapped.train_step, *args)
        return self.wrapped.train_step(self._model_data(args[0]))

    def test_step(self, *args):
        if keras.backend.backend() == "jax":
            return self._stateless_step(self.wrapped.test_step, *args)
        return self.wrapped.test_step(self._model_data(args[0]))

    def _stateless_step(self, step, state, data):
        """JAX: the step runs on a state tuple; the user's model's share of
        this model's state goes to its own step, in its own order."""
        inner = self.wrapped
        trainable, non_trainable = list(state[0]), list(state[1])
        t_at = {id(v): i for i, v in enumerate(self.trainable_variables)}
        n_at = {id(v): i for i, v in enumerate(self.non_trainable_variables)}
        own = [(v, trainable[t_at[id(v)]]) for v in self.trainable_variables
               if not any(v is w for w in inner.trainable_variables)]
        own += [(v, non_trainable[n_at[id(v)]]) for v in self.non_trainable_variables
                if not any(v is w for w in inner.non_trainable_variables)]
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        with keras.StatelessScope(state_mapping=own):
            x = self.preprocess(x)
        inner_state = ([trainable[t_at[id(v)]] for v in inner.trainable_variables],
                       [non_trainable[n_at[id(v)]] for v in inner.non_trainable_variables],
                       *state[2:])
        logs, new = step(inner_state, keras.utils.pack_x_y_sample_weight(x, y, sample_weight))
        for v, value in zip(inner.trainable_variables, new[0]):
            trainable[t_at[id(v)]] = value
        for v, value in zip(inner.non_trainable_variables, new[1]):
            non_trainable[n_at[id(v)]] = value
        return logs, (trainable, non_trainable, *new[2:])

    # -- saving ------------------------------------------------------------------------

    def get_config(self):
        config = super().get_config()
        config.update(
            model=keras.saving.serialize_keras_object(self.wrapped),
            preprocessing=[[keras.saving.serialize_keras_object(l) for l in p]
                           for p in self.pipelines],
            keys=self.keys)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        model = keras.saving.deserialize_keras_object(config.pop("model"))
        pipelines = [[keras.saving.deserialize_keras_object(l) for l in p]
                     for p in config.pop("preprocessing")]
        keys = config.pop("keys")
        return cls(model, pipelines[0] if keys is None else pipelines, keys, **config)
