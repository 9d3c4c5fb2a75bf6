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

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tutorial_helpers.feeds import ArrayFeed, LossWatch, compile_array_steps, compile_iterator_steps
from tutorial_helpers.steps import (
    LossFn,
    make_test_step,
    make_train_step,
    runner,
    test_step_body,
    train_step_body,
)
from tutorial_helpers.validation import check_positive_int, check_same_length

__all__ = [
    "as_dataset", "checked_arrays", "epoch_calls", "evaluate", "make_test_step", "make_train_step", "train",
]

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
    arrays = checked_arrays(data, batch_size, name)
    return tf.data.Dataset.from_tensor_slices(tuple(arrays)).batch(batch_size)


def checked_arrays(data: Any, batch_size: int | None, name: str = "train_data") -> list[np.ndarray]:
    """``data``, a tuple ``(x, y[, sample_weight])`` of numeric arrays of one length, as float32 arrays.

    Raises ``TypeError`` or ``ValueError`` naming ``name`` for anything else,
    and for a missing or non-positive ``batch_size``.
    """
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
    check_positive_int(batch_size, "batch_size")
    return arrays


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
    tracker = keras.metrics.Mean(name="loss")
    run_epoch, _ = epoch_calls(
        test_step_body(model, loss_fn, tracker, metrics), data, batch_size,
        per_call="epoch", watch=LossWatch(), name="data",
    )
    reset_metrics(tracker, metrics)
    for _ in run_epoch():
        pass
    return metric_results(tracker, metrics)


def _distribute(dataset: tf.data.Dataset) -> Any:
    """Split each batch across the replicas of the current strategy, if there is one."""
    if tf.distribute.has_strategy():
        return tf.distribute.get_strategy().experimental_distribute_dataset(dataset)
    return dataset


def epoch_calls(
    body: Callable[..., tf.Tensor],
    data: Any,
    batch_size: int | None,
    *,
    per_call: int | str,
    watch: LossWatch,
    name: str = "train_data",
    feed: ArrayFeed | None = None,
    before_call: Callable[[int], None] | None = None,
) -> tuple[Callable[[], Iterator[int]], int | None]:
    """Compile ``body`` to run over ``data`` and return ``(run_epoch, steps per epoch or None)``.

    ``run_epoch()`` runs one epoch, ``per_call`` steps per compiled call
    (``"epoch"``: all of them), and yields the number of steps done after each
    call.  It never reads a result on the host: ``watch`` counts the steps and
    the first non-finite loss (``run_epoch`` resets it; check it after).
    In-memory arrays are cut into batches inside the graph (an
    :class:`~tutorial_helpers.feeds.ArrayFeed`; pass ``feed`` to reuse one, for
    instance a shuffled one), except under a distribution strategy; a dataset
    of known length is read with ``next()`` inside the graph; one of unknown
    length is iterated from Python, one compiled step per batch (``per_call``
    must then be 1 or ``"epoch"``, which mean the same there).
    ``before_call(steps done)`` runs before each call (a callback's batch-begin hook).
    """
    run = runner(body)
    if feed is None and not isinstance(data, tf.data.Dataset) and not tf.distribute.has_strategy():
        feed = ArrayFeed(checked_arrays(data, batch_size, name), batch_size)
    if feed is not None:
        steps = feed.steps
        call = compile_array_steps(run, feed, watch, steps if per_call == "epoch" else per_call)
        source = None
    else:
        dataset = as_dataset(data, batch_size, name=name)
        cardinality = int(dataset.cardinality())
        steps = cardinality if cardinality > 0 else None
        source = _distribute(dataset)
        if steps is None:
            if per_call not in (1, "epoch"):
                raise ValueError("steps_per_execution > 1 needs a dataset of known length (cardinality)")

            def one_step(*batch) -> None:
                watch.record(run(*batch))

            step = tf.function(one_step, reduce_retracing=True)
        else:
            call = compile_iterator_steps(run, watch, steps if per_call == "epoch" else per_call)

    def run_epoch() -> Iterator[int]:
        watch.reset()
        if steps is None:  # unknown length: iterate from Python
            for done, batch in enumerate(source):
                if before_call is not None:
                    before_call(done)
                step(*batch)
                yield done + 1
            return
        iterator = None if source is None else iter(source)
        done = 0
        while done < steps:
            count = steps - done if per_call == "epoch" else min(per_call, steps - done)
            if before_call is not None:
                before_call(done)
            if iterator is None:
                call(count)
            else:
                call(iterator, count)
            done += count
            yield done

    return run_epoch, steps


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


