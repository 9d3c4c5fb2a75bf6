"""The compiled steps behind every loop in the book: one step, N steps per call, a whole epoch.

A *step body* is plain Python: forward pass, loss (plus the model's own
losses), gradients, optional clipping, ``optimizer.apply``, metric updates.
The functions here compile a body in the three ways Chapter 9 measures:

* :func:`make_train_step` - one step per ``tf.function`` call (Chapter 2);
* :func:`make_multi_step` - up to N steps per call, pulling batches from an
  iterator inside the graph (the idea behind ``fit(steps_per_execution=N)``);
* :func:`make_epoch_step` - a whole epoch per call over in-memory tensors.

Under a ``tf.distribute`` strategy (Chapter 10) each body runs on every replica
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

from tutorial_helpers.gradients import clip_gradients, global_norm

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
    gradient_norm_tracker: keras.metrics.Metric | None = None,
) -> Callable[..., tf.Tensor]:
    """The uncompiled train step; see :func:`make_train_step`."""
    clip_gradients([], global_clipnorm=global_clipnorm, clipnorm=clipnorm)  # check the settings now

    def train_step(x, y, sample_weight=None):
        with tf.GradientTape() as tape:
            y_pred = model(x, training=True)
            loss = total_loss(model, loss_fn, y, y_pred, sample_weight)
        gradients = tape.gradient(loss, model.trainable_variables)
        if gradient_norm_tracker is not None:
            gradient_norm_tracker.update_state(global_norm(gradients))
        gradients = clip_gradients(gradients, global_clipnorm=global_clipnorm, clipnorm=clipnorm)
        optimizer.apply(gradients, model.trainable_variables)
        # the tracker reports the global mean: undo the 1/N replica scaling
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


def _runner(body: Callable[..., tf.Tensor]) -> Callable[..., tf.Tensor]:
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
    return tf.function(_runner(body), reduce_retracing=True, jit_compile=jit_compile)


def make_train_step(model, optimizer, loss_fn, loss_tracker, metrics=(), **options) -> Callable:
    """Compile one training step; returns the loss.

    ``global_clipnorm`` / ``clipnorm`` clip the gradients before the update
    (see :func:`tutorial_helpers.gradients.clip_gradients`).  If
    ``gradient_norm_tracker`` is given, it is updated with the global norm of
    the gradients *before* clipping, the number to watch for explosions.
    """
    return compile_step(train_step_body(model, optimizer, loss_fn, loss_tracker, metrics, **options))


def make_test_step(model, loss_fn, loss_tracker, metrics=()) -> Callable:
    """Compile one evaluation step; returns the loss."""
    return compile_step(test_step_body(model, loss_fn, loss_tracker, metrics))


def _first_bad(first_bad: tf.Tensor, index: tf.Tensor, loss: tf.Tensor) -> tf.Tensor:
    return tf.where((first_bad < 0) & ~tf.math.is_finite(loss), index, first_bad)


def make_multi_step(body: Callable[..., tf.Tensor]) -> Callable[[object, tf.Tensor], tuple]:
    """Compile ``multi_step(iterator, n)``: run ``n`` steps on batches pulled from ``iterator``.

    Returns ``(last loss, index of the first non-finite loss or -1)``, so that a
    NaN is still reported with its exact step.
    """
    run = _runner(body)

    @tf.function
    def multi_step(iterator, n):
        loss, first_bad = tf.constant(0.0), tf.constant(-1)
        for i in tf.range(n):
            loss = run(*next(iterator))
            first_bad = _first_bad(first_bad, i, loss)
        return loss, first_bad

    return multi_step


def make_epoch_step(body: Callable[..., tf.Tensor], batch_size: int) -> Callable[..., tuple]:
    """Compile ``epoch_step(x, y[, sample_weight])``: a whole epoch in one call.

    The arrays are in-memory tensors, cut in order into batches of
    ``batch_size`` inside the graph (the last batch may be smaller), so the
    batches are exactly those of ``Dataset.batch(batch_size)``.  Returns
    ``(last loss, index of the first non-finite loss or -1)``.
    """

    @tf.function
    def epoch_step(*arrays):
        n = tf.shape(arrays[0])[0]
        steps = (n + batch_size - 1) // batch_size
        loss, first_bad = tf.constant(0.0), tf.constant(-1)
        for i in tf.range(steps):
            start = i * batch_size
            end = tf.minimum(start + batch_size, n)
            loss = body(*(a[start:end] for a in arrays))
            first_bad = _first_bad(first_bad, i, loss)
        return loss, first_bad

    return epoch_step
