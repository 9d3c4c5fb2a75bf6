"""Chapter 2's training loop, made reusable.

Chapter 2 wrote the loop in five parts, a train step and an epoch loop::

    @tf.function
    def train_step(x_batch, y_batch):
        with tf.GradientTape() as tape:
            y_pred = model(x_batch, training=True)  # 1. forward
            loss = loss_fn(y_batch, y_pred)  # 2. loss
        grads = tape.gradient(loss, model.trainable_variables)  # 3. backward
        optimizer.apply(grads, model.trainable_variables)  # 4. update
        train_loss.update_state(loss, sample_weight=batch_size)  # 5. log

    for epoch in range(1, EPOCHS + 1):
        train_loss.reset_state()
        val_loss.reset_state()
        for x_batch, y_batch in train_ds:
            train_step(x_batch, y_batch)
        for x_batch, y_batch in val_ds:
            test_step(x_batch, y_batch)
        history["loss"].append(float(train_loss.result()))

:func:`train` below is that loop.  Its step is
:func:`~tutorial_helpers.steps.train_step_body`, the same five parts (plus the
model's own losses, Chapter 7, and optional clipping, Chapter 6).  Its epoch
loop is the ``for epoch`` loop above, with two additions, each named where it
happens:

* **speed** (Chapter 10): ``steps_per_execution`` runs several steps, or a
  whole epoch, per ``tf.function`` call, and no step's loss is read on the
  host (:class:`~tutorial_helpers.epochs.EpochRunner`, the same machinery as
  Chapter 8's ``Trainer``);
* **safety** (Chapter 8): bad arguments fail before anything is compiled, with
  the argument's name, and a loss that stops being finite stops the run with
  its epoch and step.

Given the same initial weights, optimizer settings and batches (no
shuffling), :func:`train` ends with the same weights and the same per-epoch
losses as ``model.fit``, bit for bit on a CPU (the tests assert a difference of
exactly 0).
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


def _check_arguments(
    model, train_data, *, optimizer, loss_fn, epochs, metrics, batch_size,
    validation_data, verbose, steps_per_execution,
) -> int | str:
    """Raise a ``ValueError``/``TypeError`` naming the argument; return ``steps_per_execution``."""
    check_positive_int(epochs, "epochs")
    if verbose not in (0, 1) or isinstance(verbose, bool):
        raise ValueError(f"verbose must be 0 or 1, got {verbose!r}")
    check_optimizer(optimizer)
    check_loss_fn(loss_fn)
    check_metrics(metrics)
    steps_per_execution = _check_steps_per_execution(steps_per_execution, train_data)
    check_data_for_model(model, train_data, loss_fn, batch_size)
    if validation_data is not None:
        check_data_for_model(model, validation_data, loss_fn, batch_size, name="validation_data")
    return steps_per_execution


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

    ``steps_per_execution=N`` runs N steps per ``tf.function`` call (Chapter 10);
    ``"epoch"`` runs a whole epoch per call over in-memory tensors (arrays only),
    the fastest option on a CPU.  The batches, and so the results, are the same.
    In-memory arrays are cut into batches inside the compiled function, and no
    step's loss is read on the host: the loop reads its results once per epoch
    (and the progress bar, with ``verbose=1``, when it redraws).

    Called inside ``strategy.scope()`` of a ``tf.distribute`` strategy, the
    same loop splits every batch across the replicas (Chapter 11); use batch
    sizes divisible by the number of replicas for exact averages.

    Returns ``{"loss": [...], "<metric>": [...], "val_loss": [...], ...}``, one
    value per epoch, averaged over the epoch's samples exactly as ``fit`` does.
    Raises ``FloatingPointError`` naming the epoch and step at which the loss
    became NaN or infinite (checked at the end of the epoch, inside which the
    compiled code remembers the first bad step).
    """
    # safety (Chapter 8): every argument is checked before anything is compiled
    steps_per_execution = _check_arguments(
        model, train_data, optimizer=optimizer, loss_fn=loss_fn, epochs=epochs,
        metrics=metrics, batch_size=batch_size, validation_data=validation_data,
        verbose=verbose, steps_per_execution=steps_per_execution,
    )
    metrics = list(metrics)

    # Chapter 2's train and test steps: forward, loss, backward, update, log
    loss_tracker = keras.metrics.Mean(name="loss")
    train_step = train_step_body(
        model, optimizer, loss_fn, loss_tracker, metrics,
        global_clipnorm=global_clipnorm, clipnorm=clipnorm, clipvalue=clipvalue,
    )
    test_step = test_step_body(model, loss_fn, loss_tracker, metrics)

    # speed (Chapter 10): `steps_per_execution` steps, or a whole epoch, per compiled call
    run = EpochRunner(
        train_step, test_step, loss_tracker, metrics, train_data, batch_size,
        validation_data=validation_data, per_call=steps_per_execution,
    )

    # Chapter 2's epoch loop
    names = [m.name for m in metrics]
    history: History = {}
    for epoch in range(1, epochs + 1):
        progbar = None
        if verbose:
            print(f"Epoch {epoch}/{epochs}")
            progbar = keras.utils.Progbar(run.steps, stateful_metrics=["loss", *names])
        show = None if progbar is None else (  # Progbar reads the tensors only when it redraws
            lambda done, bar=progbar: bar.update(done, metric_tensors(loss_tracker, metrics))
        )
        # reset the metrics, every training batch through train_step; safety
        # (Chapter 8): a NaN or infinite loss raises with its epoch and step
        logs = run.train_epoch(epoch, after_call=show)
        if validation_data is not None:  # every validation batch through test_step
            logs.update({f"val_{k}": v for k, v in run.validate(epoch).items()})
        if progbar is not None:
            progbar.update(run.steps_done, list(logs.items()), finalize=True)
        for key, value in logs.items():
            history.setdefault(key, []).append(value)
    return history