def metric_tensors(
    loss_tracker: keras.metrics.Metric, metrics: Sequence[keras.metrics.Metric]
) -> list[tuple[str, tf.Tensor]]:
    """The current results as tensors, for a progress bar that reads them only when it redraws."""
    return [("loss", loss_tracker.result()), *((m.name, m.result()) for m in metrics)]


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
    In-memory arrays are cut into batches inside the compiled function, and no
    step's loss is read on the host: the loop reads its results once per epoch
    (and the progress bar, with ``verbose=1``, when it redraws).

    Called inside ``strategy.scope()`` of a ``tf.distribute`` strategy, the
    same loop splits every batch across the replicas (Chapter 10); use batch
    sizes divisible by the number of replicas for exact averages.

    Returns ``{"loss": [...], "<metric>": [...], "val_loss": [...], ...}``, one
    value per epoch, averaged over the epoch's samples exactly as ``fit`` does.
    Raises ``FloatingPointError`` naming the epoch and step at which the loss
    became NaN or infinite (checked at the end of the epoch, inside which the
    compiled code remembers the first bad step).
    """
    epochs = check_positive_int(epochs, "epochs")
    if verbose not in (0, 1):
        raise ValueError(f"verbose must be 0 or 1, got {verbose!r}")
    if not isinstance(optimizer, keras.optimizers.Optimizer):
        raise TypeError(f"optimizer must be a keras.optimizers.Optimizer, got {type(optimizer).__name__}")
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be callable, got {type(loss_fn).__name__}")
    steps_per_execution = _check_steps_per_execution(steps_per_execution, train_data)
    metrics = list(metrics)
    names = [m.name for m in metrics]
    if len(set(names)) != len(names) or "loss" in names:
        raise ValueError(f"metric names must be unique and not 'loss', got {names}")

    loss_tracker = keras.metrics.Mean(name="loss")
    watch = LossWatch()
    body = train_step_body(
        model, optimizer, loss_fn, loss_tracker, metrics,
        global_clipnorm=global_clipnorm, clipnorm=clipnorm,
    )
    run_epoch, steps_per_epoch = epoch_calls(
        body, train_data, batch_size, per_call=steps_per_execution, watch=watch
    )
    validate = None
    if validation_data is not None:
        validate, _ = epoch_calls(
            test_step_body(model, loss_fn, loss_tracker, metrics), validation_data, batch_size,
            per_call="epoch", watch=LossWatch(), name="validation_data",
        )

    history: History = {}
    for epoch in range(1, epochs + 1):
        reset_metrics(loss_tracker, metrics)
        progbar = None
        if verbose:
            print(f"Epoch {epoch}/{epochs}")
            progbar = keras.utils.Progbar(steps_per_epoch, stateful_metrics=["loss", *names])
        for done in run_epoch():
            if progbar is not None:  # Progbar reads the tensors only when it redraws
                progbar.update(done, metric_tensors(loss_tracker, metrics))
        steps = watch.check(epoch)  # the one read of the epoch on the host
        if steps == 0:
            raise ValueError("train_data yielded no batches")
        logs = metric_results(loss_tracker, metrics)

        if validate is not None:
            reset_metrics(loss_tracker, metrics)
            for _ in validate():
                pass
            logs.update({f"val_{k}": v for k, v in metric_results(loss_tracker, metrics).items()})
        if progbar is not None:
            progbar.update(steps, list(logs.items()), finalize=True)
        for key, value in logs.items():
            history.setdefault(key, []).append(value)
    return history
