"""Chapter 12: instruments for debugging a training loop."""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from tutorial_helpers.epochs import as_dataset
from tutorial_helpers.steps import compile_step, train_step_body
from tutorial_helpers.validation import check_loss_fn, check_optimizer, check_positive_int


def dense_layers(model: keras.Model) -> list[keras.layers.Dense]:
    """The model's ``Dense`` layers, input to output."""
    return [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]


def record_gradient_norms(
    model: keras.Model,
    optimizer: keras.optimizers.Optimizer,
    loss_fn,
    dataset: tf.data.Dataset,
    steps: int,
    *,
    global_clipnorm: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Train for ``steps`` steps and record, at every step, each Dense layer's kernel-gradient norm.

    Returns ``(norms, losses)``: ``norms`` has shape ``(steps, n_dense_layers)``
    (input layer first), ``losses`` shape ``(steps,)``.  Stops early, padding
    with NaN, if the loss becomes non-finite.  The step is the book's shared
    train step (:func:`tutorial_helpers.steps.train_step_body`), so weight
    penalties and sample weights in ``dataset`` count as in every loop.  ``global_clipnorm`` clips the
    gradients before the update (the norms are recorded before clipping).
    """
    steps = check_positive_int(steps, "steps")
    check_optimizer(optimizer)
    check_loss_fn(loss_fn)
    if not isinstance(dataset, tf.data.Dataset):
        raise TypeError(f"dataset must be a batched tf.data.Dataset, got {type(dataset).__name__}")
    as_dataset(dataset)  # batched, of (x, y[, sample_weight])
    kernels = [layer.kernel for layer in dense_layers(model)]
    if not kernels:
        raise ValueError("the model has no Dense layers to watch")
    position = {id(v): i for i, v in enumerate(model.trainable_variables)}
    watched = [position[id(k)] for k in kernels]
    step_norms = tf.Variable(tf.zeros(len(kernels)), trainable=False)

    def observe(gradients: list) -> None:
        step_norms.assign(tf.stack([tf.norm(gradients[i]) for i in watched]))

    # the same step as every loop in the book (model losses, sample weights,
    # clipping), with an observer that keeps the per-layer norms
    step = compile_step(train_step_body(
        model, optimizer, loss_fn, keras.metrics.Mean(), global_clipnorm=global_clipnorm,
        gradient_observer=observe,
    ))
    norms = np.full((steps, len(kernels)), np.nan)
    losses = np.full(steps, np.nan)
    batches = iter(dataset.repeat())
    for i in range(steps):
        loss = step(*next(batches))
        norms[i], losses[i] = step_norms.numpy(), float(loss)
        if not np.isfinite(losses[i]):
            break
    return norms, losses


def assert_same_shape(y_true: tf.Tensor, y_pred: tf.Tensor) -> None:
    """Raise ``ValueError`` if targets and predictions differ in shape.

    ``(batch,)`` targets against ``(batch, 1)`` predictions broadcast to a
    ``(batch, batch)`` error matrix in hand-written losses, silently; this check
    turns that into an error.  Works in eager code and inside ``tf.function``
    (where it checks the static shapes while tracing).
    """
    true_shape, pred_shape = tuple(y_true.shape), tuple(y_pred.shape)
    if len(true_shape) != len(pred_shape) or any(
        a is not None and b is not None and a != b for a, b in zip(true_shape, pred_shape, strict=False)
    ):
        raise ValueError(
            f"targets of shape {true_shape} and predictions of shape {pred_shape} would broadcast; "
            "reshape the targets (y[:, None]) or the predictions"
        )


def standardize(train: np.ndarray, *others: np.ndarray) -> Sequence[np.ndarray]:
    """Scale features to mean 0 and standard deviation 1, with statistics from ``train`` only.

    Returns the transformed ``train`` followed by every array in ``others``
    (validation, test) transformed with the *training* statistics.
    Constant features are left centred but unscaled.
    """
    train = np.asarray(train, dtype=np.float32)
    mean, std = train.mean(axis=0), train.std(axis=0)
    std = np.where(std > 0, std, 1.0).astype(np.float32)
    return [(np.asarray(a, dtype=np.float32) - mean) / std for a in (train, *others)]
