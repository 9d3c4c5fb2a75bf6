"""Chapter 14: gradient accumulation, a large effective batch in small pieces.

When one batch of ``N * b`` samples does not fit in memory, run ``N``
micro-batches of ``b``, add up their gradients, and apply the *mean* once.
With a mean-reduced loss and micro-batches of equal size, that mean is the
gradient of the big batch, so the update is the same up to float rounding.
Keras 3 does the same inside the optimizer with
``Optimizer(gradient_accumulation_steps=N)``.

:func:`make_accumulating_train_step` is the hand-written version for a custom
loop; the tests check it against one big batch and against Keras's option.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import tensorflow as tf

from tutorial_helpers.steps import LossFn, total_loss
from tutorial_helpers.validation import check_loss_fn, check_optimizer, check_positive_int


def make_accumulating_train_step(
    model: keras.Model, optimizer: keras.optimizers.Optimizer, loss_fn: LossFn, steps: int
) -> Callable[[tf.Tensor, tf.Tensor], tf.Tensor]:
    """A compiled step that applies the mean gradient of every ``steps`` consecutive micro-batches.

    Each call computes one micro-batch's gradient and adds it to an accumulator
    (one non-trainable variable per weight); every ``steps``-th call applies
    ``sum / steps`` and clears the accumulators.  The optimizer therefore takes
    one step (``optimizer.iterations`` grows by 1) per ``steps`` calls.  Use
    micro-batches of equal size: a smaller last one would weigh as much as the
    others.  Returns the micro-batch's loss.
    """
    check_optimizer(optimizer)
    check_loss_fn(loss_fn)
    steps = check_positive_int(steps, "steps")
    if not model.built:
        raise ValueError("build the model first (call it on a batch or give it a keras.Input)")
    if getattr(optimizer, "gradient_accumulation_steps", None):
        raise ValueError(
            "the optimizer accumulates gradients itself (gradient_accumulation_steps="
            f"{optimizer.gradient_accumulation_steps}); accumulating twice would divide twice"
        )
    variables = model.trainable_variables
    sums = [tf.Variable(tf.zeros_like(v), trainable=False) for v in variables]
    calls = tf.Variable(0, dtype=tf.int64, trainable=False)

    @tf.function
    def train_step(x, y):
        with tf.GradientTape() as tape:
            loss = total_loss(model, loss_fn, y, model(x, training=True), None)
        for total, gradient in zip(sums, tape.gradient(loss, variables), strict=True):
            total.assign_add(gradient)
        calls.assign_add(1)
        if calls % steps == 0:
            optimizer.apply([total / steps for total in sums], variables)
            for total in sums:
                total.assign(tf.zeros_like(total))
        return loss

    return train_step
