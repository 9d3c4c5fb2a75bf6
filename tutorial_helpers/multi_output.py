"""Chapter 16: a model with several outputs and losses, trained by a custom loop as fit() trains it."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="tutorial_helpers")
class ActivityPenalty(keras.layers.Layer):
    """Passes its input through and adds ``strength * mean(x**2)`` to the model's losses.

    A loss that depends on the data (an activation), not on a weight, cannot be
    a ``kernel_regularizer``: the layer hands it to Keras with ``add_loss``,
    and it appears in ``model.losses`` after each forward pass.
    """

    def __init__(self, strength: float, **kwargs) -> None:
        super().__init__(**kwargs)
        self.strength = float(strength)

    def call(self, x):
        self.add_loss(self.strength * keras.ops.mean(keras.ops.square(x)))
        return x

    def get_config(self) -> dict:
        return {**super().get_config(), "strength": self.strength}


def weighted_loss(
    model: keras.Model,
    losses: Mapping[str, keras.losses.Loss],
    loss_weights: Mapping[str, float],
    y_true: Mapping[str, tf.Tensor],
    y_pred: Mapping[str, tf.Tensor],
) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """``sum_k w_k * loss_k(y_k, pred_k)`` plus the model's own losses, summed as ``fit`` sums them.

    Returns the total and the *unweighted* loss of each output (what ``fit``
    reports as ``<output>_loss``); an output missing from ``loss_weights``
    weighs 1.  Outputs are taken in sorted name order, the
    order in which Keras flattens a dict, so the float sums agree to the bit.
    """
    parts = {name: losses[name](y_true[name], y_pred[name]) for name in sorted(losses)}
    total = sum(parts[name] * loss_weights.get(name, 1.0) for name in sorted(parts))
    if model.losses:
        total = keras.ops.sum([total, *model.losses])
    return total, parts


def make_multi_output_train_step(
    model: keras.Model,
    optimizer: keras.optimizers.Optimizer,
    losses: Mapping[str, keras.losses.Loss],
    loss_weights: Mapping[str, float],
    trackers: Mapping[str, keras.metrics.Mean],
) -> Callable:
    """A compiled train step for a model whose outputs are a dict; updates ``trackers``.

    ``trackers`` maps ``"loss"`` and ``"<output>_loss"`` to ``keras.metrics.Mean``
    objects, updated as ``fit`` updates its own: the total weighted by the
    number of samples in the batch, each output's loss once per batch (so a
    short last batch counts as much as a full one in ``<output>_loss``; with a
    batch size that divides the data the two averages are the same).
    """
    if set(losses) != set(model.output_names):
        raise ValueError(
            f"losses must have one entry per output {sorted(model.output_names)}, got {sorted(losses)}"
        )
    unknown = set(loss_weights) - set(losses)
    if unknown:
        raise ValueError(f"loss_weights names outputs the model does not have: {sorted(unknown)}")

    @tf.function(reduce_retracing=True)
    def train_step(x, y):
        with tf.GradientTape() as tape:
            y_pred = model(x, training=True)
            total, parts = weighted_loss(model, losses, loss_weights, y, y_pred)
        gradients = tape.gradient(total, model.trainable_variables)
        optimizer.apply(gradients, model.trainable_variables)
        trackers["loss"].update_state(total, sample_weight=tf.shape(x)[0])
        for name, value in parts.items():
            trackers[f"{name}_loss"].update_state(value)  # per batch, as fit() does
        return total

    return train_step
