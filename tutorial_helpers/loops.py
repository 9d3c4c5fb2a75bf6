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

from tutorial_helpers.steps import (
    LossFn,
    compile_step,
    make_epoch_step,
    make_multi_step,
    make_test_step,
    make_train_step,
    train_step_body,
)
from tutorial_helpers.validation import check_positive_int, check_same_length

__all__ = ["as_dataset", "evaluate", "make_test_step", "make_train_step", "train"]

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
    for batch in _distribute(dataset):
        step(*batch)
    return metric_results(tracker, metrics)


def _distribute(dataset: tf.data.Dataset) -> Any:
    """Split each batch across the replicas of the current strategy, if there is one."""
    if tf.distribute.has_strategy():
        return tf.distribute.get_strategy().experimental_distribute_dataset(dataset)
    return dataset


def _check_steps_per_execution(value: int | str, train_data: Any) -> int | str:
    if value == "epoch":
        if isinstance(train_data, tf.data.Dataset):
            raise ValueError(
                'steps_per_execution="epoch" needs the training data as in-memory arrays '
                "(x, y[, sample_weight]), not a tf.data.Dataset"
            )
        if tf.distribute.has_strategy():
            raise ValueError('steps_per_execution="epoch" does not run under a distribution strategy')
        return value
    if isinstance(value, str):
        raise ValueError(f'steps_per_execution must be an int >= 1 or "epoch", got {value!r}')
    return check_positive_int(value, "steps_per_execution")


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
    steps_per_execution: int | str = 1,
) -> History:
    """Train ``model`` with a hand-written loop and return its per-epoch history.

    ``train_data`` and ``validation_data`` are batched ``tf.data.Dataset``s of
    ``(x, y[, sample_weight])`` or tuples of arrays with ``batch_size``.  Shuffle in
    the dataset (``.shuffle(n, reshuffle_each_iteration=True)``) if you want
    shuffling: the loop takes batches in the order given.  ``loss_fn`` is a Keras
    loss (called as ``loss_fn(y, y_pred, sample_weight=...)``); ``metrics`` are
    Keras metric objects, reported under their ``name`` (``val_`` + name for
    validation).  ``verbose=1`` shows Keras's progress bar, ``0`` nothing.
    ``global_clipnorm`` clips all gradients together to that global norm,
    ``clipnorm`` each gradient tensor to that norm (at most one of them).

    ``steps_per_execution=N`` runs N steps per ``tf.function`` call (Chapter 9);
    ``"epoch"`` runs a whole epoch per call over in-memory tensors (arrays only),
    the fastest option on a CPU.  The batches, and so the results, are the same.

    Called inside ``strategy.scope()`` of a ``tf.distribute`` strategy, the
    same loop splits every batch across the replicas (Chapter 10); use batch
    sizes divisible by the number of replicas for exact averages.

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
    steps_per_execution = _check_steps_per_execution(steps_per_execution, train_data)
    train_ds = as_dataset(train_data, batch_size, name="train_data")
    val_ds = None if validation_data is None else as_dataset(
        validation_data, batch_size, name="validation_data"
    )
    metrics = list(metrics)
    names = [m.name for m in metrics]
    if len(set(names)) != len(names) or "loss" in names:
        raise ValueError(f"metric names must be unique and not 'loss', got {names}")
    cardinality = int(train_ds.cardinality())
    steps_per_epoch = cardinality if cardinality > 0 else None
    if steps_per_execution != 1 and steps_per_epoch is None:
        raise ValueError("steps_per_execution > 1 needs a dataset of known length (cardinality)")

    loss_tracker = keras.metrics.Mean(name="loss")
    body = train_step_body(
        model, optimizer, loss_fn, loss_tracker, metrics,
        global_clipnorm=global_clipnorm, clipnorm=clipnorm,
    )
    test_step = make_test_step(model, loss_fn, loss_tracker, metrics)
    if steps_per_execution == "epoch":
        run_calls = _epoch_calls(make_epoch_step(body, batch_size), train_data, steps_per_epoch)
    elif steps_per_execution == 1:
        run_calls = _single_calls(compile_step(body), train_ds)
    else:
        run_calls = _multi_calls(make_multi_step(body), train_ds, steps_per_epoch, steps_per_execution)
    val_ds = None if val_ds is None else _distribute(val_ds)

    history: History = {}
    for epoch in range(1, epochs + 1):
        reset_metrics(loss_tracker, metrics)
        progbar = None
        if verbose:
            print(f"Epoch {epoch}/{epochs}")
            progbar = keras.utils.Progbar(steps_per_epoch, stateful_metrics=["loss", *names])
        step = 0
        for step, loss, first_bad in run_calls():
            if first_bad is not None:
                check_finite(float("nan"), epoch, first_bad)
            check_finite(loss, epoch, step)
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


# Each ``*_calls`` returns a function that runs one epoch and yields, after every
# compiled call, (steps done so far, last loss, 1-based step of the first
# non-finite loss in that call or None).


def _single_calls(step: Callable, dataset: tf.data.Dataset) -> Callable:
    def run():
        for index, batch in enumerate(_distribute(dataset), start=1):
            yield index, step(*batch), None

    return run


def _multi_calls(multi_step: Callable, dataset: tf.data.Dataset, steps: int, per_call: int) -> Callable:
    def run():
        iterator, done = iter(_distribute(dataset)), 0
        while done < steps:
            n = min(per_call, steps - done)
            loss, bad = multi_step(iterator, tf.constant(n))
            yield done + n, loss, None if int(bad) < 0 else done + int(bad) + 1
            done += n

    return run


def _epoch_calls(epoch_step: Callable, arrays: Any, steps: int) -> Callable:
    tensors = tuple(tf.constant(np.asarray(a, dtype=np.float32)) for a in arrays)

    def run():
        loss, bad = epoch_step(*tensors)
        yield steps, loss, None if int(bad) < 0 else int(bad) + 1

    return run
