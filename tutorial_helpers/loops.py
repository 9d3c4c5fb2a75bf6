"""Chapter 2: a hand-written Keras training loop you can trust to equal ``fit()``.

The loop is the one Chapter 2 builds, made reusable:

* :func:`make_train_step` / :func:`make_test_step` compile one step with
  ``tf.function``: forward pass, loss (plus the model's own losses, such as
  weight penalties), gradients, ``optimizer.apply``, metric updates;
* :func:`train` runs epochs over batches, resets the metrics each epoch, runs an
  optional validation pass with ``training=False``, records a history like
  ``fit``'s, shows Keras's own progress bar when ``verbose=1``, and stops with
  the epoch and step when the loss stops being finite.

Given the same initial weights, optimizer settings and batches (no shuffling),
:func:`train` ends with the same weights and the same per-epoch losses as
``model.fit`` (the tests check this to 1e-6).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tutorial_helpers.gradients import clip_gradients, global_norm
from tutorial_helpers.validation import check_positive_int, check_same_length

LossFn = Callable[..., tf.Tensor]
History = dict[str, list[float]]


def as_dataset(data: Any, batch_size: int | None = None, name: str = "train_data") -> tf.data.Dataset:
    """Return ``data`` as a batched ``tf.data.Dataset`` of ``(x, y)`` or ``(x, y, sample_weight)``.

    ``data`` is either such a dataset (already batched; ``batch_size`` must then
    be ``None``) or a tuple of arrays ``(x, y)`` / ``(x, y, sample_weight)`` that is
    cut, in order, into batches of ``batch_size``.  Raises ``ValueError`` or
    ``TypeError`` naming ``name`` for anything else.
    """
    if isinstance(data, tf.data.Dataset):
        if batch_size is not None:
            raise ValueError(f"{name} is already a tf.data.Dataset: batch it there, not with batch_size")
        spec = data.element_spec
        if not isinstance(spec, tuple) or len(spec) not in (2, 3):
            raise ValueError(
                f"{name} must yield (x, y) or (x, y, sample_weight) tuples, got elements of {spec}"
            )
        if any(part.shape.rank == 0 for part in spec):
            raise ValueError(f"{name} must be batched: it yields scalars (call .batch(n) on it)")
        leading = {part.shape[0] for part in spec if part.shape[0] is not None}
        if len(leading) > 1:
            raise ValueError(
                f"{name} yields parts with different first dimensions {sorted(leading)}: "
                "is it batched (.batch(n))?"
            )
        if data.cardinality() == 0:
            raise ValueError(f"{name} is empty")
        return data
    if not isinstance(data, (tuple, list)) or len(data) not in (2, 3):
        raise TypeError(
            f"{name} must be a tf.data.Dataset or a tuple (x, y[, sample_weight]), "
            f"got {type(data).__name__}"
        )
    arrays = []
    for part, label in zip(data, ("x", "y", "sample_weight"), strict=False):
        array = np.asarray(part)
        if array.dtype == object or not np.issubdtype(array.dtype, np.number):
            raise TypeError(f"{name}: {label} must be numeric, got dtype {array.dtype}")
        if array.ndim == 0 or len(array) == 0:
            raise ValueError(f"{name}: {label} must not be empty")
        arrays.append(array.astype(np.float32))
    for array, label in zip(arrays[1:], ("y", "sample_weight"), strict=False):
        check_same_length(arrays[0], array, f"{name}: x", label)
    if batch_size is None:
        raise ValueError(f"batch_size is required when {name} is a tuple of arrays")
    batch_size = check_positive_int(batch_size, "batch_size")
    return tf.data.Dataset.from_tensor_slices(tuple(arrays)).batch(batch_size)


def _total_loss(model: keras.Model, loss_fn: LossFn, y, y_pred, sample_weight) -> tf.Tensor:
    """The compiled loss plus the model's own losses, summed the way ``fit`` sums them."""
    loss = loss_fn(y, y_pred, sample_weight=sample_weight)
    if model.losses:
        loss = keras.ops.sum([loss, *model.losses])
    return loss


