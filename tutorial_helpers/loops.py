"""Chapter 2: a hand-written Keras training loop you can trust to equal ``fit()``.

The loop is the one Chapter 2 builds, made reusable:

* :func:`make_train_step` / :func:`make_test_step` compile one step with
  ``tf.function``: forward pass, loss (plus the model's own losses, such as
  weight penalties), gradients, ``optimizer.apply``, metric updates;
* :func:`train` runs epochs over batches, resets the metrics each epoch, runs an
  optional validation pass with ``training=False``, records a history like
  ``fit``'s, shows Keras's own progress bar when ``verbose=1``, and stops with
  the epoch and step when the loss stops being finite.

The epochs themselves run through :class:`~tutorial_helpers.epochs.EpochRunner`,
the same machinery as Chapter 7's ``Trainer``.  Given the same initial weights,
optimizer settings and batches (no shuffling), :func:`train` ends with the same
weights and the same per-epoch losses as ``model.fit``, bit for bit on a CPU
(the tests assert a difference of exactly 0).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import tensorflow as tf

from tutorial_helpers.epochs import (
    EpochRunner,
    as_dataset,
    check_data_for_model,
    checked_arrays,
    epoch_calls,
    metric_results,
    metric_tensors,
    reset_metrics,
)
from tutorial_helpers.feeds import LossWatch
from tutorial_helpers.steps import LossFn, make_test_step, make_train_step, test_step_body, train_step_body
from tutorial_helpers.validation import (
    check_loss_fn,
    check_metrics,
    check_optimizer,
    check_positive_int,
)

__all__ = [
    "as_dataset", "checked_arrays", "epoch_calls", "evaluate", "make_test_step", "make_train_step",
    "metric_results", "metric_tensors", "reset_metrics", "train",
]

History = dict[str, list[float]]


def evaluate(
    model: keras.Model,
    data: Any,
    *,
    loss_fn: LossFn,
    metrics: Sequence[keras.metrics.Metric] = (),
    batch_size: int | None = None,
) -> dict[str, float]:
    """Loss and metrics of ``model`` on ``data`` with ``training=False``, like ``model.evaluate``."""
    check_loss_fn(loss_fn)
    metrics = check_metrics(metrics)
    check_data_for_model(model, data, loss_fn, batch_size, name="data")
    tracker = keras.metrics.Mean(name="loss")
    run_epoch, _ = epoch_calls(
        test_step_body(model, loss_fn, tracker, metrics), data, batch_size,
        per_call="epoch", watch=LossWatch(), name="data",
    )
    reset_metrics(tracker, metrics)
    for _ in run_epoch():
        pass
    return metric_results(tracker, metrics)


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
    clipvalue: float | None = None,
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
    ``clipnorm`` each gradient tensor to that norm, ``clipvalue`` each element
    to ``[-clipvalue, clipvalue]`` (at most one of them; the optimizer's own
    ``clipvalue`` and ``clipnorm`` do the same computation).

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
    if verbose not in (0, 1) or isinstance(verbose, bool):
        raise ValueError(f"verbose must be 0 or 1, got {verbose!r}")
    check_optimizer(optimizer)
    check_loss_fn(loss_fn)
    metrics = check_metrics(metrics)
    steps_per_execution = _check_steps_per_execution(steps_per_execution, train_data)
    check_data_for_model(model, train_data, loss_fn, batch_size)
    if validation_data is not None:
        check_data_for_model(model, validation_data, loss_fn, batch_size, name="validation_data")

    loss_tracker = keras.metrics.Mean(name="loss")
    train_body = train_step_body(
        model, optimizer, loss_fn, loss_tracker, metrics,
        global_clipnorm=global_clipnorm, clipnorm=clipnorm, clipvalue=clipvalue,
    )
    runner = EpochRunner(
        train_body, test_step_body(model, loss_fn, loss_tracker, metrics), loss_tracker, metrics,
        train_data, batch_size, validation_data=validation_data, per_call=steps_per_execution,
    )
    names = [m.name for m in metrics]
    history: History = {}
    for epoch in range(1, epochs + 1):
        progbar = None
        if verbose:
            print(f"Epoch {epoch}/{epochs}")
            progbar = keras.utils.Progbar(runner.steps, stateful_metrics=["loss", *names])
        show = None if progbar is None else (  # Progbar reads the tensors only when it redraws
            lambda done, bar=progbar: bar.update(done, metric_tensors(loss_tracker, metrics))
        )
        logs = runner.train_epoch(epoch, after_call=show)
        if validation_data is not None:
            logs.update({f"val_{k}": v for k, v in runner.validate(epoch).items()})
        if progbar is not None:
            progbar.update(runner.steps_done, list(logs.items()), finalize=True)
        for key, value in logs.items():
            history.setdefault(key, []).append(value)
    return history
