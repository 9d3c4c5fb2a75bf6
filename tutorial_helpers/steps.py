"""The compiled steps behind every loop in the book: one step, N steps per call, a whole epoch.

A *step body* is plain Python: forward pass, loss (plus the model's own
losses), gradients, optional clipping, ``optimizer.apply``, metric updates.
:func:`make_train_step` and :func:`make_test_step` compile a body into one
step per ``tf.function`` call (Chapter 2); :mod:`tutorial_helpers.feeds`
compiles it into N steps per call, fed from in-memory arrays or an iterator
inside the graph (Chapter 10).

Under a ``tf.distribute`` strategy (Chapter 11) each body runs on every replica
through ``strategy.run`` and the returned loss is summed across replicas.  Keras
losses with the default reduction already divide by the number of replicas, so
that sum is the global mean; the model's own losses (weight penalties) are
divided here in the same way, so the all-reduced gradient is the gradient of
the global loss.  Gradient clipping under a strategy clips each replica's
gradient before the all-reduce, as Keras's optimizers do.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import keras
import tensorflow as tf

from tutorial_helpers.gradients import check_connected, clip_gradients, global_norm

LossFn = Callable[..., tf.Tensor]


def _replicas() -> int:
    return tf.distribute.get_strategy().num_replicas_in_sync


def total_loss(model: keras.Model, loss_fn: LossFn, y, y_pred, sample_weight) -> tf.Tensor:
    """The loss plus the model's own losses, summed the way ``fit`` sums them.

    On one device this is ``keras.ops.sum([loss, *model.losses])`` exactly as
    in Keras's trainer.  With N replicas each replica adds ``penalty / N``.
    """
    loss = loss_fn(y, y_pred, sample_weight=sample_weight)
    if model.losses:
        replicas = _replicas()
        penalties = model.losses if replicas == 1 else [p / replicas for p in model.losses]
        loss = keras.ops.sum([loss, *penalties])
    return loss


def train_step_body(
    model: keras.Model,
    optimizer: keras.optimizers.Optimizer,
    loss_fn: LossFn,
    loss_tracker: keras.metrics.Metric,
    metrics: Sequence[keras.metrics.Metric] = (),
    *,
    global_clipnorm: float | None = None,
    clipnorm: float | None = None,
    clipvalue: float | None = None,
    gradient_norm_tracker: keras.metrics.Metric | None = None,
    gradient_observer: Callable[[list], None] | None = None,
) -> Callable[..., tf.Tensor]:
    """The uncompiled train step; see :func:`make_train_step`.

    ``gradient_observer(gradients)``, if given, sees the gradients (one per
    trainable variable, before clipping) inside the step, for instruments such
    as Chapter 12's per-layer gradient norms.
    """
    # check the settings now, not at the first step
    clip_gradients([], global_clipnorm=global_clipnorm, clipnorm=clipnorm, clipvalue=clipvalue)

    def train_step(x, y, sample_weight=None):  # Chapter 2's train step
        with tf.GradientTape() as tape:
            y_pred = model(x, training=True)  # 1. forward
            loss = total_loss(model, loss_fn, y, y_pred, sample_weight)  # 2. loss (+ penalties, Ch. 7)
        gradients = tape.gradient(loss, model.trainable_variables)  # 3. backward
        check_connected(gradients, model.trainable_variables)  # no None: Chapter 3, free when tracing
        if gradient_norm_tracker is not None:  # instruments (Chapter 12)
            gradient_norm_tracker.update_state(global_norm(gradients))
        if gradient_observer is not None:
            gradient_observer(gradients)
        gradients = clip_gradients(  # Chapter 6; does nothing unless a clip is set
            gradients, global_clipnorm=global_clipnorm, clipnorm=clipnorm, clipvalue=clipvalue
        )
        optimizer.apply(gradients, model.trainable_variables)  # 4. update
        # 5. log; the tracker reports the global mean: undo the 1/N replica scaling (Chapter 11)
        loss_tracker.update_state(loss * _replicas(), sample_weight=tf.shape(x)[0])
        for metric in metrics:
            metric.update_state(y, y_pred, sample_weight=sample_weight)
        return loss

    return train_step


def test_step_body(
    model: keras.Model,
    loss_fn: LossFn,
    loss_tracker: keras.metrics.Metric,
    metrics: Sequence[keras.metrics.Metric] = (),
) -> Callable[..., tf.Tensor]:
    """The uncompiled evaluation step (``training=False``, no update)."""

    def test_step(x, y, sample_weight=None):
        y_pred = model(x, training=False)
        loss = total_loss(model, loss_fn, y, y_pred, sample_weight)
        loss_tracker.update_state(loss * _replicas(), sample_weight=tf.shape(x)[0])
        for metric in metrics:
            metric.update_state(y, y_pred, sample_weight=sample_weight)
        return loss

    return test_step


def runner(body: Callable[..., tf.Tensor]) -> Callable[..., tf.Tensor]:
    """Run ``body`` on one device, or on every replica with the losses summed."""
    if not tf.distribute.has_strategy():
        return body
    strategy = tf.distribute.get_strategy()

    def distributed(*args):
        per_replica = strategy.run(body, args=args)
        return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    return distributed


def compile_step(body: Callable[..., tf.Tensor], jit_compile: bool = False) -> Callable[..., tf.Tensor]:
    """One step per call.  ``reduce_retracing=True`` lets a partial last batch reuse the graph
    (a retrace would also make the result differ from ``fit`` in the last bits)."""
    return tf.function(runner(body), reduce_retracing=True, jit_compile=jit_compile)


def make_train_step(model, optimizer, loss_fn, loss_tracker, metrics=(), **options) -> Callable:
    """Compile one training step; returns the loss.

    ``global_clipnorm`` / ``clipnorm`` / ``clipvalue`` clip the gradients before the update
    (see :func:`tutorial_helpers.gradients.clip_gradients`).  If
    ``gradient_norm_tracker`` is given, it is updated with the global norm of
    the gradients *before* clipping, the number to watch for explosions.
    """
    return compile_step(train_step_body(model, optimizer, loss_fn, loss_tracker, metrics, **options))


def make_test_step(model, loss_fn, loss_tracker, metrics=()) -> Callable:
    """Compile one evaluation step; returns the loss."""
    return compile_step(test_step_body(model, loss_fn, loss_tracker, metrics))