def make_train_step(
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
    """Compile one training step: forward, loss, backward, update, metrics; returns the loss.

    ``global_clipnorm`` / ``clipnorm`` clip the gradients before the update
    (see :func:`tutorial_helpers.gradients.clip_gradients`).  If
    ``gradient_norm_tracker`` is given, it is updated with the global norm of
    the gradients *before* clipping, the number to watch for explosions.
    ``reduce_retracing=True`` lets a partial last batch reuse the same graph
    (a retrace would also make the result differ from ``fit`` in the last bits).
    """
    clip_gradients([], global_clipnorm=global_clipnorm, clipnorm=clipnorm)  # check the settings now

    @tf.function(reduce_retracing=True)
    def train_step(x, y, sample_weight=None):
        with tf.GradientTape() as tape:
            y_pred = model(x, training=True)
            loss = _total_loss(model, loss_fn, y, y_pred, sample_weight)
        gradients = tape.gradient(loss, model.trainable_variables)
        if gradient_norm_tracker is not None:
            gradient_norm_tracker.update_state(global_norm(gradients))
        gradients = clip_gradients(gradients, global_clipnorm=global_clipnorm, clipnorm=clipnorm)
        optimizer.apply(gradients, model.trainable_variables)
        loss_tracker.update_state(loss, sample_weight=tf.shape(x)[0])
        for metric in metrics:
            metric.update_state(y, y_pred, sample_weight=sample_weight)
        return loss

    return train_step


def make_test_step(
    model: keras.Model,
    loss_fn: LossFn,
    loss_tracker: keras.metrics.Metric,
    metrics: Sequence[keras.metrics.Metric] = (),
) -> Callable[..., tf.Tensor]:
    """Compile one evaluation step (``training=False``, no update); returns the loss."""

    @tf.function(reduce_retracing=True)
    def test_step(x, y, sample_weight=None):
        y_pred = model(x, training=False)
        loss = _total_loss(model, loss_fn, y, y_pred, sample_weight)
        loss_tracker.update_state(loss, sample_weight=tf.shape(x)[0])
        for metric in metrics:
            metric.update_state(y, y_pred, sample_weight=sample_weight)
        return loss

    return test_step


def check_finite(loss: tf.Tensor, epoch: int, step: int) -> float:
    """Return ``loss`` as a float, or raise ``FloatingPointError`` naming the epoch and step."""
    value = float(loss)
    if not math.isfinite(value):
        raise FloatingPointError(
            f"loss became {value} at epoch {epoch}, step {step}: "
            "lower the learning rate, clip gradients, or check the data"
        )
    return value


def metric_results(
    loss_tracker: keras.metrics.Metric, metrics: Sequence[keras.metrics.Metric]
) -> dict[str, float]:
    """``{"loss": ..., <metric name>: ...}`` as Python floats."""
    logs = {"loss": float(loss_tracker.result())}
    for metric in metrics:
        logs[metric.name] = float(metric.result())
    return logs


def reset_metrics(loss_tracker: keras.metrics.Metric, metrics: Sequence[keras.metrics.Metric]) -> None:
    """Reset the loss tracker and every metric (Keras 3: ``reset_state``)."""
    loss_tracker.reset_state()
    for metric in metrics:
        metric.reset_state()


def evaluate(
    model: keras.Model,
    data: Any,
    *,
    loss_fn: LossFn,
    metrics: Sequence[keras.metrics.Metric] = (),
    batch_size: int | None = None,
) -> dict[str, float]:
    """Loss and metrics of ``model`` on ``data`` with ``training=False``, like ``model.evaluate``."""
    dataset = as_dataset(data, batch_size, name="data")
    tracker = keras.metrics.Mean(name="loss")
    step = make_test_step(model, loss_fn, tracker, metrics)
    reset_metrics(tracker, metrics)
    for batch in dataset:
        step(*batch)
    return metric_results(tracker, metrics)


def train(
    model: keras.Model,
    train_data: Any,
    *,
    optimizer: keras.optimizers.Optimizer,
    loss_fn: LossFn,
    epochs: int,
    metrics: Sequence[keras.metrics.Metric] = (),
    batch_size: int | None = None,
    validation_data: Any = None,
    verbose: int = 1,
    global_clipnorm: float | None = None,
    clipnorm: float | None = None,
) -> History:
    """Train ``model`` with a hand-written loop and return its per-epoch history.

    ``train_data`` and ``validation_data`` are batched ``tf.data.Dataset``s of
    ``(x, y[, sample_weight])`` or tuples of arrays with ``batch_size``.  Shuffle in
    the dataset (``.shuffle(n, reshuffle_each_iteration=True)``) if you want
    shuffling: the loop takes batches in the order given.  ``loss_fn`` is a Keras
    loss (called as ``loss_fn(y, y_pred, sample_weight=...)``); ``metrics`` are
    Keras metric objects, reported under their ``name`` (``val_`` + name for
    validation).  ``verbose=1`` shows Keras's progress bar, ``0`` nothing.

    Returns ``{"loss": [...], "<metric>": [...], "val_loss": [...], ...}``, one
    value per epoch, averaged over the epoch's samples exactly as ``fit`` does.
    Raises ``FloatingPointError`` naming the epoch and step at which the loss
    became NaN or infinite.
    """
    epochs = check_positive_int(epochs, "epochs")
    if verbose not in (0, 1):
        raise ValueError(f"verbose must be 0 or 1, got {verbose!r}")
    if not isinstance(optimizer, keras.optimizers.Optimizer):
        raise TypeError(f"optimizer must be a keras.optimizers.Optimizer, got {type(optimizer).__name__}")
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be callable, got {type(loss_fn).__name__}")
    train_ds = as_dataset(train_data, batch_size, name="train_data")
    val_ds = None if validation_data is None else as_dataset(
        validation_data, batch_size, name="validation_data"
    )
    metrics = list(metrics)
    names = [m.name for m in metrics]
    if len(set(names)) != len(names) or "loss" in names:
        raise ValueError(f"metric names must be unique and not 'loss', got {names}")

    loss_tracker = keras.metrics.Mean(name="loss")
    train_step = make_train_step(
        model, optimizer, loss_fn, loss_tracker, metrics,
        global_clipnorm=global_clipnorm, clipnorm=clipnorm,
    )
    test_step = make_test_step(model, loss_fn, loss_tracker, metrics)
    cardinality = int(train_ds.cardinality())
    steps_per_epoch = cardinality if cardinality > 0 else None

    history: History = {}
    for epoch in range(1, epochs + 1):
        reset_metrics(loss_tracker, metrics)
        progbar = None
        if verbose:
            print(f"Epoch {epoch}/{epochs}")
            progbar = keras.utils.Progbar(steps_per_epoch, stateful_metrics=["loss", *names])
        step = 0
        for step, batch in enumerate(train_ds, start=1):
            check_finite(train_step(*batch), epoch, step)
            if progbar is not None:
                progbar.update(step, list(metric_results(loss_tracker, metrics).items()))
        if step == 0:
            raise ValueError("train_data yielded no batches")
        logs = metric_results(loss_tracker, metrics)

        if val_ds is not None:
            reset_metrics(loss_tracker, metrics)
            for batch in val_ds:
                test_step(*batch)
            logs.update({f"val_{k}": v for k, v in metric_results(loss_tracker, metrics).items()})
        if progbar is not None:
            progbar.update(step, list(logs.items()), finalize=True)
        for key, value in logs.items():
            history.setdefault(key, []).append(value)
    return history
