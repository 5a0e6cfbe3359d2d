"""Tip 3 as decisions: a mean-reduced loss chosen from the labels and the
model's output layer, the check that labels fit the output, and the
conversion of a sum-reduced loss to the batch mean."""

import keras

from keras_recipes.modelinfo import output_activation


def infer_loss(model, labels, units):
    """Tip 3: a mean-reduced loss chosen from the labels and the output layer."""
    activation = output_activation(model)
    if labels.kind == "integer" and units > 1:
        from_logits = activation != "softmax"
        return (keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits),
                ["accuracy"],
                f"integer labels, {units} outputs, last activation {activation}"
                f" -> sparse categorical cross-entropy (from_logits={from_logits})")
    if labels.kind == "onehot":
        from_logits = activation != "softmax"
        return (keras.losses.CategoricalCrossentropy(from_logits=from_logits), ["accuracy"],
                f"one-hot labels, last activation {activation} -> categorical "
                f"cross-entropy (from_logits={from_logits})")
    if units == 1 and labels.kind == "integer" and labels.min >= 0 and labels.max <= 1:
        from_logits = activation != "sigmoid"
        return (keras.losses.BinaryCrossentropy(from_logits=from_logits),
                [keras.metrics.BinaryAccuracy(threshold=0.0 if from_logits else 0.5)],
                f"0/1 labels, one output, last activation {activation} -> binary "
                f"cross-entropy (from_logits={from_logits})")
    return (keras.losses.MeanSquaredError(), [keras.metrics.R2Score()]
            if labels.shape in ((), (1,)) and units == 1 else [],
            "continuous labels -> mean squared error")


def check_labels(loss, labels, units):
    if labels.kind != "integer":
        return
    sparse = isinstance(loss, keras.losses.SparseCategoricalCrossentropy) or (
        isinstance(loss, str) and "sparse_categorical" in loss)
    if sparse and (labels.min < 0 or labels.max >= units):
        raise ValueError(
            f"Labels must lie in [0, {units - 1}] for a model with {units} outputs. "
            f"Received: labels from {int(labels.min)} to {int(labels.max)}"
        )
    binary = isinstance(loss, keras.losses.BinaryCrossentropy)
    if binary and (labels.min < 0 or labels.max > 1):
        raise ValueError(
            "Binary cross-entropy needs 0/1 labels. "
            f"Received: labels from {int(labels.min)} to {int(labels.max)}"
        )


def mean_reduced(loss):
    """Tip 3: converts a sum-reduced Keras loss to the batch mean."""
    if isinstance(loss, keras.losses.Loss) and getattr(loss, "reduction", None) == "sum":
        config = dict(loss.get_config(), reduction="sum_over_batch_size")
        return type(loss).from_config(config), True
    return loss, False
