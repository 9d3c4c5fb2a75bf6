"""Chapter 14: mixed precision in a custom loop, with the loss scaling written out.

Under the ``"mixed_float16"`` policy, layers compute in float16 and keep their
weights in float32.  float16 cannot hold numbers below about ``6e-8``, so small
gradients would round to zero; the cure is to multiply the loss by a large
*loss scale* before differentiating and divide the gradients by it afterwards.
If the scale was too large, some gradient overflowed to ``inf``: that step is
skipped and the scale halved.  ``keras.optimizers.LossScaleOptimizer`` does all
of this, and ``fit()`` wraps the optimizer in one by itself under that policy.

* :func:`policy` sets a global dtype policy for a ``with`` block only;
* :func:`make_scaled_train_step` is the custom-loop step: ``scale_loss``,
  gradients of the scaled loss, ``apply`` (which unscales and may skip);
* :func:`apply_with_loss_scale` is what ``LossScaleOptimizer.apply`` does,
  written out; the tests check it gives the same weights and scale.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import keras
import tensorflow as tf

from tutorial_helpers.steps import LossFn, total_loss
from tutorial_helpers.validation import check_loss_fn

POLICIES = ("float32", "mixed_float16", "mixed_bfloat16")


@contextmanager
def policy(name: str) -> Iterator[None]:
    """Use the global dtype policy ``name`` inside the block, and restore the old one after it.

    Models built inside the block keep their policy.  The global policy is
    process-wide state; a ``with`` block keeps one experiment from leaking its
    float16 layers into the next cell.
    """
    if name not in POLICIES:
        raise ValueError(f"policy must be one of {POLICIES}, got {name!r}")
    before = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(name)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(before)


def check_loss_scale_optimizer(optimizer: object, name: str = "optimizer") -> None:
    """Raise ``TypeError`` unless ``optimizer`` is a ``keras.optimizers.LossScaleOptimizer``."""
    if not isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        raise TypeError(
            f"{name} must be a keras.optimizers.LossScaleOptimizer (wrap your optimizer: "
            f"LossScaleOptimizer(keras.optimizers.Adam())), got {type(optimizer).__name__}"
        )


def make_scaled_train_step(
    model: keras.Model, optimizer: keras.optimizers.LossScaleOptimizer, loss_fn: LossFn
) -> Callable[[tf.Tensor, tf.Tensor], tf.Tensor]:
    """A compiled mixed-precision training step: returns the (unscaled) loss of the batch.

    The loss, plus the model's own losses (penalties) as ``fit`` adds them, is
    computed in float32 (give the model a float32 output layer), then
    scaled, differentiated, and handed to the optimizer, which divides the
    gradients by the same scale and skips the update if any is not finite.
    Under the same policy, optimizer and batches, this loop ends with the same
    weights as ``fit()``.
    """
    check_loss_scale_optimizer(optimizer)
    check_loss_fn(loss_fn)

    @tf.function
    def train_step(x, y):
        with tf.GradientTape() as tape:
            y_pred = model(x, training=True)
            loss = total_loss(model, loss_fn, y, y_pred, None)  # with the model's own losses
            scaled_loss = optimizer.scale_loss(loss)  # loss * scale, in float32
        scaled_gradients = tape.gradient(scaled_loss, model.trainable_variables)
        optimizer.apply(scaled_gradients, model.trainable_variables)  # unscales, may skip
        return loss

    return train_step


def apply_with_loss_scale(
    inner: keras.optimizers.Optimizer,
    scale: tf.Variable,
    good_steps: tf.Variable,
    scaled_gradients: Sequence[tf.Tensor],
    variables: Sequence[tf.Variable],
    growth_interval: int = 2000,
) -> tf.Tensor:
    """``LossScaleOptimizer.apply`` written out; returns whether the step was applied.

    If every gradient is finite: divide them by ``scale``, let ``inner`` apply
    them, and count a good step; after ``growth_interval`` good steps in a row,
    double the scale.  Otherwise skip the update (the weights and ``inner``'s
    state stay as they are), halve the scale and restart the count.
    """
    finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in scaled_gradients])
    if finite:  # autograph turns this into tf.cond inside a tf.function
        inner.apply([g / scale for g in scaled_gradients], variables)
        if good_steps == growth_interval - 1:
            good_steps.assign(0)
            scale.assign(scale * 2.0)
        else:
            good_steps.assign_add(1)
    else:
        good_steps.assign(0)
        scale.assign(scale * 0.5)
    return finite
